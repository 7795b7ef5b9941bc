//! Applying lifecycle actions and SLA timer bookkeeping to the database: the shell around
//! `domain::lifecycle::plan`, shared by the lifecycle stage (AMQP) and the HTTP API.

use crate::contracts::StageName;
use crate::contracts::action::ActionMessage;
use crate::contracts::events;
use crate::contracts::work::DrainMessage;
use crate::contracts::{Exchange, Outgoing};
use crate::core::escalation::Fired;
use crate::core::lifecycle::{Context as ActionContext, LoadChange, PauseChange, Refusal, plan};
use crate::core::policy::Policy;
use crate::core::sla::{SlaFacts, Target};
use crate::core::state::TicketState;
use crate::core::ticket::{Ticket, Transition};
use crate::store::tickets::{TICKET_COLUMNS, insert_transitions, ticket_from_row};
use crate::store::{StoreError, timers};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no ticket {0}")]
    NotFound(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for ActionError {
    fn from(e: tokio_postgres::Error) -> Self {
        ActionError::Store(StoreError::Db(e))
    }
}

pub type Pauses = Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>;

pub async fn lock_by_number(tx: &Transaction<'_>, number: &str) -> Result<Option<Ticket>, StoreError> {
    let row = tx
        .query_opt(
            &crate::store::prepared(
                tx,
                &format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE number = $1 FOR UPDATE"),
            )
            .await?,
            &[&number],
        )
        .await?;
    row.as_ref().map(ticket_from_row).transpose()
}

pub async fn lock_by_id(tx: &Transaction<'_>, id: i64) -> Result<Option<Ticket>, StoreError> {
    let row = tx
        .query_opt(
            &crate::store::prepared(
                tx,
                &format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1 FOR UPDATE"),
            )
            .await?,
            &[&id],
        )
        .await?;
    row.as_ref().map(ticket_from_row).transpose()
}

pub async fn pauses<C: tokio_postgres::GenericClient>(c: &C, ticket_id: i64) -> Result<Pauses, StoreError> {
    let rows = c
        .query(
            "SELECT started_at, ended_at FROM ticket_pauses WHERE ticket_id = $1 ORDER BY started_at",
            &[&ticket_id],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Targets that already have an escalation (their breach has been recorded).
pub async fn escalated_targets<C: tokio_postgres::GenericClient>(
    c: &C,
    ticket_id: i64,
) -> Result<Vec<String>, StoreError> {
    let rows = c
        .query("SELECT target FROM escalations WHERE ticket_id = $1", &[&ticket_id])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Breach timers a ticket needs now: one per running clock whose breach is not yet recorded.
pub fn breach_timers(
    policy: &Policy,
    t: &Ticket,
    pauses: &Pauses,
    escalated: &[String],
    now: DateTime<Utc>,
) -> Vec<(i64, String, DateTime<Utc>, serde_json::Value)> {
    let facts = SlaFacts::of(t, pauses.clone());
    policy
        .doc
        .sla
        .pending_deadlines(policy.calendar(), &facts, now)
        .into_iter()
        .filter(|(target, _)| !escalated.iter().any(|e| e == target.as_str()))
        .map(|(target, due)| {
            (
                t.id,
                timers::breach_purpose(target.as_str()),
                due,
                json!({ "target": target }),
            )
        })
        .collect()
}

/// Re-derives a ticket's breach timers from its facts: moves the ones whose due time changed,
/// cancels the ones that no longer apply.
pub async fn sync_breach_timers(
    tx: &Transaction<'_>,
    policy: &Policy,
    t: &Ticket,
    pauses: &Pauses,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let escalated = escalated_targets(&**tx, t.id).await?;
    let wanted = breach_timers(policy, t, pauses, &escalated, now);
    let keep: Vec<String> = wanted.iter().map(|w| w.1.clone()).collect();
    timers::cancel_except(tx, t.id, "breach:", &keep).await?;
    timers::set(tx, &wanted).await
}

/// Applies one action to a locked ticket: writes everything and returns what to publish.
pub async fn apply(
    tx: &Transaction<'_>,
    policy: &Policy,
    t: &Ticket,
    msg: &ActionMessage,
    now: DateTime<Utc>,
) -> Result<(Ticket, Vec<Outgoing>), ActionError> {
    use crate::core::lifecycle::Action;
    let active: i64 = tx
        .query_one(
            &crate::store::prepared(tx, "SELECT count(*) FROM escalations WHERE ticket_id = $1 AND acknowledged_at IS NULL AND stopped_at IS NULL").await?,
            &[&t.id],
        )
        .await?
        .get(0);
    let agent_exists = match &msg.action {
        Action::Reassign { agent, .. } => tx
            .query_opt(
                &crate::store::prepared(tx, "SELECT 1 FROM agents WHERE id = $1").await?,
                &[agent],
            )
            .await?
            .is_some(),
        _ => false,
    };
    let ctx = ActionContext {
        active_escalations: active as usize,
        priority_levels: policy.doc.priority.levels.clone(),
        supervisor: policy.supervisor_of(t.team.as_deref()),
        agent_exists,
    };
    let p = plan(t, &msg.actor, &msg.action, &ctx, &policy.doc.lifecycle, now)?;

    let mut after = t.clone();
    if p.mark_first_response {
        after.life.first_responded_at = Some(now);
    }
    if p.mark_update {
        after.life.last_update_at = Some(now);
    }
    if let Some(r) = &p.resolution {
        after.life.resolution = Some(r.clone());
        after.life.resolved_at = Some(now);
    }
    if p.reopen {
        after.life.resolved_at = None;
        after.life.closed_at = None;
        after.life.sla_restarted_at = Some(now);
    }
    if p.close {
        after.life.closed_at = Some(now);
    }
    if let Some((score, comment)) = &p.rating {
        after.life.rating = Some(*score);
        after.life.rating_comment = comment.clone();
    }
    if let Some(a) = &p.assignee {
        after.assignee = Some(a.clone());
        if t.state == TicketState::Queued {
            after.assigned_at = Some(now);
        }
        if let Some(team) = tx
            .query_opt(
                &crate::store::prepared(tx, "SELECT team FROM agents WHERE id = $1").await?,
                &[a],
            )
            .await?
        {
            after.team = Some(team.get(0));
        }
    }
    if let Some(s) = &p.supervisor {
        after.life.supervisor = Some(s.clone());
    }
    if let Some(pr) = &p.priority {
        after.priority = Some(pr.clone());
        let category = after.category.clone().unwrap_or_default();
        if let Some(due) = policy.doc.sla.due(policy.calendar(), &category, pr, after.received_at) {
            after.sla_rule = Some(due.rule);
            after.first_response_due = Some(due.first_response_due);
            after.resolution_due = Some(due.resolution_due);
        }
    }

    // Transitions: one per step, each bumping the version (the event sequence).
    let mut outputs = Vec::new();
    let mut transitions = Vec::new();
    let mut from = t.state;
    for step in &p.steps {
        after.version += 1;
        after.state = step.to;
        let tr = Transition {
            ticket_id: t.id,
            seq: after.version,
            from: Some(from),
            to: step.to,
            at: now,
            actor: msg.actor.clone(),
            reason: step.reason.clone(),
            policy_version: policy.version().to_owned(),
            details: json!({ "action": msg.action.kind(), "event": step.event, "data": step.details }),
        };
        outputs.push(events::ticket_event(
            &after,
            step.event,
            &tr,
            StageName::Lifecycle.as_str(),
        ));
        transitions.push(tr);
        from = step.to;
    }

    match &p.pause {
        PauseChange::Start => {
            tx.execute(
                &crate::store::prepared(
                    tx,
                    "INSERT INTO ticket_pauses (ticket_id, started_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .await?,
                &[&t.id, &now],
            )
            .await?;
        }
        PauseChange::End => {
            tx.execute(
                &crate::store::prepared(
                    tx,
                    "UPDATE ticket_pauses SET ended_at = $2 WHERE ticket_id = $1 AND ended_at IS NULL",
                )
                .await?,
                &[&t.id, &now],
            )
            .await?;
        }
        PauseChange::None => {}
    }

    let mut drain_teams: Vec<String> = Vec::new();
    let load = |agent: &str, delta: i32| (agent.to_owned(), delta);
    let changes: Vec<(String, i32)> = match &p.load {
        LoadChange::None => vec![],
        LoadChange::Free(a) => vec![load(a, -1)],
        LoadChange::Take(a) => vec![load(a, 1)],
        LoadChange::Move { from, to } => {
            let mut v = vec![load(to, 1)];
            // A queued ticket held no slot.
            if let Some(f) = from.as_ref().filter(|_| t.state != TicketState::Queued) {
                v.push(load(f, -1));
            }
            v
        }
    };
    for (agent, delta) in changes {
        let row = tx
            .query_opt(
                &crate::store::prepared(
                    tx,
                    "UPDATE agents SET open_tickets = greatest(open_tickets + $2, 0),
                   idle_since = CASE WHEN $2 > 0 THEN $3 ELSE idle_since END, updated_at = now()
                 WHERE id = $1 RETURNING team, presence, open_tickets, max_open",
                )
                .await?,
                &[&agent, &delta, &now],
            )
            .await?;
        if let Some(r) = row
            && delta < 0
            && r.get::<_, &str>(1) == "online"
            && r.get::<_, i32>(2) < r.get::<_, i32>(3)
        {
            drain_teams.push(r.get(0));
        }
    }

    if p.acknowledge {
        tx.execute(
            &crate::store::prepared(
                tx,
                "UPDATE escalations SET acknowledged_at = $2, acknowledged_by = $3
             WHERE ticket_id = $1 AND acknowledged_at IS NULL AND stopped_at IS NULL",
            )
            .await?,
            &[&t.id, &now, &msg.actor],
        )
        .await?;
        timers::cancel_except(tx, t.id, "escalate:", &[]).await?;
    }

    let written = tx
        .execute(
            &crate::store::prepared(
                tx,
                "UPDATE tickets SET state = $3, assignee = $4, team = $5, priority = $6, sla_rule = $7,
                first_response_due = $8, resolution_due = $9, assigned_at = $10,
                first_responded_at = $11, last_update_at = $12, resolved_at = $13, closed_at = $14,
                sla_restarted_at = $15, resolution = $16, rating = $17, rating_comment = $18, supervisor = $19,
                version = $20, updated_at = now()
             WHERE id = $1 AND version = $2",
            )
            .await?,
            &[
                &t.id,
                &t.version,
                &after.state.as_str(),
                &after.assignee,
                &after.team,
                &after.priority,
                &after.sla_rule,
                &after.first_response_due,
                &after.resolution_due,
                &after.assigned_at,
                &after.life.first_responded_at,
                &after.life.last_update_at,
                &after.life.resolved_at,
                &after.life.closed_at,
                &after.life.sla_restarted_at,
                &after.life.resolution,
                &after.life.rating,
                &after.life.rating_comment,
                &after.life.supervisor,
                &after.version,
            ],
        )
        .await?;
    if written != 1 {
        return Err(StoreError::Conflict(format!("ticket {} changed under the lock", t.number)).into());
    }
    let refs: Vec<&Transition> = transitions.iter().collect();
    insert_transitions(tx, &refs).await?;

    // Clocks: targets met stop their escalations; the rest get their timers moved.
    let paused = pauses(&**tx, t.id).await?;
    let facts = SlaFacts::of(&after, paused.clone());
    let met: Vec<String> = policy
        .doc
        .sla
        .clocks(policy.calendar(), &facts, now)
        .into_iter()
        .filter(|c| c.met_at.is_some())
        .map(|c| c.target.as_str().to_owned())
        .collect();
    if !met.is_empty() {
        tx.execute(
            &crate::store::prepared(
                tx,
                "UPDATE escalations SET stopped_at = $2, stop_reason = 'target met'
             WHERE ticket_id = $1 AND target = ANY($3) AND stopped_at IS NULL",
            )
            .await?,
            &[&t.id, &now, &met],
        )
        .await?;
        let escalate_keep: Vec<String> = Target::ALL
            .iter()
            .filter(|x| !met.iter().any(|m| m == x.as_str()))
            .map(|x| timers::escalate_purpose(x.as_str()))
            .collect();
        timers::cancel_except(tx, t.id, "escalate:", &escalate_keep).await?;
    }
    sync_breach_timers(tx, policy, &after, &paused, now).await?;
    match after.state {
        TicketState::Resolved => {
            let due = policy.calendar().deadline(
                now,
                policy.doc.lifecycle.auto_close_after,
                crate::core::calendar::Clock::Wall,
            );
            timers::set(tx, &[(t.id, timers::AUTO_CLOSE.into(), due, json!({}))]).await?;
        }
        _ => {
            timers::cancel_except(tx, t.id, timers::AUTO_CLOSE, &[]).await?;
        }
    }
    if after.state == TicketState::Closed {
        timers::cancel_except(tx, t.id, "", &[]).await?;
    }

    for team in drain_teams {
        outputs.push(drain_message(
            &team,
            &format!("{} finished ticket {}", msg.actor, t.number),
        ));
    }
    Ok((after, outputs))
}

pub fn drain_message(team: &str, reason: &str) -> Outgoing {
    Outgoing {
        exchange: Exchange::Work,
        routing_key: StageName::Assign.as_str().into(),
        message_id: format!("drain:{}", uuid::Uuid::new_v4()),
        body: serde_json::to_value(DrainMessage {
            drain_team: team.to_owned(),
            reason: reason.to_owned(),
        })
        .unwrap_or_default(),
        headers: vec![],
    }
}

/// Who a ladder step's `notify` means for this ticket.
pub fn resolve_notify(policy: &Policy, t: &Ticket, notify: &str) -> String {
    match notify {
        "supervisor" => policy
            .supervisor_of(t.team.as_deref())
            .unwrap_or_else(|| "supervisor".into()),
        "assignee" => t.assignee.clone().unwrap_or_else(|| "assignee".into()),
        team if policy.doc.teams.contains_key(team) => {
            policy.supervisor_of(Some(team)).unwrap_or_else(|| team.to_owned())
        }
        other => other.to_owned(),
    }
}

/// The last fired step of an escalation, from its row.
pub fn fired_of(step: Option<i32>, repeat: Option<i32>, at: Option<DateTime<Utc>>) -> Option<Fired> {
    Some(Fired {
        step: usize::try_from(step?).ok()?,
        repeat: u32::try_from(repeat.unwrap_or(0)).ok()?,
        at: at?,
    })
}
