//! The contracts in `schemas/` are checked against what the code really produces and accepts.

use serde_json::{Value, json};
use switchboard::contracts::action::ActionMessage;
use switchboard::contracts::intake::IntakeRequest;
use switchboard::contracts::work::WorkMessage;
use switchboard::core::actions::Action;
use switchboard::core::classify::Candidate;
use switchboard::core::customer::Customer;
use switchboard::core::state::TicketState;
use switchboard::core::ticket::{Ticket, Transition};

fn schema(path: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&v).unwrap_or_else(|e| panic!("{path} is not a valid schema: {e}"))
}

fn assert_valid(v: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what} breaks its schema: {errors:?}\n{instance:#}");
}

#[test]
fn sample_traffic_matches_the_intake_schema_and_invalid_messages_do_not() {
    let v = schema("schemas/intake-request.v1.json");
    let channels: Vec<String> = ["phone", "chat", "email", "app"].map(String::from).to_vec();
    for p in switchboard_tools::demo::traffic("c", 0..200, true, chrono::Utc::now()) {
        let parsed: Result<Value, _> = serde_json::from_slice(&p.payload);
        let accepted = IntakeRequest::decode(&p.payload, &channels).is_ok();
        match (parsed, accepted) {
            (Ok(instance), true) => assert_valid(&v, &instance, &p.message_id),
            (Ok(instance), false) => {
                // The code refuses it; the schema must refuse it too, unless only the policy's
                // channel list (not the schema's open pattern) rules it out.
                let unknown_channel = instance["channel"]
                    .as_str()
                    .is_some_and(|c| !channels.iter().any(|k| k == c));
                assert!(
                    unknown_channel || !v.is_valid(&instance),
                    "schema accepts what intake refuses: {instance}"
                );
            }
            (Err(_), accepted) => assert!(!accepted),
        }
    }
    // The schema's own examples are accepted by the code.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/intake-request.v1.json"),
    )
    .unwrap();
    let s: Value = serde_json::from_str(&text).unwrap();
    for ex in s["examples"].as_array().unwrap() {
        IntakeRequest::decode(ex.to_string().as_bytes(), &channels).unwrap();
    }
}

#[test]
fn a_request_without_contact_fails_both_the_schema_and_the_code() {
    let v = schema("schemas/intake-request.v1.json");
    let bad = json!({"channel": "app", "channel_message_id": "x", "received_at": "2026-01-01T00:00:00Z", "customer": {"name": "A"}, "body": "hi"});
    assert!(!v.is_valid(&bad));
    assert!(IntakeRequest::decode(bad.to_string().as_bytes(), &["app".to_string()]).is_err());
}

/// The service record is optional in contract v1: a request without it is unchanged, one with
/// it is valid for the schema and the code alike, and what either refuses the other refuses.
#[test]
fn record_fields_in_an_intake_request_are_optional_and_checked_by_schema_and_code() {
    let v = schema("schemas/intake-request.v1.json");
    let channels = ["app".to_string()];
    let base = json!({"channel": "app", "channel_message_id": "x", "received_at": "2026-01-01T00:00:00Z",
        "customer": {"phone": "13800000000"}, "body": "打印机无法连接"});
    assert!(v.is_valid(&base));
    assert_eq!(
        IntakeRequest::decode(base.to_string().as_bytes(), &channels)
            .unwrap()
            .record,
        None
    );
    let mut with = base.clone();
    with["record"] = json!({"product": "打印机", "device_model": "LJ-1020", "occurred_at": "2026-01-01T00:00:00Z",
        "tried": "重启", "expectation": "今天修好", "expected_by": "2026-01-01T10:00:00Z", "urgency": "紧急",
        "appointment_at": "2026-01-02T02:00:00Z", "callback_requested": true});
    assert_valid(&v, &with, "a request with a record");
    let r = IntakeRequest::decode(with.to_string().as_bytes(), &channels).unwrap();
    assert_eq!(r.record.unwrap().device_model.as_deref(), Some("LJ-1020"));
    for bad in [
        json!({"colour": "red"}),
        json!({"urgency": "very"}),
        json!({"callback_requested": "yes"}),
        json!({"product": ""}),
    ] {
        let mut b = base.clone();
        b["record"] = bad.clone();
        assert!(!v.is_valid(&b), "the schema takes {bad}");
        let code = IntakeRequest::decode(b.to_string().as_bytes(), &channels)
            .and_then(|r| r.validate_record(&Default::default()));
        assert!(code.is_err(), "the code takes {bad}");
    }
}

