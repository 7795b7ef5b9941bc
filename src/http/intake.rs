//! Routes and handlers. One handler serves every row of the channel table
//! (`channels::table::NATIVE`): check the key and the format, normalise the body (pure, in
//! `channels`), publish it with a confirm, answer 202 with the reference.
//!
//! Order of checks: the key (401) and its rate (429) before anything is read, the Content-Type
//! (415), then the body under the route's limit (413), then its syntax (400) and fields (422),
//! the key's channel (403), and last the broker (503).

use super::Gateway;
use super::auth::{ApiKey, presented_key};
use super::error::GatewayError;
use super::reference;
use crate::channels::table::{Format, NATIVE, Native};
use crate::contracts::StageName;
use crate::contracts::intake::{IntakeRequest, MAX_MESSAGE_BYTES};
use crate::core::privacy::{mask_email, mask_phone};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

type Shared = Arc<Gateway>;

/// The gateway's routes (without the ticket API, which `super::router` merges in).
pub fn routes(gw: Shared) -> Router {
    let json_limit = gw.settings.json_limit;
    let email_limit = gw.settings.email_limit;
    let mut authenticated = Router::new().route("/v1/requests/{reference}", get(get_request));
    for native in &NATIVE {
        let limit = match native.format {
            Format::Json => json_limit,
            Format::Rfc822 => email_limit,
        };
        let submit = move |State(gw): State<Shared>, Extension(key): Extension<Arc<ApiKey>>, req: Request| async move {
            submit(&gw, &key, native, req).await
        };
        authenticated = authenticated.route(
            &format!("/v1/{}", native.route),
            post(submit).layer(DefaultBodyLimit::max(limit)),
        );
    }
    let authenticated = authenticated.route_layer(middleware::from_fn_with_state(gw.clone(), authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(authenticated)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(gw)
}

/// 401 without a valid key, 429 over its rate; the key goes to the handler as an extension.
pub(crate) async fn authenticate(State(gw): State<Shared>, mut req: Request, next: Next) -> Response {
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| super::auth::client_address(c.0.ip(), forwarded, &gw.trusted_proxies));
    let key = match gw.keys.authenticate(presented_key(req.headers()), client).await {
        Ok(key) => key,
        Err(e) => return refuse(e, None),
    };
    if let Err(e) = gw.limiter.check(&key) {
        return refuse(e, Some(&key));
    }
    req.extensions_mut().insert(key);
    next.run(req).await
}

/// Logs a refusal without its message (which can quote the customer's contact details) and
/// turns it into the response.
fn refuse(e: GatewayError, key: Option<&ApiKey>) -> Response {
    let status = e.status();
    metrics::counter!("switchboard_gateway_requests_total", "channel" => "-", "status" => status.as_str().to_owned())
        .increment(1);
    if status.is_server_error() {
        tracing::warn!(
            code = e.code(),
            status = status.as_u16(),
            key = key.map(|k| k.id.as_str()),
            "request refused"
        );
    } else {
        tracing::info!(
            code = e.code(),
            status = status.as_u16(),
            field = e.field(),
            key = key.map(|k| k.id.as_str()),
            "request refused"
        );
    }
    e.into_response()
}

/// What a 202 says.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub reference: String,
    pub status_url: String,
    pub channel: String,
    pub channel_message_id: String,
}

/// The Content-Type's media type, lower-case, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
}

/// The Content-Type a format needs: `application/json` (and structured-syntax variants such
/// as `application/vnd.x+json`), or `message/rfc822`.
fn require(format: Format, headers: &HeaderMap) -> Result<(), GatewayError> {
    let got = media_type(headers);
    let (ok, expected) = match (format, got.as_deref()) {
        (Format::Json, Some(m)) => (
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")),
            "application/json",
        ),
        (Format::Json, None) => (false, "application/json"),
        (Format::Rfc822, m) => (m == Some("message/rfc822"), "message/rfc822"),
    };
    if ok {
        Ok(())
    } else {
        Err(GatewayError::UnsupportedMediaType { expected, got })
    }
}

