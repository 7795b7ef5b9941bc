//! The operator's view of the dead-letter queue: list, show, replay, purge.
//!
//! **Browsing a quorum queue without losing or reordering it.** Two things we measured on
//! RabbitMQ 3.10 rule out the obvious ways. Messages returned with `basic.nack(requeue)` or by
//! closing the channel come back rotated or shuffled once more than a few dozen are returned
//! together. And acks of messages taken with `basic.get` are held back by the channel beyond a
//! few dozen in flight and dropped when it closes, so those messages come back too. So a
//! browse *consumes* (`basic.consume`, manual acks, a prefetch as large as the queue) until the
//! queue has nothing more to give, holding every message unacked, and cancels the consumer; it
//! then goes *round* the queue: it republishes each message unchanged to the tail of the
//! dead-letter queue, in the order taken, waits for the broker's confirms, and only then acks
//! the originals, with one multiple ack. Having gone all the way round, the queue is in its old
//! order (tested in `tests/it/dead_letters.rs`, with more messages than the limits above). Nothing
//! is acked before its copy is confirmed, so a crash or a broken connection mid-browse can
//! leave a message twice, never lose it (one not yet copied is returned by the broker). The
//! costs: every browse moves the whole queue through the CLI (fine for the hundreds a
//! dead-letter queue holds; above [`MAX_BROWSE`] it refuses); a dead letter arriving while the
//! copies are being published lands among them; run one browse at a time.
//!
//! **Ids.** A dead letter's id is its `x-switchboard-dead-id` header, set when a stage
//! dead-letters it. A message the broker dead-lettered itself (delivery limit) has none; its id
//! is then a hash of its message id, body and first `x-death` record, which does not change
//! while it sits in the queue.

use super::dead::{self, DEAD_ID, FAILED_AT, ORIGINAL_EXCHANGE, ORIGINAL_ROUTING_KEY, REASON, STAGE, header_str};
use super::{BusError, Topology};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use sha2::{Digest, Sha256};

/// Header on a replayed message: the id of the dead letter it came from.
pub const REPLAY_OF: &str = "x-switchboard-replay-of";

/// Headers that describe a message's death rather than the message: a replay drops them, so a
/// message that fails again carries only its new reason.
const DEATH_HEADERS: [&str; 11] = [
    REASON,
    STAGE,
    ORIGINAL_EXCHANGE,
    ORIGINAL_ROUTING_KEY,
    FAILED_AT,
    DEAD_ID,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-delivery-count",
];

/// One message of the dead-letter queue, as the CLI shows it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: String,
    pub reason: String,
    pub stage: Option<String>,
    pub original_exchange: Option<String>,
    pub original_routing_key: Option<String>,
    pub failed_at: Option<String>,
    pub message_id: Option<String>,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
    /// Position in the queue when it was browsed (1 = head).
    pub position: usize,
    tag: u64,
}

impl DeadLetter {
    pub fn from_delivery(position: usize, tag: u64, properties: BasicProperties, body: Vec<u8>) -> DeadLetter {
        let headers = properties.headers().clone().unwrap_or_default();
        let first_death = first_death(&headers);
        let from_death = |key: &str| first_death.as_ref().and_then(|d| header_str(d, key));
        let original_exchange = header_str(&headers, ORIGINAL_EXCHANGE).or_else(|| from_death("exchange"));
        let original_routing_key = header_str(&headers, ORIGINAL_ROUTING_KEY).or_else(|| {
            first_death.as_ref().and_then(|d| match d.inner().get("routing-keys") {
                Some(AMQPValue::FieldArray(keys)) => keys.as_slice().first().and_then(amqp_str),
                _ => None,
            })
        });
        let stage = header_str(&headers, STAGE).or_else(|| from_death("queue"));
        let failed_at = header_str(&headers, FAILED_AT).or_else(|| match first_death.as_ref()?.inner().get("time") {
            Some(AMQPValue::Timestamp(t)) => Some(rfc3339(*t)),
            _ => None,
        });
        let message_id = properties.message_id().as_ref().map(|m| m.to_string());
        let id = header_str(&headers, DEAD_ID).unwrap_or_else(|| {
            let mut h = Sha256::new();
            h.update(message_id.as_deref().unwrap_or("").as_bytes());
            h.update([0]);
            h.update(&body);
            h.update([0]);
            if let Some(d) = &first_death {
                h.update(render_table(d).as_bytes());
            }
            h.update([0]);
            h.update(failed_at.as_deref().unwrap_or("").as_bytes());
            let digest = h.finalize();
            digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
        });
        DeadLetter {
            id,
            reason: dead::reason_of(&properties),
            stage,
            original_exchange,
            original_routing_key,
            failed_at,
            message_id,
            properties,
            body,
            position,
            tag,
        }
    }

