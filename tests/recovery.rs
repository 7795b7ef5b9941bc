//! Recovery on the real servers: RabbitMQ and then Postgres are restarted in the middle of a
//! load through a `switchboard run` process, which must ride both out by itself.
//!
//! ONE test function on purpose: it stops the shared RabbitMQ and Postgres, so nothing else
//! may run beside it. Cargo runs test binaries one after another, and this binary has no
//! other test. Guards bring both servers back even when an assertion fails.

mod common;

use common::Harness;
use common::process::{
    assert_all_routed_once, free_port, http_get, log_tail, sigterm, spawn_run, wait_exit, wait_ready, without_replies,
};
use common::publisher::Publisher;
use common::servers::{
    PostgresGuard, RabbitGuard, pg_version, start_postgres, start_rabbitmq, stop_postgres, stop_rabbitmq,
};
use std::time::Duration;
use switchboard::contracts::Exchange;
use switchboard_tools::demo::{Kind, traffic};

async fn routed(h: &Harness) -> i64 {
    h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned','queued')")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_rabbitmq_restart_and_a_postgres_restart() {
    let pg = pg_version();
    let mut h = Harness::new("recovery").await;
    // Declared after the harness so they drop first: the servers are back before it cleans up.
    let _rabbit_guard = RabbitGuard;
    let _pg_guard = PostgresGuard(pg.clone());
    h.import_sample_roster().await;
    let port = free_port();
    let mut child = spawn_run(&h, port, &[]);
    wait_ready(port, Duration::from_secs(60)).await;

    let pubs = without_replies(traffic("recovery", 0..600, false, chrono::Utc::now()));
    let new = pubs.iter().filter(|p| p.kind == Kind::New).count() as i64;
    let mut publisher = Publisher::new(h.app.settings.amqp_urls(), h.topo().exchange(Exchange::Intake));

    // 1. RabbitMQ goes away mid-load: every connection is dropped.
    for p in &pubs[..200] {
        publisher.publish(p).await;
    }
    h.wait_for("the pipeline to be busy", Duration::from_secs(60), || async {
        h.count("SELECT count(*) FROM tickets").await >= 30
    })
    .await;
    stop_rabbitmq();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, body) = http_get(port, "/readyz").await.expect("/readyz answers");
    assert_eq!(code, 503, "not ready without the broker: {body}");
    assert!(body.contains("broker"), "{body}");
    start_rabbitmq();
    // The harness's own connection died with the others.
    h.reconnect().await;
    for p in &pubs[200..400] {
        publisher.publish(p).await;
    }
    wait_ready(port, Duration::from_secs(60)).await;
    h.wait_for(
        "progress after the broker came back",
        Duration::from_secs(120),
        || async { routed(&h).await >= 250 },
    )
    .await;

    // 2. Postgres goes away mid-load (a real outage, not a blip: stopped for a few seconds).
    stop_postgres(&pg);
    for p in &pubs[400..] {
        publisher.publish(p).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, body) = http_get(port, "/readyz").await.expect("/readyz answers");
    assert_eq!(code, 503, "not ready without Postgres: {body}");
    assert!(body.contains("postgres"), "{body}");
    start_postgres(&pg);

    h.wait_for(
        "every ticket routed after both restarts",
        Duration::from_secs(180),
        || async { routed(&h).await == new },
    )
    .await;
    wait_ready(port, Duration::from_secs(30)).await;
    let log = log_tail(&h.app.settings, 5000);
    assert!(
        log.contains("waiting for RabbitMQ"),
        "no log line about waiting for RabbitMQ"
    );
    assert!(
        log.contains("database unavailable"),
        "no log line about waiting for Postgres"
    );
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).await.success());
    assert_all_routed_once(&h, new).await;
    let stuck = h
        .count("SELECT count(*) FROM tickets WHERE state IN ('received','classified','prioritized')")
        .await;
    assert_eq!(stuck, 0, "no ticket stuck half-way");
    publisher.close().await;
    h.cleanup().await;
}
