//! Subcommands of the `switchboard` CLI.

mod calendar;
mod dead;
mod events;
pub mod exit;
mod gateway;
mod healthcheck;
pub mod output;
mod report;
mod retention;
mod tools;
mod triage;
mod webhooks;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use output::Listing;
use serde_json::json;
use std::path::PathBuf;
use switchboard::app::{App, StageName, shutdown_on_signals};
use switchboard::bus;
use switchboard::config::Settings;
use switchboard::contracts::Exchange;
use switchboard::contracts::work::DrainMessage;
use switchboard::core::policy::Policy;
use switchboard::core::routing::Presence;
use switchboard::store::{agents, tickets};

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Contact-center request flow on RabbitMQ and Postgres: intake → classify → prioritize → assign.",
    long_about = "Contact-center request flow on RabbitMQ and Postgres.\n\n\
        Requests published on the intake exchange become tickets that are classified, prioritized \
        and assigned to an agent, every change recorded as a transition.\n\n\
        Connections: SWITCHBOARD_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f) and \
        SWITCHBOARD_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/switchboard), \
        over an optional TOML settings file (--config). Business rules: config/policy.toml \
        (SWITCHBOARD_POLICY).\n\nQuick start: `switchboard demo`.",
    after_help = exit::HELP
)]
pub struct Cli {
    /// Settings file (TOML). SWITCHBOARD_* environment variables override it.
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Declare exchanges and queues and migrate the database (idempotent; workers also do it at start).
    Setup,
    /// Apply pending database migrations (creating the database if it does not exist).
    Migrate,
    /// Run pipeline stages in this process until SIGTERM/Ctrl-C (all four by default).
    Run {
        /// Stages to run (repeat or comma-separate); default: all.
        #[arg(long = "stage", value_enum, value_delimiter = ',')]
        stages: Vec<StageName>,
        /// Consumers per stage.
        #[arg(long, short = 'c', default_value_t = 2)]
        concurrency: usize,
    },
    /// Ask this container's own process on its metrics address: `/healthz` (alive), or `/readyz`
    /// with `--ready`; exit 0 when it answers 200, else 1 with what it said (container health
    /// checks; no shell or curl needed).
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Quick start: run the whole pipeline on built-in sample traffic from all four channels,
    /// with a live progress line and a closing summary (runs `switchboard-tools demo`).
    #[command(disable_help_flag = true)]
    Demo(tools::Forwarded),
    /// Measure triage (the rules and the learned model) on a labelled set, by default the
    /// held-out set: accuracy per category, language and channel, confusion matrices, urgent
    /// recall, a cost-weighted score and how many tickets the triage threshold sends to people.
    /// `--cv K` cross-validates on the training corpus instead.
    Eval(triage::EvalArgs),
    /// Train the triage model from the labelled corpus (config/corpus/train) and write the model
    /// file the policy names; `--with-corrections` adds agents' reclassifications.
    Train(triage::TrainArgs),
    /// Manage agents: import a roster, list them, change presence or capacity.
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// Publish intake requests from a JSON Lines file (one IntakeRequest v1 per line), with
    /// publisher confirms.
    Publish { file: PathBuf },
    /// Show a ticket: state, classification, priority, SLA due times, assignment and transitions.
    Ticket { number: String },
    /// Run the HTTP intake gateway (POST /v1/requests, /v1/channels/{email,phone,chat}) until
    /// SIGTERM/Ctrl-C.
    Gateway(gateway::GatewayArgs),
    /// Manage the gateway's API keys: create (shown once), list, revoke.
    Keys {
        #[command(subcommand)]
        command: gateway::KeysCommand,
    },
    /// Manage the people who sign in to the desk and the work API: create (prints a personal
    /// token once), list, disable.
    Users {
        #[command(subcommand)]
        command: gateway::UsersCommand,
    },
    /// Drive a gateway with all four channels: accepted/s and latency (runs
    /// `switchboard-tools loadgen`).
    #[command(disable_help_flag = true)]
    Loadgen(tools::Forwarded),
    /// Dead letters: list them with the reason each one failed, show one, replay, purge.
    Dead {
        #[command(subcommand)]
        command: dead::DeadCommand,
    },
    /// The events log (a RabbitMQ stream of every event, kept for `events_log_max_age`):
    /// replay a window of it into a queue, or print it as JSON lines. See docs/EVENTS.md.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// Webhook subscriptions for downstream systems (Standard Webhooks, signed, at least once,
    /// in each ticket's order): create, list, deliveries, retry, disable, enable.
    Webhooks {
        #[command(subcommand)]
        command: webhooks::WebhooksCommand,
    },
    /// Service report for a week, a month or given dates: volume, handling times, SLA on-time
    /// rates, escalations, resolution rate, CSAT, repeat complaints, most frequent problems.
    Report(report::ReportArgs),
    /// Public holidays and make-up workdays: import an iCalendar feed, check the coming year
    /// is declared, show the calendars.
    Calendar {
        #[command(subcommand)]
        command: calendar::CalendarCommand,
    },
    /// Retention: anonymise or purge expired tickets, legal holds, transition-log partitions.
    Retention {
        #[command(subcommand)]
        command: retention::RetentionCommand,
    },
    /// Benchmark: intake → assigned throughput, latency per stage and peak RSS per stage
    /// process, at full speed and at fixed rates, against the ceiling of the same broker and
    /// database (runs `switchboard-tools bench`).
    #[command(disable_help_flag = true)]
    Bench(tools::Forwarded),
    /// Benchmark of the work list (`GET /v1/tickets`) on 1,000,000 seeded tickets in a schema of
    /// its own: p50/p90/p99 per query shape against the 50 ms p99 target (runs
    /// `switchboard-tools bench-list`).
    #[command(disable_help_flag = true)]
    BenchList(tools::Forwarded),
}

