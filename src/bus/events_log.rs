//! The events log: a durable RabbitMQ stream, `<prefix>.events.log`, bound to the events
//! exchange with `#`. Every event published is kept in it for `events_log_max_age` or up to
//! `events_log_max_bytes` (settings), whether or not a consumer was bound when it went out, and
//! reading it consumes nothing: any number of readers, each from where it likes.
//!
//! Reading is a stream consumer over AMQP 0-9-1 ([`Reader`]): `basic.qos` first (the broker
//! requires a prefetch for stream consumers), `basic.consume` with `x-stream-offset` (a time,
//! `first` or `next`), every delivery acked (on a stream an ack only grants credit for more).
//! The broker starts a time offset at the first *chunk* at or after it, so a reader may see a
//! few earlier events: [`replay`] skips those by their AMQP `timestamp` (the publish time, in
//! whole seconds, so both ends of a window include their second).
//!
//! [`replay`] republishes what it reads to a queue of the caller's, through the default exchange
//! and [`super::send`] (mandatory, with confirms): a consumer that was down, or bound too late,
//! catches up from the log.

use super::{BusError, Topology, send};
use crate::contracts::events::topic_matches;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, Consumer};
use std::time::Duration;

/// Deliveries a reader holds unacked.
const PREFETCH: u16 = 1000;
/// Republished events awaiting their confirms before the replay waits for them.
const CONFIRM_WINDOW: usize = 500;
/// The first event may take a while to come from a long log on disk: at least this long.
const FIRST_WAIT: Duration = Duration::from_secs(5);
/// The header the broker adds to every delivery from a stream: its offset in the log.
const OFFSET_HEADER: &str = "x-stream-offset";

/// Where a reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The first event published at or after this time (to the second).
    At(DateTime<Utc>),
    /// The oldest event the log still keeps.
    First,
    /// Only events published from now on.
    Next,
}

/// One event as the log holds it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// Its position in the log.
    pub offset: Option<i64>,
    /// The routing key it was published with (`ticket.resolved`).
    pub routing_key: String,
    /// When it was published (its AMQP `timestamp`, whole seconds), else its CloudEvents `time`.
    pub published_at: Option<DateTime<Utc>>,
    /// Its properties as published: the broker's offset header and `user_id` (which the broker
    /// checks against whoever publishes it again) left out.
    pub properties: BasicProperties,
    /// The body as published (the CloudEvent).
    pub data: Vec<u8>,
}

impl Logged {
    fn of(d: lapin::message::Delivery) -> Logged {
        let offset = d
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(OFFSET_HEADER))
            .and_then(integer);
        let published_at = match d.properties.timestamp() {
            Some(secs) => i64::try_from(*secs).ok().and_then(|s| DateTime::from_timestamp(s, 0)),
            None => serde_json::from_slice::<serde_json::Value>(&d.data)
                .ok()
                .and_then(|v| v.get("time").and_then(|t| t.as_str()).map(str::to_owned))
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)),
        };
        Logged {
            offset,
            routing_key: d.routing_key.as_str().to_owned(),
            published_at,
            properties: as_published(&d.properties),
            data: d.data,
        }
    }

    /// The event's message id (its CloudEvents `id`), or its offset.
    pub fn what(&self) -> String {
        match (self.properties.message_id(), self.offset) {
            (Some(id), _) => id.as_str().to_owned(),
            (None, Some(offset)) => format!("event at offset {offset}"),
            (None, None) => "an event".to_owned(),
        }
    }
}

