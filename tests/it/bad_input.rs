//! Bad input: a corpus of malformed messages over AMQP (intake, work and actions exchanges)
//! and HTTP (gateway channels and the ticket API). Every AMQP case ends in the dead-letter queue
//! with a reason naming its problem, every HTTP case gets its 4xx with a JSON error, nothing is
//! lost or added, and the pipeline still runs and routes a valid request afterwards.

use crate::common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Harness, header, manifest_dir};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::bus;
use switchboard::contracts::Exchange;
use switchboard::http::{self as gateway, Gateway, auth};
use tower::ServiceExt;

const CASE: &str = "x-bad-input-case";

/// One malformed AMQP message and the substring its dead-letter reason must contain.
struct AmqpCase {
    name: &'static str,
    exchange: Exchange,
    routing_key: String,
    message_id: Option<String>,
    body: Vec<u8>,
    reason: String,
}

fn amqp(name: &'static str, exchange: Exchange, routing_key: &str, body: impl Into<Vec<u8>>, reason: &str) -> AmqpCase {
    AmqpCase {
        name,
        exchange,
        routing_key: routing_key.to_owned(),
        message_id: Some(format!("bad-{name}")),
        body: body.into(),
        reason: reason.to_owned(),
    }
}

/// A valid intake request (app channel) as a JSON value, to break one field at a time.
fn request(id: &str) -> Value {
    json!({
        "channel": "app",
        "channel_message_id": id,
        "received_at": chrono::Utc::now().to_rfc3339(),
        "customer": {"customer_id": "C-bad", "phone": "13812345678"},
        "body": "APP 登录一直失败，提示密码错误",
    })
}

fn with(id: &str, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut v = request(id);
    change(v.as_object_mut().unwrap());
    serde_json::to_vec(&v).unwrap()
}

fn intake(name: &'static str, body: impl Into<Vec<u8>>, reason: &str) -> AmqpCase {
    amqp(name, Exchange::Intake, "intake.app", body, reason)
}

