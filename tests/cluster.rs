//! Switchboard on a three-node RabbitMQ cluster on this machine (`scripts/rabbit-cluster`):
//! the stage queues are quorum queues replicated on all three nodes, and losing one node in
//! the middle of a load — stopped cleanly, or killed with SIGKILL — loses nothing, doubles
//! nothing, and the pipeline goes on.
//!
//! Ignored by default because they need the cluster: `scripts/cluster-proof` starts it, runs
//! these tests and stops it again (or `scripts/rabbit-cluster start` and
//! `cargo test --test cluster -- --ignored --nocapture`). The node that goes away is the one
//! holding the intake queue's leader; one of the two worker processes (and the publisher) is
//! connected to it, the other worker process to another node. The two tests take turns.

mod common;

use common::process::{
    Running, assert_all_routed_once, free_port, sigterm, spawn_bin_logged, wait_exit, wait_ready, without_replies,
};
use common::publisher::{Publisher, PublisherStats};
use common::{Harness, connection_name};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use switchboard::contracts::Exchange;
use switchboard::contracts::stage::QUEUES as ALL_QUEUES;
use switchboard_tools::demo::{Kind, traffic};

/// Requests in the load (each opens a ticket; every 25th is also sent twice).
const REQUESTS: usize = 3000;
/// The publisher sends windows of this many messages, one window per [`PACE`] at most.
const WINDOW: usize = 20;
const PACE: Duration = Duration::from_millis(200);
/// Tickets routed before the node is stopped, so the stop lands in a busy pipeline.
const ROUTED_BEFORE_STOP: i64 = 300;
/// Tickets that must be routed while the node is down before it is started again.
const ROUTED_DURING_OUTAGE: i64 = 300;
/// The node stays down at least this long (a real outage, not a blip).
const MIN_OUTAGE: Duration = Duration::from_secs(10);

fn script() -> PathBuf {
    common::manifest_dir().join("scripts/rabbit-cluster")
}

