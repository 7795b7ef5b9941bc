//! The ops endpoints of real processes: `switchboard run` and a single-stage worker serve
//! `/metrics` (every documented metric family appears under load), `/healthz` and `/readyz`;
//! liveness is served before the database is reachable; `switchboard healthcheck` asks them.

use crate::common;

use common::Harness;
use common::process::{
    command, free_port, http_get, sigterm, spawn_bin, spawn_run, wait_exit, wait_ready, without_replies,
};
use std::time::{Duration, Instant};
use switchboard_tools::demo::{Kind, traffic};

/// Every metric family the Metrics table of docs/OPERATIONS.md promises from `switchboard run` (the SLA
/// ones appear once a breach or a timer happens, which this load does not cause).
const FAMILIES: [&str; 14] = [
    "switchboard_messages_total{",
    "switchboard_chained_total{stage=\"classify\",outcome=\"done\"}",
    "switchboard_dead_lettered_total{",
    "switchboard_batch_seconds_bucket{",
    "switchboard_message_processing_seconds_bucket{",
    "switchboard_batch_size_bucket{",
    "switchboard_intake_to_assigned_seconds_bucket{",
    "switchboard_queue_messages_ready{queue=\"classify\"}",
    "switchboard_dead_letters ",
    "switchboard_open_tickets{",
    "switchboard_team_load_ratio{",
    "switchboard_team_open_assigned_tickets{",
    "switchboard_team_agents_online{",
    "switchboard_collector_up{",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_serve_metrics_health_and_readiness() {
    let h = Harness::new("metrics").await;
    h.import_sample_roster().await;
    let port = free_port();
    let mut child = spawn_run(&h, port, &[]);
    wait_ready(port, Duration::from_secs(60)).await;
    let (code, body) = http_get(port, "/readyz").await.unwrap();
    assert_eq!(code, 200);
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    for check in ["broker", "consumers", "postgres"] {
        assert_eq!(ready["checks"][check]["ok"], true, "{ready}");
    }
    assert!(
        ready["checks"]["consumers"]["detail"]
            .as_str()
            .unwrap()
            .contains("intake 2/2"),
        "{ready}"
    );
    assert_eq!(http_get(port, "/healthz").await.map(|(c, _)| c), Some(200));

    let pubs = without_replies(traffic("metrics", 0..120, true, chrono::Utc::now()));
    let new = pubs.iter().filter(|p| p.kind == Kind::New).count() as i64;
    for p in &pubs {
        h.publish_intake(&p.routing_key, &p.message_id, &p.payload).await;
    }
    h.wait_for("every ticket routed", Duration::from_secs(60), || async {
        h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned','queued')")
            .await
            == new
    })
    .await;
    // The collector ticks every 10 s: wait for a tick that saw the tickets.
    let start = Instant::now();
    let mut page = String::new();
    while start.elapsed() < Duration::from_secs(25) {
        page = http_get(port, "/metrics").await.map(|(_, b)| b).unwrap_or_default();
        if FAMILIES.iter().all(|f| page.contains(f)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let missing: Vec<&&str> = FAMILIES.iter().filter(|f| !page.contains(**f)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in\n{page}");
    assert!(
        page.contains("# TYPE switchboard_intake_to_assigned_seconds histogram"),
        "{page}"
    );
    assert!(
        page.contains("switchboard_messages_total{stage=\"intake\",outcome=\"dead\"}"),
        "{page}"
    );
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).await.success());

    // A single-stage worker binary serves the same endpoints.
    let wport = free_port();
    let mut worker = spawn_bin(
        env!("CARGO_BIN_EXE_switchboard-classify"),
        &h.app.settings,
        &["--concurrency", "1"],
        &[("SWITCHBOARD_METRICS_ADDR", format!("127.0.0.1:{wport}"))],
    );
    wait_ready(wport, Duration::from_secs(60)).await;
    let (_, body) = http_get(wport, "/readyz").await.unwrap();
    assert!(body.contains("classify 1/1"), "{body}");
    let (code, page) = http_get(wport, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        page.contains("switchboard_queue_messages_ready{queue=\"intake\"}"),
        "{page}"
    );
    sigterm(&worker);
    assert!(wait_exit(&mut worker, Duration::from_secs(30)).await.success());
    h.cleanup().await;
}

/// `/healthz` of a process on `port`, polled until it answers or `timeout` passes.
async fn wait_alive(port: u16, timeout: Duration) -> Option<(u16, String)> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(answer) = http_get(port, "/healthz").await {
            return Some(answer);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// `switchboard healthcheck <args>` against the metrics address `addr`: (exit 0?, stdout, stderr).
fn healthcheck(settings: &switchboard::config::Settings, addr: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["healthcheck"];
    all.extend_from_slice(args);
    let out = command(settings, &all)
        .env("SWITCHBOARD_METRICS_ADDR", addr)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run switchboard healthcheck");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_waiting_for_postgres_is_alive_and_not_ready_and_healthcheck_says_so() {
    // Postgres "down": a database URL on a port nobody listens on.
    let mut settings = common::test_settings("alive");
    settings.database_url = format!("postgres://postgres@127.0.0.1:{}/switchboard_test", free_port());
    let port = free_port();
    let mut worker = spawn_bin(
        env!("CARGO_BIN_EXE_switchboard-classify"),
        &settings,
        &["--concurrency", "1"],
        &[("SWITCHBOARD_METRICS_ADDR", format!("127.0.0.1:{port}"))],
    );
    let alive = wait_alive(port, Duration::from_secs(30)).await;
    assert_eq!(
        alive.as_ref().map(|(c, _)| *c),
        Some(200),
        "/healthz while Postgres is unreachable: {alive:?}"
    );
    let (code, body) = http_get(port, "/readyz").await.expect("/readyz answers");
    assert_eq!(code, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["failed"], serde_json::json!(["startup"]), "{ready}");

    // The container health checks: alive passes, ready fails and says why. The wildcard host
    // the compose file sets is asked on loopback.
    let wildcard = format!("0.0.0.0:{port}");
    let (ok, stdout, stderr) = healthcheck(&settings, &wildcard, &[]);
    assert!(ok, "healthcheck: {stdout}{stderr}");
    assert!(stdout.contains("/healthz answered 200"), "{stdout}");
    let (ok, stdout, stderr) = healthcheck(&settings, &wildcard, &["--ready"]);
    assert!(!ok, "not ready yet: {stdout}");
    assert!(
        stderr.contains("answered 503") && stderr.contains("startup"),
        "{stderr}"
    );

    // Still waiting, not exited into a restart loop; the metrics page is served meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        worker.try_wait().expect("try_wait").is_none(),
        "the worker gave up waiting"
    );
    let (code, page) = http_get(port, "/metrics").await.expect("/metrics answers");
    assert_eq!(code, 200);
    assert!(page.contains("switchboard_ready 0"), "{page}");
    sigterm(&worker);
    assert!(wait_exit(&mut worker, Duration::from_secs(30)).await.success());

    // Nothing listening any more: the check fails and says what to look at.
    let (ok, _, stderr) = healthcheck(&settings, &wildcard, &[]);
    assert!(!ok);
    assert!(stderr.contains("is the process running"), "{stderr}");

    // The gateway, likewise: its metrics port answers /healthz while it waits for Postgres.
    let gport = free_port();
    let mut gateway = spawn_bin(
        env!("CARGO_BIN_EXE_switchboard-gateway"),
        &settings,
        &["--listen", &format!("127.0.0.1:{}", free_port())],
        &[("SWITCHBOARD_METRICS_ADDR", format!("127.0.0.1:{gport}"))],
    );
    let alive = wait_alive(gport, Duration::from_secs(30)).await;
    assert_eq!(
        alive.map(|(c, _)| c),
        Some(200),
        "gateway /healthz while Postgres is unreachable"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        gateway.try_wait().expect("try_wait").is_none(),
        "the gateway gave up waiting"
    );
    sigterm(&gateway);
    assert!(wait_exit(&mut gateway, Duration::from_secs(30)).await.success());
}
