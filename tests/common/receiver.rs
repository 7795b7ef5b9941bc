//! A webhook receiver over real HTTP on 127.0.0.1: records every request as a [`Hit`] (checking
//! its Standard Webhooks signature when it was given a secret) and answers 500 to the first
//! `fail_first` attempts of each `webhook-id`, then 204; or always the status set with
//! [`Receiver::set_status`]. Stops when dropped.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard::outbound::signing;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub path: String,
    /// The signature verified against the receiver's secret (false without a secret).
    pub verified: bool,
    /// The status it was answered with.
    pub answered: u16,
}

#[derive(Default)]
struct State {
    hits: Vec<Hit>,
    attempts: HashMap<String, u32>,
    status: Option<u16>,
}

pub struct Receiver {
    pub port: u16,
    secret: Option<String>,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

/// How far a `webhook-timestamp` may be from the receiver's clock.
const TOLERANCE_S: i64 = 300;

impl Receiver {
    pub async fn start(secret: Option<String>, fail_first: u32) -> Receiver {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let port = listener.local_addr().expect("the receiver's address").port();
        let (s, key) = (state.clone(), secret.clone());
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let (state, secret) = (s.clone(), key.clone());
            async move { answer(&state, secret.as_deref(), fail_first, uri, &headers, body) }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            port,
            secret,
            state,
            task,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.state.lock().expect("receiver state").hits.clone()
    }

    /// Answer every request with `status` from now on (410, 500, …).
    pub fn set_status(&self, status: u16) {
        self.state.lock().expect("receiver state").status = Some(status);
    }

    /// Waits until the hits so far satisfy `pred` and returns them; panics after `timeout`.
    pub async fn wait_for(&self, pred: impl Fn(&[Hit]) -> bool, timeout: Duration) -> Vec<Hit> {
        let start = Instant::now();
        loop {
            let hits = self.hits();
            if pred(&hits) {
                return hits;
            }
            if start.elapsed() > timeout {
                panic!("receiver: condition not met after {timeout:?}; hits: {hits:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(
    state: &Mutex<State>,
    secret: Option<&str>,
    fail_first: u32,
    uri: Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let verified = secret.is_some_and(|secret| {
        signing::verify(
            secret,
            id.as_deref().unwrap_or_default(),
            timestamp.as_deref().unwrap_or_default(),
            signature.as_deref().unwrap_or_default(),
            &body,
            chrono::Utc::now().timestamp(),
            TOLERANCE_S,
        )
        .is_ok()
    });
    let mut state = state.lock().expect("receiver state");
    let attempt = {
        let n = state.attempts.entry(id.clone().unwrap_or_default()).or_default();
        *n += 1;
        *n
    };
    let answered = state.status.unwrap_or(if attempt <= fail_first { 500 } else { 204 });
    state.hits.push(Hit {
        id,
        timestamp,
        signature,
        content_type: header("content-type"),
        body: body.to_vec(),
        path: uri.path().to_owned(),
        verified,
        answered,
    });
    StatusCode::from_u16(answered).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