fn ticket() -> Ticket {
    Ticket {
        id: 7,
        number: "202611-00007".into(),
        channel: "phone".into(),
        channel_message_id: "call-1".into(),
        customer: Customer {
            phone: Some("13812345678".into()),
            email: Some("zhang@example.com".into()),
            ..Default::default()
        },
        subject: None,
        body: "喂".into(),
        language: Some("zh-Hans".into()),
        category: Some("fault".into()),
        category_confidence: Some(0.8),
        category_candidates: vec![
            Candidate {
                category: "fault".into(),
                probability: 0.55,
            },
            Candidate {
                category: "inquiry".into(),
                probability: 0.45,
            },
        ],
        needs_triage: true,
        priority: Some("urgent".into()),
        state: TicketState::Assigned,
        team: Some("green_channel".into()),
        assignee: Some("gc-001".into()),
        sla_rule: Some("urgent".into()),
        first_response_due: Some(chrono::Utc::now()),
        resolution_due: Some(chrono::Utc::now()),
        received_at: chrono::Utc::now(),
        assigned_at: Some(chrono::Utc::now()),
        version: 4,
        life: Default::default(),
    }
}

#[test]
fn every_event_matches_the_event_schema_and_masks_contacts() {
    let v = schema("schemas/events/ticket-event.v1.json");
    let t = ticket();
    for event in [
        "received",
        "classified",
        "prioritized",
        "assigned",
        "queued",
        "responded",
        "resolved",
        "rated",
        "closed",
        "escalated",
        "sla.breached",
    ] {
        let tr = Transition {
            ticket_id: 7,
            seq: 4,
            from: Some(TicketState::Prioritized),
            to: TicketState::Assigned,
            at: chrono::Utc::now(),
            actor: "assign".into(),
            reason: "r".into(),
            policy_version: "p".into(),
            details: json!({"x": 1}),
        };
        let out = switchboard::contracts::events::ticket_event(&t, event, &tr);
        assert_valid(&v, &out.body.value(), event);
        let text = out.body.json().to_owned();
        assert!(!text.contains("13812345678") && !text.contains("zhang@"), "{text}");
        // One stream per ticket, ordered by the sequence extension's zero-padded string.
        assert_eq!(out.body.value()["source"], "switchboard/tickets/202611-00007");
        assert_eq!(out.body.value()["sequence"], "0000000004");
        let key = if event.contains('.') {
            event.to_owned()
        } else {
            format!("ticket.{event}")
        };
        assert_eq!(
            out.body.value()["dataschema"],
            format!("https://switchboard.example/schemas/events/{key}.v1.json")
        );
    }
}

#[test]
fn actions_and_work_messages_match_their_schemas() {
    let v = schema("schemas/action.v1.json");
    let actions = vec![
        Action::Respond {
            message: Some("hi".into()),
        },
        Action::Start,
        Action::WaitForCustomer { reason: None },
        Action::CustomerReplied { message: None },
        Action::Resolve {
            result: "fixed".into(),
            root_cause: Some("x".into()),
            notes: None,
        },
        Action::Rate {
            score: 2,
            comment: None,
            reason: None,
        },
        Action::Reopen { reason: "r".into() },
        Action::Close { reason: None },
        Action::Reassign {
            agent: "a".into(),
            reason: None,
        },
        Action::AcknowledgeEscalation { note: None },
        Action::SetPriority {
            priority: "urgent".into(),
            reason: "r".into(),
        },
        Action::Note { text: "n".into() },
        Action::Claim,
        Action::Transfer {
            team: "billing".into(),
            reason: None,
        },
        Action::Escalate { reason: "r".into() },
        Action::Reclassify {
            category: "complaint".into(),
            reason: "r".into(),
        },
        Action::SetDue {
            target: switchboard::core::sla::Target::Resolution,
            due: chrono::Utc::now(),
            reason: "r".into(),
        },
        Action::Link {
            ticket: "202611-00002".into(),
            reason: None,
        },
        Action::Merge {
            into: "202611-00002".into(),
            reason: Some("dup".into()),
        },
        Action::Attach {
            name: "a.jpg".into(),
            content_type: Some("image/jpeg".into()),
            size: Some(10),
            url: "s3://b/k".into(),
        },
        Action::Workaround {
            done: "restarted".into(),
            note: Some("n".into()),
        },
        Action::Milestone {
            name: "plan".into(),
            note: None,
        },
        Action::AddTask {
            team: "billing".into(),
            summary: "refund".into(),
        },
        Action::UpdateRecord {
            set: serde_json::from_value(
                json!({"product": "P1", "helper": "ts-002", "custom": {"contract_no": "HT-1"}}),
            )
            .unwrap(),
            clear: vec!["custom.units".into()],
        },
        Action::Confirm {
            method: switchboard::core::record::ConfirmMethod::Online,
            note: None,
        },
    ];
    let kinds: Vec<&str> = actions.iter().map(|a| a.kind()).collect();
    assert_eq!(kinds.len(), Action::KINDS.len(), "every kind has an example here");
    for a in actions {
        let m = ActionMessage {
            ticket: "202611-00001".into(),
            actor: "agent:a".into(),
            action: a,
        };
        assert_valid(&v, &serde_json::to_value(&m).unwrap(), m.action.kind());
    }
    let w = schema("schemas/work-message.v1.json");
    let msg = WorkMessage {
        ticket_id: 1,
        number: "202611-00001".into(),
        version: 2,
        stage: "prioritize".into(),
        received_at: chrono::Utc::now(),
    };
    assert_valid(&w, &serde_json::to_value(&msg).unwrap(), "work message");
    assert_valid(&w, &json!({"drain_team": "front_line", "reason": "r"}), "drain message");
}

