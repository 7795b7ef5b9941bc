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
        let out = switchboard::contracts::events::ticket_event(&t, event, &tr, "test");
        assert_valid(&v, &out.body, event);
        let text = out.body.to_string();
        assert!(!text.contains("13812345678") && !text.contains("zhang@"), "{text}");
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
    let v = schema("schemas/events/ticket-anonymised.v1.json");
    for purged in [false, true] {
        let out = switchboard::contracts::events::anonymised_event("202612-00042", chrono::Utc::now(), purged);
        assert_eq!(out.routing_key, "ticket.anonymised");
        assert_eq!(out.message_id, "202612-00042.anonymised");
        assert_valid(&v, &out.body, "ticket.anonymised");
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
