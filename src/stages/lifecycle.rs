//! Lifecycle stage: actions on `switchboard.actions` (respond, resolve, rate, …) applied to
//! their tickets. An action the state machine refuses is dead-lettered with the reason.

use crate::contracts::StageName;
use crate::contracts::action::ActionMessage;
use crate::runtime::runner::{Inbound, Outcome, Stage};
use crate::stages::actions::{ActionError, apply};
use crate::stages::{Applied, Context, finish, once};
use crate::store::StoreError;
use crate::store::locks::lock_by_number;
use deadpool_postgres::Transaction;
use tracing::Instrument;

pub struct Lifecycle {
    pub ctx: Context,
}

/// Locks, in id order, every agent whose load the batch may change: each ticket's assignee and
/// each reassignment's new agent.
///
/// Without this, the actions' load updates would lock agents in arrival order, while the assign
/// stage locks a team's agents in id order: a resolve for agent B then one for agent A, against
/// an assign batch holding A and waiting for B, is a deadlock (Postgres breaks it after
/// `deadlock_timeout`, and the retried batch runs into the next one: the benchmark saw resolves
/// crawl at 24/s). Taking them up front, in the same order as everyone else, removes the cycle.
async fn lock_agents(
    tx: &Transaction<'_>,
    actions: &[Result<ActionMessage, serde_json::Error>],
    tz: chrono_tz::Tz,
) -> Result<(), StoreError> {
    let mut numbers = Vec::new();
    let mut named = Vec::new();
    for msg in actions.iter().flatten() {
        if let Some(agent) = msg.action.agent_named(&msg.actor) {
            named.push(agent);
        }
        numbers.push(msg.ticket.as_str());
    }
    let assignees_of = numbers.clone();
    numbers.extend(actions.iter().flatten().filter_map(|m| m.action.other_ticket()));
    if numbers.is_empty() {
        return Ok(());
    }
    // A task's parent hears of its being done: locked with it (`core::groups`). Opening a task
    // numbers it: the month's counter comes before every other lock (`store::groups`).
    let parents = crate::store::groups::parent_numbers(&**tx, &assignees_of).await?;
    numbers.extend(parents.iter().map(String::as_str));
    if actions
        .iter()
        .flatten()
        .any(|m| matches!(m.action, crate::core::actions::Action::AddTask { .. }))
    {
        crate::store::groups::hold_counter(tx, &crate::core::numbering::period(chrono::Utc::now(), tz)).await?;
    }
    // Agents, then every ticket of the batch, in one call: the one lock order.
    let set = crate::store::locks::LockSet {
        agents: &named,
        assignees_of: &assignees_of,
        ticket_numbers: &numbers,
        ..Default::default()
    };
    crate::store::locks::lock(tx, &set).await?;
    Ok(())
}

impl Stage for Lifecycle {
    fn name(&self) -> &'static str {
        StageName::Lifecycle.as_str()
    }

    async fn process(&self, tx: &Transaction<'_>, batch: &[Inbound]) -> Result<Vec<Outcome>, StoreError> {
        let policy = &self.ctx.policy;
        let mut settled: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut copies = Vec::new();
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let actions: Vec<Result<ActionMessage, serde_json::Error>> =
            batch.iter().map(|m| serde_json::from_slice(&m.data)).collect();
        lock_agents(tx, &actions, policy.tz).await?;
        // Actions apply one after another, in arrival order: two actions on one ticket in the
        // same batch see each other's effects.
        for (i, (m, decoded)) in batch.iter().zip(actions).enumerate() {
            let Some(id) = m.message_id().map(str::to_owned) else {
                settled[i] = Some(Outcome::Dead(
                    "action without message_id: set it to an idempotency key".into(),
                ));
                continue;
            };
            let key = format!("action:{id}");
            if let Some(&j) = seen.get(&key) {
                copies.push((i, j));
                continue;
            }
            seen.insert(key.clone(), i);
            let msg = match decoded {
                Ok(a) => a,
                Err(e) => {
                    settled[i] = Some(Outcome::Dead(format!("not an action message: {e}")));
                    continue;
                }
            };
            let expected = format!("action.{}", msg.action.kind());
            if m.routing_key.starts_with("action.") && m.routing_key != expected {
                settled[i] = Some(Outcome::Dead(format!(
                    "routing key {:?} does not match the action {:?} (publish with {expected:?})",
                    m.routing_key,
                    msg.action.kind()
                )));
                continue;
            }
            let Some(ticket) = lock_by_number(tx, &msg.ticket).await? else {
                settled[i] = Some(Outcome::Dead(format!("no ticket {:?}", msg.ticket)));
                continue;
            };
            let span = tracing::info_span!("message", stage = StageName::Lifecycle.as_str(), ticket = %ticket.number, message_id = %id, action = msg.action.kind());
            let applied = once(tx, self.name(), &key, || async {
                match apply(tx, policy, &ticket, &msg, chrono::Utc::now())
                    .instrument(span)
                    .await
                {
                    Ok((_, mut outputs)) => {
                        m.stamp(&mut outputs);
                        Ok(Ok(outputs))
                    }
                    Err(ActionError::Store(e)) => Err(e),
                    Err(refusal) => Ok(Err(refusal)),
                }
            })
            .await?;
            settled[i] = Some(match applied {
                Applied::Done(outputs) => Outcome::Done(outputs),
                Applied::Duplicate(outputs) => Outcome::Duplicate(outputs),
                Applied::Refused(ActionError::NotFound(n)) => Outcome::Dead(format!("no ticket {n:?}")),
                Applied::Refused(r) => Outcome::Dead(format!("refused: {r}")),
            });
        }
        Ok(finish(settled, &copies))
    }
}
