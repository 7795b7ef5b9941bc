//! Test harness: a private corner of the real RabbitMQ and Postgres for each test.
//!
//! Every harness gets a unique name prefix for its exchanges and queues and its own Postgres
//! schema, so tests run in parallel; dropping the harness deletes both, even after a panic.
#![allow(dead_code)]

pub mod events;
pub mod process;
pub mod publisher;
pub mod receiver;
pub mod served;
pub mod servers;
pub mod smtp;
pub mod webdriver;

use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use switchboard::app::{App, StageName};
use switchboard::bus::{self, Topology};
use switchboard::config::Settings;
use switchboard::contracts::Exchange;
use switchboard::runtime::runner::{Inbound, Outcome, Stage};
use switchboard::store::agents::parse_roster;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Queues a test declares outside the topology, `<prefix>.<suffix>`: the harness deletes them
/// with the topology ([`Harness::event_queue`] is the first; [`Harness::plain_queue`] takes the
/// others' suffixes).
pub const TEST_QUEUES: [&str; 3] = ["test-events", "test-replay", "test-consumer"];

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn test_settings(name: &str) -> Settings {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let tag = format!("t_{}_{}", name, &id[..10]);
    Settings {
        amqp_url: std::env::var("SWITCHBOARD_AMQP_URL")
            .unwrap_or_else(|_| switchboard::config::DEFAULT_AMQP_URL.into()),
        database_url: std::env::var("SWITCHBOARD_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/switchboard_test".into()),
        database_schema: Some(tag.clone()),
        topology_prefix: tag,
        policy_path: manifest_dir().join("config/policy.toml"),
        database_pool_size: 6,
        delivery_limit: 5,
        ..Settings::default()
    }
}

pub struct Harness {
    pub app: App,
    pub conn: Connection,
    pub ch: Channel,
    pub shutdown: CancellationToken,
    pub pipeline: Option<JoinHandle<()>>,
    cleaned: bool,
}

impl Harness {
    /// Migrated schema, declared topology, sample roster imported; no stage running yet.
    pub async fn new(name: &str) -> Harness {
        Self::with_settings(test_settings(name)).await
    }

    pub async fn with_settings(settings: Settings) -> Harness {
        let app = App::start(settings)
            .await
            .expect("start app (are RabbitMQ and Postgres up?)");
        app.declare_topology().await.expect("declare topology");
        let conn = bus::connect(&app.settings.amqp_urls(), "switchboard-test")
            .await
            .expect("connect");
        let ch = bus::confirm_channel(&conn).await.expect("channel");
        Harness {
            app,
            conn,
            ch,
            shutdown: CancellationToken::new(),
            pipeline: None,
            cleaned: false,
        }
    }

    /// The policy with `change` made to its document, validated and compiled again as at start:
    /// what stages and gateways started afterwards decide under (a test's own threshold, say).
    pub fn adjust_policy(&mut self, change: impl FnOnce(&mut switchboard::core::policy::PolicyDocument)) {
        let mut doc = self.app.policy.doc.clone();
        change(&mut doc);
        let source = self.app.policy.source.clone();
        let model = self.app.policy.triage.shared_model();
        let policy = switchboard::core::policy::Policy::from_document(doc, &source, &[])
            .and_then(|p| {
                p.with_model(model)
                    .map_err(|message| switchboard::core::policy::PolicyError::Invalid {
                        path: source.clone(),
                        line: String::new(),
                        message,
                    })
            })
            .unwrap_or_else(|e| panic!("the adjusted policy does not load: {e}"));
        self.app.policy = std::sync::Arc::new(policy);
    }

    pub async fn import_roster(&self, csv: &str) {
        let teams: Vec<String> = self.app.policy.doc.teams.keys().cloned().collect();
        let rows = parse_roster("test roster", csv.as_bytes(), &teams).expect("roster");
        self.app.db.import_agents(&rows).await.expect("import");
    }

    pub async fn import_sample_roster(&self) {
        let csv = std::fs::read_to_string(manifest_dir().join("config/agents.sample.csv")).unwrap();
        self.import_roster(&csv).await;
    }

