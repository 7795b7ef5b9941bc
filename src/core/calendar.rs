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
use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// Windows of a closed day; `hours_on` hands it out for holidays.
static CLOSED: DayHours = DayHours(Vec::new());

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
// Service windows
// ---------------------------------------------------------------------------------------------

/// One service window of a day, `[start, end)` in local wall-clock minutes after midnight.
/// Always `start < end <= 24:00`: service past midnight is written as two windows, one ending at
/// "24:00" and one starting at "00:00" the next day, so that each window belongs to one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeWindow {
    start: u16,
    end: u16,
}

impl TimeWindow {
    /// A window from minute `start_minute` to minute `end_minute` after local midnight
    /// (`end_minute` may be 1440, i.e. "24:00").
    pub fn new(start_minute: u16, end_minute: u16) -> Result<Self, CalendarError> {
        Self::checked(start_minute, end_minute).map_err(|reason| CalendarError::BadWindow {
            field: "window".to_owned(),
            value: format!("{start_minute}-{end_minute} (minutes)"),
            reason,
        })
    }

    fn checked(start: u16, end: u16) -> Result<Self, String> {
        if end > MINUTES_PER_DAY {
            return Err("a window ends at 24:00 at the latest".to_owned());
        }
        if start >= end {
            return Err("the start must be before the end; a window cannot cross midnight, \
                 so split \"22:00-02:00\" into \"22:00-24:00\" and the next day's \"00:00-02:00\""
                .to_owned());
        }
        Ok(Self { start, end })
    }

    /// Minutes after local midnight at which the window opens.
    pub fn start_minute(&self) -> u16 {
        self.start
    }

    /// Minutes after local midnight at which the window closes (1440 = "24:00").
    pub fn end_minute(&self) -> u16 {
        self.end
    }

    /// Nominal length in minutes (a daylight-saving change can make the real interval differ).
    pub fn minutes(&self) -> u16 {
        self.end - self.start
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

impl FromStr for TimeWindow {
    type Err = CalendarError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_window(s).map_err(|reason| CalendarError::BadWindow {
            field: "window".to_owned(),
            value: s.to_owned(),
            reason,
        })
    }
}

/// Parses "HH:MM-HH:MM"; the error is the reason only, the caller adds the field.
fn parse_window(text: &str) -> Result<TimeWindow, String> {
    let (start, end) = text
        .split_once('-')
        .ok_or_else(|| "expected \"HH:MM-HH:MM\"".to_owned())?;
    let start = parse_minute(start.trim())?;
    let end = parse_minute(end.trim())?;
    if start == MINUTES_PER_DAY {
        return Err("a window cannot start at 24:00".to_owned());
    }
    TimeWindow::checked(start, end)
}

/// Parses "HH:MM" (00:00 to 24:00) into minutes after midnight.
fn parse_minute(text: &str) -> Result<u16, String> {
    let bad = || format!("{text:?} is not a time \"HH:MM\" between 00:00 and 24:00");
    let (hours, minutes) = text.split_once(':').ok_or_else(bad)?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(hours) || hours.len() > 2 || !all_digits(minutes) || minutes.len() != 2 {
        return Err(bad());
    }
    let hours: u16 = hours.parse().map_err(|_| bad())?;
    let minutes: u16 = minutes.parse().map_err(|_| bad())?;
    if minutes >= 60 || hours > 24 || (hours == 24 && minutes != 0) {
        return Err(bad());
    }
    Ok(hours * 60 + minutes)
}

/// The service windows of one day: sorted and non-overlapping (windows may touch), which the
/// constructors enforce so the arithmetic below never has to re-check it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DayHours(Vec<TimeWindow>);

impl DayHours {
    /// A day without service.
    pub const fn closed() -> Self {
        Self(Vec::new())
    }

    /// The given windows, in any order; refused if two of them overlap.
    pub fn new(windows: impl IntoIterator<Item = TimeWindow>) -> Result<Self, CalendarError> {
        Self::build("hours", windows.into_iter().collect())
    }

    fn build(field: &str, mut windows: Vec<TimeWindow>) -> Result<Self, CalendarError> {
        windows.sort_unstable();
        if let Some(pair) = windows.windows(2).find(|pair| pair[1].start < pair[0].end) {
            return Err(CalendarError::OverlappingWindows {
                field: field.to_owned(),
                first: pair[0],
                second: pair[1],
            });
        }
        Ok(Self(windows))
    }

    /// Parses a configuration list such as `["08:00-12:00", "13:00-18:00"]`; `field` names it in
    /// errors (`hours.mon` gives `hours.mon[1]` for the second entry).
    fn parse(field: &str, items: &[String]) -> Result<Self, CalendarError> {
        let windows = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                parse_window(item).map_err(|reason| CalendarError::BadWindow {
                    field: format!("{field}[{i}]"),
                    value: item.clone(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::build(field, windows)
    }

    /// The windows, sorted by start.
    pub fn windows(&self) -> &[TimeWindow] {
        &self.0
    }

    /// True for a day without service.
    pub fn is_closed(&self) -> bool {
        self.0.is_empty()
    }

    /// Nominal open minutes of the day (ignoring daylight-saving changes).
    pub fn open_minutes(&self) -> u32 {
        self.0.iter().map(|w| u32::from(w.minutes())).sum()
    }

    fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// Service windows for each weekday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyHours {
    pub mon: DayHours,
    pub tue: DayHours,
    pub wed: DayHours,
    pub thu: DayHours,
    pub fri: DayHours,
    pub sat: DayHours,
    pub sun: DayHours,
}

impl WeeklyHours {
    /// The same windows on all seven days.
    pub fn every_day(hours: DayHours) -> Self {
        Self {
            mon: hours.clone(),
            tue: hours.clone(),
            wed: hours.clone(),
            thu: hours.clone(),
            fri: hours.clone(),
            sat: hours.clone(),
            sun: hours,
        }
    }

    /// `hours` Monday to Friday, closed at the weekend.
    pub fn weekdays(hours: DayHours) -> Self {
        Self {
            sat: DayHours::closed(),
            sun: DayHours::closed(),
            ..Self::every_day(hours)
        }
    }

    /// The windows of `day`.
    pub fn get(&self, day: Weekday) -> &DayHours {
        match day {
            Weekday::Mon => &self.mon,
            Weekday::Tue => &self.tue,
            Weekday::Wed => &self.wed,
            Weekday::Thu => &self.thu,
            Weekday::Fri => &self.fri,
            Weekday::Sat => &self.sat,
            Weekday::Sun => &self.sun,
        }
    }

    fn all(&self) -> [&DayHours; 7] {
        [
            &self.mon, &self.tue, &self.wed, &self.thu, &self.fri, &self.sat, &self.sun,
        ]
    }
}

impl Default for WeeklyHours {
    fn default() -> Self {
        Self::every_day(DayHours(vec![DEFAULT_WINDOW]))
    }
}

// ---------------------------------------------------------------------------------------------
// SLA durations and clocks
// ---------------------------------------------------------------------------------------------

/// Which clock an SLA target runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// Only the calendar's open time counts.
    Business,
    /// Every second counts, open or not.
    Wall,
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Clock::Business => "business",
            Clock::Wall => "wall",
        })
    }
}

/// An SLA target's length: whole business days plus a clock-time part, written as in policy
/// files: "15m", "2h", "90s", "1h30m", "24h", "1bd", "3bd", "1bd4h". Units may appear once each,
/// largest first (`bd`, `h`, `m`, `s`). There is deliberately no `d`: "1d" could mean 24 hours
/// or one business day, so it must be written as "24h" or "1bd".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SlaDuration {
    business_days: u32,
    /// At most `MAX_SLA_SECONDS`, which fits a `u32`.
    seconds: u32,
}

impl SlaDuration {
    /// No time at all: due as soon as the clock starts.
    pub const ZERO: SlaDuration = SlaDuration {
        business_days: 0,
        seconds: 0,
    };

