//! The live operations dashboard: `GET /dashboard` (one self-contained HTML page, inline CSS and
//! JavaScript) and its data, `GET /v1/dashboard` (JSON), which the page fetches every
//! [`REFRESH_SECONDS`].
//!
//! Both are served without an API key, so the data holds no personal data at all: counts per
//! queue, state and team, and for tickets at risk only the ticket number, priority, team, SLA
//! target and deadline (never a customer, contact detail, message text or agent).
//!
//! What it shows:
//! - queue depths: messages ready in each stage queue and the dead-letter queue (passive
//!   declare on a broker channel kept by the dashboard; `null` with `broker_ok: false` when the
//!   broker cannot be reached, the rest of the page still works);
//! - open tickets by state (every state but `closed`, zeros included);
//! - tickets at risk: an SLA target (first response, resolution) due within
//!   [`AT_RISK_MINUTES`] and not met (a resolution clock paused while waiting for the customer
//!   is not at risk);
//! - breaches today: `sla.breached` transitions since local midnight in the policy's time zone,
//!   by target;
//! - each team's load: its agents' open tickets over their capacity, agents and agents online.

use crate::bus::{self, BusError};
use crate::contracts::StageName;
use crate::core::state::TicketState;
use crate::runtime::Services;
use crate::store::{StoreError, dashboard};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How often the page fetches the data again.
pub const REFRESH_SECONDS: u64 = 5;
/// A target due within this many minutes and not met is at risk.
pub const AT_RISK_MINUTES: i64 = 15;
/// At most this many tickets at risk are listed (the soonest due); `at_risk_total` counts all.
pub const AT_RISK_LIMIT: i64 = 100;
/// How long the data endpoint waits for the broker before reporting queues as unknown.
const BROKER_TIMEOUT: Duration = Duration::from_secs(3);

/// The page, with its refresh interval filled in.
const PAGE: &str = include_str!("dashboard.html");

/// The data behind the page.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub generated_at: DateTime<Utc>,
    pub time_zone: String,
    pub refresh_seconds: u64,
    /// Whether the queue depths could be read.
    pub broker_ok: bool,
    /// Messages ready per queue (`dead` last); `None` when the broker is unreachable.
    pub queues: Option<Vec<QueueDepth>>,
    /// Tickets not closed, by state, every such state present.
    pub open_by_state: BTreeMap<String, i64>,
    pub open_total: i64,
    pub at_risk_minutes: i64,
    pub at_risk_total: i64,
    pub at_risk: Vec<AtRisk>,
    pub breaches_today: Breaches,
    pub teams: Vec<TeamLoad>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueDepth {
    pub queue: String,
    pub ready: u32,
}

/// One target of one ticket about to be missed.
#[derive(Debug, Clone, Serialize)]
pub struct AtRisk {
    pub number: String,
    pub priority: Option<String>,
    pub team: Option<String>,
    pub state: String,
    pub target: String,
    pub due: DateTime<Utc>,
    /// Whole minutes left, rounded down (0 in the last minute).
    pub minutes_left: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Breaches {
    /// Local midnight, in UTC.
    pub since: DateTime<Utc>,
    pub total: i64,
    /// Per target (`first_response`, `resolution`, `next_update`), zeros included.
    pub by_target: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamLoad {
    pub team: String,
    pub name: String,
    /// Open tickets held by the team's agents.
    pub open: i64,
    /// Sum of the agents' `max_open`.
    pub capacity: i64,
    /// `open / capacity` (1 when there is load but no capacity).
    pub load_ratio: f64,
    pub agents: i64,
    pub online: i64,
}

struct Dashboard {
    app: Services,
    /// A broker connection and channel for passive declares, rebuilt after a failure.
    link: Mutex<Option<(lapin::Connection, lapin::Channel)>>,
    /// The last snapshot and when it was taken.
    last: Mutex<Option<(std::time::Instant, serde_json::Value)>>,
}

/// `/dashboard` and `/v1/dashboard`, unauthenticated.
pub fn router(app: impl Into<Services>) -> Router {
    let app: Services = app.into();
    let state = Arc::new(Dashboard {
        app,
        link: Mutex::new(None),
        last: Mutex::new(None),
    });
    Router::new()
        .route("/dashboard", get(page))
        .route("/v1/dashboard", get(data))
        .with_state(state)
}

async fn page() -> Response {
    let html = PAGE.replace("{{REFRESH_MS}}", &(REFRESH_SECONDS * 1000).to_string());
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

async fn data(State(d): State<Arc<Dashboard>>) -> Response {
    // One snapshot at a time, reused for a second: the page is public, and a crowd refreshing
    // it must cost one database connection, not one each (key checks share the pool).
    let mut cached = d.last.lock().await;
    if let Some((at, body)) = cached.as_ref()
        && at.elapsed() < std::time::Duration::from_secs(1)
    {
        return ([(header::CACHE_CONTROL, "no-store")], Json(body.clone())).into_response();
    }
    let queues = d.queues().await;
    if let Err(e) = &queues {
        tracing::debug!(error = %e, "dashboard cannot read queue depths");
    }
    match snapshot(&d.app, Utc::now(), queues.ok()).await {
        Ok(s) => {
            let body = serde_json::to_value(&s).unwrap_or_default();
            *cached = Some((std::time::Instant::now(), body.clone()));
            ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "dashboard cannot read the database");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "error": "database_unavailable",
                    "message": "the dashboard cannot read Postgres; retrying on the next refresh",
                })),
            )
                .into_response()
        }
    }
}

