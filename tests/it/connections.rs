//! The connections a process's stage runners share (`bus::links`): one consuming and one
//! publishing connection per process, whatever it runs; a runner whose session fails opens its
//! channels again without disturbing the others; a lost connection is replaced once, for all.
//!
//! Connections are read from the broker itself (`rabbitmqctl list_connections`). Each test's
//! process names its connections after its own topology prefix, so tests running side by side
//! see only their own.

use crate::common;

use common::{Harness, connection_name, test_settings};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use std::process::Command;
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::bus::links::Links;
use switchboard::stages::registry;
use switchboard_tools::demo::{Kind, traffic};

/// One connection as the broker lists it.
#[derive(Debug, Clone, PartialEq)]
struct Listed {
    /// The broker's name for it: client address → server address, unique while it is open.
    peer: String,
    /// The name the client gave it.
    name: String,
    channels: u64,
}

/// The broker's connections whose client-given name starts with `prefix`.
fn connections(prefix: &str) -> Vec<Listed> {
    let out = Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "name",
            "client_properties",
            "channels",
            "--formatter",
            "json",
            "-q",
        ])
        .output()
        .expect("rabbitmqctl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("rabbitmqctl's JSON");
    let mut listed: Vec<Listed> = rows
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter_map(|row| {
            let name = connection_name(&row["client_properties"])?;
            name.starts_with(prefix).then(|| Listed {
                peer: row["name"].as_str().unwrap_or_default().to_owned(),
                name,
                channels: row["channels"].as_u64().unwrap_or_default(),
            })
        })
        .collect();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    listed
}

/// The broker's process for the connection `peer` (in the form `rabbitmqctl close_connection`
/// takes, which its JSON output does not give).
fn pid_of(peer: &str) -> String {
    let out = Command::new("rabbitmqctl")
        .args(["list_connections", "pid", "name", "-q", "--no-table-headers"])
        .output()
        .expect("rabbitmqctl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            let (pid, name) = line.split_once('\t')?;
            (name == peer).then(|| pid.to_owned())
        })
        .unwrap_or_else(|| panic!("no connection {peer} listed"))
}

/// Consumers on `queue` now (0 while it does not exist). Asked on a channel of its own: the
/// broker closes the channel that asks after a missing queue.
async fn consumers(h: &Harness, queue: &str) -> u32 {
    let ch = h.conn.create_channel().await.expect("a channel");
    let declared = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    let _ = ch.close(200, "bye".into()).await;
    declared.map(|q| q.consumer_count()).unwrap_or(0)
}

/// Publishes `range`'s new requests and waits until every ticket of the test is routed.
async fn route(h: &Harness, run: &str, range: std::ops::Range<usize>, expected_total: i64) {
    for p in traffic(run, range, false, chrono::Utc::now())
        .iter()
        .filter(|p| p.kind == Kind::New)
    {
        h.publish_intake(&p.routing_key, &p.message_id, &p.payload).await;
    }
    h.wait_for(
        &format!("{expected_total} tickets routed"),
        Duration::from_secs(60),
        || async {
            h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')")
                .await
                == expected_total
        },
    )
    .await;
}

fn new_requests(run: &str, range: std::ops::Range<usize>) -> i64 {
    traffic(run, range, false, chrono::Utc::now())
        .iter()
        .filter(|p| p.kind == Kind::New)
        .count() as i64
}

/// Five runners (the chain, the three stages after intake for work others publish, the
/// lifecycle), two consumers each: twenty channels on two connections, not ten connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_runs_all_its_stages_on_one_consuming_and_one_publishing_connection() {
    let mut h = Harness::new("links_shared").await;
    h.import_sample_roster().await;
    let stages = [
        StageName::Intake,
        StageName::Classify,
        StageName::Prioritize,
        StageName::Assign,
        StageName::Lifecycle,
    ];
    h.start_stages(&stages, 2);
    let n = new_requests("links_shared", 0..40);
    route(&h, "links_shared", 0..40, n).await;

    let prefix = h.topo().prefix.clone();
    let name = format!("{prefix}-intake,classify,prioritize,assign,lifecycle");
    let listed = connections(&prefix);
    let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [name.clone(), format!("{name}-publish")],
        "one consuming and one publishing connection: {listed:?}"
    );
    assert_eq!(
        listed.iter().map(|c| c.channels).collect::<Vec<_>>(),
        [10, 10],
        "each of the five runners' two consumers has a channel on each: {listed:?}"
    );
    h.cleanup().await;
    let mut left = connections(&prefix);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = connections(&prefix);
    }
    assert_eq!(left, [], "stopping closes both");
}

