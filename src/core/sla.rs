//! SLA targets (SPEC §5): which rule applies to a ticket and when each target falls due.

pub mod milestones;

use crate::core::calendar::{Calendars, Clock, SlaDuration};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One row of the SLA table. Of the rules whose conditions (category, priority, channel) all
/// hold, the one with the most conditions applies; [`SlaPolicy::validate_rules`] refuses two
/// rules that could both apply with as many conditions, so the order in the file is irrelevant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaRule {
    pub name: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    /// Intake channel (`email`, `chat`, ...).
    #[serde(default)]
    pub channel: Option<String>,
    pub first_response: SlaDuration,
    #[serde(default = "wall")]
    pub first_response_clock: Clock,
    pub resolution: SlaDuration,
    #[serde(default = "wall")]
    pub resolution_clock: Clock,
    /// Escalation ladder to start when a target of this rule is missed.
    #[serde(default)]
    pub escalation: Option<String>,
    /// Targets between first response and resolution (`core::sla::milestones`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub milestones: Vec<milestones::Milestone>,
}

fn wall() -> Clock {
    Clock::Wall
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    /// Name of the calendar (in `[calendars]`) the business clock uses.
    #[serde(default = "default_calendar")]
    pub calendar: String,
    /// While a ticket stays open beyond this, the customer is updated at least this often.
    #[serde(default = "default_update_interval")]
    pub next_update: SlaDuration,
    pub rules: Vec<SlaRule>,
}

fn default_calendar() -> String {
    "default".into()
}

fn default_update_interval() -> SlaDuration {
    SlaDuration::from_secs(24 * 3600).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaDue {
    pub rule: String,
    pub first_response_due: DateTime<Utc>,
    pub resolution_due: DateTime<Utc>,
}

impl SlaRule {
    fn conditions(&self) -> [Option<&str>; 3] {
        [
            self.category.as_deref(),
            self.priority.as_deref(),
            self.channel.as_deref(),
        ]
    }

    /// How many conditions the rule has: the more, the more specific.
    pub fn specificity(&self) -> usize {
        self.conditions().iter().flatten().count()
    }

    pub fn matches(&self, category: &str, priority: &str, channel: &str) -> bool {
        self.conditions()
            .iter()
            .zip([category, priority, channel])
            .all(|(cond, value)| cond.is_none_or(|c| c == value))
    }

    /// The conditions of the tickets both rules match, `None` if they match none in common.
    fn overlap(&self, other: &SlaRule) -> Option<[Option<String>; 3]> {
        let mut both: [Option<String>; 3] = Default::default();
        for (i, (a, b)) in self.conditions().into_iter().zip(other.conditions()).enumerate() {
            both[i] = match (a, b) {
                (Some(a), Some(b)) if a != b => return None,
                (Some(a), _) | (None, Some(a)) => Some(a.to_owned()),
                (None, None) => None,
            };
        }
        Some(both)
    }
}

/// "category = \"complaint\", channel = \"email\"": conditions as written in the policy.
fn describe(conditions: &[Option<String>; 3]) -> String {
    let parts: Vec<String> = ["category", "priority", "channel"]
        .iter()
        .zip(conditions)
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} = {v:?}")))
        .collect();
    if parts.is_empty() {
        "every ticket".into()
    } else {
        parts.join(", ")
    }
}

impl SlaPolicy {
    /// The rule for a ticket: of those whose conditions hold, the one with the most conditions
    /// (validation makes it unique; should two tie anyway, the first in the file wins).
    pub fn rule_for(&self, category: &str, priority: &str, channel: &str) -> Option<&SlaRule> {
        let mut best: Option<&SlaRule> = None;
        for rule in self.rules.iter().filter(|r| r.matches(category, priority, channel)) {
            if best.is_none_or(|b| rule.specificity() > b.specificity()) {
                best = Some(rule);
            }
        }
        best
    }

