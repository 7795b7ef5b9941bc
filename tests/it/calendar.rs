//! Calendars and channel SLAs through the real pipeline (intake → classify → prioritize →
//! assign) under the shipped policy: the due times stored on the ticket.

use crate::common;

use chrono::{DateTime, Utc};
use common::Harness;
use std::time::Duration;
use switchboard::app::StageName;

async fn ticket_due(h: &Harness, id: &str) -> (String, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>) {
    let q =
        format!("SELECT count(*) FROM tickets WHERE channel_message_id = '{id}' AND first_response_due IS NOT NULL");
    h.wait_for("ticket prioritized", Duration::from_secs(60), || async {
        h.count(&q).await == 1
    })
    .await;
    let client = h.app.db.pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT sla_rule, received_at, first_response_due, resolution_due FROM tickets WHERE channel_message_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_by_channel_and_working_days_through_the_pipeline() {
    let mut h = Harness::new("calendar").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);

    // An email inquiry: answered within 24 hours (support process §2.1), not 30 minutes.
    let now = Utc::now().to_rfc3339();
    let email = format!(
        r#"{{"channel":"email","channel_message_id":"mail-1","received_at":"{now}","customer":{{"customer_id":"C1","email":"a@example.com"}},"subject":"订单","body":"请问我的订单到哪了"}}"#
    );
    h.publish_intake("intake.email", "mail-1", email.as_bytes()).await;
    // The same question by phone keeps the normal rule.
    let phone = format!(
        r#"{{"channel":"phone","channel_message_id":"call-1","received_at":"{now}","customer":{{"phone":"13812345678"}},"body":"请问我的订单到哪了"}}"#
    );
    h.publish_intake("intake.phone", "call-1", phone.as_bytes()).await;
    // A suggestion (low priority) received on Friday 2026-03-06 at 20:00 Beijing time: its first
    // response is due one working day later, Monday 20:00, not Saturday.
    let friday = "2026-03-06T20:00:00+08:00";
    let suggestion = format!(
        r#"{{"channel":"app","channel_message_id":"app-1","received_at":"{friday}","customer":{{"customer_id":"C2"}},"body":"建议你们的APP增加夜间模式，希望以后能优化一下界面"}}"#
    );
    h.publish_intake("intake.app", "app-1", suggestion.as_bytes()).await;

    let (rule, received, first, _) = ticket_due(&h, "mail-1").await;
    assert_eq!(rule, "email-normal");
    assert_eq!(first - received, chrono::Duration::hours(24));
    let (rule, received, first, _) = ticket_due(&h, "call-1").await;
    assert_eq!(rule, "normal");
    assert_eq!(first - received, chrono::Duration::minutes(30));
    let (rule, received, first, resolution) = ticket_due(&h, "app-1").await;
    assert_eq!(received, at(friday));
    assert!(rule.starts_with("suggestion-"), "{rule}");
    assert_eq!(first, at("2026-03-09T20:00:00+08:00"), "the next working day");
    // 15 working days (classification table): Friday 2026-03-27.
    assert_eq!(resolution, at("2026-03-27T20:00:00+08:00"));
    h.cleanup().await;
}

/// `switchboard calendar import`: a dry run by default, then one file per year written once;
/// a differing file only with --replace; a broken feed refused with its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_import_writes_each_year_once_and_refuses_broken_feeds() {
    use common::process::run_cli;
    let s = common::test_settings("calimport");
    let dir = std::env::temp_dir().join(format!("sb-holidays-{}", uuid::Uuid::new_v4()));
    let feed = common::manifest_dir().join("tests/fixtures/calendar/cn-holidays-2026.ics");
    let (feed, d) = (feed.to_str().unwrap(), dir.to_str().unwrap());
    let text = |o: &std::process::Output| {
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };

    let out = run_cli(&s, &["calendar", "import", feed, "--dir", d]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("2026.toml (new)") && stdout.contains("dry run"),
        "{stdout}"
    );
    assert!(stderr.contains("七夕"), "skipped observances are listed: {stderr}");
    assert!(!dir.join("2026.toml").exists());

    let out = run_cli(&s, &["calendar", "import", feed, "--dir", d, "--write"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let written = std::fs::read_to_string(dir.join("2026.toml")).unwrap();
    assert!(
        written.contains("\"2026-02-15..2026-02-23\", # 春节（休）"),
        "{written}"
    );
    assert!(written.contains("\"2026-02-28\", # 春节 补班"), "{written}");

    let out = run_cli(&s, &["calendar", "import", feed, "--dir", d, "--write"]).await;
    assert!(out.status.success());
    assert!(text(&out).0.contains("(unchanged)"));

    std::fs::write(dir.join("2026.toml"), written.replace("2026-02-28", "2026-03-07")).unwrap();
    let out = run_cli(&s, &["calendar", "import", feed, "--dir", d, "--write"]).await;
    assert!(!out.status.success());
    assert!(text(&out).1.contains("--replace"), "{:?}", text(&out));
    let out = run_cli(&s, &["calendar", "import", feed, "--dir", d, "--write", "--replace"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(std::fs::read_to_string(dir.join("2026.toml")).unwrap(), written);

    let broken = dir.join("broken.ics");
    std::fs::write(
        &broken,
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:2026-01-01\r\nEND:VEVENT\r\n",
    )
    .unwrap();
    let out = run_cli(&s, &["calendar", "import", broken.to_str().unwrap(), "--dir", d]).await;
    assert!(!out.status.success());
    assert!(text(&out).1.contains("line 3"), "{:?}", text(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}
