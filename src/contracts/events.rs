//! Events for downstream consumers: CloudEvents 1.0, structured JSON, on the events exchange
//! with routing key `ticket.<event>` (or `sla.breached`). [`ROUTING_KEYS`] is the one list of
//! every event the service publishes; the AsyncAPI document and the per-type schemas in
//! `schemas/events/` are checked against it (`tests/it/contracts.rs`).
//!
//! Each ticket is one event stream: its events share the `source` `switchboard/tickets/<number>`,
//! `id` is `<ticket number>.<transition number>`, and `sequence` (the CloudEvents sequence
//! extension) is the transition number as a zero-padded string, so a consumer can spot
//! duplicates by id and order and find gaps by `source` + `sequence`. `dataschema` names the
//! JSON Schema of the event's type. Contacts are masked here: events leave the service's trust
//! boundary.

use crate::contracts::{Body, Exchange, Outgoing};
use crate::core::classify::Candidate;
use crate::core::customer::{Customer, Tier};
use crate::core::privacy::{mask_email, mask_phone};
use crate::core::state::TicketState;
use crate::core::ticket::{Ticket, Transition};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use std::borrow::Cow;

pub const SPEC_VERSION: &str = "1.0";

/// Every routing key an event is published with: `ticket.<event>`, `sla.breached`. The type is
/// `switchboard.<key>.v1` ([`event_type`]). A stage, an action or a task step that emits a new
/// event adds it here; `tests/it/contracts.rs` finds every event name in the code and fails on
/// one missing here, and on one listed here that `schemas/asyncapi.yaml` or `schemas/events/`
/// lacks.
pub const ROUTING_KEYS: [&str; 36] = [
    // The pipeline (intake, classify, prioritize, assign).
    "ticket.received",
    "ticket.classified",
    "ticket.prioritized",
    "ticket.assigned",
    "ticket.queued",
    // Lifecycle actions (`core::actions`).
    "ticket.claimed",
    "ticket.started",
    "ticket.responded",
    "ticket.waiting",
    "ticket.customer_replied",
    "ticket.customer_messaged",
    "ticket.resolved",
    "ticket.rated",
    "ticket.reopened",
    "ticket.closed",
    "ticket.reassigned",
    "ticket.transferred",
    "ticket.merged",
    "ticket.escalated",
    "ticket.escalation_acknowledged",
    "ticket.reprioritized",
    "ticket.reclassified",
    "ticket.due_changed",
    "ticket.noted",
    "ticket.linked",
    "ticket.attached",
    "ticket.workaround_provided",
    "ticket.milestone_met",
    "ticket.record_updated",
    "ticket.confirmed",
    // Group tickets (`core::groups`, `stages::actions`).
    "ticket.task_added",
    "ticket.task_opened",
    "ticket.task_done",
    "ticket.task_reopened",
    // The escalate stage's breach timer.
    "sla.breached",
    // Retention (`store::retention`).
    "ticket.anonymised",
];

/// The CloudEvents `type` of the event published with `routing_key`.
pub fn event_type(routing_key: &str) -> String {
    format!("switchboard.{routing_key}.v1")
}

/// Where the JSON Schemas of the event types live, as URIs: each schema's `$id` is this base and
/// its file name in `schemas/events/` (`ticket.assigned.v1.json`). An identifier, not a fetch
/// location: consumers resolve it to the file shipped with the release (docs/EVENTS.md).
pub const SCHEMA_BASE: &str = "https://switchboard.example/schemas/events/";

/// The CloudEvents `dataschema` (an absolute URI) of the event published with `routing_key`.
pub fn dataschema(routing_key: &str) -> String {
    format!("{SCHEMA_BASE}{routing_key}.v1.json")
}

/// The CloudEvents `source` of every event of ticket `number`: one source per ticket, so the
/// ticket's `sequence` orders its events (the sequence extension orders events of one source).
pub fn source(number: &str) -> String {
    format!("switchboard/tickets/{number}")
}

/// The `sequence` extension attribute for transition `seq`: a string (the extension's type),
/// zero-padded to the ten digits of a positive 32-bit integer so that string order is number
/// order, as the extension requires. (No `sequencetype`: the extension dropped it after
/// CloudEvents 1.0.2; what the value means is docs/EVENTS.md's to say.)
pub fn sequence(seq: i32) -> String {
    format!("{seq:010}")
}

/// The customer as events show them: contacts masked.
#[derive(Serialize)]
struct MaskedCustomer<'a> {
    name: &'a Option<String>,
    phone: Option<String>,
    email: Option<String>,
    customer_id: &'a Option<String>,
    tier: Tier,
}

