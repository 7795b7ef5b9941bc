//! The gateway's HTTP server: an accept loop with the limits a public endpoint needs, which
//! `axum::serve` does not have.
//!
//! - **Connections** are capped (`gateway_max_connections`): past the cap a new connection is
//!   closed at once, so thousands of idle sockets cannot exhaust file descriptors.
//! - **Headers** must arrive within `gateway_header_timeout_ms` (slow-loris), which also ends a
//!   keep-alive connection that sends nothing.
//! - **Requests** must finish within `gateway_request_timeout_ms` (a body trickled in a byte at
//!   a time): 408.
//! - **In flight**: past `gateway_max_in_flight` requests at once, a request is answered 503
//!   with `Retry-After` at once instead of queueing behind the others.
//!
//! Shutdown stops accepting, lets each connection finish its request (hyper's graceful
//! shutdown), and gives up after the grace period.

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// The server's limits, from `Settings`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_in_flight: usize,
    /// How long shutdown waits for open connections.
    pub grace: Duration,
}

impl Limits {
    pub fn from_settings(s: &crate::config::Settings) -> Limits {
        Limits {
            max_connections: s.gateway_max_connections.max(1),
            header_timeout: Duration::from_millis(s.gateway_header_timeout_ms.max(1)),
            request_timeout: Duration::from_millis(s.gateway_request_timeout_ms.max(1)),
            max_in_flight: s.gateway_max_in_flight.max(1),
            grace: Duration::from_millis(s.shutdown_grace_ms.max(1)),
        }
    }
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// The request deadline and the in-flight cap, as a layer on the whole router.
pub fn limit(router: Router, limits: Limits) -> Router {
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    router.layer(axum::middleware::from_fn_with_state(
        (in_flight, limits.request_timeout),
        guard,
    ))
}

async fn guard(State((in_flight, deadline)): State<(Arc<Semaphore>, Duration)>, req: Request, next: Next) -> Response {
    let Ok(_permit) = in_flight.try_acquire() else {
        metrics::counter!("switchboard_gateway_shed_total").increment(1);
        let mut r = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the gateway is at its limit of requests in flight; retry shortly",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        return r;
    };
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("switchboard_gateway_timeouts_total").increment(1);
            let mut r = json_error(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                &format!(
                    "the request did not complete within {} ms; send the whole body promptly",
                    deadline.as_millis()
                ),
            );
            r.headers_mut()
                .insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            r
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, under `limits`. Each request carries the
/// peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, shutdown: CancellationToken) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept: keep going.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            metrics::counter!("switchboard_gateway_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(Body::new))
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, peer = %peer, "connection ended");
                    }
                    return;
                }
                _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, peer = %peer, "connection ended during shutdown");
            }
        });
    }
    tracker.close();
    if tokio::time::timeout(limits.grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            open = tracker.len(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
}
