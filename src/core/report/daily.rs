//! The daily roll-up (seed 002 §5 流程归档与分析: 每日17:00前汇总当日服务记录): when it is due, what it
//! says, and the deliveries that carry it to the people `[reports.daily]` names. Pure; the
//! scheduler's job (`runtime::daily_report`) loads the day's report and writes the deliveries
//! together with the ledger row that makes it once per day.

use super::Report;
use super::labels::Labels;
use super::render::{human_duration, labelled, review_line};
use crate::core::notify::{NotifyPolicy, Planned, Transport, sanitize};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde_json::json;
use std::fmt::Write as _;

/// The purpose of the deliveries (`deliveries.purpose`).
pub const PURPOSE: &str = "daily_report";
/// Review items quoted in the message; the rest are counted.
pub const REVIEW_LINES: usize = 20;

/// The local day whose roll-up is due at `now`: today once the local time reaches `at`, else
/// none (yesterday's, if missed, is not sent late: the next one covers the next day).
pub fn due_day(now: DateTime<Utc>, tz: Tz, at: NaiveTime) -> Option<NaiveDate> {
    let local = now.with_timezone(&tz);
    (local.time() >= at).then(|| local.date_naive())
}

/// Subject and text of the roll-up of `report` (a one-day report), in `l`'s language.
pub fn message(report: &Report, l: &Labels) -> (String, String) {
    let r = labelled(report, l);
    let subject = format!("{} {}", l.t("Daily service roll-up"), r.period.first_day);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} {} ({})",
        l.t("Daily service roll-up"),
        r.period.first_day,
        r.period.time_zone
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "{}: {}", l.t("Tickets received"), r.received);
    let _ = writeln!(
        o,
        "{}: {}/{}",
        l.t("Resolution rate"),
        r.resolution_rate.count,
        r.resolution_rate.of
    );
    for t in &r.on_time {
        let rate = t
            .rate
            .map(|x| format!("{:.1}%", x * 100.0))
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(
            o,
            "{} {}: {rate} ({} {}, {} {}, {} {})",
            l.t("SLA on-time rate"),
            t.target,
            t.on_time,
            l.t("on time"),
            t.late,
            l.t("late"),
            t.breached,
            l.t("breached")
        );
    }
    if let Some(mean) = r.resolution.mean_seconds {
        let _ = writeln!(o, "{}: {}", l.t("mean resolution"), human_duration(mean));
    }
    let csat = r.csat.mean.map(|m| format!("{m:.2}")).unwrap_or_else(|| "–".into());
    let _ = writeln!(o, "{}: {csat} ({})", l.t("CSAT"), r.csat.rated);
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{} ({})",
        l.t("Review (late, unresolved, unsatisfied)"),
        r.review.len()
    );
    for i in r.review.iter().take(REVIEW_LINES) {
        let _ = writeln!(o, "- {}", review_line(i, l));
    }
    if r.review.len() > REVIEW_LINES {
        let _ = writeln!(o, "… +{}", r.review.len() - REVIEW_LINES);
    }
    let given: Vec<String> = r
        .unsatisfied
        .reasons
        .iter()
        .filter(|c| c.count > 0)
        .map(|c| format!("{} {}", c.reason, c.count))
        .collect();
    if !given.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "{}: {}", l.t("Unsatisfied reasons"), given.join(", "));
    }
    (subject, o)
}

/// One delivery per person of `roles` and medium, keyed by the day: planning the same day again
/// yields the same keys. Email needs `mail_domain` (the sender's domain, for the Message-ID),
/// as staff notifications do.
pub fn plan(
    day: NaiveDate,
    roles: &[String],
    notify: &NotifyPolicy,
    subject: &str,
    text: &str,
    mail_domain: Option<&str>,
) -> Vec<Planned> {
    let mut people: Vec<(&str, &crate::core::notify::Person)> = Vec::new();
    for role in roles {
        for (id, p) in notify.people_in(role) {
            if !people.iter().any(|(x, _)| *x == id) {
                people.push((id, p));
            }
        }
    }
    let mut out = Vec::new();
    for (person, p) in people {
        for m in p.media() {
            let key = format!("{PURPOSE}:{day}:{person}:{}", m.transport.as_str());
            let msg_id = match (m.transport, mail_domain) {
                (Transport::Email, Some(d)) => format!("sb.daily.{day}.{}@{d}", sanitize(person)),
                (Transport::Email, None) => continue,
                _ => key.clone(),
            };
            let payload = match m.transport {
                Transport::Email => json!({ "to": m.target, "subject": subject, "text": text }),
                Transport::Webhook => json!({
                    "type": "switchboard.report.daily.v1", "day": day.to_string(),
                    "title": subject, "text": text,
                }),
                _ => json!({ "title": subject, "text": text }),
            };
            out.push(Planned::to_staff(person, &m, PURPOSE, key, msg_id, payload));
        }
    }
    out
}
