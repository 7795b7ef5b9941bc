//! Distributed tracing (`runtime::trace`): one request's trace runs through four stage
//! processes and reaches an OTLP/HTTP receiver run by the test; the ledger keeps each output's
//! trace context, so a redelivery re-publishes the trace the first run published in.

use crate::common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use common::process::{sigterm, spawn_bin, wait_exit};
use common::{Harness, inbound, run_once};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard::bus;
use switchboard::contracts::{Exchange, Outgoing};
use switchboard::runtime::runner::Outcome;
use switchboard::stages::intake::Intake;
use switchboard_tools::demo::{Kind, traffic};

/// The trace the test's client is in: trace id, then the client's span id.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn client_traceparent() -> String {
    format!("00-{TRACE_ID}-{CLIENT_SPAN}-01")
}

/// One exported span, as the receiver decoded it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    parent_span_id: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
async fn otlp_receiver() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
    async fn traces(State(spans): State<Arc<Mutex<Vec<Received>>>>, body: Bytes) -> impl IntoResponse {
        let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export request");
        let mut got = spans.lock().unwrap();
        for rs in request.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.clone())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s,
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                got.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    parent_span_id: hex(&span.parent_span_id),
                });
            }
        }
        (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            ExportTraceServiceResponse::default().encode_to_vec(),
        )
    }
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_requests_spans_across_four_stage_processes_share_its_trace() {
    let h = Harness::new("traces").await;
    h.import_sample_roster().await;
    let events = h.event_queue("ticket.#").await;
    let (otlp_port, spans) = otlp_receiver().await;

    let env = [
        ("SWITCHBOARD_OTLP_ENDPOINT", format!("http://127.0.0.1:{otlp_port}")),
        // Export within a fifth of a second rather than the SDK's 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
    ];
    let mut workers = Vec::new();
    for bin in [
        env!("CARGO_BIN_EXE_switchboard-intake"),
        env!("CARGO_BIN_EXE_switchboard-classify"),
        env!("CARGO_BIN_EXE_switchboard-prioritize"),
        env!("CARGO_BIN_EXE_switchboard-assign"),
    ] {
        workers.push(spawn_bin(bin, &h.app.settings, &["--concurrency", "1"], &env));
    }

    // A channel integration publishes one request inside its own trace.
    let p = traffic("traces", 0..5, false, chrono::Utc::now())
        .into_iter()
        .find(|p| p.kind == Kind::New)
        .expect("a request that opens a ticket");
    let mut headers = FieldTable::default();
    headers.insert("traceparent".into(), AMQPValue::LongString(client_traceparent().into()));
    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(p.message_id.as_str().into())
        .with_headers(headers);
    bus::publish_raw(
        &h.ch,
        &h.topo().exchange(Exchange::Intake),
        &p.routing_key,
        &p.payload,
        props,
    )
    .await
    .expect("publish");

    h.wait_for("the ticket routed", Duration::from_secs(60), || async {
        h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned','queued')")
            .await
            == 1
    })
    .await;

    let services = [
        "switchboard-intake",
        "switchboard-classify",
        "switchboard-prioritize",
        "switchboard-assign",
    ];
    let start = Instant::now();
    let seen = loop {
        let seen: BTreeSet<String> = spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == TRACE_ID && s.name.starts_with("process "))
            .map(|s| s.service.clone())
            .collect();
        if services.iter().all(|s| seen.contains(*s)) || start.elapsed() > Duration::from_secs(30) {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let all = spans.lock().unwrap().clone();
    assert_eq!(
        seen,
        services.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
        "every stage process exported its span in the request's trace; received: {all:#?}"
    );
    // The intake stage's span is the client's child; each later stage's span has a parent of
    // its own in the same trace (the previous stage's).
    let of = |service: &str| {
        all.iter()
            .find(|s| s.service == service && s.trace_id == TRACE_ID && s.name.starts_with("process "))
            .cloned()
            .unwrap()
    };
    assert_eq!(of("switchboard-intake").parent_span_id, CLIENT_SPAN);
    assert_eq!(of("switchboard-intake").name, "process intake");
    for s in &services[1..] {
        let span = of(s);
        assert!(
            !span.parent_span_id.is_empty() && span.parent_span_id != CLIENT_SPAN,
            "{span:?}"
        );
    }
    // Batches are spans of their own, linked to the messages they carried.
    assert!(all.iter().any(|s| s.name == "batch"), "{all:#?}");

    // Every event carries the trace: as a header and as the CloudEvents extension attribute.
    let published = h.drain_queue(&events).await;
    assert!(
        published.len() >= 4,
        "received, classified, prioritized, assigned/queued"
    );
    for m in &published {
        let body: serde_json::Value = serde_json::from_slice(&m.delivery.data).unwrap();
        let attribute = body["traceparent"].as_str().unwrap_or_default();
        assert!(attribute.starts_with(&format!("00-{TRACE_ID}-")), "{body}");
        assert_eq!(common::header(m, "traceparent").as_deref(), Some(attribute));
    }

    for w in &workers {
        sigterm(w);
    }
    for w in &mut workers {
        assert!(wait_exit(w, Duration::from_secs(30)).await.success());
    }
    h.cleanup().await;
}

fn outputs(o: &Outcome) -> Vec<Outgoing> {
    match o {
        Outcome::Done(x) | Outcome::Duplicate(x) => x.clone(),
        other => panic!("unexpected outcome {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_message_republishes_its_outputs_in_the_original_trace() {
    let h = Harness::new("trace-redeliver").await;
    let intake = Intake { ctx: h.app.context() };
    let now = chrono::Utc::now().to_rfc3339();
    let body = format!(
        r#"{{"channel":"app","channel_message_id":"t1","received_at":"{now}","customer":{{"customer_id":"C1"}},"body":"付款页面一直报错，付不了款"}}"#
    );
    let mut msg = inbound("intake.app", "t1", body.into_bytes());
    msg.traceparent = Some(client_traceparent());

    let first = run_once(&h, &intake, std::slice::from_ref(&msg)).await;
    assert!(matches!(first[0], Outcome::Done(_)), "{first:?}");
    let out = outputs(&first[0]);
    assert_eq!(
        out.len(),
        2,
        "the received event and the classify work message: {out:?}"
    );
    for o in &out {
        assert_eq!(o.traceparent(), Some(client_traceparent().as_str()), "{o:?}");
    }
    let event = out.iter().find(|o| o.exchange == Exchange::Events).unwrap();
    assert_eq!(event.body.value()["traceparent"], client_traceparent());

    // Redelivered in another context (the first run's span is gone with its process): the
    // ledger's outputs keep the trace they were first published in.
    msg.traceparent = Some("00-11111111111111111111111111111111-2222222222222222-01".into());
    let again = run_once(&h, &intake, std::slice::from_ref(&msg)).await;
    assert!(matches!(again[0], Outcome::Duplicate(_)), "{again:?}");
    assert_eq!(outputs(&again[0]), out);
    msg.traceparent = None;
    let third = run_once(&h, &intake, std::slice::from_ref(&msg)).await;
    assert_eq!(outputs(&third[0]), out);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_passes_the_http_requests_traceparent_to_the_intake_message() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use switchboard::http::{self as gateway, Gateway, auth};
    use tower::ServiceExt;

    let h = Harness::new("trace-gateway").await;
    let router = gateway::router(&h.app, Arc::new(Gateway::new(&h.app)));
    let key = auth::create_key(&h.app.db, "test", None, None, None)
        .await
        .expect("create key")
        .1;
    // This process exports nothing (no OTLP pipeline in the test binary): the gateway passes a
    // well-formed traceparent on as it came, drops a malformed one, and invents none.
    for (id, traceparent) in [
        ("gw-traced", Some(client_traceparent())),
        ("gw-malformed", Some("00-not-a-trace-01".to_owned())),
        ("gw-untraced", None),
    ] {
        let body = serde_json::json!({
            "channel": "app",
            "channel_message_id": id,
            "received_at": chrono::Utc::now(),
            "customer": {"customer_id": "C-7"},
            "body": "付款页面一直报错",
        });
        let mut request = Request::builder()
            .method("POST")
            .uri("/v1/requests")
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json");
        if let Some(tp) = &traceparent {
            request = request.header("traceparent", tp);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{id}");
    }
    let published = h.drain_queue(&h.topo().queue("intake")).await;
    let header_of = |id: &str| {
        let m = published
            .iter()
            .find(|m| m.delivery.properties.message_id().as_ref().map(|s| s.as_str()) == Some(id))
            .unwrap_or_else(|| panic!("{id} was published"));
        common::header(m, "traceparent")
    };
    assert_eq!(header_of("gw-traced"), Some(client_traceparent()));
    assert_eq!(header_of("gw-malformed"), None);
    assert_eq!(header_of("gw-untraced"), None);
    h.cleanup().await;
}
