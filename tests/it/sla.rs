//! SLA clocks, escalation ladders and the lifecycle on the real servers, with a test policy
//! whose targets are seconds long (tests/fixtures/policy-fast.toml).

use crate::common;

use common::process::Running;
use common::{Harness, header, manifest_dir, test_settings};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use switchboard::app::StageName;
use switchboard::bus;
use switchboard::contracts::{Exchange, Outgoing};

const ROSTER: &str =
    "id,name,team,languages,channels,skills,max_open,presence\nfl-1,Agent One,front_line,zh;en,,,100,online\n";

async fn fast_harness(name: &str) -> Harness {
    let mut s = test_settings(name);
    s.policy_path = manifest_dir().join("tests/fixtures/policy-fast.toml");
    let h = Harness::with_settings(s).await;
    h.import_roster(ROSTER).await;
    h
}

pub(crate) async fn open_ticket(h: &Harness, id: &str, body: &str) -> String {
    let now = chrono::Utc::now().to_rfc3339();
    let req = json!({"channel": "chat", "channel_message_id": id, "received_at": now,
                     "customer": {"customer_id": format!("C-{id}")}, "body": body, "thread_ref": format!("chat:{id}")});
    h.publish_intake("intake.chat", id, req.to_string().as_bytes()).await;
    let q = format!("SELECT count(*) FROM tickets WHERE channel_message_id = '{id}' AND state = 'assigned'");
    h.wait_for("ticket assigned", Duration::from_secs(30), || async {
        h.count(&q).await == 1
    })
    .await;
    let client = h.app.db.pool.get().await.unwrap();
    client
        .query_one("SELECT number FROM tickets WHERE channel_message_id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

pub(crate) async fn act(h: &Harness, number: &str, id: &str, action: Value) {
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

pub(crate) async fn state(h: &Harness, number: &str) -> String {
    let client = h.app.db.pool.get().await.unwrap();
    client
        .query_one("SELECT state FROM tickets WHERE number = $1", &[&number])
        .await
        .unwrap()
        .get(0)
}

async fn wait_state(h: &Harness, number: &str, want: &str) {
    let q = format!("SELECT count(*) FROM tickets WHERE number = '{number}' AND state = '{want}'");
    h.wait_for(&format!("{number} in {want}"), Duration::from_secs(20), || async {
        h.count(&q).await == 1
    })
    .await;
}

/// Transitions of one ticket as (event, target, at) from the transition log.
pub(crate) async fn log(
    h: &Harness,
    number: &str,
) -> Vec<(String, Option<String>, chrono::DateTime<chrono::Utc>, Value)> {
    let client = h.app.db.pool.get().await.unwrap();
    client
        .query(
            "SELECT tr.reason, tr.details, tr.at FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id
             WHERE t.number = $1 ORDER BY tr.seq",
            &[&number],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let details: Value = r.get(1);
            let reason: String = r.get(0);
            let kind = if reason.starts_with("SLA target") {
                "sla.breached"
            } else if reason.contains("escalated to") {
                "escalated"
            } else {
                "other"
            };
            (
                kind.to_owned(),
                details["target"].as_str().map(str::to_owned),
                r.get(2),
                details,
            )
        })
        .collect()
}

/// A missed first response escalates within a second of its due time, then reminds on the
/// ladder's interval until acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_first_response_escalates_on_time_and_repeats_until_acknowledged() {
    let mut h = fast_harness("breach").await;
    // The escalate stage's events, drained at the end (each checked against its type's schema).
    let events = h.event_queue("#").await;
    h.start_stages(&StageName::ALL, 1);
    let number = open_ticket(&h, "b1", "我的订单怎么还没发货？").await;
    let client = h.app.db.pool.get().await.unwrap();
    let received: chrono::DateTime<chrono::Utc> = client
        .query_one("SELECT received_at FROM tickets WHERE number = $1", &[&number])
        .await
        .unwrap()
        .get(0);
    let due = received + chrono::Duration::seconds(2);
    // Breach, then reminders every 2 s: wait for the third escalation step.
    h.wait_for("three escalation steps", Duration::from_secs(15), || async {
        log(&h, &number)
            .await
            .iter()
            .filter(|e| e.0 == "escalated" && e.1.as_deref() == Some("first_response"))
            .count()
            >= 3
    })
    .await;
    let entries = log(&h, &number).await;
    let breach = entries
        .iter()
        .find(|e| e.0 == "sla.breached" && e.1.as_deref() == Some("first_response"))
        .unwrap();
    let late = (breach.2 - due).num_milliseconds();
    assert!(
        (0..1000).contains(&late),
        "breach recorded {late} ms after the due time"
    );
    let steps: Vec<_> = entries
        .iter()
        .filter(|e| e.0 == "escalated" && e.1.as_deref() == Some("first_response"))
        .collect();
    assert_eq!(steps[0].3["notified"], "sup-front");
    for w in steps.windows(2) {
        let gap = (w[1].2 - w[0].2).num_milliseconds();
        assert!(
            (1500..3200).contains(&gap),
            "reminder gap {gap} ms (the ladder says 2 s)"
        );
    }
    let fired_late: f64 = client
        .query_one(
            "SELECT max(extract(epoch FROM fired_at - due_at))::float8 FROM sla_timers t JOIN tickets k ON k.id = t.ticket_id
             WHERE k.number = $1 AND t.state = 'fired'",
            &[&number],
        )
        .await
        .unwrap()
        .get(0);
    assert!(fired_late < 1.0, "a timer fired {fired_late} s late");

    act(
        &h,
        &number,
        "ack-1",
        json!({"kind": "acknowledge_escalation", "note": "on it"}),
    )
    .await;
    h.wait_for("acknowledged", Duration::from_secs(10), || async {
        h.count(&format!(
            "SELECT count(*) FROM escalations e JOIN tickets t ON t.id = e.ticket_id WHERE t.number = '{number}' AND e.target = 'first_response' AND acknowledged_at IS NOT NULL"
        ))
        .await
            == 1
    })
    .await;
    let before = log(&h, &number)
        .await
        .iter()
        .filter(|e| e.0 == "escalated" && e.1.as_deref() == Some("first_response"))
        .count();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = log(&h, &number)
        .await
        .iter()
        .filter(|e| e.0 == "escalated" && e.1.as_deref() == Some("first_response"))
        .count();
    assert_eq!(before, after, "no reminders after the acknowledgement");
    let types: Vec<String> = h
        .drain_queue(&events)
        .await
        .iter()
        .map(|m| serde_json::from_slice::<Value>(&m.delivery.data).unwrap()["type"].to_string())
        .collect();
    for t in ["switchboard.sla.breached.v1", "switchboard.ticket.escalated.v1"] {
        assert!(types.iter().any(|x| x.contains(t)), "no {t} among {types:?}");
    }
    h.cleanup().await;
}

/// A breach before assignment moves the ticket's version on, which supersedes the assign message
/// already queued. It happens when the customer writes again before assignment (the lifecycle
/// then sets the ticket's breach timers) and no assign worker runs before the first reply is due
/// (a chat's is due in 10 s). The escalate stage asks for the step again at the new version, so
/// the ticket is assigned as soon as an assign worker runs, not when the sweeper finds it minutes
/// later (the chaos test once stranded one this way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_before_assignment_does_not_strand_the_ticket() {
    let mut h = fast_harness("early_breach").await;
    h.start_stages(
        &[
            StageName::Intake,
            StageName::Classify,
            StageName::Prioritize,
            StageName::Lifecycle,
            StageName::Escalate,
            StageName::Scheduler,
        ],
        1,
    );
    let now = chrono::Utc::now().to_rfc3339();
    let req = json!({"channel": "chat", "channel_message_id": "eb1", "received_at": now,
                     "customer": {"customer_id": "C-eb1"}, "body": "我的订单怎么还没发货？", "thread_ref": "chat:eb1"});
    h.publish_intake("intake.chat", "eb1", req.to_string().as_bytes()).await;
    let number = {
        h.wait_for("ticket prioritized", Duration::from_secs(20), || async {
            h.count("SELECT count(*) FROM tickets WHERE channel_message_id = 'eb1' AND state = 'prioritized'")
                .await
                == 1
        })
        .await;
        h.text("SELECT number FROM tickets WHERE channel_message_id = 'eb1'")
            .await
    };
    // The customer writes again on the same chat session: a customer reply before assignment.
    let again = json!({"channel": "chat", "channel_message_id": "eb2", "received_at": chrono::Utc::now().to_rfc3339(),
                       "customer": {"customer_id": "C-eb1"}, "body": "还在吗？", "thread_ref": "chat:eb1"});
    h.publish_intake("intake.chat", "eb2", again.to_string().as_bytes())
        .await;
    h.wait_for(
        "first response breached before assignment",
        Duration::from_secs(20),
        || async {
            log(&h, &number)
                .await
                .iter()
                .any(|e| e.0 == "sla.breached" && e.1.as_deref() == Some("first_response"))
        },
    )
    .await;
    h.stop_stages().await;
    let version: i32 = {
        let client = h.app.db.pool.get().await.unwrap();
        client
            .query_one("SELECT version FROM tickets WHERE number = $1", &[&number])
            .await
            .unwrap()
            .get(0)
    };
    assert!(version > 3, "the breach moved the version on (at {version})");
    assert_eq!(state(&h, &number).await, "prioritized");

    // Only assign now: no sweeper, so the step must have been asked again by the breach itself.
    h.start_stages(&[StageName::Assign], 1);
    wait_state(&h, &number, "assigned").await;
    h.stop_stages().await;
    assert_eq!(
        h.depth(&h.topo().dead_queue()).await,
        0,
        "superseded assign messages are acked, not dead-lettered: {}",
        h.snapshot().await
    );
    h.cleanup().await;
}