    /// Runs the given stages in this process.
    pub fn start_stages(&mut self, stages: &[StageName], concurrency: usize) {
        let app = self.app.clone();
        let stop = self.shutdown.clone();
        let stages = stages.to_vec();
        self.pipeline = Some(tokio::spawn(async move {
            if let Err(e) = app.run(&stages, concurrency, stop).await {
                panic!("pipeline failed: {e}");
            }
        }));
    }

    pub async fn stop_stages(&mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.pipeline.take() {
            h.await.expect("pipeline task");
        }
        self.shutdown = CancellationToken::new();
    }

    /// A new connection and channel for the harness, after a broker (or cluster node) went away
    /// with the old one. Tries the configured nodes in order.
    pub async fn reconnect(&mut self) {
        let start = Instant::now();
        loop {
            match bus::connect(&self.app.settings.amqp_urls(), "switchboard-test").await {
                Ok(conn) => {
                    self.ch = bus::confirm_channel(&conn).await.expect("channel");
                    let old = std::mem::replace(&mut self.conn, conn);
                    let _ = tokio::time::timeout(Duration::from_secs(2), old.close(200, "bye".into())).await;
                    return;
                }
                Err(e) if start.elapsed() > Duration::from_secs(60) => panic!("reconnect: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    pub fn topo(&self) -> &Topology {
        &self.app.topo
    }

    pub async fn publish_intake(&self, routing_key: &str, message_id: &str, payload: &[u8]) {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message_id.into());
        bus::publish_raw(
            &self.ch,
            &self.topo().exchange(Exchange::Intake),
            routing_key,
            payload,
            props,
        )
        .await
        .expect("publish");
    }

    /// A queue bound to the events exchange with `pattern`, declared before traffic starts.
    pub async fn event_queue(&self, pattern: &str) -> String {
        let q = format!("{}.test-events", self.topo().prefix);
        self.ch
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.ch
            .queue_bind(
                q.as_str().into(),
                self.topo().exchange(Exchange::Events).into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        q
    }

    /// A durable queue bound to nothing, `<prefix>.<suffix>` (`suffix` one of [`TEST_QUEUES`], so
    /// the harness deletes it): somewhere to replay events to.
    pub async fn plain_queue(&self, suffix: &str) -> String {
        assert!(
            TEST_QUEUES.contains(&suffix),
            "{suffix} is not in TEST_QUEUES: nothing would delete it"
        );
        let q = format!("{}.{suffix}", self.topo().prefix);
        self.ch
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        q
    }

    /// Takes every message currently in `queue` (acked). Every CloudEvent among them is checked
    /// against the schema of its type ([`events::assert_matches_its_schema`]).
    pub async fn drain_queue(&self, queue: &str) -> Vec<lapin::message::BasicGetMessage> {
        let mut out = Vec::new();
        while let Some(m) = self
            .ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let event = m
                .properties
                .content_type()
                .as_ref()
                .is_some_and(|c| c.as_str() == "application/cloudevents+json");
            if event && let Ok(body) = serde_json::from_slice::<serde_json::Value>(&m.delivery.data) {
                events::assert_matches_its_schema(&body);
            }
            out.push(m);
        }
        out
    }

    pub async fn depth(&self, queue: &str) -> u32 {
        self.topo().depth(&self.ch, queue).await.unwrap()
    }

    /// `state=count` pairs, queue depths and dead letters, for failure messages.
    pub async fn snapshot(&self) -> String {
        let client = self.app.db.pool.get().await.unwrap();
        let rows = client
            .query("SELECT state, count(*) FROM tickets GROUP BY 1 ORDER BY 1", &[])
            .await
            .unwrap();
        let states: Vec<String> = rows
            .iter()
            .map(|r| format!("{}={}", r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect();
        let mut depths = Vec::new();
        for q in ["intake", "classify", "prioritize", "assign", "dead"] {
            depths.push(format!("{q}={}", self.depth(&self.topo().queue(q)).await));
        }
        format!("tickets [{}] queues [{}]", states.join(" "), depths.join(" "))
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let client = self.app.db.pool.get().await.unwrap();
        client.query_one(sql, &[]).await.unwrap().get(0)
    }

    /// Runs one statement; returns the rows it touched.
    pub async fn execute(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> u64 {
        let client = self.app.db.pool.get().await.unwrap();
        client.execute(sql, params).await.unwrap()
    }

    /// The one text value `sql` selects (a ticket number, say).
    pub async fn text(&self, sql: &str) -> String {
        let client = self.app.db.pool.get().await.unwrap();
        client.query_one(sql, &[]).await.unwrap().get(0)
    }

    /// The text values of the first column of every row `sql` selects, in its order.
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        let client = self.app.db.pool.get().await.unwrap();
        client.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
    }

    /// Polls `check` until it holds, or panics with `what` after `timeout`.
    pub async fn wait_for<F, Fut>(&self, what: &str, timeout: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !check().await {
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}: {}",
                    self.snapshot().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn cleanup(mut self) {
        self.stop_stages().await;
        let _ = self.app.topo.delete(&self.ch).await;
        for suffix in TEST_QUEUES {
            let q = format!("{}.{suffix}", self.app.topo.prefix);
            let _ = self
                .ch
                .queue_delete(q.as_str().into(), lapin::options::QueueDeleteOptions::default())
                .await;
        }
        let _ = self.app.db.drop_schema().await;
        let _ = self.conn.close(200, "bye".into()).await;
        self.cleaned = true;
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // A panicking test still leaves nothing behind: clean up on a fresh runtime.
        self.shutdown.cancel();
        let settings = self.app.settings.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let topo = Topology::new(settings.topology_prefix.clone(), settings.delivery_limit);
                if let Ok(conn) = bus::connect(&settings.amqp_urls(), "switchboard-test-cleanup").await
                    && let Ok(ch) = conn.create_channel().await
                {
                    let _ = topo.delete(&ch).await;
                    for suffix in TEST_QUEUES {
                        let q = format!("{}.{suffix}", topo.prefix);
                        let _ = ch
                            .queue_delete(q.as_str().into(), lapin::options::QueueDeleteOptions::default())
                            .await;
                    }
                }
                if let Ok(db) = switchboard::store::Db::connect(&settings).await {
                    let _ = db.drop_schema().await;
                }
            });
        })
        .join();
    }
}

pub fn header(msg: &lapin::message::BasicGetMessage, key: &str) -> Option<String> {
    msg.delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| switchboard::bus::dead::header_str(h, key))
}

