//! Events for downstream consumers: CloudEvents 1.0, structured JSON, on the events exchange
//! with routing key `ticket.<event>`.
//!
//! `id` is `<ticket number>.<sequence>` and `sequence` is the ticket's transition number, so a
//! consumer can spot duplicates by id and gaps by sequence. Contacts are masked here: events
//! leave the service's trust boundary.

use crate::contracts::{Exchange, Outgoing};
use crate::core::customer::Customer;
use crate::core::privacy::{mask_email, mask_phone};
use crate::core::ticket::{Ticket, Transition};
use serde_json::{Value, json};

pub const SPEC_VERSION: &str = "1.0";

pub fn masked_customer(c: &Customer) -> Value {
    json!({
        "name": c.name,
        "phone": c.phone.as_deref().map(mask_phone),
        "email": c.email.as_deref().map(mask_email),
        "customer_id": c.customer_id,
        "tier": c.tier(),
    })
}

/// The ticket as events show it: everything but the customer's words and full contacts.
pub fn ticket_view(t: &Ticket) -> Value {
    json!({
        "number": t.number,
        "channel": t.channel,
        "state": t.state,
        "category": t.category,
        // The classifier's two best categories, and whether a person must choose between them.
        "candidates": t.category_candidates,
        "needs_triage": t.needs_triage,
        "priority": t.priority,
        "language": t.language,
        "team": t.team,
        "assignee": t.assignee,
        "sla_rule": t.sla_rule,
        "first_response_due": t.first_response_due,
        "resolution_due": t.resolution_due,
        "received_at": t.received_at,
        "customer": masked_customer(&t.customer),
        "version": t.version,
        "first_responded_at": t.life.first_responded_at,
        "resolved_at": t.life.resolved_at,
        "closed_at": t.life.closed_at,
        "resolution": t.life.resolution,
        "rating": t.life.rating,
        "supervisor": t.life.supervisor,
    })
}

/// A transition's details as events show them: an internal note's text, a task's summary, an
/// attachment's location and a record update's values stay inside (a note is for colleagues, and a storage URL is often a bearer link).
fn public_details(details: &Value) -> Value {
    let mut d = details.clone();
    if let Some(data) = d.get_mut("data").and_then(Value::as_object_mut) {
        match details.get("event").and_then(Value::as_str) {
            Some("noted") => {
                data.remove("text");
            }
            Some("attached") => {
                data.remove("url");
            }
            // A milestone's or workaround's note is for colleagues, like a note.
            Some("workaround_provided" | "milestone_met") => {
                data.remove("note");
            }
            // What a task's team is to do is internal, like a note (`core::groups`).
            Some("task_added" | "task_opened") => {
                data.remove("summary");
            }
            // Which fields changed, not their values (the record holds what the customer
            // told the service team; the ticket view shows it to those who may read it).
            Some("record_updated") => {
                data.remove("before");
                data.remove("after");
            }
            Some("confirmed") => {
                data.remove("note");
            }
            _ => {}
        }
    }
    d
}

/// `event` is the short name (`received`, `classified`, …): the type becomes
/// `switchboard.ticket.<event>.v1` and the routing key `ticket.<event>`. A name with its own
/// domain (`sla.breached`) keeps it: `switchboard.sla.breached.v1`, key `sla.breached`.
pub fn ticket_event(t: &Ticket, event: &str, tr: &Transition, source: &str) -> Outgoing {
    let id = format!("{}.{}", t.number, tr.seq);
    let name = if event.contains('.') {
        event.to_owned()
    } else {
        format!("ticket.{event}")
    };
    let body = json!({
        "specversion": SPEC_VERSION,
        "id": id,
        "source": format!("switchboard/{source}"),
        "type": format!("switchboard.{name}.v1"),
        "subject": t.number,
        "time": tr.at,
        "datacontenttype": "application/json",
        "sequence": tr.seq,
        "data": {
            "ticket": ticket_view(t),
            "transition": {
                "seq": tr.seq,
                "from": tr.from,
                "to": tr.to,
                "at": tr.at,
                "actor": tr.actor,
                "reason": tr.reason,
                "policy_version": tr.policy_version,
                "details": public_details(&tr.details),
            }
        }
    });
    Outgoing {
        exchange: Exchange::Events,
        routing_key: name,
        message_id: id,
        body,
        headers: vec![],
    }
}

/// The CloudEvents Distributed Tracing extension: `traceparent`, the W3C Trace Context of the
/// work that made the event (set through `Outgoing::carry_trace`).
pub fn set_traceparent(event: &mut Value, traceparent: &str) {
    if let Some(attributes) = event.as_object_mut() {
        attributes.insert("traceparent".into(), traceparent.into());
    }
}

/// `ticket.anonymised`: retention removed (or, `purged`, deleted) the ticket's personal data.
/// Consumers that keep copies of earlier events erase theirs. The id is
/// `<ticket number>.anonymised`, so a redelivery is recognised.
pub fn anonymised_event(number: &str, at: chrono::DateTime<chrono::Utc>, purged: bool) -> Outgoing {
    let id = format!("{number}.anonymised");
    let body = json!({
        "specversion": SPEC_VERSION,
        "id": id,
        "source": "switchboard/retention",
        "type": "switchboard.ticket.anonymised.v1",
        "subject": number,
        "time": at,
        "datacontenttype": "application/json",
        "data": {
            "number": number,
            "anonymised_at": at,
            "purged": purged,
        }
    });
    Outgoing {
        exchange: Exchange::Events,
        routing_key: "ticket.anonymised".into(),
        message_id: id,
        body,
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
        assert_eq!(public_details(&other), other);
    }
}
