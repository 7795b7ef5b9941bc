//! Operations endpoints on `metrics_addr`: Prometheus `/metrics`, liveness `/healthz` and
//! readiness `/readyz`, plus the collector of gauges that no message path updates.
//!
//! One small axum server per process (every worker, `switchboard run`, the gateway). The
//! Prometheus recorder is process-wide (the `metrics` crate has one global recorder), so it is
//! installed once and every later call reuses its handle.

pub mod collector;
pub mod health;

use crate::bus::Topology;
use crate::config::Settings;
use crate::store::Db;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use health::{Check, Health, Readiness};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long `/readyz` waits for Postgres to answer `SELECT 1` before calling it unusable.
pub const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often readiness is evaluated for the `switchboard_ready` gauge, besides every probe.
const READINESS_EVERY: Duration = Duration::from_secs(5);
/// How often histograms are drained into the exporter's summaries (the exporter needs a tick).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Buckets for most `_seconds` histograms: one millisecond to a minute.
const LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Intake → assigned includes time spent waiting in a team queue: up to a day.
const ASSIGN_LATENCY_BUCKETS: [f64; 16] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0,
];
/// Messages per batch.
const BATCH_SIZE_BUCKETS: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0];

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(
        "metrics address {addr:?} is not host:port ({message}); set SWITCHBOARD_METRICS_ADDR (or metrics_addr) to e.g. 0.0.0.0:9100, or unset it to disable the endpoint"
    )]
    BadAddr { addr: String, message: String },
    #[error(
        "cannot listen on {addr} for /metrics: {source}; is another process using that port? Choose another with SWITCHBOARD_METRICS_ADDR"
    )]
    Bind { addr: String, source: std::io::Error },
    #[error("cannot install the Prometheus recorder: {0}")]
    Recorder(String),
}

static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn recorder() -> Result<PrometheusHandle, OpsError> {
    let mut slot = HANDLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(h) = slot.as_ref() {
        return Ok(h.clone());
    }
    let bad = |e: metrics_exporter_prometheus::BuildError| OpsError::Recorder(e.to_string());
    let handle = PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS)
        .map_err(bad)?
        .set_buckets_for_metric(
            Matcher::Full("switchboard_intake_to_assigned_seconds".into()),
            &ASSIGN_LATENCY_BUCKETS,
        )
        .map_err(bad)?
        .set_buckets_for_metric(Matcher::Full("switchboard_batch_size".into()), &BATCH_SIZE_BUCKETS)
        .map_err(bad)?
        .install_recorder()
        .map_err(bad)?;
    // Without a runtime there is nobody to tick; a bare render still works.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let h = handle.clone();
        rt.spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tick.tick().await;
                h.run_upkeep();
            }
        });
    }
    describe();
    *slot = Some(handle.clone());
    Ok(handle)
}

