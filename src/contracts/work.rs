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

    /// The work message asking `stage` to take `t` at its current version, ready to publish.
    pub fn for_ticket(t: &crate::core::ticket::Ticket, stage: super::StageName) -> super::Outgoing {
        let msg = WorkMessage {
            ticket_id: t.id,
            number: t.number.clone(),
            version: t.version,
            stage: stage.as_str().to_owned(),
            received_at: t.received_at,
        };
        super::Outgoing {
            exchange: super::Exchange::Work,
            routing_key: stage.as_str().to_owned(),
            message_id: msg.message_id(),
            body: super::Body::of(&msg),
            headers: vec![],
        }
    }
}

/// Asks the assign stage to hand queued tickets of `team` to agents with free capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainMessage {
    pub drain_team: String,
    pub reason: String,
}

impl DrainMessage {
    /// A request to the assign stage to drain `team`'s queue, ready to publish.
    pub fn for_team(team: &str, reason: &str) -> super::Outgoing {
        super::Outgoing {
            exchange: super::Exchange::Work,
            routing_key: super::StageName::Assign.as_str().into(),
            message_id: format!("drain:{}", uuid::Uuid::new_v4()),
            body: super::Body::of(&DrainMessage {
                drain_team: team.to_owned(),
                reason: reason.to_owned(),
            }),
            headers: vec![],
        }
    }
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
