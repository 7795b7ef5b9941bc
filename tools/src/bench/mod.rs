//! `switchboard bench`: Switchboard's throughput, latency and memory against the ceiling of the
//! same broker and database, in one run.
//!
//! Every pass runs in a schema and queue prefix of its own (removed afterwards) and runs each
//! stage as a separate OS process — the way it is deployed — so the peak RSS it prints is per
//! process. The passes:
//! 1. **ceiling, broker only**: the four queues intake → classify → prioritize → assign, each
//!    served by a process that forwards every message and does nothing else (the runner still
//!    batches, commits an empty transaction per batch, confirms and multiple-acks);
//! 2. **ceiling, broker + database**: the same, plus one INSERT of the batch's rows per hop;
//! 3. **Switchboard** at full speed and at each fixed rate asked for: the real stages on sample
//!    traffic, with a roster large enough that every ticket gets an agent;
//! 4. optionally the **lifecycle**: each assigned ticket is responded to, resolved and rated
//!    (5/5 closes it), one wave of actions after another.
//!
//! Completion is counted the same way in every pass: from `ticket.*` events on a queue of the
//! benchmark's own. Latencies come from the transition log: the time a request was sent (its
//! `received_at`) and the time each stage decided, so they are per hop and end to end.

pub mod forward;
pub mod stats;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use stats::{Summary, hops, summarize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard::app::App;
use switchboard::bus::{self, BusError};
use switchboard::config::Settings;
use switchboard::contracts::{Body, Exchange, Outgoing};
use switchboard::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    App(#[from] switchboard::app::AppError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("AMQP: {0}")]
    Amqp(#[from] lapin::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("roster: {0}")]
    Roster(#[from] switchboard::store::agents::RosterError),
    #[error(
        "{what}: {done} of {want} after {secs:.0} s; the worker logs in {logs} say why (is a stage failing or the broker blocked?)"
    )]
    Stalled {
        what: String,
        done: usize,
        want: usize,
        secs: f64,
        logs: String,
    },
    #[error("worker process {stage} exited early ({status}); see {log}")]
    WorkerExited { stage: String, status: String, log: String },
}

/// One publishing speed: as fast as the broker confirms, or a steady rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Full,
    PerSecond(u32),
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Rate, String> {
        match s {
            "full" | "max" => Ok(Rate::Full),
            n => n
                .parse::<u32>()
                .ok()
                .filter(|r| *r > 0)
                .map(Rate::PerSecond)
                .ok_or_else(|| format!("{s:?} is not a rate: give `full` or requests per second, e.g. 1000")),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::Full => write!(f, "full speed"),
            Rate::PerSecond(r) => write!(f, "{r}/s"),
        }
    }
}

/// How a Switchboard pass runs the pipeline's four stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// One process per stage, each consuming its own queue (scale each stage alone).
    Separate,
    /// One process running all four stages, chained: a ticket goes from stage to stage in
    /// memory and each batch commits once (`switchboard run`'s default).
    Chained,
    /// One process running all four stages, each through its own queue
    /// (`SWITCHBOARD_CHAIN_STAGES=false`): what chaining saves beyond sharing a process.
    Unchained,
}