/// The body, under the limit the route's `DefaultBodyLimit` layer set.
async fn body(req: Request, limit: usize) -> Result<Bytes, GatewayError> {
    // A declared length over the limit is refused before a byte is read.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::TooLarge { limit });
    }
    Bytes::from_request(req, &()).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            GatewayError::TooLarge { limit }
        } else {
            GatewayError::Malformed {
                message: format!("cannot read the request body: {rejection}"),
                field: None,
            }
        }
    })
}

/// `POST /v1/<route>` for every row of the channel table: the key may submit for the
/// channel, the body is in the channel's format and under its limit, the channel's normaliser
/// turns it into a request; then the shared validation, publish and answer.
async fn submit(gw: &Gateway, key: &ApiKey, native: &'static Native, req: Request) -> Response {
    let started = Instant::now();
    // The client's trace, if it sends one: the request's spans and messages continue it.
    let incoming = req
        .headers()
        .get(crate::contracts::outgoing::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let result = async {
        let principal = key.principal();
        if let Some(channel) = native.channel {
            principal.may_submit(channel)?;
        }
        require(native.format, req.headers())?;
        let limit = match native.format {
            Format::Json => gw.settings.json_limit,
            Format::Rfc822 => gw.settings.email_limit,
        };
        let bytes = body(req, limit).await?;
        let now = chrono::Utc::now();
        let mut request = if native.heavy {
            // Parsing a large MIME message is CPU work: keep it off the I/O threads.
            tokio::task::spawn_blocking(move || (native.normalize)(&bytes, now))
                .await
                .map_err(|e| GatewayError::Internal(format!("{} normaliser: {e}", native.route)))??
        } else {
            (native.normalize)(&bytes, now)?
        };
        if native.channel.is_none() {
            principal.may_submit(&request.channel)?;
        }
        // Who submitted it is the gateway's to say, never the body's.
        request.submitted_by = Some(key.id.clone());
        Ok(request)
    }
    .await;
    finish(gw, key, result, started, incoming.as_deref()).await
}

/// Validates against the policy, publishes with confirm and answers 202, or refuses.
async fn finish(
    gw: &Gateway,
    key: &ApiKey,
    normalized: Result<IntakeRequest, GatewayError>,
    started: Instant,
    traceparent: Option<&str>,
) -> Response {
    match accept(gw, normalized, traceparent).await {
        Ok(accepted) => {
            let elapsed = started.elapsed();
            metrics::counter!("switchboard_gateway_requests_total", "channel" => accepted.channel.clone(), "status" => "202")
                .increment(1);
            metrics::histogram!("switchboard_gateway_accept_seconds", "channel" => accepted.channel.clone())
                .record(elapsed.as_secs_f64());
            tracing::info!(
                reference = %accepted.reference,
                channel = %accepted.channel,
                key = %key.id,
                ms = %format_args!("{:.2}", elapsed.as_secs_f64() * 1000.0),
                "request accepted"
            );
            let location = accepted.status_url.clone();
            (StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(accepted)).into_response()
        }
        Err(e) => refuse(e, Some(key)),
    }
}

async fn accept(
    gw: &Gateway,
    normalized: Result<IntakeRequest, GatewayError>,
    traceparent: Option<&str>,
) -> Result<Accepted, GatewayError> {
    let request = normalized?;
    request.validate(&gw.channels)?;
    request.validate_record(&gw.record)?;
    request.check_clock(chrono::Utc::now(), gw.settings.max_backdate, gw.settings.max_ahead)?;
    let payload = serde_json::to_vec(&request).map_err(|e| GatewayError::Internal(e.to_string()))?;
    // The intake stage refuses anything larger; refuse it here, where the client can still fix it.
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(GatewayError::TooLarge {
            limit: MAX_MESSAGE_BYTES,
        });
    }
    let reference = reference::encode(&request.channel, &request.channel_message_id);
    tracing::debug!(
        reference = %reference,
        channel = %request.channel,
        phone = request.customer.phone.as_deref().map(mask_phone),
        email = request.customer.email.as_deref().map(mask_email),
        "publishing"
    );
    let work = crate::runtime::trace::start(
        crate::runtime::trace::Kind::Publish,
        StageName::Intake.as_str(),
        &request.channel_message_id,
        traceparent,
    );
    gw.publisher
        .publish_traced(
            &request.channel,
            &request.channel_message_id,
            &payload,
            work.traceparent.as_deref(),
        )
        .instrument(work.span.clone())
        .await
        .map_err(|e| {
            tracing::warn!(reference = %reference, channel = %request.channel, error = %e, "not accepted: broker");
            GatewayError::Unavailable(format!("the message broker did not take the request ({e})"))
        })?;
    Ok(Accepted {
        status_url: reference::status_url(&reference),
        reference,
        channel: request.channel,
        channel_message_id: request.channel_message_id,
    })
}

