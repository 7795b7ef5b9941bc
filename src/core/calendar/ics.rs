//! Reading iCalendar (RFC 5545) holiday feeds into public-holiday declarations, and writing
//! those as a policy file (`switchboard calendar import`). Pure: text in, text out.
//!
//! What is read: all-day `VEVENT`s (`DTSTART;VALUE=DATE:20270101`, `DTEND` exclusive, or one
//! day when absent), their `SUMMARY`, and Apple's `X-APPLE-SPECIAL-DAY`. Lines may end in
//! CRLF or LF and be folded (a continuation line starts with a space or a tab).
//!
//! Which day is what, from the summary as Chinese holiday feeds write it:
//! * a make-up workday (调休上班) when it says 补班, 上班 or 班 in brackets ("（班）"), or
//!   `X-APPLE-SPECIAL-DAY:ALTERNATE-WORKDAY`;
//! * a day off when it says 休 or 假 ("春节（休）", "春节假期"), or
//!   `X-APPLE-SPECIAL-DAY:WORK-HOLIDAY`;
//! * anything else (observances such as 七夕 that are no day off) is skipped and reported.
//!
//! Hostile input stays cheap: at most [`MAX_BYTES`] of text, [`MAX_EVENTS`] events, events
//! of at most [`MAX_EVENT_DAYS`] days, and a line of at most [`MAX_LINE`] characters once
//! unfolded; errors name the line.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};

pub const MAX_BYTES: usize = 4 << 20;
pub const MAX_EVENTS: usize = 5_000;
pub const MAX_EVENT_DAYS: i64 = 31;
pub const MAX_LINE: usize = 8_192;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcsError {
    #[error("the file has {0} bytes; a holiday feed has far fewer (at most {MAX_BYTES})")]
    TooBig(usize),
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("more than {MAX_EVENTS} events; is this a holiday feed?")]
    TooManyEvents,
    #[error("no BEGIN:VCALENDAR: this is not an iCalendar file")]
    NotCalendar,
    #[error("{date} is both a day off ({off:?}) and a make-up workday ({work:?}); fix the feed or type the notice in")]
    Conflict { date: NaiveDate, off: String, work: String },
}

/// What a feed's day is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DayKind {
    Holiday,
    Workday,
}

/// One day read from the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedDay {
    pub date: NaiveDate,
    pub kind: DayKind,
    pub summary: String,
}

/// The feed's days, and the events skipped with the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feed {
    pub days: Vec<FeedDay>,
    pub skipped: Vec<String>,
}

/// Unfolded lines with the number of the physical line each starts on. Unfolding works on
/// bytes, because a feed may fold a line inside a multi-byte character (RFC 5545 folds by
/// octets); each unfolded line must then be UTF-8.
fn unfold(bytes: &[u8]) -> Result<Vec<(usize, String)>, IcsError> {
    let mut lines: Vec<(usize, Vec<u8>)> = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line_no = i + 1;
        if let Some(rest) = raw.strip_prefix(b" ").or_else(|| raw.strip_prefix(b"\t")) {
            let Some((_, last)) = lines.last_mut() else {
                return Err(IcsError::Line {
                    line: line_no,
                    message: "a continuation line (starting with a space) with nothing to continue".into(),
                });
            };
            last.extend_from_slice(rest);
        } else if !raw.is_empty() {
            lines.push((line_no, raw.to_vec()));
        }
        if lines.last().is_some_and(|(_, l)| l.len() > MAX_LINE) {
            return Err(IcsError::Line {
                line: line_no,
                message: format!("longer than {MAX_LINE} bytes once unfolded"),
            });
        }
    }
    lines
        .into_iter()
        .map(|(line, bytes)| {
            String::from_utf8(bytes)
                .map(|text| (line, text))
                .map_err(|_| IcsError::Line {
                    line,
                    message: "not UTF-8 text".into(),
                })
        })
        .collect()
}

/// Unescapes a TEXT value (`\,`, `\;`, `\n`, `\\`).
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push(' '),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_date(line: usize, name: &str, params: &str, value: &str) -> Result<NaiveDate, IcsError> {
    let bad = |message: String| IcsError::Line { line, message };
    let value = value.trim();
    let all_day =
        params.to_ascii_uppercase().contains("VALUE=DATE") && !params.to_ascii_uppercase().contains("DATE-TIME");
    if !all_day && value.contains('T') {
        return Err(bad(format!(
            "{name} {value:?} has a time of day; holiday feeds use all-day events ({name};VALUE=DATE:YYYYMMDD)"
        )));
    }
    NaiveDate::parse_from_str(value, "%Y%m%d").map_err(|e| bad(format!("{name} {value:?} is not a date YYYYMMDD: {e}")))
}

