//! Business calendar and SLA deadline arithmetic.
//!
//! Every SLA target in Switchboard ("first response within 15m", "resolve within 3bd") becomes a
//! concrete due instant here, so that the scheduler, the breach checker and the reports agree on
//! when the service is open and on what "two business hours" means. The module is pure: no I/O,
//! no reading of the system clock; instants go in and come out as `DateTime<Utc>` and the
//! calendar's IANA zone is applied inside.
//!
//! # The calendar
//!
//! A local date's service windows come from the first of these that applies:
//! 1. `holidays`: closed the whole day;
//! 2. `workdays` (make-up working days, 调休): `makeup_hours`, whatever the weekday;
//! 3. `hours`: the windows of that weekday (several a day allowed, e.g. a lunch break).
//!
//! A window `"08:00-22:00"` on date D is the UTC interval [open, close): `open` is the first
//! instant at which the local wall clock reads D 08:00 and `close` the first instant it reads
//! D 22:00 (`"24:00"` is the next midnight). Across daylight-saving changes:
//! * a wall time skipped by a spring-forward jump stands for the instant of the jump, so a window
//!   spanning the gap is shorter by the gap and one lying wholly inside it is empty;
//! * a wall time repeated after a fall-back counts from its first occurrence, so a window covering
//!   the whole repeated hour (e.g. `"00:00-24:00"`) is an hour longer, and one that ends inside
//!   the repeated hour closes the first time the clock reads its end.
//!
//! This mapping never runs backwards, so windows never overlap, not even across midnight, and
//! [`BusinessCalendar::is_open`], [`BusinessCalendar::business_time_between`] and
//! [`BusinessCalendar::deadline`] all see exactly the same open time.
//!
//! # Deadlines
//!
//! * Wall clock: `start + duration`, a business day counting as 24 hours.
//! * Business clock, hours/minutes/seconds: the clock starts at `next_open(start)` and the
//!   deadline is the first instant by which that much open time has elapsed, so
//!   `business_time_between(start, deadline) == duration` exactly. A deadline reached exactly at a
//!   window's close is that close, not the next opening.
//! * Business clock, `N` business days ("3bd"): "the same time of day, N open days later". The
//!   clock starts at `next_open(start)`, whose local time of day is τ and whose date is D0; the
//!   deadline is on D_N, the N-th date after D0 that has open time, at τ if D_N is open then,
//!   else at D_N's next opening after τ, else (τ is after D_N's last window) at D_N's last close.
//!   Friday 10:00 + 1bd is Monday 10:00 when the weekend is closed. Business days are not a fixed
//!   amount of open time: on days with different hours they count whole days, which is what
//!   "reply within 1 business day" promises a customer.
//! * A mixed duration ("1bd4h") applies the business days first, then the rest on the same clock.
//! * A zero duration is due the moment the clock starts: `start` on the wall clock,
//!   `next_open(start)` on the business clock.
//! * [`BusinessCalendar::deadline_with_pauses`] holds the clock still while a request waits for
//!   the customer.
//!
//! # Bounds
//!
//! Every search terminates: validation rejects a calendar without any weekly service hours or
//! closed for more than [`MAX_CLOSED_RUN_DAYS`] days in a row, and the walk over open windows
//! gives up after three years without any open time (only an unvalidated calendar can get there).
//! Giving up, or running off the end of chrono's date range, yields [`NEVER`]. Durations are
//! capped at [`MAX_SLA_SECONDS`] and [`MAX_BUSINESS_DAYS`], so the work per deadline is bounded by
//! the number of service windows it crosses; the walk goes window by window, never minute by
//! minute.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

mod duration;
mod file;
mod hours;
pub mod ics;
mod local;
mod public;
mod set;

pub use duration::*;
use file::*;
pub use hours::*;
use local::*;
pub use public::*;
pub use set::*;

/// Zone used when the configuration names none: the service's home market.
pub const DEFAULT_TIME_ZONE: Tz = Tz::Asia__Shanghai;

/// Service window used for every weekday when the configuration gives no `hours`.
pub const DEFAULT_WINDOW: TimeWindow = TimeWindow {
    start: 8 * 60,
    end: 22 * 60,
};

/// Longest run of consecutive closed days a valid calendar may have. A year without any open
/// day is a configuration mistake (a holiday range typed with the wrong year), not a schedule.
pub const MAX_CLOSED_RUN_DAYS: i64 = 366;