/// The due times of a ticket's next-update lapses, in order.
async fn next_update_lapses(h: &Harness, number: &str) -> Vec<String> {
    let client = h.app.db.pool.get().await.unwrap();
    client
        .query(
            "SELECT tr.details->>'due' FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id
             WHERE t.number = $1 AND tr.reason LIKE 'SLA target next_update missed%' ORDER BY tr.seq",
            &[&number],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// The next update recurs (004-25: the customer hears of progress every 24 h while the ticket is
/// open): each lapse without news is a breach of its own, which sends the customer a progress
/// update. An agent's update restarts the clock, and the next lapse after it breaches again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_update_lapses_again_every_period_without_news() {
    let mut h = fast_harness("next_update").await;
    h.adjust_policy(|doc| doc.sla.next_update = "3s".parse().unwrap());
    h.start_stages(&StageName::ALL, 1);
    let number = open_ticket(&h, "nu1", "我的订单怎么还没发货？").await;
    h.wait_for("two lapses of the next update", Duration::from_secs(20), || async {
        next_update_lapses(&h, &number).await.len() >= 2
    })
    .await;
    let seen = next_update_lapses(&h, &number).await;
    let due = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    // A period apart, or a whole number of periods when a slow machine skipped one.
    let gap = (due(&seen[1]) - due(&seen[0])).num_milliseconds();
    assert!(
        gap > 0 && gap % 3000 == 0,
        "lapses a whole number of periods apart: {seen:?}"
    );

    // An update restarts the clock: the next lapse is one period after it, not on the old grid.
    act(
        &h,
        &number,
        "nu-respond",
        json!({"kind": "respond", "message": "正在处理"}),
    )
    .await;
    let updated: chrono::DateTime<chrono::Utc> = {
        let client = h.app.db.pool.get().await.unwrap();
        let q = format!("SELECT count(*) FROM tickets WHERE number = '{number}' AND last_update_at IS NOT NULL");
        h.wait_for("the update recorded", Duration::from_secs(10), || async {
            h.count(&q).await == 1
        })
        .await;
        client
            .query_one("SELECT last_update_at FROM tickets WHERE number = $1", &[&number])
            .await
            .unwrap()
            .get(0)
    };
    let before = next_update_lapses(&h, &number).await.len();
    h.wait_for("a lapse after the update", Duration::from_secs(20), || async {
        next_update_lapses(&h, &number).await.iter().any(|d| due(d) > updated)
    })
    .await;
    let after = next_update_lapses(&h, &number).await;
    let first_after = after.iter().map(|d| due(d)).find(|d| *d > updated).unwrap();
    let after_update = (first_after - updated).num_milliseconds();
    assert!(
        after_update > 0 && after_update % 3000 == 0,
        "the first lapse after the update is a whole number of periods after it ({before} lapses before it: {after:?})"
    );
    h.stop_stages().await;
    h.cleanup().await;
}

/// The resolution clock stops while the ticket waits for the customer; their reply (a chat
/// message on the same session) resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_customer_does_not_breach_resolution() {
    let mut h = fast_harness("wait").await;
    h.start_stages(&StageName::ALL, 1);
    let number = open_ticket(&h, "w1", "The app crashes when I open my invoices").await;
    act(
        &h,
        &number,
        "w1-respond",
        json!({"kind": "respond", "message": "Looking into it"}),
    )
    .await;
    act(
        &h,
        &number,
        "w1-wait",
        json!({"kind": "wait_for_customer", "reason": "need the app version"}),
    )
    .await;
    wait_state(&h, &number, "waiting_for_customer").await;
    tokio::time::sleep(Duration::from_secs(8)).await; // longer than the 6 s resolution target
    assert!(
        !log(&h, &number).await.iter().any(|e| e.0 == "sla.breached"),
        "nothing breached while waiting: {:?}",
        log(&h, &number).await
    );
    // The customer answers on the same chat session: the ticket resumes.
    let now = chrono::Utc::now().to_rfc3339();
    let reply = json!({"channel": "chat", "channel_message_id": "w1-reply", "received_at": now,
                       "customer": {"customer_id": "C-w1"}, "body": "version 5.2.1", "thread_ref": "chat:w1"});
    h.publish_intake("intake.chat", "w1-reply", reply.to_string().as_bytes())
        .await;
    wait_state(&h, &number, "in_progress").await;
    // With the clock running again, the rest of the 6 s runs out and the target is missed.
    h.wait_for(
        "resolution breached after the reply",
        Duration::from_secs(15),
        || async {
            log(&h, &number)
                .await
                .iter()
                .any(|e| e.0 == "sla.breached" && e.1.as_deref() == Some("resolution"))
        },
    )
    .await;
    h.cleanup().await;
}

