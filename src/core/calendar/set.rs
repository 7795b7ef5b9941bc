//! The policy's calendars together, so that each SLA target can run on the one it names.

use std::collections::BTreeMap;
use std::ops::Deref;

use chrono::{DateTime, Utc};

use super::*;

/// Every calendar of the policy by name, one of them the SLA's own (`[sla] calendar`, the
/// service hours), which [`Clock::Business`] means and which `Deref` hands out for
/// everything that is not a target's clock (escalation ladders' `service_hours_only`,
/// follow-up visits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendars {
    default_name: String,
    default: BusinessCalendar,
    by_name: BTreeMap<String, BusinessCalendar>,
}

impl Default for Calendars {
    fn default() -> Self {
        Calendars::single(BusinessCalendar::default())
    }
}

impl Calendars {
    /// One calendar, named "default", serving every clock.
    pub fn single(calendar: BusinessCalendar) -> Self {
        Calendars {
            default_name: "default".into(),
            default: calendar.clone(),
            by_name: BTreeMap::from([("default".to_owned(), calendar)]),
        }
    }

    /// `by_name` with `default` the SLA's calendar; `None` if it is not among them.
    pub fn new(default: &str, by_name: BTreeMap<String, BusinessCalendar>) -> Option<Self> {
        Some(Calendars {
            default_name: default.to_owned(),
            default: by_name.get(default)?.clone(),
            by_name,
        })
    }

    pub fn default_name(&self) -> &str {
        &self.default_name
    }

    pub fn get(&self, name: &str) -> Option<&BusinessCalendar> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &BusinessCalendar)> {
        self.by_name.iter().map(|(n, c)| (n.as_str(), c))
    }

    /// True when `clock` can be computed: wall, business, or a calendar that exists.
    pub fn knows(&self, clock: Clock) -> bool {
        match clock {
            Clock::Calendar(name) => self.by_name.contains_key(name.as_str()),
            Clock::Wall | Clock::Business => true,
        }
    }

    /// The calendar a clock runs on. An unknown name (the policy refuses those at load) falls
    /// back to the SLA's calendar.
    pub fn for_clock(&self, clock: Clock) -> &BusinessCalendar {
        match clock {
            Clock::Calendar(name) => self.by_name.get(name.as_str()).unwrap_or(&self.default),
            Clock::Wall | Clock::Business => &self.default,
        }
    }

    /// [`BusinessCalendar::deadline`] on the calendar `clock` names.
    pub fn deadline(&self, start: DateTime<Utc>, duration: SlaDuration, clock: Clock) -> DateTime<Utc> {
        self.for_clock(clock).deadline(start, duration, clock)
    }

    /// [`BusinessCalendar::deadline_with_pauses`] on the calendar `clock` names: a pause
    /// holds the clock for the open time of that calendar.
    pub fn deadline_with_pauses(
        &self,
        start: DateTime<Utc>,
        duration: SlaDuration,
        clock: Clock,
        pauses: &[(DateTime<Utc>, Option<DateTime<Utc>>)],
    ) -> Option<DateTime<Utc>> {
        self.for_clock(clock)
            .deadline_with_pauses(start, duration, clock, pauses)
    }
}

impl Deref for Calendars {
    type Target = BusinessCalendar;

    fn deref(&self) -> &BusinessCalendar {
        &self.default
    }
}

impl From<BusinessCalendar> for Calendars {
    fn from(calendar: BusinessCalendar) -> Self {
        Calendars::single(calendar)
    }
}
