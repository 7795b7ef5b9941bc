//! `switchboard-tools loadgen`: drives a gateway over HTTP with a mix of all four channels.

use anyhow::{Context as _, Result, bail};
use clap::Args;
use switchboard_tools::loadgen;

#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API key valid for every channel (`switchboard keys create --name loadgen --rate 100000 --burst 100000`).
    #[arg(long, env = "SWITCHBOARD_API_KEY")]
    key: String,
    /// Requests to send (cycling app, email, phone, chat).
    #[arg(long, short = 'n', default_value_t = 10_000)]
    requests: usize,
    /// Requests in flight at once (one keep-alive connection each).
    #[arg(long, short = 'c', default_value_t = 32)]
    concurrency: usize,
    /// Target requests per second over all connections; default: as fast as the gateway answers.
    #[arg(long)]
    rate: Option<f64>,
}

pub async fn loadgen(args: LoadgenArgs) -> Result<()> {
    if args.requests == 0 || args.concurrency == 0 {
        bail!("--requests and --concurrency must be at least 1");
    }
    let spec = loadgen::LoadSpec {
        url: args.url.trim_end_matches('/').to_owned(),
        key: args.key,
        requests: args.requests,
        concurrency: args.concurrency,
        rate: args.rate,
        progress: true,
    };
    let report = loadgen::run(spec).await.context("load generator")?;
    println!("{report}");
    if report.accepted == 0 {
        bail!("no request was accepted");
    }
    Ok(())
}