#[test]
fn the_asyncapi_document_names_the_exchanges_and_schemas_that_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("schemas/asyncapi.yaml")).unwrap();
    for name in [
        "switchboard.intake",
        "switchboard.events",
        "switchboard.actions",
        "switchboard.work",
        "switchboard.dead",
    ] {
        assert!(doc.contains(name), "asyncapi.yaml does not mention {name}");
    }
    for line in doc.lines().filter(|l| l.contains("$ref: './")) {
        let file = line.split("'./").nth(1).unwrap().trim_end_matches('\'');
        assert!(
            root.join("schemas").join(file).exists(),
            "asyncapi.yaml refers to missing {file}"
        );
    }
}

#[test]
fn the_anonymised_event_matches_its_schema() {
    let v = schema("schemas/events/ticket.anonymised.v1.json");
    for purged in [false, true] {
        let out = switchboard::contracts::events::anonymised_event("202612-00042", chrono::Utc::now(), purged);
        assert_eq!(out.routing_key, "ticket.anonymised");
        assert_eq!(out.message_id, "202612-00042.anonymised");
        assert_valid(&v, &out.body.value(), "ticket.anonymised");
        crate::common::events::assert_matches_its_schema(&out.body.value());
        // The same stream as the ticket's other events, but no place in its sequence.
        assert_eq!(out.body.value()["source"], "switchboard/tickets/202612-00042");
        assert!(out.body.value().get("sequence").is_none());
    }
}

