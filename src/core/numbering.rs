//! Human-readable ticket numbers: prefix + year + month + sequence (`202405-00012`).
//!
//! The sequence itself comes from a per-month counter row in Postgres; this module only formats
//! and recognises numbers, so threading can find a number quoted in a subject or a message.

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use regex::Regex;
use std::sync::LazyLock;

/// The counter period (`YYYYMM`) of a request received at `at`, in the service's time zone.
pub fn period(at: DateTime<Utc>, tz: Tz) -> String {
    let local = at.with_timezone(&tz);
    format!("{:04}{:02}", local.year(), local.month())
}

/// `prefix` + `YYYYMM-NNNNN`; the sequence widens past five digits rather than wrapping.
pub fn format_number(prefix: &str, period: &str, seq: i64) -> String {
    format!("{prefix}{period}-{seq:05}")
}

static NUMBER_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z]{0,8}\d{6}-\d{5,9}").expect("constant regex"));

/// Ticket numbers quoted in free text (a subject, a thread reference), in order of appearance.
/// A number must stand alone: no letter or digit directly before it, no digit directly after.
pub fn find_numbers(text: &str) -> Vec<String> {
    NUMBER_RE
        .find_iter(text)
        .filter(|m| {
            let before = text[..m.start()].chars().next_back();
            let after = text[m.end()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_alphanumeric()) && !after.is_some_and(|c| c.is_ascii_digit())
        })
        .map(|m| m.as_str().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn period_uses_the_service_time_zone() {
        // 2024-05-31 17:00 UTC is already June 1st in Shanghai.
        let at = Utc.with_ymd_and_hms(2024, 5, 31, 17, 0, 0).unwrap();
        assert_eq!(period(at, chrono_tz::Asia::Shanghai), "202406");
        assert_eq!(period(at, chrono_tz::UTC), "202405");
    }

    #[test]
    fn formats_and_finds_numbers() {
        assert_eq!(format_number("", "202405", 12), "202405-00012");
        assert_eq!(format_number("SLA", "202405", 123456), "SLA202405-123456");
        assert_eq!(find_numbers("Re: [202405-00012] 打印机还是不行"), vec!["202405-00012"]);
        assert_eq!(
            find_numbers("ticket:SLA202405-00001 and 202406-00002"),
            vec!["SLA202405-00001", "202406-00002"]
        );
        assert!(find_numbers("call 13812345678").is_empty());
        assert_eq!(
            find_numbers("202405-00012 202405-00013"),
            vec!["202405-00012", "202405-00013"]
        );
    }

    proptest! {
        #[test]
        fn every_formatted_number_is_found_again(p in "[A-Z]{0,3}", y in 2000u32..2100, m in 1u32..13, seq in 1i64..10_000_000) {
            let n = format_number(&p, &format!("{y:04}{m:02}"), seq);
            prop_assert_eq!(find_numbers(&format!("回复：{n} 谢谢")), vec![n]);
        }
    }
}
