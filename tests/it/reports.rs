//! `switchboard report` on the real Postgres: exact figures over tickets written with chosen
//! timestamps, the CLI in every format, and a report over tickets driven through the pipeline.

use crate::backdate;
use crate::common;

use backdate::OldTicket;
use chrono::{Datelike, Duration, NaiveDate, Utc};
use common::{Harness, manifest_dir, test_settings};
use serde_json::{Value, json};
use std::time::Duration as StdDuration;
use switchboard::app::StageName;
use switchboard::bus;
use switchboard::contracts::{Exchange, Outgoing};
use switchboard::core::report::problems::rule_hits;
use switchboard::core::report::{Period, PeriodSpec, Report};

const PAYMENT: &str = "支付失败了好几次，付不了款";
const COMPLAINT: &str = "客服态度太差了，等了三天没人理";

use common::process::cli;

/// A Monday-to-Sunday week some weeks back, in the policy's time zone.
fn past_week(h: &Harness) -> Period {
    let today = Utc::now().with_timezone(&h.app.policy.tz).date_naive();
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday())) - Duration::weeks(6);
    Period::resolve(
        PeriodSpec::Dates {
            from: monday,
            to: monday + Duration::days(6),
        },
        Utc::now(),
        h.app.policy.tz,
    )
    .unwrap()
}