/// A rating at or below 2 reopens the ticket to its supervisor; a good one closes it; an
/// unrated resolved ticket closes itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratings_reopen_or_close_and_unrated_tickets_close_themselves() {
    let mut h = fast_harness("rate").await;
    h.start_stages(&StageName::ALL, 1);
    let low = open_ticket(&h, "r1", "支付失败了好几次").await;
    act(&h, &low, "r1-a", json!({"kind": "respond"})).await;
    act(
        &h,
        &low,
        "r1-b",
        json!({"kind": "resolve", "result": "cache cleared", "root_cause": "stale cache"}),
    )
    .await;
    wait_state(&h, &low, "resolved").await;
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agent_loads WHERE id = 'fl-1'")
            .await,
        0,
        "resolving frees capacity"
    );
    act(
        &h,
        &low,
        "r1-c",
        json!({"kind": "rate", "score": 1, "comment": "still broken"}),
    )
    .await;
    wait_state(&h, &low, "in_progress").await;
    let client = h.app.db.pool.get().await.unwrap();
    let sup: Option<String> = client
        .query_one("SELECT supervisor FROM tickets WHERE number = $1", &[&low])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sup.as_deref(), Some("sup-front"));
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agent_loads WHERE id = 'fl-1'")
            .await,
        1
    );

    let good = open_ticket(&h, "r2", "怎么修改收货地址").await;
    act(&h, &good, "r2-a", json!({"kind": "resolve", "result": "explained"})).await;
    wait_state(&h, &good, "resolved").await;
    act(&h, &good, "r2-b", json!({"kind": "rate", "score": 5})).await;
    wait_state(&h, &good, "closed").await;

    let silent = open_ticket(&h, "r3", "where is my parcel").await;
    act(
        &h,
        &silent,
        "r3-a",
        json!({"kind": "resolve", "result": "tracking sent"}),
    )
    .await;
    wait_state(&h, &silent, "resolved").await;
    wait_state(&h, &silent, "closed").await; // auto_close_after = 3 s
    let by: String = client
        .query_one(
            "SELECT actor FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id WHERE t.number = $1 AND to_state = 'closed'",
            &[&silent],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(by, "system");
    h.cleanup().await;
}

