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