impl Dashboard {
    async fn queues(&self) -> Result<Vec<QueueDepth>, BusError> {
        let mut link = self.link.lock().await;
        let result = tokio::time::timeout(BROKER_TIMEOUT, async {
            if link.is_none() {
                let conn = bus::connect(&self.app.settings.amqp_urls(), "switchboard-dashboard").await?;
                let ch = conn.create_channel().await?;
                *link = Some((conn, ch));
            }
            let Some((_, ch)) = link.as_ref() else {
                return Err(BusError::NoUrl);
            };
            let topo = &self.app.topo;
            let mut out = Vec::with_capacity(StageName::ALL.len() + 1);
            for q in StageName::consumers().map(StageName::as_str) {
                out.push(QueueDepth {
                    queue: q.to_owned(),
                    ready: topo.depth(ch, &topo.queue(q)).await?,
                });
            }
            out.push(QueueDepth {
                queue: "dead".to_owned(),
                ready: topo.depth(ch, &topo.dead_queue()).await?,
            });
            Ok(out)
        })
        .await;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(BusError::ConnectTimeout {
                target: "RabbitMQ (dashboard queue depths)".into(),
                after: BROKER_TIMEOUT,
            }),
        };
        if result.is_err() {
            // A broken channel (or connection) is rebuilt on the next request.
            *link = None;
        }
        result
    }
}

/// Local midnight of `now`'s day in `tz`, in UTC (the earliest one if a DST change repeats it;
/// `now` itself if midnight does not exist that day).
pub fn local_midnight(tz: chrono_tz::Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let day = now.with_timezone(&tz).date_naive();
    tz.from_local_datetime(&day.and_time(chrono::NaiveTime::MIN))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now)
}

/// Reads everything but the queue depths (given, or `None` when the broker is unreachable).
pub async fn snapshot(
    app: &Services,
    now: DateTime<Utc>,
    queues: Option<Vec<QueueDepth>>,
) -> Result<Snapshot, StoreError> {
    let client = app.db.pool.get().await?;
    let open_states: Vec<String> = TicketState::ALL
        .into_iter()
        .filter(|s| s.is_open())
        .map(|s| s.as_str().to_owned())
        .collect();

    let mut open_by_state: BTreeMap<String, i64> = open_states.iter().map(|s| (s.clone(), 0)).collect();
    open_by_state.extend(dashboard::open_by_state(&**client, &open_states).await?);
    let open_total = open_by_state.values().sum();

    let horizon = now + Span::minutes(AT_RISK_MINUTES);
    let waiting = TicketState::WaitingForCustomer.as_str();
    let (rows, at_risk_total) =
        dashboard::due_soon(&**client, &open_states, waiting, now, horizon, AT_RISK_LIMIT).await?;
    let at_risk = rows
        .into_iter()
        .map(|r| AtRisk {
            number: r.number,
            priority: r.priority,
            team: r.team,
            state: r.state,
            target: r.target,
            due: r.due,
            minutes_left: (r.due - now).num_minutes(),
        })
        .collect();

    let since = local_midnight(app.policy.tz, now);
    let mut by_target: BTreeMap<String, i64> = ["first_response", "resolution", "next_update"]
        .into_iter()
        .map(|t| (t.to_owned(), 0))
        .collect();
    for (target, n) in dashboard::breaches_by_target(&**client, StageName::Escalate.as_str(), since, now).await? {
        *by_target.entry(target.unwrap_or_else(|| "unknown".into())).or_default() += n;
    }
    let breaches_today = Breaches {
        since,
        total: by_target.values().sum(),
        by_target,
    };

    let teams = dashboard::team_loads(&**client)
        .await?
        .into_iter()
        .map(|t| TeamLoad {
            load_ratio: crate::runtime::ops::collector::load_ratio(t.open, t.capacity),
            team: t.team,
            name: t.name,
            open: t.open,
            capacity: t.capacity,
            agents: t.agents,
            online: t.online,
        })
        .collect();

    Ok(Snapshot {
        generated_at: now,
        time_zone: app.policy.tz.name().to_owned(),
        refresh_seconds: REFRESH_SECONDS,
        broker_ok: queues.is_some(),
        queues,
        open_by_state,
        open_total,
        at_risk_minutes: AT_RISK_MINUTES,
        at_risk_total,
        at_risk,
        breaches_today,
        teams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight_is_local() {
        let now = Utc.with_ymd_and_hms(2026, 5, 6, 17, 30, 0).unwrap();
        // 01:30 on 7 May in Shanghai: its midnight is 16:00 UTC on 6 May.
        let m = local_midnight(chrono_tz::Asia::Shanghai, now);
        assert_eq!(m, Utc.with_ymd_and_hms(2026, 5, 6, 16, 0, 0).unwrap());
        assert_eq!(
            local_midnight(chrono_tz::UTC, now),
            Utc.with_ymd_and_hms(2026, 5, 6, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn page_is_self_contained() {
        assert!(
            !PAGE.contains("http://") && !PAGE.contains("https://"),
            "no external resources"
        );
        assert!(PAGE.contains("/v1/dashboard") && PAGE.contains("{{REFRESH_MS}}"));
    }
}