#[derive(Debug, Subcommand)]
enum AgentsCommand {
    /// Insert or update agents from a CSV file with columns
    /// id,name,team,languages,channels,skills,max_open,presence (lists separated by `;`).
    Import { file: PathBuf },
    /// List agents with presence and load.
    List {
        #[arg(long)]
        team: Option<String>,
        #[command(flatten)]
        format: output::FormatArg,
    },
    /// Change an agent's presence and/or capacity; queued tickets are assigned if capacity frees.
    SetStatus {
        id: String,
        /// online, away or offline.
        #[arg(long)]
        presence: Option<String>,
        /// Most open tickets the agent may hold.
        #[arg(long)]
        max_open: Option<i32>,
    },
}

impl Cli {
    /// Long-running services log at info; one-shot commands (demo, eval, reports…) only warn,
    /// so their own output stays readable. RUST_LOG overrides either.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Run { .. } | Command::Gateway { .. } => "info,lapin=warn",
            // Its errors say what is missing; lapin's own line for the closed channel is noise.
            Command::Events { .. } => "warn,lapin=off",
            _ => "warn,lapin=error",
        }
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Setup => {
            let app = App::start(settings).await?;
            app.declare_topology().await?;
            println!(
                "ready: exchanges and queues under {:?} declared; database {} migrated",
                app.topo.prefix, app.db.target
            );
        }
        Command::Migrate => {
            let app = App::start(settings).await?;
            println!("database {} is up to date", app.db.target);
        }
        Command::Run { stages, concurrency } => {
            let shutdown = shutdown_on_signals();
            // The endpoints first, so liveness answers while it waits for Postgres.
            let ops = switchboard::runtime::ops::serve_early(&settings, tokio_util::sync::CancellationToken::new())
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "metrics endpoint disabled");
                    None
                });
            let stages = if stages.is_empty() {
                StageName::ALL.to_vec()
            } else {
                stages
            };
            let Some(app) = App::start_when_ready(settings, Some(&stages), &shutdown).await? else {
                return Ok(());
            };
            if let Some(ops) = &ops {
                ops.started(&app.settings, &app.topo, &app.db, &app.health);
            }
            tracing::info!(?stages, concurrency, "running");
            app.run(&stages, concurrency, shutdown).await?;
            tracing::info!("stopped cleanly");
        }
        Command::Healthcheck(args) => healthcheck::run(&settings, args).await?,
        Command::Demo(args) => tools::run("demo", cli.config.as_deref(), args)?,
        Command::Eval(args) => triage::eval(&settings, args)?,
        Command::Train(args) => triage::train(settings, args).await?,
        Command::Agents { command } => agents_cmd(settings, command).await?,
        Command::Publish { file } => publish(settings, &file).await?,
        Command::Ticket { number } => show_ticket(settings, &number).await?,
        Command::Gateway(args) => gateway::serve(settings, args).await?,
        Command::Keys { command } => gateway::keys(settings, command).await?,
        Command::Users { command } => gateway::users(settings, command).await?,
        Command::Loadgen(args) => tools::run("loadgen", cli.config.as_deref(), args)?,
        Command::Dead { command } => dead::run(settings, command).await?,
        Command::Events { command } => events::run(settings, command).await?,
        Command::Webhooks { command } => webhooks::run(settings, command).await?,
        Command::Report(args) => report::run(settings, args).await?,
        Command::Calendar { command } => calendar::run(&settings, command)?,
        Command::Retention { command } => retention::run(settings, command).await?,
        Command::Bench(args) => tools::run("bench", cli.config.as_deref(), args)?,
        Command::BenchList(args) => tools::run("bench-list", cli.config.as_deref(), args)?,
    }
    Ok(())
}

