//! The agent roster: import from CSV, list, presence and capacity changes.

use super::{Db, StoreError};
use crate::core::routing::{Agent, Presence};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde::Deserialize;

/// One CSV row: `id,name,team,languages,channels,skills,max_open,presence`; list columns are
/// separated by `;` (e.g. `zh;en`).
#[derive(Debug, Clone, Deserialize)]
pub struct RosterRow {
    pub id: String,
    pub name: String,
    pub team: String,
    #[serde(default)]
    pub languages: String,
    #[serde(default)]
    pub channels: String,
    #[serde(default)]
    pub skills: String,
    pub max_open: i32,
    #[serde(default = "offline")]
    pub presence: String,
}

fn offline() -> String {
    "offline".into()
}

fn list(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("{file} line {line}: {message}")]
    Row { file: String, line: u64, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parses and checks a roster CSV; every problem names its line.
pub fn parse_roster(file: &str, data: &[u8], teams: &[String]) -> Result<Vec<RosterRow>, RosterError> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(data);
    let mut rows = Vec::new();
    for (i, rec) in reader.deserialize::<RosterRow>().enumerate() {
        let line = i as u64 + 2;
        let row_err = |message: String| RosterError::Row {
            file: file.into(),
            line,
            message,
        };
        let row = rec.map_err(|e| row_err(e.to_string()))?;
        if row.id.is_empty() {
            return Err(row_err("empty agent id".into()));
        }
        if !teams.contains(&row.team) {
            return Err(row_err(format!(
                "unknown team {:?}; the policy declares: {}",
                row.team,
                teams.join(", ")
            )));
        }
        if row.max_open < 0 {
            return Err(row_err(format!("max_open must be 0 or more, got {}", row.max_open)));
        }
        if Presence::parse(&row.presence).is_none() {
            return Err(row_err(format!(
                "presence must be online, away or offline, got {:?}",
                row.presence
            )));
        }
        rows.push(row);
    }
    Ok(rows)
}

impl Db {
    /// Inserts or updates agents. Open-ticket counts are kept: they belong to the tickets.
    pub async fn import_agents(&self, rows: &[RosterRow]) -> Result<usize, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let stmt = tx
            .prepare(
                "INSERT INTO agents (id, name, team, languages, channels, skills, max_open, presence)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, team = EXCLUDED.team,
                   languages = EXCLUDED.languages, channels = EXCLUDED.channels, skills = EXCLUDED.skills,
                   max_open = EXCLUDED.max_open, presence = EXCLUDED.presence, updated_at = now()",
            )
            .await?;
        for r in rows {
            tx.execute(
                &stmt,
                &[
                    &r.id,
                    &r.name,
                    &r.team,
                    &list(&r.languages),
                    &list(&r.channels),
                    &list(&r.skills),
                    &r.max_open,
                    &r.presence,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    pub async fn list_agents(&self, team: Option<&str>) -> Result<Vec<Agent>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, name, team, languages, channels, skills, presence, max_open, open_tickets, idle_since
                 FROM agent_loads WHERE $1::text IS NULL OR team = $1 ORDER BY team, id",
                &[&team],
            )
            .await?;
        Ok(rows.iter().map(agent_from_row).collect())
    }

    /// Changes presence and/or capacity; returns the agent's team when it may now take work,
    /// so the caller can ask the assign stage to drain that team's queue.
    pub async fn set_agent_status(
        &self,
        id: &str,
        presence: Option<Presence>,
        max_open: Option<i32>,
    ) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "WITH u AS (UPDATE agents SET
                   presence = COALESCE($2, presence),
                   max_open = COALESCE($3, max_open),
                   idle_since = CASE WHEN $2 = 'online' AND presence <> 'online' THEN now() ELSE idle_since END,
                   updated_at = now()
                 WHERE id = $1
                 RETURNING id, team, presence, max_open)
                 -- The load is the view's (the statement's snapshot: this update does not change it).
                 SELECT u.team, u.presence, u.max_open, l.open_tickets FROM u JOIN agent_loads l ON l.id = u.id",
                &[&id, &presence.map(|p| p.as_str()), &max_open],
            )
            .await?;
        let Some(row) = row else {
            return Err(StoreError::Conflict(format!(
                "no agent with id {id:?}; see `switchboard agents list`"
            )));
        };
        let team: String = row.get(0);
        let presence: String = row.get(1);
        let max_open: i32 = row.get(2);
        let open: i32 = row.get(3);
        Ok((presence == "online" && open < max_open).then_some(team))
    }
}

