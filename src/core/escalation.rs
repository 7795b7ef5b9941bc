//! Escalation ladders (SPEC §5): who is told when an SLA target is missed, and when again.
//!
//! A ladder is a list of steps, each with a delay after the breach, a target (supervisor,
//! director, quality team, the assignee) and an optional repeat interval. Pure: given the breach
//! time and what has fired so far, `next_step` says what fires next and when.

use super::calendar::{BusinessCalendar, Clock, SlaDuration};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderStep {
    /// Delay after the breach ("0m" = at once).
    pub after: SlaDuration,
    /// Who is told: `supervisor`, `assignee`, a team id, or a role such as `technical_director`.
    pub notify: String,
    /// Remind again this often until the escalation is acknowledged or the target met.
    #[serde(default)]
    pub repeat: Option<SlaDuration>,
    /// Stop repeating after this many reminders (none = until acknowledged).
    #[serde(default)]
    pub max_repeats: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ladder {
    pub steps: Vec<LadderStep>,
    /// Steps and reminders that fall outside service hours wait for the next opening.
    #[serde(default)]
    pub service_hours_only: bool,
}

impl Ladder {
    /// Every role the ladder's steps notify.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|s| s.notify.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    pub step: usize,
    /// 0 for the step itself, 1.. for its reminders.
    pub repeat: u32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextStep {
    pub step: usize,
    pub repeat: u32,
    pub due: DateTime<Utc>,
    pub notify: String,
}

impl Ladder {
    /// The ladder as it runs: a repeating step without its own `max_repeats` stops after
    /// `default_max_repeats` reminders, and when the last step's reminders run out the
    /// escalation climbs one more rung, to `beyond` (notified once). Without this a reminder
    /// on a ticket nobody can take (every agent full) would repeat forever and reach nobody new.
    pub fn bounded(&self, default_max_repeats: u32, beyond: &str) -> Ladder {
        let mut steps = self.steps.clone();
        for s in &mut steps {
            if s.repeat.is_some() && s.max_repeats.is_none() {
                s.max_repeats = Some(default_max_repeats);
            }
        }
        if let Some(last) = steps.last().cloned()
            && let Some(every) = last.repeat
            && last.notify != beyond
        {
            // When the last reminder would have been followed by one more.
            let reminders = last.max_repeats.unwrap_or(default_max_repeats);
            let after = (0..=reminders).try_fold(last.after, |at, _| at.checked_add(every));
            if let Some(after) = after {
                steps.push(LadderStep {
                    after,
                    notify: beyond.to_owned(),
                    repeat: None,
                    max_repeats: None,
                });
            }
        }
        Ladder {
            steps,
            service_hours_only: self.service_hours_only,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err("a ladder needs at least one step".into());
        }
        for (i, s) in self.steps.iter().enumerate() {
            if s.repeat.is_some_and(|r| r.is_zero()) {
                return Err(format!("step {}: repeat must be longer than zero", i + 1));
            }
            if s.notify.trim().is_empty() {
                return Err(format!("step {}: notify must name someone", i + 1));
            }
        }
        Ok(())
    }

    /// What fires after `last` (or first, when nothing has fired) for a breach at `breached_at`.
    /// A later step whose time has come pre-empts further reminders of an earlier one.
    pub fn next_step(
        &self,
        breached_at: DateTime<Utc>,
        last: Option<&Fired>,
        cal: &BusinessCalendar,
    ) -> Option<NextStep> {
        let at_step = |i: usize| -> DateTime<Utc> { cal.deadline(breached_at, self.steps[i].after, Clock::Wall) };
        let candidate = match last {
            None => Some((0, 0, at_step(0))),
            Some(f) => {
                let next_step = (f.step + 1 < self.steps.len()).then(|| (f.step + 1, 0, at_step(f.step + 1)));
                let cur = &self.steps[f.step.min(self.steps.len() - 1)];
                let reminder = cur
                    .repeat
                    .filter(|_| cur.max_repeats.is_none_or(|m| f.repeat < m))
                    .map(|r| (f.step, f.repeat + 1, cal.deadline(f.at, r, Clock::Wall)));
                match (next_step, reminder) {
                    (Some(n), Some(r)) if r.2 < n.2 => Some(r),
                    (Some(n), _) => Some(n),
                    (None, r) => r,
                }
            }
        };
        candidate.map(|(step, repeat, due)| {
            let due = if self.service_hours_only {
                cal.next_open(due)
            } else {
                due
            };
            NextStep {
                step,
                repeat,
                due,
                notify: self.steps[step].notify.clone(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn d(s: &str) -> SlaDuration {
        s.parse().unwrap()
    }

    fn normal() -> Ladder {
        Ladder {
            steps: vec![LadderStep {
                after: d("0m"),
                notify: "supervisor".into(),
                repeat: Some(d("30m")),
                max_repeats: None,
            }],
            service_hours_only: false,
        }
    }

    fn urgent() -> Ladder {
        Ladder {
            steps: vec![
                LadderStep {
                    after: d("0m"),
                    notify: "supervisor".into(),
                    repeat: None,
                    max_repeats: None,
                },
                LadderStep {
                    after: d("1h"),
                    notify: "technical_director".into(),
                    repeat: None,
                    max_repeats: None,
                },
            ],
            service_hours_only: false,
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap()
    }

    #[test]
    fn reminders_without_end_stop_and_climb_one_rung() {
        let cal = BusinessCalendar::default();
        let endless = Ladder {
            steps: vec![LadderStep {
                after: d("0m"),
                notify: "supervisor".into(),
                repeat: Some(d("30m")),
                max_repeats: None,
            }],
            service_hours_only: false,
        };
        let ladder = endless.bounded(3, "department_head");
        let mut last: Option<Fired> = None;
        let mut fired = Vec::new();
        while let Some(n) = ladder.next_step(t0(), last.as_ref(), &cal) {
            fired.push((n.notify.clone(), n.repeat, (n.due - t0()).num_minutes()));
            last = Some(Fired {
                step: n.step,
                repeat: n.repeat,
                at: n.due,
            });
            assert!(fired.len() < 100, "the ladder never ends: {fired:?}");
        }
        assert_eq!(
            fired,
            vec![
                ("supervisor".to_owned(), 0, 0),
                ("supervisor".to_owned(), 1, 30),
                ("supervisor".to_owned(), 2, 60),
                ("supervisor".to_owned(), 3, 90),
                ("department_head".to_owned(), 0, 120),
            ]
        );
        // An explicit cap is kept; a ladder whose last step does not repeat gains nothing.
        let capped = Ladder {
            steps: vec![LadderStep {
                max_repeats: Some(1),
                ..endless.steps[0].clone()
            }],
            service_hours_only: false,
        }
        .bounded(3, "department_head");
        assert_eq!(capped.steps[0].max_repeats, Some(1));
        assert_eq!(capped.steps[1].after, d("60m"));
        let once = Ladder {
            steps: vec![LadderStep {
                repeat: None,
                ..endless.steps[0].clone()
            }],
            service_hours_only: false,
        };
        assert_eq!(once.bounded(3, "department_head"), once);
    }

    #[test]
    fn normal_reminds_every_thirty_minutes() {
        let cal = BusinessCalendar::default();
        let first = normal().next_step(t0(), None, &cal).unwrap();
        assert_eq!(
            (first.step, first.repeat, first.due, first.notify.as_str()),
            (0, 0, t0(), "supervisor")
        );
        let fired = Fired {
            step: 0,
            repeat: 0,
            at: t0() + chrono::Duration::seconds(1),
        };
        let again = normal().next_step(t0(), Some(&fired), &cal).unwrap();
        assert_eq!((again.step, again.repeat), (0, 1));
        assert_eq!(again.due, fired.at + chrono::Duration::minutes(30));
    }

    #[test]
    fn urgent_goes_to_the_director_an_hour_past_due_and_stops() {
        let cal = BusinessCalendar::default();
        let l = urgent();
        let s1 = l
            .next_step(
                t0(),
                Some(&Fired {
                    step: 0,
                    repeat: 0,
                    at: t0(),
                }),
                &cal,
            )
            .unwrap();
        assert_eq!(
            (s1.step, s1.notify.as_str(), s1.due),
            (1, "technical_director", t0() + chrono::Duration::hours(1))
        );
        assert!(
            l.next_step(
                t0(),
                Some(&Fired {
                    step: 1,
                    repeat: 0,
                    at: s1.due
                }),
                &cal
            )
            .is_none()
        );
    }

    #[test]
    fn service_hours_only_reminders_wait_for_the_opening() {
        let cal = BusinessCalendar::default(); // 08:00-22:00 Asia/Shanghai
        let mut l = normal();
        l.service_hours_only = true;
        // 23:00 Shanghai = 15:00 UTC.
        let late = Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap();
        let s = l.next_step(late, None, &cal).unwrap();
        assert_eq!(s.due, Utc.with_ymd_and_hms(2026, 3, 3, 0, 0, 0).unwrap());
    }

    proptest! {
        #[test]
        fn steps_never_go_back_in_time(step in 0usize..2, repeat in 0u32..5, mins in 0i64..10_000) {
            let cal = BusinessCalendar::default();
            for l in [normal(), urgent()] {
                let step = step.min(l.steps.len() - 1);
                let fired = Fired { step, repeat, at: t0() + chrono::Duration::minutes(mins) };
                if let Some(n) = l.next_step(t0(), Some(&fired), &cal) {
                    prop_assert!(n.due >= t0());
                    prop_assert!(n.step > step || (n.step == step && n.repeat == repeat + 1));
                    prop_assert!(n.step != step || n.due > fired.at);
                }
            }
        }
    }
}
