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

/// Publishes up to `limit` outbox messages and deletes them. The rows are claimed in a short
/// transaction of their own, published, and deleted once the broker confirmed: no transaction
/// (and no row lock or pooled connection) is held while the broker may be blocking publishers.
/// A crash in between leaves a lapsing claim: the rows are published again (a duplicate,
/// recognisable by message id), never lost. Returns how many were published.
pub async fn relay(db: &Db, ch: &lapin::Channel, topo: &Topology, limit: i64) -> Result<usize, RelayError> {
    let claimed = outbox::claim(db, limit).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let (ids, messages): (Vec<i64>, Vec<_>) = claimed.into_iter().unzip();
    bus::publish_all(ch, topo, &messages).await?;
    outbox::delete(db, &ids).await?;
    Ok(messages.len())
}
