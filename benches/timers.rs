//! Timer lateness under load: 1,000,000 pending SLA timers (`SWITCHBOARD_BENCH_TIMERS` sets
//! another number), 10,000 of them falling due within one minute, claimed by the real scheduler (two copies, as in production) against the real
//! Postgres and RabbitMQ. Prints lateness (fired_at − due_at) p50 / p99 / max.
//!
//! Run: `cargo bench --bench timers` (uses SWITCHBOARD_TEST_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/switchboard_test, and SWITCHBOARD_AMQP_URL; works in its own
//! schema and queue prefix and removes both).

use std::time::{Duration, Instant};
use switchboard::app::App;

/// Pending timers unless `SWITCHBOARD_BENCH_TIMERS` says otherwise.
const DEFAULT_TOTAL: i64 = 1_000_000;
const DUE_SOON: i64 = 10_000;
const SCHEDULERS: usize = 2;

mod support;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let app = support::isolated_app("bench_timers").await?;
    let result = run(&app).await;
    // Clean up whatever happened.
    support::remove(&app).await?;
    result
}

async fn run(app: &App) -> anyhow::Result<()> {
    let total: i64 = match std::env::var("SWITCHBOARD_BENCH_TIMERS") {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("SWITCHBOARD_BENCH_TIMERS={v:?}: expected a whole number of timers"))?,
        Err(_) => DEFAULT_TOTAL,
    };
    anyhow::ensure!(
        total >= DUE_SOON,
        "SWITCHBOARD_BENCH_TIMERS must be at least {DUE_SOON}"
    );
    let client = app.db.pool.get().await?;
    let t0 = Instant::now();
    client
        .execute(
            // With their search terms, as intake stores them: a ticket without them is one the
            // scheduler's sweep indexes for search, a batch per sweep, in the timers' loop.
            "INSERT INTO tickets (number, channel, channel_message_id, customer, body, received_at, state, version, search_terms)
             SELECT 'B' || g, 'app', 'bench-' || g, '{\"customer_id\":\"c\"}', 'x', now(), 'assigned', 1, ARRAY['x']
             FROM generate_series(1, $1::bigint) g",
            &[&total],
        )
        .await?;
    // Every timer days away at first; then 10,000 of them brought forward to fall due over the
    // minute that starts 5 s from now. The load takes many seconds, and `now()` is when its
    // statement started: due times set while loading would already have passed, and the
    // schedulers' first round would count that wait as lateness.
    let start_in = 5.0f64;
    client
        .execute(
            "INSERT INTO sla_timers (ticket_id, purpose, due_at)
             SELECT id, 'breach:first_response', now() + make_interval(days => 1 + (random() * 29)::int)
             FROM tickets",
            &[],
        )
        .await?;
    client.execute("ANALYZE sla_timers", &[]).await?;
    client
        .execute(
            "UPDATE sla_timers SET due_at = clock_timestamp() + make_interval(secs => $3::float8 + 60.0 * random())
             WHERE ticket_id % ($1::bigint / $2::bigint) = 0",
            &[&total, &DUE_SOON, &start_in],
        )
        .await?;
    let soon: i64 = client
        .query_one(
            "SELECT count(*) FROM sla_timers WHERE due_at < now() + interval '70 seconds'",
            &[],
        )
        .await?
        .get(0);
    println!(
        "timers: {total} pending, {soon} due within the next minute; loaded in {:.1}s; {SCHEDULERS} schedulers",
        t0.elapsed().as_secs_f64()
    );

    let stop = tokio_util::sync::CancellationToken::new();
    let mut handles = Vec::new();
    for _ in 0..SCHEDULERS {
        handles.push(tokio::spawn(switchboard::runtime::scheduler::run(
            app.db.clone(),
            app.topo.clone(),
            app.settings.amqp_urls(),
            Duration::from_secs(app.settings.sweep_after_s),
            app.health.clone(),
            stop.clone(),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(start_in as u64 + 75);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let fired: i64 = client
            .query_one("SELECT count(*) FROM sla_timers WHERE state = 'fired'", &[])
            .await?
            .get(0);
        let outbox: i64 = client.query_one("SELECT count(*) FROM outbox", &[]).await?.get(0);
        eprint!(
            "\r  fired {fired:>6}/{soon} · outbox {outbox:>5} · {:>4.0}s",
            t0.elapsed().as_secs_f64()
        );
        if (fired >= soon && outbox == 0) || Instant::now() > deadline {
            break;
        }
    }
    eprintln!();
    stop.cancel();
    for h in handles {
        h.await??;
    }
    let row = client
        .query_one(
            "SELECT count(*),
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - due_at)),
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - due_at)),
                    max(extract(epoch FROM fired_at - due_at))::float8
             FROM sla_timers WHERE state = 'fired'",
            &[],
        )
        .await?;
    let (n, p50, p99, max): (i64, Option<f64>, Option<f64>, Option<f64>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let depth = app
        .topo
        .depth(
            &switchboard::bus::connect(&app.settings.amqp_urls(), "bench")
                .await?
                .create_channel()
                .await?,
            &app.topo.queue("escalate"),
        )
        .await?;
    println!(
        "lateness (fired_at - due_at) over {n} fired timers: p50 {:.1} ms · p99 {:.1} ms · max {:.1} ms",
        p50.unwrap_or(0.0) * 1000.0,
        p99.unwrap_or(0.0) * 1000.0,
        max.unwrap_or(0.0) * 1000.0
    );
    println!(
        "escalation messages published and confirmed: {depth} (each timer exactly once: {})",
        depth as i64 == n
    );
    Ok(())
}
