//! The transactional outbox: messages decided in a transaction that no input message can
//! retry (fired timers, HTTP actions). They are written with the change and published after
//! the commit; a relay publishes whatever a crash left behind.

use super::StoreError;
use crate::contracts::Outgoing;
use deadpool_postgres::Transaction;

pub async fn insert(tx: &Transaction<'_>, messages: &[Outgoing]) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let values: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| serde_json::to_value(m).unwrap_or(serde_json::Value::Null))
        .collect();
    tx.execute(
        "INSERT INTO outbox (message) SELECT * FROM unnest($1::jsonb[])",
        &[&values],
    )
    .await?;
    Ok(())
}

/// Takes up to `limit` outbox messages, oldest first, deleting their rows in `tx`: the caller
/// publishes them and commits only after the broker confirmed, so a crash before the commit
/// leaves the rows for the next relay (a duplicate, recognisable by message id), never a loss.
/// Rows skipped by another relay's lock are left to it.
pub async fn take(tx: &Transaction<'_>, limit: i64) -> Result<Vec<Outgoing>, StoreError> {
    let rows = tx
        .query(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id, message",
            &[&limit],
        )
        .await?;
    let mut rows: Vec<(i64, serde_json::Value)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    rows.sort_by_key(|r| r.0);
    let mut messages = Vec::with_capacity(rows.len());
    for (id, value) in rows {
        match serde_json::from_value::<Outgoing>(value) {
            Ok(m) => messages.push(m),
            Err(e) => tracing::error!(outbox_id = id, error = %e, "dropping an unreadable outbox row"),
        }
    }
    Ok(messages)
}