/// The ticket API's action body in `schemas/openapi.yaml` (`components/schemas/Action*`) is what
/// `core::actions::Action` is: every kind is documented, every action the code produces fits
/// the document, and what the code refuses the document refuses too. The ticket states and
/// roles it lists are the code's.
#[test]
fn the_openapi_action_body_states_and_roles_are_the_codes() {
    use switchboard::core::access::Role;
    use switchboard::core::sla::Target;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("schemas/openapi.yaml")).unwrap();
    let doc: Value = serde_yaml::from_str(&text).expect("openapi.yaml is YAML");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };

    // The action schemas refer only to each other: lift them out as one schema's `$defs`.
    let defs: serde_json::Map<String, Value> = schemas
        .iter()
        .filter(|(name, _)| name.starts_with("Action"))
        .map(|(name, s)| (name.clone(), s.clone()))
        .collect();
    let body_schema = json!({ "$ref": "#/$defs/ActionRequest", "$defs": defs })
        .to_string()
        .replace("#/components/schemas/", "#/$defs/");
    let v = jsonschema::validator_for(&serde_json::from_str(&body_schema).unwrap())
        .unwrap_or_else(|e| panic!("the openapi.yaml action schemas are not a valid schema: {e}"));

    assert_eq!(strings(&schemas["ActionKind"]["enum"]), Action::KINDS, "ActionKind");
    let mut mapped: Vec<&String> = schemas["Action"]["discriminator"]["mapping"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    mapped.sort();
    let mut kinds = Action::KINDS.to_vec();
    kinds.sort_unstable();
    assert_eq!(mapped, kinds, "the discriminator maps every kind");

    let text = |s: &str| Some(s.to_owned());
    let actions = vec![
        Action::Respond { message: text("hi") },
        Action::Respond { message: None },
        Action::Start,
        Action::WaitForCustomer {
            reason: text("the order number"),
        },
        Action::CustomerReplied { message: None },
        Action::Resolve {
            result: "fixed".into(),
            root_cause: text("stale cache"),
            notes: None,
        },
        Action::Rate {
            score: 5,
            comment: text("quick"),
            reason: None,
        },
        Action::Reopen { reason: "r".into() },
        Action::Close { reason: None },
        Action::Reassign {
            agent: "fl-001".into(),
            reason: text("r"),
        },
        Action::AcknowledgeEscalation { note: None },
        Action::SetPriority {
            priority: "urgent".into(),
            reason: "r".into(),
        },
        Action::Note {
            text: "客户说周末也要用".into(),
        },
        Action::Claim,
        Action::Transfer {
            team: "billing".into(),
            reason: None,
        },
        Action::Escalate { reason: "r".into() },
        Action::Reclassify {
            category: "fault".into(),
            reason: "r".into(),
        },
        Action::SetDue {
            target: Target::Resolution,
            due: chrono::Utc::now() + chrono::Duration::days(2),
            reason: "r".into(),
        },
        Action::SetDue {
            target: Target::FirstResponse,
            due: chrono::Utc::now(),
            reason: "r".into(),
        },
        Action::Link {
            ticket: "202611-00002".into(),
            reason: text("same line"),
        },
        Action::Merge {
            into: "202611-00002".into(),
            reason: None,
        },
        Action::Attach {
            name: "photo.jpg".into(),
            content_type: text("image/jpeg"),
            size: Some(284_113),
            url: "s3://evidence/photo.jpg".into(),
        },
        Action::Attach {
            name: "a.pdf".into(),
            content_type: None,
            size: None,
            url: "https://cdn.example.com/a.pdf".into(),
        },
        Action::Workaround {
            done: "a spare unit lent".into(),
            note: text("until the part arrives"),
        },
        Action::Milestone {
            name: "diagnosis".into(),
            note: None,
        },
        Action::AddTask {
            team: "technical_support".into(),
            summary: "诊断主板故障".into(),
        },
        Action::UpdateRecord {
            set: serde_json::from_value(json!({"device_model": "LJ-1020", "urgency": "urgent",
                "occurred_at": "2026-05-10T02:00:00Z", "archived_on": "2026-06-01",
                "callback_requested": true, "custom": {"contract_no": "HT-1"}}))
            .unwrap(),
            clear: vec!["tried".into()],
        },
        Action::Confirm {
            method: switchboard::core::record::ConfirmMethod::Signature,
            note: text("签字确认"),
        },
    ];
    for kind in Action::KINDS {
        assert!(actions.iter().any(|a| a.kind() == kind), "no sample of {kind}");
    }
    for a in &actions {
        let body = json!({ "action": a });
        assert_valid(&v, &body, a.kind());
        let back: Action = serde_json::from_value(body["action"].clone()).unwrap();
        assert_eq!(&back, a);
    }
    // The older clients' `actor` is accepted (and ignored).
    assert_valid(
        &v,
        &json!({ "actor": "agent:x", "action": { "kind": "start" } }),
        "actor",
    );
    for bad in [
        json!({ "kind": "fly" }),
        json!({ "kind": "note" }),
        json!({ "kind": "note", "text": "x", "colour": "red" }),
        json!({ "kind": "transfer" }),
        json!({ "kind": "set_due", "target": "resolution", "reason": "r" }),
        json!({ "kind": "set_due", "target": "sometime", "due": "2030-01-01T00:00:00Z", "reason": "r" }),
        json!({ "kind": "attach", "name": "a", "url": "s3://x", "size": -1 }),
        json!({ "kind": "rate", "score": "five" }),
        json!({ "kind": "workaround" }),
        json!({ "kind": "milestone", "note": "no name" }),
        json!({ "kind": "add_task", "team": "billing" }),
        json!({ "kind": "update_record", "set": { "colour": "red" } }),
        json!({ "kind": "update_record", "set": { "callback_requested": "yes" } }),
        json!({ "kind": "confirm" }),
        json!({ "kind": "confirm", "method": "telepathy" }),
        json!({ "message": "no kind" }),
    ] {
        assert!(
            serde_json::from_value::<Action>(bad.clone()).is_err(),
            "the code takes {bad}"
        );
        assert!(!v.is_valid(&json!({ "action": bad })), "openapi.yaml takes {bad}");
    }
    assert!(!v.is_valid(&json!({ "action": { "kind": "start" }, "ticket": "x" })));

    let states: Vec<&str> = TicketState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(strings(&schemas["TicketState"]["enum"]), states, "TicketState");
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(strings(&schemas["Role"]["enum"]), roles, "Role");
}

