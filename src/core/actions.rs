//! The ticket lifecycle after assignment (SPEC §6): what each action does to a ticket, or why
//! it is refused. Pure: the lifecycle stage and the HTTP API both call `plan` and then write
//! what it says.

use super::calendar::Calendars;
use super::sla::SlaPolicy;
use super::state::TicketState;
use super::ticket::Ticket;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// An action on a ticket, as published on `switchboard.actions` (routing key `action.<kind>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// A reply to the customer; the first one meets the first-response target.
    Respond {
        #[serde(default)]
        message: Option<String>,
    },
    Start,
    WaitForCustomer {
        #[serde(default)]
        reason: Option<String>,
    },
    /// The customer wrote (`message`: the channel's message id). Resumes a ticket waiting for
    /// them, reopens one resolved within the reopen window, and on any other open ticket is a
    /// `customer_messaged` event; refused on a closed ticket or one resolved longer ago.
    CustomerReplied {
        #[serde(default)]
        message: Option<String>,
    },
    Resolve {
        result: String,
        #[serde(default)]
        root_cause: Option<String>,
        #[serde(default)]
        notes: Option<String>,
    },
    Rate {
        score: u8,
        #[serde(default)]
        comment: Option<String>,
        /// Why the customer is unsatisfied: a code of `[lifecycle] unsatisfied_reasons`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Reopen {
        reason: String,
    },
    Close {
        #[serde(default)]
        reason: Option<String>,
    },
    Reassign {
        agent: String,
        #[serde(default)]
        reason: Option<String>,
    },
    AcknowledgeEscalation {
        #[serde(default)]
        note: Option<String>,
    },
    SetPriority {
        priority: String,
        reason: String,
    },
    /// An internal note for colleagues; the customer does not see it and no state changes.
    Note {
        text: String,
    },
    /// An agent takes a ticket from their team's queue.
    Claim,
    /// The ticket goes to another team's queue (unassigned).
    Transfer {
        team: String,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Escalates by hand to the next rung of the ticket's escalation ladder.
    Escalate {
        reason: String,
    },
    /// Corrects the category (recorded as a correction for the classifier). On a ticket flagged
    /// `needs_triage` it is the triage decision: it may confirm the category the classifier
    /// guessed, clears the flag, and sends an open ticket to the team its category routes to.
    Reclassify {
        category: String,
        reason: String,
    },
    /// A deadline renegotiated with the customer (seed 004: an obstacle appears).
    SetDue {
        target: super::sla::Target,
        due: DateTime<Utc>,
        reason: String,
    },
    /// Links another ticket as related.
    Link {
        ticket: String,
        #[serde(default)]
        reason: Option<String>,
    },
    /// This ticket duplicates `into`: it is closed and linked to it.
    Merge {
        into: String,
        #[serde(default)]
        reason: Option<String>,
    },
    /// A file kept elsewhere (object storage, the channel's CDN), recorded by reference.
    Attach {
        name: String,
        #[serde(default)]
        content_type: Option<String>,
        #[serde(default)]
        size: Option<u64>,
        url: String,
    },
    /// A temporary solution told to the customer (`done`: what was done): meets the SLA rule's
    /// `workaround` milestone; the ticket stays open until its final resolution.
    Workaround {
        done: String,
        #[serde(default)]
        note: Option<String>,
    },
    /// A milestone of the ticket's SLA rule delivered to the customer: `plan` (the initial
    /// handling plan) or `diagnosis` (the technical diagnosis), with what was said.
    Milestone {
        name: String,
        #[serde(default)]
        note: Option<String>,
    },
    /// Opens a task for `team` on this ticket (a group ticket for a complex problem,
    /// `core::groups`): a child ticket in that team's queue, linked to this one.
    AddTask {
        team: String,
        summary: String,
    },
    /// Changes the service record (`core::record`): `set` writes the fields it has, `clear`
    /// removes the named ones (`product`, `custom.contract_no`); a transition with before/after.
    UpdateRecord {
        #[serde(default)]
        set: super::record::ServiceRecord,
        #[serde(default)]
        clear: Vec<String>,
    },
    /// The customer confirmed the result (客户签字 / online "已确认"): its own fact, apart from
    /// closing. On a resolved or closed ticket; the state does not change.
    Confirm {
        method: super::record::ConfirmMethod,
        #[serde(default)]
        note: Option<String>,
    },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Respond { .. } => "respond",
            Action::Start => "start",
            Action::WaitForCustomer { .. } => "wait_for_customer",
            Action::CustomerReplied { .. } => "customer_replied",
            Action::Resolve { .. } => "resolve",
            Action::Rate { .. } => "rate",
            Action::Reopen { .. } => "reopen",
            Action::Close { .. } => "close",
            Action::Reassign { .. } => "reassign",
            Action::AcknowledgeEscalation { .. } => "acknowledge_escalation",
            Action::SetPriority { .. } => "set_priority",
            Action::Note { .. } => "note",
            Action::Claim => "claim",
            Action::Transfer { .. } => "transfer",
            Action::Escalate { .. } => "escalate",
            Action::Reclassify { .. } => "reclassify",
            Action::SetDue { .. } => "set_due",
            Action::Link { .. } => "link",
            Action::Merge { .. } => "merge",
            Action::Attach { .. } => "attach",
            Action::Workaround { .. } => "workaround",
            Action::Milestone { .. } => "milestone",
            Action::AddTask { .. } => "add_task",
            Action::UpdateRecord { .. } => "update_record",
            Action::Confirm { .. } => "confirm",
        }
    }

    /// The agent whose load this action changes besides the assignee's (a reassignment's new
    /// agent, a claiming agent): locked with the ticket's assignee, in the one lock order.
    pub fn agent_named<'a>(&'a self, actor: &'a str) -> Option<&'a str> {
        match self {
            Action::Reassign { agent, .. } => Some(agent),
            Action::Claim => actor.strip_prefix("agent:"),
            _ => None,
        }
    }

    /// Whether applying this action can take an agent's slot (`LoadChange::Take` or `Move`). Only
    /// those lock the assignee's row: freeing a slot needs no lock (it is recorded beside the
    /// count, `store::agents::release_slot`), and an action that cannot take one leaves the agent
    /// free for the assign stage and the other lifecycle consumers. Anything not listed here
    /// counts as taking, the safe side.
    pub fn may_take_slot(&self, policy: &LifecyclePolicy) -> bool {
        // A rating reopens the ticket, taking its agent's slot again, only at or below the
        // policy's threshold; above it, it closes a resolved ticket, which holds no slot.
        if let Action::Rate { score, .. } = self {
            return *score <= policy.reopen_rating_at_or_below;
        }
        !matches!(
            self,
            Action::Respond { .. }
                | Action::Start
                | Action::WaitForCustomer { .. }
                | Action::AcknowledgeEscalation { .. }
                | Action::SetPriority { .. }
                | Action::Note { .. }
                | Action::Escalate { .. }
                | Action::SetDue { .. }
                | Action::Link { .. }
                | Action::Attach { .. }
                | Action::Workaround { .. }
                | Action::Milestone { .. }
                | Action::AddTask { .. }
                | Action::UpdateRecord { .. }
                | Action::Confirm { .. }
                | Action::Close { .. }
                // These free the assignee's slot at most.
                | Action::Resolve { .. }
                | Action::Transfer { .. }
                | Action::Merge { .. }
                | Action::Reclassify { .. }
        )
    }

    /// The other ticket a link or merge names: locked with this one, in the one lock order.
    pub fn other_ticket(&self) -> Option<&str> {
        match self {
            Action::Link { ticket, .. } => Some(ticket),
            Action::Merge { into, .. } => Some(into),
            _ => None,
        }
    }

    /// Every kind, in the order a desk shows them.
    pub const KINDS: [&'static str; 25] = [
        "claim",
        "start",
        "respond",
        "note",
        "wait_for_customer",
        "customer_replied",
        "resolve",
        "reopen",
        "close",
        "rate",
        "reassign",
        "transfer",
        "escalate",
        "acknowledge_escalation",
        "set_priority",
        "reclassify",
        "set_due",
        "link",
        "merge",
        "attach",
        "workaround",
        "milestone",
        "add_task",
        "update_record",
        "confirm",
    ];
}

/// Longest free text an action carries (a note, a reason, a reply): bigger belongs in an attachment.
pub const MAX_ACTION_TEXT: usize = 20_000;

/// Settings of the lifecycle from the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecyclePolicy {
    /// A rating at or below this reopens the ticket to its supervisor.
    #[serde(default = "default_threshold")]
    pub reopen_rating_at_or_below: u8,
    /// A resolved ticket not rated within this closes itself.
    #[serde(default = "default_window")]
    pub auto_close_after: super::calendar::SlaDuration,
    /// A customer's message within this of the resolution (wall clock) reopens a resolved
    /// ticket; a later one, or one on a closed ticket, opens a follow-up ticket linked to it.
    #[serde(default = "default_reopen_window")]
    pub reopen_window: super::calendar::SlaDuration,
    /// Why a customer is unsatisfied (code → label): a rating may carry one (`reason`), and the
    /// reports count them (seed 002 §4: 对不满意案例需标注原因并纳入后续复盘).
    #[serde(default)]
    pub unsatisfied_reasons: std::collections::BTreeMap<String, String>,
}

fn default_threshold() -> u8 {
    2
}

fn default_window() -> super::calendar::SlaDuration {
    super::calendar::SlaDuration::from_secs(72 * 3600).unwrap_or_default()
}

fn default_reopen_window() -> super::calendar::SlaDuration {
    super::calendar::SlaDuration::from_secs(7 * 24 * 3600).unwrap_or_default()
}

impl Default for LifecyclePolicy {
    fn default() -> Self {
        LifecyclePolicy {
            reopen_rating_at_or_below: default_threshold(),
            auto_close_after: default_window(),
            reopen_window: default_reopen_window(),
            unsatisfied_reasons: Default::default(),
        }
    }
}

