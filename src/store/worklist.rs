//! The work list (`GET /v1/tickets`, a person's queue, a team board): tickets filtered and
//! ordered for people, a page at a time with a keyset cursor, so page 100 costs what page 1
//! does. Every order has an index that serves it (migration V9): `next_due` (the earliest
//! running deadline), `received_at`; the id breaks ties.

use super::{Db, StoreError};
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

/// Which tickets a principal may see at all (`core::access` decides; this is its SQL form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Everything,
    /// A supervisor's team.
    Team(String),
    /// An agent: their team's tickets and the ones assigned to them.
    Agent {
        agent: String,
        team: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Earliest running deadline first; tickets with none (resolved, closed) last.
    Due,
    /// Newest first.
    Received,
    /// Most urgent level first, then by deadline.
    Priority,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        match s {
            "due" => Some(Sort::Due),
            "received" => Some(Sort::Received),
            "priority" => Some(Sort::Priority),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Due => "due",
            Sort::Received => "received",
            Sort::Priority => "priority",
        }
    }
}

/// Where the previous page ended: the sort key and id of its last row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    pub sort: String,
    /// The priority's rank (for `priority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<i32>,
    /// The row's time key (`next_due` or `received_at`); `None`: no deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    Agent(String),
    Nobody,
}

/// A list query.
#[derive(Debug, Clone)]
pub struct Query {
    pub scope: Scope,
    pub assignee: Option<Assignee>,
    pub team: Option<String>,
    pub states: Vec<String>,
    pub priorities: Vec<String>,
    pub category: Option<String>,
    pub channel: Option<String>,
    /// A running deadline at or before this (and not yet passed).
    pub due_by: Option<DateTime<Utc>>,
    /// A running deadline already passed.
    pub breached: bool,
    /// Flagged for triage (`Some(true)`) or not (`Some(false)`); `None`: either.
    pub needs_triage: Option<bool>,
    /// The customer's identity terms (`core::search::customer_query_terms`): any of them.
    pub customer: Vec<String>,
    /// Search terms the ticket must all hold (`core::search::query_terms`).
    pub terms: Vec<String>,
    pub sort: Sort,
    /// The policy's priority levels, most urgent first (the `priority` order).
    pub levels: Vec<String>,
    pub limit: i64,
    pub after: Option<Cursor>,
    pub now: DateTime<Utc>,
}

/// One row of the list.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    #[serde(skip)]
    pub id: i64,
    pub number: String,
    pub state: String,
    pub channel: String,
    pub category: Option<String>,
    /// The classifier was unsure: a person chooses the category.
    pub needs_triage: bool,
    pub priority: Option<String>,
    pub team: Option<String>,
    pub assignee: Option<String>,
    pub subject: Option<String>,
    pub received_at: DateTime<Utc>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    pub next_due: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub first_responded: bool,
    pub customer_name: Option<String>,
    pub version: i32,
    /// The first words of the customer's message (for a list row), at most 140 characters.
    pub preview: String,
    #[serde(skip)]
    pub rank: Option<i32>,
}

impl Summary {
    /// The target whose deadline is `next_due`.
    pub fn next_target(&self) -> Option<&'static str> {
        let due = self.next_due?;
        Some(if !self.first_responded && self.first_response_due == Some(due) {
            "first_response"
        } else {
            "resolution"
        })
    }

    /// The cursor that continues after this row.
    pub fn cursor(&self, sort: Sort) -> Cursor {
        Cursor {
            sort: sort.as_str().to_owned(),
            rank: (sort == Sort::Priority).then_some(self.rank.unwrap_or(i32::MAX)),
            at: match sort {
                Sort::Received => Some(self.received_at),
                _ => self.next_due,
            },
            id: self.id,
        }
    }
}