    pub fn size(&self) -> usize {
        self.body.len()
    }

    /// Every header, values rendered as text (`x-death` as a nested list).
    pub fn headers(&self) -> Vec<(String, String)> {
        self.properties
            .headers()
            .as_ref()
            .map(|h| {
                h.inner()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), render_value(v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The body as text when it is UTF-8, else with non-ASCII bytes escaped (`\xNN`).
    pub fn body_text(&self) -> String {
        match std::str::from_utf8(&self.body) {
            Ok(s) => s.to_owned(),
            Err(_) => self.body.escape_ascii().to_string(),
        }
    }

    pub fn body_is_utf8(&self) -> bool {
        std::str::from_utf8(&self.body).is_ok()
    }

    /// Properties for putting it back in the dead-letter queue: unchanged, except the
    /// broker's own delivery counter.
    pub fn restore_properties(&self) -> BasicProperties {
        let Some(h) = self.properties.headers() else {
            return self.properties.clone();
        };
        let mut headers = FieldTable::default();
        for (k, v) in h.inner() {
            if k.as_str() != "x-delivery-count" {
                headers.insert(k.clone(), v.clone());
            }
        }
        self.properties.clone().with_headers(headers)
    }

    /// Properties for republishing: the original ones without the death headers, plus where it
    /// came from.
    pub fn replay_properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        if let Some(h) = self.properties.headers() {
            for (k, v) in h.inner() {
                if !DEATH_HEADERS.contains(&k.as_str()) {
                    headers.insert(k.clone(), v.clone());
                }
            }
        }
        headers.insert(
            ShortString::from(REPLAY_OF),
            AMQPValue::LongString(self.id.as_str().into()),
        );
        self.properties.clone().with_headers(headers)
    }
}

fn first_death(headers: &FieldTable) -> Option<FieldTable> {
    match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(deaths)) => match deaths.as_slice().first() {
            Some(AMQPValue::FieldTable(t)) => Some(t.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn amqp_str(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn rfc3339(epoch_secs: u64) -> String {
    chrono::DateTime::from_timestamp(epoch_secs as i64, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| epoch_secs.to_string())
}

fn render_table(t: &FieldTable) -> String {
    let parts: Vec<String> = t
        .inner()
        .iter()
        .map(|(k, v)| format!("{}: {}", k.as_str(), render_value(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// An AMQP header value as a person reads it.
pub fn render_value(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        AMQPValue::Timestamp(t) => rfc3339(*t),
        AMQPValue::FieldTable(t) => render_table(t),
        AMQPValue::FieldArray(a) => {
            let parts: Vec<String> = a.as_slice().iter().map(render_value).collect();
            format!("[{}]", parts.join(", "))
        }
        AMQPValue::ByteArray(b) => b.as_slice().escape_ascii().to_string(),
        AMQPValue::Void => String::new(),
        other => format!("{other:?}"),
    }
}

/// Most messages one browse takes beyond what the queue held when it began (dead letters that
/// keep arriving must not keep a browse going for ever).
const ARRIVALS_ALLOWANCE: usize = 10_000;
/// Largest queue a browse goes round: the whole queue must fit in one prefetch window (at most
/// 65,535), or the part left behind would end up ahead of the part put back.
pub const MAX_BROWSE: u32 = 50_000;
/// How long a browse waits for the next delivery while the queue should still have some.
const SLOW_DELIVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a browse waits for more once it has had as many as the queue held.
const QUIET: std::time::Duration = std::time::Duration::from_millis(300);

/// A browse of the dead-letter queue in progress: every message taken is held unacked until
/// [`Browser::finish`], by when each has a confirmed copy (put back at the tail, or replayed).
pub struct Browser {
    ch: Channel,
    queue: String,
    /// Messages in the queue when the browse began.
    pub total: u32,
    pub held: Vec<DeadLetter>,
    /// Held messages whose copy the broker has confirmed (put back, or replayed).
    copied: Vec<bool>,
}

impl Browser {
    /// Takes the whole queue, head first, holding every message unacked on its own channel.
    pub async fn open(conn: &Connection, topo: &Topology) -> Result<Browser, BrowseError> {
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let queue = topo.dead_queue();
        let total = topo.depth(&ch, &queue).await?;
        if total > MAX_BROWSE {
            let _ = ch.close(200, "too many".into()).await;
            return Err(BrowseError::TooMany { queue, total });
        }
        let cap = (total as usize + ARRIVALS_ALLOWANCE).min(u16::MAX as usize);
        ch.basic_qos(cap as u16, BasicQosOptions::default()).await?;
        let tag = format!("switchboard-dead-browse-{}", std::process::id());
        let mut consumer = ch
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut b = Browser {
            ch,
            queue,
            total,
            held: Vec::new(),
            copied: Vec::new(),
        };
        // Until the queue has nothing more to give, so that a dead letter arriving meanwhile is
        // put back in its place too, not ahead of the ones taken before it.
        while b.held.len() < cap {
            let wait = if b.held.len() < total as usize {
                SLOW_DELIVERY
            } else {
                QUIET
            };
            match tokio::time::timeout(wait, consumer.next()).await {
                Ok(Some(d)) => b.take(d?),
                Ok(None) | Err(_) => break,
            }
        }
        b.ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await?;
        // Deliveries already on their way when the consumer was cancelled are held too.
        while let Ok(Some(d)) = tokio::time::timeout(QUIET, consumer.next()).await {
            b.take(d?);
        }
        Ok(b)
    }

    fn take(&mut self, d: lapin::message::Delivery) {
        let position = self.held.len() + 1;
        self.held.push(DeadLetter::from_delivery(
            position,
            d.delivery_tag,
            d.properties,
            d.data,
        ));
        self.copied.push(false);
    }

    /// Indexes of the held messages with this id (normally one).
    pub fn find(&self, id: &str) -> Vec<usize> {
        self.held
            .iter()
            .enumerate()
            .filter(|(_, d)| d.id == id)
            .map(|(i, _)| i)
            .collect()
    }

    /// Puts a copy of every held message not yet copied, except `keep`, at the tail of the
    /// queue, in the order taken: republished unchanged (less the broker's `x-delivery-count`)
    /// and confirmed. The originals stay held until [`Browser::finish`].
    pub async fn restore(&mut self, keep: &[usize]) -> Result<(), BusError> {
        let mut pending = Vec::new();
        for (i, d) in self.held.iter().enumerate() {
            if self.copied[i] || keep.contains(&i) {
                continue;
            }
            let what = format!("dead letter {}", self.held[i].id);
            let sent = super::send(&self.ch, "", &self.queue, true, &d.body, d.restore_properties(), what).await?;
            pending.push((i, sent));
        }
        for (i, sent) in pending {
            sent.confirmed().await?;
            self.copied[i] = true;
        }
        Ok(())
    }

    /// Republishes held message `index` to its original exchange and routing key and waits for
    /// the broker's confirm on `publish` (a confirm channel). The dead letter itself is removed
    /// by [`Browser::finish`]; on failure it is still held: put it back with `restore`.
    pub async fn replay(&mut self, index: usize, publish: &Channel) -> Result<(), ReplayError> {
        let d = &self.held[index];
        let (Some(exchange), Some(routing_key)) = (&d.original_exchange, &d.original_routing_key) else {
            return Err(ReplayError::NoOrigin { id: d.id.clone() });
        };
        super::publish_raw(publish, exchange, routing_key, &d.body, d.replay_properties())
            .await
            .map_err(|source| ReplayError::Publish {
                id: d.id.clone(),
                exchange: exchange.clone(),
                routing_key: routing_key.clone(),
                source,
            })?;
        self.copied[index] = true;
        Ok(())
    }

    /// Removes the originals that have a confirmed copy (one `basic.ack(multiple)` when every
    /// message was copied, the normal case) and ends the browse; any other goes back to the
    /// broker with the channel.
    pub async fn finish(self) -> Result<(), BusError> {
        let all = self.copied.iter().all(|c| *c);
        let result = if all {
            match self.held.iter().map(|d| d.tag).max() {
                Some(max) => self.ch.basic_ack(max, BasicAckOptions { multiple: true }).await,
                None => Ok(()),
            }
        } else {
            let mut r = Ok(());
            for (d, _) in self.held.iter().zip(&self.copied).filter(|(_, c)| **c) {
                r = self.ch.basic_ack(d.tag, BasicAckOptions::default()).await;
                if r.is_err() {
                    break;
                }
            }
            r
        };
        let _ = self.ch.close(200, "browsed".into()).await;
        Ok(result?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(
        "{queue} holds {total} dead letters, more than one browse can go round without reordering them ({MAX_BROWSE}); look at a sample with the RabbitMQ management UI, fix the cause, then `switchboard dead purge`"
    )]
    TooMany { queue: String, total: u32 },
}

impl From<lapin::Error> for BrowseError {
    fn from(e: lapin::Error) -> Self {
        BrowseError::Bus(e.into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "dead letter {id} records no original exchange and routing key, so there is nowhere to replay it; inspect it with `switchboard dead show {id}` and republish it by hand"
    )]
    NoOrigin { id: String },
    #[error(
        "replaying dead letter {id} to exchange {exchange:?} with routing key {routing_key:?} failed: {source}. It stays in the dead-letter queue (put back at its tail); fix the cause (does the exchange exist? run `switchboard setup`) and replay again"
    )]
    Publish {
        id: String,
        exchange: String,
        routing_key: String,
        source: BusError,
    },
}

/// Removes every message ready in the dead-letter queue. Returns how many.
pub async fn purge(ch: &Channel, topo: &Topology) -> Result<u32, BusError> {
    Ok(ch
        .queue_purge(topo.dead_queue().as_str().into(), QueuePurgeOptions::default())
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props_with(headers: Vec<(&str, AMQPValue)>) -> BasicProperties {
        let mut t = FieldTable::default();
        for (k, v) in headers {
            t.insert(k.into(), v);
        }
        BasicProperties::default().with_message_id("m-1".into()).with_headers(t)
    }

    #[test]
    fn our_headers_give_id_reason_and_origin() {
        let p = dead::dead_letter_properties(
            &BasicProperties::default().with_message_id("m-1".into()),
            "intake",
            "sb.intake",
            "intake.app",
            "body: missing field `channel`",
        );
        let d = DeadLetter::from_delivery(1, 7, p, b"{}".to_vec());
        assert_eq!(d.id.len(), 12, "{}", d.id);
        assert_eq!(d.reason, "body: missing field `channel`");
        assert_eq!(d.stage.as_deref(), Some("intake"));
        assert_eq!(d.original_exchange.as_deref(), Some("sb.intake"));
        assert_eq!(d.original_routing_key.as_deref(), Some("intake.app"));
        assert!(d.failed_at.is_some());
        // Each dead-lettering gets its own id.
        let again = dead::dead_letter_properties(&BasicProperties::default(), "intake", "x", "y", "r");
        assert_ne!(DeadLetter::from_delivery(1, 8, again, vec![]).id, d.id);
    }

    #[test]
    fn broker_dead_letters_are_explained_and_get_a_stable_id() {
        let mut death = FieldTable::default();
        death.insert("reason".into(), AMQPValue::LongString("delivery_limit".into()));
        death.insert("queue".into(), AMQPValue::LongString("sb.classify".into()));
        death.insert("exchange".into(), AMQPValue::LongString("sb.work".into()));
        death.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(vec![AMQPValue::LongString("classify".into())].into()),
        );
        death.insert("time".into(), AMQPValue::Timestamp(1_700_000_000));
        let headers = vec![(
            "x-death",
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
        )];
        let a = DeadLetter::from_delivery(1, 1, props_with(headers.clone()), b"x".to_vec());
        let b = DeadLetter::from_delivery(3, 9, props_with(headers), b"x".to_vec());
        assert_eq!(a.id, b.id, "the id does not depend on position or delivery");
        assert!(
            a.reason.contains("delivery limit exceeded on sb.classify"),
            "{}",
            a.reason
        );
        assert_eq!(a.original_exchange.as_deref(), Some("sb.work"));
        assert_eq!(a.original_routing_key.as_deref(), Some("classify"));
        assert_eq!(a.failed_at.as_deref(), Some("2023-11-14T22:13:20+00:00"));
        assert!(
            a.headers()
                .iter()
                .any(|(k, v)| k == "x-death" && v.contains("delivery_limit"))
        );
    }

    #[test]
    fn replay_drops_the_death_headers_and_keeps_the_rest() {
        let mut p = dead::dead_letter_properties(
            &props_with(vec![("x-trace", AMQPValue::LongString("abc".into()))]),
            "intake",
            "sb.intake",
            "intake.app",
            "bad",
        );
        let mut h = p.headers().clone().unwrap_or_default();
        h.insert("x-delivery-count".into(), AMQPValue::LongInt(3));
        p = p.with_headers(h);
        let d = DeadLetter::from_delivery(1, 1, p, vec![]);
        let r = d.replay_properties();
        let h = r.headers().clone().unwrap();
        assert_eq!(header_str(&h, "x-trace").as_deref(), Some("abc"));
        assert_eq!(header_str(&h, REPLAY_OF).as_deref(), Some(d.id.as_str()));
        for gone in [REASON, STAGE, DEAD_ID, "x-delivery-count"] {
            assert!(!h.contains_key(gone), "{gone} kept");
        }
        assert_eq!(r.message_id().as_ref().map(|m| m.as_str()), Some("m-1"));
    }

    #[test]
    fn binary_bodies_are_escaped() {
        let d = DeadLetter::from_delivery(1, 1, BasicProperties::default(), vec![b'{', 0xff, 0x00, b'}']);
        assert!(!d.body_is_utf8());
        assert_eq!(d.body_text(), "{\\xff\\x00}");
        let t = DeadLetter::from_delivery(1, 1, BasicProperties::default(), "你好".as_bytes().to_vec());
        assert_eq!(t.body_text(), "你好");
    }
}