fn intake_cases() -> Vec<AmqpCase> {
    let valid = serde_json::to_vec(&request("ok")).unwrap();
    let valid_text = String::from_utf8(valid.clone()).unwrap();
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(valid_text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    let mut bad_utf8 = valid_text.replace("APP", "A\u{1}P").into_bytes();
    let at = bad_utf8.iter().position(|b| *b == 1).unwrap();
    bad_utf8[at] = 0xFF;
    let raw_nul = valid_text.replace("APP", "A\u{0}P").into_bytes();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_field = format!(r#"{{"channel":{}{}}}"#, "[".repeat(50_000), "]".repeat(50_000));
    let dup = valid_text.replacen(r#""channel":"app","#, r#""channel":"app","channel":"chat","#, 1);
    assert_ne!(dup, valid_text);
    vec![
        intake("not_json", "I need help with my order", "expected value"),
        intake("truncated_json", &valid[..valid.len() / 2], "EOF while parsing"),
        intake("json_array", "[]", "invalid length 0"),
        intake("json_number", "42", "integer `42`"),
        intake("json_string", r#""help me""#, r#"string "help me""#),
        intake("json_null", "null", "invalid type: null"),
        intake("empty_body", "", "EOF while parsing a value"),
        intake("whitespace_body", " \r\n\t ", "EOF while parsing a value"),
        intake("trailing_garbage", format!("{valid_text} extra"), "trailing characters"),
        intake("invalid_utf8", bad_utf8, "not valid UTF-8"),
        intake("utf16_with_bom", utf16, "not valid UTF-8 (first bad byte at offset 0)"),
        intake(
            "utf8_bom",
            format!("\u{feff}{valid_text}"),
            "expected value at line 1 column 1",
        ),
        intake("raw_nul_byte", raw_nul, "control character"),
        intake(
            "escaped_nul_in_body",
            with("nul-body", |m| {
                m.insert("body".into(), json!("my order\u{0}is late"));
            }),
            "NUL",
        ),
        intake(
            "escaped_nul_in_customer",
            with("nul-cust", |m| {
                m.insert("customer".into(), json!({"customer_id": "C\u{0}1"}));
            }),
            "NUL",
        ),
        intake(
            "channel_as_number",
            with("t1", |m| {
                m.insert("channel".into(), json!(7));
            }),
            "`channel`: invalid type: integer `7`",
        ),
        intake(
            "received_at_not_a_date",
            with("t2", |m| {
                m.insert("received_at".into(), json!("yesterday"));
            }),
            "`received_at`",
        ),
        intake(
            "received_at_as_number",
            with("t3", |m| {
                m.insert("received_at".into(), json!(1_700_000_000));
            }),
            "`received_at`: invalid type: integer",
        ),
        intake(
            "received_at_without_offset",
            with("t4", |m| {
                m.insert("received_at".into(), json!("2026-05-06T02:00:00"));
            }),
            "`received_at`",
        ),
        intake(
            "customer_as_string",
            with("t5", |m| {
                m.insert("customer".into(), json!("C-bad"));
            }),
            "`customer`: invalid type: string",
        ),
        intake(
            "attachments_as_object",
            with("t6", |m| {
                m.insert("attachments".into(), json!({"filename": "a.png"}));
            }),
            "`attachments`: invalid type: map",
        ),
        intake(
            "attachment_without_filename",
            with("t7", |m| {
                m.insert("attachments".into(), json!([{"url": "https://x.example/a.png"}]));
            }),
            "missing field `filename`",
        ),
        intake(
            "attachment_negative_size",
            with("t8", |m| {
                m.insert("attachments".into(), json!([{"filename": "a.png", "size_bytes": -1}]));
            }),
            "`attachments[0].size_bytes`",
        ),
        intake(
            "tier_unknown",
            with("t9", |m| {
                m.insert("customer".into(), json!({"customer_id": "C1", "tier": "gold"}));
            }),
            "unknown variant `gold`",
        ),
        intake(
            "body_as_number",
            with("t10", |m| {
                m.insert("body".into(), json!(42));
            }),
            "`body`: invalid type: integer",
        ),
        intake(
            "missing_channel",
            with("m1", |m| {
                m.remove("channel");
            }),
            "missing field `channel`",
        ),
        intake(
            "missing_channel_message_id",
            with("m2", |m| {
                m.remove("channel_message_id");
            }),
            "missing field `channel_message_id`",
        ),
        intake(
            "missing_received_at",
            with("m3", |m| {
                m.remove("received_at");
            }),
            "missing field `received_at`",
        ),
        intake(
            "missing_customer",
            with("m4", |m| {
                m.remove("customer");
            }),
            "missing field `customer`",
        ),
        intake(
            "missing_body",
            with("m5", |m| {
                m.remove("body");
            }),
            "missing field `body`",
        ),
        intake(
            "empty_channel_message_id",
            with("", |_| {}),
            "`channel_message_id`: must not be empty",
        ),
        intake(
            "long_channel_message_id",
            with(&"x".repeat(600), |_| {}),
            "`channel_message_id`: longer than 512 bytes",
        ),
        amqp(
            "unknown_channel_fax",
            Exchange::Intake,
            "intake.fax",
            with("f1", |m| {
                m.insert("channel".into(), json!("fax"));
            }),
            "unknown channel \"fax\"",
        ),
        amqp(
            "routing_key_disagrees_with_channel",
            Exchange::Intake,
            "intake.email",
            with("rk1", |_| {}),
            "does not match field `channel`",
        ),
        intake(
            "unknown_top_level_field",
            with("u1", |m| {
                m.insert("priority".into(), json!("P1"));
            }),
            "unknown field `priority`",
        ),
        intake(
            "unknown_customer_field",
            with("u2", |m| {
                m.insert("customer".into(), json!({"customer_id": "C1", "openid": "o-1"}));
            }),
            "unknown field `openid`",
        ),
        intake(
            "body_over_64_kib",
            with("big1", |m| {
                m.insert("body".into(), json!("好".repeat(25_000)));
            }),
            "field `body`: 75000 bytes",
        ),
        intake(
            "message_over_256_kib",
            with("big2", |m| {
                m.insert("quoted_history".into(), json!("x".repeat(300_000)));
            }),
            "the limit is 262144 bytes",
        ),
        intake(
            "empty_text_body",
            with("e1", |m| {
                m.insert("body".into(), json!("  \n "));
            }),
            "`body`: must not be empty",
        ),
        intake(
            "customer_without_contact",
            with("c1", |m| {
                m.insert("customer".into(), json!({"name": "李雷"}));
            }),
            "needs at least one contact",
        ),
        intake(
            "customer_blank_contacts",
            with("c2", |m| {
                m.insert("customer".into(), json!({"phone": " ", "email": ""}));
            }),
            "needs at least one contact",
        ),
        intake(
            "invalid_email",
            with("c3", |m| {
                m.insert("customer".into(), json!({"email": "li.lei.example.com"}));
            }),
            "`customer.email`",
        ),
        intake(
            "phone_without_digits",
            with("c4", |m| {
                m.insert("customer".into(), json!({"phone": "call me maybe"}));
            }),
            "`customer.phone`",
        ),
        intake(
            "subject_over_1000_bytes",
            with("s1", |m| {
                m.insert("subject".into(), json!("问".repeat(400)));
            }),
            "`subject`: longer than 1000 bytes",
        ),
        intake("deeply_nested_array", deep, "invalid type: sequence"),
        intake("deeply_nested_field", deep_field, "`channel`: invalid type: sequence"),
        intake("duplicate_keys", dup, "duplicate field `channel`"),
    ]
}

fn work(stage: &str, ticket_id: i64, number: &str, version: i32) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ticket_id": ticket_id, "number": number, "version": version, "stage": stage,
        "received_at": "2026-05-06T02:00:00Z",
    }))
    .unwrap()
}

