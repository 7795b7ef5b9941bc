//! Local wall-clock time ↔ UTC, across daylight-saving gaps and repeats.

use chrono::{DateTime, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use super::*;

// Local time <-> UTC
// ---------------------------------------------------------------------------------------------

/// Local wall time of `t`; `None` only at the edges of chrono's range (where `naive_local`
/// would panic).
pub(super) fn local_naive(tz: Tz, t: DateTime<Utc>) -> Option<NaiveDateTime> {
    let offset = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    t.naive_utc().checked_add_offset(offset)
}

/// The instant of minute `minute` (0..=1440) of local date `date`.
pub(super) fn instant_of(tz: Tz, date: NaiveDate, minute: u16) -> Option<DateTime<Utc>> {
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
pub(super) fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
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
pub(super) fn gap_end(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
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