impl<'a> MaskedCustomer<'a> {
    fn of(c: &'a Customer) -> MaskedCustomer<'a> {
        MaskedCustomer {
            name: &c.name,
            phone: c.phone.as_deref().map(mask_phone),
            email: c.email.as_deref().map(mask_email),
            customer_id: &c.customer_id,
            tier: c.tier(),
        }
    }
}

/// The ticket as events show it: everything but the customer's words and full contacts.
pub fn ticket_view(t: &Ticket) -> Value {
    serde_json::to_value(TicketView::of(t)).unwrap_or_default()
}

/// [`ticket_view`], serialised straight from the ticket's fields.
#[derive(Serialize)]
struct TicketView<'a> {
    number: &'a str,
    channel: &'a str,
    state: TicketState,
    category: &'a Option<String>,
    /// The classifier's two best categories, and whether a person must choose between them.
    candidates: &'a [Candidate],
    needs_triage: bool,
    priority: &'a Option<String>,
    language: &'a Option<String>,
    team: &'a Option<String>,
    assignee: &'a Option<String>,
    sla_rule: &'a Option<String>,
    first_response_due: Option<DateTime<Utc>>,
    resolution_due: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
    customer: MaskedCustomer<'a>,
    version: i32,
    first_responded_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    resolution: &'a Option<Value>,
    rating: Option<i16>,
    supervisor: &'a Option<String>,
}

impl<'a> TicketView<'a> {
    fn of(t: &'a Ticket) -> TicketView<'a> {
        TicketView {
            number: &t.number,
            channel: &t.channel,
            state: t.state,
            category: &t.category,
            candidates: &t.category_candidates,
            needs_triage: t.needs_triage,
            priority: &t.priority,
            language: &t.language,
            team: &t.team,
            assignee: &t.assignee,
            sla_rule: &t.sla_rule,
            first_response_due: t.first_response_due,
            resolution_due: t.resolution_due,
            received_at: t.received_at,
            customer: MaskedCustomer::of(&t.customer),
            version: t.version,
            first_responded_at: t.life.first_responded_at,
            resolved_at: t.life.resolved_at,
            closed_at: t.life.closed_at,
            resolution: &t.life.resolution,
            rating: t.life.rating,
            supervisor: &t.life.supervisor,
        }
    }
}

/// A transition's details as events show them: an internal note's text, a task's summary, an
/// attachment's location and a record update's values stay inside (a note is for colleagues, and a storage URL is often a bearer link).
fn public_details(details: &Value) -> Cow<'_, Value> {
    let internal = internal_fields(details.get("event").and_then(Value::as_str).unwrap_or_default());
    // Most transitions have nothing internal: shown as they are, without a copy.
    if internal.is_empty() || details.get("data").is_none() {
        return Cow::Borrowed(details);
    }
    let mut d = details.clone();
    if let Some(data) = d.get_mut("data").and_then(Value::as_object_mut) {
        for field in internal {
            data.remove(*field);
        }
    }
    Cow::Owned(d)
}

/// The fields of a transition's `data` that stay inside, by the transition's event.
fn internal_fields(event: &str) -> &'static [&'static str] {
    match event {
        "noted" => &["text"],
        "attached" => &["url"],
        // A milestone's or workaround's note is for colleagues, like a note.
        "workaround_provided" | "milestone_met" | "confirmed" => &["note"],
        // What a task's team is to do is internal, like a note (`core::groups`).
        "task_added" | "task_opened" => &["summary"],
        // Which fields changed, not their values (the record holds what the customer told the
        // service team; the ticket view shows it to those who may read it).
        "record_updated" => &["before", "after"],
        _ => &[],
    }
}

/// `event` is the short name (`received`, `classified`, …): the type becomes
/// `switchboard.ticket.<event>.v1` and the routing key `ticket.<event>`. A name with its own
/// domain (`sla.breached`) keeps it: `switchboard.sla.breached.v1`, key `sla.breached`.
pub fn ticket_event(t: &Ticket, event: &str, tr: &Transition) -> Outgoing {
    let id = format!("{}.{}", t.number, tr.seq);
    let name = if event.contains('.') {
        event.to_owned()
    } else {
        format!("ticket.{event}")
    };
    let body = Body::of(&TicketEvent {
        specversion: SPEC_VERSION,
        id: &id,
        source: source(&t.number),
        kind: event_type(&name),
        subject: &t.number,
        time: tr.at,
        datacontenttype: "application/json",
        dataschema: dataschema(&name),
        sequence: sequence(tr.seq),
        data: TicketEventData {
            ticket: TicketView::of(t),
            transition: TransitionView {
                seq: tr.seq,
                from: tr.from,
                to: tr.to,
                at: tr.at,
                actor: &tr.actor,
                reason: &tr.reason,
                policy_version: &tr.policy_version,
                details: public_details(&tr.details),
            },
        },
    });
    Outgoing {
        exchange: Exchange::Events,
        routing_key: name,
        message_id: id,
        body,
        headers: vec![],
    }
}

/// A ticket's event as published: the CloudEvents attributes, then the ticket and the transition.
#[derive(Serialize)]
struct TicketEvent<'a> {
    specversion: &'static str,
    id: &'a str,
    source: String,
    #[serde(rename = "type")]
    kind: String,
    subject: &'a str,
    time: DateTime<Utc>,
    datacontenttype: &'static str,
    dataschema: String,
    sequence: String,
    data: TicketEventData<'a>,
}

