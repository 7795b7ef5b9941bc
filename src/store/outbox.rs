//! The transactional outbox: messages decided in a transaction that no input message can
//! retry (fired timers, HTTP actions). They are written with the change and published after
//! the commit; a relay publishes whatever a crash left behind.

use super::{Db, StoreError};
use crate::bus::{self, BusError, Topology};
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

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl From<deadpool_postgres::PoolError> for RelayError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        RelayError::Store(StoreError::from(e))
    }
}

impl From<tokio_postgres::Error> for RelayError {
    fn from(e: tokio_postgres::Error) -> Self {
        RelayError::Store(StoreError::Db(e))
    }
}

/// Publishes up to `limit` outbox messages and deletes them, in one transaction held across the
/// publish: a crash before the commit leaves the rows for the next relay (consumers see a
/// duplicate, recognisable by message id), never a loss. Returns how many were published.
pub async fn relay(db: &Db, ch: &lapin::Channel, topo: &Topology, limit: i64) -> Result<usize, RelayError> {
    let mut client = db.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id, message",
            &[&limit],
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut rows: Vec<(i64, serde_json::Value)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    rows.sort_by_key(|r| r.0);
    let mut messages = Vec::with_capacity(rows.len());
    for (id, value) in rows {
        match serde_json::from_value::<Outgoing>(value) {
            Ok(m) => messages.push(m),
            Err(e) => tracing::error!(outbox_id = id, error = %e, "dropping an unreadable outbox row"),
        }
    }
    bus::publish_all(ch, topo, &messages).await?;
    tx.commit().await?;
    Ok(messages.len())
}