/// What `GET /v1/requests/{reference}` says.
#[derive(Debug, Serialize)]
pub struct RequestStatus {
    pub reference: String,
    pub channel: String,
    pub channel_message_id: String,
    /// `accepted` (on the broker, no ticket yet) or `ticketed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TicketRef>,
}

#[derive(Debug, Serialize)]
pub struct TicketRef {
    pub number: String,
    pub state: String,
    /// Whether this request opened the ticket (`false`: it was appended to an existing one).
    pub opened_by_request: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// `GET /v1/requests/{reference}`: the ticket once intake has stored the request.
async fn get_request(
    State(gw): State<Shared>,
    Extension(key): Extension<Arc<ApiKey>>,
    Path(reference): Path<String>,
) -> Response {
    match lookup(&gw, &key, &reference).await {
        Ok(status) => Json(status).into_response(),
        Err(e) => refuse(e, Some(&key)),
    }
}

async fn lookup(gw: &Gateway, key: &ApiKey, reference: &str) -> Result<RequestStatus, GatewayError> {
    let not_found = || GatewayError::NotFound(format!("{reference:?} is not a request reference"));
    let (channel, channel_message_id) = reference::decode(reference).ok_or_else(not_found)?;
    let principal = key.principal();
    // Before intake stores it nobody can tell whose it is, and "accepted" tells nothing.
    principal.may_read_request(&channel, Some(&key.id))?;
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "request status look-up failed");
        GatewayError::Unavailable("the ticket store is unavailable".into())
    };
    let ticket = crate::store::tickets::of_request(&gw.db, &channel, &channel_message_id)
        .await
        .map_err(|e| unavailable(&e))?;
    if let Some(t) = &ticket {
        principal.may_read_request(&channel, t.submitted_by.as_deref())?;
    }
    let ticket = ticket.map(|t| TicketRef {
        number: t.number,
        state: t.state,
        opened_by_request: t.opened_by_request,
        category: t.category,
        priority: t.priority,
        team: t.team,
    });
    Ok(RequestStatus {
        reference: reference.to_owned(),
        channel,
        channel_message_id,
        status: if ticket.is_some() { "ticketed" } else { "accepted" },
        ticket,
    })
}

/// Liveness: the process answers.
async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Readiness: the broker takes publishes and the database answers (keys, status look-ups).
/// One check at a time and at most one a second: callers in between get the last answer.
async fn readyz(State(gw): State<Shared>) -> Response {
    let mut last = gw.readiness.lock().await;
    if let Some((at, ok, body)) = last.as_ref()
        && at.elapsed() < std::time::Duration::from_secs(1)
    {
        let status = if *ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return (status, Json(body.clone())).into_response();
    }
    let broker = gw.publisher.ready().await.map_err(|e| e.to_string());
    let database = gw.db.ping().await.map_err(|_| "unreachable".to_owned());
    let status = if broker.is_ok() && database.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let describe = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.clone(),
    };
    let body = serde_json::json!({"broker": describe(&broker), "database": describe(&database)});
    // The gateway's metrics port has no readiness of its own: this answer is its readiness.
    metrics::gauge!("switchboard_ready").set(if status == StatusCode::OK { 1.0 } else { 0.0 });
    *last = Some((Instant::now(), status == StatusCode::OK, body.clone()));
    (status, Json(body)).into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    GatewayError::MethodNotAllowed(format!("{} is not allowed on {}", req.method(), req.uri().path())).into_response()
}

/// Unknown paths get the same JSON error body as everything else.
pub async fn not_found(req: Request) -> Response {
    GatewayError::NotFound(format!("no route for {} {}", req.method(), req.uri().path())).into_response()
}
