//! The gateway's API keys (`api_keys`, migration V3): only each key's SHA-256 is stored.

use super::{Db, StoreError};
use chrono::{DateTime, Utc};

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// `None`: any channel.
    pub channel: Option<String>,
    pub rate_per_sec: Option<u32>,
    pub burst: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, channel, rate_per_sec, burst, created_at, revoked_at";

fn from_row(r: &tokio_postgres::Row) -> ApiKey {
    let positive = |v: Option<i32>| v.and_then(|n| u32::try_from(n).ok());
    ApiKey {
        id: r.get("id"),
        name: r.get("name"),
        channel: r.get("channel"),
        rate_per_sec: positive(r.get("rate_per_sec")),
        burst: positive(r.get("burst")),
        created_at: r.get("created_at"),
        revoked_at: r.get("revoked_at"),
    }
}

/// Stores a new key by its hash; returns when it was created.
pub async fn insert(
    db: &Db,
    id: &str,
    name: &str,
    channel: Option<&str>,
    key_hash: &str,
    rate_per_sec: Option<i32>,
    burst: Option<i32>,
) -> Result<DateTime<Utc>, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_one(
            "INSERT INTO api_keys (id, name, channel, key_hash, rate_per_sec, burst) VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING created_at",
            &[&id, &name, &channel, &key_hash, &rate_per_sec, &burst],
        )
        .await?;
    Ok(row.get(0))
}

/// Every key, newest first, revoked ones included.
pub async fn list(db: &Db) -> Result<Vec<ApiKey>, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at DESC, id"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Revokes a key; `false` when there is no such key or it was already revoked.
pub async fn revoke(db: &Db, id: &str) -> Result<bool, StoreError> {
    let client = db.pool.get().await?;
    let n = client
        .execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(n == 1)
}

/// The unrevoked key whose hash this is.
pub async fn find(db: &Db, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"),
            &[&key_hash],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}
