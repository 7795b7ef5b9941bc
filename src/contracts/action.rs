//! The message on the actions exchange: someone asks for something to be done to a ticket.

use crate::core::actions::Action;
use serde::{Deserialize, Serialize};

/// The message on the actions exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionMessage {
    /// Ticket number.
    pub ticket: String,
    /// Who acts: `agent:<id>`, `customer`, `supervisor:<id>`, `system`.
    pub actor: String,
    pub action: Action,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_decode_from_the_wire_format() {
        let m: ActionMessage = serde_json::from_str(r#"{"ticket":"202611-00001","actor":"agent:a","action":{"kind":"resolve","result":"fixed","root_cause":"cache"}}"#).unwrap();
        assert_eq!(m.action.kind(), "resolve");
        assert!(
            serde_json::from_str::<ActionMessage>(r#"{"ticket":"x","actor":"a","action":{"kind":"explode"}}"#).is_err()
        );
    }
}
