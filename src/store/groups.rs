//! Group tickets (`core::groups`): tasks opened on a parent ticket, stored as tickets linked
//! `task_of` their parent (`task` from the parent) in `ticket_links` (V15).

use super::StoreError;
use crate::core::state::TicketState;
use crate::core::ticket::Ticket;
use deadpool_postgres::Transaction;
use tokio_postgres::GenericClient;

/// One task of a parent, as the parent's view lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub number: String,
    pub state: TicketState,
    pub team: Option<String>,
    pub assignee: Option<String>,
    /// What the team is to do (the task's subject).
    pub summary: Option<String>,
}

const TASKS_OF: &str = "SELECT t.number, t.state, t.team, t.assignee, t.subject
     FROM ticket_links l JOIN tickets t ON t.id = l.other_id
     WHERE l.ticket_id = $1 AND l.kind = 'task' ORDER BY t.id";

/// The tasks of ticket `parent_id`, oldest first.
pub async fn tasks_of<C: GenericClient>(c: &C, parent_id: i64) -> Result<Vec<TaskRow>, StoreError> {
    tasks_from(&c.query(TASKS_OF, &[&parent_id]).await?)
}

fn tasks_from(rows: &[tokio_postgres::Row]) -> Result<Vec<TaskRow>, StoreError> {
    rows.iter()
        .map(|r| {
            let number: String = r.get(0);
            let state: &str = r.get(1);
            Ok(TaskRow {
                state: TicketState::parse(state)
                    .ok_or_else(|| StoreError::Conflict(format!("task {number} has unknown state {state:?}")))?,
                number,
                team: r.get(2),
                assignee: r.get(3),
                summary: r.get(4),
            })
        })
        .collect()
}

/// The numbers of `parent_id`'s tasks not yet done, read in a stage's transaction (the
/// statement prepared once per connection: a resolve asks it every time).
pub async fn open_tasks(tx: &Transaction<'_>, parent_id: i64) -> Result<Vec<String>, StoreError> {
    let rows = tx.query(&super::prepared(tx, TASKS_OF).await?, &[&parent_id]).await?;
    Ok(tasks_from(&rows)?
        .into_iter()
        .filter(|t| !crate::core::groups::done(t.state))
        .map(|t| t.number)
        .collect())
}

const PARENT_OF: &str = "SELECT t.id, t.number, t.state FROM ticket_links l JOIN tickets t ON t.id = l.other_id
     WHERE l.ticket_id = $1 AND l.kind = 'task_of'";

/// The parent of ticket `ticket_id` when it is a task: (id, number, state).
pub async fn parent_of<C: GenericClient>(
    c: &C,
    ticket_id: i64,
) -> Result<Option<(i64, String, TicketState)>, StoreError> {
    Ok(parent_from(c.query_opt(PARENT_OF, &[&ticket_id]).await?))
}

/// [`parent_of`] in a stage's transaction: the statement is prepared once per connection (every
/// action asks it).
pub async fn parent_of_tx(
    tx: &Transaction<'_>,
    ticket_id: i64,
) -> Result<Option<(i64, String, TicketState)>, StoreError> {
    Ok(parent_from(
        tx.query_opt(&super::prepared(tx, PARENT_OF).await?, &[&ticket_id])
            .await?,
    ))
}

fn parent_from(row: Option<tokio_postgres::Row>) -> Option<(i64, String, TicketState)> {
    row.and_then(|r| {
        let state: &str = r.get(2);
        Some((r.get(0), r.get(1), TicketState::parse(state)?))
    })
}

/// The parents of the tasks among the tickets numbered `numbers`: locked with them, in the one
/// lock order, by whoever acts on a task (its being done is written on its parent).
pub async fn parent_numbers<C: GenericClient>(c: &C, numbers: &[&str]) -> Result<Vec<String>, StoreError> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let rows = c
        .query(
            "SELECT p.number FROM tickets t
             JOIN ticket_links l ON l.ticket_id = t.id AND l.kind = 'task_of'
             JOIN tickets p ON p.id = l.other_id
             WHERE t.number = ANY($1)",
            &[&numbers],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The tickets among those numbered `numbers` that belong to a group: tasks and parents.
pub async fn grouped_numbers<C: GenericClient>(c: &C, numbers: &[&str]) -> Result<Vec<String>, StoreError> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let rows = c
        .query(
            "SELECT DISTINCT t.number FROM tickets t
             JOIN ticket_links l ON l.ticket_id = t.id AND l.kind IN ('task', 'task_of')
             WHERE t.number = ANY($1)",
            &[&numbers],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Takes the row lock of the numbering counter of `period` (creating the row if needed)
/// without reserving a number. A transaction that will open a task takes it **before** its
/// agent and ticket locks, so nothing it holds can be what another transaction holding the
/// counter waits for. (Intake reserves its numbers in a transaction of its own, before it locks
/// any row: `intake::reserve_numbers_apart`.)
pub async fn hold_counter(tx: &Transaction<'_>, period: &str) -> Result<(), StoreError> {
    super::intake::reserve_numbers(tx, period, 0).await?;
    Ok(())
}

/// Inserts task `t` (as `core::groups::task_ticket` made it) with the parent's customer record
/// `customer_ref`, and returns its id; `None` when the parent's action already opened it (the
/// same task-channel message id).
pub async fn insert_task(
    tx: &Transaction<'_>,
    t: &Ticket,
    customer_ref: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    let customer = serde_json::to_value(&t.customer).unwrap_or_default();
    let terms: Vec<String> = crate::core::search::document_terms(t.subject.as_deref(), &t.body);
    let row = tx
        .query_opt(
            "INSERT INTO tickets (number, channel, channel_message_id, customer, subject, body, language,
                 category, priority, state, team, sla_rule, first_response_due, resolution_due,
                 received_at, version, customer_ref, search_terms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             ON CONFLICT (channel, channel_message_id) DO NOTHING
             RETURNING id",
            &[
                &t.number,
                &t.channel,
                &t.channel_message_id,
                &customer,
                &t.subject,
                &t.body,
                &t.language,
                &t.category,
                &t.priority,
                &t.state.as_str(),
                &t.team,
                &t.sla_rule,
                &t.first_response_due,
                &t.resolution_due,
                &t.received_at,
                &t.version,
                &customer_ref,
                &terms,
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The customer record a ticket is filed under.
pub async fn customer_ref_of<C: GenericClient>(c: &C, ticket_id: i64) -> Result<Option<i64>, StoreError> {
    Ok(
        c.query_opt("SELECT customer_ref FROM tickets WHERE id = $1", &[&ticket_id])
            .await?
            .and_then(|r| r.get(0)),
    )
}
