//! The review side of a report (seed 000 §(五) 问题复盘, seed 004 数据复盘): figures broken down by
//! category, priority, team and agent; the 复盘 list of the period's late, unresolved and
//! unsatisfied tickets with their reasons; unsatisfied reasons counted by the policy's taxonomy;
//! and the suggestions roll-up for product management. Pure functions over the report's rows
//! and the SLA clocks `Report::build` has already read.

use super::problems::top_problems;
use super::{Problems, Ratio, TicketRow, ratio, resolution_seconds};
use crate::core::sla::{ClockState, Target, TargetStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// Figures of one group of tickets (one category, priority, team or agent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    /// The id ("(none)" when the tickets have none).
    pub key: String,
    pub tickets: u64,
    /// Now resolved or closed.
    pub resolved: u64,
    /// Mean resolution time, waiting for the customer excluded, of the resolved tickets.
    pub mean_resolution_seconds: Option<f64>,
    /// First-response target met on time ÷ decided (on time, late or breached).
    pub first_response_on_time: Ratio,
    /// Resolution target met on time ÷ decided.
    pub resolution_on_time: Ratio,
    pub rated: u64,
    pub csat_mean: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdowns {
    pub by_category: Vec<Breakdown>,
    pub by_priority: Vec<Breakdown>,
    pub by_team: Vec<Breakdown>,
    /// By assignee ("(none)": never assigned).
    pub by_agent: Vec<Breakdown>,
}

pub const NONE: &str = "(none)";

fn state_of(clocks: &[TargetStatus], target: Target) -> Option<ClockState> {
    clocks.iter().find(|c| c.target == target).map(|c| c.state)
}

fn on_time_ratio<'a>(clocks: impl Iterator<Item = &'a Vec<TargetStatus>>, target: Target) -> Ratio {
    let (mut on_time, mut decided) = (0u64, 0u64);
    for c in clocks {
        match state_of(c, target) {
            Some(ClockState::Met) => {
                on_time += 1;
                decided += 1;
            }
            Some(ClockState::MetLate | ClockState::Breached) => decided += 1,
            _ => {}
        }
    }
    Ratio {
        count: on_time,
        of: decided,
        rate: ratio(on_time, decided),
    }
}

fn is_resolved(t: &TicketRow) -> bool {
    t.state == "resolved" || t.state == "closed"
}

/// The tickets grouped by `key`, most tickets first (then by key). `clocks[i]` are the clocks of
/// `tickets[i]`.
pub fn breakdown(
    tickets: &[TicketRow],
    clocks: &[Vec<TargetStatus>],
    key: impl Fn(&TicketRow) -> Option<String>,
) -> Vec<Breakdown> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, t) in tickets.iter().enumerate() {
        groups
            .entry(key(t).unwrap_or_else(|| NONE.to_owned()))
            .or_default()
            .push(i);
    }
    let mut out: Vec<Breakdown> = groups
        .into_iter()
        .map(|(key, idx)| {
            let rows: Vec<&TicketRow> = idx.iter().filter_map(|&i| tickets.get(i)).collect();
            let group_clocks: Vec<&Vec<TargetStatus>> = idx.iter().filter_map(|&i| clocks.get(i)).collect();
            let resolution: Vec<i64> = rows
                .iter()
                .filter_map(|t| t.resolved_at.map(|r| resolution_seconds(t.received_at, r, &t.pauses)))
                .collect();
            let ratings: Vec<i16> = rows.iter().filter_map(|t| t.rating).collect();
            Breakdown {
                key,
                tickets: rows.len() as u64,
                resolved: rows.iter().filter(|t| is_resolved(t)).count() as u64,
                mean_resolution_seconds: mean(&resolution),
                first_response_on_time: on_time_ratio(group_clocks.iter().copied(), Target::FirstResponse),
                resolution_on_time: on_time_ratio(group_clocks.iter().copied(), Target::Resolution),
                rated: ratings.len() as u64,
                csat_mean: mean(&ratings.iter().map(|&r| i64::from(r)).collect::<Vec<_>>()),
            }
        })
        .collect();
    out.sort_by(|a, b| b.tickets.cmp(&a.tickets).then_with(|| a.key.cmp(&b.key)));
    out
}

fn mean(v: &[i64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<i64>() as f64 / v.len() as f64)
}

pub fn breakdowns(tickets: &[TicketRow], clocks: &[Vec<TargetStatus>]) -> Breakdowns {
    Breakdowns {
        by_category: breakdown(tickets, clocks, |t| t.category.clone()),
        by_priority: breakdown(tickets, clocks, |t| t.priority.clone()),
        by_team: breakdown(tickets, clocks, |t| t.team.clone()),
        by_agent: breakdown(tickets, clocks, |t| t.assignee.clone()),
    }
}

