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
