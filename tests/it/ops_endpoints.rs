//! The ops endpoints of real processes: `switchboard run` and a single-stage worker serve
//! `/metrics` (every documented metric family appears under load), `/healthz` and `/readyz`.

use crate::common;

use common::Harness;
use common::process::{free_port, http_get, sigterm, spawn_bin, spawn_run, wait_exit, wait_ready, without_replies};
use std::time::{Duration, Instant};
use switchboard_tools::demo::{Kind, traffic};

/// Every metric family the Metrics table of docs/OPERATIONS.md promises from `switchboard run` (the SLA
/// ones appear once a breach or a timer happens, which this load does not cause).
const FAMILIES: [&str; 13] = [
    "switchboard_messages_total{",
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
