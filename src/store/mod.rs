//! Postgres: the connection pool, migrations, and the error taxonomy that decides whether a
//! failed transaction is retried or its message dead-lettered.

pub mod agents;
pub mod customers;
pub mod dashboard;
pub mod gauges;
pub mod groups;
pub mod intake;
pub mod keys;
pub mod ledger;
pub mod locks;
pub mod outbound;
pub mod outbox;
pub mod reports;
pub mod retention;
pub mod sla;
pub mod sweep;
pub mod tickets;
pub mod timers;
pub mod tls;
pub mod users;
pub mod worklist;

use crate::config::Settings;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::time::Duration;
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "Postgres at {target} is unreachable: {source}. Is it running? Start it with `pg_ctlcluster 15 main start` (or `docker compose up -d postgres`), or point SWITCHBOARD_DATABASE_URL at it"
    )]
    Unreachable {
        target: String,
        source: tokio_postgres::Error,
    },
    /// Shown with Postgres's own message and SQLSTATE ("deadlock detected (40P01)"), which
    /// tokio-postgres's Display leaves out ("db error").
    #[error("database error: {}", db_message(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("invalid database URL {url:?}: {message}")]
    BadUrl { url: String, message: String },
    #[error("{0}")]
    Conflict(String),
}

fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Sets a savepoint `name` in `tx` (a chain of stages undoes one stage's writes with it).
pub async fn savepoint(tx: &deadpool_postgres::Transaction<'_>, name: &str) -> Result<(), StoreError> {
    Ok(tx.batch_execute(&format!("SAVEPOINT {name}")).await?)
}

/// Forgets savepoint `name`, keeping what was written since.
pub async fn release_savepoint(tx: &deadpool_postgres::Transaction<'_>, name: &str) -> Result<(), StoreError> {
    Ok(tx.batch_execute(&format!("RELEASE SAVEPOINT {name}")).await?)
}

/// Undoes what was written in `tx` since savepoint `name`, and makes `tx` usable again after an
/// error.
pub async fn rollback_to_savepoint(tx: &deadpool_postgres::Transaction<'_>, name: &str) -> Result<(), StoreError> {
    Ok(tx.batch_execute(&format!("ROLLBACK TO SAVEPOINT {name}")).await?)
}

/// A statement prepared once per connection and cached with it (deadpool's statement cache).
/// The statements every batch runs use it: they skip a round trip and Postgres's parse and plan,
/// which at a steady rate — small batches, so many statements per ticket — is most of the
/// database's work.
pub async fn prepared(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
) -> Result<tokio_postgres::Statement, StoreError> {
    Ok(tx.prepare_cached(sql).await?)
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(db) => StoreError::Db(db),
            other => StoreError::Pool(other.to_string()),
        }
    }
}

impl StoreError {
    /// Transient errors are retried in place: they belong to the database, not the message (the
    /// connection, a deadlock, a serialization failure, a read-only standby after a failover,
    /// a full disk, memory or connection limits, credentials or privileges being rotated, an
    /// administrator's shutdown). Anything else points at the message or a bug; even then the
    /// runner checks the database before it dead-letters ([`Db::accepts_writes`]).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unreachable { .. } | StoreError::Pool(_) => true,
            StoreError::Db(e) => {
                if e.is_closed() {
                    return true;
                }
                match e.code() {
                    Some(code) => {
                        let c = code.code();
                        c.starts_with("08") // connection exception
                            || c.starts_with("57") // operator intervention (shutdown)
                            || c.starts_with("53") // insufficient resources: disk full, out of memory, too many connections
                            || c.starts_with("58") // system error: I/O
                            || c.starts_with("28") // invalid authorization: a password being rotated
                            || c == "25006" // read-only transaction: a standby, a failover in progress
                            || c == "42501" // insufficient privilege: grants being changed
                            || c == "40001" // serialization failure
                            || c == "40P01" // deadlock
                            || c == "55P03" // lock not available
                            || c == "55006" // object in use
                    }
                    // No SQLSTATE: the socket failed underneath us.
                    None => true,
                }
            }
            StoreError::Migration(_) | StoreError::BadUrl { .. } | StoreError::Conflict(_) => false,
        }
    }
}

impl Db {
    /// Whether the database takes writes now: reachable, not a standby, not read-only. The
    /// runner asks before dead-lettering a message that failed on its own, so an outage that
    /// shows up as an unexpected error still holds the message instead of losing it.
    pub async fn accepts_writes(&self) -> bool {
        let probe = async {
            let client = self.pool.get().await?;
            let row = client
                .query_one(
                    "SELECT current_setting('transaction_read_only') = 'off' AND NOT pg_is_in_recovery()",
                    &[],
                )
                .await?;
            Ok::<bool, StoreError>(row.get(0))
        };
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(5), probe).await,
            Ok(Ok(true))
        )
    }
}

/// The pool, plus where it points (for error messages).
#[derive(Clone)]
pub struct Db {
    pub pool: Pool,
    /// One connection of its own for reserving ticket numbers (`intake::reserve_numbers_apart`):
    /// a transaction holding a connection of `pool` waits for it, and never the other way
    /// round, so the two cannot starve each other.
    pub numbering: Pool,
    pub target: String,
    pub schema: Option<String>,
}

fn describe(cfg: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}:{} (database {})",
        hosts.join(","),
        port,
        cfg.get_dbname().unwrap_or("?")
    )
}