/// Largest business-day count an [`SlaDuration`] may carry.
pub const MAX_BUSINESS_DAYS: u32 = 366;

/// Largest clock-time part (hours, minutes, seconds) an [`SlaDuration`] may carry: 366 days.
pub const MAX_SLA_SECONDS: u64 = 366 * 86_400;

/// What the functions return for "no such instant": the calendar has no open time ahead, or the
/// answer lies beyond chrono's range. It sorts after every real deadline, so it never breaches.
pub const NEVER: DateTime<Utc> = DateTime::<Utc>::MAX_UTC;

/// The walk over open windows stops after this many consecutive days without any open time.
/// A validated calendar never gets near it (see [`MAX_CLOSED_RUN_DAYS`]).
const SEARCH_HORIZON_DAYS: u32 = 3 * 366;

/// Longest `first..last` range one holiday or workday entry may span, so that a typo such as
/// `2026-01-01..2062-01-01` is an error rather than thirteen thousand dates.
const MAX_DATE_RANGE_DAYS: i64 = 366;

const MINUTES_PER_DAY: u16 = 24 * 60;

/// Why a calendar or a duration was refused. Every message starts with the configuration field
/// at fault (`hours.mon[1]`, `holidays[3]`, ...), because an operator reads it at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("{field}: unknown IANA time zone {value:?}")]
    UnknownTimeZone { field: &'static str, value: String },
    #[error("{field}: {value:?} is not a service window like \"08:00-22:00\": {reason}")]
    BadWindow {
        field: String,
        value: String,
        reason: String,
    },
    #[error("{field}: windows {first} and {second} overlap")]
    OverlappingWindows {
        field: String,
        first: TimeWindow,
        second: TimeWindow,
    },
    #[error("{field}: missing; write {field} = [] for a day that is closed")]
    MissingDay { field: String },
    #[error("{field}: {value:?} is not a date \"YYYY-MM-DD\" or a range \"YYYY-MM-DD..YYYY-MM-DD\": {reason}")]
    BadDate {
        field: String,
        value: String,
        reason: String,
    },
    #[error("holidays, workdays: {date} is listed both as a holiday and as a make-up workday")]
    HolidayAlsoWorkday { date: NaiveDate },
    #[error("hours: every weekday is closed, so the calendar is never open")]
    NeverOpen,
    #[error("makeup_hours: no service hours (Monday is closed and none are given) but workdays are listed")]
    NoMakeupHours,
    #[error("holidays: closed more than {max} days in a row from {from}")]
    ClosedTooLong { from: NaiveDate, max: i64 },
    #[error("calendar: {0}")]
    Toml(String),
    #[error("{value:?} is not an SLA duration like \"15m\", \"1h30m\" or \"3bd\": {reason}")]
    BadDuration { value: String, reason: String },
}

// ---------------------------------------------------------------------------------------------
// The calendar
// ---------------------------------------------------------------------------------------------

/// When the contact center is open, in one IANA zone; see the module docs for the rules.
///
/// Loading it through serde (`[calendar]` in the policy TOML) validates it; the component types
/// (`Tz`, [`DayHours`], [`TimeWindow`]) cannot hold malformed values, and [`Self::validate`]
/// checks the rules that span fields. The arithmetic stays total and terminating even for a
/// calendar whose public fields were later changed into an invalid combination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CalendarFile", into = "CalendarFile")]
pub struct BusinessCalendar {
    /// Zone of the service hours, holidays and workdays.
    pub time_zone: Tz,
    /// Windows for each weekday.
    pub hours: WeeklyHours,
    /// Dates closed all day.
    pub holidays: BTreeSet<NaiveDate>,
    /// Make-up working days (调休), open with `makeup_hours` whatever their weekday.
    pub workdays: BTreeSet<NaiveDate>,
    /// Windows of a make-up workday; Monday's hours unless configured.
    pub makeup_hours: DayHours,
    /// Also closed on the policy's declared public holidays (`[public_holidays.YYYY]`) and open
    /// on its make-up workdays; the policy merges them into `holidays`/`workdays` at load
    /// ([`Self::with_public_holidays`]).
    pub public_holidays: bool,
    /// Windows of a holiday: closed unless configured (`holiday_hours`). A calendar staffed
    /// every day still lists the holidays, so that e.g. the holiday duty rota knows them.
    pub holiday_hours: DayHours,
}