/// A document in `schemas/` as JSON.
fn yaml_doc(path: &str) -> Value {
    let text = std::fs::read_to_string(crate::common::manifest_dir().join(path)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

/// An official meta-schema vendored in `tests/fixtures/` (see the README beside it).
fn meta_schema(path: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(crate::common::manifest_dir().join(path)).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&v).unwrap_or_else(|e| panic!("{path} does not compile: {e}"))
}

fn meta_errors(meta: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    meta.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// `schemas/asyncapi.yaml` is an AsyncAPI 3.0.0 document and `schemas/openapi.yaml` an OpenAPI
/// 3.1 one, by the official JSON Schemas (vendored: nothing is fetched at test time); and those
/// schemas are not vacuous: a broken document fails them.
#[test]
fn the_asyncapi_and_openapi_documents_pass_the_official_schemas() {
    let asyncapi = meta_schema("tests/fixtures/asyncapi/asyncapi-3.0.0.json");
    let doc = yaml_doc("schemas/asyncapi.yaml");
    let errors = meta_errors(&asyncapi, &doc);
    assert!(
        errors.is_empty(),
        "asyncapi.yaml breaks AsyncAPI 3.0.0:\n{}",
        errors.join("\n")
    );
    let mut broken = doc.clone();
    broken["channels"]["events"]["adress"] = json!("typo");
    broken["operations"]["consumeEvents"]["action"] = json!("subscribe");
    assert!(
        meta_errors(&asyncapi, &broken).len() >= 2,
        "the AsyncAPI schema takes a broken document"
    );

    let openapi = meta_schema("tests/fixtures/openapi/openapi-3.1.json");
    let doc = yaml_doc("schemas/openapi.yaml");
    let errors = meta_errors(&openapi, &doc);
    assert!(
        errors.is_empty(),
        "openapi.yaml breaks OpenAPI 3.1:\n{}",
        errors.join("\n")
    );
    let mut broken = doc.clone();
    broken["paths"]["/healthz"]["get"]["responses"] = json!("ok");
    broken["info"].as_object_mut().unwrap().remove("title");
    assert!(
        meta_errors(&openapi, &broken).len() >= 2,
        "the OpenAPI schema takes a broken document"
    );
}

/// The code without its inline unit-test module (`#[cfg(test)] mod tests { … }`, to the end of
/// the file, where this project keeps it): what the library runs.
fn library_source(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let tests = regex::Regex::new(r"#\[cfg\(test\)\]\s*mod \w+\s*\{").unwrap();
    match tests.find(&text) {
        Some(m) => text[..m.start()].to_owned(),
        None => text,
    }
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
            out.push(path);
        }
    }
}