impl LifecyclePolicy {
    /// Whether a customer's message at `now` joins a ticket in `state`, resolved at
    /// `resolved_at`: every open ticket does, a resolved one within the reopen window does
    /// (and is reopened); a closed ticket never does, nor one resolved longer ago, and the
    /// message opens a follow-up ticket instead. Intake threads by this; `plan` applies it.
    pub fn takes_customer_message(
        &self,
        state: TicketState,
        resolved_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> bool {
        match state {
            TicketState::Closed => false,
            TicketState::Resolved => resolved_at
                .and_then(|at| at.checked_add_signed(self.reopen_window.wall_time()))
                .is_none_or(|end| now < end),
            _ => true,
        }
    }
}

/// How an agent's open-ticket count changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum LoadChange {
    None,
    /// The assignee finished: one slot frees (and the team queue may move).
    Free(String),
    /// The assignee takes the ticket back.
    Take(String),
    Move {
        from: Option<String>,
        to: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PauseChange {
    None,
    Start,
    End,
}

/// One recorded step: a transition row and its event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub to: TicketState,
    /// Event name: `responded`, `waiting`, `resolved`, … (routing key `ticket.<event>`).
    pub event: &'static str,
    pub reason: String,
    pub details: Value,
}

/// Everything an action does, for the shell to write.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub load: LoadChange,
    pub pause: PauseChange,
    pub mark_first_response: bool,
    pub mark_update: bool,
    pub resolution: Option<Value>,
    /// Reopened: clear resolved/closed and restart the resolution clock.
    pub reopen: bool,
    pub close: bool,
    pub rating: Option<(i16, Option<String>)>,
    pub assignee: Option<String>,
    pub priority: Option<String>,
    pub supervisor: Option<String>,
    pub acknowledge: bool,
    /// Moved to this team's queue, unassigned.
    pub transfer_to: Option<String>,
    pub category: Option<String>,
    /// The triage decision is made: the ticket no longer `needs_triage`.
    pub triage_decided: bool,
    /// A correction for the classifier: (what it said, what is right, why).
    pub correction: Option<(Option<String>, String, String)>,
    pub due_override: Option<(super::sla::Target, DateTime<Utc>)>,
    /// A link to write: (other ticket's number, kind of link from this ticket).
    pub link: Option<(String, &'static str)>,
    /// A rung climbed by hand: (ladder step index, who it notifies).
    pub escalated: Option<(usize, String)>,
    /// A milestone met now (`workaround`, `milestone`).
    pub milestone: Option<super::sla::Target>,
    /// A task to open on this ticket: (team, summary) (`core::groups`).
    pub task: Option<(String, String)>,
    /// The service record after an `update_record`.
    pub record: Option<super::record::ServiceRecord>,
    /// The customer's confirmation (`confirm`).
    pub confirmation: Option<super::record::Confirmation>,
}

impl Plan {
    /// The ticket after this plan's marks at `now`, before its steps move state and version:
    /// first response, update, resolution, reopening, closing, rating, assignee (with its team,
    /// `assignee_team`, read by the caller), supervisor, and a new priority with the due times
    /// its SLA rule gives from the ticket's receipt.
    pub fn ticket_after(
        &self,
        t: &Ticket,
        now: DateTime<Utc>,
        assignee_team: Option<String>,
        sla: &SlaPolicy,
        calendar: &Calendars,
    ) -> Ticket {
        let mut after = t.clone();
        if self.mark_first_response {
            after.life.first_responded_at = Some(now);
        }
        if self.mark_update {
            after.life.last_update_at = Some(now);
        }
        if let Some(r) = &self.resolution {
            after.life.resolution = Some(r.clone());
            after.life.resolved_at = Some(now);
            // The final resolution delivers every milestone still outstanding (kept through a
            // reopening: milestones are once per ticket).
            let rule = sla.rule_for(
                after.category.as_deref().unwrap_or(""),
                after.priority.as_deref().unwrap_or(""),
                &after.channel,
            );
            for m in rule.map(|r| r.milestone_names()).unwrap_or_default() {
                after.life.milestones.entry(m).or_insert(now);
            }
        }
        if let Some(m) = self.milestone {
            after.life.milestones.entry(m.as_str().to_owned()).or_insert(now);
        }
        if self.reopen {
            after.life.resolved_at = None;
            after.life.closed_at = None;
            after.life.sla_restarted_at = Some(now);
        }
        if self.close {
            after.life.closed_at = Some(now);
        }
        if let Some((score, comment)) = &self.rating {
            after.life.rating = Some(*score);
            after.life.rating_comment = comment.clone();
        }
        if let Some(a) = &self.assignee {
            after.assignee = Some(a.clone());
            if t.state == TicketState::Queued {
                after.assigned_at = Some(now);
            }
            if let Some(team) = assignee_team {
                after.team = Some(team);
            }
        }
        if let Some(s) = &self.supervisor {
            after.life.supervisor = Some(s.clone());
        }
        if let Some(team) = &self.transfer_to {
            after.team = Some(team.clone());
            after.assignee = None;
            after.assigned_at = None;
        }
        if self.reopen {
            after.life.due_overrides.clear();
        }
        if let Some(pr) = &self.priority {
            after.priority = Some(pr.clone());
        }
        if let Some(c) = &self.category {
            after.category = Some(c.clone());
        }
        if self.triage_decided {
            after.needs_triage = false;
        }
        // A new priority re-derives the deadlines; a corrected category does not (the
        // deadline given to the customer stands, and an agent cannot loosen their own clock by
        // reclassifying).
        if self.priority.is_some() {
            let category = after.category.clone().unwrap_or_default();
            let priority = after.priority.clone().unwrap_or_default();
            if let Some(due) = sla.due(calendar, &category, &priority, &after.channel, after.received_at) {
                after.sla_rule = Some(due.rule);
                after.first_response_due = Some(due.first_response_due);
                after.resolution_due = Some(due.resolution_due);
            }
        }
        if let Some(r) = &self.record {
            after.life.record = r.clone();
        }
        if let Some(c) = &self.confirmation {
            after.life.confirmation = Some(c.clone());
        }
        if let Some((target, at)) = self.due_override {
            after.life.due_overrides.insert(target.as_str().to_owned(), at);
        }
        // The stored due times (what the work list sorts by) show an agreed time.
        for (target, at) in &after.life.due_overrides {
            match super::sla::Target::parse(target) {
                Some(super::sla::Target::FirstResponse) => after.first_response_due = Some(*at),
                Some(super::sla::Target::Resolution) => after.resolution_due = Some(*at),
                _ => {}
            }
        }
        after
    }

    fn new() -> Plan {
        Plan {
            steps: Vec::new(),
            load: LoadChange::None,
            pause: PauseChange::None,
            mark_first_response: false,
            mark_update: false,
            resolution: None,
            reopen: false,
            close: false,
            rating: None,
            assignee: None,
            priority: None,
            supervisor: None,
            acknowledge: false,
            transfer_to: None,
            category: None,
            triage_decided: false,
            correction: None,
            due_override: None,
            link: None,
            escalated: None,
            milestone: None,
            task: None,
            record: None,
            confirmation: None,
        }
    }

    fn step(mut self, to: TicketState, event: &'static str, reason: String, details: Value) -> Plan {
        self.steps.push(Step {
            to,
            event,
            reason,
            details,
        });
        self
    }
}

/// Facts beyond the ticket row that decide whether an action is allowed.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub active_escalations: usize,
    pub priority_levels: Vec<String>,
    /// The team's supervisor (from the policy), who takes reopened tickets.
    pub supervisor: Option<String>,
    pub agent_exists: bool,
    /// Teams a ticket may be transferred to.
    pub teams: Vec<String>,
    /// Categories a ticket may be given.
    pub categories: Vec<String>,
    /// The roster agent acting (a claim needs one).
    pub actor_agent: Option<String>,
    /// The next rung of the ticket's ladder: (step index, who it notifies); `None`: no ladder.
    pub next_rung: Option<(usize, String)>,
    /// The other ticket a link or merge names: (number, state); `None`: there is none.
    pub other: Option<(String, TicketState)>,
    /// Where a triage decision sends the ticket: the team the routing rules give it with the
    /// reclassification's category (its priority and channel, no longer needing triage), and the
    /// rule that says so. `None`: not a reclassification of a ticket that needs triage.
    pub triage_route: Option<(String, String)>,
    /// The milestones the ticket's SLA rule declares (`plan`, `diagnosis`, `workaround`).
    pub milestones: Vec<String>,
    /// This ticket's tasks not yet done (numbers): it may not be resolved or merged away.
    pub open_tasks: Vec<String>,
    /// This ticket is itself a task (of the parent named): it takes no tasks of its own.
    pub parent: Option<String>,
    /// The service record's custom fields (`[record]` of the policy).
    pub record: super::record::RecordPolicy,
    /// An `update_record` naming a helper: whether that helper is a roster agent.
    pub helper_exists: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action} is not allowed on ticket {ticket} in state {state}: {why}")]
pub struct Refusal {
    pub action: &'static str,
    pub ticket: String,
    pub state: TicketState,
    pub why: String,
}