/// An action the state machine does not allow is refused with its reason: dead-lettered over
/// AMQP, 409 over HTTP; the HTTP API shows the ticket with its clocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_actions_are_refused_with_the_reason() {
    let mut h = fast_harness("refuse").await;
    h.start_stages(&StageName::ALL, 1);
    let number = open_ticket(&h, "x1", "账号登不上去").await;
    act(&h, &number, "x1-close", json!({"kind": "close"})).await;
    let dq = h.topo().dead_queue();
    h.wait_for("refusal dead-lettered", Duration::from_secs(10), || async {
        h.depth(&dq).await == 1
    })
    .await;
    let dead = h.drain_queue(&dq).await;
    let reason = header(&dead[0], "x-switchboard-reason").unwrap();
    assert!(reason.contains("resolve it first"), "{reason}");
    assert_eq!(state(&h, &number).await, "assigned");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (router, key) = supervisor_api(&h).await;
    tokio::spawn(async move { axum::serve(listener, router).await });
    let (status, body) = http(
        addr,
        &key,
        "POST",
        &format!("/v1/tickets/{number}/actions"),
        r#"{"actor":"agent:fl-1","action":{"kind":"rate","score":5}}"#,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("only a resolved or closed ticket can be rated"), "{body}");
    let (status, body) = http(
        addr,
        &key,
        "POST",
        &format!("/v1/tickets/{number}/actions"),
        r#"{"actor":"agent:fl-1","action":{"kind":"respond"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(addr, &key, "GET", &format!("/v1/tickets/{number}"), "").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ticket"]["state"], "in_progress");
    let fr = v["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == "first_response")
        .unwrap();
    assert!(fr["state"] == "met" || fr["state"] == "met_late", "{fr}");
    assert!(v["transitions"].as_array().unwrap().len() >= 5);
    let (status, _) = http(addr, &key, "GET", "/v1/tickets/209901-99999", "").await;
    assert_eq!(status, 404);
    let (status, _) = http(addr, &key, "POST", &format!("/v1/tickets/{number}/actions"), "{nope").await;
    assert_eq!(status, 400);
    h.cleanup().await;
}

/// Minimal HTTP/1.1 client over a TCP stream (the API is JSON over HTTP; no client crate needed).
/// The gateway's router (ticket API included) and a supervisor's key for it.
async fn supervisor_api(h: &Harness) -> (axum::Router, String) {
    use switchboard::core::access::Role;
    use switchboard::http::{Gateway, auth};
    let router = switchboard::http::router(&h.app, std::sync::Arc::new(Gateway::new(&h.app)));
    let spec = auth::KeySpec {
        rate_per_sec: Some(100_000),
        burst: Some(100_000),
        ..auth::KeySpec::person("sla-supervisor", Role::Supervisor)
    };
    let (_, key) = auth::create(&h.app.db, &spec).await.expect("supervisor key");
    (router, key)
}

async fn http(addr: std::net::SocketAddr, key: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    let body = if text.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(&body)
    } else {
        body
    };
    (status, body)
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

fn spawn(h: &Harness, stages: &str) -> Running {
    common::process::spawn(&h.app.settings, &["run", "--stage", stages, "--concurrency", "2"], &[])
}

/// kill -9 of the scheduler and the escalate worker while timers fall due: afterwards every
/// breach is recorded exactly once and no escalation step twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_scheduler_and_escalate_loses_no_timer_and_doubles_none() {
    let mut h = fast_harness("killsla").await;
    h.start_stages(&StageName::PIPELINE, 1);
    let mut child = spawn(&h, "scheduler,escalate");
    let mut numbers = Vec::new();
    let start = Instant::now();
    for i in 0..30 {
        let id = format!("k{i}");
        let now = chrono::Utc::now().to_rfc3339();
        let req = json!({"channel": "app", "channel_message_id": id, "received_at": now,
                         "customer": {"customer_id": format!("C{i}")}, "body": "my order has not arrived yet"});
        h.publish_intake("intake.app", &id, req.to_string().as_bytes()).await;
        numbers.push(id);
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(900)).await;
            child.kill().unwrap();
            child.wait().unwrap();
            child = spawn(&h, "scheduler,escalate");
        }
    }
    assert!(start.elapsed() < Duration::from_secs(20));
    h.wait_for(
        "every first response breach recorded",
        Duration::from_secs(40),
        || async {
            h.count("SELECT count(*) FROM escalations WHERE target = 'first_response'")
                .await
                == 30
        },
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let doubled = h
        .count(
            "SELECT count(*) FROM (SELECT ticket_id, details->>'target', details->>'step', details->>'repeat', count(*)
               FROM ticket_transitions WHERE reason LIKE 'SLA target%' OR reason LIKE '%escalated to%'
               GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d",
        )
        .await;
    assert_eq!(doubled, 0, "a breach or an escalation step was applied twice");
    let breaches = h
        .count("SELECT count(*) FROM ticket_transitions WHERE reason LIKE 'SLA target first_response missed%'")
        .await;
    assert_eq!(breaches, 30);
    h.cleanup().await;
}

