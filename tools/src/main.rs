//! `switchboard-tools`: the benchmark, the load generator and the quick-start demo. The
//! `switchboard` CLI forwards `switchboard bench|bench-list|loadgen|demo` here.

mod cli;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use switchboard::config::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard-tools",
    version,
    about = "Switchboard's benchmark, HTTP load generator and quick-start demo.",
    long_about = "Switchboard's benchmark, HTTP load generator and quick-start demo, kept out of \
        the service's own binaries. `switchboard bench`, `switchboard bench-list`, \
        `switchboard loadgen` and `switchboard demo` run this program.\n\n\
        Connections: SWITCHBOARD_AMQP_URL and SWITCHBOARD_DATABASE_URL (or --config), as for \
        `switchboard`."
)]
struct Cli {
    /// Settings file (TOML). SWITCHBOARD_* environment variables override it.
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Quick start: run the whole pipeline on built-in sample traffic from all four channels,
    /// with a live progress line and a closing summary.
    Demo(cli::demo::DemoArgs),
    /// Benchmark: intake → assigned throughput, latency per stage and peak RSS per stage
    /// process, at full speed and at fixed rates, against the ceiling of the same broker and
    /// database (forwarding stages; then one transaction per hop).
    Bench(cli::bench::BenchArgs),
    /// Internal: one forwarding stage of the benchmark's ceiling (started by `bench`).
    #[command(hide = true)]
    BenchStage {
        #[arg(long)]
        stage: String,
        #[arg(long, short = 'c', default_value_t = 2)]
        concurrency: usize,
        #[arg(long)]
        write: bool,
    },
    /// Drive a gateway with all four channels; accepted/s and latency.
    Loadgen(cli::loadgen::LoadgenArgs),
    /// Benchmark of the work list (`GET /v1/tickets`) on a large ticket table (default
    /// 1,000,000): p50/p90/p99 per query shape against a p99 target.
    #[command(long_about = cli::bench_list::LONG_ABOUT)]
    BenchList(cli::bench_list::BenchListArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = match cli.command {
        // The demo's invalid messages are expected: their reasons are in its summary.
        Command::Demo(_) => "error,lapin=off",
        // The benchmark closes its own connections mid-stream on purpose; lapin reports that.
        Command::Bench(_) | Command::BenchList(_) => "warn,lapin=off",
        _ => "warn,lapin=error",
    };
    switchboard::runtime::telemetry::init_with_default(filter);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = || Settings::load(cli.config.as_deref());
    match cli.command {
        Command::Demo(args) => cli::demo::run(settings()?, args).await,
        Command::Bench(args) => cli::bench::run(settings()?, cli.config.clone(), args).await,
        Command::BenchStage {
            stage,
            concurrency,
            write,
        } => cli::bench::stage(settings()?, stage, concurrency, write).await,
        Command::Loadgen(args) => cli::loadgen::loadgen(args).await,
        Command::BenchList(args) => cli::bench_list::run(settings()?, args).await,
    }
}
