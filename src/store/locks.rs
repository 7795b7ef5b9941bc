//! The one lock order: **agents by id, then tickets by id**. Every row lock that waits is taken
//! by [`lock`], and a transaction that needs both kinds asks for them in one call, so no two
//! transactions can each hold what the other waits for. (Scans that skip locked rows, `… SKIP
//! LOCKED`, never wait and live with their queries.)
//!
//! The rows are locked `FOR NO KEY UPDATE`, the lock an UPDATE that keeps the keys takes (which
//! is every update of an agent or a ticket), not `FOR UPDATE`: lockers still exclude each other,
//! but not the foreign-key checks of other transactions, which key-share lock the row they
//! reference until they commit (the notify stage storing a message for a ticket, the escalate
//! stage setting its timers). With `FOR UPDATE` an action waited for those to commit.
//!
//! Who takes what: the lifecycle stage locks the assignees of the tickets whose actions may take
//! a slot (`Action::may_take_slot`; freeing one needs no lock, `agents::release_slot`) and any
//! agent a claim or reassignment names, then those tickets; the ticket API, one action at a
//! time, locks the ticket's assignee whatever the action, any agent it names, then the tickets;
//! the assign stage locks its teams' agents, then the tickets of its work messages; classify,
//! prioritize and escalate lock tickets only. A second call in the same transaction may only
//! lock rows already held or tickets after tickets (re-reading a ticket between two actions on
//! it).
//!
//! Two rows come before all of these: a month's numbering counter (`ticket_counters`), taken by
//! an action that opens a task (`store::groups::hold_counter`) before its agents and tickets
//! (intake reserves its numbers in a short transaction of its own, holding nothing else:
//! `store::intake::reserve_numbers_apart`); and a task's parent is locked with the task, by
//! whoever acts on the task (`store::groups::parent_numbers`).

use super::StoreError;
use super::agents::agent_from_row;
use super::tickets::{TICKET_COLUMNS, ticket_from_row};
use crate::core::routing::Agent;
use crate::core::ticket::Ticket;
use deadpool_postgres::Transaction;

/// What one transaction locks.
#[derive(Debug, Default, Clone, Copy)]
pub struct LockSet<'a> {
    /// Every agent of these teams.
    pub teams: &'a [String],
    /// These agents.
    pub agents: &'a [&'a str],
    /// The assignees of these tickets (by number).
    pub assignees_of: &'a [&'a str],
    /// These tickets, by id …
    pub ticket_ids: &'a [i64],
    /// … and by number.
    pub ticket_numbers: &'a [&'a str],
}

impl<'a> LockSet<'a> {
    pub fn tickets(ids: &'a [i64]) -> Self {
        LockSet {
            ticket_ids: ids,
            ..LockSet::default()
        }
    }
}

/// The rows [`lock`] holds: agents in id order, tickets in id order.
#[derive(Debug, Default)]
pub struct Locked {
    pub agents: Vec<Agent>,
    pub tickets: Vec<Ticket>,
}

/// Locks `set`: first every agent it names, in id order, then every ticket, in id order.
pub async fn lock(tx: &Transaction<'_>, set: &LockSet<'_>) -> Result<Locked, StoreError> {
    let mut locked = Locked::default();
    if !(set.teams.is_empty() && set.agents.is_empty() && set.assignees_of.is_empty()) {
        let rows = tx
            .query(
                &super::prepared(
                    tx,
                    "SELECT id, name, team, languages, channels, skills, presence, max_open, open_tickets, idle_since,
                            EXISTS (SELECT 1 FROM agent_slot_releases r WHERE r.agent = agents.id) AS released
                     FROM agents
                     WHERE team = ANY($1) OR id = ANY($2)
                        OR id IN (SELECT assignee FROM tickets WHERE number = ANY($3) AND assignee IS NOT NULL)
                     ORDER BY id FOR NO KEY UPDATE",
                )
                .await?,
                &[&set.teams, &set.agents, &set.assignees_of],
            )
            .await?;
        locked.agents = rows.iter().map(agent_from_row).collect();
        // Slots freed without the lock (`agents::release_slot`) count once the row is held, so
        // what the holder reads and writes back is the load as it is.
        let released: Vec<&str> = rows
            .iter()
            .filter(|r| r.get::<_, bool>("released"))
            .map(|r| r.get("id"))
            .collect();
        if !released.is_empty() {
            for (id, open) in super::agents::fold_releases(tx, &released).await? {
                if let Some(a) = locked.agents.iter_mut().find(|a| a.id == id) {
                    a.open_tickets = open;
                }
            }
        }
    }
    if !(set.ticket_ids.is_empty() && set.ticket_numbers.is_empty()) {
        let rows = tx
            .query(
                &super::prepared(
                    tx,
                    &format!(
                        "SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ANY($1) OR number = ANY($2) ORDER BY id FOR NO KEY UPDATE"
                    ),
                )
                .await?,
                &[&set.ticket_ids, &set.ticket_numbers],
            )
            .await?;
        locked.tickets = rows.iter().map(ticket_from_row).collect::<Result<_, _>>()?;
    }
    Ok(locked)
}

/// Locks one ticket by id (tickets only).
pub async fn lock_by_id(tx: &Transaction<'_>, id: i64) -> Result<Option<Ticket>, StoreError> {
    Ok(lock(tx, &LockSet::tickets(&[id])).await?.tickets.pop())
}

/// Locks one ticket by number (tickets only): in a transaction that needs agents too, after
/// [`lock`] took them and the ticket, this re-reads it.
pub async fn lock_by_number(tx: &Transaction<'_>, number: &str) -> Result<Option<Ticket>, StoreError> {
    let set = LockSet {
        ticket_numbers: &[number],
        ..LockSet::default()
    };
    Ok(lock(tx, &set).await?.tickets.pop())
}
