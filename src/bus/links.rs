//! The two connections a process's stage runners share: one consumes (deliveries and acks),
//! one publishes.
//!
//! Shared, because each connection costs memory whatever its traffic: the AMQP client keeps a
//! send and a receive ring of 32 frames, filled with zeros up to the negotiated frame size
//! (RabbitMQ's default, 128 KiB), which is 8 MiB resident per connection. With connections of
//! its own per runner, the chained process (a chain and three stage runners, with the lifecycle
//! five) held 64–80 MiB of them.
//!
//! Two, because when a memory or disk alarm makes the broker block publishing connections, the
//! consuming one stays unblocked: its heartbeats, acks and deliveries keep flowing, and nothing
//! waits on itself.
//!
//! A runner whose session fails closes only its own channels, which returns the deliveries they
//! held to their queues; the pair itself is replaced only once it is broken, by whichever runner
//! asks for it next, and the others then find the new one. A pair that is up but refuses a
//! channel (the broker's `channel_max`) is kept: replacing it would stop every runner on it.

use super::BusError;
use super::rotation::Rotation;
use lapin::Connection;
use std::sync::Arc;
use std::time::Duration;

/// The process's pair of connections, (re)connected on demand.
pub struct Links {
    name: String,
    state: tokio::sync::Mutex<State>,
    /// Connection attempts that failed so far. A runner that waited for the lock while another
    /// attempt failed returns at once, to back off, instead of making an attempt of its own:
    /// with every node unreachable, one attempt per round, not one per runner.
    failed_attempts: std::sync::atomic::AtomicU64,
}

struct State {
    nodes: Rotation,
    current: Option<Arc<Pair>>,
}

/// One consuming and one publishing connection, made together.
pub struct Pair {
    pub consume: Connection,
    pub publish: Connection,
    /// The consuming connection's node (`host:port`, no credentials), for the log.
    pub node: String,
}

impl Pair {
    /// Both connections are up. Once either is lost the pair is replaced as a whole: the
    /// runners' sessions end with the one they used, and each opens its channels again.
    pub fn is_open(&self) -> bool {
        self.consume.status().connected() && self.publish.status().connected()
    }

    /// The consuming connection first: it holds the deliveries, and closing the publishing
    /// one can take its whole timeout while a memory alarm blocks it.
    async fn close(&self, code: u16, why: &str) {
        close_quietly(&self.consume, code, why).await;
        close_quietly(&self.publish, code, why).await;
    }
}

impl Links {
    /// Links to the nodes of `urls`, tried in [`Rotation`]'s order; the connections are named
    /// `name` and `name-publish` (what RabbitMQ's management UI and `rabbitmqctl
    /// list_connections` show).
    pub fn new(urls: Vec<String>, name: impl Into<String>) -> Arc<Links> {
        Arc::new(Links {
            name: name.into(),
            state: tokio::sync::Mutex::new(State {
                nodes: Rotation::new(urls),
                current: None,
            }),
            failed_attempts: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The open pair, connecting a new one when there is none or the last one broke: both
    /// connections on one node, so that losing any other node leaves the pair alone. Callers
    /// queue behind one connection attempt rather than each making their own.
    pub async fn pair(&self) -> Result<Arc<Pair>, BusError> {
        use std::sync::atomic::Ordering;
        let failures_seen = self.failed_attempts.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        if let Some(pair) = &state.current
            && pair.is_open()
        {
            return Ok(pair.clone());
        }
        if self.failed_attempts.load(Ordering::Acquire) != failures_seen {
            return Err(BusError::ConnectionLost);
        }
        if let Some(broken) = state.current.take() {
            broken.close(320, "connection lost").await;
        }
        let connected = async {
            let (consume, node) = state.nodes.connect(&self.name).await?;
            match state.nodes.connect_beside(&format!("{}-publish", self.name)).await {
                Ok((publish, _)) => Ok((consume, publish, node)),
                Err(e) => {
                    close_quietly(&consume, 320, "no publishing connection").await;
                    Err(e)
                }
            }
        }
        .await;
        let (consume, publish, node) = connected.inspect_err(|_| {
            self.failed_attempts.fetch_add(1, Ordering::AcqRel);
        })?;
        let pair = Arc::new(Pair { consume, publish, node });
        state.current = Some(pair.clone());
        Ok(pair)
    }

    /// Closes the pair, once the runners using it have stopped: the broker returns whatever
    /// was still held on it. Bounded: a runner still connecting holds the pair for at most a
    /// connect timeout per node, and a stopping process does not wait that long.
    pub async fn close(&self, code: u16, why: &str) {
        let Ok(mut state) = tokio::time::timeout(Duration::from_secs(2), self.state.lock()).await else {
            return;
        };
        if let Some(pair) = state.current.take() {
            pair.close(code, why).await;
        }
    }
}

/// Closes a connection without waiting long for a broker that may be gone.
pub async fn close_quietly(conn: &Connection, code: u16, why: &str) {
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(code, why.into())).await;
}