/// What `action` does to `t`, or why it may not.
pub fn plan(
    t: &Ticket,
    actor: &str,
    action: &Action,
    ctx: &Context,
    policy: &LifecyclePolicy,
    now: DateTime<Utc>,
) -> Result<Plan, Refusal> {
    use TicketState::*;
    let refuse = |why: &str| Refusal {
        action: action.kind(),
        ticket: t.number.clone(),
        state: t.state,
        why: why.to_owned(),
    };
    let s = t.state;
    let working = matches!(s, Assigned | InProgress | WaitingForCustomer);
    let plan = match action {
        Action::Respond { message } => {
            if !working {
                return Err(refuse(
                    "only an assigned, in-progress or waiting ticket can be answered",
                ));
            }
            let to = if s == Assigned { InProgress } else { s };
            let first = t.life.first_responded_at.is_none();
            let mut p = Plan::new().step(
                to,
                "responded",
                if first {
                    format!("first response by {actor}")
                } else {
                    format!("update to the customer by {actor}")
                },
                json!({ "first_response": first, "message": message }),
            );
            p.mark_first_response = first;
            p.mark_update = true;
            p
        }
        Action::Start => {
            if s != Assigned {
                return Err(refuse("only an assigned ticket can be started"));
            }
            Plan::new().step(InProgress, "started", format!("work started by {actor}"), json!({}))
        }
        Action::WaitForCustomer { reason } => {
            if !matches!(s, Assigned | InProgress) {
                return Err(refuse(
                    "only an assigned or in-progress ticket can wait for the customer",
                ));
            }
            let mut p = Plan::new().step(
                WaitingForCustomer,
                "waiting",
                format!(
                    "waiting for the customer: {}",
                    reason.as_deref().unwrap_or("information requested")
                ),
                json!({ "reason": reason }),
            );
            // Asking the customer is contacting them.
            p.mark_first_response = t.life.first_responded_at.is_none();
            p.mark_update = true;
            p.pause = PauseChange::Start;
            p
        }
        // The customer wrote (intake publishes this for every message threaded onto a ticket).
        Action::CustomerReplied { message } => {
            let which = message
                .as_deref()
                .map(|m| format!(" (message {m})"))
                .unwrap_or_default();
            if !policy.takes_customer_message(s, t.life.resolved_at, now) {
                return Err(refuse(&if s == Closed {
                    "a closed ticket takes no customer message: intake opens a follow-up ticket".to_owned()
                } else {
                    format!(
                        "resolved longer than the reopen window ({}) ago: intake opens a follow-up ticket",
                        policy.reopen_window
                    )
                }));
            }
            match s {
                WaitingForCustomer => {
                    let mut p = Plan::new().step(
                        InProgress,
                        "customer_replied",
                        format!("the customer replied{which}"),
                        json!({ "message": message }),
                    );
                    p.pause = PauseChange::End;
                    p
                }
                Resolved => reopened(
                    t,
                    format!("reopened: the customer wrote again{which}"),
                    json!({ "reason": "the customer wrote again", "message": message }),
                ),
                // Open: nothing changes but the assignee (and whoever watches) hears of it.
                _ => Plan::new().step(
                    s,
                    "customer_messaged",
                    format!("the customer wrote again{which}"),
                    json!({ "message": message }),
                ),
            }
        }
        Action::Resolve {
            result,
            root_cause,
            notes,
        } => {
            if !working {
                return Err(refuse(
                    "only an assigned, in-progress or waiting ticket can be resolved",
                ));
            }
            if result.trim().is_empty() {
                return Err(refuse("a resolution needs a result"));
            }
            if let Some(why) = super::groups::open_tasks_block(&ctx.open_tasks) {
                return Err(refuse(&why));
            }
            let resolution =
                json!({ "result": result, "root_cause": root_cause, "notes": notes, "by": actor, "at": now });
            let mut p = Plan::new().step(
                Resolved,
                "resolved",
                format!("resolved by {actor}: {result}"),
                resolution.clone(),
            );
            p.resolution = Some(resolution);
            p.mark_first_response = t.life.first_responded_at.is_none();
            p.mark_update = true;
            if s == WaitingForCustomer {
                p.pause = PauseChange::End;
            }
            if let Some(a) = &t.assignee {
                p.load = LoadChange::Free(a.clone());
            }
            p
        }
        Action::Rate { score, comment, reason } => {
            if !matches!(s, Resolved | Closed) {
                return Err(refuse("only a resolved or closed ticket can be rated"));
            }
            if !(1..=5).contains(score) {
                return Err(refuse("a rating is 1 to 5"));
            }
            if let Some(r) = reason
                && !policy.unsatisfied_reasons.contains_key(r)
            {
                let known: Vec<&str> = policy.unsatisfied_reasons.keys().map(String::as_str).collect();
                return Err(refuse(&format!(
                    "unknown unsatisfied reason {r:?}: give one of [lifecycle] unsatisfied_reasons ({})",
                    known.join(", ")
                )));
            }
            let details = json!({ "score": score, "comment": comment, "reason": reason });
            let mut p = Plan::new().step(s, "rated", format!("rated {score}/5 by {actor}"), details);
            p.rating = Some((i16::from(*score), comment.clone()));
            if *score <= policy.reopen_rating_at_or_below {
                p = p.step(
                    if t.assignee.is_some() { InProgress } else { Queued },
                    "reopened",
                    format!(
                        "rating {score} is at or below {}: reopened to supervisor {}",
                        policy.reopen_rating_at_or_below,
                        ctx.supervisor.as_deref().unwrap_or("(none configured)")
                    ),
                    json!({ "supervisor": ctx.supervisor, "rating": score }),
                );
                p.reopen = true;
                p.supervisor = ctx.supervisor.clone();
                if let Some(a) = &t.assignee {
                    p.load = LoadChange::Take(a.clone());
                }
            } else if s == Resolved {
                p = p.step(
                    Closed,
                    "closed",
                    format!("closed: the customer rated {score}/5"),
                    json!({ "rating": score }),
                );
                p.close = true;
            }
            p
        }
        Action::Reopen { reason } => {
            if !matches!(s, Resolved | Closed) {
                return Err(refuse("only a resolved or closed ticket can be reopened"));
            }
            reopened(t, format!("reopened by {actor}: {reason}"), json!({ "reason": reason }))
        }
        Action::Close { reason } => {
            if s != Resolved {
                return Err(refuse("only a resolved ticket can be closed; resolve it first"));
            }
            let mut p = Plan::new().step(
                Closed,
                "closed",
                format!(
                    "closed by {actor}: {}",
                    reason.as_deref().unwrap_or("confirmed by the customer")
                ),
                json!({ "reason": reason }),
            );
            p.close = true;
            p
        }
        Action::Reassign { agent, reason } => {
            if !(working || s == Queued) {
                return Err(refuse(
                    "only a queued, assigned, in-progress or waiting ticket can be reassigned",
                ));
            }
            if !ctx.agent_exists {
                return Err(refuse(&format!("there is no agent {agent:?}")));
            }
            if t.assignee.as_deref() == Some(agent.as_str()) {
                return Err(refuse(&format!("the ticket is already assigned to {agent}")));
            }
            let to = if s == Queued { Assigned } else { s };
            let mut p = Plan::new().step(
                to,
                "reassigned",
                format!(
                    "reassigned from {} to {agent} by {actor}: {}",
                    t.assignee.as_deref().unwrap_or("nobody"),
                    reason.as_deref().unwrap_or("by hand")
                ),
                json!({ "from": t.assignee, "to": agent, "reason": reason }),
            );
            p.assignee = Some(agent.clone());
            p.load = LoadChange::Move {
                from: t.assignee.clone(),
                to: agent.clone(),
            };
            p
        }
        Action::AcknowledgeEscalation { note } => {
            if ctx.active_escalations == 0 {
                return Err(refuse("there is no active escalation to acknowledge"));
            }
            let mut p = Plan::new().step(
                s,
                "escalation_acknowledged",
                format!("escalation acknowledged by {actor}"),
                json!({ "note": note }),
            );
            p.acknowledge = true;
            p
        }
        Action::SetPriority { priority, reason } => {
            if s == Closed {
                return Err(refuse("a closed ticket's priority cannot change"));
            }
            if !ctx.priority_levels.contains(priority) {
                return Err(refuse(&format!(
                    "unknown priority {priority:?}; levels: {}",
                    ctx.priority_levels.join(", ")
                )));
            }
            if t.priority.as_deref() == Some(priority.as_str()) {
                return Err(refuse(&format!("the priority is already {priority}")));
            }
            let mut p = Plan::new().step(
                s,
                "reprioritized",
                format!(
                    "priority {} → {priority} by {actor}: {reason}",
                    t.priority.as_deref().unwrap_or("-")
                ),
                json!({ "from": t.priority, "to": priority, "reason": reason }),
            );
            p.priority = Some(priority.clone());
            p
        }
        Action::Note { text } => {
            if text.trim().is_empty() {
                return Err(refuse("a note needs text"));
            }
            if text.len() > MAX_ACTION_TEXT {
                return Err(refuse(&format!(
                    "a note is at most {MAX_ACTION_TEXT} bytes; attach longer documents"
                )));
            }
            Plan::new().step(s, "noted", format!("note by {actor}"), json!({ "text": text }))
        }
        Action::Claim => {
            if s != Queued {
                return Err(refuse("only a queued ticket can be claimed"));
            }
            let Some(agent) = &ctx.actor_agent else {
                return Err(refuse("claiming is for agents: this principal is not a roster agent"));
            };
            let mut p = Plan::new().step(
                Assigned,
                "claimed",
                format!(
                    "claimed from the {} queue by {agent}",
                    t.team.as_deref().unwrap_or("team")
                ),
                json!({ "agent": agent }),
            );
            p.assignee = Some(agent.clone());
            p.load = LoadChange::Move {
                from: None,
                to: agent.clone(),
            };
            p
        }
        Action::Transfer { team, reason } => {
            if !(working || s == Queued) {
                return Err(refuse(
                    "only a queued, assigned, in-progress or waiting ticket can be transferred",
                ));
            }
            if !ctx.teams.contains(team) {
                return Err(refuse(&format!(
                    "there is no team {team:?}; teams: {}",
                    ctx.teams.join(", ")
                )));
            }
            if t.team.as_deref() == Some(team.as_str()) && s == Queued {
                return Err(refuse(&format!("the ticket is already in the {team} queue")));
            }
            transferred(
                Plan::new(),
                t,
                team,
                format!(
                    "transferred from {} to the {team} queue by {actor}: {}",
                    t.team.as_deref().unwrap_or("no team"),
                    reason.as_deref().unwrap_or("by hand")
                ),
                json!({ "from_team": t.team, "to_team": team, "from_agent": t.assignee, "reason": reason }),
            )
        }
        Action::Escalate { reason } => {
            if !(working || s == Queued) {
                return Err(refuse("only an open ticket can be escalated"));
            }
            if reason.trim().is_empty() {
                return Err(refuse("an escalation by hand needs a reason"));
            }
            let Some((step, who)) = &ctx.next_rung else {
                return Err(refuse("the ticket's SLA rule has no escalation ladder"));
            };
            let mut p = Plan::new().step(
                s,
                "escalated",
                format!("escalated by hand to {who} (step {}) by {actor}: {reason}", step + 1),
                json!({ "manual": true, "step": step + 1, "notified": who, "reason": reason }),
            );
            p.escalated = Some((*step, who.clone()));
            p
        }
        Action::Reclassify { category, reason } => {
            if matches!(s, Received | Classified | Closed) {
                return Err(refuse(
                    "only a ticket past classification and not closed can be reclassified",
                ));
            }
            if !ctx.categories.contains(category) {
                return Err(refuse(&format!(
                    "unknown category {category:?}; categories: {}",
                    ctx.categories.join(", ")
                )));
            }
            // Confirming the classifier's guess is a triage decision too (recorded with
            // from == to); otherwise the category must change.
            let confirmed = t.category.as_deref() == Some(category.as_str());
            if confirmed && !t.needs_triage {
                return Err(refuse(&format!("the category is already {category}")));
            }
            if reason.trim().is_empty() {
                return Err(refuse("a reclassification needs a reason"));
            }
            let said = if t.needs_triage {
                if confirmed {
                    format!("triage: category {category} confirmed by {actor}: {reason}")
                } else {
                    format!(
                        "triage: category {} → {category} by {actor}: {reason}",
                        t.category.as_deref().unwrap_or("-")
                    )
                }
            } else {
                format!(
                    "category {} → {category} by {actor}: {reason}",
                    t.category.as_deref().unwrap_or("-")
                )
            };
            let mut p = Plan::new().step(
                s,
                "reclassified",
                said,
                json!({ "from": t.category, "to": category, "reason": reason, "triage": t.needs_triage }),
            );
            p.category = Some(category.clone());
            p.correction = Some((t.category.clone(), category.clone(), reason.clone()));
            if t.needs_triage {
                p.triage_decided = true;
                // An open ticket goes where its decided category routes: that team's queue,
                // unassigned, for the normal assignment. One not yet assigned is routed by the
                // assign stage, now without the flag; a resolved one stays where it is.
                if let Some((team, rule)) = ctx.triage_route.as_ref().filter(|_| working || s == Queued)
                    && t.team.as_deref() != Some(team.as_str())
                {
                    p = transferred(
                        p,
                        t,
                        team,
                        format!(
                            "triage decided ({category}): transferred from {} to the {team} queue by {actor} ({rule})",
                            t.team.as_deref().unwrap_or("no team"),
                        ),
                        json!({
                            "from_team": t.team, "to_team": team, "from_agent": t.assignee,
                            "reason": format!("triage: {category}"), "routing": rule,
                        }),
                    );
                }
            }
            p
        }
        Action::SetDue { target, due, reason } => {
            if !(working || s == Queued) {
                return Err(refuse("only an open ticket's deadline can be changed"));
            }
            if *target == super::sla::Target::NextUpdate || target.is_milestone() {
                return Err(refuse(
                    "the next-update clock restarts with every update; set first_response or resolution",
                ));
            }
            if *target == super::sla::Target::FirstResponse && t.life.first_responded_at.is_some() {
                return Err(refuse("the first response was already given"));
            }
            if *due <= now {
                return Err(refuse("a new deadline must be in the future"));
            }
            if reason.trim().is_empty() {
                return Err(refuse("a changed deadline needs a reason"));
            }
            let mut p = Plan::new().step(
                s,
                "due_changed",
                format!("{} due {} by {actor}: {reason}", target.as_str(), due.to_rfc3339()),
                json!({ "target": target, "due": due, "reason": reason }),
            );
            p.due_override = Some((*target, *due));
            p
        }
        Action::Link { ticket, reason } => {
            let Some((other, _)) = &ctx.other else {
                return Err(refuse(&format!("there is no ticket {ticket:?}")));
            };
            if other == &t.number {
                return Err(refuse("a ticket cannot be linked to itself"));
            }
            let mut p = Plan::new().step(
                s,
                "linked",
                format!("linked to {other} by {actor}"),
                json!({ "ticket": other, "reason": reason }),
            );
            p.link = Some((other.clone(), "related"));
            p
        }
        Action::Merge { into, reason } => {
            if !(working || s == Queued) {
                return Err(refuse("only an open ticket can be merged into another"));
            }
            let Some((other, other_state)) = &ctx.other else {
                return Err(refuse(&format!("there is no ticket {into:?}")));
            };
            if other == &t.number {
                return Err(refuse("a ticket cannot be merged into itself"));
            }
            if *other_state == Closed {
                return Err(refuse(&format!("{other} is closed: merge into an open ticket")));
            }
            if let Some(why) = super::groups::open_tasks_block(&ctx.open_tasks) {
                return Err(refuse(&why));
            }
            // Closed, not resolved: a duplicate is not a solved problem (reports count
            // resolutions), and its SLA clocks stop with the closing.
            let mut p = Plan::new().step(
                Closed,
                "merged",
                format!("duplicate of {other}, merged by {actor}"),
                json!({ "into": other, "reason": reason }),
            );
            p.close = true;
            p.link = Some((other.clone(), "duplicate_of"));
            if let Some(a) = t.assignee.as_ref().filter(|_| s != Queued) {
                p.load = LoadChange::Free(a.clone());
            }
            if s == WaitingForCustomer {
                p.pause = PauseChange::End;
            }
            p
        }
        Action::Attach {
            name,
            content_type,
            size,
            url,
        } => {
            if name.trim().is_empty() {
                return Err(refuse("an attachment needs a name"));
            }
            if !valid_reference(url) {
                return Err(refuse(
                    "an attachment's url must be an absolute URI (https://…, s3://…) of at most 2000 characters",
                ));
            }
            Plan::new().step(
                s,
                "attached",
                format!("{name} attached by {actor}"),
                json!({ "name": name, "content_type": content_type, "size": size, "url": url }),
            )
        }
        Action::Workaround { done, note } => {
            if !working {
                return Err(refuse(
                    "only an assigned, in-progress or waiting ticket can be given a workaround",
                ));
            }
            if done.trim().is_empty() {
                return Err(refuse("a workaround needs `done`: what was done for the customer"));
            }
            if done.len() + note.as_deref().map_or(0, str::len) > MAX_ACTION_TEXT {
                return Err(refuse(&format!(
                    "a workaround is at most {MAX_ACTION_TEXT} bytes; attach longer documents"
                )));
            }
            let target = super::sla::Target::Workaround;
            let milestone = ctx.milestones.iter().any(|m| m == target.as_str());
            let mut p = Plan::new().step(
                if s == Assigned { InProgress } else { s },
                "workaround_provided",
                format!("temporary solution by {actor}: {done}"),
                json!({ "done": done, "note": note, "milestone": milestone.then_some(target.as_str()) }),
            );
            // Telling the customer is an update; the ticket stays open for its final resolution.
            p.mark_first_response = t.life.first_responded_at.is_none();
            p.mark_update = true;
            p.milestone = Some(target);
            p
        }
        Action::Milestone { name, note } => {
            if !working {
                return Err(refuse(
                    "only an assigned, in-progress or waiting ticket can record a milestone",
                ));
            }
            let target = super::sla::Target::parse(name).filter(|t| t.is_milestone());
            let Some(target) = target.filter(|t| ctx.milestones.iter().any(|m| m == t.as_str())) else {
                return Err(refuse(&if ctx.milestones.is_empty() {
                    format!("the ticket's SLA rule declares no milestones, so {name:?} is none")
                } else {
                    format!(
                        "{name:?} is not a milestone of the ticket's SLA rule; it has: {}",
                        ctx.milestones.join(", ")
                    )
                }));
            };
            if target == super::sla::Target::Workaround {
                return Err(refuse(
                    "a workaround is recorded with the workaround action (say what was done)",
                ));
            }
            if let Some(at) = t.life.milestones.get(target.as_str()) {
                return Err(refuse(&format!(
                    "milestone {name} was already met at {}",
                    at.to_rfc3339()
                )));
            }
            if note.as_deref().map_or(0, str::len) > MAX_ACTION_TEXT {
                return Err(refuse(&format!(
                    "a milestone note is at most {MAX_ACTION_TEXT} bytes; attach longer documents"
                )));
            }
            let mut p = Plan::new().step(
                if s == Assigned { InProgress } else { s },
                "milestone_met",
                format!("milestone {name} met by {actor}"),
                json!({ "milestone": target.as_str(), "note": note }),
            );
            p.mark_first_response = t.life.first_responded_at.is_none();
            p.mark_update = true;
            p.milestone = Some(target);
            p
        }
        Action::AddTask { team, summary } => {
            if !working {
                return Err(refuse("only an assigned, in-progress or waiting ticket can take tasks"));
            }
            if let Some(parent) = &ctx.parent {
                return Err(refuse(&format!(
                    "a task takes no tasks of its own: add the task to its parent {parent}"
                )));
            }
            if !ctx.teams.contains(team) {
                return Err(refuse(&format!(
                    "there is no team {team:?}; teams: {}",
                    ctx.teams.join(", ")
                )));
            }
            if summary.trim().is_empty() {
                return Err(refuse("a task needs a summary of what the team is to do"));
            }
            if summary.len() > MAX_ACTION_TEXT {
                return Err(refuse(&format!(
                    "a task's summary is at most {MAX_ACTION_TEXT} bytes; attach longer documents"
                )));
            }
            // The task's number is the shell's to give: it adds it to the details.
            let mut p = Plan::new().step(
                s,
                "task_added",
                // The summary stays in the details: events leave it out, like a note's text.
                format!("task for the {team} queue added by {actor}"),
                json!({ "team": team, "summary": summary }),
            );
            p.task = Some((team.clone(), summary.clone()));
            p
        }
        Action::UpdateRecord { set, clear } => {
            let fail = |e: super::record::RecordError| refuse(&e.to_string());
            if clear.len() > super::record::FIELDS.len() + super::record::MAX_CUSTOM_FIELDS {
                return Err(refuse("`clear` names more fields than a record has"));
            }
            let (after, changed) = t.life.record.merged(set, clear).map_err(fail)?;
            after.validate(&ctx.record).map_err(fail)?;
            if changed.is_empty() {
                return Err(refuse("nothing to change: every field given already has that value"));
            }
            if changed.iter().any(|f| f == "helper") {
                // The helper works beside the owner; choosing them is the owner's or a supervisor's.
                if t.life.record.helper.is_some() && t.life.record.helper.as_deref() == actor.strip_prefix("agent:") {
                    return Err(refuse(
                        "the helper cannot name or remove the helper: the assignee or a supervisor does",
                    ));
                }
                if let Some(h) = &after.helper {
                    if !ctx.helper_exists {
                        return Err(refuse(&format!("there is no agent {h:?} to help")));
                    }
                    if t.assignee.as_deref() == Some(h.as_str()) {
                        return Err(refuse(&format!("{h} owns the ticket and cannot also be its helper")));
                    }
                }
            }
            let pick = |r: &super::record::ServiceRecord| {
                let v = serde_json::to_value(r).unwrap_or_default();
                let mut out = serde_json::Map::new();
                for f in &changed {
                    let got = match f.strip_prefix("custom.") {
                        Some(c) => v.get("custom").and_then(|m| m.get(c)),
                        None => v.get(f.as_str()),
                    };
                    out.insert(f.clone(), got.cloned().unwrap_or(Value::Null));
                }
                Value::Object(out)
            };
            let mut p = Plan::new().step(
                s,
                "record_updated",
                format!("record updated by {actor}: {}", changed.join(", ")),
                json!({ "fields": changed, "before": pick(&t.life.record), "after": pick(&after) }),
            );
            p.record = Some(after);
            p
        }
        Action::Confirm { method, note } => {
            if !matches!(s, Resolved | Closed) {
                return Err(refuse("the customer confirms a result: resolve the ticket first"));
            }
            if let Some(c) = &t.life.confirmation {
                return Err(refuse(&format!(
                    "already confirmed ({:?}) at {} by {}",
                    c.method,
                    c.at.to_rfc3339(),
                    c.by
                )));
            }
            // An integration speaks for the customer online; a signature or a phone call is
            // recorded by the staff who saw or heard it.
            if actor.starts_with("customer:") && *method != super::record::ConfirmMethod::Online {
                return Err(refuse("a customer's own confirmation is `online`"));
            }
            if note.as_ref().is_some_and(|n| n.len() > MAX_ACTION_TEXT) {
                return Err(refuse(&format!("a note is at most {MAX_ACTION_TEXT} bytes")));
            }
            let mut p = Plan::new().step(
                s,
                "confirmed",
                format!("the customer confirmed the result ({method:?}), recorded by {actor}"),
                json!({ "method": method, "note": note }),
            );
            p.confirmation = Some(super::record::Confirmation {
                at: now,
                method: *method,
                by: actor.to_owned(),
                note: note.clone(),
            });
            p
        }
    };
    // A state change must be one the state machine allows; same-state steps record events.
    let mut from = s;
    for step in &plan.steps {
        if step.to != from && !from.can_become(step.to) {
            return Err(refuse(&format!("{from} cannot become {}", step.to)));
        }
        from = step.to;
    }
    Ok(plan)
}