    /// Refuses a table in which the most specific rule is not unique: two rules with as many
    /// conditions that can match the same ticket, unless a more specific rule covers every
    /// such ticket; and a rule that can never apply because every ticket it matches is taken
    /// by more specific rules naming each of its values (found among the known `values` of
    /// category, priority and channel). Errors name both rules and what to add.
    pub fn validate_rules(&self, values: [&[String]; 3]) -> Result<(), String> {
        for (i, a) in self.rules.iter().enumerate() {
            for b in &self.rules[i + 1..] {
                if a.specificity() != b.specificity() {
                    continue;
                }
                let Some(both) = a.overlap(b) else { continue };
                let covered = self.rules.iter().any(|c| {
                    c.specificity() > a.specificity()
                        && c.conditions()
                            .iter()
                            .zip(&both)
                            .all(|(cond, need)| cond.is_none_or(|c| need.as_deref() == Some(c)))
                });
                if !covered {
                    return Err(format!(
                        "SLA rules {:?} and {:?} both match tickets with {} and have {} condition(s) each, so neither wins; \
                         add a rule for {} (the more specific rule wins), or give one of them a condition the other excludes",
                        a.name,
                        b.name,
                        describe(&both),
                        a.specificity(),
                        describe(&both)
                    ));
                }
            }
        }
        // Unreachable: every combination of known values the rule matches goes to another rule.
        for rule in &self.rules {
            let options = |i: usize| -> Vec<&str> {
                match rule.conditions()[i] {
                    Some(v) => vec![v],
                    None => values[i].iter().map(String::as_str).collect(),
                }
            };
            let mut reachable = false;
            let mut winner: Option<&str> = None;
            'all: for c in options(0) {
                for p in options(1) {
                    for ch in options(2) {
                        match self.rule_for(c, p, ch) {
                            Some(w) if std::ptr::eq(w, rule) => {
                                reachable = true;
                                break 'all;
                            }
                            Some(w) => winner = Some(w.name.as_str()),
                            None => {}
                        }
                    }
                }
            }
            if !reachable {
                return Err(format!(
                    "SLA rule {:?} can never apply: every ticket it matches goes to a more specific rule (e.g. {:?}); \
                     remove it, or remove a condition from the rules that hide it",
                    rule.name,
                    winner.unwrap_or("another")
                ));
            }
        }
        Ok(())
    }

    /// Due times for a ticket whose clocks start at `start`.
    pub fn due(
        &self,
        calendar: &Calendars,
        category: &str,
        priority: &str,
        channel: &str,
        start: DateTime<Utc>,
    ) -> Option<SlaDue> {
        let rule = self.rule_for(category, priority, channel)?;
        Some(SlaDue {
            rule: rule.name.clone(),
            first_response_due: calendar.deadline(start, rule.first_response, rule.first_response_clock),
            resolution_due: calendar.deadline(start, rule.resolution, rule.resolution_clock),
        })
    }
}

#[cfg(test)]
#[path = "sla_rules_tests.rs"]
mod rules_tests;

/// The targets a ticket is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    FirstResponse,
    Resolution,
    NextUpdate,
    /// Milestones (`core::sla::milestones`): an initial handling plan told to the customer, …
    Plan,
    /// … the technical diagnosis communicated, …
    Diagnosis,
    /// … a temporary solution, told apart from the final resolution.
    Workaround,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::FirstResponse,
        Target::Resolution,
        Target::NextUpdate,
        Target::Plan,
        Target::Diagnosis,
        Target::Workaround,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::FirstResponse => "first_response",
            Target::Resolution => "resolution",
            Target::NextUpdate => "next_update",
            Target::Plan => "plan",
            Target::Diagnosis => "diagnosis",
            Target::Workaround => "workaround",
        }
    }

    pub fn parse(s: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// What the clocks depend on: plain facts recorded on the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlaFacts {
    pub received_at: DateTime<Utc>,
    pub category: String,
    pub priority: String,
    /// Intake channel: SLA rules may depend on it.
    pub channel: String,
    pub first_responded_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Last time the customer was updated (any response).
    pub last_update_at: Option<DateTime<Utc>>,
    /// Waiting-for-customer intervals; the last may still be open.
    pub pauses: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    pub closed: bool,
    /// A reopened ticket's resolution clock starts again here.
    pub restarted_at: Option<DateTime<Utc>>,
    /// Due times agreed by hand (`set_due`): they replace the rule's.
    pub overrides: std::collections::BTreeMap<Target, DateTime<Utc>>,
    /// When each milestone was met (`workaround`, `milestone`).
    pub milestones_met: std::collections::BTreeMap<Target, DateTime<Utc>>,
}