fn integer(v: &AMQPValue) -> Option<i64> {
    match v {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}

/// The properties a delivery from the stream had when it was published.
fn as_published(p: &BasicProperties) -> BasicProperties {
    let mut out = BasicProperties::default();
    if let Some(v) = p.content_type() {
        out = out.with_content_type(v.clone());
    }
    if let Some(v) = p.content_encoding() {
        out = out.with_content_encoding(v.clone());
    }
    if let Some(h) = p.headers() {
        let kept: std::collections::BTreeMap<_, _> = h
            .inner()
            .iter()
            .filter(|(k, _)| k.as_str() != OFFSET_HEADER)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !kept.is_empty() {
            out = out.with_headers(FieldTable::from(kept));
        }
    }
    if let Some(v) = p.delivery_mode() {
        out = out.with_delivery_mode(*v);
    }
    if let Some(v) = p.priority() {
        out = out.with_priority(*v);
    }
    if let Some(v) = p.correlation_id() {
        out = out.with_correlation_id(v.clone());
    }
    if let Some(v) = p.reply_to() {
        out = out.with_reply_to(v.clone());
    }
    if let Some(v) = p.expiration() {
        out = out.with_expiration(v.clone());
    }
    if let Some(v) = p.message_id() {
        out = out.with_message_id(v.clone());
    }
    if let Some(v) = p.timestamp() {
        out = out.with_timestamp(*v);
    }
    if let Some(v) = p.kind() {
        out = out.with_type(v.clone());
    }
    if let Some(v) = p.app_id() {
        out = out.with_app_id(v.clone());
    }
    if let Some(v) = p.cluster_id() {
        out = out.with_cluster_id(v.clone());
    }
    out
}

/// Fails with [`BusError::NoQueue`] (and `hint`) when `queue` does not exist. Asks on a channel
/// of its own, since the broker closes the channel of a passive declare that finds nothing.
async fn ensure_queue(conn: &Connection, queue: &str, hint: &'static str) -> Result<(), BusError> {
    let ch = conn.create_channel().await?;
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match ch.queue_declare(queue.into(), opts, FieldTable::default()).await {
        Ok(_) => {
            let _ = ch.close(200, "checked".into()).await;
            Ok(())
        }
        Err(e) if matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404) => {
            Err(BusError::NoQueue {
                queue: queue.to_owned(),
                hint,
            })
        }
        Err(e) => Err(e.into()),
    }
}

const NO_LOG: &str = "the events log is declared with the rest of the topology: run `switchboard setup` (events published before it existed were not kept)";
const NO_TARGET: &str = "declare it first (durable; nothing need be bound to it: the replay publishes to it by name, through the default exchange)";

/// A consumer of the events log.
pub struct Reader {
    ch: Channel,
    consumer: Consumer,
}

impl Reader {
    /// Starts reading the events log of `topo` at `start`.
    pub async fn open(conn: &Connection, topo: &Topology, start: Start) -> Result<Reader, BusError> {
        let log = topo.events_log();
        ensure_queue(conn, &log, NO_LOG).await?;
        let ch = conn.create_channel().await?;
        ch.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
        let offset = match start {
            Start::At(t) => AMQPValue::Timestamp(u64::try_from(t.timestamp()).unwrap_or(0)),
            Start::First => AMQPValue::LongString("first".into()),
            Start::Next => AMQPValue::LongString("next".into()),
        };
        let mut args = FieldTable::default();
        args.insert(OFFSET_HEADER.into(), offset);
        let consumer = ch
            .basic_consume(
                log.as_str().into(),
                format!("switchboard-events-log-{}", std::process::id()).into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await?;
        Ok(Reader { ch, consumer })
    }

    /// The next event (acked), or `None` when none came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<Logged>, BusError> {
        let delivery = match tokio::time::timeout(wait, self.consumer.next()).await {
            Err(_) => return Ok(None),
            Ok(None) => return Err(BusError::ConsumerClosed),
            Ok(Some(d)) => d?,
        };
        // On a stream an ack removes nothing: it lets the broker send the next one.
        self.ch
            .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
            .await?;
        Ok(Some(Logged::of(delivery)))
    }

    pub async fn close(self) {
        let _ = self.ch.close(200, "done reading".into()).await;
    }
}

/// What to replay, and where to.
#[derive(Debug, Clone)]
pub struct Replay {
    /// From the events published at this time (to the second).
    pub since: DateTime<Utc>,
    /// To the events published at this time (to the second); none: up to the log's tail.
    pub until: Option<DateTime<Utc>>,
    /// Only events whose routing key matches this topic pattern (`ticket.*`, `sla.#`).
    pub pattern: Option<String>,
    /// The queue the events go to (it must exist).
    pub to_queue: String,
    /// The tail of the log: no event within this long.
    pub idle: Duration,
}

/// How far a replay got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Events read from the log, those outside the window or pattern included.
    pub read: u64,
    /// Events republished (and confirmed, once the replay has returned).
    pub replayed: u64,
    /// Publish times of the first and the last event replayed.
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    /// Where the replay stopped: at `until` (or, without it, at the first event published after
    /// the replay started), or at the log's tail (nothing more within `idle`).
    pub reached_tail: bool,
}