impl Default for BusinessCalendar {
    /// Asia/Shanghai, 08:00-22:00 every day, no holidays.
    fn default() -> Self {
        Self {
            time_zone: DEFAULT_TIME_ZONE,
            hours: WeeklyHours::default(),
            holidays: BTreeSet::new(),
            workdays: BTreeSet::new(),
            makeup_hours: DayHours(vec![DEFAULT_WINDOW]),
            public_holidays: false,
            holiday_hours: DayHours::closed(),
        }
    }
}

impl BusinessCalendar {
    /// A validated calendar; `makeup_hours: None` means Monday's hours.
    pub fn new(
        time_zone: Tz,
        hours: WeeklyHours,
        holidays: impl IntoIterator<Item = NaiveDate>,
        workdays: impl IntoIterator<Item = NaiveDate>,
        makeup_hours: Option<DayHours>,
    ) -> Result<Self, CalendarError> {
        let makeup_hours = makeup_hours.unwrap_or_else(|| hours.mon.clone());
        let calendar = Self {
            time_zone,
            hours,
            holidays: holidays.into_iter().collect(),
            workdays: workdays.into_iter().collect(),
            makeup_hours,
            public_holidays: false,
            holiday_hours: DayHours::closed(),
        };
        calendar.validate()?;
        Ok(calendar)
    }

    /// Parses and validates a TOML document whose top level is the calendar table, i.e. the
    /// body of a `[calendar]` section without its header.
    pub fn from_toml_str(text: &str) -> Result<Self, CalendarError> {
        let file: CalendarFile = toml::from_str(text).map_err(|err| CalendarError::Toml(err.to_string()))?;
        Self::try_from(file)
    }

    /// Checks the rules that involve more than one field: some weekly service hours, no date
    /// both holiday and workday, hours for make-up workdays, and no closure longer than
    /// [`MAX_CLOSED_RUN_DAYS`].
    pub fn validate(&self) -> Result<(), CalendarError> {
        if self.hours.all().iter().all(|day| day.is_closed()) {
            return Err(CalendarError::NeverOpen);
        }
        if let Some(&date) = self.holidays.intersection(&self.workdays).next() {
            return Err(CalendarError::HolidayAlsoWorkday { date });
        }
        if !self.workdays.is_empty() && self.makeup_hours.is_closed() {
            return Err(CalendarError::NoMakeupHours);
        }
        if let Some((from, days)) = self.longest_closed_run()
            && days > MAX_CLOSED_RUN_DAYS
        {
            return Err(CalendarError::ClosedTooLong {
                from,
                max: MAX_CLOSED_RUN_DAYS,
            });
        }
        Ok(())
    }

    /// This calendar with the declared public holidays and make-up workdays merged in, when it
    /// asks for them (`public_holidays = true`); unchanged otherwise. Validated again: a date
    /// this calendar lists as its own workday cannot be a declared holiday.
    pub fn with_public_holidays(&self, declared: &PublicHolidays) -> Result<Self, CalendarError> {
        let mut calendar = self.clone();
        if calendar.public_holidays {
            calendar.holidays.extend(declared.holidays.iter().copied());
            calendar.workdays.extend(declared.workdays.iter().copied());
            calendar.validate()?;
        }
        Ok(calendar)
    }

    /// The windows that apply on a local date. A date wrongly listed both as holiday and as
    /// workday (which validation refuses) is treated as a holiday.
    pub fn hours_on(&self, date: NaiveDate) -> &DayHours {
        if self.holidays.contains(&date) {
            &self.holiday_hours
        } else if self.workdays.contains(&date) {
            &self.makeup_hours
        } else {
            self.hours.get(date.weekday())
        }
    }

