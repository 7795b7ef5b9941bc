//! Publishing accepted requests: a small pool of confirm channels on one connection, rebuilt on
//! failure, so the gateway keeps going when the broker restarts or fails over.
//!
//! Many publishes are in flight on one channel at once (lapin pipelines them and matches the
//! confirms), so the pool is for isolation, not for concurrency: a channel the broker closed
//! takes down only the requests that were on it. Every publish either gets its confirm within
//! the timeout or is reported as failed; the gateway answers 503 and the client retries with the
//! same idempotency key (a message confirmed after its timeout is then a duplicate, which intake
//! recognises). Nothing is ever reported as accepted without a confirm.
//!
//! A channel that gets a nack is replaced too. On a RabbitMQ cluster, a channel whose first
//! publish to a quorum queue comes while the queue's record still names a leader on a node that
//! has just gone down is nacked on every publish until that node is back (RabbitMQ 3.10's
//! quorum-queue client keeps asking the dead node). The gateway reconnects at once after losing
//! its node, so its new channels met exactly that, and kept every publish failing for the whole
//! outage (`tests/cluster.rs`); a fresh channel a moment later finds the new leader.
//!
//! Connecting is lazy: the first request after an outage reconnects (every AMQP URL in turn),
//! and after a failed attempt the gateway answers 503 at once for a short back-off instead of
//! making every request wait for a connect timeout.

use crate::bus::{self, BusError, Topology};
use crate::contracts::Exchange;
use lapin::{BasicProperties, Channel, Connection};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// After a failed connect, requests fail fast for this long before the next attempt.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("RabbitMQ is unreachable ({0})")]
    Unreachable(String),
    #[error("RabbitMQ was unreachable moments ago; not retrying yet")]
    BackingOff,
    #[error("RabbitMQ did not confirm within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Bus(#[from] BusError),
}

struct Link {
    conn: Option<Arc<Connection>>,
    failed_at: Option<Instant>,
}

pub struct Publisher {
    urls: Vec<String>,
    topo: Topology,
    timeout: Duration,
    link: Mutex<Link>,
    slots: Vec<Mutex<Option<Channel>>>,
    next: AtomicUsize,
}

impl Publisher {
    pub fn new(urls: Vec<String>, topo: Topology, channels: usize, timeout: Duration) -> Self {
        Publisher {
            urls,
            topo,
            timeout,
            link: Mutex::new(Link {
                conn: None,
                failed_at: None,
            }),
            slots: (0..channels.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The live connection, reconnecting (and declaring the topology) when there is none.
    async fn connection(&self) -> Result<Arc<Connection>, PublishError> {
        let mut link = self.link.lock().await;
        if let Some(conn) = &link.conn
            && conn.status().connected()
        {
            return Ok(conn.clone());
        }
        if link.failed_at.is_some_and(|at| at.elapsed() < RECONNECT_BACKOFF) {
            return Err(PublishError::BackingOff);
        }
        if let Some(old) = link.conn.take() {
            let _ = tokio::time::timeout(Duration::from_millis(200), old.close(320, "reconnecting".into())).await;
        }
        let attempt = async {
            let conn = bus::connect(&self.urls, "switchboard-gateway").await?;
            // Idempotent, and it means a gateway started before any worker still has somewhere
            // to put what it accepts (the intake exchange and queue).
            self.topo.declare(&conn).await?;
            Ok::<_, BusError>(conn)
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(conn)) => {
                tracing::info!("gateway connected to RabbitMQ");
                let conn = Arc::new(conn);
                link.conn = Some(conn.clone());
                link.failed_at = None;
                Ok(conn)
            }
            Ok(Err(e)) => {
                link.failed_at = Some(Instant::now());
                tracing::warn!(error = %e, "gateway cannot connect to RabbitMQ");
                Err(PublishError::Unreachable(short_reason(&e)))
            }
            Err(_) => {
                link.failed_at = Some(Instant::now());
                tracing::warn!(timeout = ?self.timeout, "gateway: connecting to RabbitMQ timed out");
                Err(PublishError::Unreachable(format!(
                    "connect timed out after {:?}",
                    self.timeout
                )))
            }
        }
    }

    /// The channel of slot `i`, opening a new one when it is missing or closed.
    async fn channel(&self, i: usize) -> Result<Channel, PublishError> {
        let mut slot = self.slots[i].lock().await;
        if let Some(ch) = slot.as_ref()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        *slot = None;
        let conn = self.connection().await?;
        let ch = match tokio::time::timeout(self.timeout, bus::confirm_channel(&conn)).await {
            Ok(result) => result?,
            Err(_) => return Err(PublishError::Timeout(self.timeout)),
        };
        *slot = Some(ch.clone());
        Ok(ch)
    }

    /// Drops a channel that failed or stalled, so the next request on its slot opens a new one.
    async fn discard(&self, i: usize, failed: &Channel) {
        let mut slot = self.slots[i].lock().await;
        if slot.as_ref().is_some_and(|ch| ch.id() == failed.id()) {
            *slot = None;
            let ch = failed.clone();
            tokio::spawn(async move {
                let _ = ch.close(200, "replaced".into()).await;
            });
        }
    }

    /// Publishes one intake request (JSON) and waits for the broker's confirm. `Ok` means the
    /// broker holds it durably on the intake queue.
    pub async fn publish(&self, channel: &str, message_id: &str, payload: &[u8]) -> Result<(), PublishError> {
        self.publish_traced(channel, message_id, payload, None).await
    }

    /// [`Publisher::publish`], the message carrying `traceparent` (W3C Trace Context) as its
    /// header, so the intake stage continues the request's trace.
    pub async fn publish_traced(
        &self,
        channel: &str,
        message_id: &str,
        payload: &[u8],
        traceparent: Option<&str>,
    ) -> Result<(), PublishError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let ch = self.channel(i).await?;
        let exchange = self.topo.exchange(Exchange::Intake);
        let routing_key = format!("intake.{channel}");
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message_id.into())
            .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64)
            .with_app_id("switchboard-gateway".into());
        if let Some(tp) = traceparent {
            let mut headers = lapin::types::FieldTable::default();
            headers.insert(
                crate::contracts::outgoing::TRACEPARENT.into(),
                lapin::types::AMQPValue::LongString(tp.into()),
            );
            props = props.with_headers(headers);
        }
        let publish = async {
            // Mandatory: a request no queue would take is not accepted.
            bus::send(&ch, &exchange, &routing_key, true, payload, props, message_id)
                .await?
                .confirmed()
                .await
        };
        match tokio::time::timeout(self.timeout, publish).await {
            Ok(Ok(())) => Ok(()),
            // A return (no queue bound) says nothing about the channel: keep it.
            Ok(Err(e @ BusError::Unroutable(_))) => Err(e.into()),
            // A nack may come from a channel stuck on a lost queue leader (see the module
            // docs), and anything else may have broken it: the next request opens a new one.
            Ok(Err(e)) => {
                self.discard(i, &ch).await;
                Err(e.into())
            }
            Err(_) => {
                self.discard(i, &ch).await;
                Err(PublishError::Timeout(self.timeout))
            }
        }
    }

    /// Whether a publish could go out now (connects if needed): the readiness check.
    pub async fn ready(&self) -> Result<(), PublishError> {
        self.channel(0).await.map(|_| ())
    }

    /// Closes the connection (graceful shutdown, after the last request was answered).
    pub async fn close(&self) {
        let conn = self.link.lock().await.conn.take();
        if let Some(conn) = conn {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "gateway stopping".into())).await;
        }
    }
}

