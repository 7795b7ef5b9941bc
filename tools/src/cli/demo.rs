//! `switchboard demo`: the quick start. Runs every stage in this process, publishes sample
//! traffic from all four channels, shows live progress and closes with a summary.

use anyhow::{Context as _, Result, bail};
use lapin::BasicProperties;
use std::io::Write as _;
use std::time::{Duration, Instant};
use switchboard::app::{App, StageName};
use switchboard::bus;
use switchboard::config::Settings;
use switchboard::contracts::Exchange;
use switchboard::store::agents::parse_roster;
use switchboard_tools::demo::{Kind, traffic};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// New requests to publish (duplicates, thread replies and a few invalid messages come on top).
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Consumers per stage.
    #[arg(long, short = 'c', default_value_t = 2)]
    concurrency: usize,
    /// Give up waiting for the pipeline after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Roster imported when no agent exists yet.
    #[arg(long, default_value = "config/agents.sample.csv")]
    roster: std::path::PathBuf,
}

pub async fn run(settings: Settings, args: DemoArgs) -> Result<()> {
    eprintln!(
        "switchboard demo: RabbitMQ {} · Postgres {}",
        settings
            .amqp_urls()
            .iter()
            .map(|u| bus::display_url(u))
            .collect::<Vec<_>>()
            .join(","),
        bus::display_url(&settings.database_url)
    );
    let app = App::start(settings).await.context("starting the pipeline")?;
    app.declare_topology().await?;
    if app.db.list_agents(None).await?.is_empty() {
        let data =
            std::fs::read(&args.roster).with_context(|| format!("cannot read roster {}", args.roster.display()))?;
        let teams: Vec<String> = app.policy.doc.teams.keys().cloned().collect();
        let rows = parse_roster(&args.roster.display().to_string(), &data, &teams)?;
        app.db.import_agents(&rows).await?;
        eprintln!("imported {} sample agents from {}", rows.len(), args.roster.display());
    }

    let run_id = format!("{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let pipeline = {
        let app = app.clone();
        let stop = shutdown.clone();
        let concurrency = args.concurrency;
        tokio::spawn(async move { app.run(&StageName::ALL, concurrency, stop).await })
    };

    let conn = bus::connect(&app.settings.amqp_urls(), "switchboard-demo").await?;
    let ch = bus::confirm_channel(&conn).await?;
    // Dead letters an earlier run left, so the summary can wait for this run's own.
    let dead_before = app.topo.depth(&ch, &app.topo.dead_queue()).await.unwrap_or(0);
    let exchange = app.topo.exchange(Exchange::Intake);
    let started = Instant::now();
    let (mut new, mut dup, mut replies, mut invalid) = (0usize, 0usize, 0usize, 0usize);
    let chunk = 200;
    let mut published = 0usize;
    let progress_db = app.db.clone();
    let like = format!("demo-{run_id}-%");
    let mut last_print = Instant::now();
    let mut start = 0;
    while start < args.requests {
        let end = (start + chunk).min(args.requests);
        let batch = traffic(&run_id, start..end, true, chrono::Utc::now());
        let mut confirms = Vec::with_capacity(batch.len());
        for p in &batch {
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(p.message_id.as_str().into());
            let c = ch
                .basic_publish(
                    exchange.as_str().into(),
                    p.routing_key.as_str().into(),
                    lapin::options::BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &p.payload,
                    props,
                )
                .await?;
            confirms.push(c);
            match p.kind {
                Kind::New => new += 1,
                Kind::Duplicate => dup += 1,
                Kind::Reply => replies += 1,
                Kind::Invalid => invalid += 1,
            }
        }
        for c in confirms {
            if !c.await?.is_ack() {
                bail!("the broker refused a message; is the disk or memory alarm on? (rabbitmqctl status)");
            }
        }
        published += batch.len();
        start = end;
        if last_print.elapsed() > Duration::from_millis(250) {
            print_progress(&progress_db, &like, started, published, new).await;
            last_print = Instant::now();
        }
    }
    let publish_secs = started.elapsed().as_secs_f64();

    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let routed = print_progress(&progress_db, &like, started, published, new).await;
        if routed >= new as i64 {
            break;
        }
        if pipeline.is_finished() {
            eprintln!();
            bail!("the pipeline stopped early; see the log lines above");
        }
        if Instant::now() > deadline {
            eprintln!();
            bail!(
                "only {routed} of {new} tickets were routed within {}s; are other consumers competing for the queues?",
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!();
    // The invalid messages are dead-lettered beside the routing: the last of them may still be
    // in a batch when the last ticket is routed. A few seconds at most, then say what is there.
    let dead_deadline = Instant::now() + Duration::from_secs(5);
    let mut dead_depth = app.topo.depth(&ch, &app.topo.dead_queue()).await.unwrap_or(0);
    while (dead_depth as usize) < dead_before as usize + invalid && Instant::now() < dead_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        dead_depth = app.topo.depth(&ch, &app.topo.dead_queue()).await.unwrap_or(0);
    }
    shutdown.cancel();
    let _ = pipeline.await;
    let _ = conn.close(200, "done".into()).await;

    println!(
        "\nPublished {published} messages in {publish_secs:.1}s: {new} new requests, {dup} duplicates, {replies} thread replies, {invalid} invalid."
    );
    summary(&app, &like, new, elapsed).await?;
    println!(
        "Dead letters: {invalid} invalid messages sent; {dead_depth} messages wait in {} (`switchboard dead list` shows why).",
        app.topo.dead_queue()
    );
    Ok(())
}

async fn print_progress(
    db: &switchboard::store::Db,
    like: &str,
    started: Instant,
    published: usize,
    expected: usize,
) -> i64 {
    let Ok(client) = db.pool.get().await else { return 0 };
    let rows = client
        .query(
            "SELECT state, count(*) FROM tickets WHERE channel_message_id LIKE $1 GROUP BY state",
            &[&like],
        )
        .await
        .unwrap_or_default();
    let get = |s: &str| {
        rows.iter()
            .find(|r| r.get::<_, &str>(0) == s)
            .map(|r| r.get::<_, i64>(1))
            .unwrap_or(0)
    };
    let (assigned, queued) = (get("assigned"), get("queued"));
    let in_flight = get("received") + get("classified") + get("prioritized");
    let secs = started.elapsed().as_secs_f64();
    eprint!(
        "\r[{secs:6.1}s] published {published:>6} · in flight {in_flight:>5} · assigned {assigned:>6} · queued {queued:>6} · {:>3.0}% of {expected} · {:>6.0} tickets/s   ",
        100.0 * (assigned + queued) as f64 / expected.max(1) as f64,
        (assigned + queued) as f64 / secs.max(0.001)
    );
    let _ = std::io::stderr().flush();
    assigned + queued
}

async fn summary(app: &App, like: &str, expected: usize, elapsed: f64) -> Result<()> {
    let client = app.db.pool.get().await?;
    println!(
        "\nTickets: {expected} routed in {elapsed:.1}s ({:.0} tickets/s from intake to assigned/queued)",
        expected as f64 / elapsed
    );
    for (title, column) in [
        ("category", "category"),
        ("priority", "priority"),
        ("team", "team"),
        ("state", "state"),
    ] {
        let rows = client
            .query(
                &format!("SELECT coalesce({column}, '-'), count(*) FROM tickets WHERE channel_message_id LIKE $1 GROUP BY 1 ORDER BY 2 DESC"),
                &[&like],
            )
            .await?;
        let parts: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {}", r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect();
        println!("  by {title:<9} {}", parts.join(" · "));
    }
    let lat = client
        .query_one(
            "SELECT count(*),
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM tr.at - t.received_at)),
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM tr.at - t.received_at))
             FROM tickets t JOIN ticket_transitions tr ON tr.ticket_id = t.id AND tr.to_state IN ('assigned', 'queued') AND tr.actor = 'assign'
             WHERE t.channel_message_id LIKE $1",
            &[&like],
        )
        .await?;
    let n: i64 = lat.get(0);
    let p50: Option<f64> = lat.get(1);
    let p99: Option<f64> = lat.get(2);
    println!(
        "  latency   intake→assigned/queued p50 {:.0} ms · p99 {:.0} ms ({n} tickets)",
        p50.unwrap_or(0.0) * 1000.0,
        p99.unwrap_or(0.0) * 1000.0
    );
    let threaded: i64 = client
        .query_one(
            "SELECT count(*) FROM ticket_messages m JOIN tickets t ON t.id = m.ticket_id
             WHERE t.channel_message_id LIKE $1 AND m.channel_message_id <> t.channel_message_id",
            &[&like],
        )
        .await?
        .get(0);
    println!("  threads   {threaded} replies appended to their open tickets (no new ticket)");
    Ok(())
}