    /// True when `t` lies inside a service window (windows are half-open: open at the opening
    /// instant, closed at the closing one).
    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        self.spans_from(t).next().is_some_and(|span| span.start <= t)
    }

    /// `t` itself if open, else the next opening; [`NEVER`] if there is none.
    pub fn next_open(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.spans_from(t).next().map_or(NEVER, |span| span.start.max(t))
    }

    /// Open time within `[a, b)`; zero when `b <= a`. Walks window by window, so the cost grows
    /// with the number of days in the range.
    pub fn business_time_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        if b <= a {
            return total;
        }
        for span in self.spans_from(a) {
            if span.start >= b {
                break;
            }
            total += span.end.min(b) - span.start.max(a);
        }
        total
    }

    /// When a target of `duration` on `clock`, started at `start`, falls due (see the module
    /// docs for the exact rules); [`NEVER`] if the calendar has no open time ahead.
    pub fn deadline(&self, start: DateTime<Utc>, duration: SlaDuration, clock: Clock) -> DateTime<Utc> {
        match clock {
            Clock::Wall => start.checked_add_signed(duration.wall_time()).unwrap_or(NEVER),
            Clock::Business | Clock::Calendar(_) => {
                let clock_start = if duration.business_days() > 0 {
                    self.add_business_days(start, duration.business_days())
                } else {
                    self.next_open(start)
                };
                self.advance_business(clock_start, duration.clock_time())
            }
        }
    }

    /// Like [`Self::deadline`], but the clock stands still during `pauses` (e.g. "waiting for
    /// the customer"). Each pause is `(from, until)`, `until: None` meaning still paused.
    ///
    /// Pauses may come in any order and overlap; the parts before `start` are ignored. The
    /// deadline is first computed without pauses; then every pause that begins before the
    /// deadline as it stands pushes it later by the time that pause holds on `clock` (open time
    /// on the business clock), in order, so a pause that begins only because an earlier one
    /// pushed the deadline counts too. For hour/minute durations this is exactly "the clock does
    /// not run inside a pause": running time outside pauses equals the duration. A pause that
    /// begins at or after the deadline changes nothing, the target was already due. Returns
    /// `None` when a still-open pause began before the deadline: it is unknown until it ends.
    pub fn deadline_with_pauses(
        &self,
        start: DateTime<Utc>,
        duration: SlaDuration,
        clock: Clock,
        pauses: &[(DateTime<Utc>, Option<DateTime<Utc>>)],
    ) -> Option<DateTime<Utc>> {
        let mut deadline = self.deadline(start, duration, clock);
        for (from, until) in merge_pauses(start, pauses) {
            if from >= deadline {
                break;
            }
            let until = until?;
            let held = self.clock_time_between(from, until, clock);
            deadline = self.advance(deadline, held, clock);
        }
        Some(deadline)
    }

    fn clock_time_between(&self, a: DateTime<Utc>, b: DateTime<Utc>, clock: Clock) -> Duration {
        match clock {
            Clock::Business | Clock::Calendar(_) => self.business_time_between(a, b),
            Clock::Wall if b > a => b - a,
            Clock::Wall => Duration::zero(),
        }
    }

    fn advance(&self, from: DateTime<Utc>, amount: Duration, clock: Clock) -> DateTime<Utc> {
        match clock {
            Clock::Business | Clock::Calendar(_) => self.advance_business(from, amount),
            Clock::Wall => from.checked_add_signed(amount).unwrap_or(NEVER),
        }
    }

    /// The first instant at or after `from` by which `amount` of open time has elapsed since
    /// `from`; `from` itself for a zero amount.
    fn advance_business(&self, from: DateTime<Utc>, amount: Duration) -> DateTime<Utc> {
        if amount <= Duration::zero() {
            return from;
        }
        let mut remaining = amount;
        for span in self.spans_from(from) {
            let begin = span.start.max(from);
            let available = span.end - begin;
            if available >= remaining {
                return begin + remaining;
            }
            remaining -= available;
        }
        NEVER
    }

    /// "Same time of day, `days` open days later", as laid out in the module docs.
    fn add_business_days(&self, start: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        let mut spans = self.spans_from(start);
        let Some(first) = spans.next() else {
            return NEVER;
        };
        let clock_start = first.start.max(start);
        if days == 0 {
            return clock_start;
        }
        let Some(time_of_day) = local_naive(self.time_zone, clock_start).map(|l| l.time()) else {
            return NEVER;
        };
        // Spans come in date order, so each change of date is the next open day.
        let mut date = first.date;
        let mut counted = 0;
        let mut span = loop {
            let Some(span) = spans.next() else {
                return NEVER;
            };
            if span.date != date {
                date = span.date;
                counted += 1;
                if counted == days {
                    break span;
                }
            }
        };
        let Some(target) = local_to_utc(self.time_zone, date.and_time(time_of_day)) else {
            return NEVER;
        };
        loop {
            if span.end > target {
                return span.start.max(target);
            }
            match spans.next() {
                Some(next) if next.date == date => span = next,
                // τ is after the day's last window: due at its close.
                _ => return span.end,
            }
        }
    }

    /// Open intervals in time order, starting with the first one that ends after `t`.
    fn spans_from(&self, t: DateTime<Utc>) -> impl Iterator<Item = Span> + '_ {
        // Start a day early: a window of the previous local date can still be running at `t`
        // (only around daylight-saving changes, but the cost is one day's windows).
        let first_date = local_naive(self.time_zone, t).and_then(|l| l.date().pred_opt());
        Spans {
            calendar: self,
            next_date: first_date,
            day: Vec::with_capacity(4),
            position: 0,
            floor: None,
            closed_streak: 0,
        }
        .skip_while(move |span| span.end <= t)
    }

    /// Appends the open intervals of local date `date`, clipped so that nothing starts before
    /// `floor` (the end of the previous interval); with the monotone mapping this never cuts
    /// anything in a valid calendar, it only guards against double-counting in odd zones.
    fn push_spans(&self, date: NaiveDate, out: &mut Vec<Span>, floor: &mut Option<DateTime<Utc>>) {
        for window in self.hours_on(date).windows() {
            let (Some(start), Some(end)) = (
                instant_of(self.time_zone, date, window.start),
                instant_of(self.time_zone, date, window.end),
            ) else {
                continue;
            };
            let start = floor.map_or(start, |floor| start.max(floor));
            if end > start {
                out.push(Span { start, end, date });
                *floor = Some(end);
            }
        }
    }

    /// Start date and length of the longest run of closed days that contains a holiday, the
    /// length counted only up to `MAX_CLOSED_RUN_DAYS + 1`. Weekly
    /// closed days alone cannot exceed six in a row once some weekday has hours, so only runs
    /// through holidays can be long, and each holiday is visited once.
    fn longest_closed_run(&self) -> Option<(NaiveDate, i64)> {
        let is_closed = |date: NaiveDate| self.hours_on(date).is_closed();
        let mut longest: Option<(NaiveDate, i64)> = None;
        let mut examined_until: Option<NaiveDate> = None;
        for &holiday in &self.holidays {
            if examined_until.is_some_and(|until| holiday <= until) || !is_closed(holiday) {
                continue;
            }
            let mut from = holiday;
            while let Some(previous) = from.pred_opt()
                && is_closed(previous)
                && (holiday - previous).num_days() <= MAX_CLOSED_RUN_DAYS
            {
                from = previous;
            }
            let mut to = holiday;
            while let Some(next) = to.succ_opt()
                && is_closed(next)
                && (next - from).num_days() <= MAX_CLOSED_RUN_DAYS
            {
                to = next;
            }
            examined_until = Some(to);
            let days = (to - from).num_days() + 1;
            if longest.is_none_or(|(_, best)| days > best) {
                longest = Some((from, days));
            }
        }
        longest
    }
}

