//! Milestones between the first response and the resolution (issue 14 item 4): targets such as
//! "an initial handling plan told to the customer within 4 h" (complaints, seed 004 §(三)),
//! "the technical diagnosis communicated within 8 h" (faults) or "a temporary solution within
//! 2 h" (urgent, seed 000 table 2).
//!
//! An SLA rule declares its milestones (`[[sla.rules.milestones]]`); each is a target with its
//! own due time (`within` on its `clock`, from the ticket's receipt), its own breach timer and
//! its own escalation ladder (the rule's when it names none). A milestone is met by the action
//! that delivers it: `workaround` meets `workaround`, `milestone {name}` meets `plan` or
//! `diagnosis`; the final resolution meets every milestone still outstanding (the resolution
//! delivers the plan, the diagnosis and more). Milestones are once per ticket: a reopening does
//! not restart them. A milestone with `pauses = true` stops while the ticket waits for the
//! customer (a diagnosis may need the customer's information, seed 002 §二); otherwise it runs
//! on, like the first response.
//!
//! The kinds are a fixed vocabulary (they are [`Target`]s, named in timers, escalations,
//! events and reports); which rule has which, how long each may take and which ladder climbs are
//! policy.

use super::{SlaFacts, SlaRule, Target, TargetStatus};
use crate::core::calendar::{Calendars, Clock, SlaDuration};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One milestone of an SLA rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Milestone {
    /// Which milestone: `plan`, `diagnosis` or `workaround`.
    pub name: Target,
    /// How long after the ticket's receipt it is due.
    pub within: SlaDuration,
    #[serde(default = "wall")]
    pub clock: Clock,
    /// Ladder to climb when it is missed; none: the rule's `escalation`.
    #[serde(default)]
    pub escalation: Option<String>,
    /// The clock stops while the ticket waits for the customer.
    #[serde(default)]
    pub pauses: bool,
}

fn wall() -> Clock {
    Clock::Wall
}

/// The milestone kinds, as `Target`s.
pub const KINDS: [Target; 3] = [Target::Plan, Target::Diagnosis, Target::Workaround];

impl Target {
    /// Whether this target is a milestone (not first response, resolution or next update).
    pub fn is_milestone(self) -> bool {
        KINDS.contains(&self)
    }
}

impl SlaRule {
    /// The ladder a missed `target` of this rule climbs: the milestone's own, else the rule's.
    pub fn ladder_for(&self, target: Target) -> Option<&str> {
        self.milestones
            .iter()
            .find(|m| m.name == target)
            .and_then(|m| m.escalation.as_deref())
            .or(self.escalation.as_deref())
    }

    /// The names of this rule's milestones.
    pub fn milestone_names(&self) -> Vec<String> {
        self.milestones.iter().map(|m| m.name.as_str().to_owned()).collect()
    }

    /// Checks the milestones: real milestone kinds, each once, a due time longer than zero.
    /// Returns what is wrong, naming the rule and the milestone.
    pub fn validate_milestones(&self) -> Result<(), String> {
        for (i, m) in self.milestones.iter().enumerate() {
            if !m.name.is_milestone() {
                return Err(format!(
                    "SLA rule {:?}: milestone {:?} is not a milestone; use one of plan, diagnosis, workaround \
                     (first_response and resolution are the rule's own targets)",
                    self.name,
                    m.name.as_str()
                ));
            }
            if self.milestones[..i].iter().any(|o| o.name == m.name) {
                return Err(format!(
                    "SLA rule {:?} declares milestone {:?} twice",
                    self.name,
                    m.name.as_str()
                ));
            }
            if m.within.is_zero() {
                return Err(format!(
                    "SLA rule {:?}: milestone {:?} needs `within` longer than zero",
                    self.name,
                    m.name.as_str()
                ));
            }
        }
        Ok(())
    }
}

