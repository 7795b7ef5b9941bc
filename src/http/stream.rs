//! Live updates for the desk: `GET /v1/stream`, a server-sent events stream of the ticket
//! changes the principal may read, fed from the events exchange.
//!
//! Each gateway process holds one feed: an exclusive, auto-deleted queue bound to every event
//! (`#`), consumed without acks (a live view, not a record: a desk that reconnects re-reads
//! the list), fanned out in memory to every open stream, each filtered by its principal
//! (`core::access`). The feed connects on the first subscriber and closes when the last one
//! has gone, so a gateway nobody watches holds no queue. A stream that falls behind gets a
//! `resync` event (re-read what you show) instead of unbounded buffering; the broker side is
//! bounded too (`x-max-length`, oldest dropped). Streams are counted per principal and per
//! gateway (429 past either), and each ends after [`STREAM_LIFETIME`]: the desk reconnects, and
//! its credential is checked again.

use crate::bus::Topology;
use crate::contracts::Exchange;
use crate::core::access::{Principal, TicketFacts};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Events buffered per stream before it is told to resync.
const PER_STREAM_BUFFER: usize = 1024;
/// Events the broker holds for this gateway before dropping the oldest.
const BROKER_BUFFER: i64 = 10_000;
/// How often an idle feed checks whether anyone still listens.
const IDLE_CHECK: Duration = Duration::from_secs(10);
/// Streams one principal may hold open at once (a desk needs one; a few tabs are fine).
pub const STREAMS_PER_PRINCIPAL: usize = 8;
/// Streams one gateway holds open at once: the rest of its connections stay for intake.
pub const STREAMS_PER_GATEWAY: usize = 2_000;
/// A stream ends after this long and the desk reconnects: its credential is checked again
/// (a disabled user or a revoked key stops receiving within this time).
pub const STREAM_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// One change, as streams filter and send it.
#[derive(Debug, Clone)]
pub struct Change {
    pub team: Option<String>,
    pub assignee: Option<String>,
    /// The SSE `data:` line: `{type, number, event, ticket}`.
    pub data: String,
}

impl Change {
    /// The change a CloudEvents ticket event describes; `None` for anything else.
    pub fn of_event(body: &[u8]) -> Option<Change> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let ticket = v.pointer("/data/ticket")?.clone();
        let number = ticket.get("number")?.as_str()?.to_owned();
        let kind = v.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
        let event = kind
            .strip_prefix("switchboard.")
            .and_then(|k| k.strip_suffix(".v1"))
            .map(|k| k.strip_prefix("ticket.").unwrap_or(k))
            .unwrap_or(&kind)
            .to_owned();
        let team = ticket.get("team").and_then(Value::as_str).map(str::to_owned);
        let assignee = ticket.get("assignee").and_then(Value::as_str).map(str::to_owned);
        let data = json!({ "type": kind, "number": number, "event": event, "ticket": ticket }).to_string();
        Some(Change { team, assignee, data })
    }

    /// Whether `p` may see this change.
    pub fn visible_to(&self, p: &Principal<'_>) -> bool {
        p.may_read(&TicketFacts {
            team: self.team.as_deref(),
            assignee: self.assignee.as_deref(),
            ..Default::default()
        })
        .is_ok()
    }
}

/// The gateway's feed of changes.
pub struct Feed {
    urls: Vec<String>,
    topo: Topology,
    sender: broadcast::Sender<Arc<Change>>,
    running: Mutex<bool>,
    /// Open streams per principal (key or user id).
    open: Mutex<std::collections::HashMap<String, usize>>,
    /// Cancelled when the gateway shuts down: every stream ends, so connections can close.
    pub stop: CancellationToken,
}

/// An open stream's place in the counts; given back when the stream ends.
pub struct Slot {
    feed: Arc<Feed>,
    principal: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.feed.open.lock()
            && let Some(n) = open.get_mut(&self.principal)
        {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.principal);
            }
        }
    }
}

impl Feed {
    pub fn new(urls: Vec<String>, topo: Topology) -> Arc<Feed> {
        let (sender, _) = broadcast::channel(PER_STREAM_BUFFER);
        Arc::new(Feed {
            urls,
            topo,
            sender,
            running: Mutex::new(false),
            open: Mutex::new(std::collections::HashMap::new()),
            stop: CancellationToken::new(),
        })
    }

