//! Seeding the work-list benchmark's tickets: a year of a contact center's tickets, most of them
//! closed, written with binary `COPY` in batches.
//!
//! The distribution (all drawn from `--seed`, so a run can be repeated):
//! * `received_at` over the last 12 months; ids follow `received_at` (the rows are written in
//!   time order, as intake would have written them);
//! * ~90% resolved or closed (`next_due` NULL), ~10% open: queued, assigned, in progress,
//!   waiting for the customer, mostly received in the last days;
//! * the open tickets' running deadline in a window around now: ~12% already breached, ~10% due
//!   within the hour, the rest later (up to 5 days: deadlines a supervisor renegotiated count
//!   too, which is how an open ticket received weeks ago can be due tomorrow);
//! * priorities urgent/normal/low 5/75/20%; categories inquiry/fault/complaint/suggestion/other;
//!   teams as `config/policy.toml` routes them (urgent → green channel, faults → technical
//!   support, …, front line the largest), 2% moved to quality management;
//! * an assignee (a roster agent of the team) on every ticket past `queued`, kept after it is
//!   resolved and closed (as Switchboard keeps it);
//! * SLA targets of the policy's rules (business days taken as wall-clock days);
//! * customers who come back: about three tickets per customer, with a phone, some with an
//!   email or customer id; `search_terms` exactly as intake writes them (the text's terms and
//!   the identities the channel vouches for).