/// The kind of a metric family, for its `# HELP` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric family the library records, with its `# HELP` text. A family recorded anywhere
/// (`metrics::counter!` and friends) must be here (a test reads every call site), and in the
/// Metrics table of docs/OPERATIONS.md.
#[rustfmt::skip] // A table: one family a line.
pub const FAMILIES: &[(&str, Kind, &str)] = &[
    // The consumer loop, every stage.
    ("switchboard_messages_total", Kind::Counter, "Messages settled by a stage, by outcome (done, duplicate, dead, retry)"),
    ("switchboard_dead_lettered_total", Kind::Counter, "Messages a stage dead-lettered (confirmed by the broker)"),
    ("switchboard_batch_seconds", Kind::Histogram, "Time to process, publish and settle one batch"),
    ("switchboard_message_processing_seconds", Kind::Histogram, "Per message: time from the start of its batch to its ack"),
    ("switchboard_batch_size", Kind::Histogram, "Messages per batch"),
    ("switchboard_work_superseded_total", Kind::Counter, "Work messages for a ticket version already moved past (settled as duplicates)"),
    ("switchboard_chained_total", Kind::Counter, "Tickets a chained stage took in memory from the stage before it, by stage and outcome (done, duplicate, handed_back to its queue)"),
    // The stages.
    ("switchboard_intake_total", Kind::Counter, "Intake requests that opened a ticket or joined one, by channel and result"),
    ("switchboard_intake_to_assigned_seconds", Kind::Histogram, "From a request's received_at to its assignment to an agent"),
    ("switchboard_assignments_total", Kind::Counter, "Queued tickets assigned when capacity freed"),
    ("switchboard_sla_breaches_total", Kind::Counter, "SLA breaches, by target and team"),
    ("switchboard_escalations_total", Kind::Counter, "Escalation steps fired, by target"),
    ("switchboard_timer_lateness_seconds", Kind::Histogram, "How late the escalate stage handled a fired timer (due to fired)"),
    ("switchboard_deliveries_planned_total", Kind::Counter, "Deliveries the notify stage planned, by kind and transport"),
    // The scheduler and the deliver stage.
    ("switchboard_timer_claim_lateness_seconds", Kind::Histogram, "How late the scheduler claimed a due SLA timer"),
    ("switchboard_timers_fired_total", Kind::Counter, "Timers the scheduler fired"),
    ("switchboard_sweeper_redriven_total", Kind::Counter, "Stalled tickets and team queues the scheduler's sweeper sent on again, by kind"),
    ("switchboard_search_backfilled_total", Kind::Counter, "Tickets from before the work list's search given their search terms"),
    ("switchboard_daily_reports_total", Kind::Counter, "Daily roll-up reports queued for delivery"),
    ("switchboard_deliveries_total", Kind::Counter, "Delivery attempts, by transport and result (delivered, retry, failed)"),
    ("switchboard_delivery_seconds", Kind::Histogram, "Time of one delivery attempt, by transport"),
    // The gateway.
    ("switchboard_gateway_requests_total", Kind::Counter, "Intake requests answered by the gateway, by channel and HTTP status"),
    ("switchboard_gateway_accept_seconds", Kind::Histogram, "From a request's arrival to its 202 (publish confirmed), by channel"),
    ("switchboard_gateway_auth_throttled_total", Kind::Counter, "Requests refused 429 after too many unknown credentials from one address"),
    ("switchboard_gateway_shed_total", Kind::Counter, "Requests refused 503 at the limit of requests in flight"),
    ("switchboard_gateway_timeouts_total", Kind::Counter, "Requests answered 408 past the request deadline"),
    ("switchboard_gateway_connections_refused_total", Kind::Counter, "Connections closed at accept, over the connection limit"),
    ("switchboard_api_list_seconds", Kind::Histogram, "Time to answer GET /v1/tickets (the work list)"),
    ("switchboard_surveys_answered_total", Kind::Counter, "Satisfaction surveys answered"),
    // The collector and the health report.
    ("switchboard_queue_messages_ready", Kind::Gauge, "Messages ready in a queue (passive declare, every collector tick)"),
    ("switchboard_dead_letters", Kind::Gauge, "Messages in the dead-letter queue"),
    ("switchboard_open_tickets", Kind::Gauge, "Tickets not closed, by state and team"),
    ("switchboard_team_load_ratio", Kind::Gauge, "Sum of agents' open tickets over the sum of their max_open, per team"),
    ("switchboard_team_open_assigned_tickets", Kind::Gauge, "Open tickets held by the team's agents"),
    ("switchboard_team_agents_online", Kind::Gauge, "Agents online, per team"),
    ("switchboard_collector_up", Kind::Gauge, "1 when the last collector tick could read the source (broker, postgres)"),
    ("switchboard_calendar_missing_year", Kind::Gauge, "The year whose public holidays are due but not declared, 0 when none"),
    ("switchboard_ready", Kind::Gauge, "1 when the process's last readiness evaluation passed (as /readyz), else 0"),
];

