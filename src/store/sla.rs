//! The SLA record of a ticket beside its row: pauses (waiting for the customer) and escalations
//! (a breached target and how far up its ladder it went).

use super::{StoreError, prepared};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::GenericClient;

/// A ticket's waiting intervals, oldest first; the last may still be open.
pub type Pauses = Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>;

const PAUSES: &str = "SELECT started_at, ended_at FROM ticket_pauses WHERE ticket_id = $1 ORDER BY started_at";

pub async fn pauses<C: GenericClient>(c: &C, ticket_id: i64) -> Result<Pauses, StoreError> {
    Ok(pauses_from(&c.query(PAUSES, &[&ticket_id]).await?))
}

/// [`pauses`] in a stage's transaction: the statement is prepared once per connection, not
/// parsed and planned for every action.
pub async fn pauses_tx(tx: &Transaction<'_>, ticket_id: i64) -> Result<Pauses, StoreError> {
    Ok(pauses_from(
        &tx.query(&prepared(tx, PAUSES).await?, &[&ticket_id]).await?,
    ))
}

fn pauses_from(rows: &[tokio_postgres::Row]) -> Pauses {
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Starts a pause (a no-op when one is already open).
pub async fn start_pause(tx: &Transaction<'_>, ticket_id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.execute(
        &prepared(
            tx,
            "INSERT INTO ticket_pauses (ticket_id, started_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .await?,
        &[&ticket_id, &at],
    )
    .await?;
    Ok(())
}

/// Ends the open pause, if any.
pub async fn end_pause(tx: &Transaction<'_>, ticket_id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.execute(
        &prepared(
            tx,
            "UPDATE ticket_pauses SET ended_at = $2 WHERE ticket_id = $1 AND ended_at IS NULL",
        )
        .await?,
        &[&ticket_id, &at],
    )
    .await?;
    Ok(())
}

/// Targets that already have an escalation (their breach has been recorded).
pub async fn escalated_targets(
    tx: &Transaction<'_>,
    ticket_id: i64,
) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
    let rows = tx
        .query(
            &prepared(tx, "SELECT target, breached_at FROM escalations WHERE ticket_id = $1").await?,
            &[&ticket_id],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Escalations neither acknowledged nor stopped.
pub async fn active_escalations(tx: &Transaction<'_>, ticket_id: i64) -> Result<i64, StoreError> {
    Ok(tx
        .query_one(
            &prepared(
                tx,
                "SELECT count(*) FROM escalations WHERE ticket_id = $1 AND acknowledged_at IS NULL AND stopped_at IS NULL",
            )
            .await?,
            &[&ticket_id],
        )
        .await?
        .get(0))
}

/// Acknowledges every active escalation of a ticket, by `who`.
pub async fn acknowledge(tx: &Transaction<'_>, ticket_id: i64, at: DateTime<Utc>, who: &str) -> Result<(), StoreError> {
    tx.execute(
        &prepared(
            tx,
            "UPDATE escalations SET acknowledged_at = $2, acknowledged_by = $3
             WHERE ticket_id = $1 AND acknowledged_at IS NULL AND stopped_at IS NULL",
        )
        .await?,
        &[&ticket_id, &at, &who],
    )
    .await?;
    Ok(())
}

/// Stops the escalations of targets that have been met.
pub async fn stop_met(
    tx: &Transaction<'_>,
    ticket_id: i64,
    at: DateTime<Utc>,
    met: &[String],
) -> Result<(), StoreError> {
    tx.execute(
        &prepared(
            tx,
            "UPDATE escalations SET stopped_at = $2, stop_reason = 'target met'
             WHERE ticket_id = $1 AND target = ANY($3) AND stopped_at IS NULL",
        )
        .await?,
        &[&ticket_id, &at, &met],
    )
    .await?;
    Ok(())
}

/// Stops every running escalation of a ticket (it closed: nobody is to be reminded any more).
pub async fn stop_running(
    tx: &Transaction<'_>,
    ticket_id: i64,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<(), StoreError> {
    tx.execute(
        &prepared(
            tx,
            "UPDATE escalations SET stopped_at = $2, stop_reason = $3
             WHERE ticket_id = $1 AND stopped_at IS NULL AND acknowledged_at IS NULL",
        )
        .await?,
        &[&ticket_id, &at, &reason],
    )
    .await?;
    Ok(())
}

/// Forgets a target's recorded breach and escalation: its deadline was renegotiated, and the new
/// one is watched from scratch (the transitions keep the history).
pub async fn forget_escalation(tx: &Transaction<'_>, ticket_id: i64, target: &str) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM escalations WHERE ticket_id = $1 AND target = $2",
        &[&ticket_id, &target],
    )
    .await?;
    Ok(())
}

/// One escalation as the escalate stage needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    pub ladder: String,
    pub breached_at: DateTime<Utc>,
    pub last_step: Option<i32>,
    pub last_repeat: Option<i32>,
    pub last_fired_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
}