    /// A place for one more stream of `principal`, or why not.
    pub fn admit(self: &Arc<Self>, principal: &str) -> Result<Slot, &'static str> {
        let mut open = self.open.lock().map_err(|_| "the stream table is poisoned")?;
        if open.values().sum::<usize>() >= STREAMS_PER_GATEWAY {
            return Err("this gateway holds as many live streams as it serves; retry shortly or use another gateway");
        }
        let mine = open.entry(principal.to_owned()).or_insert(0);
        if *mine >= STREAMS_PER_PRINCIPAL {
            return Err("too many live streams open with this credential; close one (a desk needs one)");
        }
        *mine += 1;
        Ok(Slot {
            feed: self.clone(),
            principal: principal.to_owned(),
        })
    }

    /// A receiver of every change from now on; starts the feed if it is not running.
    pub fn subscribe(self: &Arc<Self>) -> broadcast::Receiver<Arc<Change>> {
        let rx = self.sender.subscribe();
        let start = match self.running.lock() {
            Ok(mut running) => !std::mem::replace(&mut *running, true),
            Err(_) => false,
        };
        if start {
            let feed = self.clone();
            tokio::spawn(async move {
                loop {
                    feed.run().await;
                    let Ok(mut running) = feed.running.lock() else { return };
                    // Someone subscribed while the feed was closing: it must go on for them.
                    if feed.stop.is_cancelled() || feed.sender.receiver_count() == 0 {
                        *running = false;
                        return;
                    }
                }
            });
        }
        rx
    }

    /// Consumes until nobody listens or the gateway stops; reconnects after broker failures.
    async fn run(&self) {
        let mut backoff = crate::runtime::backoff::broker();
        while !self.stop.is_cancelled() && self.sender.receiver_count() > 0 {
            match self.consume().await {
                Ok(()) => return,
                Err(e) => {
                    let retry_in = backoff.next_delay();
                    tracing::warn!(error = %e, ?retry_in, "live feed lost the broker; reconnecting");
                    if !crate::runtime::backoff::pause(retry_in, &self.stop).await {
                        return;
                    }
                }
            }
        }
    }

    async fn consume(&self) -> Result<(), crate::bus::BusError> {
        let conn = crate::bus::connect(&self.urls, "switchboard-live-feed").await?;
        let ch = conn.create_channel().await?;
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(BROKER_BUFFER));
        args.insert("x-overflow".into(), AMQPValue::LongString("drop-head".into()));
        let queue = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                args,
            )
            .await?;
        ch.queue_bind(
            queue.name().clone(),
            self.topo.exchange(Exchange::Events).into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut consumer = ch
            .basic_consume(
                queue.name().clone(),
                format!("live-feed-{}", std::process::id()).into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %queue.name(), "live feed consuming");
        loop {
            let next = tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep(IDLE_CHECK) => {
                    if self.sender.receiver_count() == 0 { break }
                    continue;
                }
                next = consumer.next() => next,
            };
            let Some(delivery) = next else { break };
            let delivery = delivery?;
            if let Some(change) = Change::of_event(&delivery.data) {
                // No receivers is fine: the idle check ends the feed.
                let _ = self.sender.send(Arc::new(change));
            }
            if self.sender.receiver_count() == 0 {
                break;
            }
        }
        let _ = conn.close(200, "no listeners".into()).await;
        Ok(())
    }
}

/// `GET /v1/stream`, streaming from `feed` (behind the gateway's credential check).
pub fn router(feed: Arc<Feed>) -> axum::Router {
    axum::Router::new()
        .route("/v1/stream", axum::routing::get(serve_stream))
        .with_state(feed)
}

/// `GET /v1/stream`: the changes this principal may read, as server-sent events.
async fn serve_stream(
    axum::extract::State(feed): axum::extract::State<Arc<Feed>>,
    key: Option<axum::Extension<Arc<crate::http::auth::ApiKey>>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use axum::response::sse::{Event, KeepAlive, Sse};
    let Some(axum::Extension(key)) = key else {
        return super::api::unauthorized();
    };
    if let Err(d) = super::work::scope_of(&key.principal()) {
        return super::api::forbidden(d);
    }
    let slot = match feed.admit(&key.id) {
        Ok(slot) => slot,
        Err(why) => {
            return super::api::error(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                why.into(),
            );
        }
    };
    let rx = feed.subscribe();
    let stop = feed.stop.clone();
    let ends = tokio::time::Instant::now() + STREAM_LIFETIME;
    let hello =
        futures::stream::once(async { Ok::<_, std::convert::Infallible>(Event::default().event("ready").data("{}")) });
    let changes = futures::stream::unfold((rx, key, stop, slot), move |(mut rx, key, stop, slot)| async move {
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep_until(ends) => return None,
                next = rx.recv() => next,
            };
            match next {
                Ok(change) if change.visible_to(&key.principal()) => {
                    let event = Event::default().event("ticket").data(change.data.clone());
                    return Some((Ok::<_, std::convert::Infallible>(event), (rx, key, stop, slot)));
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let event = Event::default()
                        .event("resync")
                        .data(json!({ "missed": missed }).to_string());
                    return Some((Ok(event), (rx, key, stop, slot)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(hello.chain(changes))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keep-alive"))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::access::Role;

    fn event(team: &str, assignee: &str) -> Vec<u8> {
        json!({
            "type": "switchboard.ticket.responded.v1",
            "data": { "ticket": { "number": "202612-00001", "team": team, "assignee": assignee, "state": "in_progress" } }
        })
        .to_string()
        .into_bytes()
    }

    #[tokio::test]
    async fn streams_are_counted_per_principal_and_given_back() {
        let feed = Feed::new(vec![], Topology::new("t", 5));
        let held: Vec<Slot> = (0..STREAMS_PER_PRINCIPAL)
            .map(|_| feed.admit("usr_a").unwrap())
            .collect();
        assert!(feed.admit("usr_a").is_err(), "one more than the cap");
        assert!(feed.admit("usr_b").is_ok(), "another principal is not affected");
        drop(held);
        assert!(feed.admit("usr_a").is_ok(), "slots come back when streams end");
    }

    #[test]
    fn a_change_is_seen_by_whoever_may_read_its_ticket() {
        let c = Change::of_event(&event("billing", "a1")).unwrap();
        assert!(c.data.contains("\"event\":\"responded\""));
        let agent = |id, team| Principal {
            key_id: "k",
            name: "n",
            role: Role::Agent,
            channel: None,
            agent: Some(id),
            agent_team: Some(team),
            team: None,
        };
        assert!(c.visible_to(&agent("a2", "billing")));
        assert!(!c.visible_to(&agent("a9", "tech")));
        let integration = Principal {
            role: Role::Integration,
            agent: None,
            agent_team: None,
            ..agent("x", "billing")
        };
        assert!(!c.visible_to(&integration));
        assert!(Change::of_event(b"not json").is_none());
        assert!(Change::of_event(br#"{"type":"x","data":{}}"#).is_none());
    }
}