impl SlaFacts {
    pub fn of(t: &crate::core::ticket::Ticket, pauses: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>) -> SlaFacts {
        SlaFacts {
            received_at: t.received_at,
            category: t.category.clone().unwrap_or_default(),
            priority: t.priority.clone().unwrap_or_default(),
            channel: t.channel.clone(),
            first_responded_at: t.life.first_responded_at,
            resolved_at: t.life.resolved_at,
            last_update_at: t.life.last_update_at,
            pauses,
            closed: t.life.closed_at.is_some(),
            restarted_at: t.life.sla_restarted_at,
            overrides: t
                .life
                .due_overrides
                .iter()
                .filter_map(|(target, at)| Some((Target::parse(target)?, *at)))
                .collect(),
            milestones_met: t
                .life
                .milestones
                .iter()
                .filter_map(|(target, at)| Some((Target::parse(target)?, *at)))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    /// Running, not yet due.
    Running,
    /// Due time passed, target not met.
    Breached,
    /// Met on time.
    Met,
    /// Met, but after the due time.
    MetLate,
    /// Stopped while the ticket waits for the customer.
    Paused,
    /// Does not apply (e.g. next update on a resolved ticket).
    Inactive,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub target: Target,
    pub due: Option<DateTime<Utc>>,
    pub met_at: Option<DateTime<Utc>>,
    pub state: ClockState,
    /// Seconds until due (negative: overdue), for running or breached clocks.
    pub seconds_left: Option<i64>,
}

/// The due time of a clock that recurs every `first_due - from` (the next update: 004-25, the
/// customer hears of progress every 24 h while the ticket is open): the latest lapse at `now`,
/// or the first while it is still ahead. Constant work however long the ticket has been open.
pub fn recurring_due(from: DateTime<Utc>, first_due: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    let period = (first_due - from).num_seconds();
    if period <= 0 || now <= first_due {
        return first_due;
    }
    let lapses = (now - from).num_seconds() / period;
    from + chrono::Duration::seconds(period.saturating_mul(lapses))
}

/// One target's clock at `now` from its due time and when it was met: the one rule every
/// target (milestones included) is judged by. `active`: the target applies at all (not on a
/// closed ticket); `paused`: its clock stands while the ticket waits for the customer.
pub fn target_status(
    target: Target,
    due: Option<DateTime<Utc>>,
    met_at: Option<DateTime<Utc>>,
    paused: bool,
    active: bool,
    now: DateTime<Utc>,
) -> TargetStatus {
    let state = match (met_at, due) {
        (Some(m), Some(d)) if m <= d => ClockState::Met,
        (Some(_), Some(_)) => ClockState::MetLate,
        (Some(_), None) => ClockState::Met,
        (None, _) if !active => ClockState::Inactive,
        (None, _) if paused => ClockState::Paused,
        (None, Some(d)) if now > d => ClockState::Breached,
        (None, Some(_)) => ClockState::Running,
        (None, None) => ClockState::Paused,
    };
    let seconds_left = match state {
        ClockState::Running | ClockState::Breached => due.map(|d| (d - now).num_seconds()),
        _ => None,
    };
    TargetStatus {
        target,
        due,
        met_at,
        state,
        seconds_left,
    }
}

impl SlaPolicy {
    /// Every target's clock at `now`. Pure: the same facts always give the same clocks, so the
    /// API, the scheduler and the reports cannot disagree.
    pub fn clocks(&self, cal: &Calendars, f: &SlaFacts, now: DateTime<Utc>) -> Vec<TargetStatus> {
        let Some(rule) = self.rule_for(&f.category, &f.priority, &f.channel) else {
            return Vec::new();
        };
        let status = |target, due, met_at, paused, active| target_status(target, due, met_at, paused, active, now);
        let waiting = f.pauses.last().is_some_and(|(_, end)| end.is_none());
        let first = f
            .overrides
            .get(&Target::FirstResponse)
            .copied()
            .unwrap_or_else(|| cal.deadline(f.received_at, rule.first_response, rule.first_response_clock));
        // The resolution clock stops while waiting for the customer; an open pause leaves the
        // due time unknown until the customer answers.
        let resolution_from = f.restarted_at.unwrap_or(f.received_at).max(f.received_at);
        let pauses: Vec<_> = f
            .pauses
            .iter()
            .filter(|(_, end)| end.is_none_or(|e| e > resolution_from))
            .copied()
            .collect();
        let resolution = match f.overrides.get(&Target::Resolution) {
            // An agreed time is a time: a pause after it does not move it (while waiting the
            // clock shows paused, as always).
            Some(agreed) if !waiting => Some(*agreed),
            Some(_) => None,
            None => cal.deadline_with_pauses(resolution_from, rule.resolution, rule.resolution_clock, &pauses),
        };
        let open = f.resolved_at.is_none() && !f.closed;
        // News is owed a period after the last update, or after the customer ended a wait or
        // the ticket was reopened: a lapse while nothing was owed is not a breach.
        let update_from = [
            f.last_update_at,
            f.restarted_at,
            f.pauses.last().and_then(|(_, end)| *end),
        ]
        .into_iter()
        .flatten()
        .fold(f.received_at, DateTime::max);
        let next_update = cal.deadline(update_from, self.next_update, Clock::Wall);
        let mut clocks = vec![
            status(
                Target::FirstResponse,
                Some(first),
                f.first_responded_at,
                false,
                !f.closed,
            ),
            status(Target::Resolution, resolution, f.resolved_at, waiting, !f.closed),
            status(Target::NextUpdate, Some(next_update), None, waiting, open),
        ];
        clocks.extend(milestones::clocks(rule, cal, f, now));
        clocks
    }

    /// The lapse of the next-update clock after the one due at `due`: the customer is owed an
    /// update every `next_update` while the ticket stays open without one.
    pub fn next_update_after(&self, cal: &Calendars, due: DateTime<Utc>) -> DateTime<Utc> {
        cal.deadline(due, self.next_update, Clock::Wall)
    }

    /// The lapse of the next-update clock that counts at `now`, given its first due time (the
    /// clock's `due`, which reports and the API show: how long news has been owed): the latest
    /// one passed, or the first while it is still ahead.
    pub fn next_update_lapse(&self, cal: &Calendars, first_due: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        let period = self.next_update_after(cal, first_due) - first_due;
        recurring_due(first_due - period, first_due, now)
    }

    /// The deadlines a timer must watch: clocks that are running (or already breached but not
    /// yet fired) and have a due time.
    pub fn pending_deadlines(&self, cal: &Calendars, f: &SlaFacts, now: DateTime<Utc>) -> Vec<(Target, DateTime<Utc>)> {
        self.clocks(cal, f, now)
            .into_iter()
            .filter(|c| matches!(c.state, ClockState::Running | ClockState::Breached))
            .filter_map(|c| c.due.map(|d| (c.target, d)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn policy() -> SlaPolicy {
        toml::from_str(
            r#"
            next_update = "24h"
            [[rules]]
            name = "biz"
            priority = "low"
            first_response = "1h"
            first_response_clock = "business"
            resolution = "1bd"
            resolution_clock = "business"
            [[rules]]
            name = "normal"
            first_response = "30m"
            resolution = "24h"
            "#,
        )
        .unwrap()
    }

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap()
    }

    fn facts() -> SlaFacts {
        SlaFacts {
            received_at: t(2, 0),
            category: "inquiry".into(),
            priority: "normal".into(),
            ..Default::default()
        }
    }

    #[test]
    fn fresh_ticket_runs_first_response_and_resolution() {
        let p = policy();
        let c = p.clocks(&Calendars::default(), &facts(), t(2, 10));
        assert_eq!(c[0].due, Some(t(2, 30)));
        assert_eq!(c[0].seconds_left, Some(20 * 60));
        assert_eq!(c[1].due, Some(t(2, 0) + chrono::Duration::hours(24)));
        assert!(c.iter().all(|x| x.state == ClockState::Running));
    }

    #[test]
    fn news_is_owed_a_period_after_the_last_update_the_end_of_a_wait_or_a_reopening() {
        let p = policy();
        let cal = Calendars::default();
        let day = chrono::Duration::hours(24);
        let next_update = |f: &SlaFacts, now| p.clocks(&cal, f, now)[2].clone();
        let mut f = facts();
        f.last_update_at = Some(t(3, 0));
        assert_eq!(next_update(&f, t(4, 0)).due, Some(t(3, 0) + day));
        // Waited three days for the customer, who answered at 05:00: owed a day from then, not
        // breached at once for the days nothing was owed.
        f.pauses = vec![(t(3, 0), Some(t(5, 0) + day * 3))];
        let c = next_update(&f, t(6, 0) + day * 3);
        assert_eq!(c.due, Some(t(5, 0) + day * 4));
        assert_eq!(c.state, ClockState::Running);
        f.restarted_at = Some(t(7, 0) + day * 3);
        assert_eq!(next_update(&f, t(8, 0) + day * 3).due, Some(t(7, 0) + day * 4));
    }

    #[test]
    fn the_lapse_that_counts_is_the_latest_passed() {
        let p = policy();
        let cal = Calendars::default();
        let day = chrono::Duration::hours(24);
        let first = t(3, 0) + day;
        assert_eq!(p.next_update_lapse(&cal, first, t(9, 0)), first);
        assert_eq!(p.next_update_lapse(&cal, first, first + day + day / 2), first + day);
        assert_eq!(p.next_update_lapse(&cal, first, first + day * 30), first + day * 30);
    }

    #[test]
    fn a_late_response_is_met_late_and_a_missed_one_breached() {
        let p = policy();
        let cal = Calendars::default();
        assert_eq!(p.clocks(&cal, &facts(), t(2, 31))[0].state, ClockState::Breached);
        let mut f = facts();
        f.first_responded_at = Some(t(2, 45));
        assert_eq!(p.clocks(&cal, &f, t(3, 0))[0].state, ClockState::MetLate);
    }

    #[test]
    fn waiting_for_the_customer_pauses_resolution_and_moves_it_back_on_reply() {
        let p = policy();
        let cal = Calendars::default();
        let mut f = facts();
        f.pauses = vec![(t(3, 0), None)];
        let c = p.clocks(&cal, &f, t(9, 0));
        assert_eq!(c[1].state, ClockState::Paused);
        assert_eq!(c[1].due, None);
        assert!(
            p.pending_deadlines(&cal, &f, t(9, 0))
                .iter()
                .all(|(tg, _)| *tg != Target::Resolution)
        );
        f.pauses = vec![(t(3, 0), Some(t(5, 0)))];
        let c = p.clocks(&cal, &f, t(9, 0));
        assert_eq!(c[1].due, Some(t(2, 0) + chrono::Duration::hours(26)));
    }

    #[test]
    fn priority_change_recomputes_due_times() {
        let p = policy();
        let cal = Calendars::default();
        let mut f = facts();
        let before = p.clocks(&cal, &f, t(2, 1))[0].due;
        f.priority = "low".into();
        let after = p.clocks(&cal, &f, t(2, 1))[0].due;
        assert_ne!(before, after);
        assert_eq!(after, Some(t(3, 0)));
    }

    proptest! {
        #[test]
        fn a_longer_pause_never_brings_resolution_earlier(start in 0i64..600, len1 in 0i64..600, extra in 0i64..600) {
            let p = policy();
            let cal = Calendars::default();
            let mut f = facts();
            let from = t(2, 0) + chrono::Duration::minutes(start);
            f.pauses = vec![(from, Some(from + chrono::Duration::minutes(len1)))];
            let a = p.clocks(&cal, &f, t(2, 0))[1].due.unwrap();
            f.pauses = vec![(from, Some(from + chrono::Duration::minutes(len1 + extra)))];
            let b = p.clocks(&cal, &f, t(2, 0))[1].due.unwrap();
            prop_assert!(b >= a);
        }
    }
}

#[cfg(test)]
mod recurring_tests {
    use super::recurring_due;
    use chrono::{Duration, TimeZone, Utc};
    use proptest::prelude::*;

    #[test]
    fn the_next_update_recurs_every_period_while_nothing_is_said() {
        let from = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let first = from + Duration::hours(24);
        assert_eq!(recurring_due(from, first, from + Duration::hours(3)), first);
        assert_eq!(recurring_due(from, first, first), first);
        assert_eq!(recurring_due(from, first, first + Duration::hours(1)), first);
        assert_eq!(
            recurring_due(from, first, from + Duration::hours(49)),
            from + Duration::hours(48)
        );
        assert_eq!(
            recurring_due(from, first, from + Duration::days(400)),
            from + Duration::days(400)
        );
    }

    proptest! {
        #[test]
        fn the_due_lapse_is_the_latest_one_passed(period in 1i64..200_000, elapsed in 0i64..100_000_000) {
            let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            let first = from + Duration::seconds(period);
            let now = from + Duration::seconds(elapsed);
            let due = recurring_due(from, first, now);
            prop_assert!(due >= first);
            prop_assert_eq!((due - from).num_seconds() % period, 0);
            if now > first {
                prop_assert!(due <= now);
                prop_assert!((now - due).num_seconds() < period);
            } else {
                prop_assert_eq!(due, first);
            }
        }
    }
}