/// A database URL for messages: the password, if any, replaced by `***`.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Connects once with the URL's TLS choice; the connection runs on its own task.
async fn connect_once(
    target: &tls::Target,
    config: &tokio_postgres::Config,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
    match &target.tls {
        Some(tls) => {
            let (client, conn) = config.connect(tls.clone()).await?;
            Ok((
                client,
                tokio::spawn(async move {
                    let _ = conn.await;
                }),
            ))
        }
        None => {
            let (client, conn) = config.connect(NoTls).await?;
            Ok((
                client,
                tokio::spawn(async move {
                    let _ = conn.await;
                }),
            ))
        }
    }
}

/// Creates the database named in the URL when it does not exist yet (connecting to `postgres`),
/// so a fresh machine needs no manual `createdb`.
pub async fn ensure_database(url: &str) -> Result<(), StoreError> {
    let target = tls::parse(url)?;
    let cfg = target.config.clone();
    let Some(dbname) = cfg.get_dbname().map(str::to_owned) else {
        return Ok(());
    };
    match connect_once(&target, &cfg).await {
        Ok((client, handle)) => {
            drop(client);
            let _ = handle.await;
            Ok(())
        }
        Err(e) if e.code().map(|c| c.code()) == Some("3D000") => {
            let mut admin = cfg.clone();
            admin.dbname("postgres");
            let (client, handle) = connect_once(&target, &admin)
                .await
                .map_err(|source| StoreError::Unreachable {
                    target: describe(&admin),
                    source,
                })?;
            let quoted = format!("\"{}\"", dbname.replace('"', "\"\""));
            let result = client.batch_execute(&format!("CREATE DATABASE {quoted}")).await;
            drop(client);
            let _ = handle.await;
            match result {
                // Another process created it between our two connections.
                Err(e) if matches!(e.code().map(|c| c.code()), Some("42P04") | Some("23505")) => Ok(()),
                other => other.map_err(StoreError::Db),
            }
        }
        Err(source) => Err(StoreError::Unreachable {
            target: describe(&cfg),
            source,
        }),
    }
}

impl Db {
    /// Builds the pool and checks one connection, so a wrong URL fails at start, not per message.
    pub async fn connect(settings: &Settings) -> Result<Db, StoreError> {
        Self::connect_url(
            &settings.database_url,
            settings.database_schema.as_deref(),
            settings.database_pool_size,
        )
        .await
    }

    pub async fn connect_url(url: &str, schema: Option<&str>, pool_size: usize) -> Result<Db, StoreError> {
        let parsed = tls::parse(url)?;
        let mut cfg = parsed.config.clone();
        if let Some(schema) = schema {
            cfg.options(format!("-c search_path={schema}"));
        }
        cfg.connect_timeout(Duration::from_secs(5));
        cfg.application_name("switchboard");
        let target = describe(&cfg);
        let manager = || {
            let mgr_cfg = ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            };
            match parsed.tls.clone() {
                Some(tls) => Manager::from_config(cfg.clone(), tls, mgr_cfg),
                None => Manager::from_config(cfg.clone(), NoTls, mgr_cfg),
            }
        };
        let build = |size: usize| {
            Pool::builder(manager())
                .max_size(size)
                .wait_timeout(Some(Duration::from_secs(10)))
                .create_timeout(Some(Duration::from_secs(5)))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(|e| StoreError::Pool(e.to_string()))
        };
        let pool = build(pool_size.max(1))?;
        let numbering = build(1)?;
        let db = Db {
            pool,
            numbering,
            target: target.clone(),
            schema: schema.map(str::to_owned),
        };
        db.ping().await?;
        Ok(db)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(source) => StoreError::Unreachable {
                target: self.target.clone(),
                source,
            },
            other => StoreError::Pool(format!("{other} (Postgres at {})", self.target)),
        })?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// Applies pending migrations under an advisory lock, so many workers starting at once
    /// migrate exactly once.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        self.migrate_to(None).await
    }

    /// Applies migrations up to and including `version` (all when `None`); tests use it to
    /// check that a migration keeps the data of the schema before it.
    pub async fn migrate_to(&self, version: Option<i32>) -> Result<usize, StoreError> {
        let mut client = self.pool.get().await?;
        if let Some(schema) = &self.schema {
            let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
                .await?;
        }
        client.batch_execute("SELECT pg_advisory_lock(7269001)").await?;
        let pg_client: &mut tokio_postgres::Client = &mut client;
        let mut runner = embedded::migrations::runner();
        if let Some(v) = version {
            runner = runner.set_target(refinery::Target::Version(v));
        }
        let result = runner.run_async(pg_client).await;
        client.batch_execute("SELECT pg_advisory_unlock(7269001)").await?;
        let report = result.map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(report.applied_migrations().len())
    }

    /// Copies the policy's teams into the `teams` table (agents reference them).
    pub async fn sync_teams(&self, policy: &crate::core::policy::Policy) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare(
                "INSERT INTO teams (id, name, supervisor) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, supervisor = EXCLUDED.supervisor",
            )
            .await?;
        for (id, team) in &policy.doc.teams {
            client.execute(&stmt, &[id, &team.name, &team.supervisor]).await?;
        }
        Ok(())
    }

    /// Drops the schema this pool uses (tests clean up after themselves with it).
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        if let Some(schema) = &self.schema {
            let client = self.pool.get().await?;
            let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {quoted} CASCADE"))
                .await?;
        }
        Ok(())
    }
}