/// Every event name the library can publish, found in its source: the literal an event is
/// made with in each of the ways the code makes one. Each way is counted, so a call whose
/// name the patterns cannot read fails the test rather than being skipped.
fn event_names_in_the_code() -> std::collections::BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&crate::common::manifest_dir().join("src"), &mut files);
    // (what makes an event, the pattern that reads its name)
    let ways = [
        // `core::actions`: a plan's step, `Plan::step(to, "event", reason, details)`.
        (r"\.step\(", r#"\.step\(\s*[^,;]+?,\s*"([a-z_.]+)""#),
        // The pipeline stages: `Decision::new(before, after, why, policy, "event", next)`.
        (r"Decision::new\(", r#"Decision::new\([^;]*?policy,\s*"([a-z_.]+)""#),
        // The escalate stage's `record(&mut after, "event", …)`.
        (r"\brecord\(\s*&mut after", r#"\brecord\(\s*&mut after,\s*"([a-z_.]+)""#),
        // `core::groups::parent_step`'s ("task_…", reason, details).
        (
            r#"\(\s*"task_[a-z_]+",\s*format!"#,
            r#"\(\s*"(task_[a-z_]+)",\s*format!"#,
        ),
        // An event made directly: `ticket_event(ticket, "event", transition)`.
        (
            r#"ticket_event\(\s*[^,)]+,\s*""#,
            r#"ticket_event\(\s*[^,)]+,\s*"([a-z_.]+)""#,
        ),
    ];
    let mut names = std::collections::BTreeSet::new();
    for path in &files {
        let text = library_source(path);
        for (call, name) in ways {
            let calls = regex::Regex::new(call).unwrap().find_iter(&text).count();
            let found: Vec<String> = regex::Regex::new(name)
                .unwrap()
                .captures_iter(&text)
                .map(|c| c[1].to_owned())
                .collect();
            assert_eq!(
                found.len(),
                calls,
                "{}: {calls} calls match {call} but {} name an event this test can read ({found:?}): \
                 pass the event's name as a literal, or teach this test the new way",
                path.display(),
                found.len()
            );
            names.extend(found);
        }
    }
    // The short names are `ticket.<name>`; a name with its domain (`sla.breached`) keeps it.
    names
        .into_iter()
        .map(|n| if n.contains('.') { n } else { format!("ticket.{n}") })
        .collect()
}

/// Every event the code emits is in `contracts::events::ROUTING_KEYS`, and every one listed
/// there is in `schemas/asyncapi.yaml` (the events channel's routing keys and a message whose
/// payload is the type's own schema), has that schema in `schemas/events/`, and is documented in
/// docs/EVENTS.md. The actions channel lists every action kind.
#[test]
fn every_event_the_code_emits_is_in_the_asyncapi_document_with_its_schema() {
    use std::collections::BTreeSet;
    use switchboard::contracts::events::{ROUTING_KEYS, dataschema, event_type};
    let listed: BTreeSet<String> = ROUTING_KEYS.iter().map(|k| k.to_string()).collect();
    let mut emitted = event_names_in_the_code();
    // Retention's event is made by `anonymised_event`, under its own name.
    emitted.insert("ticket.anonymised".into());
    assert!(emitted.len() > 30, "the scan found too few events: {emitted:?}");
    let unlisted: Vec<&String> = emitted.difference(&listed).collect();
    assert!(unlisted.is_empty(), "emitted but not in ROUTING_KEYS: {unlisted:?}");
    let stale: Vec<&String> = listed.difference(&emitted).collect();
    assert!(stale.is_empty(), "in ROUTING_KEYS but emitted nowhere: {stale:?}");

    let root = crate::common::manifest_dir();
    let doc = yaml_doc("schemas/asyncapi.yaml");
    let events = &doc["channels"]["events"];
    let in_doc: BTreeSet<String> = events["parameters"]["routingKey"]["enum"]
        .as_array()
        .expect("the events channel lists its routing keys")
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let missing: Vec<&String> = listed.difference(&in_doc).collect();
    assert!(missing.is_empty(), "asyncapi.yaml lacks the events {missing:?}");
    let extra: Vec<&String> = in_doc.difference(&listed).collect();
    assert!(
        extra.is_empty(),
        "asyncapi.yaml lists events the code never emits: {extra:?}"
    );

    let guide = std::fs::read_to_string(root.join("docs/EVENTS.md")).unwrap();
    let messages = &doc["components"]["messages"];
    for key in ROUTING_KEYS {
        let payload = format!("./events/{key}.v1.json");
        let message = events["messages"]
            .as_object()
            .unwrap()
            .values()
            .map(|m| {
                let name = m["$ref"].as_str().unwrap().trim_start_matches("#/components/messages/");
                &messages[name]
            })
            .find(|m| m["payload"]["$ref"] == payload.as_str())
            .unwrap_or_else(|| panic!("asyncapi.yaml: no message of the events channel has the payload {payload}"));
        assert_eq!(
            message["title"],
            event_type(key),
            "{key}: the message's title is its type"
        );
        assert_eq!(message["contentType"], "application/cloudevents+json", "{key}");
        let file = root.join("schemas/events").join(format!("{key}.v1.json"));
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())))
                .unwrap();
        assert_eq!(
            schema["$id"],
            dataschema(key),
            "{key}: the schema's $id is the events' dataschema"
        );
        assert_eq!(
            schema["properties"]["type"]["const"],
            event_type(key),
            "{key}: its schema fixes its type"
        );
        assert!(
            guide.contains(&format!("`{key}`")),
            "docs/EVENTS.md does not list `{key}`"
        );
    }
    // Nothing else in schemas/events/ but the shared envelope.
    let mut files: Vec<String> = std::fs::read_dir(root.join("schemas/events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = ROUTING_KEYS.iter().map(|k| format!("{k}.v1.json")).collect();
    expected.push("ticket-event.v1.json".into());
    expected.sort();
    assert_eq!(
        files, expected,
        "schemas/events/ holds one schema per event type and the envelope"
    );

    let kinds: Vec<&str> = doc["channels"]["actions"]["parameters"]["kind"]["enum"]
        .as_array()
        .expect("asyncapi.yaml has the actions channel")
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(kinds, Action::KINDS, "the actions channel's kinds");
}

/// The routes the gateway's router serves, from `src/http/`: each `.route("<path>", <methods>)`
/// outside unit tests, and the native channel table's `POST /v1/<route>` (registered in a
/// loop). Every `.route(` is accounted for, so a route this cannot read fails the test.
fn served_routes() -> std::collections::BTreeSet<(String, String)> {
    let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)",\s*([^\n]+)"#).unwrap();
    let method = regex::Regex::new(r"\b(get|post|put|delete|patch)\(").unwrap();
    let mut files = Vec::new();
    rust_files(&crate::common::manifest_dir().join("src/http"), &mut files);
    let mut routes = std::collections::BTreeSet::new();
    let mut calls = 0;
    for path in &files {
        let text = library_source(path);
        calls += text.matches(".route(").count();
        for c in route.captures_iter(&text) {
            let methods: Vec<String> = method.captures_iter(&c[2]).map(|m| m[1].to_owned()).collect();
            assert!(!methods.is_empty(), "{}: no method in {}", path.display(), &c[0]);
            for m in methods {
                routes.insert((m, c[1].to_owned()));
            }
            calls -= 1;
        }
    }
    // The native formats' routes: `intake::routes` registers each row of the table.
    assert_eq!(calls, 1, "a `.route(` in src/http/ this test cannot read");
    for native in &switchboard::channels::table::NATIVE {
        routes.insert(("post".to_owned(), format!("/v1/{}", native.route)));
    }
    routes
}