/// Builds `WHERE` conditions with numbered parameters.
struct Conditions {
    clauses: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Conditions {
    fn param(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    fn add(&mut self, clause: String) {
        self.clauses.push(clause);
    }
}

const PREVIEW_CHARS: i32 = 140;
/// The longest a list query may run (milliseconds).
const LIST_TIMEOUT_MS: u32 = 5_000;

/// A page of tickets and whether more follow.
pub async fn list(db: &Db, q: &Query) -> Result<(Vec<Summary>, bool), StoreError> {
    let mut c = Conditions {
        clauses: Vec::new(),
        params: Vec::new(),
    };
    let mut branches: Option<(String, String)> = None;
    match &q.scope {
        Scope::Everything => {}
        Scope::Team(team) => {
            let p = c.param(team.clone());
            c.add(format!("t.team = {p}"));
        }
        Scope::Agent { agent, team } => {
            let a = c.param(agent.clone());
            match team {
                // Two branches, each walking its own index in order (see below): an OR of the
                // two would read the whole team to sort it.
                Some(team) => {
                    let tp = c.param(team.clone());
                    branches = Some((format!("t.team = {tp}"), format!("t.assignee = {a}")));
                }
                None => c.add(format!("t.assignee = {a}")),
            }
        }
    }
    match &q.assignee {
        Some(Assignee::Agent(a)) => {
            let p = c.param(a.clone());
            c.add(format!("t.assignee = {p}"));
        }
        Some(Assignee::Nobody) => c.add("t.assignee IS NULL".into()),
        None => {}
    }
    if let Some(team) = &q.team {
        let p = c.param(team.clone());
        c.add(format!("t.team = {p}"));
    }
    if !q.states.is_empty() {
        let p = c.param(q.states.clone());
        c.add(format!("t.state = ANY({p})"));
    }
    if !q.priorities.is_empty() {
        let p = c.param(q.priorities.clone());
        c.add(format!("t.priority = ANY({p})"));
    }
    if let Some(cat) = &q.category {
        let p = c.param(cat.clone());
        c.add(format!("t.category = {p}"));
    }
    if let Some(ch) = &q.channel {
        let p = c.param(ch.clone());
        c.add(format!("t.channel = {p}"));
    }
    if let Some(by) = q.due_by {
        let now = c.param(q.now);
        let p = c.param(by);
        c.add(format!("t.next_due > {now} AND t.next_due <= {p}"));
    }
    if q.breached {
        let now = c.param(q.now);
        c.add(format!("t.next_due <= {now}"));
    }
    match q.needs_triage {
        Some(true) => c.add("t.needs_triage".into()),
        Some(false) => c.add("NOT t.needs_triage".into()),
        None => {}
    }
    if !q.customer.is_empty() {
        let p = c.param(q.customer.clone());
        c.add(format!("t.search_terms && {p}::text[]"));
    }
    if !q.terms.is_empty() {
        let p = c.param(q.terms.clone());
        c.add(format!("t.search_terms @> {p}::text[]"));
    }
    let levels = c.param(q.levels.clone());
    let rank = format!("coalesce(array_position({levels}::text[], t.priority), 2147483647)");
    // One priority asked for: every row has the same rank, so the order is the deadline's
    // (which an index serves; the rank expression none does).
    let one_rank = q.sort == Sort::Priority && q.priorities.len() == 1;
    let order_of = |prefix: &str, rank: &str| match q.sort {
        Sort::Due => format!("{prefix}next_due ASC NULLS LAST, {prefix}id ASC"),
        Sort::Received => format!("{prefix}received_at DESC, {prefix}id DESC"),
        Sort::Priority if one_rank => format!("{prefix}next_due ASC NULLS LAST, {prefix}id ASC"),
        Sort::Priority => format!("{rank} ASC, {prefix}next_due ASC NULLS LAST, {prefix}id ASC"),
    };
    let order = order_of("t.", &rank);
    if let Some(cur) = &q.after {
        let id = c.param(cur.id);
        let after_due = |c: &mut Conditions, at: Option<DateTime<Utc>>| match at {
            Some(at) => {
                let p = c.param(at);
                format!("(t.next_due > {p} OR (t.next_due = {p} AND t.id > {id}) OR t.next_due IS NULL)")
            }
            None => format!("(t.next_due IS NULL AND t.id > {id})"),
        };
        let clause = match q.sort {
            Sort::Due => after_due(&mut c, cur.at),
            Sort::Received => {
                let p = c.param(cur.at.unwrap_or(q.now));
                format!("(t.received_at, t.id) < ({p}, {id})")
            }
            Sort::Priority if one_rank => after_due(&mut c, cur.at),
            Sort::Priority => {
                let r = c.param(cur.rank.unwrap_or(i32::MAX));
                let same = after_due(&mut c, cur.at);
                format!("({rank} > {r} OR ({rank} = {r} AND {same}))")
            }
        };
        c.add(clause);
    }
    let limit = c.param(q.limit + 1);
    let columns = format!(
        "t.id, t.number, t.state, t.channel, t.category, t.needs_triage, t.priority, t.team, t.assignee, t.subject,
         t.received_at, t.first_response_due, t.resolution_due, t.next_due,
         t.first_responded_at IS NOT NULL AS first_responded, t.customer->>'name' AS customer_name,
         t.version, left(t.body, {PREVIEW_CHARS}) AS preview, {rank} AS rank"
    );
    let filter = |extra: Option<&str>| {
        let all: Vec<&str> = c.clauses.iter().map(String::as_str).chain(extra).collect();
        if all.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", all.join(" AND "))
        }
    };
    let sql = match &branches {
        None => format!(
            "SELECT {columns} FROM tickets t {} ORDER BY {order} LIMIT {limit}",
            filter(None)
        ),
        // An agent: the team's page and the own page, each in index order, merged.
        Some((team, mine)) => format!(
            "SELECT * FROM (
               (SELECT {columns} FROM tickets t {} ORDER BY {order} LIMIT {limit})
               UNION
               (SELECT {columns} FROM tickets t {} ORDER BY {order} LIMIT {limit})
             ) u ORDER BY {} LIMIT {limit}",
            filter(Some(team)),
            filter(Some(mine)),
            order_of("u.", "u.rank")
        ),
    };
    let mut client = db.pool.get().await?;
    let params: Vec<&(dyn ToSql + Sync)> = c.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    // A list that runs long is cut off by the server, not left running after its caller gave
    // up: people's queries must not take the connections intake and actions need.
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SET LOCAL statement_timeout = {LIST_TIMEOUT_MS}"))
        .await?;
    let rows = tx.query(&sql, &params).await?;
    tx.commit().await?;
    let mut out: Vec<Summary> = rows
        .iter()
        .map(|r| Summary {
            id: r.get("id"),
            number: r.get("number"),
            state: r.get("state"),
            channel: r.get("channel"),
            category: r.get("category"),
            needs_triage: r.get("needs_triage"),
            priority: r.get("priority"),
            team: r.get("team"),
            assignee: r.get("assignee"),
            subject: r.get("subject"),
            received_at: r.get("received_at"),
            first_response_due: r.get("first_response_due"),
            resolution_due: r.get("resolution_due"),
            next_due: r.get("next_due"),
            first_responded: r.get("first_responded"),
            customer_name: r.get("customer_name"),
            version: r.get("version"),
            preview: r.get("preview"),
            rank: r.get("rank"),
        })
        .collect();
    let more = out.len() as i64 > q.limit;
    out.truncate(q.limit.max(0) as usize);
    Ok((out, more))
}

