//! The period a report covers: the last complete week or month, or explicit dates, as days in
//! the policy's time zone turned into a half-open UTC range `[from, to)`.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodSpec {
    /// The last complete week, Monday to Sunday.
    Week,
    /// The last complete calendar month.
    Month,
    /// The last complete calendar quarter (January–March, April–June, …).
    Quarter,
    /// A given quarter, 1 to 4 (`2026-Q4`).
    QuarterOf { year: i32, quarter: u32 },
    /// One day (the daily roll-up).
    Day(NaiveDate),
    /// From the first date through the last, both included.
    Dates { from: NaiveDate, to: NaiveDate },
}

/// `2026-Q4` (or `2026q4`) as (2026, 4).
pub fn parse_quarter(s: &str) -> Result<(i32, u32), PeriodError> {
    let bad = || PeriodError::BadQuarter(s.to_owned());
    let (year, q) = s.trim().split_once(['Q', 'q']).ok_or_else(bad)?;
    let year: i32 = year.trim_end_matches('-').parse().map_err(|_| bad())?;
    let q: u32 = q.parse().map_err(|_| bad())?;
    if !(1..=4).contains(&q) {
        return Err(bad());
    }
    Ok((year, q))
}

/// First day of quarter `q` (1–4) of `year`.
fn quarter_start(year: i32, q: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, (q - 1) * 3 + 1, 1)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("--from {from} is after --to {to}: give the first day, then the last (both included)")]
    Reversed { from: NaiveDate, to: NaiveDate },
    #[error("{0:?} is not a quarter: write it as YYYY-QN, e.g. 2026-Q4 (N from 1 to 4)")]
    BadQuarter(String),
    #[error("the period {from} to {to} is outside the dates this program can handle")]
    OutOfRange { from: NaiveDate, to: NaiveDate },
}

/// Resolved period: local days and the UTC instants that bound them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    /// e.g. `week 2026-W47`, `month 2026-10`, `2026-11-01 to 2026-11-07`.
    pub label: String,
    pub first_day: NaiveDate,
    /// Included.
    pub last_day: NaiveDate,
    pub time_zone: String,
    /// Start of `first_day` in `time_zone`.
    pub from: DateTime<Utc>,
    /// Start of the day after `last_day` (excluded).
    pub to: DateTime<Utc>,
}

impl Period {
    pub fn resolve(spec: PeriodSpec, now: DateTime<Utc>, tz: Tz) -> Result<Period, PeriodError> {
        let today = now.with_timezone(&tz).date_naive();
        let (first, last, label) = match spec {
            PeriodSpec::Week => {
                let this_monday = today - Days::new(u64::from(today.weekday().num_days_from_monday()));
                let first = this_monday - Days::new(7);
                let last = this_monday - Days::new(1);
                let iso = first.iso_week();
                (first, last, format!("week {}-W{:02}", iso.year(), iso.week()))
            }
            PeriodSpec::Month => {
                let this_first = today.with_day(1).unwrap_or(today);
                let first = this_first - Months::new(1);
                let last = this_first - Days::new(1);
                (first, last, format!("month {}", first.format("%Y-%m")))
            }
            PeriodSpec::Quarter => {
                let q = (today.month0() / 3) + 1;
                let this_first = quarter_start(today.year(), q).unwrap_or(today);
                let first = this_first - Months::new(3);
                let last = this_first - Days::new(1);
                let label = format!("quarter {}-Q{}", first.year(), first.month0() / 3 + 1);
                (first, last, label)
            }
            PeriodSpec::QuarterOf { year, quarter } => {
                let bad = PeriodError::BadQuarter(format!("{year}-Q{quarter}"));
                let first = (1..=4)
                    .contains(&quarter)
                    .then(|| quarter_start(year, quarter))
                    .flatten()
                    .ok_or_else(|| bad.clone())?;
                let last = (first + Months::new(3)) - Days::new(1);
                (first, last, format!("quarter {year}-Q{quarter}"))
            }
            PeriodSpec::Day(day) => (day, day, format!("day {day}")),
            PeriodSpec::Dates { from, to } => {
                if from > to {
                    return Err(PeriodError::Reversed { from, to });
                }
                (from, to, format!("{from} to {to}"))
            }
        };
        let out_of_range = PeriodError::OutOfRange { from: first, to: last };
        let start = local_midnight(first, tz).ok_or_else(|| out_of_range.clone())?;
        let end = last
            .checked_add_days(Days::new(1))
            .and_then(|d| local_midnight(d, tz))
            .ok_or(out_of_range)?;
        Ok(Period {
            label,
            first_day: first,
            last_day: last,
            time_zone: tz.name().to_owned(),
            from: start,
            to: end,
        })
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }
}