fn work_cases(t1: (i64, &str)) -> Vec<AmqpCase> {
    let (id, number) = t1;
    let timer = |ticket_id: i64| {
        serde_json::to_vec(&json!({
            "timer_id": 987_654, "ticket_id": ticket_id, "number": "209901-99999", "purpose": "first_response",
            "due_at": "2026-05-06T02:00:00Z", "fired_at": "2026-05-06T02:00:01Z", "payload": {},
        }))
        .unwrap()
    };
    let w = |name, rk: &str, body: Vec<u8>, reason: &str| amqp(name, Exchange::Work, rk, body, reason);
    vec![
        w(
            "work_garbage",
            "classify",
            b"\x00\x01garbage".to_vec(),
            "not a work message",
        ),
        w("work_empty", "prioritize", Vec::new(), "not a work message: EOF"),
        w(
            "work_missing_fields",
            "prioritize",
            br#"{"ticket_id": 1}"#.to_vec(),
            "not a work message: missing field",
        ),
        w(
            "work_not_a_drain",
            "assign",
            br#"{"hello":"world"}"#.to_vec(),
            "not a work message",
        ),
        w(
            "work_unknown_ticket",
            "classify",
            work("classify", 999_999, "209901-99999", 1),
            "209901-99999 (id 999999) does not exist",
        ),
        w(
            "work_wrong_stage",
            "prioritize",
            work("classify", id, number, 1),
            "work message for stage \"classify\" arrived at prioritize",
        ),
        w(
            // A version the ticket never had (an older one is superseded and acked quietly).
            "work_stale_version",
            "classify",
            work("classify", id, number, 99),
            "stale work message",
        ),
        w("timer_garbage", "escalate", b"[1,2,3]".to_vec(), "not a timer message"),
        w(
            "timer_unknown_ticket",
            "escalate",
            timer(999_999),
            "(id 999999) does not exist",
        ),
    ]
}

