//! Wiring: settings + policy + Postgres + RabbitMQ → running stages. Used by the `switchboard`
//! CLI and by every thin binary in `workers/`.

use crate::bus::links::Links;
use crate::bus::{self, BusError, Topology};
use crate::config::Settings;
use crate::core::policy::{Policy, PolicyError};
use crate::runtime::Services;
use crate::runtime::ops::health::Health;
use crate::runtime::runner::{self as pipeline, RunError};
use crate::stages::{Context, registry};
use crate::store::{self, Db, StoreError};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::contracts::StageName;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// A started application: policy validated, database migrated, teams synced. Its parts
/// ([`Services`]) are reached through it as fields (`app.db`, `app.policy`, …).
#[derive(Clone)]
pub struct App {
    services: Services,
}

impl std::ops::Deref for App {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

impl From<App> for Services {
    fn from(app: App) -> Services {
        app.services
    }
}

impl std::ops::DerefMut for App {
    fn deref_mut(&mut self) -> &mut Services {
        &mut self.services
    }
}

impl App {
    /// Loads the policy (with the learned classification model it names), migrates the
    /// database and connects: everything a command or the gateway needs.
    pub async fn start(settings: Settings) -> Result<App, AppError> {
        let policy = Policy::load(&settings.policy_path)?;
        App::start_with(settings, policy).await
    }

    /// [`App::start`] for a process that runs `stages`: the learned model is read only when
    /// one of them is the classify or the prioritize stage, its users (the one decides the
    /// category with it, the other moves the rules' priority to the level it estimates). Every
    /// other worker process runs without it, about 8 MiB less resident. Those two stages'
    /// processes still refuse to start on a model that is missing or does not fit the policy.
    pub async fn start_for(settings: Settings, stages: &[StageName]) -> Result<App, AppError> {
        let policy = policy_for(&settings.policy_path, stages)?;
        App::start_with(settings, policy).await
    }

    async fn start_with(settings: Settings, policy: Policy) -> Result<App, AppError> {
        let policy = Arc::new(policy);
        store::ensure_database(&settings.database_url).await?;
        let db = Db::connect(&settings).await?;
        db.migrate().await?;
        // Monthly partitions of the transition log, kept ready ahead (V4, `switchboard retention`).
        store::retention::ensure_partitions(&db, policy.doc.retention.partition_months_ahead, chrono::Utc::now())
            .await?;
        db.sync_teams(&policy).await?;
        let topo = Topology::from_settings(&settings);
        let health = Health::new();
        health.watch_public_holidays(policy.public_holidays.clone(), policy.tz, chrono::Utc::now());
        Ok(App {
            services: Services {
                settings,
                policy,
                db,
                topo,
                health,
            },
        })
    }

    /// [`App::start`] (or, given the `stages` a worker runs, [`App::start_for`]), but waiting
    /// with backoff while Postgres is unreachable (a worker started before its database, or
    /// during a restart) instead of failing. `None` when `shutdown` came first. Anything else (a
    /// bad policy, a bad URL) fails at once.
    pub async fn start_when_ready(
        settings: Settings,
        stages: Option<&[StageName]>,
        shutdown: &CancellationToken,
    ) -> Result<Option<App>, AppError> {
        let mut backoff = crate::runtime::backoff::new(
            std::time::Duration::from_millis(500),
            std::time::Duration::from_secs(10),
        );
        loop {
            let retry_in = backoff.next_delay();
            let started = match stages {
                Some(stages) => App::start_for(settings.clone(), stages).await,
                None => App::start(settings.clone()).await,
            };
            match started {
                Ok(app) => return Ok(Some(app)),
                Err(AppError::Store(e)) if e.is_transient() => {
                    tracing::warn!(error = %e, ?retry_in, "waiting for Postgres before starting");
                }
                Err(e) => return Err(e),
            }
            if !crate::runtime::backoff::pause(retry_in, shutdown).await {
                return Ok(None);
            }
        }
    }

    pub fn context(&self) -> Context {
        Context {
            policy: self.policy.clone(),
            topo: self.topo.clone(),
            db: self.db.clone(),
        }
    }

    /// Declares exchanges and queues (idempotent).
    pub async fn declare_topology(&self) -> Result<(), BusError> {
        let conn = bus::connect(&self.settings.amqp_urls(), "switchboard-setup").await?;
        self.topo.declare(&conn).await?;
        let _ = conn.close(200, "done".into()).await;
        Ok(())
    }