/// The first line of a broker error, without the operator's how-to-start hint.
fn short_reason(e: &BusError) -> String {
    match e {
        BusError::Unreachable { target, .. } => format!("cannot connect to {target}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::options::{QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
    use lapin::types::{AMQPValue, FieldTable};

    fn amqp_urls() -> Vec<String> {
        std::env::var("SWITCHBOARD_AMQP_URL")
            .unwrap_or_else(|_| crate::config::DEFAULT_AMQP_URL.to_owned())
            .split(',')
            .map(|u| u.trim().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_nacked_publish_replaces_its_channel() {
        // Needs the local RabbitMQ. A queue that rejects every publish (max length 0,
        // reject-publish) bound beside the intake queue makes the broker nack.
        let id = uuid::Uuid::new_v4().simple().to_string();
        let topo = Topology::new(format!("t_gwnack_{}", &id[..10]), 5);
        let publisher = Publisher::new(amqp_urls(), topo.clone(), 1, Duration::from_secs(5));
        publisher.ready().await.expect("connect (is RabbitMQ up?)");
        let conn = bus::connect(&amqp_urls(), "switchboard-test").await.expect("connect");
        let ch = conn.create_channel().await.expect("channel");
        let full = format!("{}.full", topo.prefix);
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(0));
        args.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
        ch.queue_declare(full.as_str().into(), QueueDeclareOptions::default(), args)
            .await
            .expect("declare the full queue");
        ch.queue_bind(
            full.as_str().into(),
            topo.exchange(Exchange::Intake).into(),
            "intake.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");

        let before = publisher.channel(0).await.expect("channel").id();
        let nacked = publisher.publish("app", "m-1", b"{}").await;
        let replaced = publisher.slots[0].lock().await.is_none();
        ch.queue_delete(full.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete the full queue");
        let after = publisher.publish("app", "m-2", b"{}").await;
        let new_id = publisher.channel(0).await.expect("channel").id();
        let _ = topo.delete(&ch).await;
        let _ = conn.close(200, "bye".into()).await;
        publisher.close().await;

        assert!(
            matches!(nacked, Err(PublishError::Bus(BusError::Nacked(_)))),
            "{nacked:?}"
        );
        assert!(replaced, "the nacked channel was dropped from its slot");
        assert!(after.is_ok(), "{after:?}");
        assert_ne!(before, new_id, "the next publish went out on a new channel");
    }
}
