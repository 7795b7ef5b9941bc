//! The envelope of every message Switchboard publishes: which exchange, which routing key, which
//! id, what body. Stages return these; the ledger stores them; the one publisher sends them.

use serde::{Deserialize, Serialize};

/// The exchanges a message can be published to, by role; names come from the topology prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exchange {
    Intake,
    Work,
    Events,
    Actions,
    Dlx,
}

/// A message a stage wants published once its transaction has committed. Stored with the
/// processed-message record so a redelivery can publish exactly the same thing again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    pub exchange: Exchange,
    pub routing_key: String,
    pub message_id: String,
    pub body: serde_json::Value,
    /// Extra string headers (dead-letter reasons and provenance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

/// The W3C Trace Context header (`00-<trace id>-<parent span id>-<flags>`) a message carries
/// so the stage that handles it continues the same trace.
pub const TRACEPARENT: &str = "traceparent";

impl Outgoing {
    /// The trace context this message continues, if it carries one.
    pub fn traceparent(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == TRACEPARENT)
            .map(|(_, v)| v.as_str())
    }

    /// Marks the message as made in the trace `traceparent`: as its header, and on an event
    /// also as the CloudEvents `traceparent` extension attribute. A message that carries one
    /// already keeps it: outputs read back from the ledger stay in the trace they were first
    /// published in.
    pub fn carry_trace(&mut self, traceparent: &str) {
        if self.traceparent().is_some() {
            return;
        }
        self.headers.push((TRACEPARENT.to_owned(), traceparent.to_owned()));
        if self.exchange == Exchange::Events {
            super::events::set_traceparent(&mut self.body, traceparent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn message(exchange: Exchange) -> Outgoing {
        Outgoing {
            exchange,
            routing_key: "k".into(),
            message_id: "m".into(),
            body: serde_json::json!({"specversion": "1.0", "id": "m"}),
            headers: vec![],
        }
    }

    #[test]
    fn a_message_carries_its_first_trace_and_an_event_names_it_too() {
        let mut work = message(Exchange::Work);
        work.carry_trace(TP);
        work.carry_trace("00-11111111111111111111111111111111-2222222222222222-01");
        assert_eq!(work.traceparent(), Some(TP));
        assert_eq!(work.headers.len(), 1);
        assert!(
            work.body.get("traceparent").is_none(),
            "work bodies stay as their schema says"
        );

        let mut event = message(Exchange::Events);
        event.carry_trace(TP);
        assert_eq!(event.traceparent(), Some(TP));
        assert_eq!(event.body["traceparent"], TP);
        // Stored in the ledger and read back, the trace survives.
        let back: Outgoing = serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
        assert_eq!(back.traceparent(), Some(TP));
    }
}
