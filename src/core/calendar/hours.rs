//! Service windows: a day's opening hours and the week's.

use std::fmt;
use std::str::FromStr;

use chrono::Weekday;

use super::*;

// ---------------------------------------------------------------------------------------------
// Service windows
// ---------------------------------------------------------------------------------------------

/// One service window of a day, `[start, end)` in local wall-clock minutes after midnight.
/// Always `start < end <= 24:00`: service past midnight is written as two windows, one ending at
/// "24:00" and one starting at "00:00" the next day, so that each window belongs to one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeWindow {
    pub(super) start: u16,
    pub(super) end: u16,
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

    pub(super) fn checked(start: u16, end: u16) -> Result<Self, String> {
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
pub(super) fn parse_window(text: &str) -> Result<TimeWindow, String> {
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
pub(super) fn parse_minute(text: &str) -> Result<u16, String> {
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
pub struct DayHours(pub(super) Vec<TimeWindow>);

impl DayHours {
    /// A day without service.
    pub const fn closed() -> Self {
        Self(Vec::new())
    }

    /// The given windows, in any order; refused if two of them overlap.
    pub fn new(windows: impl IntoIterator<Item = TimeWindow>) -> Result<Self, CalendarError> {
        Self::build("hours", windows.into_iter().collect())
    }

    pub(super) fn build(field: &str, mut windows: Vec<TimeWindow>) -> Result<Self, CalendarError> {
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
    pub(super) fn parse(field: &str, items: &[String]) -> Result<Self, CalendarError> {
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

    pub(super) fn to_strings(&self) -> Vec<String> {
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

    pub(super) fn all(&self) -> [&DayHours; 7] {
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
