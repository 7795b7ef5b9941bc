//! The ticket as the stages see it, and the transition record.

use super::classify::Candidate;
use super::customer::Customer;
use super::state::TicketState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: i64,
    pub number: String,
    pub channel: String,
    pub channel_message_id: String,
    pub customer: Customer,
    pub subject: Option<String>,
    pub body: String,
    pub language: Option<String>,
    pub category: Option<String>,
    pub category_confidence: Option<f64>,
    /// The classifier's two most likely categories, best first (empty before classification).
    #[serde(default)]
    pub category_candidates: Vec<Candidate>,
    /// The classifier was less sure than the policy's `triage_threshold`: routed to the triage
    /// team until a person decides the category (`reclassify`, which clears it).
    #[serde(default)]
    pub needs_triage: bool,
    pub priority: Option<String>,
    pub state: TicketState,
    pub team: Option<String>,
    pub assignee: Option<String>,
    pub sla_rule: Option<String>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub version: i32,
    /// What has happened to the ticket since assignment: the facts its SLA clocks run on.
    #[serde(default)]
    pub life: Progress,
}

/// What happened to a ticket after assignment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Progress {
    pub first_responded_at: Option<DateTime<Utc>>,
    pub last_update_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub sla_restarted_at: Option<DateTime<Utc>>,
    pub resolution: Option<serde_json::Value>,
    pub rating: Option<i16>,
    pub rating_comment: Option<String>,
    pub supervisor: Option<String>,
    /// Deadlines renegotiated by hand (`set_due`), by target name (`first_response`,
    /// `resolution`), replacing the SLA rule's until a reopening.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub due_overrides: std::collections::BTreeMap<String, DateTime<Utc>>,
    /// When each milestone (`plan`, `diagnosis`, `workaround`) was met, by name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub milestones: std::collections::BTreeMap<String, DateTime<Utc>>,
    /// The service record (售后服务记录): set by intake and by agents (`update_record`).
    #[serde(default)]
    pub record: super::record::ServiceRecord,
    /// The customer's confirmation of the result (`confirm`), apart from closing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<super::record::Confirmation>,
}

/// One state change. `seq` equals the ticket's version after the change, so the transition
/// log, the version guard and the event `sequence` all count the same thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub ticket_id: i64,
    pub seq: i32,
    pub from: Option<TicketState>,
    pub to: TicketState,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub reason: String,
    pub policy_version: String,
    pub details: serde_json::Value,
}