    /// Runs the given stages, each with `concurrency` consumers, until `shutdown`. After
    /// `shutdown` it waits at most `shutdown_grace_ms` (plus a moment for the runners to close
    /// their connections, which returns what they hold) before giving up on stragglers.
    pub async fn run(
        &self,
        stages: &[StageName],
        concurrency: usize,
        shutdown: CancellationToken,
    ) -> Result<(), AppError> {
        let tracker = TaskTracker::new();
        let failure = shutdown.child_token();
        let (err_tx, mut err_rx) = tokio::sync::mpsc::channel::<RunError>(stages.len().max(1));
        // Consecutive pipeline stages run as a chain on the first one's queue; the others keep
        // their own consumers for work published by anyone else.
        let chains = if self.settings.chain_stages {
            crate::stages::chain::runs(stages)
        } else {
            Vec::new()
        };
        let mut tasks: Vec<Vec<StageName>> = chains.clone();
        tasks.extend(
            stages
                .iter()
                .filter(|s| !chains.iter().any(|c| c.first() == Some(s)))
                .map(|&s| vec![s]),
        );
        // Every runner of this process consumes on one connection and publishes on another
        // (`bus::links`), named after the deployment (its topology prefix) and what the process
        // runs: `switchboard-intake,classify,prioritize,assign`.
        let names: Vec<&str> = stages.iter().map(|s| s.as_str()).collect();
        let links = Links::new(
            self.settings.amqp_urls(),
            format!("{}-{}", self.topo.prefix, names.join(",")),
        );
        for task in tasks {
            let app = self.clone();
            let stop = failure.clone();
            let err_tx = err_tx.clone();
            let links = links.clone();
            tracker.spawn(async move {
                let result = registry::run_chain(
                    &task,
                    app.context(),
                    &app.settings,
                    app.db.clone(),
                    links,
                    app.health.clone(),
                    concurrency,
                    stop.clone(),
                )
                .await;
                if let Err(e) = result {
                    let _ = err_tx.send(e).await;
                    stop.cancel();
                }
            });
        }
        tracker.close();
        drop(err_tx);
        // Backstop: each runner enforces the grace period itself; this catches one that hangs
        // anyway, so a stopping process always exits.
        let grace = std::time::Duration::from_millis(self.settings.shutdown_grace_ms);
        tokio::select! {
            _ = tracker.wait() => {}
            _ = pipeline::grace_expired(&shutdown, grace + std::time::Duration::from_secs(3)) => {
                tracing::warn!(grace = ?grace, "stages did not stop within the shutdown grace period; exiting anyway (the broker returns undelivered work)");
            }
        }
        links.close(200, "shutdown").await;
        match err_rx.try_recv() {
            Ok(e) => Err(e.into()),
            Err(_) => Ok(()),
        }
    }
}

/// The policy at `path` as a process running `stages` needs it: with the learned model only
/// when it classifies or prioritizes (`core::classify::Triage::classify` and `::prioritize`).
pub fn policy_for(path: &std::path::Path, stages: &[StageName]) -> Result<Policy, PolicyError> {
    if stages
        .iter()
        .any(|s| matches!(s, StageName::Classify | StageName::Prioritize))
    {
        Policy::load(path)
    } else {
        Policy::load_rules(path)
    }
}

/// A token cancelled on SIGTERM or SIGINT (Ctrl-C).
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    t.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested: finishing in-flight work");
        t.cancel();
    });
    token
}

/// Command line of a single-stage worker binary.
#[derive(Debug, clap::Parser)]
#[command(
    about = "Runs one Switchboard stage as a competing consumer on its queue. Start as many processes as the load needs."
)]
pub struct WorkerArgs {
    /// Consumers in this process (each with its own channel and prefetch window).
    #[arg(long, short = 'c', default_value_t = 2, env = "SWITCHBOARD_CONCURRENCY")]
    pub concurrency: usize,
    /// Settings file (TOML); SWITCHBOARD_* environment variables override it.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

/// The whole body of a `workers/<stage>` binary: config, telemetry, run until a signal.
pub async fn worker_main(stage: StageName) -> Result<(), AppError> {
    use clap::Parser;
    let args = WorkerArgs::parse();
    crate::runtime::telemetry::init_service(&format!("switchboard-{stage}"));
    let settings = Settings::load(args.config.as_deref())?;
    let shutdown = shutdown_on_signals();
    // The endpoints first, so liveness answers while the worker waits for Postgres.
    let ops = crate::runtime::ops::serve_early(&settings, CancellationToken::new()).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "metrics endpoint disabled");
        None
    });
    let Some(app) = App::start_when_ready(settings, Some(&[stage]), &shutdown).await? else {
        return Ok(());
    };
    if let Some(ops) = &ops {
        ops.started(&app.settings, &app.topo, &app.db, &app.health);
    }
    tracing::info!(
        ?stage,
        concurrency = args.concurrency,
        policy = app.policy.version(),
        "worker starting"
    );
    let result = app.run(&[stage], args.concurrency, shutdown).await;
    crate::runtime::telemetry::shutdown().await;
    result?;
    tracing::info!(?stage, "worker stopped cleanly");
    Ok(())
}

