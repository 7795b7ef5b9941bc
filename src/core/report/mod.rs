//! Weekly and monthly service reports (SPEC §7, 服务总结): the figures, computed from plain rows.
//!
//! Everything here is pure. `store::reports` loads the rows (tickets received in the period,
//! their pauses, classifier reasons and escalations from the transition log, and the complaints
//! of the 30 days before), [`Report::build`] turns them into figures, and [`render`] prints them
//! as a table, CSV, JSON or one self-contained HTML page.
//!
//! What the figures mean:
//! - **Population**: customer requests (not the tasks of group tickets, channel `task`) *received* in the period, each as it stands when the report is made
//!   (a ticket received on Sunday and resolved on Monday counts as resolved in Sunday's week).
//! - **Response and resolution times**: first response − received; (last) resolution − received,
//!   minus the time spent waiting for the customer (`ticket_pauses`). Wall-clock time, not
//!   business hours. Mean, and p50/p90 by the nearest-rank method (the smallest value with at
//!   least p% of the values at or below it).
//! - **On-time rate** per SLA target: `SlaPolicy::clocks`, the same function the scheduler and
//!   the API use, decides each ticket's target: met on time, met late, breached (due and still
//!   not met), or undecided (running, paused, not applicable). Rate = on time ÷ (on time + late
//!   + breached); undecided tickets are counted but not rated.
//! - **Escalations** per target: tickets whose target was recorded as breached (`escalations`),
//!   the escalation steps sent (the escalate stage's transitions), and how many were
//!   acknowledged.
//! - **Resolution rate**: tickets now resolved or closed ÷ tickets received.
//! - **CSAT**: the customers' ratings 1–5 of the period's tickets.
//! - **Repeat complaints**: complaints in the period from a customer who had already complained
//!   in the 30 days before (customer id, else phone, else email, as intake matches customers),
//!   ÷ complaints in the period.
//! - **Most frequent problems**: the classifier rules (named lexicon groups such as "payment or
//!   order fails") that matched the winning category of each ticket, counted once per ticket,
//!   with the phrases that matched most. Rule names come from the policy and phrases are
//!   lexicon terms, so no customer's words are quoted.

pub mod daily;
pub mod labels;
pub mod period;
pub mod problems;
pub mod render;
pub mod review;

pub use period::{Period, PeriodError, PeriodSpec, parse_quarter};

use crate::core::calendar::Calendars;
use crate::core::customer::Customer;
use crate::core::sla::{ClockState, SlaFacts, SlaPolicy, Target};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// How far back a complaint makes the next one a repeat.
pub const REPEAT_WINDOW_DAYS: i64 = 30;
/// How many problems the report lists.
pub const TOP_PROBLEMS: usize = 10;

/// One ticket received in the period, with what the transition log says about it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TicketRow {
    pub id: i64,
    /// The ticket number people know it by.
    pub number: String,
    pub assignee: Option<String>,
    pub channel: String,
    pub category: Option<String>,
    pub priority: Option<String>,
    pub team: Option<String>,
    pub state: String,
    pub received_at: DateTime<Utc>,
    pub first_responded_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub last_update_at: Option<DateTime<Utc>>,
    pub restarted_at: Option<DateTime<Utc>>,
    pub rating: Option<i16>,
    /// The unsatisfied-reason code of the latest rating (its `rated` transition), if it had one.
    pub rating_reason: Option<String>,
    /// Waiting-for-customer intervals; the last may still be open.
    pub pauses: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// `details.reasons` of the ticket's `classified` transition (empty when not classified, or
    /// when that month of the log has been dropped by retention).
    pub classifier_reasons: Vec<String>,
    /// Targets recorded as breached (`escalations`), with whether the escalation was acknowledged.
    pub breaches: Vec<(String, bool)>,
    /// Target of each escalation step sent (the escalate stage's transitions).
    pub escalation_steps: Vec<String>,
    /// When each milestone was met (`tickets.milestones`).
    pub milestones: BTreeMap<Target, DateTime<Utc>>,
}