/// Many tickets driven through their lifecycle at once over HTTP: each ticket's events arrive
/// with no gaps in `sequence`; a redelivered event would carry the same id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tickets_events_arrive_without_gaps() {
    let mut settings = test_settings("gapless");
    settings.policy_path = manifest_dir().join("config/policy.toml");
    let mut h = Harness::with_settings(settings).await;
    h.import_roster("id,name,team,languages,channels,skills,max_open,presence\na,A,front_line,,,,500,online\nb,B,technical_support,,,,500,online\nc,C,customer_relations,,,,500,online\nd,D,product_management,,,,500,online\ne,E,green_channel,,,,500,online\nf,F,triage,,,,500,online\n").await;
    let events = h.event_queue("#").await;
    h.start_stages(&StageName::ALL, 2);
    let pubs = switchboard_tools::demo::traffic("gap", 0..60, false, chrono::Utc::now());
    for p in pubs.iter().filter(|p| p.kind == switchboard_tools::demo::Kind::New) {
        h.publish_intake(&p.routing_key, &p.message_id, &p.payload).await;
    }
    h.wait_for("all assigned", Duration::from_secs(60), || async {
        h.count("SELECT count(*) FROM tickets WHERE state = 'assigned'").await == 60
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (router, key) = supervisor_api(&h).await;
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = h.app.db.pool.get().await.unwrap();
    let numbers: Vec<String> = client
        .query("SELECT number FROM tickets", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut tasks = Vec::new();
    for n in numbers.clone() {
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for action in [
                r#"{"kind":"respond"}"#,
                r#"{"kind":"wait_for_customer"}"#,
                r#"{"kind":"customer_replied"}"#,
                r#"{"kind":"resolve","result":"done"}"#,
                r#"{"kind":"rate","score":4}"#,
            ] {
                let (status, body) = http(
                    addr,
                    &key,
                    "POST",
                    &format!("/v1/tickets/{n}/actions"),
                    &format!(r#"{{"actor":"agent:x","action":{action}}}"#),
                )
                .await;
                assert_eq!(status, 200, "{n} {action}: {body}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    h.wait_for("all closed", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM tickets WHERE state = 'closed'").await == 60
    })
    .await;
    // 4 pipeline events + responded, waiting, customer_replied, resolved, rated, closed.
    let want = 10;
    let mut per: HashMap<String, Vec<i64>> = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for m in h.drain_queue(&events).await {
            let ev: Value = serde_json::from_slice(&m.delivery.data).unwrap();
            if ids.insert(ev["id"].as_str().unwrap().to_owned()) {
                per.entry(ev["subject"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(ev["sequence"].as_str().unwrap().parse::<i64>().unwrap());
            }
        }
        if per.len() == 60 && per.values().all(|v| v.len() == want) {
            break;
        }
        assert!(Instant::now() < deadline, "events missing: {} tickets seen", per.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (n, mut seqs) in per {
        seqs.sort();
        assert_eq!(seqs, (1..=want as i64).collect::<Vec<_>>(), "events of {n}");
    }
    h.cleanup().await;
}

/// Runs one lifecycle batch in its own transaction on its own task, committing at the end.
fn spawn_lifecycle_batch(
    h: &Harness,
    batch: Vec<switchboard::runtime::runner::Inbound>,
) -> tokio::task::JoinHandle<Result<Vec<switchboard::runtime::runner::Outcome>, switchboard::store::StoreError>> {
    use switchboard::runtime::runner::Stage;
    let lifecycle = switchboard::stages::lifecycle::Lifecycle { ctx: h.app.context() };
    let app = h.app.clone();
    tokio::spawn(async move {
        let mut client = app.db.pool.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let out = lifecycle.process(&tx, &batch).await?;
        tx.commit().await?;
        Ok(out)
    })
}

/// A lifecycle action message `id`: `kind` on ticket `number` by `actor`, with the action's other
/// fields from `fields` (a JSON object).
fn action_message(
    id: &str,
    number: &str,
    actor: &str,
    kind: &str,
    fields: Value,
) -> switchboard::runtime::runner::Inbound {
    let mut action = json!({"kind": kind});
    if let (Some(a), Some(f)) = (action.as_object_mut(), fields.as_object()) {
        a.extend(f.clone());
    }
    let body = json!({"ticket": number, "actor": actor, "action": action});
    common::inbound(&format!("action.{kind}"), id, body.to_string().into_bytes())
}

/// Runs `batch` as one lifecycle transaction and returns its outcomes; fails the test if it is
/// still waiting after 5 s (`what` names the lock it must not wait for).
async fn applied_without_waiting(
    h: &Harness,
    batch: Vec<switchboard::runtime::runner::Inbound>,
    what: &str,
) -> Vec<switchboard::runtime::runner::Outcome> {
    tokio::time::timeout(Duration::from_secs(5), spawn_lifecycle_batch(h, batch))
        .await
        .unwrap_or_else(|_| panic!("the batch waited for {what}"))
        .unwrap()
        .expect("the batch commits")
}

/// Waits until some transaction of this database waits on a lock.
async fn wait_for_a_lock_wait(h: &Harness, client: &deadpool_postgres::Object, what: &str) {
    h.wait_for(what, Duration::from_secs(10), || async {
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            >= 1
    })
    .await;
}

/// A lifecycle batch that takes two agents' slots must not deadlock with an assign batch, which
/// locks a team's agents in id order. Here "assign" (tx B) holds agent a1 while the lifecycle
/// batch reopens a ticket of a2 and then one of a1; B then asks for a2. Taking the batch's agents
/// up front in id order means the lifecycle waits for a1 holding nothing, so B gets a2 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_batch_locks_agents_in_the_same_order_as_assign() {
    use switchboard::runtime::runner::Outcome;
    let mut s = test_settings("lock_order");
    s.policy_path = manifest_dir().join("tests/fixtures/policy-fast.toml");
    let mut h = Harness::with_settings(s).await;
    h.import_roster(
        "id,name,team,languages,channels,skills,max_open,presence\na1,A1,front_line,zh;en,,,1,online\na2,A2,front_line,zh;en,,,1,online\n",
    )
    .await;
    h.start_stages(&StageName::PIPELINE, 1);
    open_ticket(&h, "lo-1", "订单一直没发货").await;
    open_ticket(&h, "lo-2", "订单一直没发货").await;
    h.stop_stages().await;
    let client = h.app.db.pool.get().await.unwrap();
    let of = |agent: &'static str| {
        let client = &client;
        async move {
            client
                .query_one("SELECT number FROM tickets WHERE assignee = $1", &[&agent])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    let (of_a2, of_a1) = (of("a2").await, of("a1").await);
    let action = |number: &str, agent: &str, kind: &str| {
        let fields = match kind {
            "resolve" => json!({"result": "done"}),
            _ => json!({"reason": "not fixed"}),
        };
        action_message(
            &format!("lock-order-{kind}-{number}"),
            number,
            &format!("agent:{agent}"),
            kind,
            fields,
        )
    };
    let resolved = spawn_lifecycle_batch(
        &h,
        vec![action(&of_a2, "a2", "resolve"), action(&of_a1, "a1", "resolve")],
    )
    .await
    .unwrap()
    .expect("the resolves commit");
    assert!(resolved.iter().all(|o| matches!(o, Outcome::Done(_))), "{resolved:?}");
    assert_eq!(
        h.count("SELECT coalesce(sum(open_tickets), 0) FROM agent_loads").await,
        0
    );
    // The lifecycle batch meets a2's ticket first; a reopening takes the slot back.
    let batch = vec![action(&of_a2, "a2", "reopen"), action(&of_a1, "a1", "reopen")];

    let mut b_client = h.app.db.pool.get().await.unwrap();
    let b = b_client.transaction().await.unwrap();
    b.execute("SELECT 1 FROM agents WHERE id = 'a1' FOR UPDATE", &[])
        .await
        .unwrap();
    let a = spawn_lifecycle_batch(&h, batch);
    // Wait until the lifecycle transaction is blocked on a lock (on a1, held by B).
    wait_for_a_lock_wait(&h, &client, "the lifecycle batch to wait for a1").await;
    // B now asks for a2: it must get it, not wait on the lifecycle batch (a deadlock).
    let got = tokio::time::timeout(
        Duration::from_millis(500),
        b.execute("SELECT 1 FROM agents WHERE id = 'a2' FOR UPDATE", &[]),
    )
    .await;
    assert!(
        matches!(got, Ok(Ok(_))),
        "B could not lock a2: the lifecycle batch holds it while waiting for a1 ({got:?})"
    );
    b.commit().await.unwrap();
    let out = a.await.unwrap().expect("the lifecycle batch commits");
    assert!(out.iter().all(|o| matches!(o, Outcome::Done(_))), "{out:?}");
    assert_eq!(
        h.count("SELECT count(*) FROM tickets WHERE state = 'in_progress'")
            .await,
        2
    );
    assert_eq!(
        h.count("SELECT coalesce(sum(open_tickets), 0) FROM agent_loads").await,
        2
    );
    // Locking the agents to take the slots folded the two released ones into the count.
    assert_eq!(h.count("SELECT count(*) FROM agent_slot_releases").await, 0);
    assert_eq!(h.count("SELECT coalesce(sum(open_tickets), 0) FROM agents").await, 2);
    drop(client);
    drop(b_client);
    h.cleanup().await;
}

/// Resolving frees the agent's slot without the agent's row: a batch of resolves commits while
/// another transaction (an assign batch, another lifecycle consumer) holds that row, and the load
/// everyone reads is one less at once. Whoever locks the agent next folds the freed slot into the
/// count, and the sweep folds what nobody locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_frees_its_slot_without_waiting_for_the_agents_row() {
    use switchboard::runtime::runner::Outcome;
    let (h, numbers) = agent_with_tickets("release_unlocked", 3).await;
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agent_loads WHERE id = 'a1'")
            .await,
        3
    );
    let resolve = |number: &str| {
        action_message(
            &format!("release-{number}"),
            number,
            "agent:a1",
            "resolve",
            json!({"result": "done"}),
        )
    };

    let mut b_client = h.app.db.pool.get().await.unwrap();
    let b = b_client.transaction().await.unwrap();
    b.execute("SELECT 1 FROM agents WHERE id = 'a1' FOR UPDATE", &[])
        .await
        .unwrap();
    let out = applied_without_waiting(&h, vec![resolve(&numbers[0]), resolve(&numbers[1])], "a1's row").await;
    let Outcome::Done(outputs) = &out[0] else {
        panic!("{out:?}")
    };
    assert!(matches!(out[1], Outcome::Done(_)), "{out:?}");
    // The freed slot is offered to the team's queue, as before.
    assert!(
        outputs
            .iter()
            .any(|o| o.routing_key == "assign" && o.body.value()["drain_team"] == "front_line"),
        "{outputs:?}"
    );
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agent_loads WHERE id = 'a1'")
            .await,
        1
    );
    assert_eq!(
        h.count("SELECT count(*) FROM agent_slot_releases WHERE agent = 'a1'")
            .await,
        2
    );
    // The holder reads the row as it was locked; it folds the releases only through the lock.
    b.commit().await.unwrap();

    // The next one to lock a1 (here a claim-less lock through the one lock call) folds them.
    {
        let mut c = h.app.db.pool.get().await.unwrap();
        let tx = c.transaction().await.unwrap();
        let locked = switchboard::store::locks::lock(
            &tx,
            &switchboard::store::locks::LockSet {
                agents: &["a1"],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            locked.agents[0].open_tickets, 1,
            "the locked row counts the freed slots"
        );
        tx.commit().await.unwrap();
    }
    assert_eq!(h.count("SELECT count(*) FROM agent_slot_releases").await, 0);
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agents WHERE id = 'a1'").await,
        1
    );

    // A release nobody locks for is folded by the sweep.
    spawn_lifecycle_batch(&h, vec![resolve(&numbers[2])])
        .await
        .unwrap()
        .expect("the resolve commits");
    assert_eq!(h.count("SELECT count(*) FROM agent_slot_releases").await, 1);
    switchboard::runtime::scheduler::sweep(&h.app.db, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(h.count("SELECT count(*) FROM agent_slot_releases").await, 0);
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agents WHERE id = 'a1'").await,
        0
    );
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agent_loads WHERE id = 'a1'")
            .await,
        0
    );
    drop(b_client);
    h.cleanup().await;
}

/// A harness whose one agent, a1 (five slots), holds `n` tickets the pipeline assigned it; their
/// numbers, oldest first.
async fn agent_with_tickets(name: &str, n: usize) -> (Harness, Vec<String>) {
    let mut s = test_settings(name);
    s.policy_path = manifest_dir().join("tests/fixtures/policy-fast.toml");
    let mut h = Harness::with_settings(s).await;
    h.import_roster("id,name,team,languages,channels,skills,max_open,presence\na1,A1,front_line,zh;en,,,5,online\n")
        .await;
    h.start_stages(&StageName::PIPELINE, 1);
    for k in 1..=n {
        open_ticket(&h, &format!("{name}-{k}"), "订单一直没发货").await;
    }
    h.stop_stages().await;
    let numbers = h
        .texts("SELECT number FROM tickets WHERE assignee = 'a1' ORDER BY id")
        .await;
    assert_eq!(numbers.len(), n, "every ticket assigned to a1");
    (h, numbers)
}

/// A batch's actions run in lanes (`stages::lifecycle`): each ticket's actions in arrival order,
/// the tickets side by side on one connection. Every outcome is the one the action would have
/// had alone, and a redelivery of the whole batch publishes exactly what the first run did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_batch_applies_each_tickets_actions_in_order_and_the_tickets_side_by_side() {
    use switchboard::runtime::runner::Outcome;
    let (h, numbers) = agent_with_tickets("lanes", 3).await;
    let client = h.app.db.pool.get().await.unwrap();
    let action =
        |id: &str, number: &str, kind: &str, fields: Value| action_message(id, number, "agent:a1", kind, fields);
    let (t1, t2, t3) = (&numbers[0], &numbers[1], &numbers[2]);
    let batch = vec![
        action("ln-a", t1, "respond", json!({})),
        action("ln-b", t2, "respond", json!({})),
        // Sees the respond before it: resolving an in-progress ticket.
        action("ln-c", t1, "resolve", json!({"result": "done"})),
        action("ln-d", t3, "respond", json!({})),
        action("ln-e", t2, "resolve", json!({"result": "done"})),
        // A copy of the first message in the same batch.
        action("ln-a", t1, "respond", json!({})),
        // Refused: only a resolved ticket is rated.
        action("ln-f", t3, "rate", json!({"score": 5})),
        action("ln-g", "NO-SUCH-TICKET", "respond", json!({})),
    ];
    let first = spawn_lifecycle_batch(&h, batch.clone())
        .await
        .unwrap()
        .expect("the batch commits");
    let kinds: Vec<&str> = first
        .iter()
        .map(|o| match o {
            Outcome::Done(_) => "done",
            Outcome::Duplicate(_) => "duplicate",
            Outcome::Dead(_) => "dead",
            Outcome::Retry(_) => "retry",
        })
        .collect();
    assert_eq!(
        kinds,
        ["done", "done", "done", "done", "done", "duplicate", "dead", "dead"],
        "{first:?}"
    );
    let state = |n: &String| {
        let client = &client;
        let n = n.clone();
        async move {
            client
                .query_one("SELECT state, version FROM tickets WHERE number = $1", &[&n])
                .await
                .map(|r| (r.get::<_, String>(0), r.get::<_, i32>(1)))
                .unwrap()
        }
    };
    assert_eq!(state(t1).await.0, "resolved");
    assert_eq!(state(t2).await.0, "resolved");
    assert_eq!(state(t3).await.0, "in_progress");
    // Each ticket's transitions are numbered without a gap, in the order its actions came.
    for n in [t1, t2, t3] {
        let seqs: Vec<i32> = client
            .query(
                "SELECT seq FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id WHERE t.number = $1 ORDER BY seq",
                &[n],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(seqs, (1..=state(n).await.1).collect::<Vec<_>>(), "transitions of {n}");
    }
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agent_loads WHERE id = 'a1'")
            .await,
        1
    );

    // The same batch again (a redelivery): nothing applies twice, the same messages go out.
    let versions = (state(t1).await, state(t2).await, state(t3).await);
    let again = spawn_lifecycle_batch(&h, batch)
        .await
        .unwrap()
        .expect("the batch commits");
    for (i, (a, b)) in first.iter().zip(&again).enumerate() {
        match (a, b) {
            (Outcome::Done(x) | Outcome::Duplicate(x), Outcome::Duplicate(y)) => {
                let ids = |v: &Vec<switchboard::contracts::Outgoing>| {
                    v.iter().map(|o| o.message_id.clone()).collect::<Vec<_>>()
                };
                assert_eq!(ids(x), ids(y), "message {i}");
            }
            (Outcome::Dead(_), Outcome::Dead(_)) => {}
            other => panic!("message {i}: {other:?}"),
        }
    }
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agent_loads WHERE id = 'a1'")
            .await,
        1
    );
    assert_eq!((state(t1).await, state(t2).await, state(t3).await), versions);
    drop(client);
    h.cleanup().await;
}