/// An agent's load, for `GET /v1/me` and a team board.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgentLoad {
    pub id: String,
    pub name: String,
    pub team: String,
    pub presence: String,
    pub open_tickets: i32,
    pub max_open: i32,
}

/// The agents of `team` (or the one agent `id`), with presence and load.
pub async fn agent_loads(db: &Db, team: Option<&str>, id: Option<&str>) -> Result<Vec<AgentLoad>, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            "SELECT id, name, team, presence, open_tickets, max_open FROM agent_loads
             WHERE ($1::text IS NULL OR team = $1) AND ($2::text IS NULL OR id = $2)
             ORDER BY presence = 'online' DESC, open_tickets DESC, id",
            &[&team, &id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AgentLoad {
            id: r.get(0),
            name: r.get(1),
            team: r.get(2),
            presence: r.get(3),
            open_tickets: r.get(4),
            max_open: r.get(5),
        })
        .collect())
}

/// An escalation waiting for someone to acknowledge it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpenEscalation {
    pub number: String,
    pub target: String,
    /// Counted from 1.
    pub step: Option<i32>,
    pub notified: Option<String>,
    pub breached_at: DateTime<Utc>,
    pub priority: Option<String>,
    pub assignee: Option<String>,
}

/// The team's escalations nobody has acknowledged or stopped, oldest breach first.
pub async fn open_escalations(db: &Db, team: &str, limit: i64) -> Result<Vec<OpenEscalation>, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            "SELECT t.number, e.target, e.last_step, e.last_notified, e.breached_at, t.priority, t.assignee
             FROM escalations e JOIN tickets t ON t.id = e.ticket_id
             WHERE t.team = $1 AND e.acknowledged_at IS NULL AND e.stopped_at IS NULL
             ORDER BY e.breached_at, t.id LIMIT $2",
            &[&team, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| OpenEscalation {
            number: r.get(0),
            target: r.get(1),
            step: r.get::<_, Option<i32>>(2).map(|s| s + 1),
            notified: r.get(3),
            breached_at: r.get(4),
            priority: r.get(5),
            assignee: r.get(6),
        })
        .collect())
}

/// How many of the team's tickets wait in its queue.
pub async fn queued(db: &Db, team: &str) -> Result<i64, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_one(
            "SELECT count(*) FROM tickets WHERE team = $1 AND state = 'queued'",
            &[&team],
        )
        .await?;
    Ok(row.get(0))
}

/// The numbers of `agent`'s tickets nobody has started (assigned, no response yet).
pub async fn unstarted_of(db: &Db, agent: &str) -> Result<Vec<String>, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            "SELECT number FROM tickets WHERE assignee = $1 AND state = 'assigned' AND first_responded_at IS NULL ORDER BY id",
            &[&agent],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Fills in the search terms of tickets stored before they were indexed (migration V9), a
/// batch at a time; returns how many were written.
pub async fn index_unindexed(db: &Db, batch: i64) -> Result<u64, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            "SELECT id, subject, body, customer, channel FROM tickets WHERE search_terms IS NULL ORDER BY id LIMIT $1",
            &[&batch],
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let terms: Vec<String> = rows
        .iter()
        .map(|r| {
            let mut terms = crate::core::search::document_terms(r.get(1), r.get(2));
            let customer: crate::core::customer::Customer = serde_json::from_value(r.get(3)).unwrap_or_default();
            terms.extend(crate::core::search::identity_terms(&customer, r.get(4)));
            terms.join(" ")
        })
        .collect();
    let n = client
        .execute(
            "UPDATE tickets t SET search_terms = string_to_array(u.st, ' ')
             FROM unnest($1::bigint[], $2::text[]) AS u(id, st)
             WHERE t.id = u.id AND t.search_terms IS NULL",
            &[&ids, &terms],
        )
        .await?;
    Ok(n)
}