    /// `business_days` business days followed by `seconds` of clock time.
    pub fn new(business_days: u32, seconds: u64) -> Result<Self, CalendarError> {
        let bad = |reason: String| CalendarError::BadDuration {
            value: format!("{business_days}bd{seconds}s"),
            reason,
        };
        if business_days > MAX_BUSINESS_DAYS {
            return Err(bad(format!("at most {MAX_BUSINESS_DAYS} business days")));
        }
        let seconds = u32::try_from(seconds)
            .ok()
            .filter(|&seconds| u64::from(seconds) <= MAX_SLA_SECONDS)
            .ok_or_else(|| bad(format!("at most {} hours", MAX_SLA_SECONDS / 3600)))?;
        Ok(Self { business_days, seconds })
    }

    /// A clock-time duration of `seconds`.
    pub fn from_secs(seconds: u64) -> Result<Self, CalendarError> {
        Self::new(0, seconds)
    }

    /// A duration of `days` business days.
    pub fn from_business_days(days: u32) -> Result<Self, CalendarError> {
        Self::new(days, 0)
    }

    /// The business-day part.
    pub fn business_days(&self) -> u32 {
        self.business_days
    }

    /// The clock-time part (hours, minutes, seconds).
    pub fn clock_time(&self) -> Duration {
        Duration::seconds(i64::from(self.seconds))
    }

    /// The whole duration on the wall clock, a business day counting as 24 hours.
    pub fn wall_time(&self) -> Duration {
        Duration::days(i64::from(self.business_days)) + self.clock_time()
    }

    /// True for "0s".
    pub fn is_zero(&self) -> bool {
        self.business_days == 0 && self.seconds == 0
    }

    /// Both parts added; `None` past the caps.
    pub fn checked_add(self, other: SlaDuration) -> Option<SlaDuration> {
        Self::new(
            self.business_days.checked_add(other.business_days)?,
            u64::from(self.seconds) + u64::from(other.seconds),
        )
        .ok()
    }
}

impl FromStr for SlaDuration {
    type Err = CalendarError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| CalendarError::BadDuration {
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad("empty"));
        }
        let mut previous_rank = u8::MAX;
        let mut business_days: u64 = 0;
        let mut seconds: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad("expected a number"));
            }
            let (number, tail) = rest.split_at(digits);
            let number: u64 = number.parse().map_err(|_| bad("number too large"))?;
            // (rank, unit length, seconds per unit); rank enforces "each once, largest first".
            let (rank, unit_len, per_unit) = if tail.starts_with("bd") {
                (4, 2, 0)
            } else if tail.starts_with('h') {
                (3, 1, 3600)
            } else if tail.starts_with('m') {
                (2, 1, 60)
            } else if tail.starts_with('s') {
                (1, 1, 1)
            } else if tail.starts_with('d') {
                return Err(bad(
                    "\"d\" is ambiguous: write \"24h\" for a day of clock time or \"1bd\" for a business day",
                ));
            } else {
                return Err(bad("expected a unit: bd, h, m or s"));
            };
            if rank >= previous_rank {
                return Err(bad("each unit at most once, largest first (bd, h, m, s)"));
            }
            previous_rank = rank;
            if rank == 4 {
                business_days = number;
            } else {
                seconds = number
                    .checked_mul(per_unit)
                    .and_then(|part| part.checked_add(seconds))
                    .ok_or_else(|| bad("too long"))?;
            }
            rest = &tail[unit_len..];
        }
        let business_days = u32::try_from(business_days).map_err(|_| bad("too many business days"))?;
        Self::new(business_days, seconds).map_err(|err| match err {
            CalendarError::BadDuration { reason, .. } => bad(&reason),
            other => other,
        })
    }
}

impl fmt::Display for SlaDuration {
    /// The canonical spelling: "1bd2h30m", "90s" as "1m30s", zero as "0s".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0s");
        }
        if self.business_days > 0 {
            write!(f, "{}bd", self.business_days)?;
        }
        let (hours, minutes, seconds) = (self.seconds / 3600, self.seconds % 3600 / 60, self.seconds % 60);
        for (value, unit) in [(hours, "h"), (minutes, "m"), (seconds, "s")] {
            if value > 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for SlaDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SlaDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
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

    /// The windows that apply on a local date. A date wrongly listed both as holiday and as
    /// workday (which validation refuses) is treated as a holiday.
    pub fn hours_on(&self, date: NaiveDate) -> &DayHours {
        if self.holidays.contains(&date) {
            &CLOSED
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
            Clock::Business => {
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
            Clock::Business => self.business_time_between(a, b),
            Clock::Wall if b > a => b - a,
            Clock::Wall => Duration::zero(),
        }
    }

    fn advance(&self, from: DateTime<Utc>, amount: Duration, clock: Clock) -> DateTime<Utc> {
        match clock {
            Clock::Business => self.advance_business(from, amount),
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
// Local time <-> UTC
// ---------------------------------------------------------------------------------------------

/// Local wall time of `t`; `None` only at the edges of chrono's range (where `naive_local`
/// would panic).
fn local_naive(tz: Tz, t: DateTime<Utc>) -> Option<NaiveDateTime> {
    let offset = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    t.naive_utc().checked_add_offset(offset)
}

/// The instant of minute `minute` (0..=1440) of local date `date`.
fn instant_of(tz: Tz, date: NaiveDate, minute: u16) -> Option<DateTime<Utc>> {
    let local = if minute >= MINUTES_PER_DAY {
        date.succ_opt()?.and_time(NaiveTime::MIN)
    } else {
        date.and_time(NaiveTime::from_num_seconds_from_midnight_opt(
            u32::from(minute) * 60,
            0,
        )?)
    };
    local_to_utc(tz, local)
}

/// The instant a local wall time stands for: its first occurrence, or, when a spring-forward
/// jump skips it, the instant of the jump. Both choices keep the mapping monotone, which is what
/// keeps windows from overlapping.
fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        MappedLocalTime::Single(t) => Some(t.with_timezone(&Utc)),
        MappedLocalTime::Ambiguous(a, b) => Some(a.with_timezone(&Utc).min(b.with_timezone(&Utc))),
        MappedLocalTime::None => gap_end(tz, local),
    }
}

/// The first instant at which the local clock reads `local` or later, for a `local` skipped by
/// a forward jump. Bisection over whole seconds (jumps happen on whole seconds) between a day
/// before and after: UTC offsets stay within ±26 hours, and zones do not jump twice in a day,
/// so "reads at least `local`" switches from false to true once in that range. About 17 steps,
/// and only on the days of a jump.
fn gap_end(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    const REACH: i64 = 27 * 3600;
    let guess = local.and_utc().timestamp();
    let reads_at_least = |timestamp: i64| -> Option<bool> {
        let t = DateTime::from_timestamp(timestamp, 0)?;
        Some(local_naive(tz, t)? >= local)
    };
    let mut before = guess.checked_sub(REACH)?;
    let mut after = guess.checked_add(REACH)?;
    while after - before > 1 {
        let middle = before + (after - before) / 2;
        if reads_at_least(middle)? {
            after = middle;
        } else {
            before = middle;
        }
    }
    DateTime::from_timestamp(after, 0)
}

// ---------------------------------------------------------------------------------------------
// Configuration file form
// ---------------------------------------------------------------------------------------------

/// The `[calendar]` table as written; converting it validates everything and names the field
/// at fault in errors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    #[serde(default = "default_time_zone_name")]
    time_zone: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    holidays: Vec<DateEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    workdays: Vec<DateEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    makeup_hours: Option<Vec<String>>,
    // Last, because TOML writes tables after plain values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hours: Option<HoursFile>,
}

fn default_time_zone_name() -> String {
    DEFAULT_TIME_ZONE.name().to_owned()
}

/// `[calendar.hours]`: if present, all seven days must be, so that a forgotten `sat` is an
/// error rather than a silent guess of either "closed" or "default hours".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursFile {
    mon: Option<Vec<String>>,
    tue: Option<Vec<String>>,
    wed: Option<Vec<String>>,
    thu: Option<Vec<String>>,
    fri: Option<Vec<String>>,
    sat: Option<Vec<String>>,
    sun: Option<Vec<String>>,
}