impl Shape {
    fn label(self) -> &'static str {
        match self {
            Shape::Separate => "a process per stage",
            Shape::Chained => "one process, chained",
            Shape::Unchained => "one process, unchained",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Tickets per pass.
    pub requests: usize,
    /// The Switchboard passes to run, one per rate.
    pub rates: Vec<Rate>,
    /// Also drive every ticket through respond → resolve → rate (after the first pass).
    pub lifecycle: bool,
    /// Run the two ceiling passes.
    pub ceiling: bool,
    /// Consumers per stage process.
    pub consumers: usize,
    /// How the Switchboard passes run the stages; one pass per shape and rate.
    pub shapes: Vec<Shape>,
    /// `--config` to hand to the worker processes.
    pub config: Option<PathBuf>,
}

/// The figures of one pass.
#[derive(Debug, Clone)]
pub struct PassResult {
    pub label: String,
    pub tickets: usize,
    pub seconds: f64,
    pub per_second: f64,
    /// (hop name, latency summary) in pipeline order, then end to end.
    pub latency: Vec<(String, Summary)>,
    /// (process, peak RSS in MiB).
    pub rss: Vec<(String, f64)>,
    /// (process or server, CPU seconds used during the pass).
    pub cpu: Vec<(String, f64)>,
}

/// Linux's USER_HZ, the unit of `/proc/<pid>/stat` times, on every platform Rust targets.
const TICKS_PER_SECOND: f64 = 100.0;

fn read_cpu(pid: u32) -> Option<u64> {
    stats::cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The pids serving a local TCP port: the process listening on it and its children (for
/// PostgreSQL, the postmaster and every backend; for RabbitMQ, the node's Erlang VM). Found from
/// `/proc/net/tcp*` and the processes' socket descriptors, so another broker or database on the
/// same machine (a cluster node, say) is not counted. Empty when the server is not local.
fn server_pids(port: u16) -> Vec<u32> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        inodes.extend(stats::listening_inodes(&text, port));
    }
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect();
    let owns_listener = |pid: &u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.filter_map(Result::ok).any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|l| {
                    l.to_str()
                        .and_then(|l| l.strip_prefix("socket:["))
                        .and_then(|l| l.strip_suffix(']'))
                        .and_then(|i| i.parse::<u64>().ok())
                        .is_some_and(|i| inodes.contains(&i))
                })
            })
        })
    };
    let Some(server) = pids.iter().copied().find(owns_listener) else {
        return Vec::new();
    };
    let parent_of = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat[stat.rfind(')')? + 1..]
            .split_whitespace()
            .nth(1)?
            .parse::<u32>()
            .ok()
    };
    pids.into_iter()
        .filter(|p| *p == server || parent_of(*p) == Some(server))
        .collect()
}

/// The servers whose CPU the benchmark reports, by the port each listens on.
fn server_ports(settings: &Settings) -> Vec<(String, u16)> {
    let port_of = |url: &str, default: u16| {
        url.split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', '?']).next())
            .and_then(|host| host.rsplit('@').next())
            .and_then(|host| host.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(default)
    };
    let amqp = settings.amqp_urls().first().cloned().unwrap_or_default();
    vec![
        ("postgres".into(), port_of(&settings.database_url, 5432)),
        ("rabbitmq".into(), port_of(&amqp, 5672)),
    ]
}

/// CPU ticks of each process of a group, by pid.
type Ticks = Vec<(String, HashMap<u32, u64>)>;

/// CPU use of the stage processes, this process and the servers, between `start` and
/// `finish`, per pid: a PostgreSQL backend that starts during the pass counts from zero (one
/// that ends during it takes its ticks with it, so the figure is a floor).
struct CpuMeter {
    start: Ticks,
    servers: Vec<(String, u16)>,
}

impl CpuMeter {
    fn snapshot(workers: &Workers, servers: &[(String, u16)]) -> Ticks {
        let ticks = |pids: Vec<u32>| -> HashMap<u32, u64> {
            pids.into_iter().filter_map(|p| Some((p, read_cpu(p)?))).collect()
        };
        let mut out: Ticks = workers
            .children
            .iter()
            .map(|(name, child, _)| (name.clone(), ticks(child.id().into_iter().collect())))
            .collect();
        out.push(("this process".into(), ticks(vec![std::process::id()])));
        for (label, port) in servers {
            out.push((label.clone(), ticks(server_pids(*port))));
        }
        out
    }

    fn start(workers: &Workers, settings: &Settings) -> CpuMeter {
        let servers = server_ports(settings);
        CpuMeter {
            start: Self::snapshot(workers, &servers),
            servers,
        }
    }

    fn finish(&self, workers: &Workers) -> Vec<(String, f64)> {
        Self::snapshot(workers, &self.servers)
            .into_iter()
            .zip(&self.start)
            .map(|((name, end), (_, begin))| {
                let used: u64 = end
                    .iter()
                    .map(|(pid, t)| t.saturating_sub(begin.get(pid).copied().unwrap_or(0)))
                    .sum();
                (name, used as f64 / TICKS_PER_SECOND)
            })
            .collect()
    }
}

/// The worker processes of one pass, killed if dropped.
struct Workers {
    children: Vec<(String, tokio::process::Child, PathBuf)>,
}

impl Workers {
    /// Peak resident memory of each process so far, in MiB.
    fn peak_rss(&self) -> Vec<(String, f64)> {
        self.children
            .iter()
            .filter_map(|(name, child, _)| {
                let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()?)).ok()?;
                let (_, hwm) = stats::rss_kib(&status);
                Some((name.clone(), hwm? as f64 / 1024.0))
            })
            .collect()
    }

    /// Fails if any process has exited: a pass must not wait for a stage that is gone.
    fn check_alive(&mut self) -> Result<(), BenchError> {
        for (name, child, log) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                return Err(BenchError::WorkerExited {
                    stage: name.clone(),
                    status: status.to_string(),
                    log: log.display().to_string(),
                });
            }
        }
        Ok(())
    }

    /// SIGTERM (the workers drain and exit), then wait for them.
    async fn stop(mut self) {
        for (_, child, _) in &self.children {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
        }
        for (_, child, _) in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        self.children.clear();
    }
}

