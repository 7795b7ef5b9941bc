//! Switchboard's intake→assigned throughput against the ceiling of the same broker and
//! database, in one run (issue 6, item 1; first cut).
//!
//! Three passes over the same four queues (intake → classify → prioritize → assign), each with
//! `N` messages, every stage in this process with the same runner, batching and confirms:
//! 1. broker only: stages that forward each message and do nothing else (the runner still opens
//!    and commits an empty transaction per batch);
//! 2. broker + one Postgres transaction per hop: the same, plus one INSERT of the batch's rows
//!    per hop, no business logic;
//! 3. Switchboard: the real stages on sample traffic.
//!
//! Prints throughput of each, Switchboard as a ratio of both, and this process's peak RSS.
//!
//! Run: `cargo bench --bench pipeline` (N with SWITCHBOARD_BENCH_N, default 5000; uses
//! SWITCHBOARD_TEST_DATABASE_URL / SWITCHBOARD_AMQP_URL; its own schema and queue prefix,
//! removed at the end).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use switchboard::app::{App, StageName};
use switchboard::bus::{self, Exchange, Outgoing};
use switchboard::pipeline::{Inbound, Outcome, Stage};
use switchboard::store::StoreError;
use tokio_postgres::Transaction;
use tokio_util::sync::CancellationToken;

/// A stage that forwards each message to the next queue, optionally writing one row per message.
struct Forward {
    name: &'static str,
    next: Option<&'static str>,
    write: bool,
    done: Arc<AtomicUsize>,
}

impl Stage for Forward {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn process(&self, tx: &Transaction<'_>, batch: &[Inbound]) -> Result<Vec<Outcome>, StoreError> {
        if self.write {
            let ids: Vec<String> = batch.iter().map(|m| m.message_id().unwrap_or("-").to_owned()).collect();
            tx.execute(
                "INSERT INTO bench_hops (message_id, hop) SELECT m, $2 FROM unnest($1::text[]) m",
                &[&ids, &self.name],
            )
            .await?;
        }
        let out = batch
            .iter()
            .map(|m| match self.next {
                Some(next) => Outcome::Done(vec![Outgoing {
                    exchange: Exchange::Work,
                    routing_key: next.into(),
                    message_id: format!("{}:{next}", m.message_id().unwrap_or("-")),
                    body: serde_json::json!({ "n": 1 }),
                    headers: vec![],
                }]),
                None => Outcome::Done(Vec::new()),
            })
            .collect();
        if self.next.is_none() {
            self.done.fetch_add(batch.len(), Ordering::Relaxed);
        }
        Ok(out)
    }
}

async fn forward_pass(app: &App, n: usize, write: bool) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let hops: [(&'static str, Option<&'static str>); 4] = [
        ("intake", Some("classify")),
        ("classify", Some("prioritize")),
        ("prioritize", Some("assign")),
        ("assign", None),
    ];
    let mut tasks = Vec::new();
    for (name, next) in hops {
        let stage = Arc::new(Forward {
            name,
            next,
            write,
            done: done.clone(),
        });
        let (s, t, d, h, st) = (
            app.settings.clone(),
            app.topo.clone(),
            app.db.clone(),
            app.health.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            switchboard::pipeline::run_stage(stage, &s, t, d, 2, st, h).await
        }));
    }
    let conn = bus::connect(&app.settings.amqp_urls(), "bench-publish").await?;
    let ch = bus::confirm_channel(&conn).await?;
    let started = Instant::now();
    let msgs: Vec<Outgoing> = (0..n)
        .map(|i| Outgoing {
            exchange: Exchange::Intake,
            routing_key: "intake.app".into(),
            message_id: format!("b{}-{i}", u8::from(write)),
            body: serde_json::json!({ "n": i }),
            headers: vec![],
        })
        .collect();
    for chunk in msgs.chunks(500) {
        bus::publish_all(&ch, &app.topo, chunk).await?;
    }
    while done.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if started.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("forward pass stalled at {}/{n}", done.load(Ordering::Relaxed));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let _ = conn.close(200, "bye".into()).await;
    Ok(n as f64 / secs)
}

async fn switchboard_pass(app: &App, n: usize) -> anyhow::Result<f64> {
    let csv = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/agents.sample.csv"))?;
    let teams: Vec<String> = app.policy.doc.teams.keys().cloned().collect();
    app.db
        .import_agents(&switchboard::store::agents::parse_roster("roster", &csv, &teams)?)
        .await?;
    let stop = CancellationToken::new();
    let runner = {
        let (a, s) = (app.clone(), stop.clone());
        tokio::spawn(async move { a.run(&StageName::PIPELINE, 2, s).await })
    };
    let conn = bus::connect(&app.settings.amqp_urls(), "bench-publish").await?;
    let ch = bus::confirm_channel(&conn).await?;
    let traffic: Vec<_> = switchboard::demo::traffic("bench", 0..n, false, chrono::Utc::now())
        .into_iter()
        .filter(|p| p.kind == switchboard::demo::Kind::New)
        .collect();
    let started = Instant::now();
    for chunk in traffic.chunks(500) {
        let msgs: Vec<Outgoing> = chunk
            .iter()
            .map(|p| Outgoing {
                exchange: Exchange::Intake,
                routing_key: p.routing_key.clone(),
                message_id: p.message_id.clone(),
                body: serde_json::from_slice(&p.payload).unwrap_or_default(),
                headers: vec![],
            })
            .collect();
        bus::publish_all(&ch, &app.topo, &msgs).await?;
    }
    let client = app.db.pool.get().await?;
    loop {
        let routed: i64 = client
            .query_one(
                "SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')",
                &[],
            )
            .await?
            .get(0);
        if routed as usize >= traffic.len() {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("pipeline stalled at {routed}/{}", traffic.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = runner.await;
    let _ = conn.close(200, "bye".into()).await;
    Ok(traffic.len() as f64 / secs)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

mod support;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("SWITCHBOARD_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let app = support::isolated_app("bench_pipe").await?;
    app.db
        .pool
        .get()
        .await?
        .batch_execute("CREATE TABLE bench_hops (message_id text, hop text)")
        .await?;
    let result = async {
        println!("{n} messages per pass, every stage in this process (2 consumers each), all durability on");
        let broker = forward_pass(&app, n, false).await?;
        println!("  ceiling, broker only (forwarding stages):       {broker:>8.0} messages/s end to end");
        let db = forward_pass(&app, n, true).await?;
        println!("  ceiling, broker + one transaction per hop:      {db:>8.0} messages/s end to end");
        let sb = switchboard_pass(&app, n).await?;
        println!("  Switchboard intake → assigned/queued:           {sb:>8.0} tickets/s");
        println!(
            "  Switchboard / broker ceiling {:.2} · Switchboard / broker+db ceiling {:.2} · peak RSS of this process {:.0} MiB",
            sb / broker,
            sb / db,
            peak_rss_mib()
        );
        anyhow::Ok(())
    }
    .await;
    support::remove(&app).await?;
    result
}
