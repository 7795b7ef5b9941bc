//! The gateway's API keys (`api_keys`, migrations V3 and V6): only each key's SHA-256 is
//! stored, with the principal it stands for.

use super::{Db, StoreError};
use crate::core::access::{Principal, Role};
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
    pub role: Role,
    /// The agent an agent key acts as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// That agent's team when the key was looked up.
    #[serde(skip)]
    pub agent_team: Option<String>,
    /// A supervisor key's team (`None`: every team).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

impl ApiKey {
    /// The principal this key stands for.
    pub fn principal(&self) -> Principal<'_> {
        Principal {
            key_id: &self.id,
            name: &self.name,
            role: self.role,
            channel: self.channel.as_deref(),
            agent: self.agent.as_deref(),
            agent_team: self.agent_team.as_deref(),
            team: self.team.as_deref(),
        }
    }
}

/// What a new key is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub channel: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub team: Option<&'a str>,
    pub key_hash: &'a str,
    pub rate_per_sec: Option<i32>,
    pub burst: Option<i32>,
}

const COLUMNS: &str = "k.id, k.name, k.channel, k.rate_per_sec, k.burst, k.created_at, k.revoked_at, k.role, k.agent, k.team, a.team AS agent_team";
const FROM: &str = "api_keys k LEFT JOIN agents a ON a.id = k.agent";

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
        // The column's CHECK allows only the four roles; an unknown one grants nothing.
        role: Role::parse(r.get("role")).unwrap_or(Role::Integration),
        agent: r.get("agent"),
        agent_team: r.get("agent_team"),
        team: r.get("team"),
    }
}

/// Stores a new key by its hash; returns when it was created.
pub async fn insert(db: &Db, k: &NewKey<'_>) -> Result<DateTime<Utc>, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_one(
            "INSERT INTO api_keys (id, name, channel, key_hash, rate_per_sec, burst, role, agent, team)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             RETURNING created_at",
            &[
                &k.id,
                &k.name,
                &k.channel,
                &k.key_hash,
                &k.rate_per_sec,
                &k.burst,
                &k.role.as_str(),
                &k.agent,
                &k.team,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Every key, newest first, revoked ones included.
pub async fn list(db: &Db) -> Result<Vec<ApiKey>, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM {FROM} ORDER BY k.created_at DESC, k.id"),
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
            &format!("SELECT {COLUMNS} FROM {FROM} WHERE k.key_hash = $1 AND k.revoked_at IS NULL"),
            &[&key_hash],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}