/// A schema and queue prefix of the pass's own, on the configured servers.
struct Isolated {
    app: App,
    logs: PathBuf,
}

impl Isolated {
    async fn start(base: &Settings, name: &str) -> Result<Isolated, BenchError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let tag = format!("bench_{name}_{}", &id[..8]);
        let settings = Settings {
            database_schema: Some(tag.clone()),
            topology_prefix: tag.clone(),
            metrics_addr: None,
            ..base.clone()
        };
        let app = App::start(settings).await?;
        if let Err(e) = app.declare_topology().await {
            // The schema exists by now: nothing may stay behind when the broker is away.
            let _ = app.db.drop_schema().await;
            return Err(e.into());
        }
        let logs = std::env::temp_dir().join(format!("switchboard-{tag}"));
        std::fs::create_dir_all(&logs)?;
        Ok(Isolated { app, logs })
    }

    /// Starts one process of `exe` per stage: `args(stage)` after the executable.
    fn spawn(
        &self,
        exe: &Path,
        opts: &Options,
        stages: &[&str],
        args: impl Fn(&str) -> Vec<String>,
    ) -> Result<Workers, BenchError> {
        self.spawn_with(exe, opts, stages, args, true)
    }

    /// [`Isolated::spawn`], with stage chaining on or off in the processes.
    fn spawn_with(
        &self,
        exe: &Path,
        opts: &Options,
        stages: &[&str],
        args: impl Fn(&str) -> Vec<String>,
        chain: bool,
    ) -> Result<Workers, BenchError> {
        let mut children = Vec::new();
        for stage in stages {
            let log = self.logs.join(format!("{stage}.log"));
            let out = std::fs::File::create(&log)?;
            let mut cmd = tokio::process::Command::new(exe);
            if let Some(c) = &opts.config {
                cmd.arg("--config").arg(c);
            }
            cmd.args(args(stage))
                .env("SWITCHBOARD_TOPOLOGY_PREFIX", &self.app.topo.prefix)
                .env(
                    "SWITCHBOARD_DATABASE_SCHEMA",
                    self.app.db.schema.as_deref().unwrap_or_default(),
                )
                .env("SWITCHBOARD_DATABASE_URL", &self.app.settings.database_url)
                .env("SWITCHBOARD_AMQP_URL", &self.app.settings.amqp_url)
                .env("SWITCHBOARD_POLICY", &self.app.settings.policy_path)
                .env("SWITCHBOARD_METRICS_ADDR", "")
                .env("SWITCHBOARD_CHAIN_STAGES", if chain { "true" } else { "false" })
                .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
                .stdout(out.try_clone()?)
                .stderr(out)
                .kill_on_drop(true);
            children.push(((*stage).to_owned(), cmd.spawn()?, log));
        }
        Ok(Workers { children })
    }

    /// Waits until every stage queue has `consumers` consumers.
    async fn wait_consuming(&self, workers: &mut Workers, stages: &[&str], consumers: usize) -> Result<(), BenchError> {
        let conn = bus::connect(&self.app.settings.amqp_urls(), "switchboard-bench").await?;
        let ch = conn.create_channel().await?;
        let started = Instant::now();
        for stage in stages {
            loop {
                workers.check_alive()?;
                let q = ch
                    .queue_declare(
                        self.app.topo.queue(stage).into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                if q.consumer_count() as usize >= consumers {
                    break;
                }
                if started.elapsed() > Duration::from_secs(120) {
                    return Err(BenchError::Stalled {
                        what: format!("consumers on {}", self.app.topo.queue(stage)),
                        done: q.consumer_count() as usize,
                        want: consumers,
                        secs: started.elapsed().as_secs_f64(),
                        logs: self.logs.display().to_string(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let _ = conn.close(200, "ready".into()).await;
        Ok(())
    }

    /// Removes the pass's queues and schema; its worker logs too, unless the pass failed.
    async fn remove(self, keep_logs: bool) {
        if let Ok(conn) = bus::connect(&self.app.settings.amqp_urls(), "switchboard-bench-cleanup").await {
            if let Ok(ch) = conn.create_channel().await {
                let _ = self.app.topo.delete(&ch).await;
            }
            let _ = conn.close(200, "bye".into()).await;
        }
        let _ = self.app.db.drop_schema().await;
        if keep_logs {
            eprintln!("bench: worker logs kept in {}", self.logs.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.logs);
        }
    }
}

/// Counts distinct events by routing key from a queue of the benchmark's own.
#[derive(Clone, Default)]
struct EventCounter {
    seen: Arc<Mutex<HashMap<String, HashSet<String>>>>,
}

impl EventCounter {
    /// Binds only the `keys` counted: events nobody subscribes to cost the broker nothing, and
    /// the benchmark should not add subscribers the pipeline would not have.
    async fn start(app: &App, keys: &[&str]) -> Result<(EventCounter, lapin::Connection), BenchError> {
        let conn = bus::connect(&app.settings.amqp_urls(), "switchboard-bench-events").await?;
        let ch = conn.create_channel().await?;
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        for key in keys {
            ch.queue_bind(
                q.name().clone(),
                app.topo.exchange(Exchange::Events).into(),
                (*key).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        let mut consumer = ch
            .basic_consume(
                q.name().clone(),
                "bench-counter".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let counter = EventCounter::default();
        let seen = counter.seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let id = d
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                if let Ok(mut s) = seen.lock() {
                    s.entry(d.routing_key.to_string()).or_default().insert(id);
                }
            }
        });
        Ok((counter, conn))
    }

    fn count(&self, keys: &[&str]) -> usize {
        self.seen
            .lock()
            .map(|s| keys.iter().map(|k| s.get(*k).map_or(0, HashSet::len)).sum())
            .unwrap_or(0)
    }

    async fn wait(
        &self,
        keys: &[&str],
        want: usize,
        what: &str,
        workers: &mut Workers,
        logs: &Path,
    ) -> Result<(), BenchError> {
        let started = Instant::now();
        let mut last = (0, Instant::now());
        loop {
            let done = self.count(keys);
            if done >= want {
                return Ok(());
            }
            workers.check_alive()?;
            if done > last.0 {
                last = (done, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(60) {
                return Err(BenchError::Stalled {
                    what: what.to_owned(),
                    done,
                    want,
                    secs: started.elapsed().as_secs_f64(),
                    logs: logs.display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Publishes `messages` at `rate`, stamping each request's `received_at` with the moment it is
/// sent, so that latencies are measured from the send. Returns when every publish is confirmed.
async fn publish_paced(app: &App, messages: Vec<Outgoing>, rate: Rate) -> Result<(), BenchError> {
    let conn = bus::connect(&app.settings.amqp_urls(), "switchboard-bench-publish").await?;
    let ch = bus::confirm_channel(&conn).await?;
    let stamp = |mut m: Outgoing| {
        if m.exchange == Exchange::Intake {
            let mut tree = m.body.value();
            if let Some(obj) = tree.as_object_mut() {
                obj.insert("received_at".into(), serde_json::json!(Utc::now()));
            }
            m.body = Body::of(&tree);
        }
        m
    };
    let started = Instant::now();
    let mut confirms = tokio::task::JoinSet::new();
    let mut pending = messages.into_iter().peekable();
    let mut sent = 0usize;
    while pending.peek().is_some() {
        let due = match rate {
            Rate::Full => sent + 500,
            Rate::PerSecond(r) => (started.elapsed().as_secs_f64() * f64::from(r)).floor() as usize,
        };
        let chunk: Vec<Outgoing> = pending.by_ref().take(due.saturating_sub(sent)).map(stamp).collect();
        sent += chunk.len();
        if !chunk.is_empty() {
            let (ch, topo) = (ch.clone(), app.topo.clone());
            confirms.spawn(async move { bus::publish_all(&ch, &topo, &chunk).await });
        }
        match rate {
            // Keep a few chunks in flight, no more: the broker's confirms set the pace.
            Rate::Full => {
                while confirms.len() >= 4 {
                    if let Some(r) = confirms.join_next().await {
                        r.map_err(std::io::Error::other)??;
                    }
                }
            }
            Rate::PerSecond(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
    while let Some(r) = confirms.join_next().await {
        r.map_err(std::io::Error::other)??;
    }
    let _ = conn.close(200, "published".into()).await;
    Ok(())
}

fn bench_roster(app: &App) -> Result<Vec<switchboard::store::agents::RosterRow>, BenchError> {
    let teams: Vec<String> = app.policy.doc.teams.keys().cloned().collect();
    let mut csv = String::from("id,name,team,languages,channels,skills,max_open,presence\n");
    for team in &teams {
        for k in 0..10 {
            csv.push_str(&format!(
                "bench-{team}-{k},Bench agent {k},{team},zh;en,,,1000000,online\n"
            ));
        }
    }
    Ok(switchboard::store::agents::parse_roster(
        "bench roster",
        csv.as_bytes(),
        &teams,
    )?)
}

fn requests(run: &str, n: usize) -> Vec<Outgoing> {
    crate::demo::traffic(run, 0..n, false, Utc::now())
        .into_iter()
        .filter(|p| p.kind == crate::demo::Kind::New)
        .map(|p| Outgoing {
            exchange: Exchange::Intake,
            routing_key: p.routing_key,
            message_id: p.message_id,
            body: Body::of(&serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap_or_default()),
            headers: vec![],
        })
        .collect()
}

fn progress(line: &str) {
    eprintln!("bench: {line}");
}

/// One ceiling pass: forwarding stages, with or without one INSERT per hop.
async fn ceiling_pass(base: &Settings, opts: &Options, write: bool) -> Result<PassResult, BenchError> {
    let label = if write {
        "ceiling: broker + one transaction per hop"
    } else {
        "ceiling: broker only"
    };
    progress(&format!("{label}: starting 4 forwarding processes"));
    let iso = Isolated::start(base, if write { "db" } else { "broker" }).await?;
    let result = async {
        iso.app
            .db
            .pool
            .get()
            .await?
            .batch_execute(&format!(
                "CREATE TABLE {} (message_id text, hop text, at timestamptz)",
                forward::HOPS_TABLE
            ))
            .await?;
        let stages: Vec<&str> = forward::HOPS.iter().map(|(n, _)| *n).collect();
        let consumers = opts.consumers.to_string();
        // The ceiling's forwarding stages are this program's hidden `bench-stage`.
        let mut workers = iso.spawn(&std::env::current_exe()?, opts, &stages, |stage| {
            let mut a = vec![
                "bench-stage".into(),
                "--stage".into(),
                stage.into(),
                "-c".into(),
                consumers.clone(),
            ];
            if write {
                a.push("--write".into());
            }
            a
        })?;
        iso.wait_consuming(&mut workers, &stages, opts.consumers).await?;
        let (counter, conn) = EventCounter::start(&iso.app, &["ticket.assigned"]).await?;
        let messages: Vec<Outgoing> = (0..opts.requests)
            .map(|i| Outgoing {
                exchange: Exchange::Intake,
                routing_key: "intake.app".into(),
                message_id: format!("ceiling-{i}"),
                body: serde_json::json!({ "n": i }).into(),
                headers: vec![],
            })
            .collect();
        progress(&format!("{label}: sending {} messages", opts.requests));
        let cpu = CpuMeter::start(&workers, &iso.app.settings);
        let started = Instant::now();
        publish_paced(&iso.app, messages, Rate::Full).await?;
        counter
            .wait(&["ticket.assigned"], opts.requests, label, &mut workers, &iso.logs)
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        let cpu = cpu.finish(&workers);
        let rss = workers.peak_rss();
        workers.stop().await;
        let _ = conn.close(200, "done".into()).await;
        Ok(PassResult {
            label: label.into(),
            tickets: opts.requests,
            seconds,
            per_second: opts.requests as f64 / seconds,
            latency: Vec::new(),
            rss,
            cpu,
        })
    }
    .await;
    iso.remove(result.is_err()).await;
    result
}

/// The intake → assigned hops, named by the stage that decides at the end of each.
const ROUTE_HOPS: [&str; 4] = ["send → intake", "→ classify", "→ prioritize", "→ assign"];

/// Per-ticket marks: received_at (the send), then the decision time of each stage.
/// Tickets sent before each Switchboard pass and not measured: see `warm_up`.
const WARM_UP: usize = 1_000;

/// Brings a fresh schema to where a database in service is: some tickets, customers and
/// transitions, and planner statistics. Without statistics Postgres keeps the plans it chose
/// for empty tables — sequential scans, notably in the foreign-key checks each connection
/// caches — until autovacuum analyzes them, which a pass of a few seconds may never see
/// (measured at 100/s: ~600 sequential scans of `tickets` a second, none after ANALYZE).
async fn warm_up(iso: &Isolated, counter: &EventCounter, workers: &mut Workers) -> Result<(), BenchError> {
    progress(&format!("warming up: {WARM_UP} requests, then ANALYZE"));
    let messages = requests("warmup", WARM_UP);
    let n = messages.len();
    publish_paced(&iso.app, messages, Rate::Full).await?;
    counter
        .wait(&["ticket.assigned", "ticket.queued"], n, "warm-up", workers, &iso.logs)
        .await?;
    // The pass's own schema only (the connection's search_path), never the rest of the database.
    iso.app
        .db
        .pool
        .get()
        .await?
        .batch_execute(
            "ANALYZE tickets, ticket_messages, ticket_transitions, thread_keys, customers, agents,
                     processed_messages, sla_timers, ticket_counters",
        )
        .await?;
    Ok(())
}

async fn route_latency(app: &App, since: DateTime<Utc>) -> Result<Vec<(String, Summary)>, BenchError> {
    let client = app.db.pool.get().await?;
    let rows = client
        .query(
            "SELECT t.received_at,
                    max(tr.at) FILTER (WHERE tr.to_state = 'received' AND tr.from_state IS NULL),
                    max(tr.at) FILTER (WHERE tr.to_state = 'classified' AND tr.from_state <> tr.to_state),
                    max(tr.at) FILTER (WHERE tr.to_state = 'prioritized' AND tr.from_state <> tr.to_state),
                    max(tr.at) FILTER (WHERE tr.to_state IN ('assigned', 'queued') AND tr.actor = 'assign')
             FROM tickets t JOIN ticket_transitions tr ON tr.ticket_id = t.id
             WHERE t.received_at >= $1
             GROUP BY t.id, t.received_at",
            &[&since],
        )
        .await?;
    let paths: Vec<Vec<Option<DateTime<Utc>>>> = rows
        .iter()
        .map(|r| (0..5).map(|k| r.get::<_, Option<DateTime<Utc>>>(k)).collect())
        .collect();
    Ok(summaries(hops(&ROUTE_HOPS, &paths)))
}

fn summaries(h: Vec<stats::Hop>) -> Vec<(String, Summary)> {
    h.into_iter()
        .filter_map(|h| Some((h.name, summarize(h.samples)?)))
        .collect()
}

/// Lifecycle waves: each action for every ticket, timed from its send to its transition.
const WAVES: [(&str, &str, &str); 3] = [
    ("respond", "ticket.responded", "responded"),
    ("resolve", "ticket.resolved", "resolved"),
    ("rate", "ticket.closed", "closed"),
];

async fn lifecycle_waves(
    iso: &Isolated,
    counter: &EventCounter,
    workers: &mut Workers,
) -> Result<Vec<PassResult>, BenchError> {
    let client = iso.app.db.pool.get().await?;
    // Each action comes from the ticket's own agent, as the state machine requires.
    let tickets: Vec<(String, String)> = client
        .query(
            "SELECT number, assignee FROM tickets WHERE state = 'assigned' AND assignee IS NOT NULL ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut out = Vec::new();
    for (action, event, step) in WAVES {
        let messages: Vec<Outgoing> = tickets
            .iter()
            .map(|(number, agent)| {
                use switchboard::contracts::action::ActionMessage;
                use switchboard::core::actions::Action;
                let act = match action {
                    "respond" => Action::Respond { message: None },
                    "resolve" => Action::Resolve {
                        result: "fixed by the benchmark".into(),
                        root_cause: None,
                        notes: None,
                    },
                    _ => Action::Rate {
                        score: 5,
                        comment: None,
                        reason: None,
                    },
                };
                let msg = ActionMessage {
                    ticket: number.clone(),
                    actor: if action == "rate" {
                        "customer".into()
                    } else {
                        format!("agent:{agent}")
                    },
                    action: act,
                };
                Outgoing {
                    exchange: Exchange::Actions,
                    routing_key: format!("action.{action}"),
                    message_id: format!("bench-{action}-{number}"),
                    body: Body::of(&msg),
                    headers: vec![],
                }
            })
            .collect();
        progress(&format!("lifecycle: {action} × {}", messages.len()));
        let cpu = CpuMeter::start(workers, &iso.app.settings);
        let sent_at = Utc::now();
        let started = Instant::now();
        publish_paced(&iso.app, messages, Rate::Full).await?;
        counter
            .wait(
                &[event],
                tickets.len(),
                &format!("lifecycle {action}"),
                workers,
                &iso.logs,
            )
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        let cpu = cpu.finish(workers);
        // Every action of the wave was sent within the first instants; the latency is from the
        // wave's start, so it includes the wave's own backlog, like the full-speed route pass.
        let samples: Vec<f64> = client
            .query(
                "SELECT at FROM ticket_transitions WHERE details->>'event' = $1 AND at >= $2",
                &[&step, &sent_at],
            )
            .await?
            .iter()
            .map(|r| stats::millis(sent_at, r.get(0)))
            .collect();
        out.push(PassResult {
            label: format!("lifecycle: {action}"),
            tickets: tickets.len(),
            seconds,
            per_second: tickets.len() as f64 / seconds,
            latency: summarize(samples)
                .map(|s| vec![("wave start → applied".to_owned(), s)])
                .unwrap_or_default(),
            rss: Vec::new(),
            cpu,
        });
    }
    Ok(out)
}

/// One Switchboard pass at `rate`, then the lifecycle waves when asked.
async fn switchboard_pass(
    base: &Settings,
    opts: &Options,
    rate: Rate,
    shape: Shape,
    lifecycle: bool,
) -> Result<Vec<PassResult>, BenchError> {
    let label = format!("Switchboard intake → assigned, {}, {rate}", shape.label());
    let iso = Isolated::start(base, "sb").await?;
    let result = async {
        iso.app.db.import_agents(&bench_roster(&iso.app)?).await?;
        let mut stages = vec!["intake", "classify", "prioritize", "assign"];
        if lifecycle {
            stages.push("lifecycle");
        }
        let consumers = opts.consumers.to_string();
        let run_args = |stage: &str| {
            vec![
                "run".into(),
                "--stage".into(),
                stage.into(),
                "-c".into(),
                consumers.clone(),
            ]
        };
        let mut workers = if shape == Shape::Separate {
            progress(&format!("{label}: starting {} stage processes", stages.len()));
            iso.spawn(&service_exe(), opts, &stages, run_args)?
        } else {
            progress(&format!("{label}: starting one process for {}", stages.join(", ")));
            let all = stages.join(",");
            iso.spawn_with(
                &service_exe(),
                opts,
                &["pipeline"],
                |_| run_args(&all),
                shape == Shape::Chained,
            )?
        };
        iso.wait_consuming(&mut workers, &stages, opts.consumers).await?;
        let mut keys = vec!["ticket.assigned", "ticket.queued"];
        if lifecycle {
            keys.extend(WAVES.iter().map(|(_, event, _)| *event));
        }
        let (counter, conn) = EventCounter::start(&iso.app, &keys).await?;
        warm_up(&iso, &counter, &mut workers).await?;
        let warmed = counter.count(&["ticket.assigned", "ticket.queued"]);
        let messages = requests("bench", opts.requests);
        let n = messages.len();
        progress(&format!("{label}: sending {n} requests"));
        let cpu = CpuMeter::start(&workers, &iso.app.settings);
        let since = Utc::now();
        let started = Instant::now();
        publish_paced(&iso.app, messages, rate).await?;
        counter
            .wait(
                &["ticket.assigned", "ticket.queued"],
                warmed + n,
                &label,
                &mut workers,
                &iso.logs,
            )
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        let cpu = cpu.finish(&workers);
        let mut results = vec![PassResult {
            label: label.clone(),
            tickets: n,
            seconds,
            per_second: n as f64 / seconds,
            latency: route_latency(&iso.app, since).await?,
            rss: Vec::new(),
            cpu,
        }];
        if lifecycle {
            results.extend(lifecycle_waves(&iso, &counter, &mut workers).await?);
        }
        results[0].rss = workers.peak_rss();
        workers.stop().await;
        let _ = conn.close(200, "done".into()).await;
        Ok(results)
    }
    .await;
    iso.remove(result.is_err()).await;
    result
}

/// Prints one pass's figures.
pub fn print_pass(p: &PassResult) {
    println!(
        "{}: {} in {:.2} s = {:.0}/s",
        p.label, p.tickets, p.seconds, p.per_second
    );
    if !p.latency.is_empty() {
        println!("  {:<22} {:>9} {:>9} {:>9}", "latency (ms)", "p50", "p99", "max");
        for (hop, s) in &p.latency {
            println!("  {:<22} {:>9.1} {:>9.1} {:>9.1}", hop, s.p50, s.p99, s.max);
        }
    }
    if !p.rss.is_empty() {
        let per: Vec<String> = p.rss.iter().map(|(n, m)| format!("{n} {m:.0} MiB")).collect();
        println!("  peak RSS per process: {}", per.join(", "));
    }
    if !p.cpu.is_empty() {
        let per: Vec<String> = p.cpu.iter().map(|(n, s)| format!("{n} {s:.1}")).collect();
        let used: f64 = p.cpu.iter().map(|(_, s)| s).sum();
        println!(
            "  CPU seconds during the pass: {} (total {used:.1} of {:.1} available on {} cores)",
            per.join(", "),
            p.seconds * cores() as f64,
            cores()
        );
        if p.tickets > 0 {
            println!(
                "  CPU per ticket, all processes and servers: {:.2} ms",
                used * 1000.0 / p.tickets as f64
            );
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs every pass asked for and prints each as it completes, then the ratios.
pub async fn run(settings: Settings, opts: Options) -> Result<Vec<PassResult>, BenchError> {
    println!(
        "switchboard bench: {} requests per pass, {} consumer(s) per stage process, durability on (persistent messages, confirms, quorum queues, synchronous commit)",
        opts.requests, opts.consumers
    );
    let mut all = Vec::new();
    let mut ceilings = Vec::new();
    if opts.ceiling {
        for write in [false, true] {
            let p = ceiling_pass(&settings, &opts, write).await?;
            print_pass(&p);
            ceilings.push(p.clone());
            all.push(p);
        }
    }
    for (k, rate) in opts.rates.iter().enumerate() {
        for shape in &opts.shapes {
            let lifecycle = opts.lifecycle && k == 0;
            let passes = switchboard_pass(&settings, &opts, *rate, *shape, lifecycle).await?;
            for p in &passes {
                print_pass(p);
            }
            if *rate == Rate::Full {
                for c in &ceilings {
                    println!(
                        "  Switchboard ({}) / {}: {:.2}",
                        shape.label(),
                        c.label,
                        passes[0].per_second / c.per_second
                    );
                }
            }
            all.extend(passes);
        }
    }
    Ok(all)
}

/// The `switchboard` executable whose stages a Switchboard pass runs: the one beside this
/// program (both come out of the same build), else the one on PATH.
fn service_exe() -> PathBuf {
    let name = format!("switchboard{}", std::env::consts::EXE_SUFFIX);
    match std::env::current_exe() {
        Ok(me) if me.with_file_name(&name).exists() => me.with_file_name(&name),
        _ => PathBuf::from(name),
    }
}
