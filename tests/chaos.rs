//! Chaos, scripted and small: during a load, `kill -9` a random worker process again and again,
//! restart RabbitMQ once and Postgres once; afterwards every accepted request is a ticket (a
//! thread reply: on its conversation's ticket), every ticket has exactly one transition per
//! stage, no event takes effect twice, nothing stays in flight. It prints the counts it checked.
//!
//! Seven worker processes (intake, classify, prioritize, assign, lifecycle, escalate,
//! scheduler: the per-stage binaries) take a paced load of demo traffic (new requests,
//! duplicates, thread replies, invalid messages) published with confirms, while a driver acting
//! as agents answers and resolves some of the assigned tickets through the actions exchange.
//!
//! Its tests stop the shared RabbitMQ and Postgres or raise the broker's memory alarm, so nothing
//! else may run beside them: `scripts/test` runs this binary on its own, one test at a time
//! (`--test-threads=1`). The seed of its choices (which worker dies when, which tickets get actions) is
//! printed; `CHAOS_SEED=<seed>` replays those choices, though not the timing around them.

mod common;

use common::Harness;
use common::process::{Running, log_path, log_tail, sigterm, spawn_bin, wait_exit};
use common::publisher::Publisher;
use common::servers::{
    PostgresGuard, RabbitGuard, TestCerts, WatermarkGuard, pg_version, set_memory_watermark, start_postgres,
    start_rabbitmq, stop_postgres, stop_rabbitmq,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use switchboard::config::Settings;
use switchboard::contracts::Exchange;
use switchboard::contracts::stage::QUEUES as ALL_QUEUES;
use switchboard::store::Db;
use switchboard_tools::demo::{Kind, Publication, traffic};
use tokio_util::sync::CancellationToken;

/// New requests in the load (plus the demo traffic's duplicates, thread replies and invalid
/// messages).
const REQUESTS: usize = 300;
/// One request every this often.
const PACE: Duration = Duration::from_millis(80);
/// Stage consumers in each worker process.
const CONCURRENCY: &str = "2";

/// Every worker is its own OS process, started from the crate's per-stage binaries.
const WORKERS: [(&str, &str); 9] = [
    ("intake", env!("CARGO_BIN_EXE_switchboard-intake")),
    ("classify", env!("CARGO_BIN_EXE_switchboard-classify")),
    ("prioritize", env!("CARGO_BIN_EXE_switchboard-prioritize")),
    ("assign", env!("CARGO_BIN_EXE_switchboard-assign")),
    ("lifecycle", env!("CARGO_BIN_EXE_switchboard-lifecycle")),
    ("escalate", env!("CARGO_BIN_EXE_switchboard-escalate")),
    ("scheduler", env!("CARGO_BIN_EXE_switchboard-scheduler")),
    ("notify", env!("CARGO_BIN_EXE_switchboard-notify")),
    ("deliver", env!("CARGO_BIN_EXE_switchboard-deliver")),
];

/// SplitMix64: a small seeded generator, so a run's choices can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn seed() -> u64 {
    match std::env::var("CHAOS_SEED") {
        Ok(s) => s.trim().parse().expect("CHAOS_SEED is a whole number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

struct Worker {
    name: &'static str,
    bin: &'static str,
    process: Running,
    kills: usize,
}

fn start_worker(s: &Settings, bin: &str) -> Running {
    spawn_bin(
        bin,
        s,
        &["--concurrency", CONCURRENCY],
        &[
            ("SWITCHBOARD_DATABASE_POOL_SIZE", "4".into()),
            // A killed sender's lease runs out in 5 s; a failed post is retried after 200 ms.
            ("SWITCHBOARD_DELIVER_TIMEOUT_MS", "2000".into()),
            ("SWITCHBOARD_DELIVER_FIRST_RETRY_MS", "200".into()),
        ],
    )
}

/// Rows of a query, or `None` while the database is away (the drivers run through outages).
async fn try_query(db: &Db, sql: &str) -> Option<Vec<tokio_postgres::Row>> {
    let work = async {
        let client = db.pool.get().await.ok()?;
        client.query(sql, &[]).await.ok()
    };
    tokio::time::timeout(Duration::from_secs(5), work).await.ok().flatten()
}

async fn query(h: &Harness, sql: &str) -> Vec<tokio_postgres::Row> {
    let client = h.app.db.pool.get().await.expect("a database connection");
    client.query(sql, &[]).await.expect(sql)
}

/// What the lifecycle driver sent (each confirmed by the broker).
#[derive(Default)]
struct Actions {
    responded: HashSet<String>,
    resolved: HashSet<String>,
    resent: usize,
}

/// Agents at work during the chaos: answers about half of the tickets it sees assigned and
/// resolves most of the ones it answered, through the actions exchange (the lifecycle queue).
async fn drive_actions(db: Db, urls: Vec<String>, exchange: String, stop: CancellationToken, mut rng: Rng) -> Actions {
    let mut publisher = Publisher::new(urls, exchange);
    let mut out = Actions::default();
    let mut decided: HashSet<String> = HashSet::new();
    let mut decided_resolve: HashSet<String> = HashSet::new();
    while !stop.is_cancelled() {
        let rows = try_query(
            &db,
            "SELECT number, state FROM tickets WHERE state IN ('assigned', 'in_progress') ORDER BY id",
        )
        .await
        .unwrap_or_default();
        for r in rows {
            if stop.is_cancelled() {
                break;
            }
            let (number, state): (String, String) = (r.get(0), r.get(1));
            let (kind, action) = if state == "assigned" && decided.insert(number.clone()) && rng.chance(50) {
                ("respond", json!({"kind": "respond", "message": "looking into it"}))
            } else if state == "in_progress"
                && out.responded.contains(&number)
                && decided_resolve.insert(number.clone())
                && rng.chance(60)
            {
                (
                    "resolve",
                    json!({"kind": "resolve", "result": "fixed during the chaos test"}),
                )
            } else {
                continue;
            };
            let body = json!({"ticket": number, "actor": "agent:chaos", "action": action});
            let id = format!("chaos-{kind}-{number}");
            publisher
                .publish(&Publication {
                    routing_key: format!("action.{kind}"),
                    message_id: id,
                    payload: body.to_string().into_bytes(),
                    kind: Kind::New,
                })
                .await;
            if kind == "respond" {
                out.responded.insert(number);
            } else {
                out.resolved.insert(number);
            }
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
    out.resent = publisher.close().await.resent;
    out
}

/// (ready, unacknowledged) per queue of this prefix, from `rabbitmqctl list_queues`.
fn broker_queues(prefix: &str) -> Option<BTreeMap<String, (u64, u64)>> {
    let out = Command::new("rabbitmqctl")
        .args([
            "list_queues",
            "--quiet",
            "--no-table-headers",
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut queues = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [name, ready, unacked] = f[..]
            && let Some(stage) = name.strip_prefix(&format!("{prefix}."))
        {
            queues.insert(stage.to_owned(), (ready.parse().ok()?, unacked.parse().ok()?));
        }
    }
    Some(queues)
}

/// Messages ready or unacknowledged in the stage queues (not the dead-letter queue, not the
/// test's event queue); `None` when the broker cannot be asked.
async fn in_flight(prefix: String) -> Option<u64> {
    let queues = tokio::task::spawn_blocking(move || broker_queues(&prefix))
        .await
        .ok()??;
    Some(
        ALL_QUEUES
            .iter()
            .map(|q| queues.get(*q).map(|(r, u)| r + u).unwrap_or(0))
            .sum(),
    )
}

/// What is still missing before the load has gone through: every request stored on a ticket,
/// no ticket stuck half-way, every action sent taken effect, nothing ready in a stage queue.
async fn not_drained(h: &Harness, request_ids: &[String], responds: i64, resolves: i64) -> Option<String> {
    let Ok(client) = h.app.db.pool.get().await else {
        return Some("no database connection".into());
    };
    let r = match client
        .query_one(
            "SELECT (SELECT count(*) FROM ticket_messages WHERE channel_message_id = ANY($1)),
                    (SELECT count(*) FROM tickets WHERE state IN ('received', 'classified', 'prioritized')),
                    (SELECT count(*) FROM ticket_transitions WHERE to_state = 'in_progress' AND actor <> 'customer'),
                    (SELECT count(*) FROM ticket_transitions WHERE to_state = 'resolved')",
            &[&request_ids],
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return Some(format!("query failed: {e}")),
    };
    let seen = (
        r.get::<_, i64>(0),
        r.get::<_, i64>(1),
        r.get::<_, i64>(2),
        r.get::<_, i64>(3),
    );
    let want = (request_ids.len() as i64, 0, responds, resolves);
    if seen != want {
        return Some(format!(
            "(stored requests, stuck tickets, responded, resolved) = {seen:?}, want {want:?}"
        ));
    }
    for q in ALL_QUEUES {
        let depth = h.depth(&h.topo().queue(q)).await;
        if depth != 0 {
            return Some(format!("{depth} messages ready in {q}"));
        }
    }
    None
}

/// The transitions of every ticket still in the pipeline, for a failure message: the worker logs
/// of a CI run are gone by the time anyone reads it.
async fn stuck_histories(h: &Harness) -> String {
    let Ok(client) = h.app.db.pool.get().await else {
        return "no database connection for the stuck tickets' histories".into();
    };
    let rows = client
        .query(
            "SELECT t.number, t.version, tr.seq, tr.from_state, tr.to_state, tr.actor, tr.reason, tr.at::text
             FROM tickets t JOIN ticket_transitions tr ON tr.ticket_id = t.id
             WHERE t.state IN ('received', 'classified', 'prioritized') ORDER BY t.id, tr.seq LIMIT 200",
            &[],
        )
        .await
        .unwrap_or_default();
    let mut out = String::from("stuck tickets' transitions (number vVERSION: seq from→to actor: reason at):");
    for r in rows {
        let (number, version, seq): (String, i32, i32) = (r.get(0), r.get(1), r.get(2));
        let (from, to): (Option<String>, String) = (r.get(3), r.get(4));
        let (actor, reason, at): (String, String, String) = (r.get(5), r.get(6), r.get(7));
        out.push_str(&format!(
            "\n  {number} v{version}: {seq} {}→{to} {actor}: {reason} {at}",
            from.unwrap_or_default()
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kill_workers_and_restart_both_servers_under_load() {
    let started = Instant::now();
    let seed = seed();
    println!("chaos: seed={seed} (CHAOS_SEED={seed} replays this run's choices)");
    let mut rng = Rng(seed);
    let pg = pg_version();
    let mut settings = common::test_settings("chaos");
    // The shipped delivery limit (20), not the tests' 5: every kill hands a worker's unacked
    // deliveries back, and that is not what the limit is for.
    settings.delivery_limit = Settings::default().delivery_limit;
    let mut h = Harness::with_settings(settings).await;
    // Declared after the harness so they drop first: the servers are back before it cleans up.
    let _rabbit_guard = RabbitGuard;
    let _pg_guard = PostgresGuard(pg.clone());
    h.import_sample_roster().await;
    let events = h.event_queue("#").await;
    // A webhook subscriber to every event, through every kill and restart.
    let secret = switchboard::outbound::signing::new_secret();
    let hook = common::receiver::Receiver::start(Some(secret.clone()), 0).await;
    switchboard::store::outbound::create_endpoint(
        &h.app.db,
        "whk_chaos",
        &hook.url("/chaos"),
        &["*".to_owned()],
        &secret,
        "chaos",
    )
    .await
    .expect("webhook endpoint");
    let s = h.app.settings.clone();
    println!("chaos: worker logs in {}", log_path(&s).display());

    let mut workers: Vec<Worker> = WORKERS
        .iter()
        .map(|&(name, bin)| Worker {
            name,
            bin,
            process: start_worker(&s, bin),
            kills: 0,
        })
        .collect();

    let pubs = traffic("chaos", 0..REQUESTS, true, chrono::Utc::now());
    let total = pubs.len();
    let accepted = Arc::new(AtomicUsize::new(0));
    let intake = h.topo().exchange(Exchange::Intake);
    let publishing = {
        let (pubs, accepted, urls) = (pubs.clone(), accepted.clone(), s.amqp_urls());
        tokio::spawn(async move {
            let mut publisher = Publisher::new(urls, intake);
            for (i, p) in pubs.iter().enumerate() {
                publisher.publish(p).await;
                accepted.store(i + 1, Ordering::SeqCst);
                tokio::time::sleep(PACE).await;
            }
            publisher.close().await.resent
        })
    };
    let stop_actions = CancellationToken::new();
    let acting = tokio::spawn(drive_actions(
        h.app.db.clone(),
        s.amqp_urls(),
        h.topo().exchange(Exchange::Actions),
        stop_actions.clone(),
        Rng(seed ^ 0x5EED),
    ));

    // The chaos: a kill every 0.5-1.5 s; RabbitMQ restarted at 30 % of the load, Postgres at 60 %.
    let mut kills = 0;
    let mut next_kill = Instant::now() + Duration::from_millis(500 + rng.below(1000));
    let mut rabbit: Option<tokio::task::JoinHandle<()>> = None;
    let mut postgres: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let done = accepted.load(Ordering::SeqCst);
        if rabbit.is_none() && done >= total * 3 / 10 {
            println!("chaos: restarting RabbitMQ after {done} of {total} requests");
            rabbit = Some(tokio::task::spawn_blocking(|| {
                stop_rabbitmq();
                std::thread::sleep(Duration::from_secs(2));
                start_rabbitmq();
            }));
        }
        let rabbit_back = rabbit.as_ref().is_some_and(|r| r.is_finished());
        if postgres.is_none() && rabbit_back && done >= total * 6 / 10 {
            println!("chaos: restarting Postgres after {done} of {total} requests");
            let pg = pg.clone();
            postgres = Some(tokio::task::spawn_blocking(move || {
                stop_postgres(&pg);
                std::thread::sleep(Duration::from_secs(2));
                start_postgres(&pg);
            }));
        }
        let postgres_back = postgres.as_ref().is_some_and(|p| p.is_finished());
        // Done when the load is and both servers are back (or at once when the publisher
        // failed before the outages: its panic is reported below).
        if publishing.is_finished() && (postgres_back || postgres.is_none()) {
            break;
        }
        for w in &mut workers {
            if let Ok(Some(status)) = w.process.try_wait() {
                panic!(
                    "the {} worker exited by itself ({status}):\n{}",
                    w.name,
                    log_tail(&s, 40)
                );
            }
        }
        if Instant::now() >= next_kill {
            let w = &mut workers[rng.below(WORKERS.len() as u64) as usize];
            w.process.kill().expect("kill -9");
            w.process.wait().expect("reap the killed worker");
            w.process = start_worker(&s, w.bin);
            w.kills += 1;
            kills += 1;
            next_kill = Instant::now() + Duration::from_millis(500 + rng.below(1000));
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "the load did not finish in 150 s: {} of {total} requests accepted",
            accepted.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resent = publishing.await.expect("publisher");
    rabbit.expect("RabbitMQ was restarted").await.expect("RabbitMQ restart");
    postgres
        .expect("Postgres was restarted")
        .await
        .expect("Postgres restart");
    stop_actions.cancel();
    let actions = acting.await.expect("lifecycle driver");
    let chaos_secs = started.elapsed().as_secs_f64();

    // Let the pipeline drain, then stop every worker with SIGTERM.
    h.reconnect().await; // the harness's connection died with the broker
    let request_ids: Vec<String> = pubs
        .iter()
        .filter(|p| matches!(p.kind, Kind::New | Kind::Reply))
        .map(|p| p.message_id.clone())
        .collect();
    let (responds, resolves) = (actions.responded.len() as i64, actions.resolved.len() as i64);
    let settle = Instant::now();
    while let Some(missing) = not_drained(&h, &request_ids, responds, resolves).await {
        assert!(
            settle.elapsed() < Duration::from_secs(90),
            "the pipeline did not drain in 90 s: {missing}; {}\n{}",
            h.snapshot().await,
            stuck_histories(&h).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drain_secs = settle.elapsed().as_secs_f64();
    let prefix = h.topo().prefix.clone();
    let mut quiet = 0;
    let asked = Instant::now();
    while quiet < 2 {
        quiet = if in_flight(prefix.clone()).await == Some(0) {
            quiet + 1
        } else {
            0
        };
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "messages still in flight after 30 s: {:?}",
            broker_queues(&prefix)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every webhook delivery sent (or given up) before the stop.
    let sending = Instant::now();
    loop {
        let pending = h
            .count("SELECT count(*) FROM deliveries WHERE kind = 'webhook' AND state = 'pending'")
            .await;
        if pending == 0 {
            break;
        }
        assert!(
            sending.elapsed() < Duration::from_secs(90),
            "{pending} webhook deliveries still pending after 90 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let webhook_secs = sending.elapsed().as_secs_f64();
    let stopping = Instant::now();
    for w in &workers {
        sigterm(&w.process);
    }
    for w in &mut workers {
        let status = wait_exit(&mut w.process, Duration::from_secs(30)).await;
        assert!(status.success(), "{} worker exited with {status} after SIGTERM", w.name);
    }
    let stop_secs = stopping.elapsed().as_secs_f64();

    // ---- Checks ----
    let count_kind = |k: Kind| pubs.iter().filter(|p| p.kind == k).count();
    let kinds_of: HashMap<&str, Kind> = pubs
        .iter()
        .filter(|p| p.kind != Kind::Duplicate)
        .map(|p| (p.message_id.as_str(), p.kind))
        .collect();

    // Every accepted request is stored exactly once, on a ticket of its own conversation. A
    // request without a thread reply is a ticket of its own. A reply usually joins its
    // conversation's ticket; when it overtakes the first message (another consumer, or a
    // redelivery after a kill, processed it first), a chat reply opens the conversation's one
    // ticket and the first message joins it, and an email reply opens a ticket of its own (the
    // first message names no thread, so it still opens its own too).
    let tickets = query(
        &h,
        "SELECT id, number, channel_message_id, state, version, assignee FROM tickets ORDER BY id",
    )
    .await;
    let mut opened_by: HashMap<String, i64> = HashMap::new();
    for t in &tickets {
        let cmid: String = t.get(2);
        assert!(
            matches!(kinds_of.get(cmid.as_str()), Some(Kind::New | Kind::Reply)),
            "ticket {} opened by {cmid:?}, which is no accepted request",
            t.get::<_, String>(1)
        );
        assert!(
            opened_by.insert(cmid.clone(), t.get(0)).is_none(),
            "two tickets opened by request {cmid}"
        );
    }
    let messages = query(
        &h,
        "SELECT channel_message_id, ticket_id, count(*) OVER (PARTITION BY channel, channel_message_id) FROM ticket_messages",
    )
    .await;
    let mut on_ticket: HashMap<String, i64> = HashMap::new();
    for m in &messages {
        let (cmid, ticket, copies): (String, i64, i64) = (m.get(0), m.get(1), m.get(2));
        assert_eq!(copies, 1, "request {cmid} stored {copies} times");
        assert!(
            matches!(kinds_of.get(cmid.as_str()), Some(Kind::New | Kind::Reply)),
            "stored message {cmid:?} is no accepted request"
        );
        on_ticket.insert(cmid, ticket);
    }
    assert_eq!(
        on_ticket.len(),
        request_ids.len(),
        "every new request and reply stored once"
    );
    let mut replies_first = 0;
    for p in pubs.iter().filter(|p| p.kind == Kind::New) {
        let first = p.message_id.as_str();
        let reply = format!("{first}-reply");
        let (first_opened, reply_opened) = (opened_by.get(first), opened_by.get(&reply));
        let (first_on, reply_on) = (on_ticket.get(first), on_ticket.get(&reply));
        if !kinds_of.contains_key(reply.as_str()) {
            assert!(
                first_opened.is_some() && first_on == first_opened,
                "request {first} is not a ticket of its own"
            );
        } else if p.routing_key == "intake.chat" {
            let opened: Vec<&i64> = first_opened.into_iter().chain(reply_opened).collect();
            assert_eq!(
                opened.len(),
                1,
                "chat {first} and its reply: one ticket, not {opened:?}"
            );
            assert!(
                first_on == Some(opened[0]) && reply_on == Some(opened[0]),
                "chat {first} and its reply are not both on their ticket"
            );
            replies_first += usize::from(reply_opened.is_some());
        } else {
            assert!(
                first_opened.is_some() && first_on == first_opened,
                "email {first} is not a ticket of its own"
            );
            assert!(
                reply_on == first_opened || (reply_opened.is_some() && reply_on == reply_opened),
                "email reply {reply} is on neither its conversation's ticket nor its own"
            );
            replies_first += usize::from(reply_opened.is_some());
        }
    }
    // Transitions: per ticket, sequence numbers 1..n without gap or repeat, the version is n,
    // and the path is exactly one step per stage plus the actions sent to it, besides what a
    // thread reply does (actor `customer`: a same-state `customer_messaged`, or reopening a
    // ticket it reached after the resolution) and the breaches and escalations the escalate
    // stage records (same state; a chat's first reply is due 10 s after it arrives).
    let transitions = query(
        &h,
        "SELECT ticket_id, seq, to_state, actor IN ('customer', 'escalate') FROM ticket_transitions ORDER BY ticket_id, seq, at",
    )
    .await;
    let mut paths: HashMap<i64, Vec<(i32, String)>> = HashMap::new();
    let mut by_customer: HashSet<(i64, i32)> = HashSet::new();
    for r in &transitions {
        paths.entry(r.get(0)).or_default().push((r.get(1), r.get(2)));
        if r.get::<_, bool>(3) {
            by_customer.insert((r.get(0), r.get(1)));
        }
    }
    let mut per_state: BTreeMap<String, usize> = BTreeMap::new();
    let mut drained_later = 0;
    let mut transition_of: HashMap<(String, i64), String> = HashMap::new();
    for t in &tickets {
        let (id, number, state, version): (i64, String, String, i32) = (t.get(0), t.get(1), t.get(3), t.get(4));
        let path = paths.remove(&id).unwrap_or_default();
        let seqs: Vec<i32> = path.iter().map(|p| p.0).collect();
        assert_eq!(
            seqs,
            (1..=path.len() as i32).collect::<Vec<_>>(),
            "ticket {number}: sequence numbers with a gap or a repeat"
        );
        assert_eq!(version as usize, path.len(), "ticket {number}: version vs transitions");
        let to: Vec<&str> = path
            .iter()
            .filter(|p| !by_customer.contains(&(id, p.0)))
            .map(|p| p.1.as_str())
            .collect();
        let mut suffix = Vec::new();
        if actions.responded.contains(&number) {
            suffix.push("in_progress");
        }
        if actions.resolved.contains(&number) {
            suffix.push("resolved");
        }
        let base = &to[..to.len().saturating_sub(suffix.len())];
        assert!(
            to.ends_with(&suffix)
                && matches!(
                    base,
                    ["received", "classified", "prioritized", "assigned"]
                        | ["received", "classified", "prioritized", "queued"]
                        | ["received", "classified", "prioritized", "queued", "assigned"]
                ),
            "ticket {number}: transitions {to:?}, expected one per stage then {suffix:?}"
        );
        if base.len() == 5 {
            drained_later += 1;
        }
        assert_eq!(
            Some(state.as_str()),
            path.last().map(|p| p.1.as_str()),
            "ticket {number}: state vs last transition"
        );
        for (seq, s) in path {
            *per_state.entry(s.clone()).or_default() += 1;
            transition_of.insert((number.clone(), seq as i64), s);
        }
    }
    assert!(paths.is_empty(), "transitions of no ticket: {:?}", paths.keys());
    let bad_loads = query(
        &h,
        "SELECT a.id FROM agent_loads a WHERE open_tickets <> (SELECT count(*) FROM tickets t
           WHERE t.assignee = a.id AND t.state NOT IN ('resolved', 'closed'))",
    )
    .await;
    assert!(
        bad_loads.is_empty(),
        "agent loads off (applied twice or lost) for {} agents",
        bad_loads.len()
    );

    // Events: at least once, so copies may repeat an id, but each distinct id is one
    // transition with one body, and every transition has its event.
    let delivered = h.drain_queue(&events).await;
    let mut bodies: HashMap<String, Value> = HashMap::new();
    for m in &delivered {
        let e: Value = serde_json::from_slice(&m.data).expect("an event is JSON");
        let id = e["id"].as_str().expect("event id").to_owned();
        // `sequence` is the CloudEvents sequence extension's zero-padded string.
        let seq: i64 = e["sequence"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        let subject = e["subject"].as_str().unwrap_or("");
        assert_eq!(id, format!("{subject}.{seq}"), "event id is <ticket>.<sequence>");
        assert_eq!(
            transition_of.get(&(subject.to_owned(), seq)).map(String::as_str),
            e["data"]["transition"]["to"].as_str(),
            "event {id} matches no transition"
        );
        match bodies.get(&id) {
            Some(first) => assert_eq!(first, &e, "one transition, two different events ({id})"),
            None => {
                bodies.insert(id, e);
            }
        }
    }
    assert_eq!(bodies.len(), transitions.len(), "one event per transition");
    let duplicate_events = delivered.len() - bodies.len();

    // Dead letters: only the traffic's invalid messages, each at least once.
    let invalid: HashSet<&str> = pubs
        .iter()
        .filter(|p| p.kind == Kind::Invalid)
        .map(|p| p.message_id.as_str())
        .collect();
    let dead = h.drain_queue(&h.topo().dead_queue()).await;
    let mut dead_ids: HashSet<String> = HashSet::new();
    for m in &dead {
        let id = m
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default();
        assert!(
            invalid.contains(id.as_str()),
            "dead-lettered but not invalid: {id:?} ({})",
            switchboard::bus::dead::reason_of(&m.delivery.properties)
        );
        dead_ids.insert(id);
    }
    assert_eq!(dead_ids.len(), invalid.len(), "every invalid message dead-lettered");

    // Nothing in flight: no stage queue holds anything (no consumer is left to hold it
    // unacknowledged), the outbox is empty, no ticket is stuck half-way.
    let mut in_queues = 0;
    for q in ALL_QUEUES {
        in_queues += h.depth(&h.topo().queue(q)).await;
    }
    assert_eq!(in_queues, 0, "stage queues empty after the stop");
    let outbox = h.count("SELECT count(*) FROM outbox").await;
    assert_eq!(outbox, 0, "outbox empty");
    let stuck = h
        .count("SELECT count(*) FROM tickets WHERE state IN ('received', 'classified', 'prioritized')")
        .await;
    assert_eq!(stuck, 0, "no ticket stuck half-way");
    // The outages reached the workers: they lost the broker and waited for the database.
    let log = std::fs::read_to_string(log_path(&s)).unwrap_or_default();
    assert!(
        !log.contains("panicked at"),
        "a worker panicked; see {}",
        log_path(&s).display()
    );
    let broker_lost =
        log.matches("consumer lost its connection").count() + log.matches("scheduler lost the broker").count();
    let db_waits = log.matches("database unavailable").count() + log.matches("waiting for Postgres").count();
    assert!(broker_lost > 0, "no worker noticed the RabbitMQ restart");
    assert!(db_waits > 0, "no worker noticed the Postgres restart");

    // The webhook: one decision per event (the deliveries' keys), every one delivered, and the
    // receiver saw every event id, signed; a resend after a kill reuses the id.
    let decided = h.count("SELECT count(*) FROM deliveries WHERE kind = 'webhook'").await;
    assert_eq!(decided, transitions.len() as i64, "one webhook delivery per event");
    let undelivered = h
        .count("SELECT count(*) FROM deliveries WHERE kind = 'webhook' AND state <> 'delivered'")
        .await;
    assert_eq!(undelivered, 0, "every webhook delivery delivered");
    let hits = hook.hits();
    assert!(
        hits.iter().all(|x| x.verified),
        "every post signed with the endpoint's secret"
    );
    let posted: HashSet<String> = hits
        .iter()
        .filter(|x| x.answered < 300)
        .filter_map(|x| x.id.clone())
        .collect();
    assert_eq!(posted.len(), transitions.len(), "every event reached the webhook");
    let reposted = hits.iter().filter(|x| x.answered < 300).count() - posted.len();
    // Per ticket, the order the receiver first saw its events in.
    let mut first_seen: HashMap<String, Vec<i64>> = HashMap::new();
    let mut seen_ids = HashSet::new();
    for x in &hits {
        let Some(id) = x.id.clone() else { continue };
        if x.answered >= 300 || !seen_ids.insert(id.clone()) {
            continue;
        }
        if let Some((number, seq)) = id.rsplit_once('.') {
            first_seen
                .entry(number.to_owned())
                .or_default()
                .push(seq.parse().unwrap_or(-1));
        }
    }
    let out_of_order = first_seen
        .values()
        .filter(|v| v.windows(2).any(|w| w[0] > w[1]))
        .count();
    println!(
        "chaos: webhook decisions={decided} posted_ids={} resent_after_kills={reposted} tickets_out_of_order={out_of_order} drained_in={webhook_secs:.1}s",
        posted.len()
    );

    let by_worker: Vec<String> = workers.iter().map(|w| format!("{}={}", w.name, w.kills)).collect();
    let states: Vec<String> = per_state.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "chaos: seed={seed} kills={kills} ({}) rabbit_restarts=1 worker_broker_disconnects={broker_lost} postgres_restarts=1 worker_db_retries={db_waits} load={chaos_secs:.1}s drain={drain_secs:.1}s sigterm={stop_secs:.1}s total={:.1}s",
        by_worker.join(" "),
        started.elapsed().as_secs_f64()
    );
    println!(
        "chaos: accepted={total} (new={} duplicate={} reply={} invalid={}) resent={resent} actions={} (respond={responds} resolve={resolves} resent={})",
        count_kind(Kind::New),
        count_kind(Kind::Duplicate),
        count_kind(Kind::Reply),
        count_kind(Kind::Invalid),
        responds + resolves,
        actions.resent
    );
    println!(
        "chaos: tickets={} (opened_by_first_message={} opened_by_overtaking_reply={replies_first}) stored_requests={} transitions={} ({}) queued_then_assigned={drained_later}",
        tickets.len(),
        tickets.len() - replies_first,
        messages.len(),
        transitions.len(),
        states.join(" ")
    );
    println!(
        "chaos: events={} deliveries={} duplicate_event_deliveries={duplicate_events} dead_letters={} (invalid={} duplicate_dead_letters={}) outbox=0 in_flight=0 stuck=0",
        bodies.len(),
        delivered.len(),
        dead.len(),
        invalid.len(),
        dead.len() - dead_ids.len()
    );
    let _ = std::fs::remove_file(log_path(&s));
    h.cleanup().await;
}

/// A broker alarm: RabbitMQ's memory alarm blocks every publishing connection while a load is in
/// flight. The stages consume on one connection and publish on another, hold no database
/// transaction while the broker makes them wait, and carry on when the alarm clears: every
/// request becomes a routed ticket and nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_broker_memory_alarm_blocks_publishers_without_deadlock_or_loss() {
    use switchboard::app::StageName;
    let mut h = Harness::new("alarm").await;
    let _watermark = WatermarkGuard;
    h.import_sample_roster().await;
    let now = chrono::Utc::now();
    for n in 0..40 {
        let id = format!("alarm-{n}");
        let body = json!({"channel": "app", "channel_message_id": id, "received_at": now,
                          "customer": {"customer_id": format!("C-{n}")}, "body": "APP 付款页面一直报错，无法下单"});
        h.publish_intake("intake.app", &id, &serde_json::to_vec(&body).unwrap())
            .await;
    }
    set_memory_watermark("0.0001");
    h.start_stages(&StageName::ALL, 2);
    println!("alarm: memory alarm raised with 40 requests queued; stages started");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stored = query(&h, "SELECT count(*) FROM tickets").await[0].get::<_, i64>(0);
    // While the broker blocks publishers, no transaction waits on it.
    let idle_in_tx = query(
        &h,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
           AND state = 'idle in transaction' AND now() - state_change > interval '2 seconds'",
    )
    .await[0]
        .get::<_, i64>(0);
    assert_eq!(idle_in_tx, 0, "a transaction stayed open across the broker's alarm");
    assert!(
        stored > 0,
        "intake consumed nothing during the alarm: consuming must not be blocked"
    );
    let routed_during =
        query(&h, "SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')").await[0].get::<_, i64>(0);
    set_memory_watermark("0.4");
    println!("alarm: cleared ({stored} stored by intake and {routed_during} of 40 routed while it lasted)");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let routed =
            query(&h, "SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')").await[0].get::<_, i64>(0);
        if routed == 40 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {routed} of 40 routed a minute after the alarm: {}",
            h.snapshot().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(h.depth(&h.topo().dead_queue()).await, 0, "{}", h.snapshot().await);
    println!("alarm: 40 of 40 routed, 0 dead letters");
    h.cleanup().await;
}

/// Turns Postgres's TLS on with `certs` (reloading the configuration) and off again when dropped.
struct PostgresTls;

impl PostgresTls {
    async fn on(admin: &tokio_postgres::Client, certs: &TestCerts) -> PostgresTls {
        for sql in [
            format!("ALTER SYSTEM SET ssl_cert_file = '{}'", certs.cert.display()),
            format!("ALTER SYSTEM SET ssl_key_file = '{}'", certs.key.display()),
            "ALTER SYSTEM SET ssl = on".to_owned(),
            "SELECT pg_reload_conf()".to_owned(),
        ] {
            admin.batch_execute(&sql).await.expect("turn Postgres TLS on");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        PostgresTls
    }
}

impl Drop for PostgresTls {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                "ALTER SYSTEM RESET ssl",
                "-c",
                "ALTER SYSTEM RESET ssl_cert_file",
                "-c",
                "ALTER SYSTEM RESET ssl_key_file",
                "-c",
                "SELECT pg_reload_conf()",
            ])
            .output();
    }
}

/// Starts a TLS listener of RabbitMQ on `port` with `certs`, and stops it when dropped.
struct RabbitTls(u16);

impl RabbitTls {
    fn on(port: u16, certs: &TestCerts) -> RabbitTls {
        let expr = format!(
            "rabbit_networking:start_ssl_listener({port}, [{{cacertfile,\"{}\"}},{{certfile,\"{}\"}},{{keyfile,\"{}\"}}], 1, 1).",
            certs.ca.display(),
            certs.cert.display(),
            certs.rabbit_key.display()
        );
        let out = Command::new("rabbitmqctl")
            .args(["eval", &expr])
            .output()
            .expect("rabbitmqctl");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        RabbitTls(port)
    }
}

impl Drop for RabbitTls {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["eval", &format!("rabbit_networking:stop_tcp_listener({}).", self.0)])
            .output();
    }
}

/// TLS to both servers, with certificates the test makes: the whole pipeline's intake runs over
/// `amqps://` and `sslmode=verify-full`, and a server whose certificate does not chain to the
/// configured CA is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_tls_to_rabbitmq_and_postgres_with_certificates_made_by_the_test() {
    use switchboard::app::StageName;
    let certs = TestCerts::make("servers");
    let stranger = TestCerts::make("stranger");
    let plain = common::test_settings("tls");
    let (admin, conn) = {
        let mut cfg: tokio_postgres::Config = plain.database_url.parse().unwrap();
        cfg.dbname("postgres");
        cfg.connect(tokio_postgres::NoTls).await.unwrap()
    };
    tokio::spawn(conn);
    let _pg_tls = PostgresTls::on(&admin, &certs).await;
    let port = common::process::free_port();
    let _rabbit_tls = RabbitTls::on(port, &certs);

    let with_tls = |ca: &std::path::Path| {
        let mut s = plain.clone();
        s.database_url = format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            plain.database_url,
            ca.display()
        );
        s.amqp_url = format!("amqps://guest:guest@localhost:{port}/%2f?cacertfile={}", ca.display());
        s
    };
    // The wrong CA: both servers are refused.
    let wrong = with_tls(&stranger.ca);
    assert!(
        Db::connect(&wrong).await.is_err(),
        "Postgres accepted with a certificate from another CA"
    );
    assert!(
        switchboard::bus::connect(&wrong.amqp_urls(), "tls-test").await.is_err(),
        "RabbitMQ accepted with a certificate from another CA"
    );

    let mut h = Harness::with_settings(with_tls(&certs.ca)).await;
    let encrypted: bool = query(&h, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").await[0].get(0);
    assert!(encrypted, "the pool's connection is not encrypted");
    h.start_stages(&[StageName::Intake], 1);
    let body = json!({"channel": "app", "channel_message_id": "tls-1", "received_at": chrono::Utc::now(),
                      "customer": {"customer_id": "C-tls"}, "body": "APP 付款页面一直报错"});
    h.publish_intake("intake.app", "tls-1", &serde_json::to_vec(&body).unwrap())
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(&h, "SELECT count(*) FROM tickets").await[0].get::<_, i64>(0) < 1 {
        assert!(Instant::now() < deadline, "the request never became a ticket over TLS");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("tls: a request went through amqps:// and sslmode=verify-full; the wrong CA was refused by both");
    h.cleanup().await;
}
