//! Lifecycle stage: actions on `switchboard.actions` (respond, resolve, rate, …) applied to
//! their tickets. An action the state machine refuses is dead-lettered with the reason.
//!
//! A batch is applied in one transaction, in lanes: the actions on one ticket form a lane and
//! apply one after another in arrival order (each sees the one before), and the lanes run at
//! once on the transaction's connection, so their statements are pipelined instead of each
//! waiting for the round trip of the one before. Actions that reach past their own ticket
//! (tasks and their parents, links, merges) share one lane of their own, in arrival order, so
//! that what one writes on another ticket is what the next one reads.

use crate::contracts::StageName;
use crate::contracts::action::ActionMessage;
use crate::core::ticket::Ticket;
use crate::runtime::runner::{Inbound, Outcome, Stage};
use crate::stages::actions::{ActionError, apply};
use crate::stages::{Context, finish};
use crate::store::StoreError;
use crate::store::ledger;
use crate::store::locks::lock_by_number;
use deadpool_postgres::Transaction;
use std::collections::{HashMap, HashSet};
use tracing::Instrument;

pub struct Lifecycle {
    pub ctx: Context,
}

/// Locks, in id order, every agent whose load the batch may raise (the assignee of each ticket
/// whose action may take a slot, each agent a claim or reassignment names; a freed slot needs
/// no lock, `store::agents::release_slot`),
/// then every ticket the batch names; returns the tickets and the numbers of those that belong
/// to a group (a task or a parent).
///
/// Without this, the actions' load updates would lock agents in arrival order, while the assign
/// stage locks a team's agents in id order: a resolve for agent B then one for agent A, against
/// an assign batch holding A and waiting for B, is a deadlock (Postgres breaks it after
/// `deadlock_timeout`, and the retried batch runs into the next one: the benchmark saw resolves
/// crawl at 24/s). Taking them up front, in the same order as everyone else, removes the cycle.
async fn lock_batch(
    tx: &Transaction<'_>,
    actions: &[Result<ActionMessage, serde_json::Error>],
    policy: &crate::core::policy::Policy,
) -> Result<(crate::store::locks::Locked, HashSet<String>), StoreError> {
    let mut named = Vec::new();
    // Only an action that can take a slot locks its ticket's assignee.
    let mut assignees_of = Vec::new();
    let mut own = Vec::new();
    for msg in actions.iter().flatten() {
        if let Some(agent) = msg.action.agent_named(&msg.actor) {
            named.push(agent);
        }
        own.push(msg.ticket.as_str());
        if msg.action.may_take_slot(&policy.doc.lifecycle) {
            assignees_of.push(msg.ticket.as_str());
        }
    }
    let mut numbers = own.clone();
    numbers.extend(actions.iter().flatten().filter_map(|m| m.action.other_ticket()));
    if numbers.is_empty() {
        return Ok((Default::default(), HashSet::new()));
    }
    // A task's parent hears of its being done: locked with it (`core::groups`). Opening a task
    // numbers it: the month's counter comes before every other lock (`store::groups`).
    let parents = crate::store::groups::parent_numbers(&**tx, &own).await?;
    numbers.extend(parents.iter().map(String::as_str));
    if actions
        .iter()
        .flatten()
        .any(|m| matches!(m.action, crate::core::actions::Action::AddTask { .. }))
    {
        crate::store::groups::hold_counter(tx, &crate::core::numbering::period(chrono::Utc::now(), policy.tz)).await?;
    }
    // Agents, then every ticket of the batch, in one call: the one lock order.
    let set = crate::store::locks::LockSet {
        agents: &named,
        assignees_of: &assignees_of,
        ticket_numbers: &numbers,
        ..Default::default()
    };
    let locked = crate::store::locks::lock(tx, &set).await?;
    let mut grouped: HashSet<String> = crate::store::groups::grouped_numbers(&**tx, &numbers)
        .await?
        .into_iter()
        .collect();
    grouped.extend(parents);
    Ok((locked, grouped))
}