/// Republishes the events of the log that `r` selects, unchanged, to `r.to_queue`, in the log's
/// order, with confirms; calls `progress` after every `every` events replayed. Returns what it
/// did once every republished event is confirmed. A missing target queue is
/// [`BusError::NoQueue`], before anything is read.
pub async fn replay(
    conn: &Connection,
    topo: &Topology,
    r: &Replay,
    every: u64,
    mut progress: impl FnMut(&ReplayProgress),
) -> Result<ReplayProgress, BusError> {
    let end = r.until.unwrap_or_else(Utc::now).timestamp();
    let since = r.since.timestamp();
    ensure_queue(conn, &r.to_queue, NO_TARGET).await?;
    let pub_ch = super::confirm_channel(conn).await?;
    let mut reader = Reader::open(conn, topo, Start::At(r.since)).await?;
    let mut done = ReplayProgress::default();
    let mut pending = Vec::new();
    let result = async {
        loop {
            let wait = if done.read == 0 { r.idle.max(FIRST_WAIT) } else { r.idle };
            let Some(event) = reader.next(wait).await? else {
                done.reached_tail = true;
                break;
            };
            done.read += 1;
            let at = event.published_at.map(|t| t.timestamp());
            if at.is_some_and(|t| t > end) {
                break;
            }
            if at.is_some_and(|t| t < since) {
                continue;
            }
            if let Some(p) = &r.pattern
                && !topic_matches(p, &event.routing_key)
            {
                continue;
            }
            pending.push(
                send(
                    &pub_ch,
                    "",
                    &r.to_queue,
                    true,
                    &event.data,
                    event.properties.clone(),
                    event.what(),
                )
                .await?,
            );
            done.replayed += 1;
            done.first = done.first.or(event.published_at);
            done.last = event.published_at.or(done.last);
            if pending.len() >= CONFIRM_WINDOW {
                confirm_all(&mut pending, &r.to_queue).await?;
            }
            if every > 0 && done.replayed.is_multiple_of(every) {
                progress(&done);
            }
        }
        confirm_all(&mut pending, &r.to_queue).await
    }
    .await;
    reader.close().await;
    let _ = pub_ch.close(200, "replayed".into()).await;
    result.map(|()| done)
}

async fn confirm_all(pending: &mut Vec<super::Pending>, queue: &str) -> Result<(), BusError> {
    for p in pending.drain(..) {
        match p.confirmed().await {
            Err(BusError::Unroutable(_)) => {
                return Err(BusError::NoQueue {
                    queue: queue.to_owned(),
                    hint: NO_TARGET,
                });
            }
            other => other?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::ShortString;

    #[test]
    fn a_replayed_event_keeps_its_properties_but_not_the_logs_offset() {
        let mut headers = FieldTable::default();
        headers.insert(ShortString::from(OFFSET_HEADER), AMQPValue::LongLongInt(42));
        headers.insert(ShortString::from("x-custom"), AMQPValue::LongString("v".into()));
        let p = BasicProperties::default()
            .with_content_type("application/cloudevents+json".into())
            .with_message_id("202611-000001.3".into())
            .with_type("switchboard.ticket.assigned.v1".into())
            .with_timestamp(1_790_000_000)
            .with_delivery_mode(2)
            .with_user_id("guest".into())
            .with_headers(headers);
        let out = as_published(&p);
        assert_eq!(out.message_id().as_ref().map(|s| s.as_str()), Some("202611-000001.3"));
        assert_eq!(
            out.kind().as_ref().map(|s| s.as_str()),
            Some("switchboard.ticket.assigned.v1")
        );
        assert_eq!(
            out.content_type().as_ref().map(|s| s.as_str()),
            Some("application/cloudevents+json")
        );
        assert_eq!((*out.timestamp(), *out.delivery_mode()), (Some(1_790_000_000), Some(2)));
        assert_eq!(*out.user_id(), None);
        let kept = out
            .headers()
            .as_ref()
            .map(|h| h.inner().keys().map(|k| k.to_string()).collect::<Vec<_>>());
        assert_eq!(kept, Some(vec!["x-custom".to_owned()]));

        let mut only_offset = FieldTable::default();
        only_offset.insert(ShortString::from(OFFSET_HEADER), AMQPValue::LongLongInt(7));
        let bare = as_published(&BasicProperties::default().with_headers(only_offset));
        assert_eq!(*bare.headers(), None, "no headers were published, none are replayed");
    }
}
