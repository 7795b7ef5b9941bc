//! Public holidays and make-up workdays (调休), declared once per year in the policy
//! (`[public_holidays.YYYY]`, one file per year under `config/policy/holidays/`) and shared by
//! every calendar that sets `public_holidays = true`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer};

use super::file::{DateEntry, parse_dates};
use super::*;

/// One year's declarations as written in the policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    /// Where the dates come from (e.g. the State Council's notice); shown by `calendar show`.
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    holidays: Vec<DateEntry>,
    #[serde(default)]
    workdays: Vec<DateEntry>,
}

/// The declared days off and make-up workdays of every year, merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicHolidays {
    /// Days off.
    pub holidays: BTreeSet<NaiveDate>,
    /// Make-up working days (调休上班).
    pub workdays: BTreeSet<NaiveDate>,
    /// The years declared, with their `source` if given.
    pub years: BTreeMap<i32, Option<String>>,
}

impl PublicHolidays {
    /// Validates `[public_holidays.YYYY]` tables: the key is a year, every date lies in that
    /// year or in the December before it (a notice may move a working day there), and no date
    /// is both a holiday and a workday.
    pub fn from_years(years: BTreeMap<String, PublicHolidayYear>) -> Result<Self, CalendarError> {
        let mut out = PublicHolidays::default();
        for (key, PublicHolidayYear(year_file)) in years {
            let field = |what: &str| format!("public_holidays.{key}.{what}");
            let year: i32 = match key.parse() {
                Ok(y) if (1900..=9999).contains(&y) && key.len() == 4 => y,
                _ => {
                    return Err(CalendarError::BadDate {
                        field: "public_holidays".into(),
                        value: key.clone(),
                        reason: "each table is named by its year, e.g. [public_holidays.2027]".into(),
                    });
                }
            };
            let holidays = parse_dates(&field("holidays"), &year_file.holidays)?;
            let workdays = parse_dates(&field("workdays"), &year_file.workdays)?;
            for (what, dates) in [("holidays", &holidays), ("workdays", &workdays)] {
                if let Some(stray) = dates
                    .iter()
                    .find(|d| !(d.year() == year || (d.year() == year - 1 && d.month() == 12)))
                {
                    return Err(CalendarError::BadDate {
                        field: field(what),
                        value: stray.to_string(),
                        reason: format!("not in {year} (nor in the December before it); declare it under its own year"),
                    });
                }
            }
            out.holidays.extend(holidays);
            out.workdays.extend(workdays);
            out.years.insert(year, year_file.source);
        }
        if let Some(&date) = out.holidays.intersection(&out.workdays).next() {
            return Err(CalendarError::HolidayAlsoWorkday { date });
        }
        Ok(out)
    }

    /// The year whose declarations are missing although they are due by `today` (a local
    /// date): the current year always, the next one from `warn_from_month` (1-12) on. `None`
    /// when nothing is missing. Pure, so readiness, metrics and `calendar check` agree.
    pub fn missing_year(&self, today: NaiveDate, warn_from_month: u32) -> Option<i32> {
        let year = today.year();
        if !self.years.contains_key(&year) {
            return Some(year);
        }
        if today.month() >= warn_from_month && !self.years.contains_key(&(year + 1)) {
            return Some(year + 1);
        }
        None
    }
}

/// One `[public_holidays.YYYY]` table, unvalidated ([`PublicHolidays::from_years`] checks it).
#[derive(Debug, Clone)]
pub struct PublicHolidayYear(YearFile);

impl<'de> Deserialize<'de> for PublicHolidayYear {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        YearFile::deserialize(deserializer).map(PublicHolidayYear)
    }
}

/// From this month of a year on, the next year's declarations are expected (the State
/// Council's notice usually appears between October and December).
pub const WARN_FROM_MONTH: u32 = 10;

/// What the readiness check, the log and `calendar check` say when a year is missing.
pub fn missing_year_message(year: i32) -> String {
    format!(
        "no public holidays are declared for {year}: working-day SLA targets would count its holidays as working days. \
         Import the State Council's notice (国务院办公厅关于{year}年部分节假日安排的通知, www.gov.cn, usually published \
         October-December) with `switchboard calendar import FEED.ics --write`, or type it into policy/holidays/{year}.toml"
    )
}