/// `p` and then the ticket to `team`'s queue, unassigned: the assignee's slot frees and a wait
/// for the customer ends (a transfer, a triage decision).
fn transferred(p: Plan, t: &Ticket, team: &str, reason: String, details: Value) -> Plan {
    let mut p = p.step(TicketState::Queued, "transferred", reason, details);
    p.transfer_to = Some(team.to_owned());
    if let Some(a) = t.assignee.as_ref().filter(|_| t.state != TicketState::Queued) {
        p.load = LoadChange::Free(a.clone());
    }
    if t.state == TicketState::WaitingForCustomer {
        p.pause = PauseChange::End;
    }
    p
}

/// A resolved or closed ticket reopened: back to its assignee, who takes the load back, or to
/// the queue when nobody holds it (a duplicate merged from the queue); the resolution clock
/// restarts, and the auto-close timer goes with the resolved state.
fn reopened(t: &Ticket, reason: String, details: Value) -> Plan {
    let to = if t.assignee.is_some() {
        TicketState::InProgress
    } else {
        TicketState::Queued
    };
    let mut p = Plan::new().step(to, "reopened", reason, details);
    p.reopen = true;
    if let Some(a) = &t.assignee {
        p.load = LoadChange::Take(a.clone());
    }
    p
}

/// Whether an action of `kind` can apply to a ticket in `state` (`active_escalations`: one is
/// waiting for acknowledgement): what a desk offers. The plan has the last word.
pub fn kind_possible(kind: &str, state: TicketState, active_escalations: bool) -> bool {
    use TicketState::*;
    let working = matches!(state, Assigned | InProgress | WaitingForCustomer);
    let open = working || state == Queued;
    match kind {
        "claim" => state == Queued,
        "start" => state == Assigned,
        "respond" | "resolve" | "workaround" | "milestone" => working,
        "wait_for_customer" => matches!(state, Assigned | InProgress),
        // Whether a resolved ticket is still within the reopen window is the plan's to say.
        "customer_replied" => state != Closed,
        "reopen" | "rate" => matches!(state, Resolved | Closed),
        "close" => state == Resolved,
        "reassign" | "transfer" | "escalate" | "set_due" | "merge" => open,
        "acknowledge_escalation" => active_escalations,
        "set_priority" => state != Closed,
        "reclassify" => !matches!(state, Received | Classified | Closed),
        "add_task" => working,
        "note" | "link" | "attach" | "update_record" => true,
        "confirm" => matches!(state, Resolved | Closed),
        _ => false,
    }
}

