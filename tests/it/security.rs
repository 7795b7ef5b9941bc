//! Attacks on who may do what (docs/SECURITY.md), each against a real gateway over TCP on the
//! real RabbitMQ and Postgres: a key reading or changing tickets outside its scope, a body
//! claiming another actor, one caller's idempotency key blocking another's, key spraying, and
//! a stranger threading onto another customer's ticket.

use crate::common;

use common::Harness;
use common::served::{Served, assigned, key};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::core::access::Role;
use switchboard::http::auth;
use switchboard_tools::client::{HttpClient, Reply};

fn app_request(id: &str, phone: &str, body: &str) -> Value {
    json!({
        "channel": "app",
        "channel_message_id": id,
        "received_at": chrono::Utc::now(),
        "customer": {"name": "王先生", "phone": phone},
        "body": body,
    })
}

fn assert_forbidden(r: &Reply, what: &str) {
    assert_eq!(r.status.as_u16(), 403, "{what}: {:?}", r.json());
    assert_eq!(r.json()["error"]["code"], "forbidden", "{what}: {:?}", r.json());
}

/// Submits an app request with `key` and waits until its ticket is assigned; returns the
/// ticket's number and assignee.
async fn assigned_via(h: &Harness, gw: &mut Served, key: &str, id: &str, phone: &str) -> (String, String) {
    assigned(h, gw, key, app_request(id, phone, "APP 付款页面一直报错，无法下单")).await
}

async fn last_actor(h: &Harness, number: &str) -> String {
    let client = h.app.db.pool.get().await.unwrap();
    client
        .query_one(
            "SELECT tr.actor FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id
             WHERE t.number = $1 ORDER BY tr.seq DESC LIMIT 1",
            &[&number],
        )
        .await
        .unwrap()
        .get(0)
}