/// Every path and method the router serves is in `schemas/openapi.yaml`, and the document
/// describes no route the router does not serve.
#[test]
fn every_route_the_router_serves_is_in_the_openapi_document() {
    let served = served_routes();
    assert!(served.len() >= 20, "the scan found too few routes: {served:?}");
    for expected in [
        ("get", "/v1/tickets"),
        ("get", "/v1/dashboard"),
        ("post", "/v1/channels/email"),
    ] {
        assert!(
            served.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "the scan misses {expected:?}"
        );
    }
    let doc = yaml_doc("schemas/openapi.yaml");
    let paths = doc["paths"].as_object().unwrap();
    let missing: Vec<String> = served
        .iter()
        .filter(|(m, p)| paths.get(p.as_str()).and_then(|item| item.get(m.as_str())).is_none())
        .map(|(m, p)| format!("{} {p}", m.to_uppercase()))
        .collect();
    assert!(
        missing.is_empty(),
        "openapi.yaml lacks routes the gateway serves: {missing:?}"
    );
    let documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    let unserved: Vec<&(String, String)> = documented.iter().filter(|r| !served.contains(*r)).collect();
    assert!(
        unserved.is_empty(),
        "openapi.yaml describes routes nobody serves: {unserved:?}"
    );
}

/// The facts an action may need, all present: a ladder, another ticket, agents, teams,
/// categories, milestones and priorities that exist.
fn permissive_context() -> switchboard::core::actions::Context {
    switchboard::core::actions::Context {
        active_escalations: 1,
        priority_levels: ["low", "normal", "high", "urgent"].map(String::from).to_vec(),
        supervisor: Some("sup-001".into()),
        agent_exists: true,
        teams: ["billing", "technical_support", "front_line"]
            .map(String::from)
            .to_vec(),
        categories: ["fault", "inquiry", "complaint"].map(String::from).to_vec(),
        actor_agent: Some("fl-001".into()),
        next_rung: Some((0, "supervisor".into())),
        other: Some(("202611-00002".into(), TicketState::InProgress)),
        triage_route: None,
        milestones: ["plan", "diagnosis", "workaround"].map(String::from).to_vec(),
        open_tasks: Vec::new(),
        parent: None,
        record: Default::default(),
        helper_exists: true,
    }
}