#[derive(Serialize)]
struct TicketEventData<'a> {
    ticket: TicketView<'a>,
    transition: TransitionView<'a>,
}

#[derive(Serialize)]
struct TransitionView<'a> {
    seq: i32,
    from: Option<TicketState>,
    to: TicketState,
    at: DateTime<Utc>,
    actor: &'a str,
    reason: &'a str,
    policy_version: &'a str,
    details: Cow<'a, Value>,
}

/// `ticket.anonymised`: retention removed (or, `purged`, deleted) the ticket's personal data.
/// Consumers that keep copies of earlier events erase theirs. The id is
/// `<ticket number>.anonymised`, so a redelivery is recognised.
pub fn anonymised_event(number: &str, at: chrono::DateTime<chrono::Utc>, purged: bool) -> Outgoing {
    let id = format!("{number}.anonymised");
    let name = "ticket.anonymised";
    let body = json!({
        "specversion": SPEC_VERSION,
        "id": id,
        "source": source(number),
        "type": event_type(name),
        "subject": number,
        "time": at,
        "datacontenttype": "application/json",
        "dataschema": dataschema(name),
        "data": {
            "number": number,
            "anonymised_at": at,
            "purged": purged,
        }
    });
    Outgoing {
        exchange: Exchange::Events,
        routing_key: name.into(),
        message_id: id,
        body: body.into(),
        headers: vec![],
    }
}

/// Whether an event's routing key (`ticket.resolved`) matches a topic pattern as a binding on
/// the events exchange would: words between dots, `*` one word, `#` zero or more words. Used
/// where events are read back from the events log (`switchboard events replay --type`).
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn words(p: &[&str], k: &[&str]) -> bool {
        match (p.split_first(), k.split_first()) {
            (None, None) => true,
            (Some((&"#", rest)), _) => words(rest, k) || k.split_first().is_some_and(|(_, tail)| words(p, tail)),
            (Some((&w, rest)), Some((&kw, tail))) => (w == "*" || w == kw) && words(rest, tail),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    words(&p, &k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns_match_as_the_broker_binds_them() {
        for (pattern, key, expected) in [
            ("ticket.resolved", "ticket.resolved", true),
            ("ticket.resolved", "ticket.reopened", false),
            ("ticket.*", "ticket.resolved", true),
            ("ticket.*", "sla.breached", false),
            ("*", "ticket.resolved", false),
            ("#", "ticket.resolved", true),
            ("sla.#", "sla.breached", true),
            ("sla.#", "sla", true),
            ("#.breached", "sla.breached", true),
            ("ticket.#.x", "ticket.a.b.x", true),
            ("ticket.#.x", "ticket.a.b.y", false),
            ("ticket", "ticket.resolved", false),
        ] {
            assert_eq!(topic_matches(pattern, key), expected, "{pattern} ~ {key}");
        }
    }

    #[test]
    fn sequences_order_as_strings_as_they_do_as_numbers() {
        assert_eq!(sequence(4), "0000000004");
        assert_eq!(sequence(i32::MAX), "2147483647");
        let mut seqs: Vec<i32> = vec![1, 2, 9, 10, 11, 99, 100, 12345, 2_000_000_000];
        let mut texts: Vec<String> = seqs.iter().map(|&s| sequence(s)).collect();
        texts.sort();
        seqs.sort_unstable();
        assert_eq!(texts, seqs.iter().map(|&s| sequence(s)).collect::<Vec<_>>());
    }

    #[test]
    fn routing_keys_are_unique_and_name_their_type_and_schema() {
        let mut keys = ROUTING_KEYS.to_vec();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), ROUTING_KEYS.len(), "a routing key is listed twice");
        assert_eq!(event_type("sla.breached"), "switchboard.sla.breached.v1");
        assert_eq!(
            dataschema("ticket.assigned"),
            "https://switchboard.example/schemas/events/ticket.assigned.v1.json"
        );
    }

    #[test]
    fn notes_and_attachment_locations_stay_inside() {
        let note = json!({"action": "note", "event": "noted", "data": {"text": "客户手机 13812345678"}});
        assert_eq!(public_details(&note)["data"], json!({}));
        let file =
            json!({"action": "attach", "event": "attached", "data": {"name": "a.jpg", "url": "https://s3/x?sig=1"}});
        assert_eq!(public_details(&file)["data"], json!({"name": "a.jpg"}));
        for event in ["task_added", "task_opened"] {
            let task = json!({"action": "add_task", "event": event,
                              "data": {"team": "billing", "summary": "退款 13812345678", "task": "202612-00009"}});
            assert_eq!(
                public_details(&task)["data"],
                json!({"team": "billing", "task": "202612-00009"})
            );
        }
        let other = json!({"action": "resolve", "event": "resolved", "data": {"result": "ok"}});
        assert_eq!(*public_details(&other), other);
    }
}
