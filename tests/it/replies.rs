//! The customer writes again (issue item 7), on the real servers with the shipped policy: a
//! message on a resolved ticket reopens it to its assignee; past `[lifecycle] reopen_window`, or
//! on a closed ticket, it opens a follow-up linked both ways; on an open ticket it is one
//! `ticket.customer_messaged` event, however often the message arrives.

use crate::common;

use common::Harness;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchboard::app::StageName;
use switchboard::bus;
use switchboard::contracts::{Exchange, Outgoing};

async fn harness(name: &str) -> Harness {
    let h = Harness::new(name).await;
    h.import_sample_roster().await;
    h
}

fn chat(id: &str, customer: &str, session: &str, body: &str) -> Value {
    json!({"channel": "chat", "channel_message_id": id, "received_at": chrono::Utc::now(),
           "customer": {"customer_id": customer}, "body": body, "thread_ref": format!("chat:{session}")})
}

/// An email of `customer` quoting ticket `number` in its subject.
fn email(id: &str, customer: &str, number: &str, body: &str) -> Value {
    json!({"channel": "email", "channel_message_id": id, "received_at": chrono::Utc::now(),
           "customer": {"customer_id": customer, "email": format!("{}@example.com", customer.to_lowercase())},
           "subject": format!("Re: [{number}] 订单"), "body": body, "thread_ref": format!("ticket:{number}")})
}

async fn send(h: &Harness, req: &Value) {
    let channel = req["channel"].as_str().unwrap();
    let id = req["channel_message_id"].as_str().unwrap();
    h.publish_intake(&format!("intake.{channel}"), id, req.to_string().as_bytes())
        .await;
}

async fn act(h: &Harness, number: &str, id: &str, actor: &str, action: Value) {
    let kind = action["kind"].as_str().unwrap().to_owned();
    let msg = Outgoing {
        exchange: Exchange::Actions,
        routing_key: format!("action.{kind}"),
        message_id: id.into(),
        body: json!({ "ticket": number, "actor": actor, "action": action }).into(),
        headers: vec![],
    };
    bus::publish_all(&h.ch, h.topo(), &[msg]).await.unwrap();
}

async fn wait_state(h: &Harness, number: &str, want: &str) {
    let q = format!("SELECT count(*) FROM tickets WHERE number = '{number}' AND state = '{want}'");
    h.wait_for(&format!("{number} {want}"), Duration::from_secs(30), || async {
        h.count(&q).await == 1
    })
    .await;
}

/// Sends `req`, waits until its ticket is assigned; returns (number, assignee).
async fn assigned(h: &Harness, req: &Value) -> (String, String) {
    send(h, req).await;
    let id = req["channel_message_id"].as_str().unwrap();
    let q = format!("SELECT count(*) FROM tickets WHERE channel_message_id = '{id}' AND state = 'assigned'");
    h.wait_for("ticket assigned", Duration::from_secs(30), || async {
        h.count(&q).await == 1
    })
    .await;
    let number = h
        .text(&format!("SELECT number FROM tickets WHERE channel_message_id = '{id}'"))
        .await;
    let assignee = h
        .text(&format!("SELECT assignee FROM tickets WHERE number = '{number}'"))
        .await;
    (number, assignee)
}

async fn resolve(h: &Harness, number: &str, assignee: &str, id: &str) {
    act(
        h,
        number,
        id,
        &format!("agent:{assignee}"),
        json!({"kind": "resolve", "result": "explained"}),
    )
    .await;
    wait_state(h, number, "resolved").await;
}

async fn load(h: &Harness, agent: &str) -> i64 {
    h.count(&format!(
        "SELECT open_tickets::bigint FROM agent_loads WHERE id = '{agent}'"
    ))
    .await
}

async fn auto_close(h: &Harness, number: &str, state: &str) -> i64 {
    h.count(&format!(
        "SELECT count(*) FROM sla_timers WHERE purpose = 'auto_close' AND state = '{state}'
           AND ticket_id = (SELECT id FROM tickets WHERE number = '{number}')"
    ))
    .await
}

async fn version(h: &Harness, number: &str) -> i64 {
    h.count(&format!(
        "SELECT version::bigint FROM tickets WHERE number = '{number}'"
    ))
    .await
}

/// (event, reason, actor, details) of the ticket's last transition.
async fn last_transition(h: &Harness, number: &str) -> (String, String, String, Value) {
    let client = h.app.db.pool.get().await.unwrap();
    let r = client
        .query_one(
            "SELECT tr.details->>'event', tr.reason, tr.actor, tr.details FROM ticket_transitions tr
               JOIN tickets t ON t.id = tr.ticket_id WHERE t.number = $1 ORDER BY tr.seq DESC LIMIT 1",
            &[&number],
        )
        .await
        .unwrap();
    (
        r.get::<_, Option<String>>(0).unwrap_or_default(),
        r.get(1),
        r.get(2),
        r.get(3),
    )
}