pub(crate) fn agent_from_row(r: &tokio_postgres::Row) -> Agent {
    Agent {
        id: r.get("id"),
        name: r.get("name"),
        team: r.get("team"),
        languages: r.get("languages"),
        channels: r.get("channels"),
        skills: r.get("skills"),
        presence: Presence::parse(r.get::<_, &str>("presence")).unwrap_or(Presence::Offline),
        max_open: r.get("max_open"),
        open_tickets: r.get("open_tickets"),
        idle_since: r.get("idle_since"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roster_errors_name_the_line() {
        let teams = vec!["front_line".to_string()];
        let csv = "id,name,team,languages,channels,skills,max_open,presence\n\
                   a1,Ann,front_line,zh;en,,,5,online\n\
                   a2,Bob,nowhere,zh,,,5,online\n";
        let err = parse_roster("r.csv", csv.as_bytes(), &teams).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("nowhere"), "{err}");
        let ok = parse_roster(
            "r.csv",
            csv.lines().take(2).collect::<Vec<_>>().join("\n").as_bytes(),
            &teams,
        )
        .unwrap();
        assert_eq!(list(&ok[0].languages), vec!["zh", "en"]);
    }
}

/// Whether an agent with this id exists.
pub async fn agent_exists(tx: &Transaction<'_>, id: &str) -> Result<bool, StoreError> {
    Ok(tx
        .query_opt(
            &super::prepared(tx, "SELECT 1 FROM agents WHERE id = $1").await?,
            &[&id],
        )
        .await?
        .is_some())
}

/// The team of an agent.
pub async fn team_of(tx: &Transaction<'_>, id: &str) -> Result<Option<String>, StoreError> {
    Ok(tx
        .query_opt(
            &super::prepared(tx, "SELECT team FROM agents WHERE id = $1").await?,
            &[&id],
        )
        .await?
        .map(|r| r.get(0)))
}

/// An agent's load after a change.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadAfter {
    pub team: String,
    pub online: bool,
    pub open_tickets: i32,
    pub max_open: i32,
}

/// Frees one of the agent's slots without its row lock: a row in `agent_slot_releases`, folded
/// into `open_tickets` by whoever locks the agent next ([`fold_releases`]). Returns the load as
/// it now is (`None`: no such agent); read without the lock, so a concurrent change may already
/// have moved it, which only decides whether the team's queue is offered the slot.
pub async fn release_slot(tx: &Transaction<'_>, id: &str) -> Result<Option<LoadAfter>, StoreError> {
    let row = tx
        .query_opt(
            &super::prepared(
                tx,
                // The statement does not see its own insert: the load is one less than it reads.
                "WITH freed AS (INSERT INTO agent_slot_releases (agent) SELECT id FROM agents WHERE id = $1 RETURNING agent)
                 SELECT a.team, a.presence, greatest(a.open_tickets - 1, 0), a.max_open
                 FROM agent_loads a JOIN freed ON freed.agent = a.id",
            )
            .await?,
            &[&id],
        )
        .await?;
    Ok(row.map(|r| LoadAfter {
        team: r.get(0),
        online: r.get::<_, &str>(1) == "online",
        open_tickets: r.get(2),
        max_open: r.get(3),
    }))
}

/// Folds the slots freed since into `open_tickets` for these agents, whose rows the caller holds
/// locked, and deletes what it folded; returns each folded agent's new count. A release committed
/// after this statement's snapshot stays for the next fold.
pub async fn fold_releases(tx: &Transaction<'_>, ids: &[&str]) -> Result<Vec<(String, i32)>, StoreError> {
    let rows = tx
        .query(
            &super::prepared(
                tx,
                "WITH freed AS (DELETE FROM agent_slot_releases WHERE agent = ANY($1) RETURNING agent),
                      n AS (SELECT agent, count(*)::integer AS n FROM freed GROUP BY agent)
                 UPDATE agents a SET open_tickets = greatest(a.open_tickets - n.n, 0), updated_at = now()
                 FROM n WHERE a.id = n.agent
                 RETURNING a.id, a.open_tickets",
            )
            .await?,
            &[&ids],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Folds the released slots of every agent nobody holds (the sweep's part: without it, a day of
/// resolves with nothing assigned would leave every one of them in the table). Skips a locked
/// agent instead of waiting: its holder folds it. (`NO KEY UPDATE`: a foreign-key check's
/// key-share lock on the agent, a ticket naming it, is no reason to skip.)
pub async fn fold_unheld_releases(tx: &Transaction<'_>) -> Result<usize, StoreError> {
    let rows = tx
        .query(
            "SELECT id FROM agents WHERE id IN (SELECT agent FROM agent_slot_releases)
             ORDER BY id FOR NO KEY UPDATE SKIP LOCKED",
            &[],
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.get(0)).collect();
    Ok(fold_releases(tx, &ids).await?.len())
}

/// Takes one of the agent's slots and restarts its idle clock. The caller holds the agent's row
/// ([`super::locks::lock`], which folded its released slots); freeing one goes through
/// [`release_slot`], which needs no lock.
pub async fn take_slot(tx: &Transaction<'_>, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    tx.execute(
        &super::prepared(
            tx,
            "UPDATE agents SET open_tickets = open_tickets + 1, idle_since = $2, updated_at = now() WHERE id = $1",
        )
        .await?,
        &[&id, &now],
    )
    .await?;
    Ok(())
}

/// Writes the loads and idle times of agents after an assignment batch.
pub async fn set_loads(
    tx: &Transaction<'_>,
    ids: &[String],
    loads: &[i32],
    idles: &[DateTime<Utc>],
) -> Result<(), StoreError> {
    tx.execute(
        &super::prepared(
            tx,
            "UPDATE agents a SET open_tickets = u.load, idle_since = u.idle, updated_at = now()
                     FROM unnest($1::text[], $2::int[], $3::timestamptz[]) AS u(id, load, idle) WHERE a.id = u.id",
        )
        .await?,
        &[&ids, &loads, &idles],
    )
    .await?;
    Ok(())
}
