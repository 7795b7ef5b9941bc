//! Human-readable ticket numbers: prefix + year + month + sequence (`202405-00012`).
//!
//! The sequence itself comes from a per-month counter row in Postgres; this module only formats
//! and recognises numbers, so threading can find a number quoted in a subject or a message.

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;

/// The counter period (`YYYYMM`) of a request received at `at`, in the service's time zone.
pub fn period(at: DateTime<Utc>, tz: Tz) -> String {
    let local = at.with_timezone(&tz);
    format!("{:04}{:02}", local.year(), local.month())
}

/// `prefix` + `YYYYMM-NNNNN`; the sequence widens past five digits rather than wrapping.
pub fn format_number(prefix: &str, period: &str, seq: i64) -> String {
    format!("{prefix}{period}-{seq:05}")
}

/// Ticket numbers quoted in free text (a subject, a thread reference, a chat line), in order of
/// appearance, each once: an optional prefix of up to 8 ASCII letters, `YYYYMM` with a real
/// month, `-`, and 5 to 9 digits. A number must stand alone: no letter or digit directly before
/// it (beyond its prefix), none directly after. One linear pass over the bytes, so a long run of
/// digits costs its length, not its square.
pub fn find_numbers(text: &str) -> Vec<String> {
    // Byte scan over ASCII only: UTF-8 continuation bytes never equal an ASCII byte, so every
    // index we slice at is a char boundary (it is next to an ASCII letter or digit).
    const MAX_PREFIX: usize = 8;
    const MIN_SEQ: usize = 5;
    const MAX_SEQ: usize = 9;
    let b = text.as_bytes();
    let digit = |k: usize| b.get(k).is_some_and(u8::is_ascii_digit);
    let mut found: Vec<String> = Vec::new();
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut i = 0;
    while i + 7 + MIN_SEQ <= b.len() {
        let period = (i..i + 6).all(digit) && b[i + 6] == b'-';
        // Only read the month once the bytes are known to be digits.
        let month = period && matches!((b[i + 4], b[i + 5]), (b'0', b'1'..=b'9') | (b'1', b'0'..=b'2'));
        if !month {
            i += 1;
            continue;
        }
        // Counted only after a `YYYYMM-`: each digit run follows one `-`, so it is counted once.
        let seq = (i + 7..).take_while(|&k| digit(k)).count();
        let end = i + 7 + seq;
        let bounded_after = b.get(end).is_none_or(|c| !c.is_ascii_alphanumeric());
        if (MIN_SEQ..=MAX_SEQ).contains(&seq) && bounded_after {
            let mut start = i;
            while start > 0 && i - start < MAX_PREFIX && b[start - 1].is_ascii_alphabetic() {
                start -= 1;
            }
            let bounded_before = start == 0 || !b[start - 1].is_ascii_alphanumeric();
            if bounded_before {
                let number = &text[start..end];
                if seen.insert(number) {
                    found.push(number.to_owned());
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
    found
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
    fn long_digit_runs_and_many_numbers_cost_their_length() {
        // Quadratic scans of these took minutes in a debug build; linear ones take milliseconds.
        let digits = "1".repeat(2_000_000);
        assert!(find_numbers(&digits).is_empty());
        let dashes = "202405-".repeat(300_000);
        assert_eq!(find_numbers(&dashes), vec!["202405-202405"]);
        let many: String = (0..200_000).map(|n| format!("202405-{n:05} ")).collect();
        let found = find_numbers(&many);
        assert_eq!(found.len(), 200_000);
        assert_eq!(found[199_999], "202405-199999");
        let repeated = "202405-00001 ".repeat(200_000);
        assert_eq!(find_numbers(&repeated), vec!["202405-00001"]);
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
