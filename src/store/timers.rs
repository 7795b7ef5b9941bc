//! SLA timers in Postgres (DESIGN §5): written with the change that sets them, moved or
//! cancelled by the change that makes them moot, claimed by schedulers with SKIP LOCKED.

use super::StoreError;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

/// A pending timer as the store sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Timer {
    pub id: i64,
    pub ticket_id: i64,
    pub purpose: String,
    pub due_at: DateTime<Utc>,
    pub payload: serde_json::Value,
    pub number: String,
    pub fired_at: DateTime<Utc>,
}

pub fn breach_purpose(target: &str) -> String {
    format!("breach:{target}")
}

pub fn escalate_purpose(target: &str) -> String {
    format!("escalate:{target}")
}

pub const AUTO_CLOSE: &str = "auto_close";

/// Sets (inserts or moves) pending timers: `(ticket, purpose, due, payload)`.
pub async fn set(
    tx: &Transaction<'_>,
    timers: &[(i64, String, DateTime<Utc>, serde_json::Value)],
) -> Result<(), StoreError> {
    if timers.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = timers.iter().map(|t| t.0).collect();
    let purposes: Vec<&str> = timers.iter().map(|t| t.1.as_str()).collect();
    let dues: Vec<DateTime<Utc>> = timers.iter().map(|t| t.2).collect();
    let payloads: Vec<&serde_json::Value> = timers.iter().map(|t| &t.3).collect();
    tx.execute(
        &crate::store::prepared(
            tx,
            "INSERT INTO sla_timers (ticket_id, purpose, due_at, payload)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::jsonb[])
         ON CONFLICT (ticket_id, purpose) WHERE state = 'pending'
         DO UPDATE SET due_at = EXCLUDED.due_at, payload = EXCLUDED.payload
         -- Most actions re-derive the same due times: an unchanged timer keeps its row version
         -- (no new tuple, no index entries).
         WHERE (sla_timers.due_at, sla_timers.payload) IS DISTINCT FROM (EXCLUDED.due_at, EXCLUDED.payload)",
        )
        .await?,
        &[&ids, &purposes, &dues, &payloads],
    )
    .await?;
    Ok(())
}

/// Cancels a ticket's pending timers whose purpose starts with `prefix` and is not in `keep`.
pub async fn cancel_except(
    tx: &Transaction<'_>,
    ticket_id: i64,
    prefix: &str,
    keep: &[String],
) -> Result<u64, StoreError> {
    Ok(tx
        .execute(
            &crate::store::prepared(
                tx,
                "UPDATE sla_timers SET state = 'cancelled'
             WHERE ticket_id = $1 AND state = 'pending' AND purpose LIKE $2 || '%' AND NOT (purpose = ANY($3))",
            )
            .await?,
            &[&ticket_id, &prefix, &keep],
        )
        .await?)
}

/// Claims due timers for firing: marks them fired and returns them. Concurrent schedulers
/// skip each other's rows, so each timer fires once.
pub async fn claim_due(tx: &Transaction<'_>, now: DateTime<Utc>, limit: i64) -> Result<Vec<Timer>, StoreError> {
    let rows = tx
        .query(
            &crate::store::prepared(
                tx,
                "UPDATE sla_timers t SET state = 'fired', fired_at = clock_timestamp()
             FROM (SELECT id FROM sla_timers WHERE state = 'pending' AND due_at <= $1
                   ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
             WHERE t.id = due.id
             RETURNING t.id, t.ticket_id, t.purpose, t.due_at, t.payload, t.fired_at,
                       (SELECT number FROM tickets WHERE tickets.id = t.ticket_id)",
            )
            .await?,
            &[&now, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Timer {
            id: r.get(0),
            ticket_id: r.get(1),
            purpose: r.get(2),
            due_at: r.get(3),
            payload: r.get(4),
            fired_at: r.get(5),
            number: r.get::<_, Option<String>>(6).unwrap_or_default(),
        })
        .collect())
}

/// The earliest pending due time, for the scheduler to sleep until.
pub async fn next_due<C: tokio_postgres::GenericClient>(client: &C) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(client
        .query_one("SELECT min(due_at) FROM sla_timers WHERE state = 'pending'", &[])
        .await?
        .get(0))
}