/// One open interval `[start, end)` and the local date whose window it comes from.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    date: NaiveDate,
}

/// Walks the calendar date by date, yielding each date's open intervals. Stops after
/// `SEARCH_HORIZON_DAYS` closed days in a row or at the end of chrono's date range.
struct Spans<'a> {
    calendar: &'a BusinessCalendar,
    next_date: Option<NaiveDate>,
    day: Vec<Span>,
    position: usize,
    floor: Option<DateTime<Utc>>,
    closed_streak: u32,
}

impl Iterator for Spans<'_> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        loop {
            if let Some(&span) = self.day.get(self.position) {
                self.position += 1;
                return Some(span);
            }
            if self.closed_streak > SEARCH_HORIZON_DAYS {
                return None;
            }
            let date = self.next_date?;
            self.next_date = date.succ_opt();
            self.day.clear();
            self.position = 0;
            self.calendar.push_spans(date, &mut self.day, &mut self.floor);
            if self.day.is_empty() {
                self.closed_streak += 1;
            } else {
                self.closed_streak = 0;
            }
        }
    }
}

/// Sorts pauses, drops their parts before `start` and merges overlapping or touching ones; a
/// still-open pause swallows everything after it.
fn merge_pauses(
    start: DateTime<Utc>,
    pauses: &[(DateTime<Utc>, Option<DateTime<Utc>>)],
) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let mut sorted: Vec<_> = pauses
        .iter()
        .map(|&(from, until)| (from.max(start), until))
        .filter(|&(from, until)| until.is_none_or(|until| until > from))
        .collect();
    sorted.sort_by_key(|&(from, _)| from);
    let mut merged: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::with_capacity(sorted.len());
    for (from, until) in sorted {
        if let Some(last) = merged.last_mut() {
            match last.1 {
                None => break,
                Some(last_until) if from <= last_until => {
                    last.1 = until.map(|until| until.max(last_until));
                    continue;
                }
                Some(_) => {}
            }
        }
        merged.push((from, until));
    }
    merged
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests;