/// `# HELP` lines, so a scrape explains itself.
fn describe() {
    for &(name, kind, help) in FAMILIES {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

/// What the endpoints need: the metrics handle, and for `/readyz` the process's health and pool
/// once it has started.
#[derive(Clone)]
pub struct OpsState {
    pub handle: PrometheusHandle,
    /// `None`: this process registers no readiness checks of its own (every check passes).
    /// Otherwise empty while the process is starting (waiting for Postgres: not ready), then
    /// what `/readyz` checks.
    started: Option<Arc<OnceLock<Started>>>,
}

/// The parts of a started process that `/readyz` checks.
#[derive(Clone)]
struct Started {
    health: Arc<Health>,
    db: Option<Db>,
}

impl OpsState {
    /// A process with no readiness checks of its own: ready whenever it answers.
    pub fn unchecked(handle: PrometheusHandle) -> OpsState {
        OpsState { handle, started: None }
    }

    /// A process still starting: `/healthz` answers, `/readyz` is 503 until [`OpsState::started`].
    pub fn starting(handle: PrometheusHandle) -> OpsState {
        OpsState {
            handle,
            started: Some(Arc::new(OnceLock::new())),
        }
    }

    /// A started process: `/readyz` checks its health report and, when given, its pool.
    pub fn checking(handle: PrometheusHandle, health: Arc<Health>, db: Option<Db>) -> OpsState {
        let state = OpsState::starting(handle);
        state.started(health, db);
        state
    }

    /// The process has started: from now on `/readyz` checks these (the first call wins).
    pub fn started(&self, health: Arc<Health>, db: Option<Db>) {
        if let Some(cell) = &self.started {
            let _ = cell.set(Started { health, db });
        }
    }
}

pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics_page(State(s): State<OpsState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        s.handle.render(),
    )
        .into_response()
}

async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(serde_json::json!({ "status": "alive" }))).into_response()
}

async fn readyz(State(s): State<OpsState>) -> Response {
    let readiness = readiness(&s).await;
    let code = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(readiness)).into_response()
}

/// Broker connection, consumers, and a Postgres pool connection answering `SELECT 1`; before
/// the process has started, one failed `startup` check. Also sets the `switchboard_ready` gauge
/// (for a process with checks), so Prometheus sees readiness change (and flap).
pub async fn readiness(s: &OpsState) -> Readiness {
    let readiness = match &s.started {
        None => Readiness::from_checks(Vec::new()),
        Some(cell) => match cell.get() {
            None => Readiness::from_checks(vec![(
                "startup",
                Check::fail("starting: waiting for Postgres (the log says why it is not reachable yet)"),
            )]),
            Some(started) => started_readiness(started).await,
        },
    };
    // A process without checks of its own (the gateway's metrics port) knows nothing to report:
    // the gateway sets the gauge from its listener's /readyz.
    if s.started.is_some() {
        metrics::gauge!("switchboard_ready").set(if readiness.ready { 1.0 } else { 0.0 });
    }
    readiness
}

async fn started_readiness(s: &Started) -> Readiness {
    let mut checks = s.health.runtime_checks();
    if let Some(db) = &s.db {
        let pg = match tokio::time::timeout(DB_CHECK_TIMEOUT, db.ping()).await {
            Ok(Ok(())) => Check::pass(format!("Postgres at {} answered SELECT 1", db.target)),
            Ok(Err(e)) => Check::fail(format!("{e}")),
            Err(_) => Check::fail(format!(
                "Postgres at {} did not answer SELECT 1 within {DB_CHECK_TIMEOUT:?}",
                db.target
            )),
        };
        checks.push(("postgres", pg));
    }
    let mut readiness = Readiness::from_checks(checks);
    readiness.warnings = s.health.warnings(chrono::Utc::now());
    readiness
}

/// Parses `addr`, binds it and serves the endpoints in the background until `shutdown`.
/// Returns the bound address (useful with port 0).
pub fn serve(addr: &str, state: OpsState, shutdown: CancellationToken) -> Result<SocketAddr, OpsError> {
    let socket: SocketAddr = addr.parse().map_err(|e: std::net::AddrParseError| OpsError::BadAddr {
        addr: addr.to_owned(),
        message: e.to_string(),
    })?;
    let bind_err = |source| OpsError::Bind {
        addr: addr.to_owned(),
        source,
    };
    // Bound synchronously so a port clash is reported at start, not lost in a task.
    let std_listener = std::net::TcpListener::bind(socket).map_err(bind_err)?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    let local = std_listener.local_addr().map_err(bind_err)?;
    let listener = tokio::net::TcpListener::from_std(std_listener).map_err(bind_err)?;
    let app = router(state);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(listen = %local, "serving /metrics, /healthz and /readyz");
    Ok(local)
}

