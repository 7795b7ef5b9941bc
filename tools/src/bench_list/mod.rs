//! `switchboard bench-list`: the work list's latency (`GET /v1/tickets`) on a large, realistic
//! ticket table — by default 1,000,000 tickets, a year of a contact center.
//!
//! 1. A schema of its own (`bench_list_<random>`, dropped at the end unless `--keep`), migrated
//!    like any other, with the sample roster;
//! 2. the tickets, written with binary `COPY` ([`seed`]; the distribution is described there),
//!    then the indexes built and `VACUUM (ANALYZE)`;
//! 3. a gateway in this process on 127.0.0.1 (a random port) for that schema, four people (an
//!    agent of front line, front line's supervisor, a supervisor of every team, an agent of a
//!    small team), and one query shape after another: warm-up requests, then the measured ones,
//!    sequentially (or with `--concurrency` clients at once), each over one keep-alive
//!    connection, timed from sending the request to the last byte of the response.
//!
//! `--schema NAME` measures a schema seeded before (`--keep`): to compare an index or a query
//! change without seeding again.

pub mod corpus;
pub mod seed;

use crate::client::HttpClient;
use anyhow::{Context as _, Result, anyhow, bail};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use switchboard::app::App;
use switchboard::config::Settings;
use switchboard::core::access::Role;
use switchboard::http::auth::{UserSpec, create_user};
use switchboard::store::Db;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct Options {
    pub tickets: usize,
    pub seed: u64,
    /// Rows per `COPY`.
    pub batch: usize,
    /// Use (and keep) this schema; seeded only when it holds no tickets yet.
    pub schema: Option<String>,
    pub keep: bool,
    pub roster: PathBuf,
    /// Measured requests per shape.
    pub requests: usize,
    /// Unmeasured requests per shape before any is measured.
    pub warmup: usize,
    pub concurrency: usize,
    pub target_ms: f64,
    /// Only the shapes whose label contains one of these (all when empty).
    pub only: Vec<String>,
}

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Who {
    /// An agent of front line.
    Agent,
    /// Front line's supervisor.
    TeamSupervisor,
    /// A supervisor of every team.
    AllSupervisor,
    /// An agent of a small team (quality management, about 2% of the tickets): where "my team
    /// or mine" and a search term select few of the rows a deadline-ordered scan passes.
    SmallTeamAgent,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Agent => "agent",
            Who::TeamSupervisor => "fl supervisor",
            Who::AllSupervisor => "all-teams supv",
            Who::SmallTeamAgent => "qm agent",
        }
    }
}

/// One query shape: what is asked, by whom, and the request paths it cycles through.
#[derive(Debug, Clone)]
pub struct Shape {
    pub label: String,
    pub who: Who,
    pub paths: Vec<String>,
}

