//! What the stages hand each other on the work exchange: a ticket to work on, or a request to
//! drain a team's queue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Hands a ticket to the next stage. The ticket must still be at `version` when it arrives;
/// `message_id()` is deterministic, so a re-publication is recognised downstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkMessage {
    pub ticket_id: i64,
    pub number: String,
    pub version: i32,
    pub stage: String,
    /// When the customer's request was received (for intake→assigned latency).
    pub received_at: DateTime<Utc>,
}

impl WorkMessage {
    pub fn message_id(&self) -> String {
        format!("{}:{}:{}", self.number, self.stage, self.version)
    }
}

/// Asks the assign stage to hand queued tickets of `team` to agents with free capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainMessage {
    pub drain_team: String,
    pub reason: String,
}

/// Anything that arrives on a stage's work queue.
#[derive(Debug, Clone, PartialEq)]
pub enum StageInput {
    Work(WorkMessage),
    Drain(DrainMessage),
}

impl StageInput {
    /// Decodes a work queue message. A body that is neither kind is refused with the reason
    /// it is not a work message, which is what the dead letter shows.
    pub fn decode(raw: &[u8]) -> Result<StageInput, String> {
        match serde_json::from_slice::<WorkMessage>(raw) {
            Ok(w) => Ok(StageInput::Work(w)),
            Err(work_error) => match serde_json::from_slice::<DrainMessage>(raw) {
                Ok(d) => Ok(StageInput::Drain(d)),
                Err(_) => Err(format!("not a work message: {work_error}")),
            },
        }
    }
}