use super::corpus::{self, Category, Rng};
use anyhow::{Context as _, Result};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use switchboard::core::customer::Customer;
use switchboard::core::policy::Policy;
use switchboard::store::Db;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// What to seed.
#[derive(Clone)]
pub struct SeedSpec {
    pub tickets: usize,
    pub seed: u64,
    /// Rows per `COPY`.
    pub batch: usize,
    pub now: DateTime<Utc>,
    pub policy: Arc<Policy>,
    /// The roster: team → agent ids.
    pub agents: HashMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Queued,
    Assigned,
    InProgress,
    Waiting,
    Resolved,
    Closed,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Assigned => "assigned",
            State::InProgress => "in_progress",
            State::Waiting => "waiting_for_customer",
            State::Resolved => "resolved",
            State::Closed => "closed",
        }
    }

    fn open(self) -> bool {
        !matches!(self, State::Resolved | State::Closed)
    }

    fn responded(self) -> bool {
        !matches!(self, State::Queued | State::Assigned)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    Urgent,
    Normal,
    Low,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

/// The policy's SLA rule for a ticket: name, first response, resolution.
fn sla(priority: Priority, category: Category) -> (&'static str, Duration, Duration) {
    match (priority, category) {
        (Priority::Urgent, _) => ("urgent", Duration::minutes(15), Duration::hours(2)),
        (Priority::Normal, Category::Complaint) => ("complaint-normal", Duration::minutes(20), Duration::hours(48)),
        (_, Category::Suggestion) => ("suggestion", Duration::hours(24), Duration::hours(72)),
        (Priority::Normal, _) => ("normal", Duration::minutes(30), Duration::hours(24)),
        (Priority::Low, _) => ("low", Duration::hours(24), Duration::hours(72)),
    }
}

/// One ticket's skeleton: what decides its place in time. Text and people are filled in when
/// its batch is written.
struct Plan {
    /// Which generator stream the ticket's details come from.
    item: u64,
    received_at: DateTime<Utc>,
    state: State,
    priority: Priority,
    category: Category,
    customer: u64,
    /// The running deadline an open ticket was given (`None`: resolved or closed).
    target: Option<DateTime<Utc>>,
    number: String,
}

fn secs(d: f64) -> Duration {
    Duration::milliseconds((d * 1000.0) as i64)
}

/// A duration uniformly between `lo` and `hi`.
fn between(r: &mut Rng, lo: Duration, hi: Duration) -> Duration {
    let (lo, hi) = (
        lo.num_milliseconds() as f64,
        hi.num_milliseconds().max(lo.num_milliseconds()) as f64,
    );
    Duration::milliseconds(r.range(lo, hi + 1.0) as i64)
}

const DAY: f64 = 86_400.0;

fn plan(spec: &SeedSpec, item: u64) -> Plan {
    let mut r = Rng::for_item(spec.seed, item);
    let now = spec.now;
    let open = r.chance(0.10);
    let category = r.weighted(&[
        (Category::Inquiry, 40),
        (Category::Fault, 22),
        (Category::Complaint, 13),
        (Category::Suggestion, 5),
        (Category::Other, 20),
    ]);
    let priority = r.weighted(&[(Priority::Urgent, 5), (Priority::Normal, 75), (Priority::Low, 20)]);
    let customers = (spec.tickets as u64 / 3).max(1_000);
    // Some customers write often: a quarter of the tickets come from a tenth of the customers.
    let customer = if r.chance(0.25) {
        r.below(customers / 10)
    } else {
        r.below(customers)
    };
    let (_, fr, _) = sla(priority, category);
    let (state, received_at, target) = if open {
        let state = r.weighted(&[
            (State::Queued, 20),
            (State::Assigned, 20),
            (State::InProgress, 35),
            (State::Waiting, 25),
        ]);
        // Open tickets are mostly recent; a few have waited for weeks or months.
        let age = match r.weighted(&[(0u8, 50), (1, 30), (2, 15), (3, 5)]) {
            0 => r.range(60.0, DAY),
            1 => r.range(DAY, 7.0 * DAY),
            2 => r.range(7.0 * DAY, 30.0 * DAY),
            _ => r.range(30.0 * DAY, 365.0 * DAY),
        };
        let target = match r.weighted(&[(0u8, 12), (1, 10), (2, 78)]) {
            // Breached: mostly by minutes or hours, some by a day or two.
            0 => now - secs(60.0 + r.unit().powi(2) * 2.0 * DAY),
            1 => now + secs(r.range(60.0, 3_600.0)),
            _ => now + secs(3_660.0 + r.unit().powi(2) * 5.0 * DAY),
        };
        let mut received = now - secs(age);
        // A deadline is after the ticket arrived, with at least its first-response time.
        let room = if state.responded() {
            fr + Duration::minutes(10)
        } else {
            fr
        };
        received = received.min(target - room);
        (state, received, Some(target))
    } else {
        let received = now - secs(r.range(3_600.0, 365.0 * DAY));
        (State::Closed, received, None)
    };
    Plan {
        item,
        received_at,
        state,
        priority,
        category,
        customer,
        target,
        number: String::new(),
    }
}

/// All tickets' skeletons in time order, numbered per month as intake numbers them.
fn plans(spec: &SeedSpec) -> Vec<Plan> {
    let mut plans: Vec<Plan> = (0..spec.tickets as u64).map(|i| plan(spec, i)).collect();
    plans.sort_by_key(|p| (p.received_at, p.item));
    let mut seq: HashMap<String, i64> = HashMap::new();
    let prefix = &spec.policy.doc.ticket_number_prefix;
    for p in &mut plans {
        let period = switchboard::core::numbering::period(p.received_at, spec.policy.tz);
        let n = seq.entry(period.clone()).or_insert(0);
        *n += 1;
        p.number = switchboard::core::numbering::format_number(prefix, &period, *n);
    }
    plans
}

/// One row of the `COPY`.
struct Row {
    number: String,
    channel: &'static str,
    channel_message_id: String,
    customer: serde_json::Value,
    subject: Option<String>,
    body: String,
    language: &'static str,
    category: &'static str,
    confidence: f64,
    priority: &'static str,
    state: &'static str,
    team: String,
    assignee: Option<String>,
    sla_rule: &'static str,
    first_response_due: DateTime<Utc>,
    resolution_due: DateTime<Utc>,
    received_at: DateTime<Utc>,
    assigned_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i32,
    first_responded_at: Option<DateTime<Utc>>,
    last_update_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    rating: Option<i16>,
    search_terms: Vec<String>,
}

const COLUMNS: &str = "number, channel, channel_message_id, customer, subject, body, language, category, \
    category_confidence, priority, state, team, assignee, sla_rule, first_response_due, resolution_due, \
    received_at, assigned_at, created_at, updated_at, version, first_responded_at, last_update_at, \
    resolved_at, closed_at, rating, search_terms";

const TYPES: [Type; 27] = [
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::FLOAT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::INT4,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::INT2,
    Type::TEXT_ARRAY,
];

impl Row {
    fn values(&self) -> [&(dyn ToSql + Sync); 27] {
        [
            &self.number,
            &self.channel,
            &self.channel_message_id,
            &self.customer,
            &self.subject,
            &self.body,
            &self.language,
            &self.category,
            &self.confidence,
            &self.priority,
            &self.state,
            &self.team,
            &self.assignee,
            &self.sla_rule,
            &self.first_response_due,
            &self.resolution_due,
            &self.received_at,
            &self.assigned_at,
            &self.created_at,
            &self.updated_at,
            &self.version,
            &self.first_responded_at,
            &self.last_update_at,
            &self.resolved_at,
            &self.closed_at,
            &self.rating,
            &self.search_terms,
        ]
    }
}

/// The team `config/policy.toml`'s routing gives a ticket (if the policy has that team).
fn team(spec: &SeedSpec, r: &mut Rng, priority: Priority, category: Category) -> String {
    let teams = &spec.policy.doc.teams;
    let wanted = if r.chance(0.02) {
        "quality_management"
    } else if priority == Priority::Urgent {
        "green_channel"
    } else {
        match category {
            Category::Fault => "technical_support",
            Category::Complaint => "customer_relations",
            Category::Suggestion => "product_management",
            Category::Inquiry | Category::Other => "front_line",
        }
    };
    if teams.contains_key(wanted) {
        wanted.to_owned()
    } else {
        spec.policy.doc.routing.default_team.clone()
    }
}

fn row(spec: &SeedSpec, p: &Plan) -> Row {
    let mut r = Rng::for_item(spec.seed ^ 0x5EED_0001, p.item);
    let now = spec.now;
    let zh = !p.customer.is_multiple_of(4);
    let channel = r.weighted(&[("phone", 30), ("chat", 30), ("email", 20), ("app", 20)]);
    let text = corpus::text(&mut r, p.category, zh);
    let k = p.customer;
    let customer = Customer {
        name: Some(corpus::customer_name(k, zh)),
        phone: Some(corpus::customer_phone(k)),
        email: (k % 10 < 3).then(|| format!("customer{k}@example.com")),
        customer_id: k.is_multiple_of(5).then(|| format!("C{k:08}")),
        tier: None,
    };
    let mut search_terms = switchboard::core::search::document_terms(text.subject.as_deref(), &text.body);
    search_terms.extend(switchboard::core::search::identity_terms(&customer, channel));
    let team = team(spec, &mut r, p.priority, p.category);
    let (sla_rule, fr, res) = sla(p.priority, p.category);
    let received = p.received_at;
    let assignee = match p.state {
        State::Queued => None,
        _ => spec
            .agents
            .get(&team)
            .filter(|a| !a.is_empty())
            .map(|a| r.pick(a).clone()),
    };
    // Nothing happened after now: events are capped a moment before it.
    let cap = |t: DateTime<Utc>, floor: DateTime<Utc>| t.min(now - Duration::seconds(1)).max(floor);
    let assigned_at = assignee.as_ref().map(|_| {
        cap(
            received + between(&mut r, Duration::seconds(5), fr.min(Duration::minutes(10))),
            received,
        )
    });
    let start = assigned_at.unwrap_or(received);
    let mut first_response_due = received + fr;
    let mut resolution_due = received + res;
    let mut first_responded_at = None;
    let mut last_update_at = None;
    let mut resolved_at = None;
    let mut closed_at = None;
    let mut rating = None;
    let mut state = p.state;
    if let Some(target) = p.target {
        if state.responded() {
            resolution_due = target;
            let at = cap(start + between(&mut r, Duration::minutes(1), fr), start);
            first_responded_at = Some(at);
            last_update_at = Some(cap(at + between(&mut r, Duration::zero(), Duration::hours(6)), at));
        } else {
            first_response_due = target;
            resolution_due = resolution_due.max(target + (res - fr));
        }
    } else {
        // Resolved: first response mostly on time, resolution mostly within its target.
        let late = r.chance(0.15);
        let response = if late {
            between(&mut r, fr, fr * 3)
        } else {
            between(&mut r, Duration::seconds(30), fr)
        };
        let responded = cap(start + response, start);
        let took = between(&mut r, Duration::minutes(5), res + res / 5);
        let resolved = cap(responded + took, responded);
        first_responded_at = Some(responded);
        last_update_at = Some(resolved);
        resolved_at = Some(resolved);
        // Resolved tickets close on the customer's rating or after three days without one.
        let rated = r.chance(0.4);
        let closes = resolved
            + if rated {
                between(&mut r, Duration::minutes(1), Duration::hours(48))
            } else {
                Duration::days(3)
            };
        if closes < now {
            closed_at = Some(closes);
            rating = rated.then(|| r.weighted(&[(5i16, 60), (4, 20), (3, 10), (2, 5), (1, 5)]));
        } else {
            state = State::Resolved;
        }
    }
    let updated_at = [assigned_at, first_responded_at, last_update_at, resolved_at, closed_at]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(received);
    Row {
        number: p.number.clone(),
        channel,
        channel_message_id: format!("bench-{:09}", p.item),
        customer: serde_json::to_value(&customer).unwrap_or_default(),
        subject: text.subject,
        body: text.body,
        language: if zh { "zh" } else { "en" },
        category: p.category.as_str(),
        confidence: r.range(0.55, 0.99),
        priority: p.priority.as_str(),
        state: state.as_str(),
        team,
        assignee,
        sla_rule,
        first_response_due,
        resolution_due,
        received_at: received,
        assigned_at,
        created_at: received + Duration::milliseconds(150),
        updated_at,
        version: 1,
        first_responded_at,
        last_update_at,
        resolved_at,
        closed_at,
        rating,
        search_terms,
    }
}

/// The indexes on `tickets` that no constraint needs: dropped while seeding and built again
/// afterwards from their own definitions (much faster than keeping them up to date row by row,
/// and it leaves them as compact as after a `REINDEX`).
async fn secondary_indexes(db: &Db) -> Result<Vec<(String, String)>> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            "SELECT i.relname::text, pg_get_indexdef(i.oid)
             FROM pg_index x
             JOIN pg_class i ON i.oid = x.indexrelid
             WHERE x.indrelid = 'tickets'::regclass
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)
             ORDER BY i.relname",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// How the seeding went.