async fn agents_cmd(settings: Settings, command: AgentsCommand) -> Result<()> {
    let app = App::start(settings).await?;
    match command {
        AgentsCommand::Import { file } => {
            let data = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let teams: Vec<String> = app.policy.doc.teams.keys().cloned().collect();
            let rows = agents::parse_roster(&file.display().to_string(), &data, &teams)?;
            let spinner = output::spinner(&format!("importing {} agents", rows.len()));
            let n = app.db.import_agents(&rows).await;
            spinner.finish_and_clear();
            let n = n?;
            println!("imported {n} agents from {}", file.display());
            let mut online_teams: Vec<String> = rows
                .iter()
                .filter(|r| r.presence == "online")
                .map(|r| r.team.clone())
                .collect();
            online_teams.sort();
            online_teams.dedup();
            request_drains(&app, &online_teams, "roster imported").await?;
        }
        AgentsCommand::List { team, format } => {
            let mut out = Listing::new()
                .col("id", "id")
                .col("name", "name")
                .col("team", "team")
                .col("presence", "presence")
                .shown("open_tickets", "load/cap", true, |r| {
                    let n = |k: &str| r.get(k).map(|v| v.to_string()).unwrap_or_default();
                    format!("{}/{}", n("open_tickets"), n("max_open"))
                })
                .col("languages", "lang")
                .col("channels", "channels")
                .col("skills", "skills");
            for a in app.db.list_agents(team.as_deref()).await? {
                out.row(json!({
                    "id": a.id,
                    "name": a.name,
                    "team": a.team,
                    "presence": a.presence.as_str(),
                    "open_tickets": a.open_tickets,
                    "max_open": a.max_open,
                    "languages": a.languages,
                    "channels": a.channels,
                    "skills": a.skills,
                }));
            }
            out.print(format.get())?;
        }
        AgentsCommand::SetStatus { id, presence, max_open } => {
            let presence = match presence.as_deref() {
                None => None,
                Some(p) => Some(
                    Presence::parse(p)
                        .with_context(|| format!("--presence must be online, away or offline, not {p:?}"))?,
                ),
            };
            if presence.is_none() && max_open.is_none() {
                bail!("nothing to change: give --presence and/or --max-open");
            }
            let free_team = app.db.set_agent_status(&id, presence, max_open).await?;
            println!("agent {id} updated");
            if let Some(team) = free_team {
                request_drains(&app, &[team], &format!("agent {id} has capacity")).await?;
            }
        }
    }
    Ok(())
}

/// Asks the assign stage to hand queued tickets of these teams to agents with capacity.
async fn request_drains(app: &App, teams: &[String], reason: &str) -> Result<()> {
    if teams.is_empty() {
        return Ok(());
    }
    let conn = bus::connect(&app.settings.amqp_urls(), "switchboard-cli").await?;
    let ch = bus::confirm_channel(&conn).await?;
    app.topo.declare(&conn).await?;
    let msgs: Vec<bus::Outgoing> = teams.iter().map(|t| DrainMessage::for_team(t, reason)).collect();
    bus::publish_all(&ch, &app.topo, &msgs).await?;
    let _ = conn.close(200, "done".into()).await;
    println!("asked the assign stage to drain the queue of: {}", teams.join(", "));
    Ok(())
}

