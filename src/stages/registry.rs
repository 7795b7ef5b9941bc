//! The registry: what runs each stage. A stage's name, queue, binding and successor are in
//! [`StageName`]; this adds its implementation. Adding a stage is a module in `stages/`, a
//! variant in `contracts::stage`, and one arm here.

use super::{
    Context,
    assign::Assign,
    chain::Chain,
    classify::Classify,
    escalate::Escalate,
    intake::Intake,
    lifecycle::Lifecycle,
    notify::{Notify, Reach},
    prioritize::Prioritize,
};
use crate::bus::links::Links;
use crate::config::Settings;
use crate::contracts::StageName;
use crate::runtime::ops::health::Health;
use crate::runtime::runner::{RunError, run_stage};
use crate::runtime::scheduler::{self, SchedulerError};
use crate::store::Db;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs `stage` with `concurrency` consumers until `shutdown` (or a failure it cannot recover
/// from by reconnecting). Pipeline stages consume and publish on the process's shared `links`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    stage: StageName,
    ctx: Context,
    settings: &Settings,
    db: Db,
    links: Arc<Links>,
    health: Arc<Health>,
    concurrency: usize,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let topo = ctx.topo.clone();
    let (s, c, stop) = (settings, concurrency, shutdown);
    match stage {
        StageName::Intake => run_stage(Arc::new(Intake { ctx }), s, topo, db, links, c, stop, health).await,
        StageName::Classify => run_stage(Arc::new(Classify { ctx }), s, topo, db, links, c, stop, health).await,
        StageName::Prioritize => run_stage(Arc::new(Prioritize { ctx }), s, topo, db, links, c, stop, health).await,
        StageName::Assign => run_stage(Arc::new(Assign { ctx }), s, topo, db, links, c, stop, health).await,
        StageName::Escalate => run_stage(Arc::new(Escalate { ctx }), s, topo, db, links, c, stop, health).await,
        StageName::Lifecycle => run_stage(Arc::new(Lifecycle { ctx }), s, topo, db, links, c, stop, health).await,
        StageName::Notify => {
            let reach = Reach {
                mail_domain: s.mail_domain(),
                public_url: s.public_url.clone(),
            };
            run_stage(Arc::new(Notify { ctx, reach }), s, topo, db, links, c, stop, health).await
        }
        StageName::Deliver => {
            crate::runtime::deliver::run(db, s, Arc::new(ctx.policy.doc.notify.clone()), health, stop)
                .await
                .map_err(|e| RunError::Setup(e.to_string()))
        }
        StageName::Scheduler => {
            // The daily roll-up runs beside the timers ([reports.daily]; once per day however
            // many schedulers run).
            let daily_stop = stop.child_token();
            let daily = tokio::spawn(crate::runtime::daily_report::run(
                db.clone(),
                ctx.policy.clone(),
                s.mail_domain(),
                daily_stop.clone(),
            ));
            let ran = scheduler::run(
                db,
                topo,
                s.amqp_urls(),
                std::time::Duration::from_secs(s.sweep_after_s.max(1)),
                health,
                stop.clone(),
            )
            .await;
            daily_stop.cancel();
            let _ = daily.await;
            ran.map_err(|e| match e {
                SchedulerError::Bus(b) => RunError::Bus(b),
                SchedulerError::Store(s) => RunError::Store(s),
            })
        }
    }
}

/// Runs consecutive pipeline `stages` as one [`Chain`] on the first one's queue, with
/// `concurrency` consumers, until `shutdown` (a single stage: as [`run`] does). The later
/// stages' queues need consumers of their own as well (work published by others arrives
/// there): run those with [`run`].
#[allow(clippy::too_many_arguments)]
pub async fn run_chain(
    stages: &[StageName],
    ctx: Context,
    settings: &Settings,
    db: Db,
    links: Arc<Links>,
    health: Arc<Health>,
    concurrency: usize,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    if let [stage] = stages {
        return run(*stage, ctx, settings, db, links, health, concurrency, shutdown).await;
    }
    let topo = ctx.topo.clone();
    let chain = Chain::new(stages, &ctx).ok_or_else(|| {
        RunError::Setup(format!(
            "stages {stages:?} cannot be chained: they must be consecutive pipeline stages"
        ))
    })?;
    run_stage(
        Arc::new(chain),
        settings,
        topo,
        db,
        links,
        concurrency,
        shutdown,
        health,
    )
    .await
}
