//! What the scheduler publishes when a timer falls due.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A timer's purpose is `<kind>:<target>`: a target's due time passing…
pub const BREACH: &str = "breach";
/// …or the next step of its escalation ladder falling due.
pub const ESCALATE: &str = "escalate";

/// What the scheduler publishes for a fired breach or ladder timer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimerMessage {
    pub timer_id: i64,
    pub ticket_id: i64,
    pub number: String,
    pub purpose: String,
    pub due_at: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

impl TimerMessage {
    pub fn message_id(&self) -> String {
        format!("timer:{}", self.timer_id)
    }
}
