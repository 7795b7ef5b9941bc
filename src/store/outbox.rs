//! The transactional outbox: messages decided in a transaction that no input message can
//! retry (fired timers, HTTP actions). They are written with the change and published after
//! the commit; a relay publishes whatever a crash left behind.

use super::StoreError;
use crate::contracts::Outgoing;
use tokio_postgres::GenericClient;
use tokio_postgres::types::Json;

/// Writes `messages` to the outbox in the caller's transaction (a `tokio_postgres`
/// transaction; pass `&*tx` for a pooled one).
pub async fn insert<C: GenericClient>(tx: &C, messages: &[Outgoing]) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    // Serialised straight into the statement's buffer: a body is JSON text already.
    let values: Vec<Json<&Outgoing>> = messages.iter().map(Json).collect();
    tx.execute(
        "INSERT INTO outbox (message) SELECT * FROM unnest($1::jsonb[])",
        &[&values],
    )
    .await?;
    Ok(())
}

/// How long a claimed outbox row is left to the relay that claimed it before another takes it.
pub const CLAIM_FOR_SECONDS: f64 = 60.0;

/// Claims up to `limit` outbox messages, oldest first, for [`CLAIM_FOR_SECONDS`], and commits
/// the claim at once: no transaction stays open while the broker confirms. The caller publishes
/// them and then [`delete`]s them; a relay that dies in between leaves a claim that lapses, and
/// the rows are published again (a duplicate, recognisable by message id), never lost.
pub async fn claim(db: &super::Db, limit: i64) -> Result<Vec<(i64, Outgoing)>, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            "UPDATE outbox SET claimed_until = now() + make_interval(secs => $2)
             WHERE id IN (SELECT id FROM outbox WHERE claimed_until IS NULL OR claimed_until < now()
                          ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id, message",
            &[&limit, &CLAIM_FOR_SECONDS],
        )
        .await?;
    let mut rows: Vec<(i64, Result<Json<Outgoing>, _>)> = rows.iter().map(|r| (r.get(0), r.try_get(1))).collect();
    rows.sort_by_key(|r| r.0);
    let mut messages = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    for (id, message) in rows {
        match message {
            Ok(Json(m)) => messages.push((id, m)),
            Err(e) => {
                tracing::error!(outbox_id = id, error = %e, "dropping an unreadable outbox row");
                unreadable.push(id);
            }
        }
    }
    if !unreadable.is_empty() {
        client
            .execute("DELETE FROM outbox WHERE id = ANY($1)", &[&unreadable])
            .await?;
    }
    Ok(messages)
}

/// Deletes published outbox rows.
pub async fn delete(db: &super::Db, ids: &[i64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let client = db.pool.get().await?;
    client.execute("DELETE FROM outbox WHERE id = ANY($1)", &[&ids]).await?;
    Ok(())
}