/// The endpoints of a process, served from its start: `/healthz` answers at once (a process
/// waiting for its database is alive), `/readyz` is 503 until [`Ops::started`].
pub struct Ops {
    state: OpsState,
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    shutdown: CancellationToken,
}

/// Serves the endpoints on `metrics_addr`, before anything else is started; `None` when it is
/// unset. Call [`Ops::started`] once the process has its database and health report.
pub fn serve_early(settings: &Settings, shutdown: CancellationToken) -> Result<Option<Ops>, OpsError> {
    let Some(addr) = settings.metrics_addr.as_deref() else {
        return Ok(None);
    };
    let state = OpsState::starting(recorder()?);
    let local = serve(addr, state.clone(), shutdown.clone())?;
    // Readiness is evaluated on a timer too, not only when probed, so `switchboard_ready` shows
    // every change to Prometheus (the flapping alert reads it).
    let (watched, stop) = (state.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(READINESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => { readiness(&watched).await; }
            }
        }
    });
    Ok(Some(Ops {
        state,
        addr: local,
        shutdown,
    }))
}

impl Ops {
    /// The process has started: `/readyz` checks its health and pool from now on, and the gauge
    /// collector and the calendar watch start.
    pub fn started(&self, settings: &Settings, topo: &Topology, db: &Db, health: &Arc<Health>) {
        self.state.started(health.clone(), Some(db.clone()));
        // The calendar warning and its gauge, again now that the recorder is installed, and every
        // ten minutes (a process started in September warns from October 1 on).
        let (watched, stop) = (health.clone(), self.shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => { watched.warnings(chrono::Utc::now()); }
                }
            }
        });
        collector::spawn(settings.amqp_urls(), topo.clone(), db.clone(), self.shutdown.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(router: &Router, path: &str) -> (StatusCode, String) {
        let resp = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_year_without_public_holidays_warns_on_readyz_and_in_a_gauge_without_failing() {
        let handle = recorder().unwrap();
        let health = Health::new();
        health.register("intake", 1);
        health.set_connected("intake", true);
        let _consumer = health.consumer_started("intake");
        let router = router(OpsState::checking(handle, health.clone(), None));
        let (code, body) = get(&router, "/readyz").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert!(
            !body.contains("warnings"),
            "nothing watched, nothing to warn of: {body}"
        );

        // Only 1999 declared: the current year is always missing.
        let mut declared = crate::core::calendar::PublicHolidays::default();
        declared.years.insert(1999, None);
        health.watch_public_holidays(declared, chrono_tz::Asia::Shanghai, chrono::Utc::now());
        let (code, body) = get(&router, "/readyz").await;
        assert_eq!(code, StatusCode::OK, "a warning does not fail readiness: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let year = chrono::Datelike::year(&chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai));
        let warning = json["warnings"]["calendar"].as_str().unwrap();
        assert!(
            warning.contains(&format!("for {year}")) && warning.contains("calendar import"),
            "{warning}"
        );
        let (_, metrics) = get(&router, "/metrics").await;
        let gauge = metrics
            .lines()
            .find_map(|l| l.strip_prefix("switchboard_calendar_missing_year "))
            .unwrap_or_else(|| panic!("no gauge in {metrics}"));
        assert_eq!(gauge.trim().parse::<f64>().unwrap(), f64::from(year));
    }

    #[tokio::test]
    async fn endpoints_answer_and_readyz_names_the_failed_check() {
        let handle = recorder().unwrap();
        metrics::counter!("switchboard_messages_total", "stage" => "intake", "outcome" => "done").increment(1);
        let health = Health::new();
        health.register("intake", 1);
        let router = router(OpsState::checking(handle, health.clone(), None));

        let (code, body) = get(&router, "/healthz").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("alive"));

        let (code, body) = get(&router, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("switchboard_messages_total"), "{body}");

        let (code, body) = get(&router, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["ready"], false);
        assert_eq!(json["failed"], serde_json::json!(["broker", "consumers"]));
        assert!(json["checks"]["broker"]["detail"].as_str().unwrap().contains("intake"));

        health.set_connected("intake", true);
        let _consumer = health.consumer_started("intake");
        let (code, body) = get(&router, "/readyz").await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }

    /// Every family recorded in the library: the name in each `metrics::counter!`,
    /// `metrics::gauge!` or `metrics::histogram!` call of `src/`.
    fn recorded_families() -> std::collections::BTreeMap<String, String> {
        let call = regex::Regex::new(r#"metrics::(counter|gauge|histogram)!\(\s*"([a-z_]+)""#).unwrap();
        let mut found = std::collections::BTreeMap::new();
        let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for c in call.captures_iter(&text) {
                        found.insert(c[2].to_owned(), format!("{} ({})", path.display(), &c[1]));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_recorded_metric_family_has_help_text_and_a_row_in_the_metrics_table() {
        let recorded = recorded_families();
        assert!(recorded.len() >= 30, "the scan finds the call sites: {recorded:?}");
        let table =
            std::fs::read_to_string(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/OPERATIONS.md"))
                .unwrap();
        let mut missing = Vec::new();
        for (name, at) in &recorded {
            match FAMILIES.iter().find(|(n, _, _)| n == name) {
                None => missing.push(format!("{name} ({at}) has no HELP text in runtime::ops::FAMILIES")),
                Some((_, kind, _)) => {
                    let macro_kind = format!("{kind:?}").to_lowercase();
                    if !at.ends_with(&format!("({macro_kind})")) {
                        missing.push(format!("{name} is recorded as {at} but described as a {macro_kind}"));
                    }
                }
            }
            if !table.contains(&format!("| `{name}` |")) {
                missing.push(format!(
                    "{name} ({at}) is not in the Metrics table of docs/OPERATIONS.md"
                ));
            }
        }
        for (name, _, _) in FAMILIES {
            if !recorded.contains_key(*name) {
                missing.push(format!("{name} is described but nothing records it"));
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    #[tokio::test]
    async fn a_scrape_carries_help_for_each_family() {
        let handle = recorder().unwrap();
        metrics::counter!("switchboard_gateway_shed_total").increment(1);
        metrics::histogram!("switchboard_api_list_seconds").record(0.01);
        let page = handle.render();
        for (name, help) in [
            ("switchboard_gateway_shed_total", "Requests refused 503"),
            ("switchboard_api_list_seconds", "GET /v1/tickets"),
        ] {
            let line = page
                .lines()
                .find(|l| l.starts_with(&format!("# HELP {name} ")))
                .unwrap_or_else(|| panic!("no HELP for {name} in\n{page}"));
            assert!(line.contains(help), "{line}");
        }
    }

    #[tokio::test]
    async fn a_starting_process_is_alive_but_not_ready_until_started() {
        let handle = recorder().unwrap();
        let state = OpsState::starting(handle);
        let router = router(state.clone());
        let (code, body) = get(&router, "/healthz").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let (code, body) = get(&router, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["failed"], serde_json::json!(["startup"]), "{body}");
        assert!(
            json["checks"]["startup"]["detail"]
                .as_str()
                .unwrap()
                .contains("Postgres"),
            "{body}"
        );

        let health = Health::new();
        health.register("classify", 1);
        health.set_connected("classify", true);
        let _consumer = health.consumer_started("classify");
        state.started(health, None);
        let (code, body) = get(&router, "/readyz").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert!(body.contains("classify 1/1"), "{body}");
    }

    #[test]
    fn a_bad_address_says_what_to_set() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let state = OpsState::unchecked(recorder().unwrap());
            let err = serve("not-an-address", state, CancellationToken::new()).unwrap_err();
            assert!(err.to_string().contains("SWITCHBOARD_METRICS_ADDR"), "{err}");
        });
    }
}
