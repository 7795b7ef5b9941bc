//! The calendar's configuration file form and its conversion to and from the calendar.

use std::collections::BTreeSet;
use std::fmt;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::*;

// Configuration file form
// ---------------------------------------------------------------------------------------------

/// The `[calendar]` table as written; converting it validates everything and names the field
/// at fault in errors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CalendarFile {
    #[serde(default = "default_time_zone_name")]
    time_zone: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    holidays: Vec<DateEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    workdays: Vec<DateEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    makeup_hours: Option<Vec<String>>,
    /// Closed on the declared public holidays, open on the declared make-up workdays.
    #[serde(default)]
    public_holidays: bool,
    /// Service windows on a holiday; closed when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    holiday_hours: Option<Vec<String>>,
    // Last, because TOML writes tables after plain values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hours: Option<HoursFile>,
}

pub(super) fn default_time_zone_name() -> String {
    DEFAULT_TIME_ZONE.name().to_owned()
}

/// `[calendar.hours]`: if present, all seven days must be, so that a forgotten `sat` is an
/// error rather than a silent guess of either "closed" or "default hours".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HoursFile {
    mon: Option<Vec<String>>,
    tue: Option<Vec<String>>,
    wed: Option<Vec<String>>,
    thu: Option<Vec<String>>,
    fri: Option<Vec<String>>,
    sat: Option<Vec<String>>,
    sun: Option<Vec<String>>,
}

impl HoursFile {
    pub(super) fn into_weekly(self) -> Result<WeeklyHours, CalendarError> {
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
pub(crate) struct DateEntry(pub(crate) String);

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

pub(crate) fn parse_dates(field: &str, entries: &[DateEntry]) -> Result<BTreeSet<NaiveDate>, CalendarError> {
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
pub(super) fn date_entries(dates: &BTreeSet<NaiveDate>) -> Vec<DateEntry> {
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
        let mut calendar = Self::new(
            time_zone,
            hours,
            parse_dates("holidays", &file.holidays)?,
            parse_dates("workdays", &file.workdays)?,
            makeup_hours,
        )?;
        calendar.public_holidays = file.public_holidays;
        if let Some(items) = &file.holiday_hours {
            calendar.holiday_hours = DayHours::parse("holiday_hours", items)?;
            calendar.validate()?;
        }
        Ok(calendar)
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
            public_holidays: calendar.public_holidays,
            holiday_hours: (!calendar.holiday_hours.is_closed()).then(|| calendar.holiday_hours.to_strings()),
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