/// Every lifecycle event, as the lifecycle stage makes it (`core::actions::plan` in every state
/// it accepts the action in, each step's details as `stages::actions::step_details` writes
/// them), matches the schema of its own type, and not another type's. The pipeline stages'
/// and the escalate stage's events are checked as the integration tests drain them
/// (`common::Harness::drain_queue`).
#[test]
fn every_lifecycle_event_matches_the_schema_of_its_type() {
    use crate::common::events::{assert_matches_its_schema, errors, validator};
    use switchboard::contracts::events::{dataschema, ticket_event};
    use switchboard::core::actions::{LifecyclePolicy, plan};
    use switchboard::stages::actions::step_details;
    let now = chrono::Utc::now();
    let policy = LifecyclePolicy::default();
    let text = |s: &str| Some(s.to_owned());
    let actions = vec![
        Action::Claim,
        Action::Start,
        Action::Respond { message: text("hi") },
        Action::Note {
            text: "客户手机 13812345678".into(),
        },
        Action::WaitForCustomer {
            reason: text("order number"),
        },
        Action::CustomerReplied {
            message: text("here it is"),
        },
        Action::Resolve {
            result: "fixed".into(),
            root_cause: text("cache"),
            notes: None,
        },
        Action::Reopen { reason: "r".into() },
        Action::Close { reason: None },
        Action::Rate {
            score: 5,
            comment: text("quick"),
            reason: None,
        },
        Action::Rate {
            score: 1,
            comment: None,
            reason: None,
        },
        Action::Reassign {
            agent: "fl-002".into(),
            reason: None,
        },
        Action::Transfer {
            team: "billing".into(),
            reason: text("their product"),
        },
        Action::AcknowledgeEscalation { note: text("on it") },
        Action::SetPriority {
            // Not the sample ticket's own priority, which would be no change.
            priority: "high".into(),
            reason: "r".into(),
        },
        Action::Escalate { reason: "r".into() },
        Action::Reclassify {
            category: "complaint".into(),
            reason: "r".into(),
        },
        Action::SetDue {
            target: switchboard::core::sla::Target::Resolution,
            due: now + chrono::Duration::days(2),
            reason: "r".into(),
        },
        Action::Link {
            ticket: "202611-00002".into(),
            reason: None,
        },
        Action::Merge {
            into: "202611-00002".into(),
            reason: text("dup"),
        },
        Action::Attach {
            name: "a.jpg".into(),
            content_type: text("image/jpeg"),
            size: Some(10),
            url: "https://s3.example.com/a.jpg?sig=1".into(),
        },
        Action::Workaround {
            done: "a spare unit".into(),
            note: text("until Friday"),
        },
        Action::Milestone {
            name: "plan".into(),
            note: text("n"),
        },
        Action::AddTask {
            team: "billing".into(),
            summary: "refund 13812345678".into(),
        },
        Action::UpdateRecord {
            set: serde_json::from_value(json!({"product": "P1", "device_model": "LJ-1020"})).unwrap(),
            clear: vec![],
        },
        Action::Confirm {
            method: switchboard::core::record::ConfirmMethod::Online,
            note: text("ok"),
        },
    ];
    let mut checked = std::collections::BTreeSet::new();
    let mut check = |t: &Ticket, event: &str, to: TicketState, details: Value| {
        let mut after = t.clone();
        after.version += 1;
        after.state = to;
        let tr = Transition {
            ticket_id: t.id,
            seq: after.version,
            from: Some(t.state),
            to,
            at: now,
            actor: "agent:fl-001".into(),
            reason: "r".into(),
            policy_version: "p".into(),
            details,
        };
        let out = ticket_event(&after, event, &tr);
        assert_matches_its_schema(&out.body.value());
        // The type's schema is not the envelope's: another type's refuses it.
        let other = if out.routing_key == "ticket.noted" {
            "ticket.started"
        } else {
            "ticket.noted"
        };
        assert!(
            validator(&dataschema(other))
                .iter_errors(&out.body.value())
                .next()
                .is_some(),
            "{}'s event passes the schema of {other}",
            out.routing_key
        );
        checked.insert(out.routing_key);
    };
    for action in &actions {
        for state in TicketState::ALL {
            let mut t = ticket();
            t.state = state;
            t.needs_triage = false;
            let Ok(p) = plan(&t, "agent:fl-001", action, &permissive_context(), &policy, now) else {
                continue;
            };
            for step in &p.steps {
                let mut details = step_details(action.kind(), step);
                if step.event == "task_added" {
                    // The task's number is the stage's to give (`stages::actions`).
                    details["data"]["task"] = json!("202611-00008");
                }
                check(&t, step.event, step.to, details);
            }
        }
    }
    // A triage decision: the reclassification and the transfer to the category's team.
    let mut t = ticket();
    t.state = TicketState::InProgress;
    let mut ctx = permissive_context();
    ctx.triage_route = Some(("billing".into(), "rule 2".into()));
    let triage = Action::Reclassify {
        category: "inquiry".into(),
        reason: "r".into(),
    };
    let p = plan(&t, "supervisor:s", &triage, &ctx, &policy, now).unwrap();
    assert_eq!(p.steps.len(), 2);
    for step in &p.steps {
        check(&t, step.event, step.to, step_details(triage.kind(), step));
    }
    // A task's first event and its parent's steps (`stages::actions` and `core::groups`).
    let mut task = ticket();
    task.state = TicketState::Queued;
    task.version = 0;
    let opened = json!({ "action": "add_task", "event": "task_opened",
                         "data": { "parent": "202611-00007", "team": "billing", "summary": "refund" } });
    check(&task, "task_opened", TicketState::Queued, opened);
    use switchboard::core::groups::{TaskChange, parent_step};
    for (change, open) in [
        (TaskChange::Done, vec![]),
        (TaskChange::Done, vec!["202611-00009".to_owned()]),
        (TaskChange::Reopened, vec!["202611-00008".to_owned()]),
    ] {
        let (event, _, data) = parent_step("202611-00008", Some("billing"), change, &open);
        let t = ticket();
        check(
            &t,
            event,
            t.state,
            json!({ "action": "resolve", "event": event, "data": data }),
        );
    }
    // What stays inside is refused by the schema if it leaks: a note's text.
    let mut t = ticket();
    t.state = TicketState::InProgress;
    let tr = Transition {
        ticket_id: 7,
        seq: 5,
        from: Some(t.state),
        to: t.state,
        at: now,
        actor: "agent:fl-001".into(),
        reason: "r".into(),
        policy_version: "p".into(),
        details: json!({ "action": "note", "event": "noted", "data": { "text": "x" } }),
    };
    let mut leaked = ticket_event(&t, "noted", &tr).body.value();
    assert!(errors(&leaked).is_empty(), "the event builder keeps the text inside");
    leaked["data"]["transition"]["details"]["data"]["text"] = json!("客户手机 13812345678");
    assert!(!errors(&leaked).is_empty(), "the noted schema takes a note's text");

    let stage_made = [
        "ticket.received",
        "ticket.classified",
        "ticket.prioritized",
        "ticket.assigned",
        "ticket.queued",
        "sla.breached",
        "ticket.anonymised",
    ];
    let unchecked: Vec<&str> = switchboard::contracts::events::ROUTING_KEYS
        .into_iter()
        .filter(|k| !checked.contains(*k) && !stage_made.contains(k))
        .collect();
    assert!(unchecked.is_empty(), "no lifecycle sample made {unchecked:?}");
}
