//! A channel adapter's publisher, as tests need it while brokers go away: publishes with
//! confirms, and when the connection is lost (or the broker nacks) it reconnects, moving on to
//! the next node when several AMQP URLs are given, and resends every message it has no positive
//! confirm for. A resent message may arrive twice; intake recognises the second copy by its
//! channel message id.

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Connection};
use std::time::{Duration, Instant};
use switchboard::bus::{self, rotation::Rotation};
use switchboard_tools::demo::Publication;

/// How long one message (or window) may go unconfirmed, across reconnections, before the test
/// gives up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(90);

#[derive(Debug, Default, Clone)]
pub struct PublisherStats {
    /// Messages the broker confirmed (each counted once, however often it was sent).
    pub confirmed: usize,
    /// Sends beyond the first: messages published again for want of a confirm.
    pub resent: usize,
    /// Connections opened, with the node each went to (`host:port`), in order.
    pub connections: Vec<String>,
}

pub struct Publisher {
    nodes: Rotation,
    exchange: String,
    link: Option<(Connection, Channel)>,
    pub stats: PublisherStats,
}

impl Publisher {
    pub fn new(urls: Vec<String>, exchange: String) -> Publisher {
        Publisher {
            nodes: Rotation::new(urls),
            exchange,
            link: None,
            stats: PublisherStats::default(),
        }
    }

    /// Publishes one message and waits for its confirm, retrying as long as it takes.
    pub async fn publish(&mut self, p: &Publication) {
        self.publish_window(std::slice::from_ref(p)).await;
    }

    /// Publishes a window of messages back to back, then waits for every confirm. Those not
    /// positively confirmed (the connection died first, or the broker nacked) are sent again,
    /// on a new connection when the old one is gone.
    pub async fn publish_window(&mut self, window: &[Publication]) {
        let start = Instant::now();
        let mut pending: Vec<&Publication> = window.iter().collect();
        let mut first_try = true;
        loop {
            if !first_try {
                self.stats.resent += pending.len();
            }
            first_try = false;
            if self.link.is_none() {
                self.connect().await;
            }
            if let Some((_, ch)) = &self.link {
                let mut unconfirmed = Vec::new();
                let mut confirms = Vec::with_capacity(pending.len());
                let mut broken = false;
                for p in &pending {
                    if broken {
                        unconfirmed.push(*p);
                        continue;
                    }
                    match ch
                        .basic_publish(
                            self.exchange.as_str().into(),
                            p.routing_key.as_str().into(),
                            BasicPublishOptions {
                                mandatory: true,
                                ..Default::default()
                            },
                            &p.payload,
                            properties(p),
                        )
                        .await
                    {
                        Ok(confirm) => confirms.push((*p, confirm)),
                        Err(_) => {
                            broken = true;
                            unconfirmed.push(*p);
                        }
                    }
                }
                for (p, confirm) in confirms {
                    match confirm.await {
                        Ok(c) => {
                            // Acked and not returned unroutable: the broker has it. After a
                            // nack, a new channel: on a cluster, one that met a lost queue
                            // leader is nacked until that node is back (see
                            // `switchboard::bus::publisher`).
                            if c.is_nack() {
                                broken = true;
                            }
                            if c.is_ack() && c.take_message().is_none() {
                                self.stats.confirmed += 1;
                            } else {
                                unconfirmed.push(p);
                            }
                        }
                        Err(_) => {
                            broken = true;
                            unconfirmed.push(p);
                        }
                    }
                }
                if broken || !ch.status().connected() {
                    self.drop_link().await;
                }
                if unconfirmed.is_empty() {
                    return;
                }
                pending = unconfirmed;
            }
            assert!(
                start.elapsed() < GIVE_UP_AFTER,
                "{} messages unconfirmed for {GIVE_UP_AFTER:?} (connections so far: {:?})",
                pending.len(),
                self.stats.connections
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn connect(&mut self) {
        if let Ok((conn, node)) = self.nodes.connect("switchboard-test-publisher").await {
            match bus::confirm_channel(&conn).await {
                Ok(ch) => {
                    self.stats.connections.push(node);
                    self.link = Some((conn, ch));
                }
                Err(_) => {
                    let _ = conn.close(200, "bye".into()).await;
                }
            }
        }
    }

    async fn drop_link(&mut self) {
        if let Some((conn, _)) = self.link.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "reconnecting".into())).await;
        }
    }

    /// Closes the connection (end of test).
    pub async fn close(mut self) -> PublisherStats {
        self.drop_link().await;
        self.stats
    }
}

fn properties(p: &Publication) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(p.message_id.as_str().into())
}
