//! The HTTP intake gateway on the real RabbitMQ and Postgres: every channel accepted and
//! ticketed, idempotent retries, email threading, each refusal with its status and JSON body,
//! rate limits, broker outages, and logs without contacts.
//!
//! Most tests call the router in-process (`tower::ServiceExt::oneshot`); the first one goes over
//! a real TCP socket with the gateway's own HTTP client, as an integration would.

use crate::common;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::{Harness, manifest_dir};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard::app::{App, StageName};
use switchboard::http::{self as gateway, Gateway, auth};
use switchboard_tools::client::HttpClient;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(manifest_dir().join("tests/fixtures/email").join(name)).expect("fixture")
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    let response = router
        .clone()
        .oneshot(builder.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, json }
}

/// POST with a bearer key.
async fn post(router: &Router, key: &str, path: &str, content_type: &str, body: impl Into<Body>) -> Reply {
    let auth = format!("Bearer {key}");
    call(
        router,
        "POST",
        path,
        &[("authorization", &auth)],
        Some(content_type),
        body,
    )
    .await
}

async fn get(router: &Router, key: &str, path: &str) -> Reply {
    let auth = format!("Bearer {key}");
    call(router, "GET", path, &[("authorization", &auth)], None, Body::empty()).await
}

fn router_for(app: &App) -> Router {
    gateway::router(app, Arc::new(Gateway::new(app)))
}

/// The harness's app with changed settings (same database schema and topology).
fn app_with(h: &Harness, change: impl FnOnce(&mut switchboard::config::Settings)) -> App {
    let mut app = h.app.clone();
    change(&mut app.settings);
    app
}

async fn new_key(h: &Harness, channel: Option<&str>) -> String {
    auth::create_key(&h.app.db, "test", channel, None, None)
        .await
        .expect("create key")
        .1
}

fn app_request(id: &str, body: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "channel": "app",
        "channel_message_id": id,
        "received_at": chrono::Utc::now(),
        "customer": {"customer_id": "C-7", "phone": "13812345678"},
        "body": body,
    }))
    .unwrap()
}

fn call_event(id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "call_id": id,
        "caller_number": "+86 138 0013 8000",
        "line_called": "400-820-1234",
        "ivr_choice": "2 故障报修",
        "started_at": chrono::Utc::now() - chrono::Duration::minutes(5),
        "ended_at": chrono::Utc::now() - chrono::Duration::minutes(2),
        "outcome": "answered",
        "transcript": "你好，我们公司的打印机打不了了，显示离线，麻烦派人看一下",
    }))
    .unwrap()
}

fn chat_message(session: &str, id: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "session_id": session,
        "message_id": id,
        "sent_at": chrono::Utc::now(),
        "visitor": {"name": "访客", "phone": "13900001111", "email": "visitor@example.com"},
        "text": text,
        "platform": "web",
    }))
    .unwrap()
}

fn email(message_id: &str, subject: &str, body: &str) -> Vec<u8> {
    email_from("Li Lei <li.lei@example.com>", message_id, subject, body)
}

fn email_from(from: &str, message_id: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: support@switchboard.example\r\nSubject: {subject}\r\n\
         Message-ID: <{message_id}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.json);
    assert_eq!(r.json["error"]["code"], code, "{}", r.json);
    assert!(
        r.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.json
    );
}