/// Command line of the `switchboard-gateway` binary.
#[derive(Debug, clap::Parser)]
#[command(
    about = "Switchboard's HTTP intake gateway: channel integrations POST requests, which are published with confirms."
)]
pub struct GatewayArgs {
    /// Address to listen on (default: the `gateway_listen` setting, 0.0.0.0:8080).
    #[arg(long, env = "SWITCHBOARD_GATEWAY_LISTEN")]
    pub listen: Option<String>,
    /// Settings file (TOML); SWITCHBOARD_* environment variables override it.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

/// The whole body of `workers/gateway.rs`: config, telemetry, serve until a signal.
pub async fn gateway_main() -> anyhow::Result<()> {
    use clap::Parser;
    let args = GatewayArgs::parse();
    crate::runtime::telemetry::init_service("switchboard-gateway");
    let settings = crate::config::Settings::load(args.config.as_deref())?;
    if let Err(e) = crate::runtime::telemetry::install_metrics(settings.metrics_addr.as_deref()) {
        tracing::warn!(error = %e, "metrics endpoint disabled");
    }
    let listen = args.listen.unwrap_or_else(|| settings.gateway_listen.clone());
    let shutdown = shutdown_on_signals();
    // Waits for Postgres like a worker (its metrics port answers /healthz meanwhile) rather than
    // exiting into a restart loop. It runs no stage, so it reads the policy without the learned
    // model: it accepts requests and actions, and decides no category or priority.
    let Some(app) = App::start_when_ready(settings, Some(&[]), &shutdown).await? else {
        crate::runtime::telemetry::shutdown().await;
        return Ok(());
    };
    let served = crate::http::run(&app, &listen, shutdown).await;
    crate::runtime::telemetry::shutdown().await;
    served?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn config() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
    }

    /// The shipped policy, its classification file swapped for one whose model is `model`.
    fn policy_naming_model(model: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sb-policy-model-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let shipped = |f: &str| config().join("policy").join(f).display().to_string();
        let classification = std::fs::read_to_string(shipped("classification.toml")).unwrap();
        let classification: String = classification
            .lines()
            .map(|l| {
                if l.starts_with("model =") {
                    format!("model = {model:?}")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(dir.join("classification.toml"), classification).unwrap();
        let policy: String = std::fs::read_to_string(config().join("policy.toml"))
            .unwrap()
            .lines()
            .map(|l| {
                if l.starts_with("include =") {
                    let included: Vec<String> = ["calendar.toml", "notify.toml", "reports.toml", "holidays/*.toml"]
                        .iter()
                        .map(|f| format!("{:?}", shipped(f)))
                        .chain(std::iter::once(format!(
                            "{:?}",
                            dir.join("classification.toml").display().to_string()
                        )))
                        .collect();
                    format!("include = [{}]", included.join(", "))
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let path = dir.join("policy.toml");
        std::fs::write(&path, policy).unwrap();
        path
    }

    #[test]
    fn only_a_process_that_classifies_or_prioritizes_reads_the_learned_model() {
        let shipped = config().join("policy.toml");
        let model = |stages: &[StageName]| policy_for(&shipped, stages).unwrap().triage.shared_model();
        for user in [StageName::Classify, StageName::Prioritize] {
            assert!(model(&[user]).is_some(), "{user:?} decides with the model");
        }
        assert!(model(&StageName::ALL).is_some());
        assert!(model(&StageName::PIPELINE).is_some(), "a chain that classifies");
        for other in [
            StageName::Intake,
            StageName::Assign,
            StageName::Escalate,
            StageName::Lifecycle,
            StageName::Notify,
            StageName::Deliver,
            StageName::Scheduler,
        ] {
            assert!(model(&[other]).is_none(), "{other:?} runs on the rules alone");
        }
        assert!(model(&[]).is_none(), "the gateway runs no stage");

        // A model that is not there stops the two stages that use it from starting, and only them.
        let missing = policy_naming_model("missing.model");
        for user in [StageName::Classify, StageName::Prioritize] {
            let refused = policy_for(&missing, &[StageName::Intake, user]).unwrap_err();
            assert!(refused.to_string().contains("missing.model"), "{refused}");
        }
        assert!(policy_for(&missing, &[StageName::Intake, StageName::Assign]).is_ok());
        let _ = std::fs::remove_dir_all(missing.parent().unwrap());
    }
}
