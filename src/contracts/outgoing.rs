//! The envelope of every message Switchboard publishes: which exchange, which routing key, which
//! id, what body. Stages return these; the ledger stores them; the one publisher sends them.
//!
//! A body is JSON text, serialised once when the message is made ([`Body::of`]): the publisher
//! sends those bytes and the ledger stores them as they are, so a message costs no JSON tree
//! and no second serialisation, and a redelivery re-publishes exactly the bytes first sent.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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
    pub body: Body,
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
            self.body.set_traceparent(traceparent);
        }
    }
}

/// A message's body as JSON text (see the module documentation).
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Body(Box<RawValue>);

impl Body {
    /// `value` as JSON text. A value that cannot be JSON (a map with keys that are not strings;
    /// no message type has one) becomes `null`, which every consumer refuses by name.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Body {
        Body(serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned()))
    }

    /// The JSON text, as published.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.get().as_bytes()
    }

    /// The body as a JSON tree, for readers that look around in it (tests, the CLI).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }

    /// The body read as `T`, borrowing from its text where `T` does.
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// Sets the CloudEvents `traceparent` attribute of an object body, replacing one that is
    /// there. Written into the text when it is surely new (the usual case: an event made a
    /// moment ago); otherwise through the JSON tree. A body that is not an object is left as it is.
    pub fn set_traceparent(&mut self, value: &str) {
        // The CloudEvents Distributed Tracing extension names its attribute as the header.
        const NAME: &str = TRACEPARENT;
        let text = self.0.get();
        // Without the name, and without an escape that could spell it, the text cannot hold the
        // attribute.
        if text.contains(NAME) || text.contains("\\u") {
            let mut tree = self.value();
            if let Some(object) = tree.as_object_mut() {
                object.insert(NAME.to_owned(), value.into());
                *self = Body::of(&tree);
            }
            return;
        }
        if !text.trim_start().starts_with('{') {
            return;
        }
        // `{` + `"name":"value"` + (`,` unless the object was empty) + the rest.
        let rest = text.trim_start().trim_start_matches('{').trim_start();
        let mut out = String::with_capacity(text.len() + NAME.len() + value.len() + 8);
        out.push('{');
        out.push_str(&serde_json::to_string(NAME).unwrap_or_default());
        out.push(':');
        out.push_str(&serde_json::to_string(value).unwrap_or_default());
        if !rest.starts_with('}') {
            out.push(',');
        }
        out.push_str(rest);
        if let Ok(raw) = RawValue::from_string(out) {
            self.0 = raw;
        }
    }
}

impl From<serde_json::Value> for Body {
    fn from(value: serde_json::Value) -> Body {
        Body::of(&value)
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.get())
    }
}

/// Two bodies are equal when they are the same JSON, whatever the order of keys or the spacing
/// (a body read back from an older ledger row was formatted by Postgres).
impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        self.0.get() == other.0.get() || self.value() == other.value()
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
            body: serde_json::json!({"specversion": "1.0", "id": "m"}).into(),
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
            work.body.value().get("traceparent").is_none(),
            "work bodies stay as their schema says"
        );

        let mut event = message(Exchange::Events);
        event.carry_trace(TP);
        assert_eq!(event.traceparent(), Some(TP));
        assert_eq!(event.body.value()["traceparent"], TP);
        assert_eq!(event.body.value()["specversion"], "1.0", "the other attributes stay");
        // Stored in the ledger and read back, the trace survives.
        let back: Outgoing = serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(back.traceparent(), Some(TP));
        assert_eq!(
            back.body.json(),
            event.body.json(),
            "the ledger keeps the bytes as sent"
        );
    }

    #[test]
    fn an_attribute_is_added_to_any_object_and_replaced_when_there() {
        for (before, after) in [
            (r#"{}"#, serde_json::json!({"traceparent": "t"})),
            (r#" { "a" : 1 } "#, serde_json::json!({"a": 1, "traceparent": "t"})),
            (
                r#"{"traceparent":"old","b":[1,{"traceparent":2}]}"#,
                serde_json::json!({"traceparent": "t", "b": [1, {"traceparent": 2}]}),
            ),
            (r#"{"tr\u0061ceparent":"old"}"#, serde_json::json!({"traceparent": "t"})),
            (
                r#"{"a":"\"quoted\" {"}"#,
                serde_json::json!({"a": "\"quoted\" {", "traceparent": "t"}),
            ),
        ] {
            let mut body = Body(RawValue::from_string(before.to_owned()).unwrap());
            body.set_traceparent("t");
            assert_eq!(body.value(), after, "{before}");
        }
        let mut list = Body::of(&[1, 2]);
        list.set_traceparent("t");
        assert_eq!(list.json(), "[1,2]", "a body that is not an object is left alone");
    }

    proptest::proptest! {
        #[test]
        fn setting_an_attribute_is_inserting_it_into_the_tree(
            keys in proptest::collection::btree_map("[a-z\"\\{}]{0,6}", "[ -~]{0,8}", 0..5),
            value in "[ -~\u{4e00}-\u{4e10}]{0,12}",
        ) {
            let tree = serde_json::to_value(&keys).unwrap();
            let mut body = Body::of(&tree);
            body.set_traceparent(&value);
            let mut expected = tree.clone();
            expected.as_object_mut().unwrap().insert("traceparent".into(), value.clone().into());
            proptest::prop_assert_eq!(body.value(), expected);
        }
    }
}
