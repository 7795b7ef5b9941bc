//! Retention rules (SPEC §7): how long closed tickets are kept, what happens to them after that,
//! and the monthly partitions of the transition log. Pure: the retention job in
//! `store::retention` asks these functions what to do and then does it.

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use std::fmt;
use std::str::FromStr;

/// The `[retention]` section of the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Tickets closed longer ago than this are anonymised or purged: "730d" or "2y".
    #[serde(default = "default_period")]
    pub period: RetentionPeriod,
    #[serde(default)]
    pub mode: RetentionMode,
    /// Monthly partitions of `ticket_transitions` kept ready ahead of the current month.
    #[serde(default = "default_ahead")]
    pub partition_months_ahead: u32,
    /// How long the processed-message ledger keeps an entry: it only recognises redeliveries,
    /// and its entries quote ticket views, so they go long before the tickets do (never later
    /// than `period`), including entries written after a ticket closed.
    #[serde(default = "default_ledger_keep")]
    pub ledger_keep: RetentionPeriod,
}

fn default_ledger_keep() -> RetentionPeriod {
    RetentionPeriod::Days(30)
}

impl RetentionPolicy {
    /// Ledger entries processed before this are deleted: `ledger_keep` ago, or the tickets'
    /// cutoff if that is sooner.
    pub fn ledger_cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.ledger_keep.before(now).max(self.cutoff(now))
    }
}

fn default_period() -> RetentionPeriod {
    RetentionPeriod::Years(2)
}

fn default_ahead() -> u32 {
    3
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            period: default_period(),
            mode: RetentionMode::default(),
            partition_months_ahead: default_ahead(),
            ledger_keep: default_ledger_keep(),
        }
    }
}

/// Records must be kept at least this long (SPEC §7, seed 000 §(五)).
pub const MINIMUM_DAYS: u32 = 730;

impl RetentionPolicy {
    /// Refuses periods shorter than the two years records must be kept, so a typo ("73d")
    /// cannot wipe recent tickets.
    pub fn validate(&self) -> Result<(), String> {
        if self.period.min_days() < MINIMUM_DAYS {
            return Err(format!(
                "[retention] period {:?} is shorter than the {MINIMUM_DAYS} days (2 years) records must be kept; use e.g. \"730d\" or \"2y\"",
                self.period.to_string()
            ));
        }
        if self.partition_months_ahead > 24 {
            return Err("[retention] partition_months_ahead must be 0 to 24".into());
        }
        Ok(())
    }

    /// Tickets closed before this instant have expired.
    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.period.before(now)
    }
}

/// What happens to an expired ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionMode {
    /// Contacts, names and every text the customer or an agent wrote are removed; numbers,
    /// categories, channels, teams and times stay, so reports over old periods still add up.
    #[default]
    #[serde(alias = "anonymize")]
    Anonymise,
    /// The ticket and everything attached to it are deleted.
    Purge,
}

impl RetentionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Anonymise => "anonymise",
            RetentionMode::Purge => "purge",
        }
    }
}

/// How long closed tickets are kept: whole days ("730d") or calendar years ("2y").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionPeriod {
    Days(u32),
    Years(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("retention period {value:?}: {reason} (write whole days or years, e.g. \"730d\" or \"2y\")")]
pub struct PeriodError {
    pub value: String,
    pub reason: &'static str,
}

impl RetentionPeriod {
    /// The instant `now` minus the period (years are calendar years: 29 Feb falls back to 28).
    pub fn before(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            RetentionPeriod::Days(d) => now - chrono::Duration::days(i64::from(d)),
            RetentionPeriod::Years(y) => now
                .checked_sub_months(Months::new(y.saturating_mul(12)))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }

    /// The shortest the period can be, in days.
    pub fn min_days(self) -> u32 {
        match self {
            RetentionPeriod::Days(d) => d,
            RetentionPeriod::Years(y) => y.saturating_mul(365),
        }
    }
}

impl fmt::Display for RetentionPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetentionPeriod::Days(d) => write!(f, "{d}d"),
            RetentionPeriod::Years(y) => write!(f, "{y}y"),
        }
    }
}

impl FromStr for RetentionPeriod {
    type Err = PeriodError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| PeriodError {
            value: s.to_owned(),
            reason,
        };
        let t = s.trim();
        let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        if digits.is_empty() {
            return Err(bad("it must start with a number"));
        }
        let n: u32 = digits.parse().map_err(|_| bad("the number is too large"))?;
        if n == 0 {
            return Err(bad("it must be longer than zero"));
        }
        match unit {
            "d" if n <= 36_500 => Ok(RetentionPeriod::Days(n)),
            "y" if n <= 100 => Ok(RetentionPeriod::Years(n)),
            "d" | "y" => Err(bad("at most 100 years")),
            "" => Err(bad("the unit is missing")),
            _ => Err(bad("the unit must be d (days) or y (years)")),
        }
    }
}

impl Serialize for RetentionPeriod {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RetentionPeriod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Monthly partitions of ticket_transitions (UTC months; see migrations/V4__retention.sql)
// ---------------------------------------------------------------------------------------------

/// Name prefix of the monthly partitions: `ticket_transitions_p202405` holds May 2024 (UTC).
pub const PARTITION_PREFIX: &str = "ticket_transitions_p";

/// The first instant of the UTC month containing `t`.
pub fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(t)
}