fn action(ticket: &str, action: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"ticket": ticket, "actor": "agent:bad-input", "action": action})).unwrap()
}

fn action_cases(t1: &str, t2: &str) -> Vec<AmqpCase> {
    let a = |name, rk: &str, body: Vec<u8>, reason: &str| amqp(name, Exchange::Actions, rk, body, reason);
    let mut no_id = a(
        "action_without_message_id",
        "action.respond",
        action(t1, json!({"kind": "respond"})),
        "action without message_id",
    );
    no_id.message_id = None;
    vec![
        no_id,
        a(
            "action_not_json",
            "action.respond",
            b"respond please".to_vec(),
            "not an action message",
        ),
        a(
            "action_unknown_kind",
            "action.teleport",
            action(t1, json!({"kind": "teleport"})),
            "unknown variant `teleport`",
        ),
        a(
            "action_missing_actor",
            "action.respond",
            serde_json::to_vec(&json!({"ticket": t1, "action": {"kind": "respond"}})).unwrap(),
            "missing field `actor`",
        ),
        a(
            "action_unknown_ticket",
            "action.respond",
            action("209901-99999", json!({"kind": "respond"})),
            "no ticket \"209901-99999\"",
        ),
        a(
            "action_close_assigned_ticket",
            "action.close",
            action(t1, json!({"kind": "close"})),
            "only a resolved ticket can be closed",
        ),
        a(
            "action_rate_assigned_ticket",
            "action.rate",
            action(t1, json!({"kind": "rate", "score": 4})),
            "only a resolved or closed ticket can be rated",
        ),
        a(
            "action_rate_9",
            "action.rate",
            action(t2, json!({"kind": "rate", "score": 9})),
            "a rating is 1 to 5",
        ),
        a(
            "action_rate_out_of_u8",
            "action.rate",
            action(t2, json!({"kind": "rate", "score": 900})),
            "integer `900`",
        ),
        a(
            "action_start_resolved_ticket",
            "action.start",
            action(t2, json!({"kind": "start"})),
            "only an assigned ticket can be started",
        ),
        a(
            "action_resolve_without_result",
            "action.resolve",
            action(t1, json!({"kind": "resolve"})),
            "missing field `result`",
        ),
        a(
            "action_reassign_unknown_agent",
            "action.reassign",
            action(t1, json!({"kind": "reassign", "agent": "ghost-agent"})),
            "there is no agent \"ghost-agent\"",
        ),
        a(
            "action_routing_key_disagrees",
            "action.close",
            action(t1, json!({"kind": "respond"})),
            "does not match the action \"respond\"",
        ),
    ]
}

async fn publish(h: &Harness, c: &AmqpCase) {
    let mut headers = FieldTable::default();
    headers.insert(CASE.into(), AMQPValue::LongString(c.name.into()));
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_headers(headers);
    if let Some(id) = &c.message_id {
        props = props.with_message_id(id.as_str().into());
    }
    bus::publish_raw(&h.ch, &h.topo().exchange(c.exchange), &c.routing_key, &c.body, props)
        .await
        .unwrap_or_else(|e| panic!("publish {}: {e}", c.name));
}

