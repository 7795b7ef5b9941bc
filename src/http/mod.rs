//! The HTTP intake gateway: the front door for channel integrations that do not publish to
//! RabbitMQ themselves.
//!
//! `POST /v1/requests` (intake JSON), `/v1/channels/email` (raw RFC 5322), `/v1/channels/phone`
//! (call events), `/v1/channels/chat` (chat messages): each is authenticated by an API key
//! (`auth`), normalised by the pure functions of `normalize`, published on the intake exchange
//! with a publisher confirm (`publish`), and answered 202 with a reference (`reference`) only
//! once the broker holds the message. `GET /v1/requests/{reference}` tells the ticket once the
//! intake stage has stored it. The contract is `schemas/openapi.yaml`.
//!
//! The gateway holds no request state: any number of copies can run behind a load balancer
//! (each with its own rate-limit buckets). It also serves the ticket API (`crate::http::api`) and the
//! live operations dashboard (`dashboard`).

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod desk;
pub mod error;
pub mod follow_ups;
pub mod intake;
pub mod oidc;
pub mod reference;
pub mod server;
pub mod stream;
pub mod surveys;
pub mod work;

pub use error::GatewayError;

use crate::runtime::Services;
use crate::store::Db;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The gateway's limits and timings, from `Settings`.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub json_limit: usize,
    pub email_limit: usize,
    /// The window around the gateway's clock a request's `received_at` must fall in.
    pub max_backdate: chrono::Duration,
    pub max_ahead: chrono::Duration,
}

/// Everything a request handler needs, shared by all of them.
pub struct Gateway {
    pub settings: GatewaySettings,
    /// Channels the policy knows (a request for any other is refused with 422).
    pub channels: Vec<String>,
    /// The service record's custom fields, which an intake request's `record` is checked against.
    pub record: crate::core::record::RecordPolicy,
    pub db: Db,
    pub keys: auth::KeyCache,
    pub limiter: auth::RateLimiter,
    /// Proxies whose `X-Forwarded-For` names the client (for the per-address key-spray limit).
    pub trusted_proxies: Vec<auth::IpBlock>,
    pub publisher: crate::bus::publisher::Publisher,
    /// The last readiness answer: `/readyz` asks the broker and the database at most once a
    /// second, however often it is polled, so it cannot take the connections key checks need.
    pub readiness: tokio::sync::Mutex<Option<(std::time::Instant, bool, serde_json::Value)>>,
    /// Ticket changes for the desks' live streams (`GET /v1/stream`).
    pub feed: Arc<stream::Feed>,
}

/// A setting in seconds as a duration; one too large to represent is no limit.
fn seconds(s: u64) -> chrono::Duration {
    i64::try_from(s)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .unwrap_or(chrono::Duration::MAX)
}

impl Gateway {
    pub fn new(app: &Services) -> Gateway {
        let s = &app.settings;
        Gateway {
            settings: GatewaySettings {
                json_limit: s.gateway_max_json_bytes.max(1),
                email_limit: s
                    .gateway_max_email_bytes
                    .clamp(1, crate::channels::email::MAX_RAW_EMAIL_BYTES),
                max_backdate: seconds(s.gateway_max_backdate_s),
                max_ahead: seconds(s.gateway_max_ahead_s),
            },
            channels: app.policy.doc.channels.clone(),
            record: app.policy.doc.record.clone(),
            db: app.db.clone(),
            keys: auth::KeyCache::with_miss_limit(
                app.db.clone(),
                Duration::from_millis(s.gateway_key_cache_ms),
                s.gateway_auth_misses_per_sec.max(1),
                s.gateway_auth_misses_per_sec.max(1).saturating_mul(2),
            )
            .with_oidc(oidc_verifier(s)),
            limiter: auth::RateLimiter::new(s.gateway_rate_per_sec, s.gateway_rate_burst),
            trusted_proxies: auth::IpBlock::parse_list(&s.gateway_trusted_proxies),
            publisher: crate::bus::publisher::Publisher::new(
                s.amqp_urls(),
                app.topo.clone(),
                s.gateway_channels,
                Duration::from_millis(s.gateway_publish_timeout_ms.max(1)),
            ),
            readiness: tokio::sync::Mutex::new(None),
            feed: stream::Feed::new(s.amqp_urls(), app.topo.clone()),
        }
    }
}

/// The SSO verifier the settings ask for. A broken SSO configuration is logged and SSO stays
/// off (tokens are refused), rather than keeping every key and user token from working.
fn oidc_verifier(s: &crate::config::Settings) -> Option<Arc<oidc::Verifier>> {
    match oidc::Verifier::from_settings(s) {
        Ok(v) => v.map(Arc::new),
        Err(e) => {
            tracing::error!(error = %e, "single sign-on is misconfigured and stays off; fix the oidc_* settings");
            None
        }
    }
}

/// The whole HTTP surface: intake routes, health checks, the ticket API and the dashboard.
pub fn router(app: &Services, gateway: Arc<Gateway>) -> Router {
    // The ticket API shows full contact details: it sits behind the same API keys.
    let people = api::routes()
        .merge(work::routes())
        .merge(follow_ups::routes())
        .with_state(api::ApiState::new(app.clone()))
        .merge(stream::router(gateway.feed.clone()));
    let tickets = people.route_layer(axum::middleware::from_fn_with_state(
        gateway.clone(),
        intake::authenticate,
    ));
    // The dashboard shows counts and ticket numbers only, no personal data: no key needed.
    intake::routes(gateway)
        .merge(tickets)
        .merge(dashboard::router(app.clone()))
        .merge(surveys::router(app.clone()))
        .merge(desk::router())
        .fallback(intake::not_found)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves on `listener` until `shutdown`, then lets in-flight requests finish (each one ends in
/// its confirm or its publish timeout) and closes the broker connection.
pub async fn serve(app: &Services, listener: TcpListener, shutdown: CancellationToken) -> Result<(), ServeError> {
    let gateway = Arc::new(Gateway::new(app));
    // Connect now so the first request does not pay for it; an outage here is not fatal, the
    // gateway answers 503 and reconnects on its own.
    if let Err(e) = gateway.publisher.ready().await {
        tracing::warn!(error = %e, "gateway starting without RabbitMQ; requests get 503 until it is back");
    }
    // Live streams never finish on their own: end them when shutdown begins, so connections
    // close within the grace period.
    let feed_stop = gateway.feed.stop.clone();
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        feed_stop.cancel();
    });
    let limits = server::Limits::from_settings(&app.settings);
    let service = server::limit(router(app, gateway.clone()), limits);
    server::serve(listener, service, limits, shutdown).await;
    gateway.publisher.close().await;
    Ok(())
}

/// Binds `listen` (`host:port`) and serves until `shutdown`.
pub async fn run(app: &Services, listen: &str, shutdown: CancellationToken) -> Result<(), ServeError> {
    let listener = TcpListener::bind(listen).await.map_err(|source| ServeError::Bind {
        addr: listen.to_owned(),
        source,
    })?;
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| listen.to_owned());
    tracing::info!(listen = %local, policy = app.policy.version(), "gateway listening");
    serve(app, listener, shutdown).await?;
    tracing::info!("gateway stopped cleanly");
    Ok(())
}