/// A complaint for the repeat-complaint rate: those of the period and of the 30 days before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplaintRow {
    pub ticket_id: i64,
    /// From [`customer_key`]; never printed.
    pub customer_key: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// Everything a report is computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportInput {
    pub period: Period,
    /// When the report is made: the instant every SLA clock is read at.
    pub generated_at: DateTime<Utc>,
    pub policy_version: String,
    pub tickets: Vec<TicketRow>,
    pub complaints: Vec<ComplaintRow>,
    /// A rating at or below this is unsatisfied (the policy's `reopen_rating_at_or_below`).
    pub unsatisfied_at_or_below: u8,
    /// The codes of `[lifecycle] unsatisfied_reasons` (sorted).
    pub unsatisfied_reasons: Vec<String>,
    /// `[reports] suggestions_category`.
    pub suggestions_category: String,
}

/// Who a customer is, for telling repeat complaints apart: the customer id, else the phone
/// number's digits, else the lower-cased email. The same keys intake matches customers by
/// (`core::customer::match_keys`), most reliable first.
pub fn customer_key(c: &Customer) -> Option<String> {
    crate::core::customer::match_keys(c).into_iter().next()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Count {
    pub key: String,
    pub count: u64,
    /// Share of the tickets received, 0..1.
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurationStats {
    /// Tickets with a value.
    pub count: u64,
    pub mean_seconds: Option<f64>,
    pub p50_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OnTime {
    pub target: String,
    pub on_time: u64,
    /// Met, but after the due time.
    pub late: u64,
    /// Due and still not met.
    pub breached: u64,
    /// Running, paused or not applicable: not rated yet.
    pub undecided: u64,
    /// on_time ÷ (on_time + late + breached).
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Escalations {
    pub target: String,
    /// Tickets whose target was recorded as breached.
    pub tickets: u64,
    /// Escalation steps (notifications and reminders) sent.
    pub steps: u64,
    pub acknowledged: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratio {
    pub count: u64,
    pub of: u64,
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Csat {
    pub rated: u64,
    pub mean: Option<f64>,
    /// Ratings 1, 2, 3, 4, 5.
    pub distribution: [u64; 5],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepeatComplaints {
    pub complaints: u64,
    pub repeats: u64,
    pub rate: Option<f64>,
    /// Complaints with no customer id, phone or email (they can never count as repeats).
    pub unidentified: u64,
    pub window_days: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub category: String,
    /// The classifier rule's name from the policy.
    pub rule: String,
    pub tickets: u64,
    /// Lexicon terms that matched (not patterns), most frequent first (at most three), with their
    /// ticket counts.
    pub phrases: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problems {
    pub top: Vec<Problem>,
    /// Classified tickets whose category no rule spoke for (fallback or question cues only).
    pub no_rule: u64,
    /// Tickets without a classification in the log.
    pub unclassified: u64,
}

/// The report: every figure, ready to render.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub period: Period,
    /// Which tickets the figures are about.
    pub population: &'static str,
    pub generated_at: DateTime<Utc>,
    pub policy_version: String,
    pub received: u64,
    pub by_category: Vec<Count>,
    pub by_channel: Vec<Count>,
    pub by_priority: Vec<Count>,
    pub by_team: Vec<Count>,
    pub first_response: DurationStats,
    /// Waiting-for-customer time excluded.
    pub resolution: DurationStats,
    pub on_time: Vec<OnTime>,
    pub escalations: Vec<Escalations>,
    pub resolution_rate: Ratio,
    pub csat: Csat,
    pub repeat_complaints: RepeatComplaints,
    pub problems: Problems,
    /// Tickets, handling time, on-time rates and CSAT by category, priority, team and agent.
    pub breakdowns: review::Breakdowns,
    /// The 复盘 list: late, unresolved and unsatisfied tickets with their reasons.
    pub review: Vec<review::ReviewItem>,
    pub unsatisfied: review::Unsatisfied,
    /// The suggestions roll-up for product management.
    pub suggestions: review::Suggestions,
}

pub const POPULATION: &str = "tickets received in the period, as they stand when the report is made";

impl Report {
    /// Computes every figure. `sla` and `calendar` are the policy's, so on-time verdicts are the
    /// ones the service itself reaches.
    pub fn build(input: &ReportInput, sla: &SlaPolicy, calendar: &Calendars) -> Report {
        let tickets = &input.tickets;
        let received = tickets.len() as u64;
        let none = || "(none)".to_owned();

        let first_response: Vec<i64> = tickets
            .iter()
            .filter_map(|t| t.first_responded_at.map(|r| seconds(r - t.received_at)))
            .collect();
        let resolution: Vec<i64> = tickets
            .iter()
            .filter_map(|t| t.resolved_at.map(|r| resolution_seconds(t.received_at, r, &t.pauses)))
            .collect();

        let mut on_time = Vec::new();
        let clocks: Vec<_> = tickets
            .iter()
            .map(|t| {
                let facts = SlaFacts {
                    received_at: t.received_at,
                    category: t.category.clone().unwrap_or_default(),
                    priority: t.priority.clone().unwrap_or_default(),
                    channel: t.channel.clone(),
                    first_responded_at: t.first_responded_at,
                    resolved_at: t.resolved_at,
                    last_update_at: t.last_update_at,
                    pauses: t.pauses.clone(),
                    closed: t.closed_at.is_some(),
                    overrides: Default::default(),
                    restarted_at: t.restarted_at,
                    milestones_met: t.milestones.clone(),
                };
                sla.clocks(calendar, &facts, input.generated_at)
            })
            .collect();
        // Milestones count where some ticket of the period has one.
        let targets = [Target::FirstResponse, Target::Resolution].into_iter().chain(
            crate::core::sla::milestones::KINDS
                .into_iter()
                .filter(|m| clocks.iter().flatten().any(|c| c.target == *m)),
        );
        for target in targets {
            let mut o = OnTime {
                target: target.as_str().to_owned(),
                on_time: 0,
                late: 0,
                breached: 0,
                undecided: 0,
                rate: None,
            };
            for c in &clocks {
                match c.iter().find(|s| s.target == target).map(|s| s.state) {
                    Some(ClockState::Met) => o.on_time += 1,
                    Some(ClockState::MetLate) => o.late += 1,
                    Some(ClockState::Breached) => o.breached += 1,
                    _ => o.undecided += 1,
                }
            }
            o.rate = ratio(o.on_time, o.on_time + o.late + o.breached);
            on_time.push(o);
        }

        let mut esc: BTreeMap<String, Escalations> = BTreeMap::new();
        for t in tickets {
            for (target, acknowledged) in &t.breaches {
                let e = escalation_entry(&mut esc, target);
                e.tickets += 1;
                e.acknowledged += u64::from(*acknowledged);
            }
            for target in &t.escalation_steps {
                escalation_entry(&mut esc, target).steps += 1;
            }
        }
        let mut escalations: Vec<Escalations> = esc.into_values().collect();
        escalations.sort_by_key(|e| (Target::parse(&e.target), e.target.clone()));

        let resolved = tickets
            .iter()
            .filter(|t| t.state == "resolved" || t.state == "closed")
            .count() as u64;

        let mut distribution = [0u64; 5];
        for r in tickets.iter().filter_map(|t| t.rating) {
            if let Some(slot) = usize::try_from(r - 1).ok().and_then(|i| distribution.get_mut(i)) {
                *slot += 1;
            }
        }
        let rated: u64 = distribution.iter().sum();
        let weighted: u64 = distribution.iter().zip(1u64..).map(|(n, score)| n * score).sum();

        Report {
            period: input.period.clone(),
            population: POPULATION,
            generated_at: input.generated_at,
            policy_version: input.policy_version.clone(),
            received,
            by_category: counts(
                tickets.iter().map(|t| t.category.clone().unwrap_or_else(none)),
                received,
            ),
            by_channel: counts(tickets.iter().map(|t| t.channel.clone()), received),
            by_priority: counts(
                tickets.iter().map(|t| t.priority.clone().unwrap_or_else(none)),
                received,
            ),
            by_team: counts(tickets.iter().map(|t| t.team.clone().unwrap_or_else(none)), received),
            first_response: stats(first_response),
            resolution: stats(resolution),
            on_time,
            escalations,
            resolution_rate: Ratio {
                count: resolved,
                of: received,
                rate: ratio(resolved, received),
            },
            csat: Csat {
                rated,
                mean: (rated > 0).then(|| weighted as f64 / rated as f64),
                distribution,
            },
            repeat_complaints: repeat_complaints(&input.complaints, &input.period),
            problems: problems::top_problems(tickets, TOP_PROBLEMS),
            breakdowns: review::breakdowns(tickets, &clocks),
            review: review::review_list(tickets, &clocks, input.unsatisfied_at_or_below, input.generated_at),
            unsatisfied: review::unsatisfied_reasons(
                tickets,
                input.unsatisfied_at_or_below,
                &input.unsatisfied_reasons,
            ),
            suggestions: review::suggestions(tickets, &input.suggestions_category),
        }
    }
}

fn escalation_entry<'a>(m: &'a mut BTreeMap<String, Escalations>, target: &str) -> &'a mut Escalations {
    m.entry(target.to_owned()).or_insert_with(|| Escalations {
        target: target.to_owned(),
        tickets: 0,
        steps: 0,
        acknowledged: 0,
    })
}

fn seconds(d: Duration) -> i64 {
    d.num_seconds().max(0)
}

fn ratio(count: u64, of: u64) -> Option<f64> {
    (of > 0).then(|| count as f64 / of as f64)
}

/// Counts by key, most frequent first (ties by key), with each key's share of `total`.
pub fn counts(keys: impl Iterator<Item = String>, total: u64) -> Vec<Count> {
    let mut m: HashMap<String, u64> = HashMap::new();
    for k in keys {
        *m.entry(k).or_default() += 1;
    }
    let mut v: Vec<Count> = m
        .into_iter()
        .map(|(key, count)| Count {
            key,
            count,
            share: ratio(count, total).unwrap_or(0.0),
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    v
}

/// Mean and nearest-rank p50/p90 of durations in seconds.
pub fn stats(mut values: Vec<i64>) -> DurationStats {
    values.sort_unstable();
    let n = values.len();
    let mean = (n > 0).then(|| values.iter().map(|&v| v as f64).sum::<f64>() / n as f64);
    DurationStats {
        count: n as u64,
        mean_seconds: mean,
        p50_seconds: percentile(&values, 50),
        p90_seconds: percentile(&values, 90),
    }
}

/// Nearest rank: the value at position ⌈p/100 · n⌉ (1-based) of the sorted values.
pub fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted.get(rank - 1).copied()
}

/// Seconds from `start` to `end` outside the waiting-for-customer intervals (an open interval
/// runs to `end`; overlapping intervals count once).
pub fn resolution_seconds(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    pauses: &[(DateTime<Utc>, Option<DateTime<Utc>>)],
) -> i64 {
    if end <= start {
        return 0;
    }
    let mut clipped: Vec<(DateTime<Utc>, DateTime<Utc>)> = pauses
        .iter()
        .map(|&(from, until)| (from.max(start), until.unwrap_or(end).min(end)))
        .filter(|(from, until)| from < until)
        .collect();
    clipped.sort();
    let mut paused = Duration::zero();
    let mut cursor = start;
    for (from, until) in clipped {
        let from = from.max(cursor);
        if until > from {
            paused += until - from;
            cursor = until;
        }
    }
    seconds(end - start - paused)
}

/// Complaints of the period whose customer complained within the 30 days before.
pub fn repeat_complaints(complaints: &[ComplaintRow], period: &Period) -> RepeatComplaints {
    let window = Duration::days(REPEAT_WINDOW_DAYS);
    let mut by_customer: HashMap<&str, Vec<(DateTime<Utc>, i64)>> = HashMap::new();
    for c in complaints {
        if let Some(k) = &c.customer_key {
            by_customer
                .entry(k.as_str())
                .or_default()
                .push((c.received_at, c.ticket_id));
        }
    }
    for v in by_customer.values_mut() {
        v.sort();
    }
    let (mut total, mut repeats, mut unidentified) = (0u64, 0u64, 0u64);
    for c in complaints.iter().filter(|c| period.contains(c.received_at)) {
        total += 1;
        let Some(k) = &c.customer_key else {
            unidentified += 1;
            continue;
        };
        let me = (c.received_at, c.ticket_id);
        let earlier = by_customer
            .get(k.as_str())
            .is_some_and(|v| v.iter().any(|&(at, id)| (at, id) < me && at >= c.received_at - window));
        repeats += u64::from(earlier);
    }
    RepeatComplaints {
        complaints: total,
        repeats,
        rate: ratio(repeats, total),
        unidentified,
        window_days: REPEAT_WINDOW_DAYS,
    }
}

#[cfg(test)]
mod tests;
