//! People who sign in (`users`, migration V9): agents, supervisors and admins, each with a
//! personal token stored as its SHA-256 only, or signing in through the organisation's
//! identity provider. A user authenticates as the same [`ApiKey`] principal a key does, with
//! the user's id (`usr_…`) in place of the key's.

use super::keys::ApiKey;
use super::{Db, StoreError};
use crate::core::access::Role;
use chrono::{DateTime, Utc};

/// A stored user, without a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub agent: Option<String>,
    pub team: Option<String>,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Whether the user has a personal token (SSO-only users need none).
    pub has_token: bool,
}

/// What a new user is.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub agent: Option<&'a str>,
    pub team: Option<&'a str>,
    pub email: Option<&'a str>,
    pub token_hash: Option<&'a str>,
    pub sso_subject: Option<&'a str>,
}

const PRINCIPAL: &str =
    "SELECT u.id, u.name, u.role, u.agent, u.team, u.created_at, u.disabled_at, a.team AS agent_team
     FROM users u LEFT JOIN agents a ON a.id = u.agent";

fn principal_of(r: &tokio_postgres::Row) -> ApiKey {
    ApiKey {
        id: r.get("id"),
        name: r.get("name"),
        channel: None,
        rate_per_sec: None,
        burst: None,
        created_at: r.get("created_at"),
        revoked_at: r.get("disabled_at"),
        // The column allows agent, supervisor and admin; anything else grants an agent's
        // reading of nothing (no agent) rather than more.
        role: Role::parse(r.get("role"))
            .filter(|r| *r != Role::Integration)
            .unwrap_or(Role::Agent),
        agent: r.get("agent"),
        agent_team: r.get("agent_team"),
        team: r.get("team"),
    }
}

/// Stores a user; a name or email already used by an enabled user, or an agent already tied to
/// one, is a [`StoreError::Conflict`] saying which.
pub async fn insert(db: &Db, u: &NewUser<'_>) -> Result<DateTime<Utc>, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_one(
            "INSERT INTO users (id, name, role, agent, team, email, token_hash, sso_subject)
             VALUES ($1, $2, $3, $4, $5, lower($6), $7, $8) RETURNING created_at",
            &[
                &u.id,
                &u.name,
                &u.role.as_str(),
                &u.agent,
                &u.team,
                &u.email,
                &u.token_hash,
                &u.sso_subject,
            ],
        )
        .await
        .map_err(|e| match e.as_db_error().map(|d| (d.code().code(), d.constraint())) {
            Some(("23505", Some("users_name"))) => {
                StoreError::Conflict(format!("an enabled user is already called {:?}", u.name))
            }
            Some(("23505", Some("users_email"))) => StoreError::Conflict(format!(
                "an enabled user already has the email {:?}",
                u.email.unwrap_or_default()
            )),
            Some(("23505", Some("users_sso_subject_key"))) => {
                StoreError::Conflict("another user already signs in with that SSO subject".into())
            }
            Some(("23505", Some("users_agent"))) => StoreError::Conflict(format!(
                "agent {:?} already has an enabled user",
                u.agent.unwrap_or_default()
            )),
            _ => StoreError::from(e),
        })?;
    Ok(row.get(0))
}

/// Every user, enabled first, then by name.
pub async fn list(db: &Db) -> Result<Vec<User>, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            "SELECT id, name, role, agent, team, email, created_at, disabled_at, token_hash IS NOT NULL AS has_token
             FROM users ORDER BY disabled_at IS NOT NULL, lower(name), id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| User {
            id: r.get("id"),
            name: r.get("name"),
            role: Role::parse(r.get("role")).unwrap_or(Role::Agent),
            agent: r.get("agent"),
            team: r.get("team"),
            email: r.get("email"),
            created_at: r.get("created_at"),
            disabled_at: r.get("disabled_at"),
            has_token: r.get("has_token"),
        })
        .collect())
}

/// Disables the enabled user with this id or name; returns its id, or `None` when there is
/// none. Its token stops working within the gateway's key cache time.
pub async fn disable(db: &Db, id_or_name: &str) -> Result<Option<String>, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_opt(
            "UPDATE users SET disabled_at = now()
             WHERE (id = $1 OR lower(name) = lower($1)) AND disabled_at IS NULL RETURNING id",
            &[&id_or_name],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The enabled user whose token hashes to this.
pub async fn find_by_token(db: &Db, token_hash: &str) -> Result<Option<ApiKey>, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_opt(
            &format!("{PRINCIPAL} WHERE u.token_hash = $1 AND u.disabled_at IS NULL"),
            &[&token_hash],
        )
        .await?;
    Ok(row.as_ref().map(principal_of))
}

/// The enabled user an SSO token stands for: the one bound to its `subject`; else the one its
/// claims name (by name, else verified email) that is bound to no subject yet, which is then
/// bound to this one. A user bound to another subject is not found: whoever controls a
/// username or an address at the provider cannot take over an account that has signed in.
pub async fn find_for_sso(
    db: &Db,
    subject: &str,
    name: &str,
    email: Option<&str>,
) -> Result<Option<ApiKey>, StoreError> {
    let client = db.pool.get().await?;
    if let Some(row) = client
        .query_opt(
            &format!("{PRINCIPAL} WHERE u.sso_subject = $1 AND u.disabled_at IS NULL"),
            &[&subject],
        )
        .await?
    {
        return Ok(Some(principal_of(&row)));
    }
    let bound = client
        .query_opt(
            "UPDATE users SET sso_subject = $1
             WHERE id = (SELECT id FROM users
                         WHERE disabled_at IS NULL AND sso_subject IS NULL
                           AND (lower(name) = lower($2) OR ($3::text IS NOT NULL AND email = lower($3)))
                         ORDER BY lower(name) = lower($2) DESC LIMIT 1)
               AND sso_subject IS NULL
             RETURNING id",
            &[&subject, &name, &email],
        )
        .await?;
    let Some(id) = bound.map(|r| r.get::<_, String>(0)) else {
        return Ok(None);
    };
    let row = client
        .query_opt(&format!("{PRINCIPAL} WHERE u.id = $1"), &[&id])
        .await?;
    Ok(row.as_ref().map(principal_of))
}

/// Whether a user (enabled or not) is bound to this subject, named by these claims or holds
/// this roster agent: a
/// token naming such a person must not sign in by its role claims instead (disabling a user
/// would not stop them, and an agent's work would be done under two identities).
pub async fn claims_someone(
    db: &Db,
    subject: &str,
    name: &str,
    email: Option<&str>,
    agent: Option<&str>,
) -> Result<bool, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE sso_subject = $4 OR lower(name) = lower($1)
                              OR ($2::text IS NOT NULL AND email = lower($2))
                              OR ($3::text IS NOT NULL AND agent = $3))",
            &[&name, &email, &agent, &subject],
        )
        .await?;
    Ok(row.get(0))
}

/// The team of a roster agent (an SSO agent's principal needs it).
pub async fn agent_team(db: &Db, agent: &str) -> Result<Option<String>, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_opt("SELECT team FROM agents WHERE id = $1", &[&agent])
        .await?;
    Ok(row.map(|r| r.get(0)))
}
