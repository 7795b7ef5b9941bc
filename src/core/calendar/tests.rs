//! The calendar's unit and property tests.

use super::*;
use chrono::Timelike;
use proptest::prelude::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn dur(text: &str) -> SlaDuration {
    text.parse().unwrap()
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn calendar(toml: &str) -> BusinessCalendar {
    BusinessCalendar::from_toml_str(toml).unwrap()
}

fn error_of(toml: &str) -> String {
    BusinessCalendar::from_toml_str(toml).unwrap_err().to_string()
}

const WEEKDAYS_ONLY: &str = r#"
    [hours]
    mon = ["09:00-18:00"]
    tue = ["09:00-18:00"]
    wed = ["09:00-18:00"]
    thu = ["09:00-18:00"]
    fri = ["09:00-18:00"]
    sat = []
    sun = []
"#;

fn every_day(zone: &str, windows: &str) -> BusinessCalendar {
    calendar(&format!(
        r#"
        time_zone = "{zone}"
        [hours]
        mon = {windows}
        tue = {windows}
        wed = {windows}
        thu = {windows}
        fri = {windows}
        sat = {windows}
        sun = {windows}
        "#
    ))
}

// ----- concrete dates ---------------------------------------------------------------

#[test]
fn default_calendar_is_shanghai_eight_to_ten() {
    let cal = BusinessCalendar::default();
    assert_eq!(cal, calendar(""));
    assert_eq!(cal.time_zone, Tz::Asia__Shanghai);
    assert!(cal.is_open(utc("2026-03-10T08:00:00+08:00")));
    assert!(cal.is_open(utc("2026-03-10T21:59:59+08:00")));
    assert!(!cal.is_open(utc("2026-03-10T22:00:00+08:00")));
    assert!(!cal.is_open(utc("2026-03-10T07:59:59+08:00")));
    assert_eq!(
        cal.business_time_between(utc("2026-03-10T00:00:00+08:00"), utc("2026-03-11T00:00:00+08:00")),
        Duration::hours(14)
    );
}

#[test]
fn thirty_minutes_from_ten_to_ten_is_due_next_morning() {
    let cal = BusinessCalendar::default();
    let start = utc("2026-03-10T21:50:00+08:00");
    assert_eq!(
        cal.deadline(start, dur("30m"), Clock::Business),
        utc("2026-03-11T08:20:00+08:00")
    );
    assert_eq!(
        cal.deadline(start, dur("30m"), Clock::Wall),
        utc("2026-03-10T22:20:00+08:00")
    );
}

#[test]
fn deadline_reached_at_close_is_the_close() {
    let cal = BusinessCalendar::default();
    assert_eq!(
        cal.deadline(utc("2026-03-10T21:50:00+08:00"), dur("10m"), Clock::Business),
        utc("2026-03-10T22:00:00+08:00")
    );
}

#[test]
fn clock_starts_at_next_opening() {
    let cal = BusinessCalendar::default();
    let night = utc("2026-03-10T23:30:00+08:00");
    assert_eq!(cal.next_open(night), utc("2026-03-11T08:00:00+08:00"));
    assert_eq!(
        cal.deadline(night, dur("15m"), Clock::Business),
        utc("2026-03-11T08:15:00+08:00")
    );
    assert_eq!(
        cal.deadline(night, SlaDuration::ZERO, Clock::Business),
        utc("2026-03-11T08:00:00+08:00")
    );
    let open = utc("2026-03-11T09:00:00+08:00");
    assert_eq!(cal.next_open(open), open);
}

#[test]
fn holiday_block_is_skipped() {
    let cal = calendar(r#"holidays = ["2026-02-16..2026-02-22"]"#);
    assert_eq!(cal.holidays.len(), 7);
    assert!(!cal.is_open(utc("2026-02-18T12:00:00+08:00")));
    assert_eq!(
        cal.deadline(utc("2026-02-15T21:00:00+08:00"), dur("2h"), Clock::Business),
        utc("2026-02-23T09:00:00+08:00")
    );
    assert_eq!(
        cal.business_time_between(utc("2026-02-15T00:00:00+08:00"), utc("2026-02-24T00:00:00+08:00")),
        Duration::hours(28)
    );
    assert_eq!(
        cal.next_open(utc("2026-02-16T00:00:00+08:00")),
        utc("2026-02-23T08:00:00+08:00")
    );
}

#[test]
fn makeup_workday_saturday_is_counted() {
    let plain = calendar(WEEKDAYS_ONLY);
    let with_workday = calendar(&format!("workdays = [\"2026-02-28\"]\n{WEEKDAYS_ONLY}"));
    let friday = utc("2026-02-27T17:00:00+08:00");
    assert_eq!(
        plain.deadline(friday, dur("3h"), Clock::Business),
        utc("2026-03-02T11:00:00+08:00")
    );
    assert_eq!(
        with_workday.deadline(friday, dur("3h"), Clock::Business),
        utc("2026-02-28T11:00:00+08:00")
    );
    assert!(with_workday.is_open(utc("2026-02-28T09:00:00+08:00")));
    assert!(!with_workday.is_open(utc("2026-03-01T09:00:00+08:00")));
}

#[test]
fn makeup_hours_can_differ_from_monday() {
    let cal = calendar(&format!(
        "workdays = [\"2026-02-28\"]\nmakeup_hours = [\"10:00-12:00\"]\n{WEEKDAYS_ONLY}"
    ));
    assert!(!cal.is_open(utc("2026-02-28T09:30:00+08:00")));
    assert!(cal.is_open(utc("2026-02-28T10:30:00+08:00")));
}

#[test]
fn one_business_day_from_friday_is_monday_same_time() {
    let cal = calendar(WEEKDAYS_ONLY);
    let friday = utc("2026-03-13T10:00:00+08:00");
    assert_eq!(
        cal.deadline(friday, dur("1bd"), Clock::Business),
        utc("2026-03-16T10:00:00+08:00")
    );
    assert_eq!(
        cal.deadline(friday, dur("3bd"), Clock::Business),
        utc("2026-03-18T10:00:00+08:00")
    );
    assert_eq!(
        cal.deadline(friday, dur("1bd"), Clock::Wall),
        utc("2026-03-14T10:00:00+08:00")
    );
    assert_eq!(
        cal.deadline(friday, dur("1bd2h"), Clock::Business),
        utc("2026-03-16T12:00:00+08:00")
    );
    // Saturday counts from Monday's opening.
    assert_eq!(
        cal.deadline(utc("2026-03-14T15:00:00+08:00"), dur("1bd"), Clock::Business),
        utc("2026-03-17T09:00:00+08:00")
    );
}

#[test]
fn business_days_clamp_into_shorter_days() {
    // Saturday 10:00-14:00 only: the same time of day is clamped into Saturday's hours.
    let cal = calendar(
        r#"
        [hours]
        mon = ["08:00-22:00"]
        tue = ["08:00-22:00"]
        wed = ["08:00-22:00"]
        thu = ["08:00-22:00"]
        fri = ["08:00-22:00"]
        sat = ["10:00-12:00", "13:00-14:00"]
        sun = []
        "#,
    );
    let on_friday = |time: &str| utc(&format!("2026-03-13T{time}+08:00"));
    let on_saturday = |time: &str| utc(&format!("2026-03-14T{time}+08:00"));
    let next = |time: &str| cal.deadline(on_friday(time), dur("1bd"), Clock::Business);
    assert_eq!(next("08:30:00"), on_saturday("10:00:00"));
    assert_eq!(next("11:00:00"), on_saturday("11:00:00"));
    assert_eq!(next("12:30:00"), on_saturday("13:00:00"));
    assert_eq!(next("20:00:00"), on_saturday("14:00:00"));
}

#[test]
fn several_windows_a_day_and_lunch_break() {
    let cal = every_day("Asia/Shanghai", r#"["13:00-18:00", "09:00-12:00"]"#);
    assert_eq!(cal.hours.mon.windows().len(), 2);
    assert!(!cal.is_open(utc("2026-03-10T12:30:00+08:00")));
    assert_eq!(
        cal.deadline(utc("2026-03-10T11:00:00+08:00"), dur("2h"), Clock::Business),
        utc("2026-03-10T14:00:00+08:00")
    );
    assert_eq!(
        cal.deadline(utc("2026-03-10T11:00:00+08:00"), dur("1h"), Clock::Business),
        utc("2026-03-10T12:00:00+08:00")
    );
}

#[test]
fn overnight_service_as_two_windows_is_continuous() {
    let cal = calendar(
        r#"
        [hours]
        mon = ["00:00-02:00", "20:00-24:00"]
        tue = ["00:00-02:00", "20:00-24:00"]
        wed = ["00:00-02:00", "20:00-24:00"]
        thu = ["00:00-02:00", "20:00-24:00"]
        fri = ["00:00-02:00", "20:00-24:00"]
        sat = ["00:00-02:00"]
        sun = []
        "#,
    );
    assert!(cal.is_open(utc("2026-03-10T23:59:59+08:00")));
    assert!(cal.is_open(utc("2026-03-11T00:00:00+08:00")));
    assert_eq!(
        cal.deadline(utc("2026-03-10T23:00:00+08:00"), dur("2h"), Clock::Business),
        utc("2026-03-11T01:00:00+08:00")
    );
}

#[test]
fn round_the_clock_calendar_matches_wall_clock_without_dst() {
    let cal = every_day("Asia/Shanghai", r#"["00:00-24:00"]"#);
    let start = utc("2026-03-10T05:17:00Z");
    for text in ["1m", "2h", "24h", "1bd", "3bd5h"] {
        assert_eq!(
            cal.deadline(start, dur(text), Clock::Business),
            cal.deadline(start, dur(text), Clock::Wall),
            "{text}"
        );
    }
}

// ----- daylight-saving changes ------------------------------------------------------

#[test]
fn new_york_business_hours_across_spring_forward() {
    let cal = every_day("America/New_York", r#"["08:00-22:00"]"#);
    // Saturday 21:00 EST; Sunday opens 08:00 EDT (12:00 UTC).
    let start = utc("2026-03-07T21:00:00-05:00");
    assert_eq!(
        cal.deadline(start, dur("2h"), Clock::Business),
        utc("2026-03-08T09:00:00-04:00")
    );
    assert_eq!(
        cal.business_time_between(utc("2026-03-08T00:00:00-05:00"), utc("2026-03-09T00:00:00-04:00")),
        Duration::hours(14)
    );
}

#[test]
fn new_york_window_spanning_the_gap_is_an_hour_shorter() {
    let cal = every_day("America/New_York", r#"["01:00-04:00"]"#);
    let day = |a: &str, b: &str| cal.business_time_between(utc(a), utc(b));
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    assert_eq!(
        day("2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00"),
        Duration::hours(2)
    );
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:00 is read first in EDT.
    assert_eq!(
        day("2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"),
        Duration::hours(4)
    );
    assert!(cal.is_open(utc("2026-11-01T01:30:00-05:00")));
}

#[test]
fn new_york_window_starting_inside_the_gap_opens_at_the_jump() {
    let cal = every_day("America/New_York", r#"["02:30-05:00"]"#);
    assert!(!cal.is_open(utc("2026-03-08T06:59:59Z")));
    assert!(cal.is_open(utc("2026-03-08T07:00:00Z")));
    assert_eq!(
        cal.next_open(utc("2026-03-08T00:00:00Z")),
        utc("2026-03-08T03:00:00-04:00")
    );
    assert_eq!(
        cal.deadline(utc("2026-03-08T00:00:00Z"), dur("2h"), Clock::Business),
        utc("2026-03-08T05:00:00-04:00")
    );
    // A window lying wholly inside the gap is empty that day.
    let inside = every_day("America/New_York", r#"["02:10-02:50"]"#);
    assert_eq!(
        inside.next_open(utc("2026-03-08T00:00:00-05:00")),
        utc("2026-03-09T02:10:00-04:00")
    );
}

#[test]
fn new_york_window_ending_inside_the_repeated_hour_closes_at_first_reading() {
    let cal = every_day("America/New_York", r#"["00:00-01:30"]"#);
    assert!(cal.is_open(utc("2026-11-01T01:29:00-04:00")));
    assert!(!cal.is_open(utc("2026-11-01T01:15:00-05:00")));
    assert_eq!(
        cal.business_time_between(utc("2026-11-01T00:00:00-04:00"), utc("2026-11-02T00:00:00-05:00")),
        Duration::minutes(90)
    );
}

#[test]
fn new_york_business_day_across_dst_keeps_local_time() {
    let cal = calendar(&format!("time_zone = \"America/New_York\"\n{WEEKDAYS_ONLY}"));
    let friday = utc("2026-03-06T10:00:00-05:00");
    let monday = utc("2026-03-09T10:00:00-04:00");
    assert_eq!(cal.deadline(friday, dur("1bd"), Clock::Business), monday);
    assert_eq!(monday - friday, Duration::hours(71));
}

#[test]
fn berlin_round_the_clock_days_are_23_and_25_hours() {
    let cal = every_day("Europe/Berlin", r#"["00:00-24:00"]"#);
    assert_eq!(
        cal.business_time_between(utc("2026-03-29T00:00:00+01:00"), utc("2026-03-30T00:00:00+02:00")),
        Duration::hours(23)
    );
    assert_eq!(
        cal.business_time_between(utc("2026-10-25T00:00:00+02:00"), utc("2026-10-26T00:00:00+01:00")),
        Duration::hours(25)
    );
    let start = utc("2026-03-28T22:00:00+01:00");
    assert_eq!(
        cal.deadline(start, dur("24h"), Clock::Business),
        utc("2026-03-29T23:00:00+02:00")
    );
    // One business day is the same local time the next day: 23 real hours here.
    assert_eq!(
        cal.deadline(start, dur("1bd"), Clock::Business),
        utc("2026-03-29T22:00:00+02:00")
    );
}

#[test]
fn berlin_window_holding_the_repeated_hour_counts_it() {
    let cal = every_day("Europe/Berlin", r#"["02:00-03:00"]"#);
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:00-03:00 is read twice.
    assert_eq!(
        cal.business_time_between(utc("2026-10-25T00:00:00Z"), utc("2026-10-26T00:00:00Z")),
        Duration::hours(2)
    );
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST, so the window is empty.
    assert_eq!(
        cal.business_time_between(utc("2026-03-29T00:00:00Z"), utc("2026-03-30T00:00:00Z")),
        Duration::zero()
    );
}

#[test]
fn samoa_skipped_day_is_closed() {
    // Pacific/Apia skipped 2011-12-30 entirely (UTC-10 to UTC+14).
    let cal = every_day("Pacific/Apia", r#"["08:00-22:00"]"#);
    let start = utc("2011-12-29T21:00:00-10:00");
    assert_eq!(
        cal.deadline(start, dur("2h"), Clock::Business),
        utc("2011-12-31T09:00:00+14:00")
    );
}

// ----- pauses -----------------------------------------------------------------------

#[test]
fn pauses_stop_the_clock() {
    let cal = BusinessCalendar::default();
    let at = |time: &str| utc(&format!("2026-03-10T{time}+08:00"));
    let start = at("09:00:00");
    let four = dur("4h");
    let paused = |pauses: &[(DateTime<Utc>, Option<DateTime<Utc>>)]| {
        cal.deadline_with_pauses(start, four, Clock::Business, pauses)
    };
    assert_eq!(paused(&[]), Some(at("13:00:00")));
    assert_eq!(paused(&[(at("10:00:00"), Some(at("11:00:00")))]), Some(at("14:00:00")));
    // Overlapping pauses count once.
    assert_eq!(
        paused(&[
            (at("10:30:00"), Some(at("11:30:00"))),
            (at("10:00:00"), Some(at("11:00:00")))
        ]),
        Some(at("14:30:00"))
    );
    // Before the start: ignored.
    assert_eq!(paused(&[(at("07:00:00"), Some(at("08:59:00")))]), Some(at("13:00:00")));
    // Still paused since before the deadline: unknown.
    assert_eq!(paused(&[(at("10:00:00"), None)]), None);
    // Paused only after the target was already due: known.
    assert_eq!(paused(&[(at("14:00:00"), None)]), Some(at("13:00:00")));
    // A pause from before the start that is still open.
    assert_eq!(paused(&[(at("08:00:00"), None)]), None);
}

#[test]
fn pause_over_closed_hours_only_holds_open_time() {
    let cal = BusinessCalendar::default();
    let start = utc("2026-03-10T21:00:00+08:00");
    let pause = (utc("2026-03-10T22:00:00+08:00"), Some(utc("2026-03-11T08:30:00+08:00")));
    assert_eq!(
        cal.deadline_with_pauses(start, dur("2h"), Clock::Business, &[pause]),
        Some(utc("2026-03-11T09:30:00+08:00"))
    );
    assert_eq!(
        cal.deadline_with_pauses(start, dur("2h"), Clock::Wall, &[pause]),
        Some(utc("2026-03-11T09:30:00+08:00"))
    );
}

#[test]
fn pauses_extend_business_day_targets() {
    let cal = calendar(WEEKDAYS_ONLY);
    let friday = |time: &str| utc(&format!("2026-03-13T{time}+08:00"));
    assert_eq!(
        cal.deadline_with_pauses(
            friday("10:00:00"),
            dur("1bd"),
            Clock::Business,
            &[(friday("12:00:00"), Some(friday("14:00:00")))]
        ),
        Some(utc("2026-03-16T12:00:00+08:00"))
    );
}

// ----- termination and edges --------------------------------------------------------

#[test]
fn never_open_calendar_terminates() {
    let cal = BusinessCalendar {
        hours: WeeklyHours::every_day(DayHours::closed()),
        ..BusinessCalendar::default()
    };
    assert_eq!(cal.validate(), Err(CalendarError::NeverOpen));
    let t = utc("2026-03-10T09:00:00Z");
    assert!(!cal.is_open(t));
    assert_eq!(cal.next_open(t), NEVER);
    assert_eq!(cal.deadline(t, dur("30m"), Clock::Business), NEVER);
    assert_eq!(cal.deadline(t, dur("2bd"), Clock::Business), NEVER);
    assert_eq!(cal.business_time_between(t, t + Duration::days(30)), Duration::zero());
    assert_eq!(
        cal.deadline_with_pauses(t, dur("30m"), Clock::Business, &[(t, Some(t))]),
        Some(NEVER)
    );
}

#[test]
fn calendar_open_only_on_one_workday_terminates() {
    // Unvalidated: no weekly hours, open on a single make-up workday.
    let cal = BusinessCalendar {
        hours: WeeklyHours::every_day(DayHours::closed()),
        workdays: BTreeSet::from([date("2026-03-10")]),
        ..BusinessCalendar::default()
    };
    let t = utc("2026-03-09T09:00:00Z");
    assert_eq!(cal.next_open(t), utc("2026-03-10T08:00:00+08:00"));
    assert_eq!(cal.deadline(t, dur("15h"), Clock::Business), NEVER);
}

#[test]
fn extreme_instants_do_not_panic() {
    for zone in ["Asia/Shanghai", "America/New_York", "Pacific/Kiritimati"] {
        let cal = every_day(zone, r#"["08:00-22:00"]"#);
        for t in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let _ = cal.is_open(t);
            let _ = cal.next_open(t);
            let _ = cal.business_time_between(t, t);
            let near = |days: i64| t.checked_add_signed(Duration::days(days)).unwrap_or(t);
            let _ = cal.business_time_between(near(-3), t);
            let _ = cal.business_time_between(t, near(3));
            for clock in [Clock::Business, Clock::Wall] {
                for text in ["0s", "90s", "3bd", "366bd8784h"] {
                    let _ = cal.deadline(t, dur(text), clock);
                    let _ = cal.deadline_with_pauses(t, dur(text), clock, &[(t, Some(t))]);
                }
            }
        }
    }
}

#[test]
fn largest_durations_stay_quick_and_finite() {
    let cal = every_day("Europe/Berlin", r#"["09:00-09:01"]"#);
    let start = utc("2026-03-10T00:00:00Z");
    let due = cal.deadline(start, dur("366bd8784h"), Clock::Business);
    assert!(due < NEVER);
    assert_eq!(
        cal.business_time_between(cal.deadline(start, dur("366bd"), Clock::Business), due),
        Duration::hours(8784)
    );
}

// ----- configuration ----------------------------------------------------------------

#[test]
fn sample_policy_file_parses() {
    // The file is included into config/policy.toml, which names its calendars.
    #[derive(Deserialize)]
    struct Policy {
        calendars: std::collections::BTreeMap<String, BusinessCalendar>,
    }
    let policy: Policy = toml::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/policy/calendar.toml"
    )))
    .unwrap();
    assert!(policy.calendars["default"].public_holidays && policy.calendars["working_days"].public_holidays);
}

#[test]
fn serde_round_trip_keeps_the_calendar() {
    let cal = calendar(&format!(
        r#"
        time_zone = "Europe/Berlin"
        holidays = ["2026-12-24..2026-12-26", "2026-01-01", 2026-05-01]
        workdays = ["2026-12-19"]
        makeup_hours = ["10:00-14:00"]
        {WEEKDAYS_ONLY}
        "#
    ));
    assert!(cal.holidays.contains(&date("2026-05-01")));
    let text = toml::to_string(&cal).unwrap();
    assert!(text.contains("\"2026-12-24..2026-12-26\""), "{text}");
    assert_eq!(BusinessCalendar::from_toml_str(&text).unwrap(), cal);
    // Policy loaders that merge files go through toml::Value; bare dates must survive that.
    let merged: toml::Value = toml::from_str("holidays = [2026-05-01]").unwrap();
    let from_value: BusinessCalendar = merged.try_into().unwrap();
    assert!(from_value.holidays.contains(&date("2026-05-01")));
    let value = toml::Value::try_from(&cal).unwrap();
    assert_eq!(
        value.get("time_zone").and_then(toml::Value::as_str),
        Some("Europe/Berlin")
    );
    assert_eq!(value.try_into::<BusinessCalendar>().unwrap(), cal);
}

#[test]
fn validation_errors_name_the_field() {
    let cases = [
        (r#"time_zone = "Mars/Olympus""#, "time_zone: unknown IANA time zone"),
        ("[hours]\nmon = [\"25:00-26:00\"]", "hours.mon[0]"),
        (
            &WEEKDAYS_ONLY.replace("tue = [\"09:00-18:00\"]", "tue = [\"09:00-18:00\", \"17:00-19:00\"]"),
            "hours.tue: windows 09:00-18:00 and 17:00-19:00 overlap",
        ),
        (
            &WEEKDAYS_ONLY.replace("wed = [\"09:00-18:00\"]", "wed = [\"18:00-09:00\"]"),
            "hours.wed[0]",
        ),
        (
            &WEEKDAYS_ONLY.replace("thu = [\"09:00-18:00\"]", "thu = [\"9am-5pm\"]"),
            "hours.thu[0]",
        ),
        (&WEEKDAYS_ONLY.replace("sun = []", ""), "hours.sun: missing"),
        (
            "[hours]\nmon=[]\ntue=[]\nwed=[]\nthu=[]\nfri=[]\nsat=[]\nsun=[]",
            "never open",
        ),
        (
            "holidays = [\"2026-02-28\"]\nworkdays = [\"2026-02-28\"]",
            "2026-02-28 is listed both",
        ),
        (r#"holidays = ["2026-02-30"]"#, "holidays[0]"),
        (r#"holidays = ["2026-01-01", "2026-03-01..2026-02-01"]"#, "holidays[1]"),
        (r#"workdays = ["tomorrow"]"#, "workdays[0]"),
        (r#"makeup_hours = ["08:00-24:30"]"#, "makeup_hours[0]"),
        (
            r#"holidays = ["2026-01-01..2026-12-31", "2027-01-01..2027-02-01"]"#,
            "holidays: closed more than 366 days in a row from 2026-01-01",
        ),
        (r#"holiday = ["2026-01-01"]"#, "unknown field"),
    ];
    for (toml, expected) in cases {
        let message = error_of(toml);
        assert!(message.contains(expected), "{toml:?} gave {message:?}");
    }
    let no_makeup = format!(
        "workdays = [\"2026-02-28\"]\n{}",
        WEEKDAYS_ONLY.replace("mon = [\"09:00-18:00\"]", "mon = []")
    );
    assert_eq!(
        BusinessCalendar::from_toml_str(&no_makeup),
        Err(CalendarError::NoMakeupHours)
    );
}

#[test]
fn errors_through_serde_name_the_field_too() {
    #[derive(Debug, Deserialize)]
    struct Policy {
        #[allow(dead_code)]
        calendar: BusinessCalendar,
    }
    let err = toml::from_str::<Policy>("[calendar.hours]\nmon = [\"08:00-22:00\", \"21:00-23:00\"]")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hours.mon: windows 08:00-22:00 and 21:00-23:00 overlap"),
        "{err}"
    );
}

#[test]
fn constructor_validates() {
    let workday = date("2026-02-28");
    assert_eq!(
        BusinessCalendar::new(Tz::Asia__Shanghai, WeeklyHours::default(), [workday], [workday], None),
        Err(CalendarError::HolidayAlsoWorkday { date: workday })
    );
    let cal = BusinessCalendar::new(
        Tz::Europe__Berlin,
        WeeklyHours::weekdays(DayHours::new(["09:00-12:00".parse().unwrap(), "13:00-17:00".parse().unwrap()]).unwrap()),
        [],
        [workday],
        None,
    )
    .unwrap();
    assert_eq!(cal.makeup_hours.open_minutes(), 7 * 60);
    assert!(DayHours::new([TimeWindow::new(0, 600).unwrap(), TimeWindow::new(599, 700).unwrap()]).is_err());
    assert!(TimeWindow::new(600, 600).is_err());
    assert!(TimeWindow::new(0, 1441).is_err());
    assert_eq!(TimeWindow::new(1380, 1440).unwrap().to_string(), "23:00-24:00");
}

#[test]
fn sla_durations_parse() {
    let ok = [
        ("15m", 0, 900),
        ("2h", 0, 7200),
        ("90s", 0, 90),
        ("1h30m", 0, 5400),
        ("24h", 0, 86_400),
        ("1bd", 1, 0),
        ("3bd", 3, 0),
        ("1bd4h", 1, 14_400),
        ("0m", 0, 0),
        (" 2h ", 0, 7200),
        ("8784h", 0, MAX_SLA_SECONDS),
    ];
    for (text, days, seconds) in ok {
        let parsed = dur(text);
        assert_eq!(
            (parsed.business_days(), u64::from(parsed.seconds)),
            (days, seconds),
            "{text}"
        );
    }
    for bad in [
        "",
        "15",
        "m",
        "1d",
        "1h1h",
        "30m1h",
        "1.5h",
        "-1h",
        "1H",
        "1 h",
        "8785h",
        "367bd",
        "99999999999999999999h",
        "1bd1bd",
        "1w",
    ] {
        assert!(bad.parse::<SlaDuration>().is_err(), "{bad:?} parsed");
    }
    assert!("1d".parse::<SlaDuration>().unwrap_err().to_string().contains("24h"));
    assert_eq!(dur("90s").to_string(), "1m30s");
    assert_eq!(dur("1bd24h").to_string(), "1bd24h");
    assert_eq!(SlaDuration::ZERO.to_string(), "0s");
}

#[test]
fn sla_duration_and_clock_serde() {
    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Target {
        within: SlaDuration,
        clock: Clock,
    }
    let target: Target = toml::from_str("within = \"1h30m\"\nclock = \"business\"").unwrap();
    assert_eq!(
        target,
        Target {
            within: dur("1h30m"),
            clock: Clock::Business
        }
    );
    assert_eq!(
        toml::to_string(&target).unwrap(),
        "within = \"1h30m\"\nclock = \"business\"\n"
    );
    assert!(toml::from_str::<Target>("within = \"1d\"\nclock = \"wall\"").is_err());
    assert!(toml::from_str::<Target>("within = \"1h\"\nclock = \"Business\"").is_err());
}

// ----- properties -------------------------------------------------------------------

const PROPERTY_ZONES: [Tz; 5] = [
    Tz::Asia__Shanghai,
    Tz::America__New_York,
    Tz::Europe__Berlin,
    Tz::Australia__Lord_Howe,
    Tz::America__Santiago,
];

/// Random windows on a quarter-hour grid, so that they often touch DST change hours.
fn arb_day() -> impl Strategy<Value = DayHours> {
    prop::collection::vec(0u16..=96, 0..=6).prop_map(|mut points| {
        points.sort_unstable();
        points.dedup();
        DayHours::new(
            points
                .chunks_exact(2)
                .map(|pair| TimeWindow::new(pair[0] * 15, pair[1] * 15).unwrap()),
        )
        .unwrap()
    })
}

fn day_from(base: &str, offset: u32) -> NaiveDate {
    date(base) + Duration::days(i64::from(offset))
}

fn arb_calendar_in(zones: Vec<Tz>, day: BoxedStrategy<DayHours>) -> impl Strategy<Value = BusinessCalendar> {
    (
        prop::sample::select(zones),
        prop::array::uniform7(day),
        prop::collection::btree_set(0u32..430, 0..25),
        prop::collection::btree_set(0u32..430, 0..6),
        arb_day(),
    )
        .prop_map(
            |(zone, [mon, tue, wed, thu, fri, sat, sun], holidays, workdays, makeup)| {
                let mut hours = WeeklyHours {
                    mon,
                    tue,
                    wed,
                    thu,
                    fri,
                    sat,
                    sun,
                };
                if hours.all().iter().all(|day| day.is_closed()) {
                    hours.wed = DayHours(vec![DEFAULT_WINDOW]);
                }
                let makeup = if makeup.is_closed() {
                    DayHours(vec![DEFAULT_WINDOW])
                } else {
                    makeup
                };
                let holidays: BTreeSet<_> = holidays.into_iter().map(|d| day_from("2025-12-01", d)).collect();
                let workdays = workdays
                    .into_iter()
                    .map(|d| day_from("2025-12-01", d))
                    .filter(|d| !holidays.contains(d))
                    .collect::<Vec<_>>();
                BusinessCalendar::new(zone, hours, holidays, workdays, Some(makeup)).unwrap()
            },
        )
}

fn arb_calendar() -> impl Strategy<Value = BusinessCalendar> {
    arb_calendar_in(PROPERTY_ZONES.to_vec(), arb_day().boxed())
}

/// Instants from December 2025 to January 2027, on whole seconds.
fn arb_instant() -> impl Strategy<Value = DateTime<Utc>> {
    (1_764_547_200i64..1_801_353_600).prop_map(|t| DateTime::from_timestamp(t, 0).unwrap())
}

/// Instants within three days of the 2026 DST changes of New York and Berlin.
fn arb_instant_near_dst() -> impl Strategy<Value = DateTime<Utc>> {
    (
        prop::sample::select(vec![
            "2026-03-08T07:00:00Z",
            "2026-11-01T06:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-10-25T01:00:00Z",
        ]),
        -3 * 86_400i64..3 * 86_400,
    )
        .prop_map(|(change, offset)| utc(change) + Duration::seconds(offset))
}

fn arb_clock_time() -> impl Strategy<Value = SlaDuration> {
    prop_oneof![
        (0u64..=48 * 60).prop_map(|m| SlaDuration::from_secs(m * 60).unwrap()),
        (0u64..=120 * 3600).prop_map(|s| SlaDuration::from_secs(s).unwrap()),
    ]
}

fn arb_duration() -> impl Strategy<Value = SlaDuration> {
    (0u32..=5, arb_clock_time()).prop_map(|(days, time)| SlaDuration::new(days, u64::from(time.seconds)).unwrap())
}

/// Open, or the close of the window just before (windows are half-open).
fn open_or_window_end(cal: &BusinessCalendar, t: DateTime<Utc>) -> bool {
    cal.is_open(t) || cal.is_open(t - Duration::nanoseconds(1))
}

fn check_core_properties(
    cal: &BusinessCalendar,
    start: DateTime<Utc>,
    time: SlaDuration,
    extra: SlaDuration,
) -> Result<(), TestCaseError> {
    // Wall clock is plain addition, business days as 24 hours.
    for d in [time, extra] {
        prop_assert_eq!(cal.deadline(start, d, Clock::Wall), start + d.wall_time());
    }
    // Business clock: exactly the requested open time, ending in service hours.
    let time_only = SlaDuration::from_secs(u64::from(time.seconds)).unwrap();
    let due = cal.deadline(start, time_only, Clock::Business);
    prop_assert!(due >= start);
    prop_assert!(due < NEVER);
    prop_assert_eq!(cal.business_time_between(start, due), time_only.clock_time());
    prop_assert!(open_or_window_end(cal, due), "due {} not in service hours", due);
    // Business days (and mixes) end in service hours too.
    let due_extra = cal.deadline(start, extra, Clock::Business);
    prop_assert!(due_extra >= start);
    prop_assert!(
        open_or_window_end(cal, due_extra),
        "due {} not in service hours",
        due_extra
    );
    // Monotone: adding duration never moves a deadline earlier.
    let sum = time.checked_add(extra).unwrap();
    for clock in [Clock::Business, Clock::Wall] {
        let longer = cal.deadline(start, sum, clock);
        prop_assert!(longer >= cal.deadline(start, time, clock));
        prop_assert!(longer >= cal.deadline(start, extra, clock));
    }
    // next_open and business_time_between agree.
    let opens = cal.next_open(start);
    prop_assert!(opens >= start);
    prop_assert!(cal.is_open(opens));
    prop_assert_eq!(cal.business_time_between(start, opens), Duration::zero());
    prop_assert_eq!(cal.is_open(start), opens == start);
    let later = start + time.wall_time();
    prop_assert_eq!(
        cal.business_time_between(start, due_extra.max(later)),
        cal.business_time_between(start, later) + cal.business_time_between(later, due_extra.max(later))
    );
    prop_assert!(cal.business_time_between(start, later) <= later - start);
    Ok(())
}

fn check_holidays_closed(cal: &BusinessCalendar, minute: u16) -> Result<(), TestCaseError> {
    for &holiday in &cal.holidays {
        let (Some(from), Some(to)) = (
            instant_of(cal.time_zone, holiday, 0),
            instant_of(cal.time_zone, holiday, MINUTES_PER_DAY),
        ) else {
            continue;
        };
        prop_assert_eq!(cal.business_time_between(from, to), Duration::zero());
        let inside = instant_of(cal.time_zone, holiday, minute % MINUTES_PER_DAY).unwrap();
        prop_assert!(!cal.is_open(inside));
    }
    Ok(())
}

/// Effective running time: open (or all) time in [start, end) outside the pauses.
fn running_time(
    cal: &BusinessCalendar,
    clock: Clock,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    pauses: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Duration {
    let mut sorted: Vec<_> = pauses.to_vec();
    sorted.sort();
    let mut held = Duration::zero();
    let mut covered = start;
    for (from, until) in sorted {
        let from = from.max(covered);
        let until = until.min(end);
        if until > from {
            held += cal.clock_time_between(from, until, clock);
            covered = until;
        }
    }
    cal.clock_time_between(start, end, clock) - held
}

proptest! {
    #[test]
    fn core_properties(
        cal in arb_calendar(),
        start in arb_instant(),
        time in arb_clock_time(),
        extra in arb_duration(),
    ) {
        check_core_properties(&cal, start, time, extra)?;
    }

    #[test]
    fn core_properties_near_dst_changes(
        cal in arb_calendar_in(vec![Tz::America__New_York, Tz::Europe__Berlin], arb_day().boxed()),
        start in arb_instant_near_dst(),
        time in arb_clock_time(),
        extra in arb_duration(),
    ) {
        check_core_properties(&cal, start, time, extra)?;
    }

    #[test]
    fn holidays_are_never_open(cal in arb_calendar(), minute in 0u16..1440) {
        check_holidays_closed(&cal, minute)?;
    }

    #[test]
    fn later_start_never_gives_earlier_deadline(
        cal in arb_calendar(),
        a in arb_instant(),
        b in arb_instant(),
        time in arb_clock_time(),
    ) {
        let (early, late) = (a.min(b), a.max(b));
        prop_assert!(cal.deadline(early, time, Clock::Business) <= cal.deadline(late, time, Clock::Business));
    }

    #[test]
    fn business_days_on_uniform_calendar_are_whole_days_of_open_time(
        cal in arb_calendar_in(
            PROPERTY_ZONES.to_vec(),
            // Away from the hours at which these zones change clocks.
            prop::collection::vec(16u16..=92, 2..=4).prop_map(|mut points| {
                points.sort_unstable();
                points.dedup();
                let windows: Vec<_> = points.chunks_exact(2).map(|p| TimeWindow::new(p[0] * 15, p[1] * 15).unwrap()).collect();
                if windows.is_empty() { DayHours(vec![DEFAULT_WINDOW]) } else { DayHours(windows) }
            }).boxed(),
        ).prop_map(|mut cal| {
            cal.hours = WeeklyHours::every_day(cal.hours.mon.clone());
            cal.makeup_hours = cal.hours.mon.clone();
            cal
        }),
        start in arb_instant(),
        days in 1u32..=5,
    ) {
        let due = cal.deadline(start, SlaDuration::from_business_days(days).unwrap(), Clock::Business);
        let per_day = Duration::minutes(i64::from(cal.hours.mon.open_minutes()));
        prop_assert_eq!(cal.business_time_between(start, due), per_day * days as i32);
        prop_assert!(cal.is_open(due));
    }

    #[test]
    fn paused_clock_runs_exactly_the_duration(
        cal in arb_calendar(),
        start in arb_instant(),
        time in arb_clock_time(),
        raw_pauses in prop::collection::vec((-86_400i64..6 * 86_400, 0i64..2 * 86_400), 0..4),
        wall in any::<bool>(),
    ) {
        let clock = if wall { Clock::Wall } else { Clock::Business };
        let pauses: Vec<_> = raw_pauses
            .iter()
            .map(|&(from, length)| (start + Duration::seconds(from), start + Duration::seconds(from + length)))
            .collect();
        let as_options: Vec<_> = pauses.iter().map(|&(from, until)| (from, Some(until))).collect();
        let plain = cal.deadline(start, time, clock);
        prop_assert_eq!(cal.deadline_with_pauses(start, time, clock, &[]), Some(plain));
        let due = cal.deadline_with_pauses(start, time, clock, &as_options).unwrap();
        prop_assert!(due >= plain);
        prop_assert_eq!(running_time(&cal, clock, start, due, &pauses), time.clock_time());
        if clock == Clock::Business {
            prop_assert!(open_or_window_end(&cal, due) || time.is_zero());
        }
    }

    #[test]
    fn open_ended_pause_makes_deadline_unknown_only_if_it_starts_before(
        cal in arb_calendar(),
        start in arb_instant(),
        duration in arb_duration(),
        raw_pauses in prop::collection::vec((0i64..6 * 86_400, 0i64..86_400), 0..3),
        open_from in -86_400i64..8 * 86_400,
    ) {
        let open_from = start + Duration::seconds(open_from);
        // Closed pauses, cut where the open-ended one begins (it covers the rest).
        let closed: Vec<_> = raw_pauses
            .iter()
            .map(|&(from, length)| (start + Duration::seconds(from), start + Duration::seconds(from + length)))
            .filter(|&(from, _)| from < open_from)
            .map(|(from, until)| (from, Some(until.min(open_from))))
            .collect();
        let known = cal.deadline_with_pauses(start, duration, Clock::Business, &closed).unwrap();
        let mut all = closed.clone();
        all.push((open_from, None));
        match cal.deadline_with_pauses(start, duration, Clock::Business, &all) {
            Some(due) => {
                prop_assert_eq!(due, known);
                prop_assert!(due <= open_from.max(start));
            }
            None => prop_assert!(known > open_from.max(start)),
        }
    }

    #[test]
    fn shanghai_is_open_matches_local_wall_time(cal in arb_calendar_in(vec![Tz::Asia__Shanghai], arb_day().boxed()), t in arb_instant()) {
        let local = t.with_timezone(&cal.time_zone).naive_local();
        let second = local.num_seconds_from_midnight();
        let expected = cal
            .hours_on(local.date())
            .windows()
            .iter()
            .any(|w| u32::from(w.start) * 60 <= second && second < u32::from(w.end) * 60);
        prop_assert_eq!(cal.is_open(t), expected);
    }

    #[test]
    fn sla_duration_display_parses_back(days in 0u32..=MAX_BUSINESS_DAYS, seconds in 0u64..=MAX_SLA_SECONDS) {
        let d = SlaDuration::new(days, seconds).unwrap();
        prop_assert_eq!(d.to_string().parse::<SlaDuration>().unwrap(), d);
    }

    #[test]
    fn calendar_serde_round_trips(cal in arb_calendar()) {
        let text = toml::to_string(&cal).unwrap();
        prop_assert_eq!(BusinessCalendar::from_toml_str(&text).unwrap(), cal);
    }
}