/// The partition a month's rows live in.
pub fn partition_name(month: DateTime<Utc>) -> String {
    format!("{PARTITION_PREFIX}{:04}{:02}", month.year(), month.month())
}

/// The range `[from, to)` a monthly partition covers, from its name; `None` for any other
/// table (the default partition, or one an operator made by hand), which is never dropped.
pub fn partition_range(name: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let ym = name.strip_prefix(PARTITION_PREFIX)?;
    if ym.len() != 6 || !ym.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let year: i32 = ym[..4].parse().ok()?;
    let month: u32 = ym[4..].parse().ok()?;
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = first.checked_add_months(Months::new(1))?;
    Some((
        first.and_hms_opt(0, 0, 0)?.and_utc(),
        next.and_hms_opt(0, 0, 0)?.and_utc(),
    ))
}

/// A partition may be dropped only when its whole month lies before the cutoff (whether its
/// rows all belong to expired, unheld tickets is checked against the database).
pub fn partition_expired(name: &str, cutoff: DateTime<Utc>) -> bool {
    partition_range(name).is_some_and(|(_, to)| to <= cutoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_goes_long_before_the_tickets_and_never_after_them() {
        let now: DateTime<Utc> = "2026-12-05T00:00:00Z".parse().unwrap();
        let p = RetentionPolicy::default();
        assert_eq!(p.ledger_cutoff(now), now - chrono::Duration::days(30));
        let short = RetentionPolicy {
            period: RetentionPeriod::Days(7),
            ..RetentionPolicy::default()
        };
        assert_eq!(short.ledger_cutoff(now), now - chrono::Duration::days(7));
    }
    use proptest::prelude::*;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn periods_parse_and_print_back() {
        assert_eq!("730d".parse::<RetentionPeriod>().unwrap(), RetentionPeriod::Days(730));
        assert_eq!(" 2y ".parse::<RetentionPeriod>().unwrap(), RetentionPeriod::Years(2));
        assert_eq!(RetentionPeriod::Days(730).to_string(), "730d");
        for bad in ["", "d", "0d", "2", "2w", "-1d", "1000y", "99999999999d"] {
            let err = bad.parse::<RetentionPeriod>().unwrap_err().to_string();
            assert!(err.contains("730d"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_default_is_two_years_anonymised_and_shorter_periods_are_refused() {
        let p: RetentionPolicy = toml::from_str("").unwrap();
        assert_eq!(p, RetentionPolicy::default());
        assert_eq!(p.mode, RetentionMode::Anonymise);
        assert_eq!(p.cutoff(at(2026, 11, 23)), at(2024, 11, 23));
        assert!(p.validate().is_ok());
        let p: RetentionPolicy = toml::from_str("period = \"730d\"\nmode = \"purge\"").unwrap();
        assert_eq!(p.mode, RetentionMode::Purge);
        assert!(p.validate().is_ok());
        let short: RetentionPolicy = toml::from_str("period = \"73d\"").unwrap();
        assert!(short.validate().unwrap_err().contains("730 days"));
        let us: RetentionPolicy = toml::from_str("mode = \"anonymize\"").unwrap();
        assert_eq!(us.mode, RetentionMode::Anonymise);
        assert!(toml::from_str::<RetentionPolicy>("mode = \"shred\"").is_err());
    }

    #[test]
    fn a_leap_day_goes_back_to_the_28th() {
        let p = RetentionPeriod::Years(2);
        assert_eq!(p.before(at(2028, 2, 29)), at(2026, 2, 28));
    }

    #[test]
    fn partitions_are_named_by_utc_month() {
        let m = month_start(Utc.with_ymd_and_hms(2024, 5, 31, 23, 59, 59).unwrap());
        assert_eq!(m, Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap());
        assert_eq!(partition_name(m), "ticket_transitions_p202405");
        let (from, to) = partition_range("ticket_transitions_p202412").unwrap();
        assert_eq!(from, Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(to, Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(partition_range("ticket_transitions_default"), None);
        assert_eq!(partition_range("ticket_transitions_p202413"), None);
        assert!(partition_expired("ticket_transitions_p202410", at(2024, 11, 1)));
        assert!(!partition_expired("ticket_transitions_p202411", at(2024, 11, 20)));
        assert!(!partition_expired("ticket_transitions_default", at(2099, 1, 1)));
    }

    proptest! {
        #[test]
        fn every_instant_falls_in_the_partition_named_for_it(secs in 0i64..4_000_000_000) {
            let t = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            let (from, to) = partition_range(&partition_name(month_start(t))).unwrap();
            prop_assert!(from <= t && t < to);
        }

        #[test]
        fn an_expired_partition_ends_before_the_cutoff(secs in 0i64..4_000_000_000, cut in 0i64..4_000_000_000) {
            let t = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            let cutoff = DateTime::<Utc>::from_timestamp(cut, 0).unwrap();
            let name = partition_name(month_start(t));
            if partition_expired(&name, cutoff) {
                prop_assert!(t < cutoff);
            }
        }
    }
}