/// The first instant of `day` in `tz` (the earliest, should midnight repeat or be skipped).
fn local_midnight(day: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    let naive = day.and_hms_opt(0, 0, 0)?;
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        // Midnight skipped by a DST change: the day starts at the first valid instant after it.
        chrono::LocalResult::None => (1..=3)
            .filter_map(|h| tz.from_local_datetime(&(naive + chrono::Duration::hours(h))).earliest())
            .next()
            .map(|t| t.with_timezone(&Utc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Shanghai;

    fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn week_is_the_last_complete_monday_to_sunday_in_the_policy_zone() {
        // Monday 2026-11-23 01:00 in Shanghai is still Sunday 22nd in UTC.
        let p = Period::resolve(PeriodSpec::Week, utc(2026, 11, 22, 17), Shanghai).unwrap();
        assert_eq!(p.first_day, NaiveDate::from_ymd_opt(2026, 11, 16).unwrap());
        assert_eq!(p.last_day, NaiveDate::from_ymd_opt(2026, 11, 22).unwrap());
        assert_eq!(p.label, "week 2026-W47");
        assert_eq!(p.from, utc(2026, 11, 15, 16));
        assert_eq!(p.to, utc(2026, 11, 22, 16));
        assert!(p.contains(utc(2026, 11, 22, 15)));
        assert!(!p.contains(p.to));
    }

    #[test]
    fn month_is_the_last_complete_calendar_month() {
        let p = Period::resolve(PeriodSpec::Month, utc(2026, 3, 10, 0), Shanghai).unwrap();
        assert_eq!(p.label, "month 2026-02");
        assert_eq!(p.last_day, NaiveDate::from_ymd_opt(2026, 2, 28).unwrap());
        let p = Period::resolve(PeriodSpec::Month, utc(2026, 1, 10, 0), Shanghai).unwrap();
        assert_eq!(p.label, "month 2025-12");
        assert_eq!(p.to, utc(2025, 12, 31, 16));
    }

    #[test]
    fn dates_include_both_days_and_must_be_in_order() {
        let d = |day| NaiveDate::from_ymd_opt(2026, 11, day).unwrap();
        let p = Period::resolve(
            PeriodSpec::Dates { from: d(1), to: d(1) },
            utc(2026, 12, 1, 0),
            Shanghai,
        )
        .unwrap();
        assert_eq!(p.to - p.from, chrono::Duration::days(1));
        let err = Period::resolve(
            PeriodSpec::Dates { from: d(5), to: d(1) },
            utc(2026, 12, 1, 0),
            Shanghai,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--from"), "{err}");
    }

    #[test]
    fn quarters_are_calendar_quarters_bounded_at_shanghai_midnight() {
        // 2027-01-01 00:30 in Shanghai is still 31 December in UTC: the last quarter is Q4 2026.
        let p = Period::resolve(PeriodSpec::Quarter, utc(2026, 12, 31, 17), Shanghai).unwrap();
        assert_eq!(p.label, "quarter 2026-Q4");
        assert_eq!(p.first_day, NaiveDate::from_ymd_opt(2026, 10, 1).unwrap());
        assert_eq!(p.last_day, NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
        assert_eq!(p.from, utc(2026, 9, 30, 16));
        assert_eq!(p.to, utc(2026, 12, 31, 16));
        assert!(p.contains(utc(2026, 12, 31, 15)) && !p.contains(utc(2026, 12, 31, 16)));
        // An instant before Shanghai's midnight: still in Q4, so the last complete one is Q3.
        let p = Period::resolve(PeriodSpec::Quarter, utc(2026, 12, 31, 15), Shanghai).unwrap();
        assert_eq!(p.label, "quarter 2026-Q3");
        // In January the last complete quarter is the previous year's fourth.
        let p = Period::resolve(PeriodSpec::Quarter, utc(2027, 2, 10, 0), Shanghai).unwrap();
        assert_eq!(p.label, "quarter 2026-Q4");
        for (q, first, last) in [
            (1, (1, 1), (3, 31)),
            (2, (4, 1), (6, 30)),
            (3, (7, 1), (9, 30)),
            (4, (10, 1), (12, 31)),
        ] {
            let (year, quarter) = parse_quarter(&format!("2026-Q{q}")).unwrap();
            let p = Period::resolve(PeriodSpec::QuarterOf { year, quarter }, utc(2027, 1, 1, 0), Shanghai).unwrap();
            assert_eq!(p.first_day, NaiveDate::from_ymd_opt(2026, first.0, first.1).unwrap());
            assert_eq!(p.last_day, NaiveDate::from_ymd_opt(2026, last.0, last.1).unwrap());
            assert_eq!(p.label, format!("quarter 2026-Q{q}"));
        }
        assert_eq!(parse_quarter("2026q1").unwrap(), (2026, 1));
        for bad in ["2026-Q5", "2026-Q0", "2026", "Q4", "2026-Qx"] {
            let err = parse_quarter(bad).unwrap_err().to_string();
            assert!(err.contains("YYYY-QN"), "{bad}: {err}");
        }
        let err = Period::resolve(
            PeriodSpec::QuarterOf { year: 2026, quarter: 7 },
            utc(2027, 1, 1, 0),
            Shanghai,
        );
        assert!(err.is_err());
    }

    #[test]
    fn a_day_is_one_local_day() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        let p = Period::resolve(PeriodSpec::Day(day), utc(2026, 12, 4, 8), Shanghai).unwrap();
        assert_eq!((p.from, p.to), (utc(2026, 12, 3, 16), utc(2026, 12, 4, 16)));
        assert_eq!(p.label, "day 2026-12-04");
    }

    #[test]
    fn a_day_skipped_by_daylight_saving_still_starts() {
        // Santiago skips midnight on its DST start day.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2024, 9, 8).unwrap();
        let p = Period::resolve(PeriodSpec::Dates { from: day, to: day }, utc(2024, 10, 1, 0), tz).unwrap();
        assert!(p.to > p.from);
    }
}