/// A runner whose queue is deleted under it (its consumers cancelled) opens its channels again
/// on the same connections, declaring the queue anew; the other runners go on undisturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_whose_consumers_are_cancelled_starts_again_on_the_same_connections() {
    let mut settings = test_settings("links_cancel");
    // Through the queues, so that the classify runner is the one that moves every ticket on.
    settings.chain_stages = false;
    let mut h = Harness::with_settings(settings).await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::PIPELINE, 2);
    let first = new_requests("links_cancel", 0..20);
    route(&h, "links_cancel", 0..20, first).await;
    let prefix = h.topo().prefix.clone();
    let before = connections(&prefix);
    assert_eq!(before.len(), 2, "{before:?}");

    let classify = h.topo().queue("classify");
    h.ch.queue_delete(classify.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete the classify queue");
    h.wait_for("classify consuming again", Duration::from_secs(30), || async {
        consumers(&h, &classify).await == 2
    })
    .await;
    let second = new_requests("links_cancel", 20..40);
    route(&h, "links_cancel", 20..40, first + second).await;

    let after = connections(&prefix);
    assert_eq!(
        after.iter().map(|c| &c.peer).collect::<Vec<_>>(),
        before.iter().map(|c| &c.peer).collect::<Vec<_>>(),
        "the same two connections: {before:?} then {after:?}"
    );
    h.cleanup().await;
}

/// The broker closes the consuming connection: every runner's session ends with it, and they
/// all go on with one new pair (the old publishing connection closed, not left behind).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_is_replaced_once_for_all_the_runners() {
    let mut h = Harness::new("links_closed").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::PIPELINE, 2);
    let first = new_requests("links_closed", 0..20);
    route(&h, "links_closed", 0..20, first).await;
    let prefix = h.topo().prefix.clone();
    let name = format!("{prefix}-intake,classify,prioritize,assign");
    let before = connections(&prefix);
    let consuming = before
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("a connection named {name}: {before:?}"));
    let closed = Command::new("rabbitmqctl")
        .args(["close_connection", &pid_of(&consuming.peer), "closed by the test"])
        .output()
        .expect("rabbitmqctl runs");
    assert!(closed.status.success(), "{}", String::from_utf8_lossy(&closed.stderr));

    let intake = h.topo().queue("intake");
    h.wait_for("every runner consuming again", Duration::from_secs(60), || async {
        let listed = connections(&prefix);
        listed.len() == 2
            && listed.iter().all(|c| !before.iter().any(|b| b.peer == c.peer))
            && consumers(&h, &intake).await == 2
    })
    .await;
    let second = new_requests("links_closed", 20..40);
    route(&h, "links_closed", 20..40, first + second).await;
    // The four runners (the chain and three stages), two consumers each, all back on one pair.
    h.wait_for(
        "one pair with every runner's channels",
        Duration::from_secs(30),
        || async {
            let after = connections(&prefix);
            after.len() == 2 && after.iter().all(|c| c.channels == 8)
        },
    )
    .await;
    h.cleanup().await;
}

/// Past the shutdown grace period a runner whose batch cannot finish closes its own channels,
/// which hands its deliveries back to the queue at once, while the process's connections stay
/// up for everything else (they close when the process stops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_runner_hands_its_deliveries_back_on_the_same_connections() {
    let mut settings = test_settings("links_grace");
    settings.shutdown_grace_ms = 500;
    let h = Harness::with_settings(settings).await;
    let intake = h.topo().queue("intake");
    // Every stage reads the processed-messages ledger first: with it locked, every batch hangs.
    let mut client = h.app.db.pool.get().await.unwrap();
    let lock = client.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE processed_messages IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let pubs: Vec<_> = traffic("links_grace", 0..10, false, chrono::Utc::now())
        .into_iter()
        .filter(|p| p.kind == Kind::New)
        .collect();
    for p in &pubs {
        h.publish_intake(&p.routing_key, &p.message_id, &p.payload).await;
    }

    let prefix = h.topo().prefix.clone();
    let links = Links::new(h.app.settings.amqp_urls(), format!("{prefix}-intake"));
    let stop = tokio_util::sync::CancellationToken::new();
    let runner = {
        let (app, links, stop) = (h.app.clone(), links.clone(), stop.clone());
        tokio::spawn(async move {
            registry::run(
                StageName::Intake,
                app.context(),
                &app.settings,
                app.db.clone(),
                links,
                app.health.clone(),
                1,
                stop,
            )
            .await
        })
    };
    h.wait_for("the batch taken and stuck", Duration::from_secs(30), || async {
        h.depth(&intake).await == 0
    })
    .await;
    let before = connections(&prefix);
    assert_eq!(before.len(), 2, "{before:?}");

    let stopped = std::time::Instant::now();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), runner)
        .await
        .expect("the runner returns after the grace period")
        .expect("runner task")
        .expect("runner");
    assert!(stopped.elapsed() < Duration::from_secs(5), "{:?}", stopped.elapsed());
    h.wait_for("the deliveries back in the queue", Duration::from_secs(5), || async {
        h.depth(&intake).await == pubs.len() as u32
    })
    .await;
    let after = connections(&prefix);
    assert_eq!(
        after.iter().map(|c| (&c.peer, c.channels)).collect::<Vec<_>>(),
        before.iter().map(|c| (&c.peer, 0)).collect::<Vec<_>>(),
        "the same connections, with the runner's channels closed: {before:?} then {after:?}"
    );

    lock.rollback().await.unwrap();
    drop(client);
    links.close(200, "done").await;
    h.cleanup().await;
}