/// Why a ticket is on the review list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReviewReason {
    /// A target met after its due time, or due and still not met (`met_at` absent).
    Late {
        target: String,
        due: DateTime<Utc>,
        met_at: Option<DateTime<Utc>>,
        /// Met (or, when not met, the report's time) minus due.
        late_seconds: i64,
    },
    /// Neither resolved nor closed when the report was made.
    Unresolved { state: String, open_seconds: i64 },
    /// Rated at or below the policy's threshold, with the reason code the rating carried.
    Unsatisfied { rating: i16, reason: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewItem {
    pub id: i64,
    pub number: String,
    pub category: Option<String>,
    pub priority: Option<String>,
    pub team: Option<String>,
    pub assignee: Option<String>,
    pub reasons: Vec<ReviewReason>,
}

/// The 复盘 list: every ticket of the period that was late on a target, is unresolved, or whose
/// rating is at or below `unsatisfied_at_or_below`, in ticket order.
pub fn review_list(
    tickets: &[TicketRow],
    clocks: &[Vec<TargetStatus>],
    unsatisfied_at_or_below: u8,
    now: DateTime<Utc>,
) -> Vec<ReviewItem> {
    let mut out = Vec::new();
    for (i, t) in tickets.iter().enumerate() {
        let mut reasons = Vec::new();
        for c in clocks.get(i).map(Vec::as_slice).unwrap_or_default() {
            let Some(due) = c.due else { continue };
            let met_at = match c.state {
                ClockState::MetLate => c.met_at,
                ClockState::Breached => None,
                _ => continue,
            };
            reasons.push(ReviewReason::Late {
                target: c.target.as_str().to_owned(),
                due,
                met_at,
                late_seconds: (met_at.unwrap_or(now) - due).num_seconds().max(0),
            });
        }
        if !is_resolved(t) {
            reasons.push(ReviewReason::Unresolved {
                state: t.state.clone(),
                open_seconds: (now - t.received_at).num_seconds().max(0),
            });
        }
        if let Some(r) = t.rating.filter(|&r| r <= i16::from(unsatisfied_at_or_below)) {
            reasons.push(ReviewReason::Unsatisfied {
                rating: r,
                reason: t.rating_reason.clone(),
            });
        }
        if !reasons.is_empty() {
            out.push(ReviewItem {
                id: t.id,
                number: t.number.clone(),
                category: t.category.clone(),
                priority: t.priority.clone(),
                team: t.team.clone(),
                assignee: t.assignee.clone(),
                reasons,
            });
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonCount {
    /// A code of `[lifecycle] unsatisfied_reasons`, or "(none)" for ratings without one.
    pub reason: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unsatisfied {
    /// Ratings at or below this count as unsatisfied (the policy's reopen threshold).
    pub at_or_below: u8,
    pub tickets: u64,
    /// Every declared reason (sorted by code, zeros included), then "(none)"; a code no
    /// longer declared (the policy changed) is counted under its own name after them.
    pub reasons: Vec<ReasonCount>,
}

/// Unsatisfied ratings counted by reason.
pub fn unsatisfied_reasons(tickets: &[TicketRow], at_or_below: u8, declared: &[String]) -> Unsatisfied {
    let mut counts: Vec<ReasonCount> = declared
        .iter()
        .map(|r| ReasonCount {
            reason: r.clone(),
            count: 0,
        })
        .collect();
    let mut none = 0u64;
    let mut total = 0u64;
    for t in tickets
        .iter()
        .filter(|t| t.rating.is_some_and(|r| r <= i16::from(at_or_below)))
    {
        total += 1;
        match &t.rating_reason {
            None => none += 1,
            Some(code) => match counts.iter_mut().find(|c| &c.reason == code) {
                Some(c) => c.count += 1,
                None => counts.push(ReasonCount {
                    reason: code.clone(),
                    count: 1,
                }),
            },
        }
    }
    counts.push(ReasonCount {
        reason: NONE.into(),
        count: none,
    });
    Unsatisfied {
        at_or_below,
        tickets: total,
        reasons: counts,
    }
}

/// The suggestions roll-up for product management.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestions {
    pub category: String,
    pub tickets: u64,
    pub resolved: u64,
    /// Grouped by the classifier rule (the problem), every group, with the lexicon phrases that
    /// matched (no customer's own words).
    pub by_problem: Problems,
}

pub fn suggestions(tickets: &[TicketRow], category: &str) -> Suggestions {
    let mine: Vec<TicketRow> = tickets
        .iter()
        .filter(|t| t.category.as_deref() == Some(category))
        .cloned()
        .collect();
    Suggestions {
        category: category.to_owned(),
        tickets: mine.len() as u64,
        resolved: mine.iter().filter(|t| is_resolved(t)).count() as u64,
        by_problem: top_problems(&mine, usize::MAX),
    }
}
