//! Reaching people end to end, against a real SMTP server (aiosmtpd) and a real HTTP receiver:
//! the customer's acknowledgement, the agent's reply threaded on the ticket, the resolution and
//! survey (answered through its link), the customer's email reply threading back onto the
//! ticket, the staff escalation mail, and a webhook that sees every event once per id, in order,
//! after failing the first tries.

use crate::common::receiver::{Hit, Receiver};
use crate::common::served::{Served, assigned, key};
use crate::common::smtp::{Received, SmtpSink};
use crate::common::{Harness, test_settings};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use switchboard::contracts::StageName;
use switchboard::core::access::Role;
use switchboard::http::auth::KeySpec;
use switchboard::outbound::signing;
use switchboard::store::outbound as store;

async fn mail_about(sink: &SmtpSink, number: &str, what: impl Fn(&Received) -> bool, timeout: Duration) -> Received {
    let start = std::time::Instant::now();
    loop {
        if let Some(m) = sink
            .received()
            .into_iter()
            .find(|m| m.subject.as_deref().is_some_and(|s| s.contains(number)) && what(m))
        {
            return m;
        }
        if start.elapsed() > timeout {
            let seen: Vec<_> = sink.received().into_iter().map(|m| (m.to, m.subject)).collect();
            panic!("no such mail about {number} within {timeout:?}; received: {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The addresses a notice for a team's supervisor goes to now: the supervisor in service
/// hours, whoever is on duty outside them.
fn supervisor_told_now(policy: &switchboard::core::policy::Policy, team: &str) -> Vec<String> {
    let now = chrono::Utc::now();
    let notify = &policy.doc.notify;
    let people = if policy.calendar().is_open(now) {
        notify.people_in(&policy.supervisor_of(Some(team)).unwrap())
    } else {
        notify.on_duty_at(policy.calendar(), now)
    };
    people.iter().filter_map(|(_, p)| p.email.clone()).collect()
}

fn event_of(h: &Hit) -> Value {
    serde_json::from_slice(&h.body).unwrap_or(Value::Null)
}

#[tokio::test]
async fn customers_staff_and_webhooks_hear_of_a_ticket_through_its_whole_life() {
    let sink = SmtpSink::start().await;
    let secret = signing::new_secret();
    let hook = Receiver::start(Some(secret.clone()), 2).await;
    let mut s = test_settings("notify");
    s.smtp_url = Some(sink.url());
    s.smtp_from = "客服中心 Service <desk@sb.test>".into();
    s.public_url = "https://service.example".into();
    s.deliver_first_retry_ms = 50;
    let mut h = Harness::with_settings(s).await;
    h.import_sample_roster().await;
    store::create_endpoint(
        &h.app.db,
        "whk_test",
        &hook.url("/hook"),
        &["ticket.*".to_owned(), "sla.*".to_owned()],
        &secret,
        "test receiver",
    )
    .await
    .unwrap();
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let relay = key(&h, KeySpec::integration("mail-relay", None)).await;

    // 1. The acknowledgement, threaded on the customer's email, in their language.
    let (number, assignee) = assigned(
        &h,
        &mut gw,
        &relay,
        json!({
            "channel": "email",
            "channel_message_id": "orig-1@cust.test",
            "received_at": chrono::Utc::now(),
            "customer": {"name": "张三", "email": "zhang@cust.test"},
            "subject": "订单没收到",
            "body": "我的订单三天了还没收到，请帮忙查一下物流。",
        }),
    )
    .await;
    let ack = mail_about(
        &sink,
        &number,
        |m| m.subject.as_deref().is_some_and(|s| s.contains("受理")),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(ack.to, ["zhang@cust.test"]);
    assert_eq!(ack.in_reply_to, ["orig-1@cust.test"]);
    assert!(
        ack.text.as_deref().unwrap_or_default().contains("张三"),
        "{:?}",
        ack.text
    );
    let ack_id = ack.message_id.clone().expect("a Message-ID");
    assert!(ack_id.ends_with("@sb.test"), "{ack_id}");

    // 2. The agent's reply goes out with the ticket number in the subject, threaded.
    let agent = key(&h, KeySpec::agent("agent", &assignee)).await;
    let r = gw
        .act(
            &agent,
            &number,
            json!({"action": {"kind": "respond", "message": "您好，已为您催促物流，预计明天送达。"}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    let reply = mail_about(
        &sink,
        &number,
        |m| m.text.as_deref().is_some_and(|t| t.contains("催促物流")),
        Duration::from_secs(30),
    )
    .await;
    assert!(
        reply
            .subject
            .as_deref()
            .unwrap_or_default()
            .contains(&format!("[#{number}]"))
    );
    assert_eq!(reply.in_reply_to, ["orig-1@cust.test"]);

    // 3. The customer answers our acknowledgement: it threads onto the ticket by its Message-ID.
    let r = gw
        .post(
            &relay,
            "/v1/requests",
            json!({
                "channel": "email",
                "channel_message_id": "reply-2@cust.test",
                "received_at": chrono::Utc::now(),
                "customer": {"name": "张三", "email": "zhang@cust.test"},
                "subject": "Re: 您的请求已受理",
                "body": "谢谢，我等一下。",
                "thread_ref": format!("<{ack_id}>"),
            }),
            &[],
        )
        .await;
    assert_eq!(r.status.as_u16(), 202, "{:?}", r.json());
    let on_ticket = format!(
        "SELECT count(*) FROM ticket_messages m JOIN tickets t ON t.id = m.ticket_id WHERE t.number = '{number}'"
    );
    h.wait_for(
        "the customer's reply on the ticket",
        Duration::from_secs(30),
        || async { h.count(&on_ticket).await == 2 },
    )
    .await;
    assert_eq!(h.count("SELECT count(*) FROM tickets").await, 1, "no second ticket");

    // 4. Resolution and survey; the survey's link rates the ticket, once.
    let r = gw
        .act(
            &agent,
            &number,
            json!({"action": {"kind": "resolve", "result": "已补发", "root_cause": "物流延误"}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    let resolution = mail_about(
        &sink,
        &number,
        |m| m.text.as_deref().is_some_and(|t| t.contains("已补发")),
        Duration::from_secs(30),
    )
    .await;
    assert!(resolution.text.unwrap_or_default().contains("物流延误"));
    let survey = mail_about(
        &sink,
        &number,
        |m| m.text.as_deref().is_some_and(|t| t.contains("/v1/surveys/")),
        Duration::from_secs(30),
    )
    .await;
    let text = survey.text.unwrap_or_default();
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/v1/surveys/"))
        .expect("a survey link")
        .to_owned();
    assert!(link.starts_with("https://service.example/v1/surveys/"), "{link}");
    let path = link.trim_start_matches("https://service.example");
    let shown = gw.client.get(path, &[]).await.unwrap();
    assert_eq!(shown.status.as_u16(), 200);
    assert!(String::from_utf8_lossy(&shown.body).contains("<form"));
    let forged = gw
        .client
        .post(
            &format!("/v1/surveys/{}", "A".repeat(43)),
            "application/json",
            &[],
            br#"{"score":1}"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(forged.status.as_u16(), 404, "a guessed token reaches nothing");
    let answer = r#"{"score": 5, "comment": "很满意"}"#.as_bytes().to_vec();
    let first = gw
        .client
        .post(path, "application/json", &[], answer.clone())
        .await
        .unwrap();
    assert_eq!(first.status.as_u16(), 200, "{}", String::from_utf8_lossy(&first.body));
    let again = gw.client.post(path, "application/json", &[], answer).await.unwrap();
    assert_eq!(again.status.as_u16(), 409, "a survey is answered once");
    h.wait_for(
        "the survey's rating closing the ticket",
        Duration::from_secs(30),
        || async {
            h.count(&format!(
                "SELECT count(*) FROM tickets WHERE number = '{number}' AND state = 'closed' AND rating = 5"
            ))
            .await
                == 1
        },
    )
    .await;

    // 5. The webhook: every event of the ticket, verified, each id answered 2xx once, in order.
    let version = h
        .count(&format!(
            "SELECT version::bigint FROM tickets WHERE number = '{number}'"
        ))
        .await;
    let hits = hook
        .wait_for(
            |hits| {
                hits.iter()
                    .filter(|x| x.answered < 300 && event_of(x)["subject"] == number.as_str())
                    .count() as i64
                    >= version
            },
            Duration::from_secs(60),
        )
        .await;
    let mine: Vec<&Hit> = hits
        .iter()
        .filter(|x| event_of(x)["subject"] == number.as_str())
        .collect();
    assert!(
        mine.iter().all(|x| x.verified),
        "every delivery is signed with the endpoint's secret"
    );
    let delivered: Vec<&Hit> = mine.iter().copied().filter(|x| x.answered < 300).collect();
    let ids: Vec<String> = delivered.iter().map(|x| x.id.clone().unwrap_or_default()).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "each event delivered once: {ids:?}");
    let seqs: Vec<i64> = delivered
        .iter()
        .map(|x| {
            event_of(x)["sequence"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(-1)
        })
        .collect();
    assert_eq!(seqs, (1..=version).collect::<Vec<_>>(), "in the ticket's order");
    for x in &delivered {
        assert_eq!(
            x.id.as_deref(),
            event_of(x)["id"].as_str(),
            "webhook-id is the event id"
        );
    }
    let mut tries: BTreeMap<String, usize> = BTreeMap::new();
    for x in &mine {
        *tries.entry(x.id.clone().unwrap_or_default()).or_default() += 1;
    }
    assert!(
        tries.values().all(|n| *n == 3),
        "two failures, then the delivery: {tries:?}"
    );

    // The ticket shows what was sent.
    let view = gw.get(&agent, &format!("/v1/tickets/{number}")).await.json();
    let sent: Vec<&str> = view["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "customer")
        .map(|d| d["purpose"].as_str().unwrap_or_default())
        .collect();
    for p in ["acknowledgement", "reply", "resolution", "survey"] {
        assert!(sent.contains(&p), "{p} in {sent:?}");
    }
    h.cleanup().await;
}

#[tokio::test]
async fn an_escalation_mails_the_role_it_names_or_at_night_whoever_is_on_duty() {
    let sink = SmtpSink::start().await;
    let mut s = test_settings("notify_esc");
    s.smtp_url = Some(sink.url());
    s.smtp_from = "desk@sb.test".into();
    let mut h = Harness::with_settings(s).await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let relay = key(&h, KeySpec::integration("app", None)).await;
    let (number, _) = assigned(
        &h,
        &mut gw,
        &relay,
        json!({
            "channel": "app",
            "channel_message_id": "esc-1",
            "received_at": chrono::Utc::now(),
            "customer": {"name": "李四", "phone": "13800000001", "email": "lisi@cust.test"},
            "subject": "咨询",
            // A question about the customer's own order: normal priority, whose ladder names
            // the supervisor (a general question is low, and low tickets escalate to the
            // assignee).
            "body": "我上周五下的订单（尾号 3306）到现在还没发货，能帮我查一下现在到哪一步了吗？",
        }),
    )
    .await;
    let boss = key(&h, KeySpec::person("boss", Role::Supervisor)).await;
    let r = gw
        .act(
            &boss,
            &number,
            json!({"action": {"kind": "escalate", "reason": "客户第三次来电"}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    let policy = h.app.policy.clone();
    let open = policy.calendar().is_open(chrono::Utc::now());
    let mail = mail_about(
        &sink,
        &number,
        |m| m.to.iter().any(|t| t.ends_with("@example.com")),
        Duration::from_secs(30),
    )
    .await;
    let team = h
        .text(&format!("SELECT team FROM tickets WHERE number = '{number}'"))
        .await;
    let expected = supervisor_told_now(&policy, &team);
    assert_eq!(mail.to, expected, "open: {open}");
    let text = mail.text.unwrap_or_default();
    assert!(text.contains(&format!("/desk#{number}")), "{text}");
    assert!(
        !text.contains("lisi@cust.test") && !text.contains("13800000001"),
        "never the customer's contacts: {text}"
    );
    h.cleanup().await;
}

/// kill -9 of the process running notify and deliver, while events are being planned and sent:
/// afterwards every event reached the webhook (by id) and every customer got exactly one
/// acknowledgement (by Message-ID), decided once.
#[tokio::test]
async fn killing_the_notifier_mid_flight_neither_loses_nor_doubles_a_message() {
    use crate::common::process::spawn;
    let sink = SmtpSink::start().await;
    let secret = signing::new_secret();
    let hook = Receiver::start(Some(secret.clone()), 0).await;
    let mut s = test_settings("notify_kill");
    s.smtp_url = Some(sink.url());
    s.smtp_from = "desk@sb.test".into();
    s.deliver_first_retry_ms = 50;
    let mut h = Harness::with_settings(s).await;
    h.import_sample_roster().await;
    store::create_endpoint(&h.app.db, "whk_kill", &hook.url("/k"), &["*".to_owned()], &secret, "")
        .await
        .unwrap();
    h.start_stages(
        &[
            StageName::Intake,
            StageName::Classify,
            StageName::Prioritize,
            StageName::Assign,
            StageName::Scheduler,
        ],
        1,
    );
    let env = vec![
        ("SWITCHBOARD_SMTP_URL", sink.url()),
        ("SWITCHBOARD_SMTP_FROM", "desk@sb.test".to_owned()),
        ("SWITCHBOARD_DELIVER_FIRST_RETRY_MS", "50".to_owned()),
        ("SWITCHBOARD_DELIVER_TIMEOUT_MS", "2000".to_owned()),
    ];
    let notifier = || {
        spawn(
            &h.app.settings,
            &["run", "--stage", "notify,deliver", "--concurrency", "2"],
            &env,
        )
    };
    let mut first = notifier();
    const N: usize = 40;
    for i in 0..N {
        let body = json!({
            "channel": "email",
            "channel_message_id": format!("kill-{i}@cust.test"),
            "received_at": chrono::Utc::now(),
            "customer": {"name": format!("客户{i}"), "email": format!("c{i}@cust.test")},
            "subject": "发票",
            "body": format!("请帮我开第{i}张发票，谢谢。"),
        });
        h.publish_intake(
            "intake.email",
            &format!("kill-{i}"),
            &serde_json::to_vec(&body).unwrap(),
        )
        .await;
        if i == N / 2 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            first.kill().unwrap();
            first.wait().unwrap();
            first = notifier();
        }
    }
    h.wait_for("every ticket assigned or queued", Duration::from_secs(60), || async {
        h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')")
            .await
            == N as i64
    })
    .await;
    // A second kill while the rest is being sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let _last = notifier();
    let events = h.count("SELECT sum(version)::bigint FROM tickets").await;
    let delivered_ids = |hits: &[Hit]| -> HashSet<String> {
        hits.iter()
            .filter(|x| x.answered < 300)
            .filter_map(|x| x.id.clone())
            .collect()
    };
    let hits = hook
        .wait_for(
            |hits| delivered_ids(hits).len() as i64 >= events,
            Duration::from_secs(90),
        )
        .await;
    assert_eq!(
        delivered_ids(&hits).len() as i64,
        events,
        "every event reached the webhook"
    );
    assert!(hits.iter().all(|x| x.verified));
    h.wait_for("every acknowledgement sent", Duration::from_secs(60), || async {
        h.count("SELECT count(*) FROM deliveries WHERE purpose = 'acknowledgement' AND state = 'delivered'")
            .await
            == N as i64
    })
    .await;
    let acks: Vec<Received> = sink
        .received()
        .into_iter()
        .filter(|m| m.subject.as_deref().is_some_and(|s| s.contains("受理")))
        .collect();
    let distinct: HashSet<String> = acks.iter().filter_map(|m| m.message_id.clone()).collect();
    assert_eq!(distinct.len(), N, "one acknowledgement per customer, by Message-ID");
    let per_customer: HashSet<Vec<String>> = acks.iter().map(|m| m.to.clone()).collect();
    assert_eq!(per_customer.len(), N);
    assert_eq!(
        h.count("SELECT count(*) FROM deliveries WHERE state <> 'delivered'")
            .await,
        0,
        "nothing left behind or given up"
    );
    h.cleanup().await;
}

/// A low rating reopens the ticket, tells the team's supervisor, and opens a follow-up visit
/// (回访) that the team's agents see and finish; another team's agent can neither see nor
/// finish it.
#[tokio::test]
async fn a_low_rating_tells_the_supervisor_and_opens_a_follow_up_for_the_team() {
    let sink = SmtpSink::start().await;
    let mut s = test_settings("notify_low");
    s.smtp_url = Some(sink.url());
    s.smtp_from = "desk@sb.test".into();
    let mut h = Harness::with_settings(s).await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let relay = key(&h, KeySpec::integration("app", None)).await;
    let (number, assignee) = assigned(
        &h,
        &mut gw,
        &relay,
        json!({
            "channel": "app",
            "channel_message_id": "low-1",
            "received_at": chrono::Utc::now(),
            "customer": {"name": "王五", "phone": "13800000002"},
            "subject": "咨询",
            "body": "请问会员积分怎么兑换？",
        }),
    )
    .await;
    let agent = key(&h, KeySpec::agent("agent", &assignee)).await;
    let r = gw
        .act(
            &agent,
            &number,
            json!({"action": {"kind": "resolve", "result": "已说明"}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    let r = gw
        .act(
            &relay,
            &number,
            json!({"action": {"kind": "rate", "score": 1, "comment": "没用"}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());

    let team = h
        .text(&format!("SELECT team FROM tickets WHERE number = '{number}'"))
        .await;
    let policy = h.app.policy.clone();
    let boss = supervisor_told_now(&policy, &team);
    let told = mail_about(&sink, &number, |m| m.to == boss, Duration::from_secs(30)).await;
    let subject = told.subject.unwrap_or_default();
    assert!(subject.contains("评分 1"), "the rating is in the subject: {subject}");

    h.wait_for("a follow-up visit", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM follow_ups WHERE reason = 'low_rating'")
            .await
            == 1
    })
    .await;
    let listed = gw.get(&agent, "/v1/follow-ups").await;
    assert_eq!(listed.status.as_u16(), 200);
    let rows = listed.json()["follow_ups"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["number"], number.as_str());
    let id = rows[0]["id"].as_i64().unwrap();

    // Another team's agent: nothing listed, and cannot finish it; an integration: 403.
    let other = h
        .text(&format!(
            "SELECT id FROM agents WHERE team <> '{team}' ORDER BY id LIMIT 1"
        ))
        .await;
    let stranger = key(&h, KeySpec::agent("stranger", &other)).await;
    let theirs = gw.get(&stranger, "/v1/follow-ups").await;
    assert_eq!(theirs.json()["follow_ups"].as_array().map(Vec::len), Some(0));
    let done = json!({"outcome": "客户已满意"});
    let r = gw
        .post(&stranger, &format!("/v1/follow-ups/{id}/done"), done.clone(), &[])
        .await;
    assert_eq!(r.status.as_u16(), 404);
    assert_eq!(gw.get(&relay, "/v1/follow-ups").await.status.as_u16(), 403);

    let r = gw
        .post(&agent, &format!("/v1/follow-ups/{id}/done"), done.clone(), &[])
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    let r = gw.post(&agent, &format!("/v1/follow-ups/{id}/done"), done, &[]).await;
    assert_eq!(r.status.as_u16(), 409);
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM follow_ups WHERE id = {id} AND done_by = 'agent:{assignee}'"
        ))
        .await,
        1
    );
    h.cleanup().await;
}

/// The webhook CLI end to end, and what happens when a receiver refuses: a delivery refused
/// for good is failed on the ticket and in `switchboard dead list`, `webhooks retry` sends it
/// again, and an endpoint answering 410 is disabled with the reason.
#[tokio::test]
async fn a_refused_delivery_is_dead_lettered_retried_by_hand_and_a_gone_endpoint_disabled() {
    use crate::common::process::cli;
    let hook = Receiver::start(None, 0).await;
    hook.set_status(400);
    let mut h = Harness::new("notify_refused").await;
    h.import_sample_roster().await;
    let (ok, out, err) = cli(
        &h,
        &[
            "webhooks",
            "create",
            "--url",
            &hook.url("/r"),
            "--events",
            "ticket.assigned",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(out.trim()).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    let (ok, _, err) = cli(&h, &["webhooks", "create", "--url", "ftp://x", "--events", "*"]);
    assert!(!ok && err.contains("http"), "{err}");
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let relay = key(&h, KeySpec::integration("app", None)).await;
    let request = |n: &str| {
        json!({
            "channel": "app",
            "channel_message_id": n,
            "received_at": chrono::Utc::now(),
            "customer": {"name": "赵六", "phone": "13800000003"},
            "body": "请问发票怎么开？",
        })
    };
    let (number, _) = assigned(&h, &mut gw, &relay, request("refused-1")).await;
    h.wait_for("the refused delivery failed", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM deliveries WHERE state = 'failed' AND last_status = 400")
            .await
            == 1
    })
    .await;
    let dead_queue = h.topo().dead_queue();
    h.wait_for("its dead letter", Duration::from_secs(30), || async {
        h.depth(&dead_queue).await == 1
    })
    .await;
    let (ok, out, err) = cli(&h, &["dead", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("deliver") && out.contains("400"), "{out}");
    let (ok, out, _) = cli(&h, &["webhooks", "deliveries", &id]);
    assert!(
        ok && out.contains("failed") && out.contains(&format!("{number}.")),
        "{out}"
    );

    // Fixed on the receiver's side: a retry by hand delivers it.
    hook.set_status(204);
    let n = h
        .text("SELECT id::text FROM deliveries WHERE state = 'failed' AND kind = 'webhook'")
        .await;
    // The app customer has no callback URL: their acknowledgement is failed on the ticket too.
    assert_eq!(
        h.count("SELECT count(*) FROM deliveries WHERE kind = 'customer' AND state = 'failed' AND last_error LIKE '%no callback URL%'")
            .await,
        1
    );
    let (ok, out, err) = cli(&h, &["webhooks", "retry", &n]);
    assert!(ok && out.contains('1'), "{out} {err}");
    h.wait_for("the retried delivery", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
            .await
            == 1
    })
    .await;

    // 410 Gone: the endpoint is disabled at once, with the reason.
    hook.set_status(410);
    assigned(&h, &mut gw, &relay, request("refused-2")).await;
    h.wait_for("the endpoint disabled", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM webhook_endpoints WHERE disabled_at IS NOT NULL AND disabled_reason LIKE '%410%'")
            .await
            == 1
    })
    .await;
    let (ok, out, _) = cli(&h, &["webhooks", "list"]);
    assert!(ok && out.contains("disabled"), "{out}");
    h.cleanup().await;
}