/// Polls the status URL until `done` holds for its body.
async fn wait_status(h: &Harness, router: &Router, key: &str, url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let r = get(router, key, url).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        if done(&r.json) {
            return r.json;
        }
        if start.elapsed() > Duration::from_secs(60) {
            panic!("timed out waiting on {url}: last {} — {}", r.json, h.snapshot().await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn routed(status: &Value) -> bool {
    status["status"] == "ticketed" && matches!(status["ticket"]["state"].as_str(), Some("assigned" | "queued"))
}

fn ticketed(status: &Value) -> bool {
    status["status"] == "ticketed"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_is_accepted_over_http_and_its_ticket_ends_assigned_or_queued() {
    let mut h = Harness::new("gw_channels").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let key = new_key(&h, None).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = {
        let (app, stop) = (h.app.clone(), stop.clone());
        tokio::spawn(async move { gateway::serve(&app, listener, stop).await })
    };
    let mut client = HttpClient::new(&format!("http://{addr}")).unwrap();
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str())];

    let requests: [(&str, &str, Vec<u8>, &str, &str); 4] = [
        (
            "/v1/requests",
            "application/json",
            app_request("gw-app-1", "APP 付款页面一直报错，无法下单"),
            "app",
            "gw-app-1",
        ),
        (
            "/v1/channels/email",
            "message/rfc822",
            fixture("alternative_utf8.eml"),
            "email",
            "3f2c9a1e-8b7d-4c1a-9e55-1d2f3a4b5c6d@example.com",
        ),
        (
            "/v1/channels/phone",
            "application/json; charset=utf-8",
            call_event("gw-call-1"),
            "phone",
            "gw-call-1",
        ),
        (
            "/v1/channels/chat",
            "application/json",
            chat_message("gw-session-1", "gw-chat-1", "你好，小程序下单一直转圈，付不了款"),
            "chat",
            "gw-chat-1",
        ),
    ];
    let mut urls = Vec::new();
    for (path, content_type, body, channel, id) in requests {
        let r = client.post(path, content_type, &headers, body).await.unwrap();
        assert_eq!(
            r.status,
            StatusCode::ACCEPTED,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let b = r.json();
        assert_eq!(b["channel"], channel);
        assert_eq!(b["channel_message_id"], id);
        let reference = b["reference"].as_str().unwrap().to_owned();
        assert_eq!(b["status_url"], format!("/v1/requests/{reference}"));
        assert_eq!(r.headers["location"], format!("/v1/requests/{reference}").as_str());
        urls.push((channel, b["status_url"].as_str().unwrap().to_owned()));
    }
    // A refusal over TCP has the same JSON body.
    let r = client
        .post("/v1/channels/chat", "text/plain", &headers, "hello")
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.json()["error"]["code"], "unsupported_media_type");

    let router = router_for(&h.app);
    for (channel, url) in &urls {
        let status = wait_status(&h, &router, &key, url, routed).await;
        assert_eq!(status["channel"], *channel);
        assert_eq!(status["ticket"]["opened_by_request"], true);
        assert!(
            status["ticket"]["number"].as_str().is_some_and(|n| n.len() >= 12),
            "{status}"
        );
        // The same answer over TCP.
        let r = client.get(url, &headers).await.unwrap();
        assert_eq!(r.json()["ticket"]["number"], status["ticket"]["number"]);
    }
    assert_eq!(h.count("SELECT count(*) FROM tickets").await, 4);
    // The email kept its subject and attachments' metadata; the phone number is in the record.
    assert_eq!(
        h.count("SELECT count(*) FROM tickets WHERE channel = 'phone' AND customer->>'phone' = '+86 138 0013 8000'")
            .await,
        1
    );

    stop.cancel();
    server.await.unwrap().expect("gateway stops cleanly");
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_idempotency_key_gets_the_same_reference_and_one_ticket() {
    let mut h = Harness::new("gw_retry").await;
    h.import_sample_roster().await;
    let router = router_for(&h.app);
    let key = new_key(&h, None).await;

    let chat = chat_message("gw-retry-session", "gw-retry-chat", "我的订单一直没发货");
    let mail = fixture("gb2312_base64.eml");
    let app = app_request("gw-retry-app", "账户被盗了，请立即冻结");
    let mut references = Vec::new();
    for (path, content_type, body) in [
        ("/v1/channels/chat", "application/json", &chat),
        ("/v1/channels/email", "message/rfc822", &mail),
        ("/v1/requests", "application/json", &app),
    ] {
        let first = post(&router, &key, path, content_type, body.clone()).await;
        let again = post(&router, &key, path, content_type, body.clone()).await;
        assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.json);
        assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.json);
        assert_eq!(first.json, again.json, "a retry answers exactly as the first attempt");
        references.push(first.json["status_url"].as_str().unwrap().to_owned());
    }
    // Before any stage runs, the request is accepted but has no ticket yet.
    let before = get(&router, &key, &references[0]).await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(before.json["status"], "accepted", "{}", before.json);
    assert!(before.json.get("ticket").is_none());

    h.start_stages(&StageName::ALL, 1);
    for url in &references {
        wait_status(&h, &router, &key, url, routed).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.count("SELECT count(*) FROM tickets").await,
        3,
        "one ticket per idempotency key"
    );
    assert_eq!(h.count("SELECT count(*) FROM ticket_messages").await, 3);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_reply_and_a_quoted_ticket_number_thread_onto_the_ticket() {
    let mut h = Harness::new("gw_thread").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let router = router_for(&h.app);
    let key = new_key(&h, Some("email")).await;

    // The message reply_english.eml answers (its In-Reply-To), from the same sender: a
    // reply joins only a ticket of the same customer.
    let jane = "Jane Doe <jane.doe@gmail.example>";
    let original = email_from(
        jane,
        "CAFx8=abc123XYZ@mail.gmail.example",
        "Printer offline",
        "Our office printer shows offline.",
    );
    let r = post(&router, &key, "/v1/channels/email", "message/rfc822", original).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let first = wait_status(&h, &router, &key, r.json["status_url"].as_str().unwrap(), ticketed).await;
    let number = first["ticket"]["number"].as_str().unwrap().to_owned();

    let r = post(
        &router,
        &key,
        "/v1/channels/email",
        "message/rfc822",
        fixture("reply_english.eml"),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let reply = wait_status(&h, &router, &key, r.json["status_url"].as_str().unwrap(), ticketed).await;
    assert_eq!(reply["ticket"]["number"], number.as_str(), "{reply}");
    assert_eq!(reply["ticket"]["opened_by_request"], false);

    // A new message quoting the ticket number in its subject joins it too.
    let quoted = email_from(
        jane,
        "gw-thread-3@example.com",
        &format!("Re: [{number}] still offline"),
        "Any news?",
    );
    let r = post(&router, &key, "/v1/channels/email", "message/rfc822", quoted).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let third = wait_status(&h, &router, &key, r.json["status_url"].as_str().unwrap(), ticketed).await;
    assert_eq!(third["ticket"]["number"], number.as_str(), "{third}");

    assert_eq!(h.count("SELECT count(*) FROM tickets").await, 1);
    assert_eq!(h.count("SELECT count(*) FROM ticket_messages").await, 3);
    // The quoted history of the reply is kept apart from its new text.
    assert_eq!(
        h.count(
            "SELECT count(*) FROM ticket_messages WHERE channel_message_id = 'CAGy9+def456UVW@mail.gmail.example'
             AND quoted_history LIKE 'On Mon, May 6, 2024%' AND body NOT LIKE '%Please restart%'"
        )
        .await,
        1
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_400_413_415_or_422_naming_the_field_and_nothing_is_published() {
    let h = Harness::new("gw_errors").await;
    let app = app_with(&h, |s| s.gateway_max_email_bytes = 4096);
    let router = router_for(&app);
    let key = new_key(&h, None).await;
    let (json_ct, email_ct) = ("application/json", "message/rfc822");

    // 415: the wrong or no Content-Type.
    for (path, ct) in [
        ("/v1/requests", Some("text/plain")),
        ("/v1/channels/email", Some(json_ct)),
        ("/v1/channels/phone", None),
        ("/v1/channels/chat", Some("application/x-www-form-urlencoded")),
    ] {
        let auth = format!("Bearer {key}");
        let r = call(&router, "POST", path, &[("authorization", &auth)], ct, "{}").await;
        assert_error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }

    // 400: broken syntax; bytes that are no email at all.
    for path in ["/v1/requests", "/v1/channels/phone", "/v1/channels/chat"] {
        let r = post(&router, &key, path, json_ct, "{not json").await;
        assert_error(&r, StatusCode::BAD_REQUEST, "malformed");
        let r = post(&router, &key, path, json_ct, r#"{"unterminated"#).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "malformed");
    }
    for raw in [fixture("garbage.eml"), fixture("no_headers.eml"), Vec::new()] {
        let r = post(&router, &key, "/v1/channels/email", email_ct, raw).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "malformed");
    }

    // 413: over the route's body limit (streamed, and declared by Content-Length).
    let big_json = vec![b' '; switchboard::contracts::intake::MAX_MESSAGE_BYTES + 1];
    let r = post(&router, &key, "/v1/requests", json_ct, big_json.clone()).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let auth = format!("Bearer {key}");
    let len = big_json.len().to_string();
    let r = call(
        &router,
        "POST",
        "/v1/channels/chat",
        &[("authorization", &auth), ("content-length", &len)],
        Some(json_ct),
        big_json,
    )
    .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let big_mail = email("big@example.com", "big", &"x".repeat(5000));
    let r = post(&router, &key, "/v1/channels/email", email_ct, big_mail).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // 422: well-formed, but a field is wrong; the error names it.
    let mut bad_phone: Value = serde_json::from_slice(&app_request("gw-e-1", "hi")).unwrap();
    bad_phone["customer"]["phone"] = json!("12");
    let mut fax: Value = serde_json::from_slice(&app_request("gw-e-2", "hi")).unwrap();
    fax["channel"] = json!("fax");
    let mut no_body: Value = serde_json::from_slice(&app_request("gw-e-3", "hi")).unwrap();
    no_body.as_object_mut().unwrap().remove("body");
    let mut openid: Value = serde_json::from_slice(&chat_message("s", "m", "hi")).unwrap();
    openid["visitor"]["openid"] = json!("o-1");
    let mut no_transcript: Value = serde_json::from_slice(&call_event("gw-e-4")).unwrap();
    no_transcript.as_object_mut().unwrap().remove("transcript");
    let mut bad_time: Value = serde_json::from_slice(&call_event("gw-e-5")).unwrap();
    bad_time["started_at"] = json!("yesterday");
    let cases: Vec<(&str, Vec<u8>, &str, Option<&str>)> = vec![
        (
            "/v1/requests",
            serde_json::to_vec(&bad_phone).unwrap(),
            json_ct,
            Some("customer.phone"),
        ),
        (
            "/v1/requests",
            serde_json::to_vec(&fax).unwrap(),
            json_ct,
            Some("channel"),
        ),
        ("/v1/requests", serde_json::to_vec(&no_body).unwrap(), json_ct, None),
        ("/v1/requests", br#""just a string""#.to_vec(), json_ct, None),
        (
            "/v1/channels/chat",
            serde_json::to_vec(&openid).unwrap(),
            json_ct,
            Some("visitor.openid"),
        ),
        (
            "/v1/channels/chat",
            chat_message("a b", "m", "hi"),
            json_ct,
            Some("session_id"),
        ),
        (
            "/v1/channels/phone",
            serde_json::to_vec(&no_transcript).unwrap(),
            json_ct,
            Some("transcript"),
        ),
        (
            "/v1/channels/phone",
            serde_json::to_vec(&bad_time).unwrap(),
            json_ct,
            Some("started_at"),
        ),
        (
            "/v1/channels/email",
            fixture("missing_message_id.eml"),
            email_ct,
            Some("Message-ID"),
        ),
        (
            "/v1/channels/email",
            email("e@x", "empty", "   "),
            email_ct,
            Some("body"),
        ),
    ];
    for (path, body, ct, field) in cases {
        let r = post(&router, &key, path, ct, body).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
        assert_eq!(r.json["error"]["field"].as_str(), field, "{path}: {}", r.json);
    }
    let r = post(
        &router,
        &key,
        "/v1/requests",
        json_ct,
        serde_json::to_vec(&no_body).unwrap(),
    )
    .await;
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `body`"),
        "{}",
        r.json
    );

    // 404 and 405, with the same JSON body.
    let r = get(&router, &key, "/v1/requests/not-a-reference").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = get(&router, &key, "/v1/nothing-here").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = get(&router, &key, "/v1/channels/chat").await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

    // Nothing reached the broker.
    assert_eq!(h.depth(&h.topo().queue("intake")).await, 0);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_401_without_a_valid_key_and_403_on_another_channel() {
    let h = Harness::new("gw_keys").await;
    // No key cache, so a revocation shows at once.
    let app = app_with(&h, |s| s.gateway_key_cache_ms = 0);
    let router = router_for(&app);
    let chat = chat_message("gw-keys-s", "gw-keys-m", "在吗");

    let r = call(
        &router,
        "POST",
        "/v1/channels/chat",
        &[],
        Some("application/json"),
        chat.clone(),
    )
    .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    for bad in ["sbk_not-a-real-key", "hunter2"] {
        let r = post(&router, bad, "/v1/channels/chat", "application/json", chat.clone()).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }

    let (any, secret) = auth::create_key(&h.app.db, "any", None, None, None).await.unwrap();
    // X-Api-Key works as well as a bearer token.
    let r = call(
        &router,
        "POST",
        "/v1/channels/chat",
        &[("x-api-key", &secret)],
        Some("application/json"),
        chat.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let chat_status = r.json["status_url"].as_str().unwrap().to_owned();

    // A key restricted to email.
    let mail_key = new_key(&h, Some("email")).await;
    let r = post(
        &router,
        &mail_key,
        "/v1/channels/chat",
        "application/json",
        chat.clone(),
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = post(
        &router,
        &mail_key,
        "/v1/requests",
        "application/json",
        app_request("gw-keys-app", "hi"),
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = get(&router, &mail_key, &chat_status).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = post(
        &router,
        &mail_key,
        "/v1/channels/email",
        "message/rfc822",
        fixture("gbk_qp.eml"),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);

    // Listed without its secret; revoked → 401.
    let listed = auth::list_keys(&h.app.db).await.unwrap();
    assert!(listed.iter().any(|k| k.id == any.id && k.revoked_at.is_none()));
    let stored = format!(
        "SELECT count(*) FROM api_keys WHERE key_hash = '{}'",
        auth::hash_key(&secret)
    );
    assert_eq!(h.count(&stored).await, 1, "the SHA-256 is stored");
    let leaked = format!("SELECT count(*) FROM api_keys a WHERE a::text LIKE '%{secret}%'");
    assert_eq!(h.count(&leaked).await, 0, "the key itself is not");
    assert!(auth::revoke_key(&h.app.db, &any.id).await.unwrap());
    assert!(
        !auth::revoke_key(&h.app.db, &any.id).await.unwrap(),
        "revoking twice is a no-op"
    );
    let r = post(&router, &secret, "/v1/channels/chat", "application/json", chat).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let h = Harness::new("gw_rate").await;
    let router = router_for(&h.app);
    let (_, slow) = auth::create_key(&h.app.db, "slow", None, Some(1), Some(2))
        .await
        .unwrap();
    let other = new_key(&h, None).await;
    let url = "/v1/requests/rq_bm9uZTpub25l";
    for _ in 0..2 {
        assert_eq!(get(&router, &slow, url).await.status, StatusCode::OK);
    }
    let r = get(&router, &slow, url).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Other keys have their own bucket.
    assert_eq!(get(&router, &other, url).await.status, StatusCode::OK);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_gets_503_with_retry_after_and_the_next_url_is_tried() {
    let h = Harness::new("gw_down").await;
    let live = h.app.settings.amqp_url.clone();
    let dead = "amqp://guest:guest@127.0.0.1:1/%2f".to_owned();
    let key = new_key(&h, None).await;
    let chat = chat_message("gw-down-s", "gw-down-m", "网站打不开了");

    let down = app_with(&h, |s| {
        s.amqp_url = dead.clone();
        s.gateway_publish_timeout_ms = 2_000;
    });
    let router = router_for(&down);
    for _ in 0..2 {
        // The second one answers at once from the back-off.
        let r = post(&router, &key, "/v1/channels/chat", "application/json", chat.clone()).await;
        assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(r.headers["retry-after"], "2");
        assert!(
            !r.json["error"]["message"].as_str().unwrap().contains("guest"),
            "no credentials: {}",
            r.json
        );
    }
    let r = call(&router, "GET", "/readyz", &[], None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.json);
    assert_eq!(r.json["database"], "ok");
    let r = call(&router, "GET", "/healthz", &[], None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(h.depth(&h.topo().queue("intake")).await, 0, "nothing was accepted");

    // With a live node after the dead one, the gateway fails over.
    let failover = app_with(&h, |s| s.amqp_url = format!("{dead},{live}"));
    let router = router_for(&failover);
    let r = post(&router, &key, "/v1/channels/chat", "application/json", chat).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let r = call(&router, "GET", "/readyz", &[], None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    h.wait_for("the request on the intake queue", Duration::from_secs(5), || async {
        h.depth(&h.topo().queue("intake")).await == 1
    })
    .await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_the_broker_closed_is_rebuilt() {
    let h = Harness::new("gw_rebuild").await;
    let app = app_with(&h, |s| {
        s.gateway_channels = 1;
        s.gateway_publish_timeout_ms = 2_000;
    });
    let router = router_for(&app);
    let key = new_key(&h, None).await;
    let send = |n: u32| {
        let router = router.clone();
        let key = key.clone();
        async move {
            let body = chat_message("gw-rebuild-s", &format!("gw-rebuild-{n}"), "客服在吗");
            post(&router, &key, "/v1/channels/chat", "application/json", body).await
        }
    };
    assert_eq!(send(1).await.status, StatusCode::ACCEPTED);
    // Publishing to a missing exchange makes the broker close the channel.
    h.ch.exchange_delete(
        h.topo()
            .exchange(switchboard::contracts::Exchange::Intake)
            .as_str()
            .into(),
        Default::default(),
    )
    .await
    .unwrap();
    let r = send(2).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    h.app.declare_topology().await.unwrap();
    let r = send(3).await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "a new channel replaced the closed one: {}",
        r.json
    );
    h.cleanup().await;
}

/// Collects log output in memory.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary (all tests), gateway at debug level. Global rather than
/// per-test: a thread-local subscriber misses callsites that other test threads registered first.
fn captured_logs() -> &'static LogBuffer {
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,switchboard=debug"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber of this binary");
        logs
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_logs_show_references_and_masked_contacts_only() {
    let logs = captured_logs();
    let h = Harness::new("gw_privacy").await;
    let router = router_for(&h.app);
    let key = new_key(&h, None).await;
    let accepted = [
        post(
            &router,
            &key,
            "/v1/channels/chat",
            "application/json",
            chat_message("gw-p-s", "gw-p-1", "在吗"),
        )
        .await,
        post(
            &router,
            &key,
            "/v1/channels/phone",
            "application/json",
            call_event("gw-p-2"),
        )
        .await,
        post(
            &router,
            &key,
            "/v1/channels/email",
            "message/rfc822",
            fixture("alternative_utf8.eml"),
        )
        .await,
        post(
            &router,
            &key,
            "/v1/requests",
            "application/json",
            app_request("gw-p-3", "hi"),
        )
        .await,
    ];
    for r in &accepted {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    }
    // Refusals whose messages quote the contact.
    let mut bad = serde_json::from_slice::<Value>(&chat_message("gw-p-s", "gw-p-4", "hi")).unwrap();
    bad["visitor"]["email"] = json!("visitor.example.com");
    let r = post(
        &router,
        &key,
        "/v1/channels/chat",
        "application/json",
        serde_json::to_vec(&bad).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("visitor.example.com"),
        "the client sees its value"
    );

    let all = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    // The gateway's own lines (other tests of this binary log here too, and the stages are
    // not under test).
    let text: String = all
        .lines()
        .filter(|l| l.contains("switchboard::http"))
        .map(|l| format!("{l}\n"))
        .collect();
    for r in &accepted {
        assert!(
            text.contains(r.json["reference"].as_str().unwrap()),
            "the reference is logged"
        );
    }
    assert!(
        text.contains("request accepted") && text.contains("channel=email"),
        "{text}"
    );
    assert!(
        text.contains("138****8000") && text.contains("z***@example.com"),
        "masked contacts at debug: {text}"
    );
    for secret in [
        "13900001111",
        "139 0000 1111",
        "0013 8000",
        "13812345678",
        "visitor@example.com",
        "zhangsan@example.com",
        "visitor.example.com",
        &key,
    ] {
        assert!(!text.contains(secret), "{secret:?} leaked into the logs:\n{text}");
    }
    h.cleanup().await;
}

/// Request examples of `schemas/openapi.yaml` as (path, content type, body). The JSON examples
/// are written as flow mappings (JSON is YAML) and the email one as a literal block, so they can
/// be read here without a YAML parser.
fn openapi_request_examples(text: &str) -> Vec<(String, String, Vec<u8>)> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let (mut path, mut content_type, mut in_request) = (String::new(), String::new(), false);
    let mut out = Vec::new();
    let mut offset = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let t = line.trim_start();
        if indent(line) == 2 && t.starts_with('/') && t.ends_with(':') {
            path = t.trim_end_matches(':').to_owned();
            in_request = false;
        } else if t == "requestBody:" {
            in_request = true;
        } else if t == "responses:" {
            in_request = false;
        } else if in_request && indent(line) == 10 && t.ends_with(':') && t.contains('/') {
            content_type = t.trim_end_matches(':').to_owned();
        } else if in_request && t.starts_with("value: {") {
            let start = offset + lines[i].find('{').unwrap();
            let value = serde_json::Deserializer::from_str(&text[start..])
                .into_iter::<Value>()
                .next()
                .unwrap()
                .unwrap();
            out.push((path.clone(), content_type.clone(), serde_json::to_vec(&value).unwrap()));
        } else if in_request && t == "value: |" {
            let mut block = Vec::new();
            let mut j = i + 1;
            while j < lines.len() && (lines[j].trim().is_empty() || indent(lines[j].trim_end()) > indent(line)) {
                block.push(lines[j]);
                j += 1;
            }
            let strip = block
                .iter()
                .find(|l| !l.trim().is_empty())
                .map(|l| indent(l))
                .unwrap_or(0);
            let raw: String = block.iter().map(|l| l.get(strip..).unwrap_or("\n")).collect();
            out.push((path.clone(), content_type.clone(), raw.trim_end().as_bytes().to_vec()));
        }
        offset += lines[i].len();
        i += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_examples_are_what_the_gateway_accepts() {
    let text = std::fs::read_to_string(manifest_dir().join("schemas/openapi.yaml")).unwrap();
    // The intake routes' examples (the people's API has examples of its own bodies).
    let mut examples = openapi_request_examples(&text);
    examples.retain(|(p, _, _)| p == "/v1/requests" || p.starts_with("/v1/channels/"));
    for path in [
        "/v1/requests",
        "/v1/channels/email",
        "/v1/channels/phone",
        "/v1/channels/chat",
    ] {
        assert!(
            examples.iter().any(|(p, _, _)| p == path),
            "no request example for {path}"
        );
    }
    // The app example is an IntakeRequest v1 by the JSON Schema too.
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(manifest_dir().join("schemas/intake-request.v1.json")).unwrap())
            .unwrap();
    for (_, _, body) in examples.iter().filter(|(p, _, _)| p == "/v1/requests") {
        let instance: Value = serde_json::from_slice(body).unwrap();
        assert!(jsonschema::is_valid(&schema, &instance), "{instance}");
    }
    // The documented references are the gateway's.
    let reference = gateway::reference::encode("chat", "chat-msg-553201");
    assert!(
        text.contains(&reference),
        "openapi.yaml shows a reference that is not encode(chat, chat-msg-553201)"
    );

    let h = Harness::new("gw_openapi").await;
    // The examples carry fixed dates: open the clock window wide enough for them.
    let router = router_for(&app_with(&h, |s| s.gateway_max_backdate_s = 100 * 365 * 86_400));
    let key = new_key(&h, None).await;
    for (path, content_type, body) in &examples {
        let r = post(&router, &key, path, content_type, body.clone()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "example for {path}: {}", r.json);
    }
    assert_eq!(h.depth(&h.topo().queue("intake")).await as usize, examples.len());
    h.cleanup().await;
}

/// The ticket API (full contact details) is behind the same API keys as intake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticket_api_needs_a_key() {
    let h = Harness::new("gw_tickets").await;
    let router = router_for(&h.app);
    let r = call(&router, "GET", "/v1/tickets/202611-00001", &[], None, Vec::new()).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let (_, key) = auth::create(
        &h.app.db,
        &auth::KeySpec::person("boss", switchboard::core::access::Role::Supervisor),
    )
    .await
    .unwrap();
    let r = get(&router, &key, "/v1/tickets/202611-00001").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.json);
    h.cleanup().await;
}
