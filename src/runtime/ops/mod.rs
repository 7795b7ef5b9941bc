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
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long `/readyz` waits for Postgres to answer `SELECT 1` before calling it unusable.
pub const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
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

/// `# HELP` lines, so a scrape explains itself. The Metrics table of docs/OPERATIONS.md is the same list.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "switchboard_messages_total",
        "Messages settled by a stage, by outcome (done, duplicate, dead, retry)"
    );
    describe_counter!(
        "switchboard_dead_lettered_total",
        "Messages a stage dead-lettered (confirmed by the broker)"
    );
    describe_histogram!(
        "switchboard_batch_seconds",
        "Time to process, publish and settle one batch"
    );
    describe_histogram!(
        "switchboard_message_processing_seconds",
        "Per message: time from the start of its batch to its ack"
    );
    describe_histogram!("switchboard_batch_size", "Messages per batch");
    describe_histogram!(
        "switchboard_intake_to_assigned_seconds",
        "From a request's received_at to its assignment to an agent"
    );
    describe_gauge!(
        "switchboard_queue_messages_ready",
        "Messages ready in a queue (passive declare, every collector tick)"
    );
    describe_gauge!("switchboard_dead_letters", "Messages in the dead-letter queue");
    describe_gauge!("switchboard_open_tickets", "Tickets not closed, by state and team");
    describe_gauge!(
        "switchboard_team_load_ratio",
        "Sum of agents' open tickets over the sum of their max_open, per team"
    );
    describe_gauge!(
        "switchboard_team_open_assigned_tickets",
        "Open tickets held by the team's agents"
    );
    describe_gauge!("switchboard_team_agents_online", "Agents online, per team");
    describe_gauge!(
        "switchboard_collector_up",
        "1 when the last collector tick could read the source (broker, postgres)"
    );
    describe_counter!("switchboard_sla_breaches_total", "SLA breaches, by target");
    describe_histogram!(
        "switchboard_timer_claim_lateness_seconds",
        "How late the scheduler claimed a due SLA timer"
    );
}

/// What the endpoints need: the metrics handle, and for `/readyz` the process's health and pool.
#[derive(Clone)]
pub struct OpsState {
    pub handle: PrometheusHandle,
    /// `None`: this process registered no readiness checks (every check passes).
    pub health: Option<Arc<Health>>,
    pub db: Option<Db>,
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

/// Broker connection, consumers, and a Postgres pool connection answering `SELECT 1`.
pub async fn readiness(s: &OpsState) -> Readiness {
    let mut checks = match &s.health {
        Some(h) => h.runtime_checks(),
        None => Vec::new(),
    };
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
    if let Some(h) = &s.health {
        readiness.warnings = h.warnings(chrono::Utc::now());
    }
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

/// Everything a running process exposes when `metrics_addr` is set: the endpoints with its
/// health and pool, and the gauge collector. Returns the bound address, or `None` when disabled.
pub fn start(
    settings: &Settings,
    topo: &Topology,
    db: &Db,
    health: &Arc<Health>,
    shutdown: CancellationToken,
) -> Result<Option<SocketAddr>, OpsError> {
    let Some(addr) = settings.metrics_addr.as_deref() else {
        return Ok(None);
    };
    let state = OpsState {
        handle: recorder()?,
        health: Some(health.clone()),
        db: Some(db.clone()),
    };
    let local = serve(addr, state, shutdown.clone())?;
    // The calendar warning and its gauge, again now that the recorder is installed, and every
    // ten minutes (a process started in September warns from October 1 on).
    let (watched, stop) = (health.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => { watched.warnings(chrono::Utc::now()); }
            }
        }
    });
    collector::spawn(settings.amqp_urls(), topo.clone(), db.clone(), shutdown);
    Ok(Some(local))
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
        let router = router(OpsState {
            handle,
            health: Some(health.clone()),
            db: None,
        });
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
        let router = router(OpsState {
            handle,
            health: Some(health.clone()),
            db: None,
        });

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

    #[test]
    fn a_bad_address_says_what_to_set() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let state = OpsState {
                handle: recorder().unwrap(),
                health: None,
                db: None,
            };
            let err = serve("not-an-address", state, CancellationToken::new()).unwrap_err();
            assert!(err.to_string().contains("SWITCHBOARD_METRICS_ADDR"), "{err}");
        });
    }
}