/// Which ticket the message `id` is stored on.
async fn ticket_of_message(h: &Harness, id: &str) -> String {
    let q = format!("SELECT count(*) FROM ticket_messages WHERE channel_message_id = '{id}'");
    h.wait_for(&format!("message {id} stored"), Duration::from_secs(30), || async {
        h.count(&q).await == 1
    })
    .await;
    h.text(&format!(
        "SELECT t.number FROM ticket_messages m JOIN tickets t ON t.id = m.ticket_id WHERE m.channel_message_id = '{id}'"
    ))
    .await
}

/// The links of ticket `number` as (other number, kind).
async fn links(h: &Harness, number: &str) -> Vec<(String, String)> {
    let client = h.app.db.pool.get().await.unwrap();
    let id: i64 = client
        .query_one("SELECT id FROM tickets WHERE number = $1", &[&number])
        .await
        .unwrap()
        .get(0);
    switchboard::store::tickets::links_of(&**client, id)
        .await
        .unwrap()
        .into_iter()
        .map(|(n, kind, _)| (n, kind))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_message_on_a_resolved_ticket_reopens_it_to_the_assignee() {
    let mut h = harness("reply_reopen").await;
    h.start_stages(&StageName::ALL, 1);
    let (number, agent) = assigned(&h, &chat("ro-1", "C-ro", "ro", "怎么修改收货地址")).await;
    let before = load(&h, &agent).await;
    resolve(&h, &number, &agent, "ro-resolve-1").await;
    assert_eq!(load(&h, &agent).await, before - 1, "resolving frees the slot");
    assert_eq!(auto_close(&h, &number, "pending").await, 1);

    // A chat message in the same session: reopened, the load and the clock back.
    send(&h, &chat("ro-2", "C-ro", "ro", "还是不行，地址改不了")).await;
    wait_state(&h, &number, "in_progress").await;
    assert_eq!(ticket_of_message(&h, "ro-2").await, number);
    let (event, reason, actor, details) = last_transition(&h, &number).await;
    assert_eq!(event, "reopened");
    assert!(reason.contains("the customer wrote again"), "{reason}");
    assert_eq!(actor, "customer");
    assert_eq!(details["action"], "customer_replied");
    assert_eq!(details["data"]["message"], "ro-2");
    assert_eq!(load(&h, &agent).await, before, "the assignee takes the load back");
    assert_eq!(
        auto_close(&h, &number, "pending").await,
        0,
        "the auto-close is cancelled"
    );
    assert_eq!(auto_close(&h, &number, "cancelled").await, 1);
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM tickets WHERE number = '{number}' AND resolved_at IS NULL
               AND sla_restarted_at IS NOT NULL AND assignee = '{agent}'"
        ))
        .await,
        1,
        "the resolution is cleared and the clock restarted"
    );

    // An email of the same customer quoting the ticket's number does the same.
    resolve(&h, &number, &agent, "ro-resolve-2").await;
    assert_eq!(load(&h, &agent).await, before - 1);
    send(&h, &email("ro-3", "C-ro", &number, "地址还是没改过来")).await;
    wait_state(&h, &number, "in_progress").await;
    assert_eq!(ticket_of_message(&h, "ro-3").await, number);
    assert_eq!(last_transition(&h, &number).await.0, "reopened");
    assert_eq!(load(&h, &agent).await, before);
    assert_eq!(auto_close(&h, &number, "pending").await, 0);
    assert_eq!(
        h.count("SELECT count(*) FROM tickets").await,
        1,
        "no other ticket opened"
    );
    assert_eq!(h.depth(&h.topo().dead_queue()).await, 0);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_window_or_closed_a_customer_message_opens_a_follow_up_linked_both_ways() {
    let mut h = harness("reply_follow").await;
    h.start_stages(&StageName::ALL, 1);

    // Resolved eight days ago: past the shipped seven-day window.
    let (old, agent) = assigned(&h, &chat("fu-1", "C-fu", "fu", "怎么修改收货地址")).await;
    resolve(&h, &old, &agent, "fu-resolve").await;
    h.execute(
        "UPDATE tickets SET resolved_at = now() - interval '8 days' WHERE number = $1",
        &[&old],
    )
    .await;
    let old_version = version(&h, &old).await;
    send(&h, &chat("fu-2", "C-fu", "fu", "又出问题了，地址又变回去了")).await;
    let follow_up = ticket_of_message(&h, "fu-2").await;
    assert_ne!(follow_up, old, "the old ticket does not take the message");
    let client = h.app.db.pool.get().await.unwrap();
    let received: Value = client
        .query_one(
            "SELECT tr.details FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id
              WHERE t.number = $1 AND tr.seq = 1",
            &[&follow_up],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(received["follows"], old.as_str(), "{received}");
    assert_eq!(
        links(&h, &follow_up).await,
        vec![(old.clone(), "follow_up_of".to_owned())]
    );
    assert_eq!(links(&h, &old).await, vec![(follow_up.clone(), "follow_up".to_owned())]);
    // The old ticket is untouched.
    wait_state(&h, &follow_up, "assigned").await;
    assert_eq!(version(&h, &old).await, old_version);
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM tickets WHERE number = '{old}' AND state = 'resolved'"
        ))
        .await,
        1
    );
    // The session goes on on the follow-up.
    send(&h, &chat("fu-3", "C-fu", "fu", "在吗")).await;
    assert_eq!(ticket_of_message(&h, "fu-3").await, follow_up);

    // Closed: an email quoting its number opens a follow-up; the next one joins that.
    let (closed, agent) = assigned(&h, &chat("fc-1", "C-fc", "fc", "发票怎么开")).await;
    resolve(&h, &closed, &agent, "fc-resolve").await;
    act(&h, &closed, "fc-rate", "customer", json!({"kind": "rate", "score": 5})).await;
    wait_state(&h, &closed, "closed").await;
    send(&h, &email("fc-2", "C-fc", &closed, "发票抬头写错了")).await;
    let second = ticket_of_message(&h, "fc-2").await;
    assert_ne!(second, closed);
    assert_eq!(
        links(&h, &second).await,
        vec![(closed.clone(), "follow_up_of".to_owned())]
    );
    assert_eq!(links(&h, &closed).await, vec![(second.clone(), "follow_up".to_owned())]);
    send(&h, &email("fc-3", "C-fc", &closed, "税号也要改")).await;
    assert_eq!(
        ticket_of_message(&h, "fc-3").await,
        second,
        "a quoted closed number reaches its follow-up"
    );
    wait_state(&h, &closed, "closed").await;

    // Another customer quoting the closed number neither joins nor follows it up.
    send(&h, &email("fx-1", "C-other", &closed, "我也要开发票")).await;
    let theirs = ticket_of_message(&h, "fx-1").await;
    assert!(theirs != closed && theirs != second);
    assert!(links(&h, &theirs).await.is_empty());
    assert_eq!(h.count("SELECT count(*) FROM tickets").await, 5);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_message_on_an_open_ticket_is_one_event_for_the_assignee_however_often_it_arrives() {
    let mut h = harness("reply_event").await;
    let events = h.event_queue("ticket.customer_messaged").await;
    h.start_stages(&StageName::ALL, 1);
    let (number, agent) = assigned(&h, &chat("ev-1", "C-ev", "ev", "怎么修改收货地址")).await;
    act(
        &h,
        &number,
        "ev-respond",
        &format!("agent:{agent}"),
        json!({"kind": "respond", "message": "请提供订单号"}),
    )
    .await;
    wait_state(&h, &number, "in_progress").await;
    let v0 = version(&h, &number).await;

    // The message arrives twice (a redelivery at intake), and its action once more by hand (a
    // redelivery on the actions queue): applied once.
    let msg = chat("ev-2", "C-ev", "ev", "订单号是 123456");
    send(&h, &msg).await;
    send(&h, &msg).await;
    act(
        &h,
        &number,
        "reply:chat:ev-2",
        "customer",
        json!({"kind": "customer_replied", "message": "ev-2"}),
    )
    .await;
    h.wait_for("version bumped", Duration::from_secs(30), || async {
        version(&h, &number).await == v0 + 1
    })
    .await;
    let mut got: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        for m in h.drain_queue(&events).await {
            got.push(serde_json::from_slice(&m.delivery.data).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(version(&h, &number).await, v0 + 1, "applied once");
    assert!(!got.is_empty(), "no ticket.customer_messaged event");
    let id = format!("{number}.{}", v0 + 1);
    for ev in &got {
        assert_eq!(ev["id"], id.as_str(), "a copy is the same event: {ev}");
        assert_eq!(ev["type"], "switchboard.ticket.customer_messaged.v1");
        let tr = &ev["data"]["transition"];
        assert_eq!(
            (tr["from"].as_str(), tr["to"].as_str()),
            (Some("in_progress"), Some("in_progress"))
        );
        assert_eq!(tr["details"]["data"]["message"], "ev-2");
        assert_eq!(tr["actor"], "customer");
        assert_eq!(ev["data"]["ticket"]["assignee"], agent.as_str());
    }
    assert_eq!(ticket_of_message(&h, "ev-2").await, number);

    // The next message is the next event.
    send(&h, &chat("ev-3", "C-ev", "ev", "麻烦快一点")).await;
    h.wait_for("second event", Duration::from_secs(30), || async {
        version(&h, &number).await == v0 + 2
    })
    .await;
    let next = format!("{number}.{}", v0 + 2);
    h.wait_for("second event delivered", Duration::from_secs(10), || async {
        h.drain_queue(&events)
            .await
            .iter()
            .any(|m| serde_json::from_slice::<Value>(&m.delivery.data).unwrap()["id"] == next.as_str())
    })
    .await;
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id
              WHERE t.number = '{number}' AND tr.details->>'event' = 'customer_messaged'"
        ))
        .await,
        2
    );
    assert_eq!(h.count("SELECT count(*) FROM tickets").await, 1);
    assert_eq!(h.depth(&h.topo().dead_queue()).await, 0);
    h.cleanup().await;
}