/// One malformed HTTP request and the status and error code it must get.
struct HttpCase {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

fn http(
    name: &'static str,
    path: &str,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    status: StatusCode,
    code: &'static str,
) -> HttpCase {
    HttpCase {
        name,
        method: "POST",
        path: path.to_owned(),
        content_type,
        body: body.into(),
        status,
        code,
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(manifest_dir().join("tests/fixtures/email").join(name)).expect("fixture")
}

fn call_event(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut v = json!({
        "call_id": "bad-call-1", "caller_number": "+86 138 0013 8000", "line_called": "400-820-1234",
        "started_at": chrono::Utc::now() - chrono::Duration::minutes(5), "ended_at": chrono::Utc::now() - chrono::Duration::minutes(2), "outcome": "answered",
        "transcript": "你好，打印机打不了了",
    });
    change(v.as_object_mut().unwrap());
    serde_json::to_vec(&v).unwrap()
}

fn chat(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut v = json!({
        "session_id": "bad-session", "message_id": "bad-chat-1", "sent_at": chrono::Utc::now(),
        "visitor": {"name": "访客", "phone": "13900001111"}, "text": "付不了款", "platform": "web",
    });
    change(v.as_object_mut().unwrap());
    serde_json::to_vec(&v).unwrap()
}

fn http_cases(t1: &str, t2: &str) -> Vec<HttpCase> {
    use StatusCode as S;
    const JSON: Option<&str> = Some("application/json");
    const MAIL: Option<&str> = Some("message/rfc822");
    let req = "/v1/requests";
    let (phone, chat_path, mail) = ("/v1/channels/phone", "/v1/channels/chat", "/v1/channels/email");
    let mut bad_utf8 = with("h-utf8", |_| {});
    let at = bad_utf8.windows(3).position(|w| w == b"APP").unwrap();
    bad_utf8[at] = 0xC3;
    bad_utf8[at + 1] = 0x28;
    let actions = format!("/v1/tickets/{t1}/actions");
    let t2_actions = format!("/v1/tickets/{t2}/actions");
    let act = |a: Value| serde_json::to_vec(&json!({"actor": "agent:bad-input", "action": a})).unwrap();
    let mut cases = vec![
        http(
            "request_text_plain",
            req,
            Some("text/plain"),
            with("h1", |_| {}),
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        http(
            "request_no_content_type",
            req,
            None,
            with("h2", |_| {}),
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        http(
            "phone_form_urlencoded",
            phone,
            Some("application/x-www-form-urlencoded"),
            "a=b",
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        http(
            "chat_xml",
            chat_path,
            Some("application/xml"),
            "<msg/>",
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        http(
            "email_sent_as_json",
            mail,
            JSON,
            "{}",
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        http(
            "request_malformed_json",
            req,
            JSON,
            "{not json",
            S::BAD_REQUEST,
            "malformed",
        ),
        http(
            "request_truncated_json",
            req,
            JSON,
            r#"{"channel":"app","chan"#,
            S::BAD_REQUEST,
            "malformed",
        ),
        http("request_empty_body", req, JSON, "", S::BAD_REQUEST, "malformed"),
        http("request_invalid_utf8", req, JSON, bad_utf8, S::BAD_REQUEST, "malformed"),
        http(
            "request_json_array",
            req,
            JSON,
            "[]",
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "request_missing_body",
            req,
            JSON,
            with("h3", |m| {
                m.remove("body");
            }),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "request_channel_as_number",
            req,
            JSON,
            with("h4", |m| {
                m.insert("channel".into(), json!(7));
            }),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "request_unknown_channel",
            req,
            JSON,
            with("h5", |m| {
                m.insert("channel".into(), json!("fax"));
            }),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "request_customer_without_contact",
            req,
            JSON,
            with("h6", |m| {
                m.insert("customer".into(), json!({"name": "李雷"}));
            }),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "request_nul_in_body",
            req,
            JSON,
            with("h7", |m| {
                m.insert("body".into(), json!("a\u{0}b"));
            }),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "request_body_over_64_kib",
            req,
            JSON,
            with("h8", |m| {
                m.insert("body".into(), json!("x".repeat(70_000)));
            }),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "request_oversized",
            req,
            JSON,
            vec![b' '; switchboard::contracts::intake::MAX_MESSAGE_BYTES + 1],
            S::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        http(
            "email_garbage_bytes",
            mail,
            MAIL,
            fixture("garbage.eml"),
            S::BAD_REQUEST,
            "malformed",
        ),
        http(
            "email_no_headers",
            mail,
            MAIL,
            fixture("no_headers.eml"),
            S::BAD_REQUEST,
            "malformed",
        ),
        http("email_empty", mail, MAIL, Vec::new(), S::BAD_REQUEST, "malformed"),
        http(
            "email_missing_message_id",
            mail,
            MAIL,
            fixture("missing_message_id.eml"),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "phone_malformed_json",
            phone,
            JSON,
            "{\"call_id\":",
            S::BAD_REQUEST,
            "malformed",
        ),
        http(
            "phone_missing_transcript",
            phone,
            JSON,
            call_event(|m| {
                m.remove("transcript");
            }),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "phone_started_at_not_a_date",
            phone,
            JSON,
            call_event(|m| {
                m.insert("started_at".into(), json!("yesterday"));
            }),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "phone_unknown_outcome",
            phone,
            JSON,
            call_event(|m| {
                m.insert("outcome".into(), json!("exploded"));
            }),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "chat_malformed_json",
            chat_path,
            JSON,
            "{'single': 'quotes'}",
            S::BAD_REQUEST,
            "malformed",
        ),
        http(
            "chat_missing_session",
            chat_path,
            JSON,
            chat(|m| {
                m.remove("session_id");
            }),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "chat_session_with_space",
            chat_path,
            JSON,
            chat(|m| {
                m.insert("session_id".into(), json!("a b"));
            }),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "chat_unknown_visitor_field",
            chat_path,
            JSON,
            chat(|m| {
                m.insert("visitor".into(), json!({"openid": "o-1"}));
            }),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        http(
            "action_malformed_json",
            &actions,
            JSON,
            "{\"actor\":",
            S::BAD_REQUEST,
            "malformed_json",
        ),
        http(
            "action_unknown_kind",
            &actions,
            JSON,
            act(json!({"kind": "teleport"})),
            S::UNPROCESSABLE_ENTITY,
            "invalid_action",
        ),
        http(
            // `actor` is ignored (the key is the actor) but must still be a string.
            "action_actor_not_a_string",
            &actions,
            JSON,
            serde_json::to_vec(&json!({"actor": 5, "action": {"kind": "respond"}})).unwrap(),
            S::UNPROCESSABLE_ENTITY,
            "invalid_action",
        ),
        http(
            "action_close_assigned_ticket",
            &actions,
            JSON,
            act(json!({"kind": "close"})),
            S::CONFLICT,
            "refused",
        ),
        http(
            "action_rate_9",
            &t2_actions,
            JSON,
            act(json!({"kind": "rate", "score": 9})),
            S::CONFLICT,
            "refused",
        ),
        http(
            "action_unknown_ticket",
            "/v1/tickets/209901-99999/actions",
            JSON,
            act(json!({"kind": "respond"})),
            S::NOT_FOUND,
            "not_found",
        ),
    ];
    let get = |name, path: &str, status, code| HttpCase {
        method: "GET",
        ..http(name, path, None, Vec::new(), status, code)
    };
    cases.push(get(
        "ticket_unknown",
        "/v1/tickets/209901-99999",
        S::NOT_FOUND,
        "not_found",
    ));
    // Not a reference at all. (A well-formed reference that was never sent answers 200
    // "accepted": the gateway keeps no record of what it published.)
    cases.push(get(
        "request_garbage_reference",
        "/v1/requests/not-a-reference",
        S::NOT_FOUND,
        "not_found",
    ));
    cases.push(get("unknown_route", "/v1/fax", S::NOT_FOUND, "not_found"));
    // Requests Postgres could never store, or whose clock would cheat the SLA: refused at the
    // edge (a 202 here used to end in a dead letter).
    type Change = Box<dyn FnOnce(&mut serde_json::Map<String, Value>)>;
    let unstorable: [(&'static str, Change); 6] = [
        (
            "request_customer_id_longer_than_an_index_row",
            Box::new(|m| {
                m.insert("customer".into(), json!({"customer_id": "C".repeat(3000)}));
            }),
        ),
        (
            "request_customer_email_longer_than_an_index_row",
            Box::new(|m| {
                m.insert(
                    "customer".into(),
                    json!({"email": format!("{}@x.com", "a".repeat(3000))}),
                );
            }),
        ),
        (
            "request_thread_ref_id_longer_than_an_index_row",
            Box::new(|m| {
                m.insert("thread_ref".into(), json!(format!("<{}@x>", "r".repeat(3000))));
            }),
        ),
        (
            "request_received_at_in_year_9999",
            Box::new(|m| {
                m.insert("received_at".into(), json!("9999-12-31T23:59:59Z"));
            }),
        ),
        (
            "request_received_at_an_hour_ahead_dodges_the_sla",
            Box::new(|m| {
                m.insert(
                    "received_at".into(),
                    json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()),
                );
            }),
        ),
        (
            "request_received_at_backdated_a_month_jumps_the_queue",
            Box::new(|m| {
                m.insert(
                    "received_at".into(),
                    json!((chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339()),
                );
            }),
        ),
    ];
    for (n, (name, change)) in unstorable.into_iter().enumerate() {
        cases.push(http(
            name,
            req,
            JSON,
            with(&format!("h-unstorable-{n}"), change),
            S::UNPROCESSABLE_ENTITY,
            "invalid",
        ));
    }
    cases.push(get(
        "get_on_post_route",
        "/v1/channels/chat",
        S::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    ));
    cases
}

async fn send(router: &Router, key: &str, c: &HttpCase) -> (StatusCode, Value) {
    let mut b = Request::builder()
        .method(c.method)
        .uri(&c.path)
        .header("authorization", format!("Bearer {key}"));
    if let Some(ct) = c.content_type {
        b = b.header("content-type", ct);
    }
    let response = router
        .clone()
        .oneshot(b.body(Body::from(c.body.clone())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Opens a ticket through intake and waits for it to be assigned; returns (id, number).
async fn assigned_ticket(h: &Harness, id: &str, text: &str) -> (i64, String) {
    let body = with(id, |m| {
        m.insert("body".into(), json!(text));
    });
    h.publish_intake("intake.app", id, &body).await;
    let sql = format!("SELECT count(*) FROM tickets WHERE channel_message_id = '{id}' AND state = 'assigned'");
    h.wait_for(&format!("{id} assigned"), Duration::from_secs(30), || async {
        h.count(&sql).await == 1
    })
    .await;
    let client = h.app.db.pool.get().await.unwrap();
    let row = client
        .query_one("SELECT id, number FROM tickets WHERE channel_message_id = $1", &[&id])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_dead_lettered_with_its_reason_or_refused_with_a_4xx() {
    let mut h = Harness::new("badinput").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let router = gateway::router(&h.app, Arc::new(Gateway::new(&h.app)));
    // An admin key: it may both submit requests and act on tickets.
    let key = auth::create(
        &h.app.db,
        &auth::KeySpec::person("bad-input", switchboard::core::access::Role::Admin),
    )
    .await
    .expect("key")
    .1;

    // Two real tickets for the work and action cases: t1 assigned, t2 resolved.
    let (t1_id, t1) = assigned_ticket(&h, "bad-t1", "APP 付款页面一直报错，无法下单").await;
    let (_, t2) = assigned_ticket(&h, "bad-t2", "APP 闪退，登不上去").await;
    let resolve =
        serde_json::to_vec(&json!({"actor": "agent:x", "action": {"kind": "resolve", "result": "fixed"}})).unwrap();
    let resolved = send(
        &router,
        &key,
        &http(
            "setup",
            &format!("/v1/tickets/{t2}/actions"),
            Some("application/json"),
            resolve,
            StatusCode::OK,
            "",
        ),
    )
    .await;
    assert_eq!(resolved.0, StatusCode::OK, "resolve t2: {}", resolved.1);
    assert_eq!(resolved.1["ticket"]["state"], "resolved", "{}", resolved.1);
    let t1_version = h
        .count(&format!("SELECT version::bigint FROM tickets WHERE id = {t1_id}"))
        .await;

    // AMQP: publish the whole corpus.
    let mut cases = intake_cases();
    cases.extend(work_cases((t1_id, &t1)));
    cases.extend(action_cases(&t1, &t2));
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "duplicate case name {}", c.name);
        publish(&h, c).await;
    }

    // HTTP, while the stages work through the AMQP corpus.
    let http_corpus = http_cases(&t1, &t2);
    let mut http_failures = Vec::new();
    let mut http_names = std::collections::HashSet::new();
    for c in &http_corpus {
        assert!(http_names.insert(c.name), "duplicate HTTP case name {}", c.name);
        let (status, body) = send(&router, &key, c).await;
        let message_ok = body["error"]["message"].as_str().is_some_and(|m| !m.is_empty());
        if status != c.status || body["error"]["code"] != c.code || !message_ok {
            http_failures.push(format!(
                "{}: expected {} {}, got {status} {body}",
                c.name, c.status, c.code
            ));
        }
    }
    assert!(http_failures.is_empty(), "HTTP cases:\n{}", http_failures.join("\n"));

    // Every AMQP case, and nothing else, in the dead-letter queue.
    let dq = h.topo().dead_queue();
    let expected = cases.len() as u32;
    h.wait_for("every AMQP case dead-lettered", Duration::from_secs(30), || async {
        h.depth(&dq).await >= expected
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dead = h.drain_queue(&dq).await;
    let mut by_case: HashMap<String, Vec<String>> = HashMap::new();
    for d in &dead {
        let case = header(d, CASE).unwrap_or_else(|| "<no case header>".into());
        let reason = header(d, "x-switchboard-reason").unwrap_or_default();
        by_case.entry(case).or_default().push(reason);
    }
    let mut failures = Vec::new();
    for c in &cases {
        match by_case.remove(c.name).as_deref() {
            Some([reason]) if reason.contains(&c.reason) => {}
            Some(reasons) => failures.push(format!("{}: expected {:?} in {reasons:?}", c.name, c.reason)),
            None => failures.push(format!("{}: not dead-lettered", c.name)),
        }
    }
    for (case, reasons) in &by_case {
        failures.push(format!("unexpected dead letter {case}: {reasons:?}"));
    }
    assert!(failures.is_empty(), "AMQP cases:\n{}", failures.join("\n"));
    assert_eq!(dead.len(), cases.len(), "exactly one dead letter per AMQP case");

    // Nothing changed the real tickets, no worker died, and the pipeline still routes.
    assert_eq!(
        h.count(&format!("SELECT version::bigint FROM tickets WHERE id = {t1_id}"))
            .await,
        t1_version,
        "refused actions left t1 alone"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM tickets").await,
        2,
        "no bad input opened a ticket"
    );
    assert!(
        h.pipeline.as_ref().is_some_and(|p| !p.is_finished()),
        "the pipeline task is still running"
    );
    h.publish_intake("intake.app", "bad-after", &with("bad-after", |_| {}))
        .await;
    h.wait_for("a valid request after the corpus routed", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM tickets WHERE channel_message_id = 'bad-after' AND state IN ('assigned', 'queued')")
            .await
            == 1
    })
    .await;
    assert_eq!(h.depth(&dq).await, 0);
    println!(
        "bad input: {} AMQP cases dead-lettered with reasons, {} HTTP cases refused with 4xx",
        cases.len(),
        http_corpus.len()
    );
    h.cleanup().await;
}