/// An action that cannot take a slot (`Action::may_take_slot`) leaves its assignee's row alone: a
/// response, and a resolution, which only frees one, go through while the assign stage holds the
/// agent; a reopening takes the slot back, so it waits for the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_does_not_wait_for_its_agents_row() {
    use switchboard::runtime::runner::Outcome;
    let (h, numbers) = agent_with_tickets("no_agent_lock", 1).await;
    let number = &numbers[0];
    let client = h.app.db.pool.get().await.unwrap();
    let act = |id: &str, kind: &str, fields: Value| action_message(id, number, "agent:a1", kind, fields);
    let mut b_client = h.app.db.pool.get().await.unwrap();
    let b = b_client.transaction().await.unwrap();
    b.execute("SELECT 1 FROM agents WHERE id = 'a1' FOR UPDATE", &[])
        .await
        .unwrap();
    for (id, kind, fields) in [
        ("nl-respond", "respond", json!({})),
        ("nl-resolve", "resolve", json!({"result": "done"})),
    ] {
        let done =
            applied_without_waiting(&h, vec![act(id, kind, fields)], &format!("the agent's row (a {kind})")).await;
        assert!(matches!(done[0], Outcome::Done(_)), "{done:?}");
    }
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agent_loads WHERE id = 'a1'")
            .await,
        0
    );
    // A reopening takes the slot again: it does wait for the agent, and goes through once B is done.
    let reopening = spawn_lifecycle_batch(&h, vec![act("nl-reopen", "reopen", json!({"reason": "not fixed"}))]);
    wait_for_a_lock_wait(&h, &client, "the reopening to wait for a1").await;
    b.commit().await.unwrap();
    let reopened = reopening.await.unwrap().expect("the batch commits");
    assert!(matches!(reopened[0], Outcome::Done(_)), "{reopened:?}");
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agent_loads WHERE id = 'a1'")
            .await,
        1
    );
    assert_eq!(h.count("SELECT count(*) FROM agent_slot_releases").await, 0);
    drop(client);
    drop(b_client);
    h.cleanup().await;
}