/// The escalation of `target` on a ticket, if its breach has been recorded.
pub async fn escalation(tx: &Transaction<'_>, ticket_id: i64, target: &str) -> Result<Option<Escalation>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT ladder, breached_at, last_step, last_repeat, last_fired_at, acknowledged_at, stopped_at
             FROM escalations WHERE ticket_id = $1 AND target = $2",
            &[&ticket_id, &target],
        )
        .await?;
    Ok(row.map(|r| Escalation {
        ladder: r.get(0),
        breached_at: r.get(1),
        last_step: r.get(2),
        last_repeat: r.get(3),
        last_fired_at: r.get(4),
        acknowledged_at: r.get(5),
        stopped_at: r.get(6),
    }))
}

/// Records the breach of `target`, to be escalated along `ladder` (empty: none).
pub async fn record_breach(
    tx: &Transaction<'_>,
    ticket_id: i64,
    target: &str,
    ladder: &str,
    breached_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO escalations (ticket_id, target, ladder, breached_at) VALUES ($1, $2, $3, $4)",
        &[&ticket_id, &target, &ladder, &breached_at],
    )
    .await?;
    Ok(())
}

/// Records a new lapse of a recurring target (the next update) whose earlier lapse was
/// recorded: the escalation starts over from `breached_at`, on `ladder`, unacknowledged.
pub async fn rearm_breach(
    tx: &Transaction<'_>,
    ticket_id: i64,
    target: &str,
    ladder: &str,
    breached_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE escalations SET ladder = $3, breached_at = $4, last_step = NULL, last_repeat = NULL,
                last_fired_at = NULL, last_notified = NULL, acknowledged_at = NULL,
                acknowledged_by = NULL, stopped_at = NULL, stop_reason = NULL
         WHERE ticket_id = $1 AND target = $2",
        &[&ticket_id, &target, &ladder, &breached_at],
    )
    .await?;
    Ok(())
}

/// Stops the escalation of a target met (or paused) before its next step.
pub async fn stop_unbreached(
    tx: &Transaction<'_>,
    ticket_id: i64,
    target: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE escalations SET stopped_at = $3, stop_reason = 'target met or paused'
         WHERE ticket_id = $1 AND target = $2",
        &[&ticket_id, &target, &at],
    )
    .await?;
    Ok(())
}

/// Records that a ladder step fired and whom it notified.
/// The running (unacknowledged, unstopped) escalation that climbed highest: (target, last step).
pub async fn highest_running_step(tx: &Transaction<'_>, ticket_id: i64) -> Result<Option<(String, i32)>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT target, coalesce(last_step, -1) FROM escalations
             WHERE ticket_id = $1 AND acknowledged_at IS NULL AND stopped_at IS NULL
             ORDER BY coalesce(last_step, -1) DESC, target LIMIT 1",
            &[&ticket_id],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

pub async fn record_step(
    tx: &Transaction<'_>,
    ticket_id: i64,
    target: &str,
    step: i32,
    repeat: i32,
    at: DateTime<Utc>,
    notified: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE escalations SET last_step = $3, last_repeat = $4, last_fired_at = $5, last_notified = $6
         WHERE ticket_id = $1 AND target = $2",
        &[&ticket_id, &target, &step, &repeat, &at, &notified],
    )
    .await?;
    Ok(())
}
