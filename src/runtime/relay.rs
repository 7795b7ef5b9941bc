//! The outbox relay: publishes what transactions without an input message to retry (fired
//! timers, HTTP actions) wrote to the outbox.

use crate::bus::{self, BusError, Topology};
use crate::store::{Db, StoreError, outbox};

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
    let messages = outbox::take(&tx, limit).await?;
    if messages.is_empty() {
        return Ok(0);
    }
    bus::publish_all(ch, topo, &messages).await?;
    tx.commit().await?;
    Ok(messages.len())
}
