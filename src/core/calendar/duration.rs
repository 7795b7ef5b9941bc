//! SLA durations ("15m", "3bd") and the clock they run on.

use std::fmt;
use std::str::FromStr;

use chrono::Duration;
use serde::de::{self};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::*;

// ---------------------------------------------------------------------------------------------
// SLA durations and clocks
// ---------------------------------------------------------------------------------------------

/// Which clock an SLA target runs on.
///
/// In policy files: `"wall"`, `"business"` (the `[sla] calendar`), or the name of any calendar
/// under `[calendars]` (e.g. `"working_days"`), whose open time then counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Clock {
    /// Only the open time of the SLA's calendar (`[sla] calendar`) counts.
    Business,
    /// Every second counts, open or not.
    Wall,
    /// Only the open time of the named calendar counts. A lone [`BusinessCalendar`] treats it
    /// as [`Clock::Business`]; [`Calendars`] looks the name up.
    Calendar(CalendarName),
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Clock::Business => "business",
            Clock::Wall => "wall",
            Clock::Calendar(name) => name.as_str(),
        })
    }
}

impl FromStr for Clock {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "business" => Ok(Clock::Business),
            "wall" => Ok(Clock::Wall),
            other => CalendarName::new(other).map(Clock::Calendar).map_err(|reason| {
                format!("{other:?} is not a clock: write \"wall\", \"business\" or the name of a calendar under [calendars] ({reason})")
            }),
        }
    }
}

impl Serialize for Clock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Clock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// The name of a calendar under `[calendars]`, kept inline so that [`Clock`] stays `Copy`:
/// 1 to [`CalendarName::MAX_LEN`] characters from `a-z`, `0-9`, `_` and `-`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CalendarName {
    len: u8,
    bytes: [u8; CalendarName::MAX_LEN],
}

impl CalendarName {
    pub const MAX_LEN: usize = 32;

    pub fn new(name: &str) -> Result<Self, String> {
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(format!("a calendar name has 1 to {} characters", Self::MAX_LEN));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err("a calendar name uses only a-z, 0-9, _ and -".to_owned());
        }
        let mut bytes = [0u8; Self::MAX_LEN];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Self {
            len: name.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see `new`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for CalendarName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for CalendarName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An SLA target's length: whole business days plus a clock-time part, written as in policy
/// files: "15m", "2h", "90s", "1h30m", "24h", "1bd", "3bd", "1bd4h". Units may appear once each,
/// largest first (`bd`, `h`, `m`, `s`). There is deliberately no `d`: "1d" could mean 24 hours
/// or one business day, so it must be written as "24h" or "1bd".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SlaDuration {
    pub(super) business_days: u32,
    /// At most `MAX_SLA_SECONDS`, which fits a `u32`.
    pub(super) seconds: u32,
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