/// A storage reference: `scheme:` then something, no spaces or control characters. Not
/// `javascript:` or `data:`: a desk renders it as a link.
fn valid_reference(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once(':') else {
        return false;
    };
    url.len() <= 2000
        && !rest.is_empty()
        && scheme.len() >= 2
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !matches!(
            scheme.to_ascii_lowercase().as_str(),
            "javascript" | "data" | "vbscript" | "file"
        )
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::customer::Customer;
    use proptest::prelude::*;

    fn ticket(state: TicketState) -> Ticket {
        Ticket {
            id: 1,
            number: "202611-00001".into(),
            channel: "chat".into(),
            channel_message_id: "m".into(),
            customer: Customer::default(),
            subject: None,
            body: "b".into(),
            language: None,
            category: Some("fault".into()),
            category_confidence: None,
            category_candidates: Vec::new(),
            needs_triage: false,
            priority: Some("normal".into()),
            state,
            team: Some("technical_support".into()),
            assignee: Some("ts-1".into()),
            sla_rule: None,
            first_response_due: None,
            resolution_due: None,
            received_at: Utc::now(),
            assigned_at: None,
            version: 4,
            life: Default::default(),
        }
    }

    const ACTOR: &str = "agent:ts-1";

    fn ctx() -> Context {
        Context {
            active_escalations: 0,
            priority_levels: vec!["urgent".into(), "normal".into(), "low".into()],
            supervisor: Some("sup".into()),
            agent_exists: true,
            teams: vec!["technical_support".into(), "billing".into()],
            categories: vec!["fault".into(), "complaint".into()],
            actor_agent: Some("ts-2".into()),
            next_rung: Some((0, "sup".into())),
            other: Some(("202611-00002".into(), TicketState::InProgress)),
            triage_route: None,
            milestones: vec!["diagnosis".into(), "workaround".into()],
            open_tasks: Vec::new(),
            parent: None,
            record: Default::default(),
            helper_exists: true,
        }
    }

    #[test]
    fn a_workaround_meets_its_milestone_and_does_not_resolve() {
        let p = act(
            TicketState::InProgress,
            Action::Workaround {
                done: "restarted the gateway".into(),
                note: None,
            },
        )
        .unwrap();
        assert_eq!(p.steps[0].event, "workaround_provided");
        assert_eq!(p.steps[0].to, TicketState::InProgress);
        assert_eq!(p.milestone, Some(crate::core::sla::Target::Workaround));
        assert!(p.resolution.is_none() && p.mark_update && p.load == LoadChange::None);
        let now = ticket(TicketState::InProgress).received_at + chrono::Duration::hours(1);
        let after = p.ticket_after(
            &ticket(TicketState::InProgress),
            now,
            None,
            &real().doc.sla,
            real().calendar(),
        );
        assert_eq!(after.life.milestones.get("workaround"), Some(&now));
        assert!(after.life.resolved_at.is_none());
        // Nothing done is no workaround; a queued or resolved ticket takes none.
        assert!(
            act(
                TicketState::InProgress,
                Action::Workaround {
                    done: " ".into(),
                    note: None
                }
            )
            .is_err()
        );
        for s in [TicketState::Queued, TicketState::Resolved, TicketState::Closed] {
            assert!(
                act(
                    s,
                    Action::Workaround {
                        done: "x".into(),
                        note: None
                    }
                )
                .is_err(),
                "{s}"
            );
        }
    }

    #[test]
    fn a_milestone_is_recorded_only_if_the_rule_declares_it_and_only_once() {
        let m = |name: &str| Action::Milestone {
            name: name.into(),
            note: Some("told the customer".into()),
        };
        let p = act(TicketState::Assigned, m("diagnosis")).unwrap();
        assert_eq!(
            (p.steps[0].event, p.steps[0].to, p.milestone),
            (
                "milestone_met",
                TicketState::InProgress,
                Some(crate::core::sla::Target::Diagnosis)
            )
        );
        assert!(p.mark_first_response && p.resolution.is_none());
        // Not this rule's, not a milestone, the workaround has its own action.
        let e = act(TicketState::InProgress, m("plan")).unwrap_err();
        assert!(e.why.contains("diagnosis, workaround"), "{e}");
        assert!(act(TicketState::InProgress, m("resolution")).is_err());
        assert!(act(TicketState::InProgress, m("workaround")).is_err());
        let none = Context {
            milestones: vec![],
            ..ctx()
        };
        assert!(act_in(TicketState::InProgress, &m("diagnosis"), &none).is_err());
        let mut done = ticket(TicketState::InProgress);
        done.life.milestones.insert("diagnosis".into(), done.received_at);
        let e = plan(
            &done,
            ACTOR,
            &m("diagnosis"),
            &ctx(),
            &LifecyclePolicy::default(),
            done.received_at,
        )
        .unwrap_err();
        assert!(e.why.contains("already met"), "{e}");
        // A milestone's deadline is the policy's: set_due does not move it.
        let set = Action::SetDue {
            target: crate::core::sla::Target::Plan,
            due: done.received_at + chrono::Duration::days(1),
            reason: "r".into(),
        };
        assert!(act(TicketState::InProgress, set).is_err());
    }

    #[test]
    fn the_resolution_meets_the_outstanding_milestones_of_the_rule() {
        let mut t = ticket(TicketState::InProgress);
        t.category = Some("complaint".into());
        t.priority = Some("normal".into());
        let now = t.received_at + chrono::Duration::hours(5);
        let p = plan(
            &t,
            ACTOR,
            &Action::Resolve {
                result: "refunded".into(),
                root_cause: None,
                notes: None,
            },
            &ctx(),
            &LifecyclePolicy::default(),
            now,
        )
        .unwrap();
        let after = p.ticket_after(&t, now, None, &real().doc.sla, real().calendar());
        assert_eq!(after.life.milestones.get("plan"), Some(&now));
    }

    fn real() -> &'static crate::core::policy::Policy {
        static POLICY: std::sync::OnceLock<crate::core::policy::Policy> = std::sync::OnceLock::new();
        POLICY.get_or_init(|| {
            crate::core::policy::Policy::load(
                &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/policy.toml"),
            )
            .unwrap()
        })
    }

    fn act(state: TicketState, action: Action) -> Result<Plan, Refusal> {
        act_in(state, &action, &ctx())
    }

    /// `action` on the test ticket in `state`, with `ctx`.
    fn act_in(state: TicketState, action: &Action, ctx: &Context) -> Result<Plan, Refusal> {
        plan(
            &ticket(state),
            ACTOR,
            action,
            ctx,
            &LifecyclePolicy::default(),
            Utc::now(),
        )
    }

    #[test]
    fn a_claim_takes_a_queued_ticket_for_the_claiming_agent() {
        let mut t = ticket(TicketState::Queued);
        t.assignee = None;
        let p = plan(
            &t,
            ACTOR,
            &Action::Claim,
            &ctx(),
            &LifecyclePolicy::default(),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(p.steps[0].to, TicketState::Assigned);
        assert_eq!(p.assignee.as_deref(), Some("ts-2"));
        assert_eq!(
            p.load,
            LoadChange::Move {
                from: None,
                to: "ts-2".into()
            }
        );
        assert!(act(TicketState::Assigned, Action::Claim).is_err());
        let no_agent = Context {
            actor_agent: None,
            ..ctx()
        };
        assert!(
            plan(
                &t,
                "supervisor:x",
                &Action::Claim,
                &no_agent,
                &LifecyclePolicy::default(),
                Utc::now()
            )
            .is_err()
        );
    }

    #[test]
    fn a_transfer_queues_the_ticket_for_the_other_team_and_frees_the_agent() {
        let transfer = |team: &str| Action::Transfer {
            team: team.into(),
            reason: Some("billing question".into()),
        };
        let p = act(TicketState::InProgress, transfer("billing")).unwrap();
        assert_eq!(p.steps[0].to, TicketState::Queued);
        assert_eq!(p.load, LoadChange::Free("ts-1".into()));
        let after = p.ticket_after(
            &ticket(TicketState::InProgress),
            Utc::now(),
            None,
            &real().doc.sla,
            real().calendar(),
        );
        assert_eq!((after.team.as_deref(), after.assignee), (Some("billing"), None));
        assert!(act(TicketState::InProgress, transfer("nowhere")).is_err());
        assert!(act(TicketState::Resolved, transfer("billing")).is_err());
        assert_eq!(
            act(TicketState::WaitingForCustomer, transfer("billing")).unwrap().pause,
            PauseChange::End
        );
    }

    #[test]
    fn a_merge_closes_the_duplicate_and_links_it() {
        let merge = Action::Merge {
            into: "202611-00002".into(),
            reason: None,
        };
        for s in [
            TicketState::Queued,
            TicketState::Assigned,
            TicketState::InProgress,
            TicketState::WaitingForCustomer,
        ] {
            let p = act(s, merge.clone()).unwrap();
            assert_eq!(p.steps.last().unwrap().to, TicketState::Closed, "{s}");
            assert_eq!(p.link, Some(("202611-00002".into(), "duplicate_of")));
            assert!(p.close);
        }
        let closed_other = Context {
            other: Some(("202611-00002".into(), TicketState::Closed)),
            ..ctx()
        };
        assert!(act_in(TicketState::Assigned, &merge, &closed_other).is_err());
        let missing = Context { other: None, ..ctx() };
        assert!(act_in(TicketState::Assigned, &merge, &missing).is_err());
        let itself = Context {
            other: Some(("202611-00001".into(), TicketState::Assigned)),
            ..ctx()
        };
        assert!(act_in(TicketState::Assigned, &merge, &itself).is_err());
    }

    #[test]
    fn a_renegotiated_deadline_replaces_the_rule_until_reopened() {
        let due = Utc::now() + chrono::Duration::hours(30);
        let set = Action::SetDue {
            target: crate::core::sla::Target::Resolution,
            due,
            reason: "part on order".into(),
        };
        let t = ticket(TicketState::InProgress);
        let p = act(TicketState::InProgress, set.clone()).unwrap();
        let after = p.ticket_after(&t, Utc::now(), None, &real().doc.sla, real().calendar());
        assert_eq!(after.resolution_due, Some(due));
        assert_eq!(after.life.due_overrides.get("resolution"), Some(&due));
        let past = Action::SetDue {
            target: crate::core::sla::Target::Resolution,
            due: Utc::now() - chrono::Duration::hours(1),
            reason: "x".into(),
        };
        assert!(act(TicketState::InProgress, past).is_err());
        let no_reason = Action::SetDue {
            target: crate::core::sla::Target::Resolution,
            due,
            reason: " ".into(),
        };
        assert!(act(TicketState::InProgress, no_reason).is_err());
        let mut reopened = after.clone();
        reopened.state = TicketState::Resolved;
        let p = plan(
            &reopened,
            ACTOR,
            &Action::Reopen { reason: "again".into() },
            &ctx(),
            &LifecyclePolicy::default(),
            Utc::now(),
        )
        .unwrap();
        assert!(
            p.ticket_after(&reopened, Utc::now(), None, &real().doc.sla, real().calendar())
                .life
                .due_overrides
                .is_empty()
        );
    }

    #[test]
    fn a_reclassification_is_recorded_as_a_correction() {
        let p = act(
            TicketState::Assigned,
            Action::Reclassify {
                category: "complaint".into(),
                reason: "charged twice".into(),
            },
        )
        .unwrap();
        assert_eq!(
            p.correction,
            Some((Some("fault".into()), "complaint".into(), "charged twice".into()))
        );
        assert!(
            act(
                TicketState::Assigned,
                Action::Reclassify {
                    category: "fault".into(),
                    reason: "x".into()
                }
            )
            .is_err()
        );
        assert!(
            act(
                TicketState::Assigned,
                Action::Reclassify {
                    category: "weather".into(),
                    reason: "x".into()
                }
            )
            .is_err()
        );
    }

    /// A ticket the classifier was unsure of, waiting in (or taken from) the triage queue.
    fn unsure(state: TicketState) -> Ticket {
        let mut t = ticket(state);
        t.needs_triage = true;
        t.team = Some("triage".into());
        t.assignee = (state != TicketState::Queued).then(|| "tg-1".into());
        t
    }

    /// The triage decision `category` on `t`, the routing rules sending it to `to`.
    fn decide(t: &Ticket, category: &str, to: &str) -> Result<Plan, Refusal> {
        let ctx = Context {
            triage_route: Some((to.into(), format!("routing rule #3 (category={category}) → {to}"))),
            ..ctx()
        };
        plan(
            t,
            "agent:tg-1",
            &Action::Reclassify {
                category: category.into(),
                reason: format!("triage: chose {category}"),
            },
            &ctx,
            &LifecyclePolicy::default(),
            Utc::now(),
        )
    }

    #[test]
    fn a_triage_decision_clears_the_flag_records_the_correction_and_moves_the_ticket_to_its_team() {
        let t = unsure(TicketState::Assigned);
        let p = decide(&t, "complaint", "customer_relations").unwrap();
        assert!(p.triage_decided);
        assert_eq!(
            p.correction,
            Some((
                Some("fault".into()),
                "complaint".into(),
                "triage: chose complaint".into()
            ))
        );
        let events: Vec<(&str, TicketState)> = p.steps.iter().map(|s| (s.event, s.to)).collect();
        assert_eq!(
            events,
            vec![
                ("reclassified", TicketState::Assigned),
                ("transferred", TicketState::Queued)
            ]
        );
        assert!(
            p.steps[1].reason.contains("customer_relations"),
            "{}",
            p.steps[1].reason
        );
        assert_eq!(
            p.steps[1].details["routing"],
            "routing rule #3 (category=complaint) → customer_relations"
        );
        assert_eq!(p.load, LoadChange::Free("tg-1".into()), "the triage agent's slot frees");
        let after = p.ticket_after(&t, Utc::now(), None, &real().doc.sla, real().calendar());
        assert!(!after.needs_triage);
        assert_eq!(after.category.as_deref(), Some("complaint"));
        assert_eq!(
            (after.team.as_deref(), after.assignee.as_deref()),
            (Some("customer_relations"), None)
        );
        assert_eq!(after.assigned_at, None);
    }

    #[test]
    fn confirming_the_guess_is_a_triage_decision_but_not_otherwise() {
        // Waiting unassigned in the triage queue: confirmed, recorded with from == to, moved on.
        let t = unsure(TicketState::Queued);
        let p = decide(&t, "fault", "technical_support").unwrap();
        assert_eq!(
            p.correction,
            Some((Some("fault".into()), "fault".into(), "triage: chose fault".into()))
        );
        assert!(p.steps[0].reason.contains("confirmed"), "{}", p.steps[0].reason);
        assert_eq!(
            p.steps.last().map(|s| (s.event, s.to)),
            Some(("transferred", TicketState::Queued))
        );
        assert_eq!(p.load, LoadChange::None, "a queued ticket held no slot");
        let after = p.ticket_after(&t, Utc::now(), None, &real().doc.sla, real().calendar());
        assert_eq!(after.team.as_deref(), Some("technical_support"));
        assert!(!after.needs_triage);
        // A ticket nobody flagged: confirming is no correction.
        let mut plain = t.clone();
        plain.needs_triage = false;
        let refused = decide(&plain, "fault", "technical_support").unwrap_err();
        assert!(refused.why.contains("already fault"), "{}", refused.why);
        // Nor is a flagged ticket's decision without a reason, or to an unknown category.
        let no_reason = plan(
            &t,
            "agent:tg-1",
            &Action::Reclassify {
                category: "fault".into(),
                reason: " ".into(),
            },
            &ctx(),
            &LifecyclePolicy::default(),
            Utc::now(),
        );
        assert!(no_reason.is_err());
        assert!(decide(&t, "weather", "front_line").is_err());
    }

    #[test]
    fn a_triage_decision_moves_only_an_open_ticket_that_is_elsewhere() {
        // Already with the team its category routes to (urgent: the green channel): it stays.
        let mut urgent = unsure(TicketState::InProgress);
        urgent.team = Some("green_channel".into());
        let p = decide(&urgent, "complaint", "green_channel").unwrap();
        assert_eq!(p.steps.len(), 1);
        assert!(p.triage_decided && p.transfer_to.is_none() && p.load == LoadChange::None);
        // Not yet assigned: the assign stage routes it, now without the flag.
        let p = decide(&unsure(TicketState::Prioritized), "complaint", "customer_relations").unwrap();
        assert_eq!(p.steps.len(), 1);
        assert!(p.triage_decided && p.transfer_to.is_none());
        // Resolved by the triage agent: the decision is recorded, the ticket stays.
        let p = decide(&unsure(TicketState::Resolved), "complaint", "customer_relations").unwrap();
        assert_eq!(p.steps.len(), 1);
        assert!(p.triage_decided && p.transfer_to.is_none() && p.load == LoadChange::None);
        // Waiting for the customer: the wait ends with the move (the clock runs again).
        let p = decide(
            &unsure(TicketState::WaitingForCustomer),
            "complaint",
            "customer_relations",
        )
        .unwrap();
        assert_eq!(p.pause, PauseChange::End);
        assert_eq!(p.steps.last().map(|s| s.to), Some(TicketState::Queued));
        // Closed: no decision any more.
        assert!(decide(&unsure(TicketState::Closed), "complaint", "customer_relations").is_err());
    }

    #[test]
    fn an_escalation_by_hand_climbs_to_the_next_rung_and_notes_and_attachments_change_no_state() {
        let p = act(
            TicketState::InProgress,
            Action::Escalate {
                reason: "customer threatens to leave".into(),
            },
        )
        .unwrap();
        assert_eq!(p.escalated, Some((0, "sup".into())));
        let none = Context {
            next_rung: None,
            ..ctx()
        };
        assert!(act_in(TicketState::InProgress, &Action::Escalate { reason: "x".into() }, &none).is_err());
        let n = act(
            TicketState::Closed,
            Action::Note {
                text: "called back".into(),
            },
        )
        .unwrap();
        assert_eq!(n.steps[0].to, TicketState::Closed);
        let ok = Action::Attach {
            name: "photo.jpg".into(),
            content_type: None,
            size: Some(10),
            url: "s3://bucket/k".into(),
        };
        assert!(act(TicketState::InProgress, ok).is_ok());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "no-scheme",
            "https://a b",
            "",
        ] {
            let a = Action::Attach {
                name: "x".into(),
                content_type: None,
                size: None,
                url: bad.into(),
            };
            assert!(act(TicketState::InProgress, a).is_err(), "{bad}");
        }
    }

    fn record(v: serde_json::Value) -> crate::core::record::ServiceRecord {
        serde_json::from_value(v).unwrap()
    }

    fn update(set: serde_json::Value, clear: &[&str]) -> Action {
        Action::UpdateRecord {
            set: record(set),
            clear: clear.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn an_update_of_the_record_is_a_same_state_transition_with_before_and_after() {
        let mut t = ticket(TicketState::InProgress);
        t.life.record = record(json!({"product": "打印机", "tried": "重启"}));
        let a = update(json!({"device_model": "LJ-1020", "product": "打印机 P1"}), &["tried"]);
        let p = plan(&t, ACTOR, &a, &ctx(), &LifecyclePolicy::default(), Utc::now()).unwrap();
        assert_eq!(p.steps.len(), 1);
        assert_eq!(
            (p.steps[0].to, p.steps[0].event),
            (TicketState::InProgress, "record_updated")
        );
        let d = &p.steps[0].details;
        assert_eq!(d["fields"], json!(["product", "device_model", "tried"]));
        assert_eq!(
            d["before"],
            json!({"product": "打印机", "device_model": null, "tried": "重启"})
        );
        assert_eq!(
            d["after"],
            json!({"product": "打印机 P1", "device_model": "LJ-1020", "tried": null})
        );
        let after = p.ticket_after(&t, Utc::now(), None, &real().doc.sla, real().calendar());
        assert_eq!(after.life.record.device_model.as_deref(), Some("LJ-1020"));
        assert_eq!(after.life.record.tried, None);
        // On a closed ticket too (the archive date is set after closing).
        assert!(act(TicketState::Closed, update(json!({"archived_on": "2026-12-01"}), &[])).is_ok());
        // Nothing new: refused, not an empty transition.
        let same = plan(
            &t,
            ACTOR,
            &update(json!({"product": "打印机"}), &[]),
            &ctx(),
            &LifecyclePolicy::default(),
            Utc::now(),
        );
        assert!(same.unwrap_err().why.contains("nothing to change"));
    }

    #[test]
    fn an_update_of_the_record_is_validated_naming_the_field() {
        let mut c = ctx();
        c.record = toml::from_str("[fields.contract_no]\ntype = \"text\"\nlabel = \"合同号\"\nmax_len = 4").unwrap();
        let ok = act_in(
            TicketState::InProgress,
            &update(json!({"custom": {"contract_no": "HT1"}}), &[]),
            &c,
        );
        assert!(ok.is_ok());
        for (a, field) in [
            (
                update(json!({"custom": {"contract_no": "HT-12345"}}), &[]),
                "record.custom.contract_no",
            ),
            (
                update(json!({"custom": {"colour": "red"}}), &[]),
                "record.custom.colour",
            ),
            (update(json!({"product": "x".repeat(201)}), &[]), "record.product"),
            (update(json!({}), &["color"]), "record.color"),
        ] {
            let e = act_in(TicketState::InProgress, &a, &c).unwrap_err();
            assert!(e.why.contains(&format!("field `{field}`")), "{e}");
        }
    }

    #[test]
    fn a_helper_must_be_an_agent_other_than_the_owner_and_cannot_choose_the_helper() {
        let p = act(TicketState::InProgress, update(json!({"helper": "ts-2"}), &[])).unwrap();
        assert_eq!(p.record.unwrap().helper.as_deref(), Some("ts-2"));
        let nobody = Context {
            helper_exists: false,
            ..ctx()
        };
        let e = act_in(
            TicketState::InProgress,
            &update(json!({"helper": "ghost"}), &[]),
            &nobody,
        )
        .unwrap_err();
        assert!(e.why.contains("no agent"), "{e}");
        let e = act(TicketState::InProgress, update(json!({"helper": "ts-1"}), &[])).unwrap_err();
        assert!(e.why.contains("owns the ticket"), "{e}");
        let mut t = ticket(TicketState::InProgress);
        t.life.record.helper = Some("ts-2".into());
        let by_helper = |a: &Action| plan(&t, "agent:ts-2", a, &ctx(), &LifecyclePolicy::default(), Utc::now());
        assert!(by_helper(&update(json!({"helper": "ts-3"}), &[])).is_err());
        assert!(by_helper(&update(json!({}), &["helper"])).is_err());
        // The helper may fill in the rest of the record.
        assert!(by_helper(&update(json!({"engineer_arrived_at": "2026-05-11T02:00:00Z"}), &[])).is_ok());
    }

    #[test]
    fn confirmation_is_its_own_fact_not_a_closing() {
        let confirm = |m: &str| Action::Confirm {
            method: serde_json::from_value(json!(m)).unwrap(),
            note: None,
        };
        // A result is confirmed: not while the work is open.
        for s in [
            TicketState::Assigned,
            TicketState::InProgress,
            TicketState::WaitingForCustomer,
            TicketState::Queued,
        ] {
            assert!(act(s, confirm("signature")).is_err(), "{s}");
        }
        let p = act(TicketState::Resolved, confirm("signature")).unwrap();
        assert_eq!((p.steps[0].to, p.steps[0].event), (TicketState::Resolved, "confirmed"));
        assert!(!p.close, "confirming does not close");
        let c = p.confirmation.clone().unwrap();
        assert_eq!(
            (c.method, c.by.as_str()),
            (crate::core::record::ConfirmMethod::Signature, ACTOR)
        );
        // After closing, too (a signed form handed in later), but once.
        assert!(act(TicketState::Closed, confirm("phone")).is_ok());
        let mut t = ticket(TicketState::Resolved);
        t.life = p
            .ticket_after(&t, Utc::now(), None, &real().doc.sla, real().calendar())
            .life;
        assert!(t.life.confirmation.is_some() && t.life.closed_at.is_none());
        let again = plan(
            &t,
            ACTOR,
            &confirm("online"),
            &ctx(),
            &LifecyclePolicy::default(),
            Utc::now(),
        );
        assert!(again.unwrap_err().why.contains("already confirmed"));
        // Closing without a confirmation remains possible.
        assert!(act(TicketState::Resolved, Action::Close { reason: None }).is_ok());
        // The customer's own confirmation is online; a signature is recorded by staff.
        let t = ticket(TicketState::Resolved);
        let by_customer = |m| {
            plan(
                &t,
                "customer:key_1",
                &confirm(m),
                &ctx(),
                &LifecyclePolicy::default(),
                Utc::now(),
            )
        };
        assert!(by_customer("online").is_ok());
        assert!(by_customer("signature").is_err());
        assert!(serde_json::from_value::<Action>(json!({"kind": "confirm", "method": "telepathy"})).is_err());
    }

    #[test]
    fn every_kind_s_possibility_matches_what_plan_accepts_in_some_state() {
        for kind in Action::KINDS {
            assert!(TicketState::ALL.iter().any(|s| kind_possible(kind, *s, true)), "{kind}");
        }
        assert!(kind_possible("claim", TicketState::Queued, false));
        assert!(!kind_possible("claim", TicketState::Assigned, false));
        assert!(!kind_possible("acknowledge_escalation", TicketState::InProgress, false));
    }

    fn wrote(message: &str) -> Action {
        Action::CustomerReplied {
            message: Some(message.into()),
        }
    }

    #[test]
    fn a_customer_message_resumes_a_waiting_ticket() {
        let p = act(TicketState::WaitingForCustomer, wrote("m-2")).unwrap();
        assert_eq!(p.steps.len(), 1);
        assert_eq!(
            (p.steps[0].to, p.steps[0].event),
            (TicketState::InProgress, "customer_replied")
        );
        assert_eq!(p.pause, PauseChange::End);
        assert_eq!(p.load, LoadChange::None);
        assert!(!p.reopen);
    }

    #[test]
    fn a_customer_message_within_the_window_reopens_a_resolved_ticket_as_reopen_does() {
        let now = Utc::now();
        let mut t = ticket(TicketState::Resolved);
        t.life.resolved_at = Some(now - chrono::Duration::days(6));
        let policy = LifecyclePolicy::default();
        let p = plan(&t, "customer", &wrote("m-3"), &ctx(), &policy, now).unwrap();
        assert_eq!(p.steps.len(), 1);
        assert_eq!((p.steps[0].to, p.steps[0].event), (TicketState::InProgress, "reopened"));
        assert!(
            p.steps[0].reason.contains("the customer wrote again"),
            "{}",
            p.steps[0].reason
        );
        assert_eq!(p.steps[0].details["message"], "m-3");
        assert!(p.reopen);
        assert_eq!(p.load, LoadChange::Take("ts-1".into()));
        let by_hand = plan(&t, ACTOR, &Action::Reopen { reason: "r".into() }, &ctx(), &policy, now).unwrap();
        assert_eq!(
            (p.steps[0].to, p.reopen, &p.load, &p.pause),
            (by_hand.steps[0].to, by_hand.reopen, &by_hand.load, &by_hand.pause),
            "the same reopening as the reopen action"
        );
        let after = p.ticket_after(&t, now, None, &real().doc.sla, real().calendar());
        assert_eq!((after.life.resolved_at, after.life.sla_restarted_at), (None, Some(now)));

        // Nobody holds it: back to the queue, no load to take.
        t.assignee = None;
        let q = plan(&t, "customer", &wrote("m-4"), &ctx(), &policy, now).unwrap();
        assert_eq!(q.steps[0].to, TicketState::Queued);
        assert_eq!(q.load, LoadChange::None);
    }

    #[test]
    fn past_the_window_or_closed_a_customer_message_is_refused_for_a_follow_up() {
        let now = Utc::now();
        let policy = LifecyclePolicy::default();
        let mut t = ticket(TicketState::Resolved);
        t.life.resolved_at = Some(now - chrono::Duration::days(7));
        let e = plan(&t, "customer", &wrote("m"), &ctx(), &policy, now).unwrap_err();
        assert!(e.why.contains("follow-up") && e.why.contains("168h"), "{e}");
        let shorter = LifecyclePolicy {
            reopen_window: "200h".parse().unwrap(),
            ..policy.clone()
        };
        assert!(plan(&t, "customer", &wrote("m"), &ctx(), &shorter, now).is_ok());
        let mut closed = ticket(TicketState::Closed);
        closed.life.resolved_at = Some(now);
        let e = plan(&closed, "customer", &wrote("m"), &ctx(), &policy, now).unwrap_err();
        assert!(e.why.contains("closed"), "{e}");
        assert!(!kind_possible("customer_replied", TicketState::Closed, false));
    }

    #[test]
    fn a_customer_message_on_any_other_open_ticket_is_a_same_state_event() {
        for s in [
            TicketState::Received,
            TicketState::Classified,
            TicketState::Prioritized,
            TicketState::Queued,
            TicketState::Assigned,
            TicketState::InProgress,
        ] {
            let p = act(s, wrote("m-9")).unwrap();
            assert_eq!(p.steps.len(), 1, "{s}");
            assert_eq!((p.steps[0].to, p.steps[0].event), (s, "customer_messaged"), "{s}");
            assert_eq!(p.steps[0].details, json!({ "message": "m-9" }));
            assert_eq!(
                (&p.load, &p.pause, p.reopen),
                (&LoadChange::None, &PauseChange::None, false)
            );
            assert!(
                !p.mark_update && !p.mark_first_response,
                "the customer writing is no update to them"
            );
            assert!(kind_possible("customer_replied", s, false), "{s}");
        }
    }

    #[test]
    fn first_response_moves_an_assigned_ticket_into_progress() {
        let p = plan(
            &ticket(TicketState::Assigned),
            ACTOR,
            &Action::Respond { message: None },
            &ctx(),
            &LifecyclePolicy::default(),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(p.steps[0].to, TicketState::InProgress);
        assert!(p.mark_first_response && p.mark_update);
    }

    #[test]
    fn a_low_rating_reopens_to_the_supervisor_and_a_good_one_closes() {
        let pol = LifecyclePolicy::default();
        let t = ticket(TicketState::Resolved);
        let low = plan(
            &t,
            ACTOR,
            &Action::Rate {
                score: 2,
                comment: None,
                reason: None,
            },
            &ctx(),
            &pol,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(
            low.steps.iter().map(|s| s.event).collect::<Vec<_>>(),
            vec!["rated", "reopened"]
        );
        assert_eq!(low.supervisor.as_deref(), Some("sup"));
        assert_eq!(low.load, LoadChange::Take("ts-1".into()));
        let good = plan(
            &t,
            ACTOR,
            &Action::Rate {
                score: 5,
                comment: None,
                reason: None,
            },
            &ctx(),
            &pol,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(good.steps.last().unwrap().to, TicketState::Closed);
    }

    #[test]
    fn a_rating_reason_must_be_one_the_policy_declares_and_is_recorded() {
        let mut pol = LifecyclePolicy::default();
        pol.unsatisfied_reasons.insert("slow".into(), "响应慢 Slow".into());
        let t = ticket(TicketState::Resolved);
        let rate = |reason: &str| Action::Rate {
            score: 2,
            comment: None,
            reason: Some(reason.into()),
        };
        let ok = plan(&t, ACTOR, &rate("slow"), &ctx(), &pol, Utc::now()).unwrap();
        assert_eq!(ok.steps[0].details["reason"], "slow");
        let bad = plan(&t, ACTOR, &rate("rude"), &ctx(), &pol, Utc::now()).unwrap_err();
        assert!(bad.why.contains("\"rude\"") && bad.why.contains("slow"), "{}", bad.why);
    }

    #[test]
    fn the_ticket_after_a_plan_carries_its_marks() {
        let policy = crate::core::policy::Policy::load(
            &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/policy.toml"),
        )
        .unwrap();
        let (sla, cal) = (&policy.doc.sla, policy.calendar());
        let now = Utc::now();
        let mut queued = ticket(TicketState::Queued);
        queued.category = Some("fault".into());
        queued.priority = Some("normal".into());
        let p = plan(
            &queued,
            ACTOR,
            &Action::Reassign {
                agent: "ts-2".into(),
                reason: None,
            },
            &ctx(),
            &LifecyclePolicy::default(),
            now,
        )
        .unwrap();
        let after = p.ticket_after(&queued, now, Some("technical_support".into()), sla, cal);
        assert_eq!(after.assignee.as_deref(), Some("ts-2"));
        assert_eq!(after.assigned_at, Some(now), "leaving the queue is an assignment");
        assert_eq!(after.team.as_deref(), Some("technical_support"));

        let mut resolved = ticket(TicketState::Resolved);
        resolved.life.resolved_at = Some(now);
        let low = plan(
            &resolved,
            ACTOR,
            &Action::Rate {
                score: 1,
                comment: Some("still broken".into()),
                reason: None,
            },
            &ctx(),
            &LifecyclePolicy::default(),
            now,
        )
        .unwrap();
        let after = low.ticket_after(&resolved, now, None, sla, cal);
        assert_eq!(after.life.resolved_at, None, "reopened");
        assert_eq!(after.life.sla_restarted_at, Some(now));
        assert_eq!(after.life.rating, Some(1));
        assert_eq!(after.life.supervisor.as_deref(), Some("sup"));

        let p = plan(
            &queued,
            ACTOR,
            &Action::SetPriority {
                priority: "urgent".into(),
                reason: "outage".into(),
            },
            &ctx(),
            &LifecyclePolicy::default(),
            now,
        )
        .unwrap();
        let after = p.ticket_after(&queued, now, None, sla, cal);
        let due = sla
            .due(cal, "fault", "urgent", &queued.channel, queued.received_at)
            .unwrap();
        assert_eq!(after.priority.as_deref(), Some("urgent"));
        assert_eq!(after.resolution_due, Some(due.resolution_due));
        assert_eq!(after.sla_rule, Some(due.rule));
    }

    #[test]
    fn refusals_say_why() {
        let e = plan(
            &ticket(TicketState::Assigned),
            ACTOR,
            &Action::Close { reason: None },
            &ctx(),
            &LifecyclePolicy::default(),
            Utc::now(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("resolve it first"), "{e}");
        let e = plan(
            &ticket(TicketState::InProgress),
            ACTOR,
            &Action::AcknowledgeEscalation { note: None },
            &ctx(),
            &LifecyclePolicy::default(),
            Utc::now(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no active escalation"));
    }

    fn any_action() -> impl Strategy<Value = Action> {
        prop_oneof![
            Just(Action::Respond { message: None }),
            Just(Action::Start),
            Just(Action::WaitForCustomer { reason: None }),
            Just(Action::CustomerReplied { message: None }),
            Just(Action::Resolve {
                result: "ok".into(),
                root_cause: None,
                notes: None
            }),
            (1u8..=5).prop_map(|score| Action::Rate {
                score,
                comment: None,
                reason: None
            }),
            Just(Action::Reopen { reason: "r".into() }),
            Just(Action::Close { reason: None }),
            Just(Action::Reassign {
                agent: "other".into(),
                reason: None
            }),
            Just(Action::AcknowledgeEscalation { note: None }),
            Just(Action::SetPriority {
                priority: "urgent".into(),
                reason: "r".into()
            }),
        ]
    }

    /// One action of every kind that says it cannot change a load.
    fn load_neutral_actions() -> Vec<Action> {
        let due = Utc::now() + chrono::Duration::hours(4);
        vec![
            Action::Respond { message: None },
            Action::Start,
            Action::WaitForCustomer { reason: None },
            Action::AcknowledgeEscalation { note: None },
            Action::SetPriority {
                priority: "urgent".into(),
                reason: "r".into(),
            },
            Action::Note { text: "n".into() },
            Action::Escalate { reason: "r".into() },
            Action::SetDue {
                target: super::super::sla::Target::Resolution,
                due,
                reason: "r".into(),
            },
            Action::Link {
                ticket: "T2".into(),
                reason: None,
            },
            Action::Attach {
                name: "a.pdf".into(),
                content_type: None,
                size: None,
                url: "https://files.example/a.pdf".into(),
            },
            Action::Workaround {
                done: "w".into(),
                note: None,
            },
            Action::Milestone {
                name: "m".into(),
                note: None,
            },
            Action::AddTask {
                team: "billing".into(),
                summary: "s".into(),
            },
            Action::UpdateRecord {
                set: Default::default(),
                clear: vec![],
            },
            Action::Confirm {
                method: crate::core::record::ConfirmMethod::Phone,
                note: None,
            },
            // Only a resolved ticket closes, and a resolved ticket holds no slot.
            Action::Close { reason: None },
            // Above the reopening threshold a rating only closes.
            Action::Rate {
                score: LifecyclePolicy::default().reopen_rating_at_or_below + 1,
                comment: None,
                reason: None,
            },
        ]
    }

    /// Actions that free the assignee's slot at most: they take no lock on the agent.
    fn freeing_actions() -> Vec<Action> {
        vec![
            Action::Resolve {
                result: "ok".into(),
                root_cause: None,
                notes: None,
            },
            Action::Transfer {
                team: "billing".into(),
                reason: None,
            },
            Action::Merge {
                into: "T2".into(),
                reason: None,
            },
            Action::Reclassify {
                category: "fault".into(),
                reason: "r".into(),
            },
        ]
    }

    /// Every plan of `a` (each state, assigned or not, by several actors) satisfies `ok`.
    fn every_plan_of(a: &Action, mut ok: impl FnMut(&LoadChange) -> bool) {
        let now = Utc::now();
        let mut c = ctx();
        c.other = Some(("T2".into(), TicketState::InProgress));
        c.next_rung = Some((0, "sup".into()));
        c.teams = vec!["billing".into()];
        c.triage_route = Some(("billing".into(), "rule".into()));
        for state in TicketState::ALL {
            for (actor, assigned, triage) in [
                (ACTOR, true, false),
                (ACTOR, false, false),
                ("supervisor", true, false),
                ("supervisor", true, true),
                ("customer", true, false),
            ] {
                let mut t = ticket(state);
                if !assigned {
                    t.assignee = None;
                }
                t.needs_triage = triage;
                if let Ok(p) = plan(&t, actor, a, &c, &LifecyclePolicy::default(), now) {
                    assert!(
                        ok(&p.load),
                        "{} on a {state:?} ticket by {actor}: {:?}",
                        a.kind(),
                        p.load
                    );
                }
            }
        }
    }

    #[test]
    fn an_action_that_says_it_cannot_take_a_slot_never_plans_one() {
        let policy = LifecyclePolicy::default();
        for a in &load_neutral_actions() {
            assert!(!a.may_take_slot(&policy), "{}", a.kind());
            every_plan_of(a, |l| *l == LoadChange::None);
        }
        let mut frees = 0;
        for a in &freeing_actions() {
            assert!(!a.may_take_slot(&policy), "{}", a.kind());
            every_plan_of(a, |l| {
                frees += usize::from(matches!(l, LoadChange::Free(_)));
                matches!(l, LoadChange::None | LoadChange::Free(_))
            });
        }
        // Not vacuous: the freeing actions do free slots in some of those plans.
        assert!(frees > 0);
        let low = Action::Rate {
            score: policy.reopen_rating_at_or_below,
            comment: None,
            reason: None,
        };
        for taking in [
            Action::Claim,
            Action::Reassign {
                agent: "ts-2".into(),
                reason: None,
            },
            Action::Reopen { reason: "r".into() },
            Action::CustomerReplied { message: None },
            low,
        ] {
            assert!(taking.may_take_slot(&policy), "{}", taking.kind());
        }
    }

    proptest! {
        /// A customer's message is taken exactly when intake would thread it onto the ticket
        /// (`takes_customer_message`), as one step: resumed, reopened or a same-state event.
        #[test]
        fn a_customer_message_is_planned_exactly_when_the_ticket_takes_it(
            state in 0usize..9,
            resolved_hours_ago in proptest::option::of(0i64..400),
            assigned in any::<bool>(),
        ) {
            let now = Utc::now();
            let s = TicketState::ALL[state];
            let mut t = ticket(s);
            t.life.resolved_at = resolved_hours_ago.map(|h| now - chrono::Duration::hours(h));
            if !assigned { t.assignee = None; }
            let policy = LifecyclePolicy::default();
            let takes = policy.takes_customer_message(s, t.life.resolved_at, now);
            match plan(&t, "customer", &wrote("m"), &ctx(), &policy, now) {
                Err(_) => prop_assert!(!takes),
                Ok(p) => {
                    prop_assert!(takes);
                    prop_assert_eq!(p.steps.len(), 1);
                    let step = &p.steps[0];
                    match s {
                        TicketState::WaitingForCustomer => {
                            prop_assert_eq!((step.to, step.event), (TicketState::InProgress, "customer_replied"));
                        }
                        TicketState::Resolved => {
                            let to = if assigned { TicketState::InProgress } else { TicketState::Queued };
                            prop_assert_eq!((step.to, step.event, p.reopen), (to, "reopened", true));
                            prop_assert_eq!(p.load.clone(), if assigned { LoadChange::Take("ts-1".into()) } else { LoadChange::None });
                        }
                        _ => {
                            prop_assert_eq!((step.to, step.event), (s, "customer_messaged"));
                            prop_assert_eq!(p.load.clone(), LoadChange::None);
                        }
                    }
                }
            }
            prop_assert_eq!(takes, s != TicketState::Closed && (s != TicketState::Resolved || resolved_hours_ago.is_none_or(|h| h < 168)));
        }

        /// Whatever sequence of actions arrives, every accepted step is a legal transition and
        /// the agent's load never goes negative.
        #[test]
        fn any_action_sequence_keeps_the_state_machine_and_loads_sane(actions in proptest::collection::vec(any_action(), 1..30)) {
            let mut t = ticket(TicketState::Assigned);
            let mut load: i64 = 1;
            let mut c = ctx();
            for a in actions {
                if let Ok(p) = plan(&t, ACTOR, &a, &c, &LifecyclePolicy::default(), Utc::now()) {
                    let mut from = t.state;
                    for s in &p.steps {
                        prop_assert!(s.to == from || from.can_become(s.to));
                        from = s.to;
                    }
                    match &p.load {
                        LoadChange::Free(_) => load -= 1,
                        LoadChange::Take(_) => load += 1,
                        _ => {}
                    }
                    prop_assert!(load >= 0);
                    if let Some(a) = p.assignee { t.assignee = Some(a); }
                    if let Some(pr) = p.priority { t.priority = Some(pr); }
                    if p.acknowledge { c.active_escalations = 0; }
                    t.state = from;
                }
            }
            let open = matches!(t.state, TicketState::Assigned | TicketState::InProgress | TicketState::WaitingForCustomer);
            prop_assert_eq!(load, i64::from(open));
        }
    }

    fn add_task(team: &str, summary: &str) -> Action {
        Action::AddTask {
            team: team.into(),
            summary: summary.into(),
        }
    }

    #[test]
    fn a_working_ticket_takes_a_task_for_a_known_team_and_records_it_without_changing_state() {
        for s in [
            TicketState::Assigned,
            TicketState::InProgress,
            TicketState::WaitingForCustomer,
        ] {
            let p = act(s, add_task("billing", "refund the double charge")).unwrap();
            assert_eq!(p.task, Some(("billing".into(), "refund the double charge".into())));
            assert_eq!(p.steps.len(), 1);
            assert_eq!((p.steps[0].to, p.steps[0].event), (s, "task_added"));
            assert_eq!(p.load, LoadChange::None);
            assert!(kind_possible("add_task", s, false));
        }
        for s in [
            TicketState::Received,
            TicketState::Queued,
            TicketState::Resolved,
            TicketState::Closed,
        ] {
            assert!(act(s, add_task("billing", "x")).is_err(), "{s}");
            assert!(!kind_possible("add_task", s, false), "{s}");
        }
    }

    #[test]
    fn a_task_needs_a_real_team_and_a_summary_and_tasks_do_not_nest() {
        let e = act(TicketState::InProgress, add_task("nobody", "x")).unwrap_err();
        assert!(e.why.contains("no team"), "{e}");
        assert!(act(TicketState::InProgress, add_task("billing", "  ")).is_err());
        let long = "x".repeat(MAX_ACTION_TEXT + 1);
        assert!(act(TicketState::InProgress, add_task("billing", &long)).is_err());
        let child = Context {
            parent: Some("202611-00000".into()),
            ..ctx()
        };
        let e = act_in(TicketState::InProgress, &add_task("billing", "x"), &child).unwrap_err();
        assert!(e.why.contains("202611-00000"), "{e}");
    }

    #[test]
    fn a_parent_with_open_tasks_is_neither_resolved_nor_merged_until_they_are_done() {
        let resolve = Action::Resolve {
            result: "fixed".into(),
            root_cause: None,
            notes: None,
        };
        let merge = Action::Merge {
            into: "202611-00002".into(),
            reason: None,
        };
        let waiting = Context {
            open_tasks: vec!["202611-00003".into()],
            ..ctx()
        };
        for a in [&resolve, &merge] {
            let e = act_in(TicketState::InProgress, a, &waiting).unwrap_err();
            assert!(e.why.contains("202611-00003"), "{e}");
            assert!(act_in(TicketState::InProgress, a, &ctx()).is_ok(), "{}", a.kind());
        }
        // Everything else goes on while tasks are open.
        assert!(act_in(TicketState::InProgress, &Action::Respond { message: None }, &waiting).is_ok());
        assert!(act_in(TicketState::InProgress, &add_task("billing", "another"), &waiting).is_ok());
    }
}