/// The clocks of `rule`'s milestones at `now`. Pure, like [`super::SlaPolicy::clocks`].
pub fn clocks(rule: &SlaRule, cal: &Calendars, f: &SlaFacts, now: DateTime<Utc>) -> Vec<TargetStatus> {
    let waiting = f.pauses.last().is_some_and(|(_, end)| end.is_none());
    rule.milestones
        .iter()
        .map(|m| {
            let met_at = f.milestones_met.get(&m.name).copied().or(f.resolved_at);
            let paused = m.pauses && waiting;
            let due = if m.pauses {
                if waiting {
                    None
                } else {
                    cal.deadline_with_pauses(f.received_at, m.within, m.clock, &f.pauses)
                }
            } else {
                Some(cal.deadline(f.received_at, m.within, m.clock))
            };
            super::target_status(m.name, due, met_at, paused, !f.closed, now)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sla::{ClockState, SlaPolicy};
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn policy() -> SlaPolicy {
        toml::from_str(
            r#"
            [[rules]]
            name = "complaint"
            category = "complaint"
            first_response = "20m"
            resolution = "48h"
            escalation = "complaint"
            milestones = [{ name = "plan", within = "4h" }]
            [[rules]]
            name = "fault"
            category = "fault"
            first_response = "30m"
            resolution = "24h"
            escalation = "normal"
            milestones = [{ name = "diagnosis", within = "8h", pauses = true, escalation = "tech" }]
            [[rules]]
            name = "urgent"
            priority = "urgent"
            first_response = "15m"
            resolution = "24h"
            milestones = [{ name = "workaround", within = "2h" }]
            [[rules]]
            name = "normal"
            first_response = "30m"
            resolution = "24h"
            "#,
        )
        .unwrap()
    }

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap() + Duration::minutes(h)
    }

    fn facts(category: &str, priority: &str) -> SlaFacts {
        SlaFacts {
            received_at: t(0),
            category: category.into(),
            priority: priority.into(),
            ..Default::default()
        }
    }

    fn clock(p: &SlaPolicy, f: &SlaFacts, now: DateTime<Utc>, target: Target) -> Option<TargetStatus> {
        p.clocks(&Calendars::default(), f, now)
            .into_iter()
            .find(|c| c.target == target)
    }

    #[test]
    fn a_complaint_plan_runs_four_hours_then_breaches() {
        let p = policy();
        let f = facts("complaint", "normal");
        let c = clock(&p, &f, t(60), Target::Plan).unwrap();
        assert_eq!(
            (c.state, c.due, c.seconds_left),
            (ClockState::Running, Some(t(240)), Some(180 * 60))
        );
        let c = clock(&p, &f, t(241), Target::Plan).unwrap();
        assert_eq!(c.state, ClockState::Breached);
        assert!(
            p.pending_deadlines(&Calendars::default(), &f, t(60))
                .contains(&(Target::Plan, t(240)))
        );
    }

    #[test]
    fn a_milestone_met_on_time_or_late_stops_its_clock() {
        let p = policy();
        let mut f = facts("complaint", "normal");
        f.milestones_met.insert(Target::Plan, t(200));
        assert_eq!(clock(&p, &f, t(300), Target::Plan).unwrap().state, ClockState::Met);
        f.milestones_met.insert(Target::Plan, t(250));
        let c = clock(&p, &f, t(300), Target::Plan).unwrap();
        assert_eq!((c.state, c.met_at), (ClockState::MetLate, Some(t(250))));
        assert!(
            p.pending_deadlines(&Calendars::default(), &f, t(300))
                .iter()
                .all(|(tg, _)| *tg != Target::Plan)
        );
    }

    #[test]
    fn a_workaround_is_not_the_resolution() {
        let p = policy();
        let mut f = facts("inquiry", "urgent");
        f.milestones_met.insert(Target::Workaround, t(90));
        let clocks = p.clocks(&Calendars::default(), &f, t(100));
        let of = |tg| clocks.iter().find(|c| c.target == tg).unwrap().state;
        assert_eq!(of(Target::Workaround), ClockState::Met);
        assert_eq!(of(Target::Resolution), ClockState::Running);
    }

    #[test]
    fn the_resolution_meets_outstanding_milestones() {
        let p = policy();
        let mut f = facts("complaint", "normal");
        f.resolved_at = Some(t(100));
        assert_eq!(clock(&p, &f, t(300), Target::Plan).unwrap().state, ClockState::Met);
    }

    #[test]
    fn milestones_apply_only_to_their_rule() {
        let p = policy();
        for (cat, pr) in [("inquiry", "normal"), ("fault", "normal"), ("suggestion", "low")] {
            assert!(clock(&p, &facts(cat, pr), t(1), Target::Plan).is_none(), "{cat}");
        }
        assert!(clock(&p, &facts("complaint", "normal"), t(1), Target::Diagnosis).is_none());
        assert!(clock(&p, &facts("fault", "normal"), t(1), Target::Diagnosis).is_some());
    }

    #[test]
    fn a_pausing_milestone_waits_with_the_customer_and_others_run_on() {
        let p = policy();
        let mut f = facts("fault", "normal");
        f.pauses = vec![(t(60), None)];
        let c = clock(&p, &f, t(600), Target::Diagnosis).unwrap();
        assert_eq!((c.state, c.due), (ClockState::Paused, None));
        f.pauses = vec![(t(60), Some(t(180)))];
        assert_eq!(
            clock(&p, &f, t(600), Target::Diagnosis).unwrap().due,
            Some(t(480 + 120))
        );
        // The complaint plan does not pause.
        let mut g = facts("complaint", "normal");
        g.pauses = vec![(t(60), None)];
        assert_eq!(clock(&p, &g, t(300), Target::Plan).unwrap().state, ClockState::Breached);
    }

    #[test]
    fn a_closed_ticket_has_no_running_milestone() {
        let p = policy();
        let mut f = facts("complaint", "normal");
        f.closed = true;
        assert_eq!(clock(&p, &f, t(300), Target::Plan).unwrap().state, ClockState::Inactive);
    }

    #[test]
    fn ladders_are_the_milestones_own_or_the_rules() {
        let p = policy();
        assert_eq!(p.rules[1].ladder_for(Target::Diagnosis), Some("tech"));
        assert_eq!(p.rules[1].ladder_for(Target::Resolution), Some("normal"));
        assert_eq!(p.rules[0].ladder_for(Target::Plan), Some("complaint"));
    }

    #[test]
    fn validation_names_the_rule_and_the_milestone() {
        let mut p = policy();
        let again = p.rules[0].milestones[0].clone();
        p.rules[0].milestones.push(again);
        assert!(p.rules[0].validate_milestones().unwrap_err().contains("twice"));
        p.rules[0].milestones[1].name = Target::Resolution;
        let e = p.rules[0].validate_milestones().unwrap_err();
        assert!(e.contains("\"complaint\"") && e.contains("resolution"), "{e}");
        assert!(
            toml::from_str::<SlaPolicy>(
                "[[rules]]\nname='x'\nfirst_response='1h'\nresolution='2h'\nmilestones=[{name='plan',within='1h',bogus=1}]"
            )
            .is_err()
        );
    }

    /// The standardised process's quadrants (seed 003 §(三)) as SLA rules: each quadrant is a
    /// cell of priority (urgency) and category (importance), its response time the rule's
    /// first response.
    #[test]
    fn the_quadrant_response_times_are_expressible() {
        let p: SlaPolicy = toml::from_str(
            r#"
            [[rules]]
            name = "urgent-important"
            category = "fault"
            priority = "urgent"
            first_response = "30m"
            resolution = "2h"
            [[rules]]
            name = "urgent-not-important"
            category = "inquiry"
            priority = "urgent"
            first_response = "1h"
            resolution = "24h"
            [[rules]]
            name = "not-urgent-not-important"
            category = "suggestion"
            first_response = "24h"
            resolution = "72h"
            [[rules]]
            name = "important-not-urgent"
            first_response = "2h"
            resolution = "24h"
            "#,
        )
        .unwrap();
        let cal = Calendars::default();
        for (cat, pr, minutes) in [
            ("fault", "urgent", 30),
            ("inquiry", "urgent", 60),
            ("inquiry", "normal", 120),
            ("suggestion", "low", 24 * 60),
        ] {
            let due = p.due(&cal, cat, pr, "phone", t(0)).unwrap();
            assert_eq!(due.first_response_due, t(minutes), "{cat}/{pr}");
        }
    }

    proptest! {
        /// A milestone is met exactly when its fact is recorded no later than its due time, and
        /// a pending deadline exists exactly for running or breached milestones.
        #[test]
        fn met_on_time_iff_recorded_by_the_due_time(met in proptest::option::of(0i64..600), now in 0i64..900) {
            let p = policy();
            let mut f = facts("complaint", "normal");
            if let Some(m) = met {
                f.milestones_met.insert(Target::Plan, t(m));
            }
            let c = clock(&p, &f, t(now), Target::Plan).unwrap();
            let want = match met {
                Some(m) if m <= 240 => ClockState::Met,
                Some(_) => ClockState::MetLate,
                None if now > 240 => ClockState::Breached,
                None => ClockState::Running,
            };
            prop_assert_eq!(c.state, want);
            let pending = p
                .pending_deadlines(&Calendars::default(), &f, t(now))
                .iter()
                .any(|(tg, _)| *tg == Target::Plan);
            prop_assert_eq!(pending, met.is_none());
        }

        /// Waiting for the customer never brings a pausing milestone's due time earlier.
        #[test]
        fn a_wait_never_brings_a_pausing_milestone_earlier(from in 0i64..600, len in 0i64..600) {
            let p = policy();
            let base = clock(&p, &facts("fault", "normal"), t(0), Target::Diagnosis).unwrap().due.unwrap();
            let mut f = facts("fault", "normal");
            f.pauses = vec![(t(from), Some(t(from + len)))];
            let due = clock(&p, &f, t(0), Target::Diagnosis).unwrap().due.unwrap();
            prop_assert!(due >= base);
        }
    }
}
