//! `switchboard bench`: the benchmark against this machine's ceiling (see `switchboard_tools::bench`),
//! and the hidden `bench-stage` it starts for the ceiling's forwarding processes.

use anyhow::Result;
use std::sync::Arc;
use switchboard::app::{App, shutdown_on_signals};
use switchboard::bus::links::Links;
use switchboard::config::Settings;
use switchboard_tools::bench::{self, Options, Rate, Shape, forward::Forward};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every pass runs in a schema and queue prefix of its own on the configured \
    servers (SWITCHBOARD_DATABASE_URL, SWITCHBOARD_AMQP_URL) and removes them afterwards; each \
    stage runs as its own process (the `switchboard` executable beside this one; the ceiling's forwarding stages are this one). Progress goes to stderr, \
    figures to stdout.\n\nExamples:\n  switchboard bench\n  switchboard bench --requests 20000 \
    --rate full --rate 1000 --lifecycle\n  switchboard bench --no-ceiling --rate 500\n  switchboard bench --shape chained,unchained --rate full"
)]
pub struct BenchArgs {
    /// Tickets per pass.
    #[arg(long, short = 'n', default_value_t = 10_000)]
    requests: usize,
    /// Publishing speed of a Switchboard pass: `full` (as fast as the broker confirms) or
    /// requests per second. Repeat for several passes.
    #[arg(long = "rate", default_values = ["full", "1000"])]
    rates: Vec<Rate>,
    /// After the first pass, drive every assigned ticket through respond → resolve → rate 5
    /// (which closes it), one wave per action.
    #[arg(long)]
    lifecycle: bool,
    /// Skip the two ceiling passes (broker only; broker + one transaction per hop).
    #[arg(long)]
    no_ceiling: bool,
    /// Consumers per stage process.
    #[arg(long, short = 'c', default_value_t = 2)]
    consumers: usize,
    /// How the Switchboard passes run the stages: `separate` (a process per stage), `chained`
    /// (one process, tickets handed from stage to stage in memory), `unchained` (one process,
    /// through the queues). Repeat or comma-separate for a pass of each, in the same run.
    #[arg(long = "shape", value_enum, value_delimiter = ',', default_values = ["separate", "chained"])]
    shapes: Vec<Shape>,
}

pub async fn run(settings: Settings, config: Option<std::path::PathBuf>, args: BenchArgs) -> Result<()> {
    let opts = Options {
        requests: args.requests,
        rates: args.rates,
        lifecycle: args.lifecycle,
        ceiling: !args.no_ceiling,
        consumers: args.consumers.max(1),
        shapes: args.shapes,
        config,
    };
    bench::run(settings, opts).await?;
    Ok(())
}

/// One forwarding stage of the ceiling, in this process, until SIGTERM.
pub async fn stage(settings: Settings, stage: String, concurrency: usize, write: bool) -> Result<()> {
    let Some(forward) = Forward::for_stage(&stage, write) else {
        anyhow::bail!("{stage:?} is not one of the four hops: intake, classify, prioritize, assign");
    };
    let shutdown = shutdown_on_signals();
    let app = App::start(settings).await?;
    let links = Links::new(app.settings.amqp_urls(), format!("switchboard-bench-{stage}"));
    let ran = switchboard::runtime::runner::run_stage(
        Arc::new(forward),
        &app.settings,
        app.topo.clone(),
        app.db.clone(),
        links.clone(),
        concurrency,
        shutdown,
        app.health.clone(),
    )
    .await;
    links.close(200, "shutdown").await;
    ran?;
    Ok(())
}