impl Stage for Lifecycle {
    fn name(&self) -> &'static str {
        StageName::Lifecycle.as_str()
    }

    async fn process(&self, tx: &Transaction<'_>, batch: &[Inbound]) -> Result<Vec<Outcome>, StoreError> {
        let policy = &self.ctx.policy;
        let mut settled: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut copies = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let decoded: Vec<Result<ActionMessage, serde_json::Error>> =
            batch.iter().map(|m| serde_json::from_slice(&m.data)).collect();
        let (locked, grouped) = lock_batch(tx, &decoded, policy).await?;
        // Decode and check every message before anything is applied.
        let mut actions: Vec<(usize, String, ActionMessage)> = Vec::with_capacity(batch.len());
        for (i, (m, decoded)) in batch.iter().zip(decoded).enumerate() {
            let Some(id) = m.message_id() else {
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
            actions.push((i, key, msg));
        }
        // The assignee looked up to be locked may have changed before the ticket's lock was
        // taken (an assignment committed in between): a slot must not be taken without its
        // row, so the action waits for another try.
        let held: HashSet<&str> = locked.agents.iter().map(|a| a.id.as_str()).collect();
        let tickets: HashMap<&str, &Ticket> = locked.tickets.iter().map(|t| (t.number.as_str(), t)).collect();
        actions.retain(|(i, _, msg)| {
            let unheld = msg.action.may_take_slot(&policy.doc.lifecycle)
                && tickets
                    .get(msg.ticket.as_str())
                    .and_then(|t| t.assignee.as_deref())
                    .is_some_and(|a| !held.contains(a));
            if unheld {
                settled[*i] = Some(Outcome::Retry(format!(
                    "ticket {} changed hands while the batch took its locks",
                    msg.ticket
                )));
            }
            !unheld
        });
        // Redeliveries: what their first run published, from the ledger, in one probe.
        let keys: Vec<String> = actions.iter().map(|(_, k, _)| k.clone()).collect();
        let mut recorded = ledger::lookup(tx, &keys).await?;
        actions.retain(|(i, key, _)| match recorded.remove(key) {
            Some(outputs) => {
                settled[*i] = Some(Outcome::Duplicate(outputs));
                false
            }
            None => true,
        });

        let lanes = lanes(&actions, &grouped);
        let runs = lanes.iter().map(|lane| async {
            let mut results = Vec::with_capacity(lane.len());
            for (n, &a) in lane.iter().enumerate() {
                let (i, _, msg) = &actions[a];
                // The lane's first action on its ticket takes the row this batch locked; a
                // later one (or one in the groups' lane, whose actions write on each other's
                // tickets) reads it again, with what the ones before wrote.
                let alone = !grouped.contains(&msg.ticket);
                let ticket = match tickets.get(msg.ticket.as_str()) {
                    Some(t) if alone && n == 0 => Some((*t).clone()),
                    _ => lock_by_number(tx, &msg.ticket).await?,
                };
                results.push((a, self.apply_one(tx, &batch[*i], msg, ticket).await?));
            }
            Ok::<_, StoreError>(results)
        });
        let mut applied = Vec::with_capacity(actions.len());
        let mut failure: Option<StoreError> = None;
        for lane in futures::future::join_all(runs).await {
            match lane {
                Ok(results) => applied.extend(results),
                // The first error aborts the transaction, and every statement after it in
                // the other lanes fails with "current transaction is aborted": the cause is
                // the one that is not that.
                Err(e) => {
                    if failure.as_ref().is_none_or(|f| aborted(f) && !aborted(&e)) {
                        failure = Some(e);
                    }
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let done: Vec<(String, &[crate::contracts::Outgoing])> = applied
            .iter()
            .filter_map(|(a, r)| match r {
                Ok(outputs) => Some((actions[*a].1.clone(), outputs.as_slice())),
                Err(_) => None,
            })
            .collect();
        // Only a writer that did not hold these tickets' locks could have recorded them.
        ledger::record_own(tx, self.name(), &done).await?;
        for (a, result) in applied {
            let i = actions[a].0;
            settled[i] = Some(match result {
                Ok(outputs) => Outcome::Done(outputs),
                Err(ActionError::NotFound(n)) => Outcome::Dead(format!("no ticket {n:?}")),
                Err(r) => Outcome::Dead(format!("refused: {r}")),
            });
        }
        Ok(finish(settled, &copies))
    }
}

impl Lifecycle {
    /// Applies one action to its locked ticket (`None`: there is no such ticket). A refusal is
    /// the action's outcome; a store error fails the batch.
    async fn apply_one(
        &self,
        tx: &Transaction<'_>,
        m: &Inbound,
        msg: &ActionMessage,
        ticket: Option<Ticket>,
    ) -> Result<Result<Vec<crate::contracts::Outgoing>, ActionError>, StoreError> {
        let Some(ticket) = ticket else {
            return Ok(Err(ActionError::NotFound(msg.ticket.clone())));
        };
        let span = tracing::info_span!("message", stage = StageName::Lifecycle.as_str(), ticket = %ticket.number,
            message_id = m.message_id().unwrap_or_default(), action = msg.action.kind());
        match apply(tx, &self.ctx.policy, &ticket, msg, chrono::Utc::now())
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
    }
}

/// Whether `e` is Postgres refusing a statement because an earlier one aborted the transaction.
fn aborted(e: &StoreError) -> bool {
    matches!(e, StoreError::Db(db) if db.code() == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION))
}

/// The batch's actions (indexes into `actions`) in lanes: one per ticket for the actions on a
/// ticket of its own, in arrival order, and one for every action that reaches past its ticket
/// or acts on a ticket of a group, in arrival order. Lanes share no ticket, so they may run at
/// once.
pub fn lanes(actions: &[(usize, String, ActionMessage)], grouped: &HashSet<String>) -> Vec<Vec<usize>> {
    use crate::core::actions::Action;
    // Tickets another action names (a link's or a merge's other ticket) join the shared lane.
    let mut shared: HashSet<&str> = grouped.iter().map(String::as_str).collect();
    for (_, _, msg) in actions {
        let reaches = msg.action.other_ticket().is_some() || matches!(msg.action, Action::AddTask { .. });
        if reaches {
            shared.insert(msg.ticket.as_str());
        }
        if let Some(other) = msg.action.other_ticket() {
            shared.insert(other);
        }
    }
    let mut together = Vec::new();
    let mut by_ticket: Vec<Vec<usize>> = Vec::new();
    let mut lane_of: HashMap<&str, usize> = HashMap::new();
    for (a, (_, _, msg)) in actions.iter().enumerate() {
        if shared.contains(msg.ticket.as_str()) {
            together.push(a);
            continue;
        }
        let lane = *lane_of.entry(msg.ticket.as_str()).or_insert_with(|| {
            by_ticket.push(Vec::new());
            by_ticket.len() - 1
        });
        by_ticket[lane].push(a);
    }
    if !together.is_empty() {
        by_ticket.push(together);
    }
    by_ticket
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::actions::Action;

    fn action(ticket: &str, action: Action) -> (usize, String, ActionMessage) {
        let msg = ActionMessage {
            ticket: ticket.into(),
            actor: "agent:a1".into(),
            action,
        };
        (0, String::new(), msg)
    }

    fn respond(ticket: &str) -> (usize, String, ActionMessage) {
        action(ticket, Action::Respond { message: None })
    }

    #[test]
    fn the_actions_on_one_ticket_share_a_lane_in_arrival_order() {
        let actions = vec![
            respond("T1"),
            respond("T2"),
            respond("T1"),
            respond("T3"),
            respond("T2"),
        ];
        let lanes = lanes(&actions, &HashSet::new());
        assert_eq!(lanes, vec![vec![0, 2], vec![1, 4], vec![3]]);
    }

    #[test]
    fn actions_that_reach_past_their_ticket_and_those_tickets_share_one_lane() {
        let link = Action::Link {
            ticket: "T4".into(),
            reason: None,
        };
        let task = Action::AddTask {
            team: "billing".into(),
            summary: "refund".into(),
        };
        let actions = vec![
            respond("T1"),
            respond("T4"),
            action("T2", link),
            respond("T5"),
            action("T3", task),
            respond("T2"),
            respond("T6"),
        ];
        // T6 is a task (or a parent): its actions join the shared lane too.
        let grouped: HashSet<String> = ["T6".to_owned()].into();
        let lanes = lanes(&actions, &grouped);
        assert_eq!(lanes, vec![vec![0], vec![3], vec![1, 2, 4, 5, 6]]);
    }

    proptest::proptest! {
        /// Every action is in exactly one lane; no ticket is in two lanes; each lane keeps
        /// arrival order.
        #[test]
        fn lanes_partition_the_actions_and_share_no_ticket(
            tickets in proptest::collection::vec(0u8..6, 0..40),
            linked in proptest::collection::vec(proptest::option::of(0u8..6), 0..40),
        ) {
            let actions: Vec<_> = tickets
                .iter()
                .zip(linked.iter().chain(std::iter::repeat(&None)))
                .map(|(t, other)| match other {
                    Some(o) => action(&format!("T{t}"), Action::Link { ticket: format!("T{o}"), reason: None }),
                    None => respond(&format!("T{t}")),
                })
                .collect();
            let lanes = lanes(&actions, &HashSet::new());
            let mut all: Vec<usize> = lanes.iter().flatten().copied().collect();
            all.sort_unstable();
            proptest::prop_assert_eq!(all, (0..actions.len()).collect::<Vec<_>>());
            let mut owner: HashMap<&str, usize> = HashMap::new();
            for (l, lane) in lanes.iter().enumerate() {
                proptest::prop_assert!(lane.windows(2).all(|w| w[0] < w[1]));
                for &a in lane {
                    let msg = &actions[a].2;
                    for t in std::iter::once(msg.ticket.as_str()).chain(msg.action.other_ticket()) {
                        proptest::prop_assert_eq!(*owner.entry(t).or_insert(l), l);
                    }
                }
            }
        }
    }
}