/// `scripts/rabbit-cluster ARGS`; its stdout, or a panic with its stderr.
fn cluster(args: &[&str]) -> String {
    let out = Command::new(script())
        .args(args)
        .output()
        .expect("run scripts/rabbit-cluster");
    assert!(
        out.status.success(),
        "scripts/rabbit-cluster {} failed ({}): {}{}\nIs the cluster up? Run `scripts/rabbit-cluster start`, or the whole proof with `scripts/cluster-proof`.",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `rabbitmqctl -q ARGS --formatter json` against node `via`, parsed.
fn ctl_json(via: usize, args: &[&str]) -> serde_json::Value {
    let n = via.to_string();
    let mut all = vec!["ctl", &n, "-q"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--formatter", "json"]);
    let out = cluster(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("rabbitmqctl {}: not JSON ({e}): {out}", args.join(" ")))
}

fn node_name(n: usize) -> String {
    cluster(&["node", &n.to_string()]).trim().to_owned()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// The nodes `via` sees running.
fn running_nodes(via: usize) -> Vec<String> {
    strings(&ctl_json(via, &["cluster_status"])["running_nodes"])
}

#[derive(Debug)]
struct QueueInfo {
    name: String,
    kind: String,
    leader: String,
    members: Vec<String>,
    online: Vec<String>,
    messages: u64,
}

/// This test's queues, as node `via` sees them.
fn queues(via: usize, prefix: &str) -> Vec<QueueInfo> {
    let v = ctl_json(
        via,
        &["list_queues", "name", "type", "leader", "members", "online", "messages"],
    );
    let mut out: Vec<QueueInfo> = v
        .as_array()
        .expect("list_queues: a JSON array")
        .iter()
        .filter(|q| q["name"].as_str().is_some_and(|n| n.starts_with(&format!("{prefix}."))))
        .map(|q| QueueInfo {
            name: q["name"].as_str().unwrap_or_default().to_owned(),
            kind: q["type"].as_str().unwrap_or_default().to_owned(),
            leader: q["leader"].as_str().unwrap_or_default().to_owned(),
            members: strings(&q["members"]),
            online: strings(&q["online"]),
            messages: q["messages"].as_u64().unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn print_queues(title: &str, qs: &[QueueInfo]) {
    println!("{title}");
    for q in qs {
        println!(
            "  {:<44} {:<7} leader {:<24} members {} online {} messages {}",
            q.name,
            q.kind,
            q.leader,
            q.members.len(),
            q.online.len(),
            q.messages
        );
    }
}

/// The client-given names of the AMQP connections (`<prefix>-intake,classify,…`), by node port
/// (5681..5683), counted.
fn connections_by_port(via: usize) -> BTreeMap<u64, BTreeMap<String, usize>> {
    let v = ctl_json(via, &["list_connections", "port", "client_properties"]);
    let mut out: BTreeMap<u64, BTreeMap<String, usize>> = BTreeMap::new();
    for c in v.as_array().expect("list_connections: a JSON array") {
        let name = connection_name(&c["client_properties"]).unwrap_or_else(|| c["client_properties"].to_string());
        *out.entry(c["port"].as_u64().unwrap_or_default())
            .or_default()
            .entry(name)
            .or_default() += 1;
    }
    out
}

/// How many connections on `port` are named `name`.
fn named(conns: &BTreeMap<u64, BTreeMap<String, usize>>, port: u64, name: &str) -> usize {
    conns.get(&port).and_then(|m| m.get(name)).copied().unwrap_or(0)
}

/// Brings a stopped node back when dropped, so a failing test leaves the cluster whole.
struct NodeGuard(Option<usize>);

impl Drop for NodeGuard {
    fn drop(&mut self) {
        if let Some(n) = self.0 {
            let _ = Command::new(script()).args(["start-node", &n.to_string()]).status();
        }
    }
}

async fn routed(h: &Harness) -> i64 {
    h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned','queued')")
        .await
}

/// Transitions to one of `states` written in [from, to).
async fn transitions_between(
    h: &Harness,
    states: &str,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> i64 {
    h.count(&format!(
        "SELECT count(*) FROM ticket_transitions WHERE to_state IN ({states}) AND at >= '{}' AND at < '{}'",
        from.to_rfc3339(),
        to.to_rfc3339()
    ))
    .await
}

fn port_of(url: &str) -> String {
    switchboard::bus::display_url(url)
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// How the node goes away.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// `rabbitmqctl stop`: a clean shutdown (maintenance, a rolling upgrade).
    Stop,
    /// SIGKILL of the node's Erlang VM: a crash, nothing shut down cleanly.
    Kill,
}

/// The tests stop nodes of the one cluster: one at a time, whatever `--test-threads` says.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the three-node cluster: scripts/cluster-proof (or scripts/rabbit-cluster start)"]
async fn stopping_a_node_mid_load_loses_nothing_and_the_pipeline_goes_on() {
    let _one = ONE_AT_A_TIME.lock().await;
    node_outage_mid_load(Outage::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the three-node cluster: scripts/cluster-proof (or scripts/rabbit-cluster start)"]
async fn killing_a_node_mid_load_loses_nothing_and_the_pipeline_goes_on() {
    let _one = ONE_AT_A_TIME.lock().await;
    node_outage_mid_load(Outage::Kill).await;
}

async fn node_outage_mid_load(how: Outage) {
    let began = Instant::now();
    let (verb, command) = match how {
        Outage::Stop => ("stopping", "stop-node"),
        Outage::Kill => ("killing", "kill-node"),
    };
    println!("=== {verb} the node of the intake queue's leader during a load");
    let names: Vec<String> = (1..=3).map(node_name).collect();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(running_nodes(1), expected, "all three nodes run and are clustered");
    let urls: Vec<String> = cluster(&["urls"]).trim().split(',').map(str::to_owned).collect();
    assert_eq!(urls.len(), 3, "three AMQP URLs: {urls:?}");
    // The URLs starting with node `first` (1-based), then round the others.
    let from_node = |first: usize| -> Vec<String> { (0..3).map(|k| urls[(first - 1 + k) % 3].clone()).collect() };

    let mut settings = common::test_settings("cluster");
    settings.amqp_url = urls.join(",");
    let mut h = Harness::with_settings(settings).await;
    h.import_sample_roster().await;
    let prefix = h.topo().prefix.clone();

    // 1. Every queue of the topology is a quorum queue with a member on each node.
    let qs = queues(1, &prefix);
    print_queues("queues after declaration (seen from node 1):", &qs);
    for stage in ALL_QUEUES.iter().chain(&["dead"]) {
        let name = h.topo().queue(stage);
        let q = qs
            .iter()
            .find(|q| q.name == name)
            .unwrap_or_else(|| panic!("{name} not listed"));
        assert_eq!(q.kind, "quorum", "{name} is a quorum queue");
        assert_eq!(q.members, expected, "{name} has a member on every node");
        assert_eq!(q.online, expected, "{name} has every member online");
    }
    let intake_q = h.topo().queue("intake");
    let leader_name = qs.iter().find(|q| q.name == intake_q).unwrap().leader.clone();
    let leader = names
        .iter()
        .position(|n| *n == leader_name)
        .unwrap_or_else(|| panic!("intake leader {leader_name} is not one of {names:?}"))
        + 1;
    let other = leader % 3 + 1;
    println!("intake leader: node {leader} ({leader_name}); {verb} it");

    // 2. Two worker processes: A connected to the leader's node, B to another one.
    let bin = env!("CARGO_BIN_EXE_switchboard");
    let args = [
        "run",
        "--stage",
        "intake,classify,prioritize,assign",
        "--concurrency",
        "2",
    ];
    let log_a = std::env::temp_dir().join(format!("{prefix}-a.log"));
    let log_b = std::env::temp_dir().join(format!("{prefix}-b.log"));
    let (port_a, port_b) = (free_port(), free_port());
    let spawn = |first: usize, port: u16, log: &PathBuf| -> Running {
        let env = [
            ("SWITCHBOARD_AMQP_URL", from_node(first).join(",")),
            ("SWITCHBOARD_METRICS_ADDR", format!("127.0.0.1:{port}")),
        ];
        spawn_bin_logged(bin, &h.app.settings, &args, &env, log)
    };
    let mut a = spawn(leader, port_a, &log_a);
    let mut b = spawn(other, port_b, &log_b);
    wait_ready(port_a, Duration::from_secs(60)).await;
    wait_ready(port_b, Duration::from_secs(60)).await;
    let conns = connections_by_port(other);
    println!("connections by node port: {conns:?}");
    let leader_port: u64 = port_of(&urls[leader - 1]).parse().unwrap();
    let other_port: u64 = port_of(&urls[other - 1]).parse().unwrap();
    // A process's runners share one consuming and one publishing connection, named after the
    // prefix and stages, both on one node: the pair depends on that node alone.
    let consuming = format!("{prefix}-intake,classify,prioritize,assign");
    for name in [consuming.clone(), format!("{consuming}-publish")] {
        for (worker, port, node) in [("A", leader_port, leader), ("B", other_port, other)] {
            assert_eq!(
                named(&conns, port, &name),
                1,
                "worker {worker}'s {name} is on node {node}"
            );
        }
    }

    // 3. A steady load in the background, from a publisher connected to the leader's node.
    let pubs = without_replies(traffic("cluster", 0..REQUESTS, false, chrono::Utc::now()));
    let new = pubs.iter().filter(|p| p.kind == Kind::New).count() as i64;
    let duplicates = pubs.iter().filter(|p| p.kind == Kind::Duplicate).count();
    let new_ids: HashSet<String> = pubs
        .iter()
        .filter(|p| p.kind == Kind::New)
        .map(|p| p.message_id.clone())
        .collect();
    let total = pubs.len();
    let confirmed = Arc::new(AtomicUsize::new(0));
    let mut publisher = Publisher::new(from_node(leader), h.topo().exchange(Exchange::Intake));
    let progress = confirmed.clone();
    let load = tokio::spawn(async move {
        for window in pubs.chunks(WINDOW) {
            let t = Instant::now();
            publisher.publish_window(window).await;
            progress.fetch_add(window.len(), Ordering::SeqCst);
            tokio::time::sleep(PACE.saturating_sub(t.elapsed())).await;
        }
        publisher.close().await
    });

    // 4. Stop the leader's node in the middle of it.
    h.wait_for("the pipeline to be busy", Duration::from_secs(120), || async {
        routed(&h).await >= ROUTED_BEFORE_STOP
    })
    .await;
    let routed_before = routed(&h).await;
    let confirmed_before = confirmed.load(Ordering::SeqCst);
    let mut guard = NodeGuard(Some(leader));
    let stopping = Instant::now();
    println!(
        "{verb} node {leader} at {:.1}s with {routed_before} tickets routed, {confirmed_before}/{total} messages confirmed",
        began.elapsed().as_secs_f64()
    );
    cluster(&[command, &leader.to_string()]);
    // The outage counts from here: the node's process has exited.
    let stop_at = chrono::Utc::now();
    let outage = Instant::now();
    let confirmed_at_stop = confirmed.load(Ordering::SeqCst);
    println!(
        "node {leader} down ({:.1}s after `rabbit-cluster {command}` began; {} tickets routed meanwhile)",
        stopping.elapsed().as_secs_f64(),
        routed(&h).await - routed_before
    );
    h.reconnect().await;
    // The survivors elect a new leader; two members of three are online.
    let start = Instant::now();
    let during = loop {
        let qs = queues(other, &prefix);
        let ok = qs.iter().all(|q| q.leader != leader_name && q.online.len() == 2);
        if ok || start.elapsed() > Duration::from_secs(30) {
            break qs;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    print_queues(
        &format!("queues with node {leader} down (seen from node {other}):"),
        &during,
    );
    for q in &during {
        assert_ne!(q.leader, leader_name, "{} has a new leader", q.name);
        assert_eq!(q.online.len(), 2, "{}: two members online", q.name);
        assert_eq!(q.members.len(), 3, "{}: still three members", q.name);
    }
    // The pipeline goes on: both workers are consuming (A through another node) and tickets
    // keep being routed.
    wait_ready(port_a, Duration::from_secs(60)).await;
    wait_ready(port_b, Duration::from_secs(5)).await;
    h.wait_for(
        "tickets routed while the node is down",
        Duration::from_secs(120),
        || async {
            transitions_between(&h, "'assigned','queued'", stop_at, chrono::Utc::now()).await >= ROUTED_DURING_OUTAGE
        },
    )
    .await;
    tokio::time::sleep(MIN_OUTAGE.saturating_sub(outage.elapsed())).await;
    let conns_during = connections_by_port(other);
    let restart_at = chrono::Utc::now();
    let received_during = transitions_between(&h, "'received'", stop_at, restart_at).await;
    let routed_during = transitions_between(&h, "'assigned','queued'", stop_at, restart_at).await;
    let confirmed_during = confirmed.load(Ordering::SeqCst) - confirmed_at_stop;
    let outage_secs = outage.elapsed().as_secs_f64();
    println!(
        "node {leader} down for {outage_secs:.1}s: {confirmed_during} messages confirmed, {received_during} tickets opened, {routed_during} routed; connections by node port: {conns_during:?}"
    );
    assert!(
        !conns_during.contains_key(&leader_port),
        "no connection on the stopped node"
    );
    let survivors: usize = conns_during.keys().map(|p| named(&conns_during, *p, &consuming)).sum();
    assert_eq!(survivors, 2, "both workers consume from the surviving nodes");
    assert!(confirmed_during > 0, "the publisher went on while the node was down");
    assert!(received_during > 0, "intake opened tickets while the node was down");
    assert!(routed_during >= ROUTED_DURING_OUTAGE);

    // 5. Bring the node back: it rejoins, and its queue members come back online.
    cluster(&["start-node", &leader.to_string()]);
    guard.0 = None;
    assert_eq!(running_nodes(other), expected, "node {leader} rejoined the cluster");
    let start = Instant::now();
    let after = loop {
        let qs = queues(other, &prefix);
        if qs.iter().all(|q| q.online == expected) || start.elapsed() > Duration::from_secs(60) {
            break qs;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    print_queues(&format!("queues after node {leader} came back:"), &after);
    for q in &after {
        assert_eq!(q.online, expected, "{}: every member online again", q.name);
    }

    // 6. The load completes; nothing lost, nothing doubled.
    let stats: PublisherStats = load.await.expect("publisher task");
    assert_eq!(stats.confirmed, total, "every message confirmed once");
    h.wait_for("every ticket routed", Duration::from_secs(300), || async {
        routed(&h).await >= new
    })
    .await;
    sigterm(&a);
    sigterm(&b);
    assert!(
        wait_exit(&mut a, Duration::from_secs(30)).await.success(),
        "worker A exits 0"
    );
    assert!(
        wait_exit(&mut b, Duration::from_secs(30)).await.success(),
        "worker B exits 0"
    );

    let client = h.app.db.pool.get().await.unwrap();
    let ids: Vec<String> = client
        .query("SELECT channel_message_id FROM tickets", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let by_state: Vec<(String, i64)> = client
        .query(
            "SELECT to_state, count(*) FROM ticket_transitions GROUP BY 1 ORDER BY min(seq), 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    drop(client);
    let distinct: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(distinct.len(), ids.len(), "no request opened two tickets");
    assert_eq!(
        distinct, new_ids,
        "every confirmed request is a ticket, and nothing else is"
    );
    assert_all_routed_once(&h, new).await;

    // Worker A started on the stopped node and carried on through another one.
    let log = std::fs::read_to_string(&log_a).unwrap_or_default();
    let moved = log
        .lines()
        .filter(|l| l.contains("connected to RabbitMQ") && !l.contains(&format!("127.0.0.1:{leader_port}")))
        .count();
    assert!(moved > 0, "worker A reconnected to another node; its log:\n{log}");
    for (worker, path) in [("A", &log_a), ("B", &log_b)] {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        let lines = |what: &str| log.lines().filter(|l| l.contains(what)).count();
        println!(
            "worker {worker} log: {} connections made, {} lost, {} connection attempts to a down node",
            lines("connected to RabbitMQ"),
            lines("consumer lost its connection"),
            lines("RabbitMQ node unavailable")
        );
    }

    println!(
        "published {total} messages ({new} requests + {duplicates} duplicates); publisher connections {:?}, {} resent",
        stats.connections, stats.resent
    );
    println!(
        "tickets: {} (distinct request ids {}), transitions: {}",
        ids.len(),
        distinct.len(),
        by_state
            .iter()
            .map(|(s, n)| format!("{s}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "worker A reconnections to another node: {moved}; queues drained, 0 dead letters; total {:.1}s",
        began.elapsed().as_secs_f64()
    );
    h.cleanup().await;
    let _ = std::fs::remove_file(&log_a);
    let _ = std::fs::remove_file(&log_b);
}

/// The gateway's publisher (HTTP intake → intake queue) while the node it is connected to —
/// the intake queue leader's — is killed: after a moment it accepts again, and every request
/// it accepted is on the intake queue.
///
/// A channel whose first publish to a quorum queue comes while the queue's record still names
/// the dead leader is nacked on every publish until that node is back (RabbitMQ 3.10's
/// quorum-queue client keeps asking the dead node; `rabbit_fifo_client:enqueue/3`). The gateway
/// reconnects at once after losing its node, so its new channels meet exactly that; until it
/// dropped a channel that nacks, it nacked (HTTP 503) every request for the whole outage here,
/// in three runs out of four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the three-node cluster: scripts/cluster-proof (or scripts/rabbit-cluster start)"]
async fn the_gateway_publisher_accepts_again_soon_after_its_node_is_killed() {
    use switchboard::bus::BusError;
    use switchboard::bus::publisher::{PublishError, Publisher as GatewayPublisher};

    let _one = ONE_AT_A_TIME.lock().await;
    println!("=== the gateway's publisher while the intake leader's node is killed");
    let names: Vec<String> = (1..=3).map(node_name).collect();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(running_nodes(1), expected, "all three nodes run and are clustered");
    let urls: Vec<String> = cluster(&["urls"]).trim().split(',').map(str::to_owned).collect();
    let mut settings = common::test_settings("cluster_gw");
    settings.amqp_url = urls.join(",");
    let mut h = Harness::with_settings(settings).await;
    let prefix = h.topo().prefix.clone();
    let intake = h.topo().queue("intake");
    let leader_name = queues(1, &prefix)
        .into_iter()
        .find(|q| q.name == intake)
        .expect("intake queue listed")
        .leader;
    let leader = names.iter().position(|n| *n == leader_name).expect("leader is a node") + 1;
    let other = leader % 3 + 1;
    let from_leader: Vec<String> = (0..3).map(|k| urls[(leader - 1 + k) % 3].clone()).collect();
    println!("intake leader: node {leader} ({leader_name}); the gateway connects to it first");

    // The gateway's defaults: 4 channels, 5 s publish timeout.
    let publisher = Arc::new(GatewayPublisher::new(
        from_leader,
        h.topo().clone(),
        4,
        Duration::from_secs(5),
    ));
    publisher.ready().await.expect("the gateway publisher connects");
    let began = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    // (seconds since start, outcome) of every publish: "ok", "nacked" or another error.
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::<(f64, &'static str)>::new()));
    let mut clients = Vec::new();
    for client in 0..8 {
        let (publisher, stop, outcomes) = (publisher.clone(), stop.clone(), outcomes.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.is_cancelled() {
                let id = format!("gw-cluster-{client}-{n}");
                n += 1;
                let body = format!(r#"{{"channel":"app","channel_message_id":"{id}","received_at":"2026-01-01T00:00:00Z","customer":{{"customer_id":"C1"}},"body":"hello"}}"#);
                let outcome = match publisher.publish("app", &id, body.as_bytes()).await {
                    Ok(()) => "ok",
                    Err(PublishError::Bus(BusError::Nacked(_))) => "nacked",
                    Err(_) => "failed",
                };
                outcomes.lock().unwrap().push((began.elapsed().as_secs_f64(), outcome));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut guard = NodeGuard(Some(leader));
    cluster(&["kill-node", &leader.to_string()]);
    let killed_at = began.elapsed().as_secs_f64();
    println!("killed node {leader} at {killed_at:.1}s");
    h.reconnect().await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    stop.cancel();
    for c in clients {
        c.await.expect("client task");
    }
    let outcomes = outcomes.lock().unwrap().clone();
    let per_second = |from: f64, to: f64| {
        let mut counts = BTreeMap::<&str, usize>::new();
        for (_, o) in outcomes.iter().filter(|(t, _)| *t >= from && *t < to) {
            *counts.entry(*o).or_default() += 1;
        }
        counts
    };
    let end = outcomes.iter().map(|(t, _)| *t).fold(0.0, f64::max);
    let mut second = 0.0;
    while second < end {
        println!(
            "  {second:>4.0}s–{:>2.0}s {:?}",
            second + 1.0,
            per_second(second, second + 1.0)
        );
        second += 1.0;
    }
    let accepted = outcomes.iter().filter(|(_, o)| *o == "ok").count();
    let after = per_second(killed_at + 5.0, f64::MAX);
    println!(
        "accepted {accepted} of {} publishes; from 5 s after the kill on: {after:?}",
        outcomes.len()
    );

    cluster(&["start-node", &leader.to_string()]);
    guard.0 = None;
    let depth = h.depth(&intake).await as usize;
    println!("intake queue holds {depth} messages (seen through node {other} and on)");
    assert!(depth >= accepted, "every accepted request is on the intake queue");
    assert!(after.get("ok").copied().unwrap_or(0) > 0, "the gateway accepts again");
    assert_eq!(
        after.values().sum::<usize>(),
        after.get("ok").copied().unwrap_or(0),
        "from 5 s after the kill on, every publish is accepted"
    );
    h.cleanup().await;
}