/// One delivery as a stage sees it, for calling a stage directly, without a broker in between.
pub fn inbound(routing_key: &str, message_id: &str, data: Vec<u8>) -> Inbound {
    Inbound {
        tag: 1,
        exchange: "x".into(),
        routing_key: routing_key.into(),
        redelivered: false,
        properties: lapin::BasicProperties::default().with_message_id(message_id.into()),
        data,
        traceparent: None,
        chained: None,
    }
}

/// Runs `stage` on `batch` in one committed transaction, as the runner does.
pub async fn run_once<S: Stage>(h: &Harness, stage: &S, batch: &[Inbound]) -> Vec<Outcome> {
    let mut client = h.app.db.pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let out = stage.process(&tx, batch).await.unwrap();
    tx.commit().await.unwrap();
    // Every event the stage would publish matches the schema of its type.
    for o in &out {
        if let Outcome::Done(outputs) | Outcome::Duplicate(outputs) = o {
            for m in outputs.iter().filter(|m| m.exchange == Exchange::Events) {
                events::assert_matches_its_schema(&m.body.value());
            }
        }
    }
    out
}

/// `connection_name` from rabbitmqctl's JSON rendering of client properties (a list of
/// `[key, type, value]` triples, or an object).
pub fn connection_name(props: &serde_json::Value) -> Option<String> {
    if let Some(s) = props["connection_name"].as_str() {
        return Some(s.to_owned());
    }
    props.as_array()?.iter().find_map(|p| {
        let t = p.as_array()?;
        (t.first()?.as_str()? == "connection_name").then(|| t.last()?.as_str().map(str::to_owned))?
    })
}