/// One shape's figures (milliseconds).
#[derive(Debug, Clone)]
pub struct Measured {
    pub label: String,
    pub who: Who,
    pub requests: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub rows_min: usize,
    pub rows_max: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/v1/tickets` with these parameters.
pub fn list_path(params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return "/v1/tickets".into();
    }
    let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    format!("/v1/tickets?{}", q.join("&"))
}

fn with_cursor(path: &str, cursor: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}cursor={}", encode(cursor))
}

fn mib(bytes: i64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The sizes of `tickets`: heap, TOAST, each index, total.
async fn sizes(db: &Db) -> Result<String> {
    let client = db.pool.get().await?;
    let total = client
        .query_one(
            "SELECT pg_relation_size('tickets'), pg_indexes_size('tickets'), pg_total_relation_size('tickets')",
            &[],
        )
        .await?;
    let (heap, indexes, all): (i64, i64, i64) = (total.get(0), total.get(1), total.get(2));
    let each = client
        .query(
            "SELECT c.relname::text, pg_relation_size(c.oid) FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
             WHERE x.indrelid = 'tickets'::regclass ORDER BY 2 DESC, 1",
            &[],
        )
        .await?;
    let list: Vec<String> = each
        .iter()
        .map(|r| format!("{} {}", r.get::<_, String>(0), mib(r.get(1))))
        .collect();
    Ok(format!(
        "tickets: {} total = heap {} + TOAST {} + indexes {} ({})",
        mib(all),
        mib(heap),
        mib(all - heap - indexes),
        mib(indexes),
        list.join(", ")
    ))
}

/// Values that exist in the data, to search for: the phones of customers who called (a phone
/// finds the tickets of the phone channel) and quoted order numbers.
async fn probes(db: &Db, tickets: i64) -> Result<(Vec<String>, Vec<String>)> {
    let client = db.pool.get().await?;
    let step = (tickets / 200).max(1);
    let phones = client
        .query(
            "SELECT DISTINCT customer->>'phone' FROM tickets
             WHERE id % $1 < 3 AND channel = 'phone' AND customer ? 'phone' LIMIT 50",
            &[&step],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let orders = client
        .query(
            "SELECT o FROM (SELECT substring(body FROM 'SO[0-9]{10}') AS o FROM tickets WHERE id % $1 = 0) s
             WHERE o IS NOT NULL LIMIT 50",
            &[&step],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    Ok((phones, orders))
}

/// The query shapes measured, in order. Paging shapes are filled in later (they need cursors).
fn shapes(phones: &[String], orders: &[String]) -> Vec<Shape> {
    let one = |label: &str, who: Who, params: &[(&str, &str)]| Shape {
        label: label.to_owned(),
        who,
        paths: vec![list_path(params)],
    };
    let open = "assigned,in_progress,waiting_for_customer";
    let mut out = vec![
        one("assignee=me", Who::Agent, &[("assignee", "me")]),
        one("default (team or mine, sort=due)", Who::Agent, &[]),
        one("default, page 2", Who::Agent, &[]),
        one("default, page 20", Who::Agent, &[]),
        one(
            "team=front_line&state=queued",
            Who::Agent,
            &[("team", "front_line"), ("state", "queued")],
        ),
        one("sort=received", Who::Agent, &[("sort", "received")]),
        one("q=退款", Who::Agent, &[("q", "退款")]),
        one("default (team or mine, sort=due)", Who::SmallTeamAgent, &[]),
        one("q=退款", Who::SmallTeamAgent, &[("q", "退款")]),
        one("default (team, sort=due)", Who::TeamSupervisor, &[]),
        one("limit=200", Who::TeamSupervisor, &[("limit", "200")]),
        one("at_risk=true", Who::TeamSupervisor, &[("at_risk", "true")]),
        one("default (everything, sort=due)", Who::AllSupervisor, &[]),
        one(
            &format!("state={open}&sort=due"),
            Who::AllSupervisor,
            &[("state", open), ("sort", "due")],
        ),
        one("at_risk=true", Who::AllSupervisor, &[("at_risk", "true")]),
        one("breached=true", Who::AllSupervisor, &[("breached", "true")]),
        one(
            "priority=urgent&sort=priority",
            Who::AllSupervisor,
            &[("priority", "urgent"), ("sort", "priority")],
        ),
        one("sort=received", Who::AllSupervisor, &[("sort", "received")]),
        one("sort=received, page 20", Who::AllSupervisor, &[("sort", "received")]),
        one("q=退款", Who::AllSupervisor, &[("q", "退款")]),
        one("q=router", Who::AllSupervisor, &[("q", "router")]),
        // A word nobody wrote (the texts say "fridge"): a search finding nothing must be as
        // quick as one finding a few.
        one(
            "q=refrigerator (no match)",
            Who::AllSupervisor,
            &[("q", "refrigerator")],
        ),
    ];
    if !orders.is_empty() {
        out.push(Shape {
            label: format!("q=<order number> ({} different)", orders.len()),
            who: Who::AllSupervisor,
            paths: orders.iter().map(|o| list_path(&[("q", o)])).collect(),
        });
    }
    if !phones.is_empty() {
        out.push(Shape {
            label: format!("customer=<phone> ({} different)", phones.len()),
            who: Who::AllSupervisor,
            paths: phones.iter().map(|p| list_path(&[("customer", p)])).collect(),
        });
    }
    out
}

/// The page number a shape's label asks for (`…, page N`).
fn page_of(label: &str) -> Option<usize> {
    label.rsplit_once("page ").and_then(|(_, n)| n.trim().parse().ok())
}

async fn get_json(client: &mut HttpClient, token: &str, path: &str) -> Result<serde_json::Value> {
    let auth = format!("Bearer {token}");
    let reply = client
        .get(path, &[("authorization", auth.as_str())])
        .await
        .with_context(|| format!("GET {path}"))?;
    if reply.status.as_u16() != 200 {
        bail!(
            "GET {path}: {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
                .chars()
                .take(300)
                .collect::<String>()
        );
    }
    Ok(reply.json())
}

/// The path of page `page` of `path`, following `next_cursor` from page 1.
async fn page_path(client: &mut HttpClient, token: &str, path: &str, page: usize) -> Result<String> {
    let mut at = path.to_owned();
    for n in 1..page {
        let v = get_json(client, token, &at).await?;
        let cursor = v["next_cursor"]
            .as_str()
            .ok_or_else(|| anyhow!("{path} has no page {} (page {n} is the last)", n + 1))?;
        at = with_cursor(path, cursor);
    }
    Ok(at)
}

/// Runs `requests` requests of `shape` (cycling its paths) with `concurrency` clients.
async fn measure(base: &str, token: &str, shape: &Shape, requests: usize, concurrency: usize) -> Result<Measured> {
    let next = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(shape.paths.clone());
    let auth = Arc::new(format!("Bearer {token}"));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, paths, auth) = (next.clone(), paths.clone(), auth.clone());
        let mut client = HttpClient::new(base)?.with_timeout(Duration::from_secs(60));
        // 1 µs to 10 min, 3 significant digits.
        let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).context("latency histogram")?;
        tasks.push(tokio::spawn(async move {
            let (mut errors, mut first_error) = (0usize, None::<String>);
            let (mut rows_min, mut rows_max) = (usize::MAX, 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let path = &paths[i % paths.len()];
                let sent = Instant::now();
                let result = client.get(path, &[("authorization", auth.as_str())]).await;
                let micros = sent.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                match result {
                    Ok(reply) if reply.status.as_u16() == 200 => {
                        hist.saturating_record(micros.max(1));
                        let rows = reply.json()["tickets"].as_array().map_or(0, Vec::len);
                        rows_min = rows_min.min(rows);
                        rows_max = rows_max.max(rows);
                    }
                    Ok(reply) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| {
                            format!(
                                "{} {path}: {}",
                                reply.status,
                                String::from_utf8_lossy(&reply.body)
                                    .chars()
                                    .take(300)
                                    .collect::<String>()
                            )
                        });
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{path}: {e}"));
                    }
                }
            }
            (hist, errors, first_error, rows_min, rows_max)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut m = Measured {
        label: shape.label.clone(),
        who: shape.who,
        requests: 0,
        errors: 0,
        first_error: None,
        rows_min: usize::MAX,
        rows_max: 0,
        p50: 0.0,
        p90: 0.0,
        p99: 0.0,
        max: 0.0,
    };
    for t in tasks {
        let (h, errors, first_error, rows_min, rows_max) = t.await?;
        hist.add(&h)?;
        m.errors += errors;
        if m.first_error.is_none() {
            m.first_error = first_error;
        }
        m.rows_min = m.rows_min.min(rows_min);
        m.rows_max = m.rows_max.max(rows_max);
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    m.requests = hist.len() as usize;
    m.p50 = ms(0.50);
    m.p90 = ms(0.90);
    m.p99 = ms(0.99);
    m.max = hist.max() as f64 / 1000.0;
    if m.rows_min == usize::MAX {
        m.rows_min = 0;
    }
    Ok(m)
}

fn rows_cell(m: &Measured) -> String {
    if m.rows_min == m.rows_max {
        m.rows_min.to_string()
    } else {
        format!("{}–{}", m.rows_min, m.rows_max)
    }
}

/// The results as a Markdown table, then the verdict line.
pub fn table(results: &[Measured], target_ms: f64, concurrency: usize) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "| shape | as | requests{} | rows | p50 ms | p90 ms | p99 ms | max ms |\n",
        if concurrency > 1 {
            format!(" ({concurrency} at once)")
        } else {
            String::new()
        }
    ));
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for m in results {
        let errors = if m.errors > 0 {
            format!(" ({} failed)", m.errors)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "| {} | {} | {}{} | {} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            m.label,
            m.who.label(),
            m.requests,
            errors,
            rows_cell(m),
            m.p50,
            m.p90,
            m.p99,
            m.max
        ));
    }
    if let Some(worst) = results.iter().max_by(|a, b| a.p99.total_cmp(&b.p99)) {
        out.push_str(&format!(
            "\nworst p99: {:.1} ms ({}, {}) — target {} ms: {}\n",
            worst.p99,
            worst.label,
            worst.who.label(),
            target_ms,
            if worst.p99 <= target_ms && results.iter().all(|m| m.errors == 0) {
                "MET"
            } else {
                "NOT MET"
            }
        ));
    }
    out
}

/// The whole benchmark: schema, seed, gateway, measurements, table. Fails when a request
/// fails; a missed target is reported, not an error.
pub async fn run(mut settings: Settings, opts: Options) -> Result<Vec<Measured>> {
    let reuse = opts.schema.is_some();
    let schema = opts
        .schema
        .clone()
        .unwrap_or_else(|| format!("bench_list_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    settings.database_schema = Some(schema.clone());
    // The people measured here must not be throttled by the per-key rate limit.
    settings.gateway_rate_per_sec = 1_000_000;
    settings.gateway_rate_burst = 1_000_000;
    settings.database_pool_size = settings.database_pool_size.max(opts.concurrency + 4);
    eprintln!("schema {schema} on {}", settings.database_url);
    let app = App::start(settings)
        .await
        .context("starting (are Postgres and the policy there?)")?;
    let keep = opts.keep || reuse;
    let work = run_in(&app, &opts, &schema);
    let result = tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if keep {
        eprintln!("schema {schema} kept (drop it with: DROP SCHEMA {schema} CASCADE)");
    } else {
        eprintln!("dropping schema {schema}…");
        match tokio::time::timeout(Duration::from_secs(60), app.db.drop_schema()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop schema {schema}: {e}; drop it with DROP SCHEMA {schema} CASCADE"),
            Err(_) => eprintln!("dropping schema {schema} timed out; drop it with DROP SCHEMA {schema} CASCADE"),
        }
    }
    result
}

async fn run_in(app: &App, opts: &Options, schema: &str) -> Result<Vec<Measured>> {
    let db = &app.db;
    let teams: Vec<String> = app.policy.doc.teams.keys().cloned().collect();
    let csv = std::fs::read(&opts.roster).with_context(|| format!("reading the roster {}", opts.roster.display()))?;
    let roster = switchboard::store::agents::parse_roster(&opts.roster.display().to_string(), &csv, &teams)?;
    db.import_agents(&roster).await.context("importing the roster")?;
    let mut agents: HashMap<String, Vec<String>> = HashMap::new();
    for a in &roster {
        agents.entry(a.team.clone()).or_default().push(a.id.clone());
    }
    for list in agents.values_mut() {
        list.sort();
    }

    let existing: i64 = db
        .pool
        .get()
        .await?
        .query_one("SELECT count(*) FROM tickets", &[])
        .await?
        .get(0);
    let seed_line = if existing == 0 {
        let seeded = seed::seed(
            db,
            seed::SeedSpec {
                tickets: opts.tickets,
                seed: opts.seed,
                batch: opts.batch,
                now: chrono::Utc::now(),
                policy: app.policy.clone(),
                agents: agents.clone(),
            },
        )
        .await?;
        format!(
            "seeded {} tickets ({} open) in {:.0} s: COPY {:.0} s, indexes {:.0} s, VACUUM (ANALYZE) {:.0} s",
            seed::fmt_count(seeded.tickets),
            seed::fmt_count(seeded.open),
            seeded.copy_seconds + seeded.index_seconds + seeded.analyze_seconds,
            seeded.copy_seconds,
            seeded.index_seconds,
            seeded.analyze_seconds
        )
    } else {
        format!(
            "reusing the {} tickets already in schema {schema}",
            seed::fmt_count(existing as usize)
        )
    };
    let tickets: i64 = db
        .pool
        .get()
        .await?
        .query_one("SELECT count(*) FROM tickets", &[])
        .await?
        .get(0);
    let open: i64 = db
        .pool
        .get()
        .await?
        .query_one("SELECT count(*) FROM tickets WHERE next_due IS NOT NULL", &[])
        .await?
        .get(0);
    let size_line = sizes(db).await?;
    let server: String = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT split_part(version(), ' ', 2) || ', shared_buffers ' || current_setting('shared_buffers')
                    || ', work_mem ' || current_setting('work_mem')",
            &[],
        )
        .await?
        .get(0);
    let (phones, orders) = probes(db, tickets).await?;

    // The gateway, in this process.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let server_task = {
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move { switchboard::http::serve(&app, listener, stop).await })
    };
    let _stop_on_exit = stop.clone().drop_guard();
    let base = format!("http://{addr}");

    let agent = agents
        .get("front_line")
        .and_then(|a| a.first())
        .cloned()
        .ok_or_else(|| anyhow!("the roster has no front_line agent"))?;
    let small_team = ["quality_management", "green_channel"]
        .into_iter()
        .chain(agents.keys().map(String::as_str))
        .find(|t| *t != "front_line" && agents.get(*t).is_some_and(|a| !a.is_empty()))
        .ok_or_else(|| anyhow!("the roster has agents of front_line only"))?;
    let other = agents[small_team][0].clone();
    let names = [
        format!("bench-list agent {agent}"),
        "bench-list front_line supervisor".to_owned(),
        "bench-list all-teams supervisor".to_owned(),
        format!("bench-list agent {other}"),
    ];
    for name in &names {
        // A kept schema measured again: its earlier users make way.
        let _ = switchboard::store::users::disable(db, name).await;
    }
    let mut tokens: HashMap<Who, String> = HashMap::new();
    let specs = [
        (Who::Agent, UserSpec::agent(&names[0], &agent)),
        (
            Who::TeamSupervisor,
            UserSpec::person(&names[1], Role::Supervisor, Some("front_line")),
        ),
        (Who::AllSupervisor, UserSpec::person(&names[2], Role::Supervisor, None)),
        (Who::SmallTeamAgent, UserSpec::agent(&names[3], &other)),
    ];
    for (who, spec) in &specs {
        let (_, token) = create_user(db, spec)
            .await
            .with_context(|| format!("creating user {}", spec.name))?;
        tokens.insert(*who, token.ok_or_else(|| anyhow!("user {} got no token", spec.name))?);
    }

    let mut client = HttpClient::new(&base)?.with_timeout(Duration::from_secs(60));
    let started = Instant::now();
    loop {
        match get_json(&mut client, &tokens[&Who::AllSupervisor], "/v1/tickets?limit=1").await {
            Ok(_) => break,
            Err(e) if started.elapsed() > Duration::from_secs(30) => {
                return Err(e.context("the gateway does not answer"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }

    let mut shapes = shapes(&phones, &orders);
    if !opts.only.is_empty() {
        shapes.retain(|s| {
            let name = format!("{} ({})", s.label, s.who.label());
            opts.only.iter().any(|o| name.contains(o.as_str()))
        });
    }
    for shape in &mut shapes {
        if let Some(page) = page_of(&shape.label) {
            let token = &tokens[&shape.who];
            let mut paths = Vec::new();
            for p in &shape.paths {
                paths.push(page_path(&mut client, token, p, page).await?);
            }
            shape.paths = paths;
        }
    }

    if existing > 0 {
        eprintln!("{seed_line}");
    }
    eprintln!("{size_line}");
    eprintln!(
        "warm-up: {} request(s) of each of {} shapes…",
        opts.warmup,
        shapes.len()
    );
    for shape in &shapes {
        measure(&base, &tokens[&shape.who], shape, opts.warmup, 1).await?;
    }
    let mut results = Vec::new();
    for shape in &shapes {
        let m = measure(&base, &tokens[&shape.who], shape, opts.requests, opts.concurrency).await?;
        eprintln!(
            "  {:<58} {:<14} p50 {:>7.1}  p99 {:>7.1}  max {:>7.1} ms  rows {}",
            m.label,
            m.who.label(),
            m.p50,
            m.p99,
            m.max,
            rows_cell(&m)
        );
        if let Some(e) = &m.first_error {
            eprintln!("    {} failed; first: {e}", m.errors);
        }
        results.push(m);
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), server_task).await;

    println!(
        "switchboard bench-list: GET /v1/tickets on {} tickets ({} open)",
        seed::fmt_count(tickets as usize),
        seed::fmt_count(open as usize)
    );
    println!("{seed_line}");
    println!("{size_line}");
    println!(
        "PostgreSQL {server}; gateway in this process; {} measured request(s) per shape after {} warm-up, {} client(s) at once",
        opts.requests,
        opts.warmup,
        opts.concurrency.max(1)
    );
    println!();
    print!("{}", table(&results, opts.target_ms, opts.concurrency.max(1)));
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_and_pages_parsed() {
        assert_eq!(list_path(&[]), "/v1/tickets");
        assert_eq!(list_path(&[("q", "退款")]), "/v1/tickets?q=%E9%80%80%E6%AC%BE");
        assert_eq!(
            list_path(&[("state", "a,b"), ("sort", "due")]),
            "/v1/tickets?state=a%2Cb&sort=due"
        );
        assert_eq!(with_cursor("/v1/tickets", "ab_c-"), "/v1/tickets?cursor=ab_c-");
        assert_eq!(with_cursor("/v1/tickets?x=1", "z"), "/v1/tickets?x=1&cursor=z");
        assert_eq!(page_of("default, page 20"), Some(20));
        assert_eq!(page_of("assignee=me"), None);
    }

    #[test]
    fn the_verdict_names_the_worst_shape() {
        let m = |label: &str, p99: f64| Measured {
            label: label.into(),
            who: Who::Agent,
            requests: 100,
            errors: 0,
            first_error: None,
            rows_min: 50,
            rows_max: 50,
            p50: 1.0,
            p90: 2.0,
            p99,
            max: p99,
        };
        let t = table(&[m("a", 10.0), m("b", 70.0)], 50.0, 1);
        assert!(
            t.ends_with("worst p99: 70.0 ms (b, agent) — target 50 ms: NOT MET\n"),
            "{t}"
        );
        let t = table(&[m("a", 10.0)], 50.0, 1);
        assert!(t.contains("target 50 ms: MET"), "{t}");
    }
}
