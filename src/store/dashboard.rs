//! What the live dashboard reads: open tickets, targets falling due, today's breaches, team load.

use super::StoreError;
use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

/// Open tickets by state, for the states in `open_states`.
pub async fn open_by_state<C: GenericClient>(c: &C, open_states: &[String]) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = c
        .query(
            "SELECT state, count(*) FROM tickets WHERE state = ANY($1) GROUP BY state",
            &[&open_states],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A target of an open ticket that falls due soon.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSoon {
    pub number: String,
    pub priority: Option<String>,
    pub team: Option<String>,
    pub state: String,
    pub target: String,
    pub due: DateTime<Utc>,
}

/// First responses and resolutions of open tickets due in `(now, horizon]`, soonest first, at
/// most `limit`, with how many there are in all. A ticket waiting for the customer has its
/// resolution clock paused, so only its first response counts.
pub async fn due_soon<C: GenericClient>(
    c: &C,
    open_states: &[String],
    waiting: &str,
    now: DateTime<Utc>,
    horizon: DateTime<Utc>,
    limit: i64,
) -> Result<(Vec<DueSoon>, i64), StoreError> {
    let rows = c
        .query(
            "WITH risk AS (
            SELECT number, priority, team, state, 'first_response' AS target, first_response_due AS due
            FROM tickets
            WHERE state = ANY($1) AND first_responded_at IS NULL
              AND first_response_due > $2 AND first_response_due <= $3
            UNION ALL
            SELECT number, priority, team, state, 'resolution', resolution_due
            FROM tickets
            WHERE state = ANY($1) AND resolved_at IS NULL AND state <> $4
              AND resolution_due > $2 AND resolution_due <= $3
        )
        SELECT number, priority, team, state, target, due, count(*) OVER () FROM risk
        ORDER BY due, number, target LIMIT $5",
            &[&open_states, &now, &horizon, &waiting, &limit],
        )
        .await?;
    let total = rows.first().map(|r| r.get(6)).unwrap_or(0);
    let due = rows
        .iter()
        .map(|r| DueSoon {
            number: r.get(0),
            priority: r.get(1),
            team: r.get(2),
            state: r.get(3),
            target: r.get(4),
            due: r.get(5),
        })
        .collect();
    Ok((due, total))
}

/// Breaches recorded in `[since, now]`, by target. The escalate stage (`actor`) records a breach
/// as a transition whose details name the target and how late it was.
pub async fn breaches_by_target<C: GenericClient>(
    c: &C,
    actor: &str,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<(Option<String>, i64)>, StoreError> {
    let rows = c
        .query(
            "SELECT details->>'target', count(*) FROM ticket_transitions
             WHERE at >= $1 AND at <= $2 AND actor = $3
               AND details ? 'late_by_seconds' AND details ? 'target'
             GROUP BY 1",
            &[&since, &now, &actor],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A team's agents and load.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamRow {
    pub team: String,
    pub name: String,
    pub open: i64,
    pub capacity: i64,
    pub agents: i64,
    pub online: i64,
}

/// Every team with its open assigned tickets, capacity, agents and agents online.
pub async fn team_loads<C: GenericClient>(c: &C) -> Result<Vec<TeamRow>, StoreError> {
    let rows = c
        .query(
            "SELECT t.id, t.name, coalesce(sum(a.open_tickets), 0)::bigint, coalesce(sum(a.max_open), 0)::bigint,
                    count(a.id), count(a.id) FILTER (WHERE a.presence = 'online')
             FROM teams t LEFT JOIN agent_loads a ON a.team = t.id
             GROUP BY t.id, t.name ORDER BY t.id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TeamRow {
            team: r.get(0),
            name: r.get(1),
            open: r.get(2),
            capacity: r.get(3),
            agents: r.get(4),
            online: r.get(5),
        })
        .collect())
}