/// Seven tickets in a past week (and two outside it) whose every figure is worked out by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_figure_is_exact_over_backdated_tickets_and_the_cli_prints_it_in_every_format() {
    let h = Harness::new("report_exact").await;
    let period = past_week(&h);
    let base = period.from + Duration::hours(10); // Monday 10:00 local
    let classify = |text: &str| h.app.policy.classifier.classify(None, text);
    let payment = classify(PAYMENT);
    let complaint = classify(COMPLAINT);
    assert_eq!(payment.category, "fault");
    assert_eq!(complaint.category, "complaint");
    let min = Duration::minutes;

    let mut t1 = OldTicket::new("T1", base).closed(min(10), Duration::hours(2));
    t1.category = "fault".into();
    t1.team = Some("technical_support".into());
    t1.reasons = Some(payment.reasons.clone());
    t1.rating = Some(5);
    t1.body = PAYMENT.into();

    let r2 = base + Duration::days(1);
    let mut t2 = OldTicket::new("T2", r2);
    t2.category = "fault".into();
    t2.channel = "email".into();
    t2.team = Some("technical_support".into());
    t2.reasons = Some(payment.reasons.clone());
    t2.first_responded_at = Some(r2 + min(40)); // late: due after 30 min
    t2.pauses = vec![(r2 + Duration::hours(2), Some(r2 + Duration::hours(7)))];
    t2.resolved_at = Some(r2 + Duration::hours(30)); // 25 h net; due 24 h + 5 h paused: late
    t2.rating = Some(2);

    let r3 = base + Duration::days(2);
    let mut t3 = OldTicket::new("T3", r3);
    t3.category = "complaint".into();
    t3.channel = "phone".into();
    t3.customer = json!({"name": "张三", "phone": "13812345678"});
    t3.team = Some("customer_relations".into());
    t3.reasons = Some(complaint.reasons.clone());
    t3.first_responded_at = Some(r3 + min(15)); // complaint-normal: due after 20 min
    t3.escalations = vec![("resolution".into(), false, 2)];

    let mut t4 = OldTicket::new("T4", base + Duration::days(3));
    t4.category = "complaint".into();
    t4.channel = "phone".into();
    t4.customer = json!({"name": "张三", "phone": "+86 138-1234-5678", "email": "zs@example.com"});
    t4.escalations = vec![("first_response".into(), true, 1)];

    let r5 = base + Duration::days(4);
    let mut t5 = OldTicket::new("T5", r5);
    t5.channel = "app".into();
    t5.first_responded_at = Some(r5 + min(5));
    t5.pauses = vec![(r5 + min(10), None)];

    let mut t6 = OldTicket::new("T6", base + Duration::days(5));
    t6.category = "complaint".into();
    t6.channel = "email".into();
    t6.customer = json!({"email": "A@B.com"});
    let mut t7 = OldTicket::new("T7", base + Duration::days(5) + Duration::hours(1));
    t7.category = "complaint".into();
    t7.channel = "app".into();
    t7.customer = json!({"name": "匿名"});

    // Outside the period: an earlier complaint by T6's customer (10 days before the week) and
    // a ticket of the next week.
    let mut p0 = OldTicket::new("P0", base - Duration::days(10));
    p0.category = "complaint".into();
    p0.customer = json!({"email": "a@b.com"});
    let mut next = OldTicket::new("N1", period.to + Duration::hours(1));
    next.category = "fault".into();

    {
        let client = h.app.db.pool.get().await.unwrap();
        for t in [&t1, &t2, &t3, &t4, &t5, &t6, &t7, &p0, &next] {
            backdate::insert(&**client, t).await;
        }
    }

    let now = Utc::now();
    let r: Report = switchboard::store::reports::report(&h.app.db, &h.app.policy, &period, now)
        .await
        .unwrap();
    assert_eq!(r.received, 7);
    let counts = |v: &[switchboard::core::report::Count]| -> Vec<(String, u64)> {
        v.iter().map(|c| (c.key.clone(), c.count)).collect()
    };
    assert_eq!(
        counts(&r.by_category),
        vec![("complaint".into(), 4), ("fault".into(), 2), ("inquiry".into(), 1)]
    );
    assert_eq!(
        counts(&r.by_channel),
        vec![
            ("app".into(), 2),
            ("email".into(), 2),
            ("phone".into(), 2),
            ("chat".into(), 1)
        ]
    );
    assert_eq!(counts(&r.by_priority), vec![("normal".into(), 7)]);
    assert_eq!(
        counts(&r.by_team),
        vec![
            ("front_line".into(), 4),
            ("technical_support".into(), 2),
            ("customer_relations".into(), 1)
        ]
    );

    // First response 300, 600, 900, 2400 s; resolution 7200 and 90000 s (5 h waiting excluded).
    assert_eq!(r.first_response.count, 4);
    assert_eq!(r.first_response.mean_seconds, Some(1050.0));
    assert_eq!(r.first_response.p50_seconds, Some(600));
    assert_eq!(r.first_response.p90_seconds, Some(2400));
    assert_eq!(r.resolution.count, 2);
    assert_eq!(r.resolution.mean_seconds, Some(48600.0));
    assert_eq!(r.resolution.p50_seconds, Some(7200));
    assert_eq!(r.resolution.p90_seconds, Some(90000));

    let on_time: Vec<(String, u64, u64, u64, u64)> = r
        .on_time
        .iter()
        .map(|o| (o.target.clone(), o.on_time, o.late, o.breached, o.undecided))
        .collect();
    assert_eq!(
        on_time,
        vec![
            // T1 came by chat, whose first reply is due in 10 s (chat-normal): its 10 min is late.
            ("first_response".into(), 2, 2, 3, 0),
            ("resolution".into(), 1, 1, 4, 1),
            // Milestones (shipped policy): the complaints' plan (4 h) is missed on T3, T4, T6,
            // T7; the faults' diagnosis (8 h, pausing) is met by T1's resolution at 2 h and late
            // by T2's at 30 h (due 13 h with 5 h waiting).
            ("plan".into(), 0, 0, 4, 3),
            ("diagnosis".into(), 1, 1, 0, 5),
        ]
    );
    assert_eq!(r.on_time[0].rate, Some(2.0 / 7.0));
    assert_eq!(r.on_time[1].rate, Some(1.0 / 6.0));

    let esc: Vec<(String, u64, u64, u64)> = r
        .escalations
        .iter()
        .map(|e| (e.target.clone(), e.tickets, e.steps, e.acknowledged))
        .collect();
    assert_eq!(
        esc,
        vec![("first_response".into(), 1, 1, 1), ("resolution".into(), 1, 2, 0)]
    );
    assert_eq!((r.resolution_rate.count, r.resolution_rate.of), (2, 7));
    assert_eq!(r.csat.distribution, [0, 1, 0, 0, 1]);
    assert_eq!(r.csat.mean, Some(3.5));
    let rc = &r.repeat_complaints;
    assert_eq!((rc.complaints, rc.repeats, rc.unidentified), (4, 2, 1));

    // Problems: the payment rules on two tickets, the complaint rules on one.
    let payment_rules: std::collections::BTreeSet<String> = rule_hits(&payment.reasons, "fault")
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let complaint_rules: std::collections::BTreeSet<String> = rule_hits(&complaint.reasons, "complaint")
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert!(!payment_rules.is_empty() && !complaint_rules.is_empty());
    assert_eq!(r.problems.top.len(), payment_rules.len() + complaint_rules.len());
    for p in &r.problems.top {
        match p.category.as_str() {
            "fault" => assert!(payment_rules.contains(&p.rule) && p.tickets == 2, "{p:?}"),
            "complaint" => assert!(complaint_rules.contains(&p.rule) && p.tickets == 1, "{p:?}"),
            other => panic!("unexpected problem category {other}"),
        }
    }
    assert_eq!(r.problems.top[0].category, "fault");
    assert_eq!((r.problems.no_rule, r.problems.unclassified), (0, 4));

    // The CLI, in every format.
    let (from, to) = (period.first_day.to_string(), period.last_day.to_string());
    let (ok, table, err) = cli(&h, &["report", "--from", &from, "--to", &to]);
    assert!(ok, "{err}");
    assert!(table.contains("Tickets received: 7"), "{table}");
    assert!(
        table.contains("Repeat complaints: 2 of 4 complaints (50.0%)"),
        "{table}"
    );
    assert!(table.contains("28.6%") && table.contains("16.7%"), "{table}");
    let (ok, json_out, err) = cli(&h, &["report", "--from", &from, "--to", &to, "--format", "json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["received"], 7);
    assert_eq!(v["csat"]["distribution"], json!([0, 1, 0, 0, 1]));
    assert_eq!(
        v["population"],
        "tickets received in the period, as they stand when the report is made"
    );
    let (ok, csv_out, err) = cli(&h, &["report", "--from", &from, "--to", &to, "--format", "csv"]);
    assert!(ok, "{err}");
    assert!(csv_out.contains("resolution_rate,all,rate,0.2857"), "{csv_out}");
    let file = std::env::temp_dir().join(format!("sb-report-{}.html", uuid::Uuid::new_v4()));
    let (ok, _, err) = cli(
        &h,
        &[
            "report",
            "--from",
            &from,
            "--to",
            &to,
            "--format",
            "html",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(err.contains("written to"), "{err}");
    let html = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(html.contains("<svg") && !html.contains("<script") && !html.contains("http"));
    for out in [&table, &json_out, &csv_out, &html] {
        for secret in [
            "13812345678",
            "1234-5678",
            "a@b.com",
            "A@B.com",
            "zs@example.com",
            "张三",
        ] {
            assert!(!out.contains(secret), "a report shows {secret}");
        }
    }
    // A reversed range is refused with what to do.
    let (ok, _, err) = cli(&h, &["report", "--from", &to, "--to", &from]);
    assert!(!ok && err.contains("--from"), "{err}");
    h.cleanup().await;
}

const ROSTER: &str =
    "id,name,team,languages,channels,skills,max_open,presence\nfl-1,Agent One,front_line,zh;en,,,100,online\n";

async fn act(h: &Harness, number: &str, id: &str, action: Value) {
    let kind = action["kind"].as_str().unwrap().to_owned();
    let msg = Outgoing {
        exchange: Exchange::Actions,
        routing_key: format!("action.{kind}"),
        message_id: id.into(),
        body: json!({ "ticket": number, "actor": "agent:fl-1", "action": action }).into(),
        headers: vec![],
    };
    bus::publish_all(&h.ch, h.topo(), &[msg]).await.unwrap();
}

async fn wait_sql(h: &Harness, what: &str, sql: &str) {
    h.wait_for(what, StdDuration::from_secs(30), || async { h.count(sql).await == 1 })
        .await;
}

/// Three requests through the real pipeline and lifecycle (seconds-long SLA policy): one closed
/// with a 5, one rated 1 and reopened, one left alone until its first response is breached and
/// escalated. The report agrees with the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_over_tickets_driven_through_the_pipeline() {
    let mut s = test_settings("report_live");
    s.policy_path = manifest_dir().join("tests/fixtures/policy-fast.toml");
    let mut h = Harness::with_settings(s).await;
    h.import_roster(ROSTER).await;
    h.start_stages(&StageName::ALL, 1);
    let mut numbers = Vec::new();
    for (id, body) in [("L1", PAYMENT), ("L2", COMPLAINT), ("L3", "怎么修改收货地址")] {
        let req = json!({"channel": "chat", "channel_message_id": id, "received_at": Utc::now().to_rfc3339(),
                         "customer": {"customer_id": format!("C-{id}"), "phone": "13900001111"}, "body": body});
        h.publish_intake("intake.chat", id, req.to_string().as_bytes()).await;
        wait_sql(
            &h,
            &format!("{id} assigned"),
            &format!("SELECT count(*) FROM tickets WHERE channel_message_id = '{id}' AND state = 'assigned'"),
        )
        .await;
        let client = h.app.db.pool.get().await.unwrap();
        let n: String = client
            .query_one("SELECT number FROM tickets WHERE channel_message_id = $1", &[&id])
            .await
            .unwrap()
            .get(0);
        numbers.push(n);
    }
    for (i, score) in [(0usize, 5), (1, 1)] {
        let n = &numbers[i];
        act(&h, n, &format!("{n}-a"), json!({"kind": "respond"})).await;
        act(&h, n, &format!("{n}-b"), json!({"kind": "resolve", "result": "done"})).await;
        let state = if score == 5 { "closed" } else { "in_progress" };
        wait_sql(
            &h,
            &format!("{n} resolved"),
            &format!("SELECT count(*) FROM tickets WHERE number = '{n}' AND state = 'resolved'"),
        )
        .await;
        let rate = if score == 1 {
            json!({"kind": "rate", "score": score, "reason": "slow"})
        } else {
            json!({"kind": "rate", "score": score})
        };
        act(&h, n, &format!("{n}-c"), rate).await;
        wait_sql(
            &h,
            &format!("{n} {state}"),
            &format!("SELECT count(*) FROM tickets WHERE number = '{n}' AND state = '{state}' AND rating IS NOT NULL"),
        )
        .await;
    }
    wait_sql(
        &h,
        "the third ticket's first response escalated",
        &format!(
            "SELECT count(*) FROM escalations e JOIN tickets t ON t.id = e.ticket_id
             WHERE t.number = '{}' AND e.target = 'first_response' AND e.last_step IS NOT NULL",
            numbers[2]
        ),
    )
    .await;
    h.stop_stages().await;

    let now = Utc::now();
    let today = now.with_timezone(&h.app.policy.tz).date_naive();
    let period = Period::resolve(
        PeriodSpec::Dates {
            from: today - Duration::days(1),
            to: today + Duration::days(1),
        },
        now,
        h.app.policy.tz,
    )
    .unwrap();
    let r = switchboard::store::reports::report(&h.app.db, &h.app.policy, &period, now)
        .await
        .unwrap();
    assert_eq!(r.received, 3);
    assert_eq!(r.by_channel[0].key, "chat");
    assert_eq!(r.by_channel[0].count, 3);
    assert_eq!((r.resolution_rate.count, r.resolution_rate.of), (1, 3));
    assert_eq!(r.csat.distribution, [1, 0, 0, 0, 1]);
    assert_eq!(r.csat.mean, Some(3.0));
    assert_eq!(r.first_response.count, 2);
    // The figures agree with the database.
    let sql_mean: f64 = {
        let client = h.app.db.pool.get().await.unwrap();
        client
            .query_one(
                "SELECT avg(greatest(trunc(extract(epoch FROM first_responded_at - received_at))::bigint, 0))::float8
                 FROM tickets WHERE first_responded_at IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    };
    assert!(
        (r.first_response.mean_seconds.unwrap() - sql_mean).abs() < 1e-9,
        "{:?} vs {sql_mean}",
        r.first_response
    );
    let fr_escalated = h
        .count("SELECT count(*) FROM escalations WHERE target = 'first_response'")
        .await as u64;
    let steps = h
        .count("SELECT count(*) FROM ticket_transitions WHERE actor = 'escalate' AND details ? 'step' AND details->>'target' = 'first_response'")
        .await as u64;
    let e = r.escalations.iter().find(|e| e.target == "first_response").unwrap();
    assert!(fr_escalated >= 1);
    assert_eq!((e.tickets, e.steps, e.acknowledged), (fr_escalated, steps, 0));
    // The unanswered ticket is a breached first response.
    assert!(r.on_time[0].breached >= 1);
    assert_eq!(
        r.on_time[0].on_time + r.on_time[0].late + r.on_time[0].breached + r.on_time[0].undecided,
        3
    );
    // The classifier's rules show up as problems.
    assert!(r.problems.top.iter().any(|p| p.category == "fault"), "{:?}", r.problems);
    assert_eq!(r.problems.unclassified, 0);

    // The review (复盘): the ticket rated 1 with its reason, the unanswered one late and open.
    use switchboard::core::report::review::ReviewReason;
    let item = |n: &str| {
        r.review
            .iter()
            .find(|i| i.number == n)
            .unwrap_or_else(|| panic!("{n} not in {:?}", r.review))
    };
    assert!(
        item(&numbers[1]).reasons.contains(&ReviewReason::Unsatisfied {
            rating: 1,
            reason: Some("slow".into())
        }),
        "{:?}",
        item(&numbers[1])
    );
    assert!(item(&numbers[2]).reasons.iter().any(|x| matches!(x,
        ReviewReason::Late { target, met_at: None, late_seconds, .. } if target == "first_response" && *late_seconds >= 0)));
    assert!(
        item(&numbers[2])
            .reasons
            .iter()
            .any(|x| matches!(x, ReviewReason::Unresolved { .. }))
    );
    assert!(
        !r.review.iter().any(|i| i.number == numbers[0])
            || r.review
                .iter()
                .any(|i| i.number == numbers[0] && i.reasons.iter().all(|x| matches!(x, ReviewReason::Late { .. }))),
        "the closed 5 is only there if late"
    );
    let reasons: Vec<(String, u64)> = r
        .unsatisfied
        .reasons
        .iter()
        .map(|c| (c.reason.clone(), c.count))
        .collect();
    assert_eq!(
        reasons,
        vec![("not_solved".into(), 0), ("slow".into(), 1), ("(none)".into(), 0)]
    );
    // By agent: what the database says fl-1 holds.
    let fl1 = h.count("SELECT count(*) FROM tickets WHERE assignee = 'fl-1'").await as u64;
    let by_agent: u64 = r
        .breakdowns
        .by_agent
        .iter()
        .filter(|b| b.key == "fl-1")
        .map(|b| b.tickets)
        .sum();
    assert_eq!(by_agent, fl1);
    assert_eq!(r.breakdowns.by_category.iter().map(|b| b.tickets).sum::<u64>(), 3);

    // The CLI in Chinese, and by quarter.
    let (from, to) = (period.first_day.to_string(), period.last_day.to_string());
    let (ok, zh, err) = cli(&h, &["report", "--from", &from, "--to", &to, "--lang", "zh"]);
    assert!(ok, "{err}");
    for words in ["客户服务报告", "问题复盘", "不满意原因", "响应慢", "故障类"] {
        assert!(zh.contains(words), "no {words} in:\n{zh}");
    }
    let quarter = format!("{}-Q{}", today.year(), today.month0() / 3 + 1);
    let (ok, json_out, err) = cli(&h, &["report", "--quarter", &quarter, "--format", "json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["received"], 3);
    assert_eq!(v["period"]["label"], format!("quarter {quarter}"));
    let (ok, _, err) = cli(&h, &["report", "--quarter", "2026-Q5"]);
    assert!(!ok && err.contains("YYYY-QN"), "{err}");
    h.cleanup().await;
}

/// A copy of the shipped policy whose daily roll-up is due at any time of day.
fn policy_with_daily_roll_up_due_now() -> std::path::PathBuf {
    let config = manifest_dir().join("config");
    let text = std::fs::read_to_string(config.join("policy.toml")).unwrap();
    let include = |f: &str| format!("{:?}", config.join("policy").join(f).display().to_string());
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("include =") {
                format!(
                    "include = [{}, {}, {}, {}]",
                    include("classification.toml"),
                    include("calendar.toml"),
                    include("notify.toml"),
                    include("holidays/*.toml")
                )
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let text = format!(
        "{text}\n\n[reports]\nsuggestions_category = \"suggestion\"\n[reports.daily]\nat = \"00:00\"\nnotify = [\"quality_manager\"]\nlang = \"zh\"\n"
    );
    let path = std::env::temp_dir().join(format!("sb-policy-daily-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    path
}

/// The daily roll-up goes to the quality manager once: two schedulers racing, the scheduler
/// stage running, and then restarted, make one ledger row, one delivery and one mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_sends_the_daily_roll_up_once_however_often_it_runs() {
    use switchboard::runtime::daily_report;
    let sink = crate::common::smtp::SmtpSink::start().await;
    let mut s = test_settings("report_daily");
    s.smtp_url = Some(sink.url());
    s.smtp_from = "desk@sb.test".into();
    let policy_path = policy_with_daily_roll_up_due_now();
    s.policy_path = policy_path.clone();
    let mut h = Harness::with_settings(s).await;
    let policy = h.app.policy.clone();
    let now = Utc::now();
    let today = now.with_timezone(&policy.tz).date_naive();

    // Two schedulers at once: one makes it.
    let (a, b) = tokio::join!(
        daily_report::run_once(&h.app.db, &policy, Some("sb.test"), now),
        daily_report::run_once(&h.app.db, &policy, Some("sb.test"), now),
    );
    let made: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(made, vec![(today, 1)], "exactly one of the two makes the roll-up");
    // Later the same day: already made.
    let again = daily_report::run_once(&h.app.db, &policy, Some("sb.test"), now + Duration::minutes(5)).await;
    assert_eq!(again.unwrap(), None);

    // The scheduler stage (which runs the job) and the sender; then both restarted.
    h.start_stages(&[StageName::Scheduler, StageName::Deliver], 1);
    let mails = sink.wait_for(1, StdDuration::from_secs(30)).await;
    let daily: Vec<_> = mails
        .iter()
        .filter(|m| m.to == vec!["quality@example.com".to_owned()])
        .collect();
    assert_eq!(
        daily.len(),
        1,
        "{:?}",
        mails.iter().map(|m| (&m.to, &m.subject)).collect::<Vec<_>>()
    );
    let subject = daily[0].subject.clone().unwrap_or_default();
    assert!(
        subject.contains("服务日报") && subject.contains(&today.to_string()),
        "{subject}"
    );
    assert!(daily[0].text.as_deref().unwrap_or_default().contains("受理工单数"));
    h.stop_stages().await;
    h.start_stages(&[StageName::Scheduler, StageName::Deliver], 1);
    tokio::time::sleep(StdDuration::from_secs(4)).await;
    h.stop_stages().await;

    assert_eq!(
        sink.received()
            .iter()
            .filter(|m| m.to == vec!["quality@example.com".to_owned()])
            .count(),
        1,
        "one mail however often the scheduler runs"
    );
    assert_eq!(h.count("SELECT count(*) FROM report_runs").await, 1);
    assert_eq!(
        h.count("SELECT count(*) FROM deliveries WHERE purpose = 'daily_report' AND state = 'delivered'")
            .await,
        1
    );
    std::fs::remove_file(&policy_path).unwrap();
    h.cleanup().await;
}

#[test]
fn dates_are_days_in_the_policy_zone() {
    let d = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let p = Period::resolve(
        PeriodSpec::Dates { from: d, to: d },
        Utc::now(),
        chrono_tz::Asia::Shanghai,
    )
    .unwrap();
    assert_eq!(p.from.to_rfc3339(), "2026-03-01T16:00:00+00:00");
}