async fn publish(settings: Settings, file: &PathBuf) -> Result<()> {
    use switchboard::contracts::intake::IntakeRequest;
    let policy = Policy::load(&settings.policy_path)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let topo = bus::Topology::from_settings(&settings);
    let conn = bus::connect(&settings.amqp_urls(), "switchboard-publish").await?;
    let ch = bus::confirm_channel(&conn).await?;
    topo.declare(&conn).await?;
    let lines: Vec<(usize, &str)> = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).collect();
    let bar = output::progress(lines.len() as u64, "requests");
    let mut n = 0;
    for (i, line) in lines {
        let req = IntakeRequest::decode(line.as_bytes(), &policy.doc.channels)
            .with_context(|| format!("{} line {}", file.display(), i + 1))?;
        let props = lapin::BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(req.channel_message_id.as_str().into());
        bus::publish_raw(
            &ch,
            &topo.exchange(Exchange::Intake),
            &format!("intake.{}", req.channel),
            line.as_bytes(),
            props,
        )
        .await?;
        n += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let _ = conn.close(200, "done".into()).await;
    println!("published {n} requests (each confirmed by the broker)");
    Ok(())
}

async fn show_ticket(settings: Settings, number: &str) -> Result<()> {
    let app = App::start(settings).await?;
    let client = app.db.pool.get().await?;
    let Some(t) = tickets::get_by_number(&**client, number).await? else {
        return Err(exit::not_found(format!(
            "no ticket {number:?}; ticket numbers look like those `switchboard report` and the desk show"
        )));
    };
    let view = switchboard::contracts::events::ticket_view(&t);
    println!("{}", serde_json::to_string_pretty(&view)?);
    if !t.category_candidates.is_empty() {
        let candidates: Vec<String> = t
            .category_candidates
            .iter()
            .map(|c| format!("{} ({:.0}%)", c.category, c.probability * 100.0))
            .collect();
        let triage = if t.needs_triage {
            "needs triage: a person chooses the category"
        } else {
            "category decided"
        };
        println!("\ncandidates: {} — {triage}", candidates.join(", "));
    }
    // The SLA clocks, milestones included, as the API and the desk show them.
    let facts = switchboard::core::sla::SlaFacts::of(&t, switchboard::store::sla::pauses(&**client, t.id).await?);
    println!("\nclocks:");
    for c in app
        .policy
        .doc
        .sla
        .clocks(app.policy.calendar(), &facts, chrono::Utc::now())
    {
        let at = |d: Option<chrono::DateTime<chrono::Utc>>| d.map(|d| d.to_rfc3339()).unwrap_or_else(|| "-".into());
        println!(
            "  {:<15} {:<9} due {:<32} met {}",
            c.target.as_str(),
            serde_json::to_value(c.state)?.as_str().unwrap_or("?"),
            at(c.due),
            at(c.met_at)
        );
    }
    println!("\nservice record:");
    for (label, value) in t.life.record.columns(&app.policy.doc.record) {
        if !value.is_empty() {
            println!("  {label:<20} {value}");
        }
    }
    match &t.life.confirmation {
        Some(c) => println!(
            "  confirmed            {:?} at {} by {}",
            c.method,
            c.at.to_rfc3339(),
            c.by
        ),
        None => println!("  confirmed            no"),
    }
    let transitions = tickets::transitions_of(&**client, t.id).await?;
    for tr in &transitions {
        let data = &tr.details["data"];
        match tr.details["event"].as_str() {
            Some("noted") => println!(
                "  note ({}, {}): {}",
                tr.actor,
                tr.at.to_rfc3339(),
                data["text"].as_str().unwrap_or("")
            ),
            Some("attached") => println!(
                "  attachment ({}, {}): {} {}",
                tr.actor,
                tr.at.to_rfc3339(),
                data["name"].as_str().unwrap_or(""),
                data["url"].as_str().unwrap_or("")
            ),
            _ => {}
        }
    }
    println!("\ntransitions:");
    for tr in transitions {
        println!(
            "  #{:<3} {}  {:>20} → {:<20} by {:<10} {}",
            tr.seq,
            tr.at.format("%Y-%m-%d %H:%M:%S%.3f"),
            tr.from.map(|s| s.as_str()).unwrap_or("-"),
            tr.to.as_str(),
            tr.actor,
            tr.reason
        );
    }
    // A group ticket's tasks; a task's parent (`core::groups`).
    if let Some((_, number, state)) = switchboard::store::groups::parent_of(&**client, t.id).await? {
        println!("\ntask of: {number} ({})", state.as_str());
    }
    let tasks = switchboard::store::groups::tasks_of(&**client, t.id).await?;
    if !tasks.is_empty() {
        println!("\ntasks:");
        for k in tasks {
            println!(
                "  {}  {:<20} {:<20} {:<10} {}",
                k.number,
                k.state.as_str(),
                k.team.as_deref().unwrap_or("-"),
                k.assignee.as_deref().unwrap_or("-"),
                k.summary.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}