pub struct Seeded {
    pub tickets: usize,
    pub open: usize,
    pub copy_seconds: f64,
    pub index_seconds: f64,
    pub analyze_seconds: f64,
}

/// `1234567` as `1,234,567`.
pub fn fmt_count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seeds `spec.tickets` tickets into the (empty, migrated) schema of `db`, then builds the
/// indexes and runs `VACUUM (ANALYZE)`. Progress goes to stderr.
pub async fn seed(db: &Db, spec: SeedSpec) -> Result<Seeded> {
    let started = Instant::now();
    eprintln!("planning {} tickets (seed {})…", fmt_count(spec.tickets), spec.seed);
    let planning = {
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || plans(&spec))
    };
    let plans = Arc::new(planning.await.context("planning the tickets")?);
    let open = plans.iter().filter(|p| p.state.open()).count();

    let indexes = secondary_indexes(db).await.context("listing the tickets indexes")?;
    {
        let client = db.pool.get().await?;
        for (name, _) in &indexes {
            client
                .batch_execute(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))
                .await
                .with_context(|| format!("dropping index {name} for the load"))?;
        }
    }
    eprintln!(
        "writing with COPY in batches of {} (the {} secondary indexes are built afterwards)…",
        fmt_count(spec.batch),
        indexes.len()
    );

    let copy_started = Instant::now();
    let batch = spec.batch.max(1);
    let batches = plans.len().div_ceil(batch);
    let generate = |b: usize| {
        let (spec, plans) = (spec.clone(), plans.clone());
        tokio::task::spawn_blocking(move || {
            let end = ((b + 1) * batch).min(plans.len());
            plans[b * batch..end]
                .iter()
                .map(|p| row(&spec, p))
                .collect::<Vec<Row>>()
        })
    };
    let client = db.pool.get().await?;
    // Generate the next batch while this one is written: the two cores each have work.
    let mut next = (batches > 0).then(|| generate(0));
    let mut written = 0usize;
    for b in 0..batches {
        let rows = match next.take() {
            Some(h) => h.await.context("generating a batch")?,
            None => break,
        };
        if b + 1 < batches {
            next = Some(generate(b + 1));
        }
        let sink = client
            .copy_in(&format!("COPY tickets ({COLUMNS}) FROM STDIN (FORMAT binary)"))
            .await
            .context("starting COPY")?;
        let writer = BinaryCopyInWriter::new(sink, &TYPES);
        futures::pin_mut!(writer);
        for row in &rows {
            writer.as_mut().write(&row.values()).await.context("COPY row")?;
        }
        writer.finish().await.context("finishing COPY")?;
        written += rows.len();
        let secs = copy_started.elapsed().as_secs_f64();
        eprint!(
            "\rseeding: {} / {} tickets, {:.0}/s, {:.0} s   ",
            fmt_count(written),
            fmt_count(plans.len()),
            written as f64 / secs.max(1e-9),
            secs
        );
    }
    eprintln!();
    let copy_seconds = copy_started.elapsed().as_secs_f64();

    let index_started = Instant::now();
    client
        .batch_execute("SET maintenance_work_mem = '1GB'")
        .await
        .context("SET maintenance_work_mem")?;
    for (name, def) in &indexes {
        let t = Instant::now();
        client
            .batch_execute(def)
            .await
            .with_context(|| format!("building index {name}: {def}"))?;
        eprintln!("  index {name}: {:.1} s", t.elapsed().as_secs_f64());
    }
    client.batch_execute("RESET maintenance_work_mem").await?;
    let index_seconds = index_started.elapsed().as_secs_f64();

    let analyze_started = Instant::now();
    eprintln!("VACUUM (ANALYZE) tickets…");
    client
        .batch_execute("VACUUM (ANALYZE) tickets")
        .await
        .context("VACUUM (ANALYZE) tickets")?;
    let analyze_seconds = analyze_started.elapsed().as_secs_f64();
    eprintln!(
        "seeded {} tickets ({} open) in {:.0} s: COPY {:.0} s, indexes {:.0} s, VACUUM (ANALYZE) {:.0} s",
        fmt_count(plans.len()),
        fmt_count(open),
        started.elapsed().as_secs_f64(),
        copy_seconds,
        index_seconds,
        analyze_seconds
    );
    Ok(Seeded {
        tickets: plans.len(),
        open,
        copy_seconds,
        index_seconds,
        analyze_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: usize) -> SeedSpec {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/policy.toml");
        let policy = Arc::new(Policy::load(&root).expect("policy"));
        let mut agents = HashMap::new();
        for team in policy.doc.teams.keys() {
            agents.insert(team.clone(), vec![format!("{team}-a"), format!("{team}-b")]);
        }
        SeedSpec {
            tickets: n,
            seed: 1,
            batch: 1000,
            now: Utc::now(),
            policy,
            agents,
        }
    }

    #[test]
    fn the_mix_is_as_described_and_every_row_is_consistent() {
        let s = spec(20_000);
        let plans = plans(&s);
        let rows: Vec<Row> = plans.iter().map(|p| row(&s, p)).collect();
        let share = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count() as f64 / rows.len() as f64;
        let open = share(&|r| !matches!(r.state, "resolved" | "closed"));
        assert!((0.08..0.12).contains(&open), "open {open}");
        let urgent = share(&|r| r.priority == "urgent");
        assert!((0.04..0.06).contains(&urgent), "urgent {urgent}");
        let front = share(&|r| r.team == "front_line");
        assert!(front > 0.4, "front line {front}");
        let numbers: std::collections::HashSet<&str> = rows.iter().map(|r| r.number.as_str()).collect();
        assert_eq!(numbers.len(), rows.len(), "numbers are unique");
        let now = s.now;
        let mut breached = 0;
        let mut within_hour = 0;
        for (r, w) in rows.iter().zip(rows.iter().skip(1)) {
            assert!(r.received_at <= w.received_at, "time order");
        }
        for r in &rows {
            assert!(r.received_at <= now);
            assert_eq!(r.assignee.is_none(), r.state == "queued", "{}", r.state);
            match r.state {
                "resolved" | "closed" => {
                    assert!(r.resolved_at.is_some() && r.first_responded_at.is_some());
                    assert_eq!(r.closed_at.is_some(), r.state == "closed");
                    assert!(r.resolved_at.unwrap() <= now);
                }
                state => {
                    assert!(r.resolved_at.is_none() && r.closed_at.is_none());
                    assert_eq!(
                        r.first_responded_at.is_some(),
                        matches!(state, "in_progress" | "waiting_for_customer")
                    );
                    let next = if r.first_responded_at.is_none() {
                        r.first_response_due.min(r.resolution_due)
                    } else {
                        r.resolution_due
                    };
                    assert!(next > r.received_at);
                    if next <= now {
                        breached += 1;
                    } else if next <= now + Duration::hours(1) {
                        within_hour += 1;
                    }
                }
            }
            for t in [r.first_responded_at, r.resolved_at, r.closed_at, r.assigned_at]
                .into_iter()
                .flatten()
            {
                assert!(t >= r.received_at && t <= now, "{:?}", r.number);
            }
            if r.channel == "phone" {
                assert!(r.search_terms.iter().any(|t| t.starts_with("tel:")));
            }
        }
        let open_n = (open * rows.len() as f64) as usize;
        assert!(
            breached > open_n / 20 && breached < open_n / 5,
            "breached {breached} of {open_n}"
        );
        assert!(
            within_hour > open_n / 20 && within_hour < open_n / 5,
            "within the hour {within_hour} of {open_n}"
        );
        let refund = share(&|r| r.search_terms.iter().any(|t| t == "退款"));
        assert!((0.02..0.15).contains(&refund), "退款 in {refund}");
    }
}