/// Reads a feed; see the module docs for what it understands.
pub fn parse(bytes: &[u8]) -> Result<Feed, IcsError> {
    if bytes.len() > MAX_BYTES {
        return Err(IcsError::TooBig(bytes.len()));
    }
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let lines = unfold(bytes)?;
    if !lines.iter().any(|(_, l)| l.eq_ignore_ascii_case("BEGIN:VCALENDAR")) {
        return Err(IcsError::NotCalendar);
    }
    let mut feed = Feed::default();
    let mut events = 0usize;
    // Inside a VEVENT: (line it began on, start, end, summary, apple special day).
    type Open = (usize, Option<NaiveDate>, Option<NaiveDate>, String, String);
    let mut open: Option<Open> = None;
    for (line, content) in &lines {
        let line = *line;
        let Some((head, value)) = content.split_once(':') else {
            return Err(IcsError::Line {
                line,
                message: format!("{:?} is not NAME:VALUE", truncate(content)),
            });
        };
        let (name, params) = head.split_once(';').unwrap_or((head, ""));
        let name = name.to_ascii_uppercase();
        match (name.as_str(), open.as_mut()) {
            ("BEGIN", None) if value.eq_ignore_ascii_case("VEVENT") => {
                events += 1;
                if events > MAX_EVENTS {
                    return Err(IcsError::TooManyEvents);
                }
                open = Some((line, None, None, String::new(), String::new()));
            }
            ("BEGIN", Some(_)) if value.eq_ignore_ascii_case("VEVENT") => {
                return Err(IcsError::Line {
                    line,
                    message: "BEGIN:VEVENT inside another VEVENT (missing END:VEVENT?)".into(),
                });
            }
            ("DTSTART", Some(ev)) => ev.1 = Some(parse_date(line, "DTSTART", params, value)?),
            ("DTEND", Some(ev)) => ev.2 = Some(parse_date(line, "DTEND", params, value)?),
            ("SUMMARY", Some(ev)) => ev.3 = unescape(value).trim().to_owned(),
            ("X-APPLE-SPECIAL-DAY", Some(ev)) => ev.4 = value.trim().to_ascii_uppercase(),
            ("END", Some(_)) if value.eq_ignore_ascii_case("VEVENT") => {
                if let Some(ev) = open.take() {
                    close_event(ev, &mut feed)?;
                }
            }
            _ => {}
        }
    }
    if let Some((line, ..)) = open {
        return Err(IcsError::Line {
            line,
            message: "this VEVENT has no END:VEVENT".into(),
        });
    }
    feed.days.sort_by_key(|d| (d.date, d.kind));
    feed.days.dedup_by(|a, b| a.date == b.date && a.kind == b.kind);
    if let Some(pair) = feed.days.windows(2).find(|w| w[0].date == w[1].date) {
        return Err(IcsError::Conflict {
            date: pair[0].date,
            off: pair[0].summary.clone(),
            work: pair[1].summary.clone(),
        });
    }
    Ok(feed)
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

fn kind_of(summary: &str, apple: &str) -> Option<DayKind> {
    if apple == "ALTERNATE-WORKDAY"
        || ["补班", "上班", "（班）", "(班)", "[班]", "【班】"]
            .iter()
            .any(|m| summary.contains(m))
    {
        return Some(DayKind::Workday);
    }
    if apple == "WORK-HOLIDAY" || summary.contains('休') || summary.contains('假') {
        return Some(DayKind::Holiday);
    }
    None
}

fn close_event(
    (line, start, end, summary, apple): (usize, Option<NaiveDate>, Option<NaiveDate>, String, String),
    feed: &mut Feed,
) -> Result<(), IcsError> {
    let Some(start) = start else {
        return Err(IcsError::Line {
            line,
            message: "this VEVENT has no DTSTART".into(),
        });
    };
    let end = end.unwrap_or_else(|| start.succ_opt().unwrap_or(start));
    let days = (end - start).num_days();
    if !(1..=MAX_EVENT_DAYS).contains(&days) {
        return Err(IcsError::Line {
            line,
            message: format!(
                "event {summary:?} runs {start}..{end} (DTEND is exclusive): {days} days, expected 1 to {MAX_EVENT_DAYS}"
            ),
        });
    }
    let Some(kind) = kind_of(&summary, &apple) else {
        feed.skipped.push(format!(
            "{start} {summary:?}: neither a day off (休/假) nor a make-up workday (补班/上班)"
        ));
        return Ok(());
    };
    for date in start.iter_days().take(days as usize) {
        feed.days.push(FeedDay {
            date,
            kind,
            summary: summary.clone(),
        });
    }
    Ok(())
}

/// The feed's days by year.
pub fn by_year(feed: &Feed) -> BTreeMap<i32, Vec<FeedDay>> {
    let mut out: BTreeMap<i32, Vec<FeedDay>> = BTreeMap::new();
    for day in &feed.days {
        out.entry(day.date.year()).or_default().push(day.clone());
    }
    out
}

/// One year's declarations as a policy file (`config/policy/holidays/YYYY.toml`): runs of
/// consecutive days with the same summary become one range, each with its summary as a
/// comment. The same days always give the same text, so importing twice changes nothing.
pub fn render_year(year: i32, days: &[FeedDay], source: &str) -> String {
    let source: String = source.chars().filter(|c| !c.is_control()).collect();
    let mut out = format!(
        "# Public holidays and make-up workdays (调休) of {year}, shared by every calendar with\n\
         # `public_holidays = true`. Written by `switchboard calendar import` from {source};\n\
         # check it against the State Council's notice (国务院办公厅关于{year}年部分节假日安排的通知,\n\
         # www.gov.cn) before relying on it.\n\n[public_holidays.{year}]\nsource = {source:?}\n"
    );
    for (key, kind) in [("holidays", DayKind::Holiday), ("workdays", DayKind::Workday)] {
        out.push_str(&format!("{key} = [\n"));
        let mut runs: Vec<(NaiveDate, NaiveDate, &str)> = Vec::new();
        for day in days.iter().filter(|d| d.kind == kind) {
            match runs.last_mut() {
                Some((_, last, summary)) if last.succ_opt() == Some(day.date) && *summary == day.summary => {
                    *last = day.date;
                }
                _ => runs.push((day.date, day.date, &day.summary)),
            }
        }
        for (first, last, summary) in runs {
            let entry = if first == last {
                first.to_string()
            } else {
                format!("{first}..{last}")
            };
            let comment: String = summary.chars().filter(|c| !c.is_control()).collect();
            out.push_str(&format!("  \"{entry}\", # {comment}\n"));
        }
        out.push_str("]\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::calendar::PublicHolidays;

    const FEED: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/calendar/cn-holidays-2026.ics"
    ));

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn declared(text: &str) -> PublicHolidays {
        #[derive(serde::Deserialize)]
        struct File {
            public_holidays: BTreeMap<String, crate::core::calendar::PublicHolidayYear>,
        }
        let file: File = toml::from_str(text).unwrap();
        PublicHolidays::from_years(file.public_holidays).unwrap()
    }

    #[test]
    fn a_realistic_feed_gives_the_shipped_2026_declarations() {
        let feed = parse(FEED).unwrap();
        // CRLF, a summary folded inside a multi-byte character, a folded description.
        assert!(
            feed.days
                .iter()
                .any(|d| d.date == date("2026-04-04") && d.summary == "清明节 假期")
        );
        // Observances that are no day off are skipped and said so.
        assert_eq!(feed.skipped.len(), 2, "{:?}", feed.skipped);
        assert!(feed.skipped.iter().any(|s| s.contains("七夕")));
        let years = by_year(&feed);
        assert_eq!(years.keys().copied().collect::<Vec<_>>(), vec![2026]);
        let text = render_year(2026, &years[&2026], "cn-holidays-2026.ics");
        let imported = declared(&text);
        let shipped = declared(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/policy/holidays/2026.toml"
        )));
        assert_eq!(imported.holidays, shipped.holidays);
        assert_eq!(imported.workdays, shipped.workdays);
        assert_eq!(imported.holidays.len(), 3 + 9 + 3 + 5 + 3 + 3 + 7);
        assert!(imported.workdays.contains(&date("2026-02-14")) && imported.workdays.contains(&date("2026-02-28")));
        // Idempotent: the same feed gives the same file.
        assert_eq!(
            text,
            render_year(2026, &by_year(&parse(FEED).unwrap())[&2026], "cn-holidays-2026.ics")
        );
        assert!(text.contains("\"2026-02-15..2026-02-23\", # 春节（休）"), "{text}");
    }

    #[test]
    fn lf_only_and_apple_markers_are_understood() {
        let feed = parse(
            b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260104\nSUMMARY:New Year\nX-APPLE-SPECIAL-DAY:ALTERNATE-WORKDAY\nEND:VEVENT\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nDTEND;VALUE=DATE:20260102\nSUMMARY:New Year\nX-APPLE-SPECIAL-DAY:WORK-HOLIDAY\nEND:VEVENT\nEND:VCALENDAR\n",
        )
        .unwrap();
        assert_eq!(
            feed.days.iter().map(|d| (d.date, d.kind)).collect::<Vec<_>>(),
            vec![
                (date("2026-01-01"), DayKind::Holiday),
                (date("2026-01-04"), DayKind::Workday)
            ]
        );
    }

    fn error_of(text: &str) -> String {
        parse(text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn broken_feeds_are_refused_with_the_line() {
        let ev = |body: &str| format!("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n{body}END:VCALENDAR\r\n");
        assert!(error_of("hello").contains("not an iCalendar"));
        let e = error_of(&ev("DTSTART;VALUE=DATE:2026-01-01\r\nEND:VEVENT\r\n"));
        assert!(e.starts_with("line 3:") && e.contains("YYYYMMDD"), "{e}");
        let e = error_of(&ev("DTSTART;VALUE=DATE:20260101\r\nSUMMARY:元旦 假期\r\n"));
        assert!(e.contains("line 2") && e.contains("END:VEVENT"), "{e}");
        let e = error_of(&ev("DTSTART:20260101T090000\r\nEND:VEVENT\r\n"));
        assert!(e.contains("line 3") && e.contains("all-day"), "{e}");
        let e = error_of(&ev(
            "DTSTART;VALUE=DATE:20260101\r\nDTEND;VALUE=DATE:20270101\r\nSUMMARY:休\r\nEND:VEVENT\r\n",
        ));
        assert!(e.contains("line 2") && e.contains("365 days"), "{e}");
        let e = error_of(&ev(
            "DTSTART;VALUE=DATE:20260102\r\nDTEND;VALUE=DATE:20260101\r\nSUMMARY:休\r\nEND:VEVENT\r\n",
        ));
        assert!(e.contains("-1 days"), "{e}");
        let e = error_of(&ev("SUMMARY:休\r\nEND:VEVENT\r\n"));
        assert!(e.contains("no DTSTART"), "{e}");
        assert!(error_of(" folded\r\nBEGIN:VCALENDAR\r\n").contains("line 1"));
        let e = error_of(&ev("garbage without colon\r\n"));
        assert!(e.contains("line 3") && e.contains("NAME:VALUE"), "{e}");
        let e = error_of(&ev("BEGIN:VEVENT\r\n"));
        assert!(e.contains("line 3") && e.contains("inside another"), "{e}");
        // A day both off and worked.
        let e = error_of(&ev(
            "DTSTART;VALUE=DATE:20260101\r\nSUMMARY:休\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260101\r\nSUMMARY:补班\r\nEND:VEVENT\r\n",
        ));
        assert!(e.contains("2026-01-01") && e.contains("both"), "{e}");
        // Not UTF-8.
        let mut bad = b"BEGIN:VCALENDAR\r\nSUMMARY:".to_vec();
        bad.extend_from_slice(&[0xff, 0xfe]);
        assert!(parse(&bad).unwrap_err().to_string().contains("line 2"));
    }

    #[test]
    fn hostile_feeds_stop_early() {
        assert!(matches!(parse(&vec![b'a'; MAX_BYTES + 1]), Err(IcsError::TooBig(_))));
        let long = format!("BEGIN:VCALENDAR\r\nX:{}\r\n", "a".repeat(MAX_LINE + 1));
        assert!(error_of(&long).contains("line 2"));
        // A long line built from many folds is caught too.
        let folded = format!("BEGIN:VCALENDAR\r\nX:a\r\n{}", " aaaaaaaa\r\n".repeat(MAX_LINE / 8 + 2));
        assert!(error_of(&folded).contains("longer than"));
        let many = format!(
            "BEGIN:VCALENDAR\r\n{}END:VCALENDAR\r\n",
            "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260101\r\nSUMMARY:休\r\nEND:VEVENT\r\n".repeat(MAX_EVENTS + 1)
        );
        assert!(matches!(parse(many.as_bytes()), Err(IcsError::TooManyEvents)));
    }
}
