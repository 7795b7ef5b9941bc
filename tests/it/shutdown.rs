//! Graceful shutdown of the real `switchboard run` process: SIGTERM in the middle of a load
//! exits 0 and, after a restart, nothing is lost or doubled; a batch stuck past the grace
//! period is handed back to the broker and the process still exits 0 in time.

use crate::common;

use common::Harness;
use common::process::{
    assert_all_routed_once, free_port, http_get, log_tail, sigterm, spawn, spawn_run, wait_exit, wait_ready,
    without_replies,
};
use std::time::{Duration, Instant};
use switchboard_tools::demo::{Kind, traffic};

async fn wait_routed(h: &Harness, new: i64) {
    h.wait_for("every ticket routed", Duration::from_secs(120), || async {
        h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned','queued')")
            .await
            == new
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_load_exits_zero_and_loses_nothing() {
    let h = Harness::new("sigterm").await;
    h.import_sample_roster().await;
    let port = free_port();
    let mut child = spawn_run(&h, port, &[]);
    wait_ready(port, Duration::from_secs(60)).await;
    assert_eq!(http_get(port, "/healthz").await.map(|(c, _)| c), Some(200));

    let pubs = without_replies(traffic("sigterm", 0..600, false, chrono::Utc::now()));
    let new = pubs.iter().filter(|p| p.kind == Kind::New).count() as i64;
    let (first, rest) = pubs.split_at(300);
    for p in first {
        h.publish_intake(&p.routing_key, &p.message_id, &p.payload).await;
    }
    // Busy, but not done: stop it in the middle.
    h.wait_for("the pipeline to be busy", Duration::from_secs(60), || async {
        h.count("SELECT count(*) FROM tickets").await >= 50
    })
    .await;
    sigterm(&child);
    // The load goes on arriving while the worker stops.
    for p in rest {
        h.publish_intake(&p.routing_key, &p.message_id, &p.payload).await;
    }
    let status = wait_exit(&mut child, Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "exit status {status:?} after SIGTERM; log:\n{}",
        log_tail(&h.app.settings, 40)
    );
    assert!(
        log_tail(&h.app.settings, 200).contains("stopped cleanly"),
        "{}",
        log_tail(&h.app.settings, 40)
    );
    let routed_at_stop = h
        .count("SELECT count(*) FROM tickets WHERE state IN ('assigned','queued')")
        .await;
    eprintln!("{routed_at_stop} of {new} tickets routed when the worker stopped");
    assert!(routed_at_stop < new, "the SIGTERM came after the load was done");

    let mut child = spawn_run(&h, port, &[]);
    wait_routed(&h, new).await;
    assert_all_routed_once(&h, new).await;
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).await.success());
    h.cleanup().await;
}

/// A batch that cannot finish (its transaction waits on a lock the test holds) does not keep
/// the process alive: after `shutdown_grace_ms` the connection is closed, the broker takes the
/// deliveries back, and the process exits 0. While it drains, `/readyz` says it is not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_batch_is_handed_back_after_the_grace_period() {
    let h = Harness::new("grace").await;
    h.import_sample_roster().await;
    let port = free_port();
    let grace_ms = 3000;
    let env = [("SWITCHBOARD_SHUTDOWN_GRACE_MS", grace_ms.to_string())];
    let mut child = spawn_run(&h, port, &env);
    wait_ready(port, Duration::from_secs(60)).await;

    // Every stage reads the processed-messages ledger first: with it locked, every batch hangs.
    let mut client = h.app.db.pool.get().await.unwrap();
    let lock = client.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE processed_messages IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let pubs = without_replies(traffic("grace", 0..60, false, chrono::Utc::now()));
    let new = pubs.iter().filter(|p| p.kind == Kind::New).count() as i64;
    for p in &pubs {
        h.publish_intake(&p.routing_key, &p.message_id, &p.payload).await;
    }
    h.wait_for("the intake batch to be taken", Duration::from_secs(30), || async {
        h.depth(&h.topo().queue("intake")).await < pubs.len() as u32
    })
    .await;

    let stopped = Instant::now();
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (code, body) = http_get(port, "/readyz").await.expect("/readyz answers while draining");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("consumers"), "{body}");

    let status = wait_exit(&mut child, Duration::from_secs(20)).await;
    let took = stopped.elapsed();
    assert!(
        status.success(),
        "exit {status:?}; log:\n{}",
        log_tail(&h.app.settings, 40)
    );
    assert!(
        took >= Duration::from_millis(grace_ms) && took < Duration::from_millis(grace_ms + 8000),
        "stopped after {took:?} with a grace period of {grace_ms} ms"
    );
    assert!(
        log_tail(&h.app.settings, 200).contains("grace period over"),
        "{}",
        log_tail(&h.app.settings, 40)
    );
    lock.rollback().await.unwrap();
    drop(client);
    assert_eq!(h.count("SELECT count(*) FROM tickets").await, 0, "nothing was applied");
    // Everything it held is back in the queue.
    h.wait_for("the deliveries to be returned", Duration::from_secs(10), || async {
        h.depth(&h.topo().queue("intake")).await == pubs.len() as u32
    })
    .await;

    let mut child = spawn_run(&h, port, &env);
    wait_routed(&h, new).await;
    assert_all_routed_once(&h, new).await;
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).await.success());
    h.cleanup().await;
}

/// A worker started while Postgres is unreachable waits for it (saying so) instead of exiting,
/// and still stops cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_before_postgres_waits_and_stops_on_sigterm() {
    let h = Harness::new("pgwait").await;
    let nowhere = [(
        "SWITCHBOARD_DATABASE_URL",
        "postgres://postgres@127.0.0.1:1/switchboard_test".to_string(),
    )];
    let mut child = spawn(&h.app.settings, &["run"], &nowhere);
    let start = Instant::now();
    while !log_tail(&h.app.settings, 50).contains("waiting for Postgres before starting") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no waiting line; log:\n{}",
            log_tail(&h.app.settings, 20)
        );
        assert!(child.try_wait().unwrap().is_none(), "it gave up instead of waiting");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    h.cleanup().await;
}