/// A foreign-key check in another transaction (the notify stage storing a message for the
/// ticket, the escalate stage setting a timer) key-share locks the ticket's row until it commits.
/// An action on the ticket does not wait for that (`store::locks` locks `FOR NO KEY UPDATE`); a
/// second locker of the ticket still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_does_not_wait_for_a_foreign_key_check_on_its_ticket() {
    use switchboard::runtime::runner::Outcome;
    let (h, numbers) = agent_with_tickets("key_share", 1).await;
    let number = &numbers[0];
    let client = h.app.db.pool.get().await.unwrap();
    let act = |id: &str, kind: &str, fields: Value| action_message(id, number, "agent:a1", kind, fields);
    let mut b_client = h.app.db.pool.get().await.unwrap();
    let b = b_client.transaction().await.unwrap();
    b.execute("SELECT 1 FROM tickets WHERE number = $1 FOR KEY SHARE", &[number])
        .await
        .unwrap();
    let responded = applied_without_waiting(
        &h,
        vec![act("ks-respond", "respond", json!({}))],
        "another transaction's foreign-key check",
    )
    .await;
    assert!(matches!(responded[0], Outcome::Done(_)), "{responded:?}");
    b.commit().await.unwrap();
    // Lockers still exclude each other.
    let b = b_client.transaction().await.unwrap();
    b.execute("SELECT 1 FROM tickets WHERE number = $1 FOR NO KEY UPDATE", &[number])
        .await
        .unwrap();
    let noting = spawn_lifecycle_batch(&h, vec![act("ks-note", "note", json!({"text": "n"}))]);
    wait_for_a_lock_wait(&h, &client, "the note to wait for the ticket").await;
    b.commit().await.unwrap();
    let noted = noting.await.unwrap().expect("the batch commits");
    assert!(matches!(noted[0], Outcome::Done(_)), "{noted:?}");
    drop(client);
    drop(b_client);
    h.cleanup().await;
}

