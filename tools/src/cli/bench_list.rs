//! `switchboard bench-list`: the work list's latency on a large ticket table (see
//! `switchboard_tools::bench_list`).

use anyhow::{Result, bail};
use std::path::PathBuf;
use switchboard::config::Settings;
use switchboard_tools::bench_list::{self, Options};

/// `--help`'s description (set on the subcommand in `main.rs`, where the one-line `about` is).
pub const LONG_ABOUT: &str = "Measures the work list, GET /v1/tickets, on a large ticket table: \
    by default 1,000,000 tickets, a year of a contact center (about 90% resolved or closed, 10% \
    open; Chinese and English subjects and bodies from templates, customers who come back, \
    deadlines around now: some breached, some due within the hour, most later).\n\n\
    It creates a Postgres schema of its own (bench_list_<random>) on the configured database \
    (SWITCHBOARD_DATABASE_URL), migrates it, imports the sample roster, seeds the tickets with \
    COPY (then builds the indexes and runs VACUUM (ANALYZE)), starts a gateway in this process on \
    127.0.0.1 for that schema, creates four people — an agent of front_line, front_line's \
    supervisor, a supervisor of every team, an agent of a small team (quality_management) — and \
    measures each query shape on its own: warm-up requests, then the measured ones over one \
    keep-alive connection (or --concurrency of them). It prints a table of p50, p90, p99 and max \
    per shape and the rows each returned, and a last line `worst p99: … — target 50 ms: \
    MET|NOT MET`. The schema is dropped at the end unless --keep.\n\n\
    Progress goes to stderr, the table to stdout. Seeding 1,000,000 tickets takes about two \
    minutes on 2 cores and 1.4 GiB of disk; measuring, 5 to 20 minutes (the slow shapes).";

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  switchboard bench-list                          # 1,000,000 tickets\n  \
    switchboard bench-list -n 100000 --requests 100\n  \
    switchboard bench-list --keep                   # keep the schema to EXPLAIN by hand\n  \
    switchboard bench-list --schema bench_list_1a2b3c4d --only q= --only priority\n\
    \nRun the release build (`cargo build --release -p switchboard-tools`): a debug gateway \
    is several times slower."
)]
pub struct BenchListArgs {
    /// Tickets to seed.
    #[arg(long = "tickets", short = 'n', default_value_t = 1_000_000)]
    tickets: usize,
    /// Measured requests per query shape.
    #[arg(long, short = 'r', default_value_t = 200)]
    requests: usize,
    /// Unmeasured requests per shape first (all shapes are warmed up before any is measured).
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Clients sending a shape's requests at once (1: one after another).
    #[arg(long, short = 'c', default_value_t = 1)]
    concurrency: usize,
    /// Keep the schema afterwards (for EXPLAIN, or to measure it again with --schema).
    #[arg(long)]
    keep: bool,
    /// Measure this schema instead of a new one: seeded first if it holds no tickets, kept
    /// afterwards either way.
    #[arg(long)]
    schema: Option<String>,
    /// Only the shapes whose label, as printed with who asks (`q=退款 (qm agent)`), contains
    /// this text (repeatable), e.g. `--only q=` or `--only "(agent)"`.
    #[arg(long)]
    only: Vec<String>,
    /// The data's random seed: the same seed, the same tickets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rows per COPY while seeding.
    #[arg(long, default_value_t = 20_000)]
    batch: usize,
    /// The roster whose agents the tickets are assigned to.
    #[arg(long, default_value = "config/agents.sample.csv")]
    roster: PathBuf,
    /// The p99 every shape must stay within, in milliseconds.
    #[arg(long, default_value_t = 50.0)]
    target_ms: f64,
}

pub async fn run(settings: Settings, args: BenchListArgs) -> Result<()> {
    if args.tickets == 0 || args.requests == 0 || args.concurrency == 0 {
        bail!("--tickets, --requests and --concurrency must be at least 1");
    }
    if let Some(s) = &args.schema
        && !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        bail!("--schema {s:?}: letters, digits and _ only");
    }
    let opts = Options {
        tickets: args.tickets,
        seed: args.seed,
        batch: args.batch.max(1),
        schema: args.schema,
        keep: args.keep,
        roster: args.roster,
        requests: args.requests,
        warmup: args.warmup,
        concurrency: args.concurrency,
        target_ms: args.target_ms,
        only: args.only,
    };
    let results = bench_list::run(settings, opts).await?;
    let failed: usize = results.iter().map(|m| m.errors).sum();
    if failed > 0 {
        bail!("{failed} request(s) failed (see above)");
    }
    Ok(())
}