impl HoursFile {
    fn into_weekly(self) -> Result<WeeklyHours, CalendarError> {
        fn day(name: &str, items: Option<Vec<String>>) -> Result<DayHours, CalendarError> {
            let field = format!("hours.{name}");
            let items = items.ok_or_else(|| CalendarError::MissingDay { field: field.clone() })?;
            DayHours::parse(&field, &items)
        }
        Ok(WeeklyHours {
            mon: day("mon", self.mon)?,
            tue: day("tue", self.tue)?,
            wed: day("wed", self.wed)?,
            thu: day("thu", self.thu)?,
            fri: day("fri", self.fri)?,
            sat: day("sat", self.sat)?,
            sun: day("sun", self.sun)?,
        })
    }
}

/// One `holidays`/`workdays` entry: "2026-02-16" or the inclusive range
/// "2026-02-15..2026-02-23", quoted or as a bare TOML date.
#[derive(Debug, Clone)]
struct DateEntry(String);

impl Serialize for DateEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DateEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = DateEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date \"YYYY-MM-DD\" or a range \"YYYY-MM-DD..YYYY-MM-DD\"")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<DateEntry, E> {
                Ok(DateEntry(value.to_owned()))
            }

            // A bare TOML date (2026-02-16, unquoted) reaches serde as a one-entry map holding
            // its text; accepting it spares operators a confusing "expected a string".
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DateEntry, A::Error> {
                match map.next_entry::<de::IgnoredAny, String>()? {
                    Some((_, text)) => Ok(DateEntry(text)),
                    None => Err(de::Error::invalid_length(0, &self)),
                }
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

fn parse_dates(field: &str, entries: &[DateEntry]) -> Result<BTreeSet<NaiveDate>, CalendarError> {
    let mut dates = BTreeSet::new();
    for (i, DateEntry(text)) in entries.iter().enumerate() {
        let bad = |reason: String| CalendarError::BadDate {
            field: format!("{field}[{i}]"),
            value: text.clone(),
            reason,
        };
        let parse = |part: &str| {
            NaiveDate::parse_from_str(part.trim(), "%Y-%m-%d").map_err(|err| bad(format!("{:?}: {err}", part.trim())))
        };
        let (first, last) = match text.split_once("..") {
            Some((first, last)) => (parse(first)?, parse(last)?),
            None => {
                let date = parse(text)?;
                (date, date)
            }
        };
        if last < first {
            return Err(bad("the range ends before it starts".to_owned()));
        }
        if (last - first).num_days() >= MAX_DATE_RANGE_DAYS {
            return Err(bad(format!("a range may span at most {MAX_DATE_RANGE_DAYS} days")));
        }
        dates.extend(first.iter_days().take_while(|date| *date <= last));
    }
    Ok(dates)
}

/// Writes dates back compactly, consecutive days as one "first..last" range.
fn date_entries(dates: &BTreeSet<NaiveDate>) -> Vec<DateEntry> {
    let entry = |(first, last): (NaiveDate, NaiveDate)| {
        DateEntry(if first == last {
            first.to_string()
        } else {
            format!("{first}..{last}")
        })
    };
    let mut entries = Vec::new();
    let mut run: Option<(NaiveDate, NaiveDate)> = None;
    for &date in dates {
        run = match run {
            Some((first, last)) if last.succ_opt() == Some(date) && (date - first).num_days() < MAX_DATE_RANGE_DAYS => {
                Some((first, date))
            }
            Some(done) => {
                entries.push(entry(done));
                Some((date, date))
            }
            None => Some((date, date)),
        };
    }
    entries.extend(run.map(entry));
    entries
}

impl TryFrom<CalendarFile> for BusinessCalendar {
    type Error = CalendarError;

    fn try_from(file: CalendarFile) -> Result<Self, Self::Error> {
        let time_zone: Tz = file
            .time_zone
            .trim()
            .parse()
            .map_err(|_| CalendarError::UnknownTimeZone {
                field: "time_zone",
                value: file.time_zone.clone(),
            })?;
        let hours = match file.hours {
            Some(hours) => hours.into_weekly()?,
            None => WeeklyHours::default(),
        };
        let makeup_hours = match &file.makeup_hours {
            Some(items) => Some(DayHours::parse("makeup_hours", items)?),
            None => None,
        };
        Self::new(
            time_zone,
            hours,
            parse_dates("holidays", &file.holidays)?,
            parse_dates("workdays", &file.workdays)?,
            makeup_hours,
        )
    }
}

impl From<BusinessCalendar> for CalendarFile {
    fn from(calendar: BusinessCalendar) -> Self {
        let day = |hours: &DayHours| Some(hours.to_strings());
        let weekly = &calendar.hours;
        CalendarFile {
            time_zone: calendar.time_zone.name().to_owned(),
            holidays: date_entries(&calendar.holidays),
            workdays: date_entries(&calendar.workdays),
            makeup_hours: day(&calendar.makeup_hours),
            hours: Some(HoursFile {
                mon: day(&weekly.mon),
                tue: day(&weekly.tue),
                wed: day(&weekly.wed),
                thu: day(&weekly.thu),
                fri: day(&weekly.fri),
                sat: day(&weekly.sat),
                sun: day(&weekly.sun),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;
    use proptest::prelude::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn dur(text: &str) -> SlaDuration {
        text.parse().unwrap()
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn calendar(toml: &str) -> BusinessCalendar {
        BusinessCalendar::from_toml_str(toml).unwrap()
    }

    fn error_of(toml: &str) -> String {
        BusinessCalendar::from_toml_str(toml).unwrap_err().to_string()
    }

    const WEEKDAYS_ONLY: &str = r#"
        [hours]
        mon = ["09:00-18:00"]
        tue = ["09:00-18:00"]
        wed = ["09:00-18:00"]
        thu = ["09:00-18:00"]
        fri = ["09:00-18:00"]
        sat = []
        sun = []
    "#;

    fn every_day(zone: &str, windows: &str) -> BusinessCalendar {
        calendar(&format!(
            r#"
            time_zone = "{zone}"
            [hours]
            mon = {windows}
            tue = {windows}
            wed = {windows}
            thu = {windows}
            fri = {windows}
            sat = {windows}
            sun = {windows}
            "#
        ))
    }

    // ----- concrete dates ---------------------------------------------------------------

    #[test]
    fn default_calendar_is_shanghai_eight_to_ten() {
        let cal = BusinessCalendar::default();
        assert_eq!(cal, calendar(""));
        assert_eq!(cal.time_zone, Tz::Asia__Shanghai);
        assert!(cal.is_open(utc("2026-03-10T08:00:00+08:00")));
        assert!(cal.is_open(utc("2026-03-10T21:59:59+08:00")));
        assert!(!cal.is_open(utc("2026-03-10T22:00:00+08:00")));
        assert!(!cal.is_open(utc("2026-03-10T07:59:59+08:00")));
        assert_eq!(
            cal.business_time_between(utc("2026-03-10T00:00:00+08:00"), utc("2026-03-11T00:00:00+08:00")),
            Duration::hours(14)
        );
    }

    #[test]
    fn thirty_minutes_from_ten_to_ten_is_due_next_morning() {
        let cal = BusinessCalendar::default();
        let start = utc("2026-03-10T21:50:00+08:00");
        assert_eq!(
            cal.deadline(start, dur("30m"), Clock::Business),
            utc("2026-03-11T08:20:00+08:00")
        );
        assert_eq!(
            cal.deadline(start, dur("30m"), Clock::Wall),
            utc("2026-03-10T22:20:00+08:00")
        );
    }

    #[test]
    fn deadline_reached_at_close_is_the_close() {
        let cal = BusinessCalendar::default();
        assert_eq!(
            cal.deadline(utc("2026-03-10T21:50:00+08:00"), dur("10m"), Clock::Business),
            utc("2026-03-10T22:00:00+08:00")
        );
    }

    #[test]
    fn clock_starts_at_next_opening() {
        let cal = BusinessCalendar::default();
        let night = utc("2026-03-10T23:30:00+08:00");
        assert_eq!(cal.next_open(night), utc("2026-03-11T08:00:00+08:00"));
        assert_eq!(
            cal.deadline(night, dur("15m"), Clock::Business),
            utc("2026-03-11T08:15:00+08:00")
        );
        assert_eq!(
            cal.deadline(night, SlaDuration::ZERO, Clock::Business),
            utc("2026-03-11T08:00:00+08:00")
        );
        let open = utc("2026-03-11T09:00:00+08:00");
        assert_eq!(cal.next_open(open), open);
    }

    #[test]
    fn holiday_block_is_skipped() {
        let cal = calendar(r#"holidays = ["2026-02-16..2026-02-22"]"#);
        assert_eq!(cal.holidays.len(), 7);
        assert!(!cal.is_open(utc("2026-02-18T12:00:00+08:00")));
        assert_eq!(
            cal.deadline(utc("2026-02-15T21:00:00+08:00"), dur("2h"), Clock::Business),
            utc("2026-02-23T09:00:00+08:00")
        );
        assert_eq!(
            cal.business_time_between(utc("2026-02-15T00:00:00+08:00"), utc("2026-02-24T00:00:00+08:00")),
            Duration::hours(28)
        );
        assert_eq!(
            cal.next_open(utc("2026-02-16T00:00:00+08:00")),
            utc("2026-02-23T08:00:00+08:00")
        );
    }

    #[test]
    fn makeup_workday_saturday_is_counted() {
        let plain = calendar(WEEKDAYS_ONLY);
        let with_workday = calendar(&format!("workdays = [\"2026-02-28\"]\n{WEEKDAYS_ONLY}"));
        let friday = utc("2026-02-27T17:00:00+08:00");
        assert_eq!(
            plain.deadline(friday, dur("3h"), Clock::Business),
            utc("2026-03-02T11:00:00+08:00")
        );
        assert_eq!(
            with_workday.deadline(friday, dur("3h"), Clock::Business),
            utc("2026-02-28T11:00:00+08:00")
        );
        assert!(with_workday.is_open(utc("2026-02-28T09:00:00+08:00")));
        assert!(!with_workday.is_open(utc("2026-03-01T09:00:00+08:00")));
    }

    #[test]
    fn makeup_hours_can_differ_from_monday() {
        let cal = calendar(&format!(
            "workdays = [\"2026-02-28\"]\nmakeup_hours = [\"10:00-12:00\"]\n{WEEKDAYS_ONLY}"
        ));
        assert!(!cal.is_open(utc("2026-02-28T09:30:00+08:00")));
        assert!(cal.is_open(utc("2026-02-28T10:30:00+08:00")));
    }

    #[test]
    fn one_business_day_from_friday_is_monday_same_time() {
        let cal = calendar(WEEKDAYS_ONLY);
        let friday = utc("2026-03-13T10:00:00+08:00");
        assert_eq!(
            cal.deadline(friday, dur("1bd"), Clock::Business),
            utc("2026-03-16T10:00:00+08:00")
        );
        assert_eq!(
            cal.deadline(friday, dur("3bd"), Clock::Business),
            utc("2026-03-18T10:00:00+08:00")
        );
        assert_eq!(
            cal.deadline(friday, dur("1bd"), Clock::Wall),
            utc("2026-03-14T10:00:00+08:00")
        );
        assert_eq!(
            cal.deadline(friday, dur("1bd2h"), Clock::Business),
            utc("2026-03-16T12:00:00+08:00")
        );
        // Saturday counts from Monday's opening.
        assert_eq!(
            cal.deadline(utc("2026-03-14T15:00:00+08:00"), dur("1bd"), Clock::Business),
            utc("2026-03-17T09:00:00+08:00")
        );
    }

    #[test]
    fn business_days_clamp_into_shorter_days() {
        // Saturday 10:00-14:00 only: the same time of day is clamped into Saturday's hours.
        let cal = calendar(
            r#"
            [hours]
            mon = ["08:00-22:00"]
            tue = ["08:00-22:00"]
            wed = ["08:00-22:00"]
            thu = ["08:00-22:00"]
            fri = ["08:00-22:00"]
            sat = ["10:00-12:00", "13:00-14:00"]
            sun = []
            "#,
        );
        let on_friday = |time: &str| utc(&format!("2026-03-13T{time}+08:00"));
        let on_saturday = |time: &str| utc(&format!("2026-03-14T{time}+08:00"));
        let next = |time: &str| cal.deadline(on_friday(time), dur("1bd"), Clock::Business);
        assert_eq!(next("08:30:00"), on_saturday("10:00:00"));
        assert_eq!(next("11:00:00"), on_saturday("11:00:00"));
        assert_eq!(next("12:30:00"), on_saturday("13:00:00"));
        assert_eq!(next("20:00:00"), on_saturday("14:00:00"));
    }

    #[test]
    fn several_windows_a_day_and_lunch_break() {
        let cal = every_day("Asia/Shanghai", r#"["13:00-18:00", "09:00-12:00"]"#);
        assert_eq!(cal.hours.mon.windows().len(), 2);
        assert!(!cal.is_open(utc("2026-03-10T12:30:00+08:00")));
        assert_eq!(
            cal.deadline(utc("2026-03-10T11:00:00+08:00"), dur("2h"), Clock::Business),
            utc("2026-03-10T14:00:00+08:00")
        );
        assert_eq!(
            cal.deadline(utc("2026-03-10T11:00:00+08:00"), dur("1h"), Clock::Business),
            utc("2026-03-10T12:00:00+08:00")
        );
    }

    #[test]
    fn overnight_service_as_two_windows_is_continuous() {
        let cal = calendar(
            r#"
            [hours]
            mon = ["00:00-02:00", "20:00-24:00"]
            tue = ["00:00-02:00", "20:00-24:00"]
            wed = ["00:00-02:00", "20:00-24:00"]
            thu = ["00:00-02:00", "20:00-24:00"]
            fri = ["00:00-02:00", "20:00-24:00"]
            sat = ["00:00-02:00"]
            sun = []
            "#,
        );
        assert!(cal.is_open(utc("2026-03-10T23:59:59+08:00")));
        assert!(cal.is_open(utc("2026-03-11T00:00:00+08:00")));
        assert_eq!(
            cal.deadline(utc("2026-03-10T23:00:00+08:00"), dur("2h"), Clock::Business),
            utc("2026-03-11T01:00:00+08:00")
        );
    }

    #[test]
    fn round_the_clock_calendar_matches_wall_clock_without_dst() {
        let cal = every_day("Asia/Shanghai", r#"["00:00-24:00"]"#);
        let start = utc("2026-03-10T05:17:00Z");
        for text in ["1m", "2h", "24h", "1bd", "3bd5h"] {
            assert_eq!(
                cal.deadline(start, dur(text), Clock::Business),
                cal.deadline(start, dur(text), Clock::Wall),
                "{text}"
            );
        }
    }

    // ----- daylight-saving changes ------------------------------------------------------

    #[test]
    fn new_york_business_hours_across_spring_forward() {
        let cal = every_day("America/New_York", r#"["08:00-22:00"]"#);
        // Saturday 21:00 EST; Sunday opens 08:00 EDT (12:00 UTC).
        let start = utc("2026-03-07T21:00:00-05:00");
        assert_eq!(
            cal.deadline(start, dur("2h"), Clock::Business),
            utc("2026-03-08T09:00:00-04:00")
        );
        assert_eq!(
            cal.business_time_between(utc("2026-03-08T00:00:00-05:00"), utc("2026-03-09T00:00:00-04:00")),
            Duration::hours(14)
        );
    }

    #[test]
    fn new_york_window_spanning_the_gap_is_an_hour_shorter() {
        let cal = every_day("America/New_York", r#"["01:00-04:00"]"#);
        let day = |a: &str, b: &str| cal.business_time_between(utc(a), utc(b));
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT.
        assert_eq!(
            day("2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00"),
            Duration::hours(2)
        );
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:00 is read first in EDT.
        assert_eq!(
            day("2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"),
            Duration::hours(4)
        );
        assert!(cal.is_open(utc("2026-11-01T01:30:00-05:00")));
    }

    #[test]
    fn new_york_window_starting_inside_the_gap_opens_at_the_jump() {
        let cal = every_day("America/New_York", r#"["02:30-05:00"]"#);
        assert!(!cal.is_open(utc("2026-03-08T06:59:59Z")));
        assert!(cal.is_open(utc("2026-03-08T07:00:00Z")));
        assert_eq!(
            cal.next_open(utc("2026-03-08T00:00:00Z")),
            utc("2026-03-08T03:00:00-04:00")
        );
        assert_eq!(
            cal.deadline(utc("2026-03-08T00:00:00Z"), dur("2h"), Clock::Business),
            utc("2026-03-08T05:00:00-04:00")
        );
        // A window lying wholly inside the gap is empty that day.
        let inside = every_day("America/New_York", r#"["02:10-02:50"]"#);
        assert_eq!(
            inside.next_open(utc("2026-03-08T00:00:00-05:00")),
            utc("2026-03-09T02:10:00-04:00")
        );
    }

    #[test]
    fn new_york_window_ending_inside_the_repeated_hour_closes_at_first_reading() {
        let cal = every_day("America/New_York", r#"["00:00-01:30"]"#);
        assert!(cal.is_open(utc("2026-11-01T01:29:00-04:00")));
        assert!(!cal.is_open(utc("2026-11-01T01:15:00-05:00")));
        assert_eq!(
            cal.business_time_between(utc("2026-11-01T00:00:00-04:00"), utc("2026-11-02T00:00:00-05:00")),
            Duration::minutes(90)
        );
    }

    #[test]
    fn new_york_business_day_across_dst_keeps_local_time() {
        let cal = calendar(&format!("time_zone = \"America/New_York\"\n{WEEKDAYS_ONLY}"));
        let friday = utc("2026-03-06T10:00:00-05:00");
        let monday = utc("2026-03-09T10:00:00-04:00");
        assert_eq!(cal.deadline(friday, dur("1bd"), Clock::Business), monday);
        assert_eq!(monday - friday, Duration::hours(71));
    }

    #[test]
    fn berlin_round_the_clock_days_are_23_and_25_hours() {
        let cal = every_day("Europe/Berlin", r#"["00:00-24:00"]"#);
        assert_eq!(
            cal.business_time_between(utc("2026-03-29T00:00:00+01:00"), utc("2026-03-30T00:00:00+02:00")),
            Duration::hours(23)
        );
        assert_eq!(
            cal.business_time_between(utc("2026-10-25T00:00:00+02:00"), utc("2026-10-26T00:00:00+01:00")),
            Duration::hours(25)
        );
        let start = utc("2026-03-28T22:00:00+01:00");
        assert_eq!(
            cal.deadline(start, dur("24h"), Clock::Business),
            utc("2026-03-29T23:00:00+02:00")
        );
        // One business day is the same local time the next day: 23 real hours here.
        assert_eq!(
            cal.deadline(start, dur("1bd"), Clock::Business),
            utc("2026-03-29T22:00:00+02:00")
        );
    }

    #[test]
    fn berlin_window_holding_the_repeated_hour_counts_it() {
        let cal = every_day("Europe/Berlin", r#"["02:00-03:00"]"#);
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:00-03:00 is read twice.
        assert_eq!(
            cal.business_time_between(utc("2026-10-25T00:00:00Z"), utc("2026-10-26T00:00:00Z")),
            Duration::hours(2)
        );
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST, so the window is empty.
        assert_eq!(
            cal.business_time_between(utc("2026-03-29T00:00:00Z"), utc("2026-03-30T00:00:00Z")),
            Duration::zero()
        );
    }

    #[test]
    fn samoa_skipped_day_is_closed() {
        // Pacific/Apia skipped 2011-12-30 entirely (UTC-10 to UTC+14).
        let cal = every_day("Pacific/Apia", r#"["08:00-22:00"]"#);
        let start = utc("2011-12-29T21:00:00-10:00");
        assert_eq!(
            cal.deadline(start, dur("2h"), Clock::Business),
            utc("2011-12-31T09:00:00+14:00")
        );
    }

    // ----- pauses -----------------------------------------------------------------------

    #[test]
    fn pauses_stop_the_clock() {
        let cal = BusinessCalendar::default();
        let at = |time: &str| utc(&format!("2026-03-10T{time}+08:00"));
        let start = at("09:00:00");
        let four = dur("4h");
        let paused = |pauses: &[(DateTime<Utc>, Option<DateTime<Utc>>)]| {
            cal.deadline_with_pauses(start, four, Clock::Business, pauses)
        };
        assert_eq!(paused(&[]), Some(at("13:00:00")));
        assert_eq!(paused(&[(at("10:00:00"), Some(at("11:00:00")))]), Some(at("14:00:00")));
        // Overlapping pauses count once.
        assert_eq!(
            paused(&[
                (at("10:30:00"), Some(at("11:30:00"))),
                (at("10:00:00"), Some(at("11:00:00")))
            ]),
            Some(at("14:30:00"))
        );
        // Before the start: ignored.
        assert_eq!(paused(&[(at("07:00:00"), Some(at("08:59:00")))]), Some(at("13:00:00")));
        // Still paused since before the deadline: unknown.
        assert_eq!(paused(&[(at("10:00:00"), None)]), None);
        // Paused only after the target was already due: known.
        assert_eq!(paused(&[(at("14:00:00"), None)]), Some(at("13:00:00")));
        // A pause from before the start that is still open.
        assert_eq!(paused(&[(at("08:00:00"), None)]), None);
    }

    #[test]
    fn pause_over_closed_hours_only_holds_open_time() {
        let cal = BusinessCalendar::default();
        let start = utc("2026-03-10T21:00:00+08:00");
        let pause = (utc("2026-03-10T22:00:00+08:00"), Some(utc("2026-03-11T08:30:00+08:00")));
        assert_eq!(
            cal.deadline_with_pauses(start, dur("2h"), Clock::Business, &[pause]),
            Some(utc("2026-03-11T09:30:00+08:00"))
        );
        assert_eq!(
            cal.deadline_with_pauses(start, dur("2h"), Clock::Wall, &[pause]),
            Some(utc("2026-03-11T09:30:00+08:00"))
        );
    }

    #[test]
    fn pauses_extend_business_day_targets() {
        let cal = calendar(WEEKDAYS_ONLY);
        let friday = |time: &str| utc(&format!("2026-03-13T{time}+08:00"));
        assert_eq!(
            cal.deadline_with_pauses(
                friday("10:00:00"),
                dur("1bd"),
                Clock::Business,
                &[(friday("12:00:00"), Some(friday("14:00:00")))]
            ),
            Some(utc("2026-03-16T12:00:00+08:00"))
        );
    }

    // ----- termination and edges --------------------------------------------------------

    #[test]
    fn never_open_calendar_terminates() {
        let cal = BusinessCalendar {
            hours: WeeklyHours::every_day(DayHours::closed()),
            ..BusinessCalendar::default()
        };
        assert_eq!(cal.validate(), Err(CalendarError::NeverOpen));
        let t = utc("2026-03-10T09:00:00Z");
        assert!(!cal.is_open(t));
        assert_eq!(cal.next_open(t), NEVER);
        assert_eq!(cal.deadline(t, dur("30m"), Clock::Business), NEVER);
        assert_eq!(cal.deadline(t, dur("2bd"), Clock::Business), NEVER);
        assert_eq!(cal.business_time_between(t, t + Duration::days(30)), Duration::zero());
        assert_eq!(
            cal.deadline_with_pauses(t, dur("30m"), Clock::Business, &[(t, Some(t))]),
            Some(NEVER)
        );
    }

    #[test]
    fn calendar_open_only_on_one_workday_terminates() {
        // Unvalidated: no weekly hours, open on a single make-up workday.
        let cal = BusinessCalendar {
            hours: WeeklyHours::every_day(DayHours::closed()),
            workdays: BTreeSet::from([date("2026-03-10")]),
            ..BusinessCalendar::default()
        };
        let t = utc("2026-03-09T09:00:00Z");
        assert_eq!(cal.next_open(t), utc("2026-03-10T08:00:00+08:00"));
        assert_eq!(cal.deadline(t, dur("15h"), Clock::Business), NEVER);
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        for zone in ["Asia/Shanghai", "America/New_York", "Pacific/Kiritimati"] {
            let cal = every_day(zone, r#"["08:00-22:00"]"#);
            for t in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
                let _ = cal.is_open(t);
                let _ = cal.next_open(t);
                let _ = cal.business_time_between(t, t);
                let near = |days: i64| t.checked_add_signed(Duration::days(days)).unwrap_or(t);
                let _ = cal.business_time_between(near(-3), t);
                let _ = cal.business_time_between(t, near(3));
                for clock in [Clock::Business, Clock::Wall] {
                    for text in ["0s", "90s", "3bd", "366bd8784h"] {
                        let _ = cal.deadline(t, dur(text), clock);
                        let _ = cal.deadline_with_pauses(t, dur(text), clock, &[(t, Some(t))]);
                    }
                }
            }
        }
    }

    #[test]
    fn largest_durations_stay_quick_and_finite() {
        let cal = every_day("Europe/Berlin", r#"["09:00-09:01"]"#);
        let start = utc("2026-03-10T00:00:00Z");
        let due = cal.deadline(start, dur("366bd8784h"), Clock::Business);
        assert!(due < NEVER);
        assert_eq!(
            cal.business_time_between(cal.deadline(start, dur("366bd"), Clock::Business), due),
            Duration::hours(8784)
        );
    }

    // ----- configuration ----------------------------------------------------------------

    #[test]
    fn sample_policy_file_parses() {
        // The file is included into config/policy.toml, which names its calendars.
        #[derive(Deserialize)]
        struct Policy {
            calendars: std::collections::BTreeMap<String, BusinessCalendar>,
        }
        let policy: Policy = toml::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/policy/calendar.toml"
        )))
        .unwrap();
        let cal = &policy.calendars["default"];
        assert_eq!(cal.time_zone, Tz::Asia__Shanghai);
        assert!(cal.holidays.contains(&date("2026-02-17")));
        assert!(cal.workdays.contains(&date("2026-02-28")));
        assert!(!cal.is_open(utc("2026-02-17T10:00:00+08:00")));
        assert!(cal.is_open(utc("2026-02-28T10:00:00+08:00")));
        assert_eq!(cal.validate(), Ok(()));
    }

    #[test]
    fn serde_round_trip_keeps_the_calendar() {
        let cal = calendar(&format!(
            r#"
            time_zone = "Europe/Berlin"
            holidays = ["2026-12-24..2026-12-26", "2026-01-01", 2026-05-01]
            workdays = ["2026-12-19"]
            makeup_hours = ["10:00-14:00"]
            {WEEKDAYS_ONLY}
            "#
        ));
        assert!(cal.holidays.contains(&date("2026-05-01")));
        let text = toml::to_string(&cal).unwrap();
        assert!(text.contains("\"2026-12-24..2026-12-26\""), "{text}");
        assert_eq!(BusinessCalendar::from_toml_str(&text).unwrap(), cal);
        // Policy loaders that merge files go through toml::Value; bare dates must survive that.
        let merged: toml::Value = toml::from_str("holidays = [2026-05-01]").unwrap();
        let from_value: BusinessCalendar = merged.try_into().unwrap();
        assert!(from_value.holidays.contains(&date("2026-05-01")));
        let value = toml::Value::try_from(&cal).unwrap();
        assert_eq!(
            value.get("time_zone").and_then(toml::Value::as_str),
            Some("Europe/Berlin")
        );
        assert_eq!(value.try_into::<BusinessCalendar>().unwrap(), cal);
    }

    #[test]
    fn validation_errors_name_the_field() {
        let cases = [
            (r#"time_zone = "Mars/Olympus""#, "time_zone: unknown IANA time zone"),
            ("[hours]\nmon = [\"25:00-26:00\"]", "hours.mon[0]"),
            (
                &WEEKDAYS_ONLY.replace("tue = [\"09:00-18:00\"]", "tue = [\"09:00-18:00\", \"17:00-19:00\"]"),
                "hours.tue: windows 09:00-18:00 and 17:00-19:00 overlap",
            ),
            (
                &WEEKDAYS_ONLY.replace("wed = [\"09:00-18:00\"]", "wed = [\"18:00-09:00\"]"),
                "hours.wed[0]",
            ),
            (
                &WEEKDAYS_ONLY.replace("thu = [\"09:00-18:00\"]", "thu = [\"9am-5pm\"]"),
                "hours.thu[0]",
            ),
            (&WEEKDAYS_ONLY.replace("sun = []", ""), "hours.sun: missing"),
            (
                "[hours]\nmon=[]\ntue=[]\nwed=[]\nthu=[]\nfri=[]\nsat=[]\nsun=[]",
                "never open",
            ),
            (
                "holidays = [\"2026-02-28\"]\nworkdays = [\"2026-02-28\"]",
                "2026-02-28 is listed both",
            ),
            (r#"holidays = ["2026-02-30"]"#, "holidays[0]"),
            (r#"holidays = ["2026-01-01", "2026-03-01..2026-02-01"]"#, "holidays[1]"),
            (r#"workdays = ["tomorrow"]"#, "workdays[0]"),
            (r#"makeup_hours = ["08:00-24:30"]"#, "makeup_hours[0]"),
            (
                r#"holidays = ["2026-01-01..2026-12-31", "2027-01-01..2027-02-01"]"#,
                "holidays: closed more than 366 days in a row from 2026-01-01",
            ),
            (r#"holiday = ["2026-01-01"]"#, "unknown field"),
        ];
        for (toml, expected) in cases {
            let message = error_of(toml);
            assert!(message.contains(expected), "{toml:?} gave {message:?}");
        }
        let no_makeup = format!(
            "workdays = [\"2026-02-28\"]\n{}",
            WEEKDAYS_ONLY.replace("mon = [\"09:00-18:00\"]", "mon = []")
        );
        assert_eq!(
            BusinessCalendar::from_toml_str(&no_makeup),
            Err(CalendarError::NoMakeupHours)
        );
    }

    #[test]
    fn errors_through_serde_name_the_field_too() {
        #[derive(Debug, Deserialize)]
        struct Policy {
            #[allow(dead_code)]
            calendar: BusinessCalendar,
        }
        let err = toml::from_str::<Policy>("[calendar.hours]\nmon = [\"08:00-22:00\", \"21:00-23:00\"]")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hours.mon: windows 08:00-22:00 and 21:00-23:00 overlap"),
            "{err}"
        );
    }

    #[test]
    fn constructor_validates() {
        let workday = date("2026-02-28");
        assert_eq!(
            BusinessCalendar::new(Tz::Asia__Shanghai, WeeklyHours::default(), [workday], [workday], None),
            Err(CalendarError::HolidayAlsoWorkday { date: workday })
        );
        let cal = BusinessCalendar::new(
            Tz::Europe__Berlin,
            WeeklyHours::weekdays(
                DayHours::new(["09:00-12:00".parse().unwrap(), "13:00-17:00".parse().unwrap()]).unwrap(),
            ),
            [],
            [workday],
            None,
        )
        .unwrap();
        assert_eq!(cal.makeup_hours.open_minutes(), 7 * 60);
        assert!(DayHours::new([TimeWindow::new(0, 600).unwrap(), TimeWindow::new(599, 700).unwrap()]).is_err());
        assert!(TimeWindow::new(600, 600).is_err());
        assert!(TimeWindow::new(0, 1441).is_err());
        assert_eq!(TimeWindow::new(1380, 1440).unwrap().to_string(), "23:00-24:00");
    }

    #[test]
    fn sla_durations_parse() {
        let ok = [
            ("15m", 0, 900),
            ("2h", 0, 7200),
            ("90s", 0, 90),
            ("1h30m", 0, 5400),
            ("24h", 0, 86_400),
            ("1bd", 1, 0),
            ("3bd", 3, 0),
            ("1bd4h", 1, 14_400),
            ("0m", 0, 0),
            (" 2h ", 0, 7200),
            ("8784h", 0, MAX_SLA_SECONDS),
        ];
        for (text, days, seconds) in ok {
            let parsed = dur(text);
            assert_eq!(
                (parsed.business_days(), u64::from(parsed.seconds)),
                (days, seconds),
                "{text}"
            );
        }
        for bad in [
            "",
            "15",
            "m",
            "1d",
            "1h1h",
            "30m1h",
            "1.5h",
            "-1h",
            "1H",
            "1 h",
            "8785h",
            "367bd",
            "99999999999999999999h",
            "1bd1bd",
            "1w",
        ] {
            assert!(bad.parse::<SlaDuration>().is_err(), "{bad:?} parsed");
        }
        assert!("1d".parse::<SlaDuration>().unwrap_err().to_string().contains("24h"));
        assert_eq!(dur("90s").to_string(), "1m30s");
        assert_eq!(dur("1bd24h").to_string(), "1bd24h");
        assert_eq!(SlaDuration::ZERO.to_string(), "0s");
    }

    #[test]
    fn sla_duration_and_clock_serde() {
        #[derive(Debug, Deserialize, Serialize, PartialEq)]
        struct Target {
            within: SlaDuration,
            clock: Clock,
        }
        let target: Target = toml::from_str("within = \"1h30m\"\nclock = \"business\"").unwrap();
        assert_eq!(
            target,
            Target {
                within: dur("1h30m"),
                clock: Clock::Business
            }
        );
        assert_eq!(
            toml::to_string(&target).unwrap(),
            "within = \"1h30m\"\nclock = \"business\"\n"
        );
        assert!(toml::from_str::<Target>("within = \"1d\"\nclock = \"wall\"").is_err());
        assert!(toml::from_str::<Target>("within = \"1h\"\nclock = \"Business\"").is_err());
    }

    // ----- properties -------------------------------------------------------------------

    const PROPERTY_ZONES: [Tz; 5] = [
        Tz::Asia__Shanghai,
        Tz::America__New_York,
        Tz::Europe__Berlin,
        Tz::Australia__Lord_Howe,
        Tz::America__Santiago,
    ];

    /// Random windows on a quarter-hour grid, so that they often touch DST change hours.
    fn arb_day() -> impl Strategy<Value = DayHours> {
        prop::collection::vec(0u16..=96, 0..=6).prop_map(|mut points| {
            points.sort_unstable();
            points.dedup();
            DayHours::new(
                points
                    .chunks_exact(2)
                    .map(|pair| TimeWindow::new(pair[0] * 15, pair[1] * 15).unwrap()),
            )
            .unwrap()
        })
    }

    fn day_from(base: &str, offset: u32) -> NaiveDate {
        date(base) + Duration::days(i64::from(offset))
    }

    fn arb_calendar_in(zones: Vec<Tz>, day: BoxedStrategy<DayHours>) -> impl Strategy<Value = BusinessCalendar> {
        (
            prop::sample::select(zones),
            prop::array::uniform7(day),
            prop::collection::btree_set(0u32..430, 0..25),
            prop::collection::btree_set(0u32..430, 0..6),
            arb_day(),
        )
            .prop_map(
                |(zone, [mon, tue, wed, thu, fri, sat, sun], holidays, workdays, makeup)| {
                    let mut hours = WeeklyHours {
                        mon,
                        tue,
                        wed,
                        thu,
                        fri,
                        sat,
                        sun,
                    };
                    if hours.all().iter().all(|day| day.is_closed()) {
                        hours.wed = DayHours(vec![DEFAULT_WINDOW]);
                    }
                    let makeup = if makeup.is_closed() {
                        DayHours(vec![DEFAULT_WINDOW])
                    } else {
                        makeup
                    };
                    let holidays: BTreeSet<_> = holidays.into_iter().map(|d| day_from("2025-12-01", d)).collect();
                    let workdays = workdays
                        .into_iter()
                        .map(|d| day_from("2025-12-01", d))
                        .filter(|d| !holidays.contains(d))
                        .collect::<Vec<_>>();
                    BusinessCalendar::new(zone, hours, holidays, workdays, Some(makeup)).unwrap()
                },
            )
    }

    fn arb_calendar() -> impl Strategy<Value = BusinessCalendar> {
        arb_calendar_in(PROPERTY_ZONES.to_vec(), arb_day().boxed())
    }

    /// Instants from December 2025 to January 2027, on whole seconds.
    fn arb_instant() -> impl Strategy<Value = DateTime<Utc>> {
        (1_764_547_200i64..1_801_353_600).prop_map(|t| DateTime::from_timestamp(t, 0).unwrap())
    }

    /// Instants within three days of the 2026 DST changes of New York and Berlin.
    fn arb_instant_near_dst() -> impl Strategy<Value = DateTime<Utc>> {
        (
            prop::sample::select(vec![
                "2026-03-08T07:00:00Z",
                "2026-11-01T06:00:00Z",
                "2026-03-29T01:00:00Z",
                "2026-10-25T01:00:00Z",
            ]),
            -3 * 86_400i64..3 * 86_400,
        )
            .prop_map(|(change, offset)| utc(change) + Duration::seconds(offset))
    }

    fn arb_clock_time() -> impl Strategy<Value = SlaDuration> {
        prop_oneof![
            (0u64..=48 * 60).prop_map(|m| SlaDuration::from_secs(m * 60).unwrap()),
            (0u64..=120 * 3600).prop_map(|s| SlaDuration::from_secs(s).unwrap()),
        ]
    }

    fn arb_duration() -> impl Strategy<Value = SlaDuration> {
        (0u32..=5, arb_clock_time()).prop_map(|(days, time)| SlaDuration::new(days, u64::from(time.seconds)).unwrap())
    }

    /// Open, or the close of the window just before (windows are half-open).
    fn open_or_window_end(cal: &BusinessCalendar, t: DateTime<Utc>) -> bool {
        cal.is_open(t) || cal.is_open(t - Duration::nanoseconds(1))
    }

    fn check_core_properties(
        cal: &BusinessCalendar,
        start: DateTime<Utc>,
        time: SlaDuration,
        extra: SlaDuration,
    ) -> Result<(), TestCaseError> {
        // Wall clock is plain addition, business days as 24 hours.
        for d in [time, extra] {
            prop_assert_eq!(cal.deadline(start, d, Clock::Wall), start + d.wall_time());
        }
        // Business clock: exactly the requested open time, ending in service hours.
        let time_only = SlaDuration::from_secs(u64::from(time.seconds)).unwrap();
        let due = cal.deadline(start, time_only, Clock::Business);
        prop_assert!(due >= start);
        prop_assert!(due < NEVER);
        prop_assert_eq!(cal.business_time_between(start, due), time_only.clock_time());
        prop_assert!(open_or_window_end(cal, due), "due {} not in service hours", due);
        // Business days (and mixes) end in service hours too.
        let due_extra = cal.deadline(start, extra, Clock::Business);
        prop_assert!(due_extra >= start);
        prop_assert!(
            open_or_window_end(cal, due_extra),
            "due {} not in service hours",
            due_extra
        );
        // Monotone: adding duration never moves a deadline earlier.
        let sum = time.checked_add(extra).unwrap();
        for clock in [Clock::Business, Clock::Wall] {
            let longer = cal.deadline(start, sum, clock);
            prop_assert!(longer >= cal.deadline(start, time, clock));
            prop_assert!(longer >= cal.deadline(start, extra, clock));
        }
        // next_open and business_time_between agree.
        let opens = cal.next_open(start);
        prop_assert!(opens >= start);
        prop_assert!(cal.is_open(opens));
        prop_assert_eq!(cal.business_time_between(start, opens), Duration::zero());
        prop_assert_eq!(cal.is_open(start), opens == start);
        let later = start + time.wall_time();
        prop_assert_eq!(
            cal.business_time_between(start, due_extra.max(later)),
            cal.business_time_between(start, later) + cal.business_time_between(later, due_extra.max(later))
        );
        prop_assert!(cal.business_time_between(start, later) <= later - start);
        Ok(())
    }

    fn check_holidays_closed(cal: &BusinessCalendar, minute: u16) -> Result<(), TestCaseError> {
        for &holiday in &cal.holidays {
            let (Some(from), Some(to)) = (
                instant_of(cal.time_zone, holiday, 0),
                instant_of(cal.time_zone, holiday, MINUTES_PER_DAY),
            ) else {
                continue;
            };
            prop_assert_eq!(cal.business_time_between(from, to), Duration::zero());
            let inside = instant_of(cal.time_zone, holiday, minute % MINUTES_PER_DAY).unwrap();
            prop_assert!(!cal.is_open(inside));
        }
        Ok(())
    }

    /// Effective running time: open (or all) time in [start, end) outside the pauses.
    fn running_time(
        cal: &BusinessCalendar,
        clock: Clock,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        pauses: &[(DateTime<Utc>, DateTime<Utc>)],
    ) -> Duration {
        let mut sorted: Vec<_> = pauses.to_vec();
        sorted.sort();
        let mut held = Duration::zero();
        let mut covered = start;
        for (from, until) in sorted {
            let from = from.max(covered);
            let until = until.min(end);
            if until > from {
                held += cal.clock_time_between(from, until, clock);
                covered = until;
            }
        }
        cal.clock_time_between(start, end, clock) - held
    }

    proptest! {
        #[test]
        fn core_properties(
            cal in arb_calendar(),
            start in arb_instant(),
            time in arb_clock_time(),
            extra in arb_duration(),
        ) {
            check_core_properties(&cal, start, time, extra)?;
        }

        #[test]
        fn core_properties_near_dst_changes(
            cal in arb_calendar_in(vec![Tz::America__New_York, Tz::Europe__Berlin], arb_day().boxed()),
            start in arb_instant_near_dst(),
            time in arb_clock_time(),
            extra in arb_duration(),
        ) {
            check_core_properties(&cal, start, time, extra)?;
        }

        #[test]
        fn holidays_are_never_open(cal in arb_calendar(), minute in 0u16..1440) {
            check_holidays_closed(&cal, minute)?;
        }

        #[test]
        fn later_start_never_gives_earlier_deadline(
            cal in arb_calendar(),
            a in arb_instant(),
            b in arb_instant(),
            time in arb_clock_time(),
        ) {
            let (early, late) = (a.min(b), a.max(b));
            prop_assert!(cal.deadline(early, time, Clock::Business) <= cal.deadline(late, time, Clock::Business));
        }

        #[test]
        fn business_days_on_uniform_calendar_are_whole_days_of_open_time(
            cal in arb_calendar_in(
                PROPERTY_ZONES.to_vec(),
                // Away from the hours at which these zones change clocks.
                prop::collection::vec(16u16..=92, 2..=4).prop_map(|mut points| {
                    points.sort_unstable();
                    points.dedup();
                    let windows: Vec<_> = points.chunks_exact(2).map(|p| TimeWindow::new(p[0] * 15, p[1] * 15).unwrap()).collect();
                    if windows.is_empty() { DayHours(vec![DEFAULT_WINDOW]) } else { DayHours(windows) }
                }).boxed(),
            ).prop_map(|mut cal| {
                cal.hours = WeeklyHours::every_day(cal.hours.mon.clone());
                cal.makeup_hours = cal.hours.mon.clone();
                cal
            }),
            start in arb_instant(),
            days in 1u32..=5,
        ) {
            let due = cal.deadline(start, SlaDuration::from_business_days(days).unwrap(), Clock::Business);
            let per_day = Duration::minutes(i64::from(cal.hours.mon.open_minutes()));
            prop_assert_eq!(cal.business_time_between(start, due), per_day * days as i32);
            prop_assert!(cal.is_open(due));
        }

        #[test]
        fn paused_clock_runs_exactly_the_duration(
            cal in arb_calendar(),
            start in arb_instant(),
            time in arb_clock_time(),
            raw_pauses in prop::collection::vec((-86_400i64..6 * 86_400, 0i64..2 * 86_400), 0..4),
            wall in any::<bool>(),
        ) {
            let clock = if wall { Clock::Wall } else { Clock::Business };
            let pauses: Vec<_> = raw_pauses
                .iter()
                .map(|&(from, length)| (start + Duration::seconds(from), start + Duration::seconds(from + length)))
                .collect();
            let as_options: Vec<_> = pauses.iter().map(|&(from, until)| (from, Some(until))).collect();
            let plain = cal.deadline(start, time, clock);
            prop_assert_eq!(cal.deadline_with_pauses(start, time, clock, &[]), Some(plain));
            let due = cal.deadline_with_pauses(start, time, clock, &as_options).unwrap();
            prop_assert!(due >= plain);
            prop_assert_eq!(running_time(&cal, clock, start, due, &pauses), time.clock_time());
            if clock == Clock::Business {
                prop_assert!(open_or_window_end(&cal, due) || time.is_zero());
            }
        }

        #[test]
        fn open_ended_pause_makes_deadline_unknown_only_if_it_starts_before(
            cal in arb_calendar(),
            start in arb_instant(),
            duration in arb_duration(),
            raw_pauses in prop::collection::vec((0i64..6 * 86_400, 0i64..86_400), 0..3),
            open_from in -86_400i64..8 * 86_400,
        ) {
            let open_from = start + Duration::seconds(open_from);
            // Closed pauses, cut where the open-ended one begins (it covers the rest).
            let closed: Vec<_> = raw_pauses
                .iter()
                .map(|&(from, length)| (start + Duration::seconds(from), start + Duration::seconds(from + length)))
                .filter(|&(from, _)| from < open_from)
                .map(|(from, until)| (from, Some(until.min(open_from))))
                .collect();
            let known = cal.deadline_with_pauses(start, duration, Clock::Business, &closed).unwrap();
            let mut all = closed.clone();
            all.push((open_from, None));
            match cal.deadline_with_pauses(start, duration, Clock::Business, &all) {
                Some(due) => {
                    prop_assert_eq!(due, known);
                    prop_assert!(due <= open_from.max(start));
                }
                None => prop_assert!(known > open_from.max(start)),
            }
        }

        #[test]
        fn shanghai_is_open_matches_local_wall_time(cal in arb_calendar_in(vec![Tz::Asia__Shanghai], arb_day().boxed()), t in arb_instant()) {
            let local = t.with_timezone(&cal.time_zone).naive_local();
            let second = local.num_seconds_from_midnight();
            let expected = cal
                .hours_on(local.date())
                .windows()
                .iter()
                .any(|w| u32::from(w.start) * 60 <= second && second < u32::from(w.end) * 60);
            prop_assert_eq!(cal.is_open(t), expected);
        }

        #[test]
        fn sla_duration_display_parses_back(days in 0u32..=MAX_BUSINESS_DAYS, seconds in 0u64..=MAX_SLA_SECONDS) {
            let d = SlaDuration::new(days, seconds).unwrap();
            prop_assert_eq!(d.to_string().parse::<SlaDuration>().unwrap(), d);
        }

        #[test]
        fn calendar_serde_round_trips(cal in arb_calendar()) {
            let text = toml::to_string(&cal).unwrap();
            prop_assert_eq!(BusinessCalendar::from_toml_str(&text).unwrap(), cal);
        }
    }
}