/// Deadlocks: two transactions that meet the same tickets in opposite orders. A lifecycle batch
/// resolving T2 then T1 takes both tickets in id order up front (`store::locks`), so while it
/// waits for T1 (held by B) it holds nothing B then asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlock_a_lifecycle_batch_locks_its_tickets_in_id_order_whatever_the_arrival_order() {
    use switchboard::runtime::runner::Outcome;
    let mut s = test_settings("lock_tickets");
    s.policy_path = manifest_dir().join("tests/fixtures/policy-fast.toml");
    let mut h = Harness::with_settings(s).await;
    h.import_roster("id,name,team,languages,channels,skills,max_open,presence\na1,A1,front_line,zh;en,,,5,online\n")
        .await;
    h.start_stages(&StageName::PIPELINE, 1);
    open_ticket(&h, "lt-1", "订单一直没发货").await;
    open_ticket(&h, "lt-2", "订单一直没发货").await;
    h.stop_stages().await;
    let client = h.app.db.pool.get().await.unwrap();
    let numbers: Vec<String> = client
        .query("SELECT number FROM tickets ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (t1, t2) = (numbers[0].clone(), numbers[1].clone());
    let resolve = |number: &str| {
        let action = json!({"ticket": number, "actor": "agent:a1", "action": {"kind": "resolve", "result": "done"}});
        common::inbound(
            "action.resolve",
            &format!("lt-{number}"),
            action.to_string().into_bytes(),
        )
    };
    // The batch meets T2 first.
    let batch = vec![resolve(&t2), resolve(&t1)];
    let mut b_client = h.app.db.pool.get().await.unwrap();
    let b = b_client.transaction().await.unwrap();
    b.execute("SELECT 1 FROM tickets WHERE number = $1 FOR UPDATE", &[&t1])
        .await
        .unwrap();
    let a = spawn_lifecycle_batch(&h, batch);
    wait_for_a_lock_wait(&h, &client, "the lifecycle batch to wait for T1").await;
    let got = tokio::time::timeout(
        Duration::from_millis(500),
        b.execute("SELECT 1 FROM tickets WHERE number = $1 FOR UPDATE", &[&t2]),
    )
    .await;
    assert!(
        matches!(got, Ok(Ok(_))),
        "B could not lock T2: the lifecycle batch holds it while waiting for T1 ({got:?})"
    );
    b.commit().await.unwrap();
    let out = a.await.unwrap().expect("the lifecycle batch commits");
    assert!(out.iter().all(|o| matches!(o, Outcome::Done(_))), "{out:?}");
    assert_eq!(
        h.count("SELECT count(*) FROM tickets WHERE state = 'resolved'").await,
        2
    );
    drop(client);
    drop(b_client);
    h.cleanup().await;
}

/// A reminder on a ticket nobody takes does not repeat forever: after the policy's cap the
/// escalation climbs one rung and stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_reminders_without_end_are_capped_and_climb_to_the_next_rung() {
    let mut s = test_settings("remind_cap");
    s.policy_path = manifest_dir().join("tests/fixtures/policy-fast-capped.toml");
    let mut h = Harness::with_settings(s).await;
    // Nobody can take it: the only agent is full.
    h.import_roster(
        "id,name,team,languages,channels,skills,max_open,presence\nfl-1,Agent One,front_line,zh;en,,,0,online\n",
    )
    .await;
    h.start_stages(&StageName::ALL, 1);
    let now = chrono::Utc::now().to_rfc3339();
    let req = json!({"channel": "chat", "channel_message_id": "cap-1", "received_at": now,
                     "customer": {"customer_id": "C-cap"}, "body": "我的订单怎么还没发货？"});
    h.publish_intake("intake.chat", "cap-1", req.to_string().as_bytes())
        .await;
    h.wait_for("queued", Duration::from_secs(20), || async {
        h.count("SELECT count(*) FROM tickets WHERE state = 'queued'").await == 1
    })
    .await;
    let number = h.text("SELECT number FROM tickets").await;
    let escalated = |h: &Harness, number: String| {
        let h = h.app.clone();
        async move {
            let client = h.db.pool.get().await.unwrap();
            client
                .query(
                    "SELECT tr.details->>'notify' FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id
                     WHERE t.number = $1 AND tr.actor = 'escalate' AND tr.details ? 'step'
                       AND tr.details->>'target' = 'first_response' ORDER BY tr.seq",
                    &[&number],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
                .collect::<Vec<String>>()
        }
    };
    // Breach at 2 s, reminders at 4 s and 6 s, the next rung at 8 s; then nothing more.
    h.wait_for("the next rung", Duration::from_secs(20), || async {
        escalated(&h, number.clone()).await.len() >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let fired = escalated(&h, number.clone()).await;
    assert_eq!(fired.len(), 4, "{fired:?}");
    assert_eq!(
        fired.last().map(String::as_str),
        Some("operations_manager"),
        "{fired:?}"
    );
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM sla_timers t JOIN tickets k ON k.id = t.ticket_id
             WHERE k.number = '{number}' AND t.state = 'pending' AND t.purpose LIKE 'escalate:first_response%'"
        ))
        .await,
        0,
        "an escalation timer is still pending"
    );
    h.cleanup().await;
}

/// A ticket whose next update lapsed before the clock recurred had no breach timer left for it:
/// migration V17 gives each open one a timer due now, so the escalate stage picks up the
/// recurrence, and leaves closed tickets and tickets that already have one alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_v17_gives_tickets_lapsed_before_it_a_next_update_timer() {
    use crate::backdate::{OldTicket, insert};
    let settings = test_settings("v17");
    switchboard::store::ensure_database(&settings.database_url)
        .await
        .unwrap();
    let db = switchboard::store::Db::connect(&settings).await.unwrap();
    db.migrate_to(Some(16)).await.unwrap();
    let ago = chrono::Utc::now() - chrono::Duration::days(5);
    let ids = {
        let client = db.pool.get().await.unwrap();
        client
            .batch_execute("INSERT INTO teams (id, name) VALUES ('front_line', 'Front line')")
            .await
            .unwrap();
        let mut lapsed = OldTicket::new("LAPSED", ago);
        lapsed.escalations = vec![("next_update".into(), false, 1)];
        let mut closed = OldTicket::new("CLOSED", ago).closed(chrono::Duration::hours(1), chrono::Duration::hours(50));
        closed.escalations = vec![("next_update".into(), true, 1)];
        let mut other = OldTicket::new("OTHER", ago);
        other.escalations = vec![("first_response".into(), false, 1)];
        let mut ids = Vec::new();
        for t in [&lapsed, &closed, &other] {
            ids.push(insert(&**client, t).await);
        }
        ids
    };
    db.migrate_to(None).await.unwrap();
    let client = db.pool.get().await.unwrap();
    let timers: Vec<i64> = client
        .query(
            "SELECT ticket_id FROM sla_timers WHERE purpose = 'breach:next_update' AND state = 'pending' AND due_at <= now()",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(timers, vec![ids[0]], "only the open ticket whose next update lapsed");
    drop(client);
    db.drop_schema().await.unwrap();
}