async fn priority(h: &Harness, number: &str) -> Option<String> {
    let client = h.app.db.pool.get().await.unwrap();
    client
        .query_one("SELECT priority FROM tickets WHERE number = $1", &[&number])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_scope_an_integration_key_neither_reads_nor_changes_tickets() {
    let mut h = Harness::new("sec_scope").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let app_key = key(&h, auth::KeySpec::integration("app-backend", Some("app"))).await;
    let mail_key = key(&h, auth::KeySpec::integration("mail-relay", Some("email"))).await;
    let (number, _) = assigned_via(&h, &mut gw, &app_key, "sec-scope-1", "13812340001").await;
    let before = priority(&h, &number).await;
    let ticket = format!("/v1/tickets/{number}");
    let lower = json!({"actor": "supervisor:boss", "action": {"kind": "set_priority", "priority": "low", "reason": "not urgent"}});

    // Another channel's key: no ticket, no action, no status of someone else's request.
    assert_forbidden(&gw.get(&mail_key, &ticket).await, "email key reads an app ticket");
    assert_forbidden(
        &gw.act(&mail_key, &number, lower.clone()).await,
        "email key lowers its priority",
    );
    let status = "/v1/requests/".to_owned() + &switchboard::http::reference::encode("app", "sec-scope-1");
    assert_forbidden(
        &gw.get(&mail_key, &status).await,
        "email key reads the app request's status",
    );
    // The key that opened it reads its request's status, not the ticket, and may not act as staff.
    assert_eq!(gw.get(&app_key, &status).await.status.as_u16(), 200);
    assert_forbidden(&gw.get(&app_key, &ticket).await, "the opening key reads the ticket");
    assert_forbidden(
        &gw.act(&app_key, &number, lower.clone()).await,
        "the opening key sets priority",
    );
    for action in [
        json!({"kind": "respond"}),
        json!({"kind": "resolve", "result": "x"}),
        json!({"kind": "close"}),
    ] {
        let r = gw.act(&app_key, &number, json!({"action": action})).await;
        assert_forbidden(&r, &format!("the opening key takes {action}"));
    }
    // An any-channel integration key that did not open the ticket may not speak for its customer.
    let other = key(&h, auth::KeySpec::integration("other", None)).await;
    let r = gw
        .act(&other, &number, json!({"action": {"kind": "customer_replied"}}))
        .await;
    assert_forbidden(&r, "another integration reports a customer reply");
    assert_eq!(priority(&h, &number).await, before, "nothing changed the priority");

    // People keys do not submit requests.
    let boss = key(&h, auth::KeySpec::person("boss", Role::Supervisor)).await;
    let r = gw
        .post(
            &boss,
            "/v1/requests",
            app_request("sec-scope-2", "13812340002", "hi"),
            &[],
        )
        .await;
    assert_forbidden(&r, "a supervisor key submits a request");
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_spoofing_the_transition_actor_is_the_key_never_the_body() {
    let mut h = Harness::new("sec_actor").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let app_key = key(&h, auth::KeySpec::integration("app-backend", Some("app"))).await;
    let (number, assignee) = assigned_via(&h, &mut gw, &app_key, "sec-actor-1", "13812340011").await;

    // The assignee's own key: the body claims a supervisor, the log says the agent.
    let agent_key = key(&h, auth::KeySpec::agent("agent", &assignee)).await;
    let r = gw
        .act(
            &agent_key,
            &number,
            json!({"actor": "supervisor:boss", "action": {"kind": "respond"}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    assert_eq!(last_actor(&h, &number).await, format!("agent:{assignee}"));
    // An agent does not change priorities, whatever the body says.
    let set = json!({"actor": "supervisor:boss", "action": {"kind": "set_priority", "priority": "low", "reason": "r"}});
    assert_forbidden(
        &gw.act(&agent_key, &number, set.clone()).await,
        "an agent sets priority",
    );

    // A supervisor may, and the log names the supervisor's key holder.
    let lead = key(&h, auth::KeySpec::person("night-lead", Role::Supervisor)).await;
    let r = gw.act(&lead, &number, set).await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    assert_eq!(last_actor(&h, &number).await, "supervisor:night-lead");
    assert_eq!(priority(&h, &number).await.as_deref(), Some("low"));

    // Another agent reads the ticket only if it is their team's, and never acts on it.
    let client = h.app.db.pool.get().await.unwrap();
    let team: String = client
        .query_one("SELECT team FROM agents WHERE id = $1", &[&assignee])
        .await
        .unwrap()
        .get(0);
    let stranger: String = client
        .query_one("SELECT id FROM agents WHERE team <> $1 ORDER BY id LIMIT 1", &[&team])
        .await
        .unwrap()
        .get(0);
    let stranger_key = key(&h, auth::KeySpec::agent("stranger", &stranger)).await;
    assert_forbidden(
        &gw.get(&stranger_key, &format!("/v1/tickets/{number}")).await,
        "an agent of another team reads the ticket",
    );
    let r = gw
        .act(&stranger_key, &number, json!({"action": {"kind": "start"}}))
        .await;
    assert_forbidden(&r, "an agent of another team acts");
    // A supervisor of another team neither.
    let other_lead = key(
        &h,
        auth::KeySpec {
            team: Some("no-such-team"),
            ..auth::KeySpec::person("other-lead", Role::Supervisor)
        },
    )
    .await;
    let r = gw.act(&other_lead, &number, json!({"action": {"kind": "start"}})).await;
    assert_forbidden(&r, "a supervisor of another team acts");

    // The integration that opened the ticket speaks for its customer, as the customer.
    let r = gw
        .act(
            &app_key,
            &number,
            json!({"actor": "admin:root", "action": {"kind": "customer_replied"}}),
        )
        .await;
    assert_ne!(r.status.as_u16(), 403, "{:?}", r.json());
    if r.status.as_u16() == 200 && r.json()["applied"] == true {
        assert!(last_actor(&h, &number).await.starts_with("customer:key_"));
    }
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_collision_one_callers_key_blocks_no_other_action() {
    let mut h = Harness::new("sec_idem").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let app_key = key(&h, auth::KeySpec::integration("app-backend", Some("app"))).await;
    let (number, _) = assigned_via(&h, &mut gw, &app_key, "sec-idem-1", "13812340021").await;
    let a = key(&h, auth::KeySpec::person("lead-a", Role::Supervisor)).await;
    let b = key(&h, auth::KeySpec::person("lead-b", Role::Supervisor)).await;
    let path = format!("/v1/tickets/{number}/actions");
    let shared = [("idempotency-key", "timer:1")];

    let r = gw
        .post(&a, &path, json!({"action": {"kind": "respond"}}), &shared)
        .await;
    assert_eq!((r.status.as_u16(), r.json()["applied"].clone()), (200, json!(true)));
    // The same caller retrying is a duplicate…
    let r = gw
        .post(&a, &path, json!({"action": {"kind": "respond"}}), &shared)
        .await;
    assert_eq!(r.json()["duplicate"], true, "{:?}", r.json());
    // …another caller's action with the same key is not.
    let r = gw
        .post(&b, &path, json!({"action": {"kind": "wait_for_customer"}}), &shared)
        .await;
    assert_eq!(r.json()["applied"], true, "{:?}", r.json());
    assert_eq!(last_actor(&h, &number).await, "supervisor:lead-b");

    // Nor is a queued action (a timer's auto-close uses `timer:<id>` as its message id).
    let action = json!({"ticket": number, "actor": "agent:queue", "action": {"kind": "customer_replied"}});
    switchboard::bus::publish_all(
        &h.ch,
        h.topo(),
        &[switchboard::contracts::Outgoing {
            exchange: switchboard::contracts::Exchange::Actions,
            routing_key: "action.customer_replied".into(),
            message_id: "timer:1".into(),
            body: action.into(),
            headers: vec![],
        }],
    )
    .await
    .unwrap();
    let sql = format!("SELECT count(*) FROM tickets WHERE number = '{number}' AND state = 'in_progress'");
    h.wait_for("the queued action applied", Duration::from_secs(20), || async {
        h.count(&sql).await == 1
    })
    .await;
    assert_eq!(last_actor(&h, &number).await, "agent:queue");
    // A key longer than any real one is refused, not stored.
    let long = "k".repeat(500);
    let r = gw
        .post(
            &a,
            &path,
            json!({"action": {"kind": "customer_replied"}}),
            &[("idempotency-key", &long)],
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{:?}", r.json());
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_spraying_is_refused_per_address_before_the_database_is_asked() {
    let h = Harness::new("sec_spray").await;
    let mut gw = Served::start(&h).await;
    let good = key(&h, auth::KeySpec::person("boss", Role::Supervisor)).await;
    // The good key is looked up once and cached.
    assert_eq!(gw.get(&good, "/v1/tickets/209901-00001").await.status.as_u16(), 404);
    let mut statuses = Vec::new();
    for n in 0..60 {
        let fake = format!("sbk_{n:043}");
        statuses.push(gw.get(&fake, "/v1/tickets/209901-00001").await.status.as_u16());
    }
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(unauthorized + throttled, 60, "{statuses:?}");
    // The burst (twice the per-second budget) is answered; the rest is refused unasked.
    let budget = 2 * h.app.settings.gateway_auth_misses_per_sec as usize;
    assert!(
        unauthorized <= budget + 2,
        "{unauthorized} look-ups for 60 sprayed keys: {statuses:?}"
    );
    assert!(throttled >= 60 - budget - 2, "{statuses:?}");
    // The good key, cached, still works from the same address.
    assert_eq!(gw.get(&good, "/v1/tickets/209901-00001").await.status.as_u16(), 404);
    h.cleanup().await;
}

fn chat_request(id: &str, phone: &str, thread_ref: &str, body: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "channel": "chat",
        "channel_message_id": id,
        "received_at": chrono::Utc::now(),
        "customer": {"name": "访客", "phone": phone},
        "body": body,
        "thread_ref": thread_ref,
    }))
    .unwrap()
}

async fn ticket_of(h: &Harness, message_id: &str) -> String {
    let sql = format!("SELECT count(*) FROM ticket_messages WHERE channel_message_id = '{message_id}'");
    h.wait_for(&format!("{message_id} stored"), Duration::from_secs(20), || async {
        h.count(&sql).await == 1
    })
    .await;
    let client = h.app.db.pool.get().await.unwrap();
    client
        .query_one(
            "SELECT t.number FROM ticket_messages m JOIN tickets t ON t.id = m.ticket_id WHERE m.channel_message_id = $1",
            &[&message_id],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_hijack_a_stranger_quoting_a_ticket_number_or_session_opens_their_own_ticket() {
    let mut h = Harness::new("sec_hijack").await;
    h.start_stages(&[StageName::Intake], 1);
    let victim = "13812345678";
    h.publish_intake(
        "intake.chat",
        "v-1",
        &chat_request("v-1", victim, "chat:sess-v", "支付失败了"),
    )
    .await;
    let victims = ticket_of(&h, "v-1").await;
    // Waiting for the customer: a hijacker's message must not resume its clock either.
    let client = h.app.db.pool.get().await.unwrap();
    client
        .execute(
            "UPDATE tickets SET state = 'waiting_for_customer' WHERE number = $1",
            &[&victims],
        )
        .await
        .unwrap();

    let stranger = "13987654321";
    for (id, thread_ref) in [
        ("x-1", format!("ticket:{victims}")),
        ("x-2", format!("我的工单号是 {victims}")),
        ("x-3", "chat:sess-v".to_owned()),
    ] {
        h.publish_intake(
            "intake.chat",
            id,
            &chat_request(id, stranger, &thread_ref, "看看这个单"),
        )
        .await;
        let theirs = ticket_of(&h, id).await;
        assert_ne!(theirs, victims, "{id} ({thread_ref}) joined the victim's ticket");
        let reason: String = client
            .query_one(
                "SELECT tr.reason FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id
                 WHERE t.number = $1 AND tr.seq = 1",
                &[&theirs],
            )
            .await
            .unwrap()
            .get(0);
        assert!(reason.contains("another customer's ticket"), "{id}: {reason}");
    }
    let state: String = client
        .query_one("SELECT state FROM tickets WHERE number = $1", &[&victims])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "waiting_for_customer", "the victim's clock was resumed");
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM ticket_messages m JOIN tickets t ON t.id = m.ticket_id WHERE t.number = '{victims}'"
        ))
        .await,
        1
    );

    // The session key still leads to the victim's ticket: their next message, written with the
    // international prefix, joins it.
    h.publish_intake(
        "intake.chat",
        "v-2",
        &chat_request("v-2", "+86 138 1234 5678", "chat:sess-v", "还在吗"),
    )
    .await;
    assert_eq!(ticket_of(&h, "v-2").await, victims);
    h.cleanup().await;
}

/// Peak resident memory of this process so far (kB).
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_bomb_nested_quotes_are_accepted_without_the_gateway_blowing_up() {
    let h = Harness::new("sec_bomb").await;
    let mut gw = Served::start(&h).await;
    let mail = key(&h, auth::KeySpec::integration("mail-relay", Some("email"))).await;
    // 336 KiB of nested <blockquote>: this took a gateway to 1.3 GiB before quote prefixes
    // were capped.
    let mut html = String::from("<p>Please see below.</p>");
    while html.len() < 336 * 1024 {
        html.push_str("<blockquote><div>On Mon, someone wrote:</div>");
    }
    let raw = format!(
        "From: a@example.com\r\nMessage-ID: <bomb-1@x>\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
    );
    let before = peak_rss_kb();
    let auth = format!("Bearer {mail}");
    let r = gw
        .client
        .post(
            "/v1/channels/email",
            "message/rfc822",
            &[("authorization", &auth)],
            raw.into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 202, "{:?}", r.json());
    let grown_mb = peak_rss_kb().saturating_sub(before) / 1024;
    assert!(grown_mb < 200, "the peak RSS grew by {grown_mb} MiB");
    h.cleanup().await;
}

/// Reads until the server closes the connection or `within` passes; returns what was read,
/// or `None` if the connection was still open.
async fn read_until_closed(s: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|_| String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_headers_never_finished_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let h = Harness::new("sec_loris").await;
    let gw = Served::start_with(&h, |s| s.gateway_header_timeout_ms = 500).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut s, Duration::from_secs(5)).await.is_some(),
        "a connection that never finished its headers was still open after 5 s"
    );
    // An idle keep-alive connection is closed the same way.
    let mut idle = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    assert!(read_until_closed(&mut idle, Duration::from_secs(5)).await.is_some());
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_cap_are_closed_at_once() {
    let h = Harness::new("sec_conns").await;
    let mut gw = Served::start_with(&h, |s| s.gateway_max_connections = 4).await;
    // The client's own keep-alive connection takes one place.
    assert_eq!(gw.client.get("/healthz", &[]).await.unwrap().status.as_u16(), 200);
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    assert!(
        read_until_closed(&mut extra, Duration::from_secs(2)).await.is_some(),
        "the fifth connection was kept open"
    );
    // Free a place: a new connection is served again.
    drop(idle.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fresh = HttpClient::new(&format!("http://{}", gw.addr)).unwrap();
    assert_eq!(fresh.get("/healthz", &[]).await.unwrap().status.as_u16(), 200);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_gets_408_and_holds_no_place_for_others() {
    use tokio::io::AsyncWriteExt;
    let h = Harness::new("sec_trickle").await;
    let boss = key(&h, auth::KeySpec::person("boss", Role::Admin)).await;
    let mut gw = Served::start_with(&h, |s| {
        s.gateway_request_timeout_ms = 700;
        s.gateway_max_in_flight = 1;
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /v1/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {boss}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"channel\""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // While it holds the only place in flight, another request is shed at once.
    let r = gw.get(&boss, "/v1/tickets/209901-00001").await;
    assert_eq!(r.status.as_u16(), 503, "{:?}", r.json());
    assert_eq!(r.json()["error"]["code"], "overloaded");
    assert!(r.headers.contains_key("retry-after"));
    let answer = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("the trickled request was never answered");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // The place is free again.
    let r = gw.get(&boss, "/v1/tickets/209901-00001").await;
    assert_eq!(r.status.as_u16(), 404, "{:?}", r.json());
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_priority_before_assignment_strands_no_ticket() {
    let mut h = Harness::new("sec_early_priority").await;
    h.import_sample_roster().await;
    h.start_stages(&[StageName::Intake], 1);
    let mut gw = Served::start(&h).await;
    let app_key = key(&h, auth::KeySpec::integration("app-backend", Some("app"))).await;
    let lead = key(&h, auth::KeySpec::person("night-lead", Role::Supervisor)).await;
    let r = gw
        .post(
            &app_key,
            "/v1/requests",
            app_request("early-1", "13812340031", "APP 付款页面一直报错，无法下单"),
            &[],
        )
        .await;
    assert_eq!(r.status.as_u16(), 202);
    h.wait_for("received", Duration::from_secs(20), || async {
        h.count("SELECT count(*) FROM tickets WHERE state = 'received'").await == 1
    })
    .await;
    let number = h.text("SELECT number FROM tickets").await;
    // While the classify work message for version 1 waits, a supervisor sets the priority.
    let r = gw
        .act(
            &lead,
            &number,
            json!({"action": {"kind": "set_priority", "priority": "low", "reason": "a known issue"}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    h.stop_stages().await;
    h.start_stages(&StageName::ALL, 1);
    h.wait_for("the ticket moves on to an agent", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')")
            .await
            == 1
    })
    .await;
    assert_eq!(
        priority(&h, &number).await.as_deref(),
        Some("low"),
        "the supervisor's priority stands"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.depth(&h.topo().dead_queue()).await, 0, "{}", h.snapshot().await);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_record_poisoning_a_claimed_contact_renames_nobody_and_sees_no_history() {
    let mut h = Harness::new("sec_poison").await;
    h.start_stages(&[StageName::Intake], 1);
    let send = |id: &'static str, channel: &'static str, customer: Value| {
        let h = &h;
        async move {
            let body = json!({"channel": channel, "channel_message_id": id, "received_at": chrono::Utc::now(),
                              "customer": customer, "body": "我的订单怎么还没发货？"});
            h.publish_intake(&format!("intake.{channel}"), id, &serde_json::to_vec(&body).unwrap())
                .await;
            ticket_of(h, id).await
        }
    };
    // The real customer calls: the phone channel vouches for the number.
    send("p-1", "phone", json!({"name": "王芳", "phone": "139 1234 5678"})).await;
    // Someone types her number (and then her email) into a chat and an app form.
    let chat = send("x-1", "chat", json!({"name": "Mallory", "phone": "+86 139 1234 5678"})).await;
    send(
        "x-2",
        "app",
        json!({"name": "Mallory", "email": "wang.fang@example.com"}),
    )
    .await;
    let names = h.texts("SELECT coalesce(name, '') FROM customers ORDER BY id").await;
    assert_eq!(names, vec!["王芳"], "a claim created or renamed a customer record");
    let view = switchboard::http::api::ticket_json(&h.app, &chat)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        view["customer_tickets"],
        json!([]),
        "the chat ticket shows her history: {view:#}"
    );
    // Her next call, dialled with the international prefix, finds her record and history.
    let again = send("p-2", "phone", json!({"phone": "0086-139-1234-5678"})).await;
    let view = switchboard::http::api::ticket_json(&h.app, &again)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view["customer_tickets"].as_array().map(Vec::len), Some(1), "{view:#}");
    assert_eq!(
        h.count("SELECT count(*) FROM customers WHERE phone = '+8613912345678'")
            .await,
        1
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_spraying_behind_a_trusted_proxy_is_charged_to_the_forwarded_client() {
    let h = Harness::new("sec_spray_proxy").await;
    let mut gw = Served::start_with(&h, |s| s.gateway_trusted_proxies = "127.0.0.1".into()).await;
    let spray = |n: usize, client: &'static str| (format!("sbk_{n:043}"), client);
    let mut statuses = Vec::new();
    for n in 0..40 {
        let (fake, client) = spray(n, "198.51.100.7");
        let auth = format!("Bearer {fake}");
        let r = gw
            .client
            .get(
                "/v1/tickets/209901-00001",
                &[("authorization", &auth), ("x-forwarded-for", client)],
            )
            .await
            .unwrap();
        statuses.push(r.status.as_u16());
    }
    assert!(statuses.iter().filter(|s| **s == 429).count() >= 15, "{statuses:?}");
    // Another client behind the same proxy has its own budget; a forged hop further left
    // does not change whose budget pays.
    let auth = format!("Bearer {}", spray(99, "").0);
    let r = gw
        .client
        .get(
            "/v1/tickets/209901-00001",
            &[
                ("authorization", &auth),
                ("x-forwarded-for", "198.51.100.7, 203.0.113.5"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        r.status.as_u16(),
        401,
        "the other client was charged the first one's budget"
    );
    h.cleanup().await;
}
