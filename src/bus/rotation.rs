//! Which RabbitMQ node to try next when several AMQP URLs are configured (a cluster).
//!
//! A worker that loses its connection starts its next attempt at the node *after* the one it
//! was connected to: that node is the likeliest to be the one going down (or restarting), and a
//! worker that kept going back to it first would wait out its whole connect timeout on every
//! retry. Every node is still tried in each round, so with one node up the worker always finds
//! it.

use super::{BusError, CONNECT_TIMEOUT, display_url};
use lapin::{Connection, ConnectionProperties};

/// The configured URLs and where the next connection attempt starts.
#[derive(Debug, Clone)]
pub struct Rotation {
    urls: Vec<String>,
    next: usize,
}

impl Rotation {
    pub fn new(urls: Vec<String>) -> Rotation {
        Rotation { urls, next: 0 }
    }

    /// Indexes in the order the next attempt tries them: from the cursor, wrapping round.
    pub fn order(&self) -> Vec<usize> {
        let n = self.urls.len();
        (0..n).map(|k| (self.next + k) % n).collect()
    }

    /// A connection to node `index` was made; once it is lost, start with the node after it.
    pub fn connected(&mut self, index: usize) {
        if !self.urls.is_empty() {
            self.next = (index + 1) % self.urls.len();
        }
    }

    pub fn url(&self, index: usize) -> &str {
        &self.urls[index]
    }

    pub fn len(&self) -> usize {
        self.urls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// Connects to the first node that answers, in [`Rotation::order`]. Returns the connection
    /// and the node (`host:port`, no credentials) for the log.
    pub async fn connect(&mut self, name: &str) -> Result<(Connection, String), BusError> {
        let mut last = None;
        for i in self.order() {
            let url = self.url(i).to_owned();
            let target = display_url(&url);
            match connect_one(&url, name).await {
                Ok(conn) => {
                    self.connected(i);
                    return Ok((conn, target));
                }
                Err(e) => {
                    if self.len() > 1 {
                        tracing::warn!(node = %target, error = %e, "RabbitMQ node unavailable; trying the next one");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(BusError::NoUrl))
    }

    /// Connects to the node the last successful [`Rotation::connect`] reached, or, if it no
    /// longer answers, as `connect` does. For a connection that works beside another (a
    /// process's publishing connection beside its consuming one): on one node, the pair
    /// depends on that node alone, and once it is lost the next attempt starts after it.
    pub async fn connect_beside(&mut self, name: &str) -> Result<(Connection, String), BusError> {
        self.last_connected_first();
        self.connect(name).await
    }

    /// The next attempt starts at the node last connected to (the cursor steps back).
    fn last_connected_first(&mut self) {
        if !self.urls.is_empty() {
            self.next = (self.next + self.urls.len() - 1) % self.urls.len();
        }
    }
}

/// The `cacertfile` query parameter of an `amqps://` URL (percent-decoding `%2F` for paths).
pub fn ca_file(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "cacertfile").then(|| v.replace("%2F", "/").replace("%2f", "/"))
    })
}

/// One connection attempt, bounded by [`CONNECT_TIMEOUT`] (a node that drops packets would
/// otherwise hold the worker for the operating system's TCP timeout).
pub async fn connect_one(url: &str, name: &str) -> Result<Connection, BusError> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let connecting = async {
        if !url.starts_with("amqps://") {
            return Connection::connect(url, props).await;
        }
        // TLS: the server's certificate must chain to `cacertfile` (RabbitMQ's URI query
        // parameter) or, without it, to the system's roots, and name the host.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let cert_chain = match ca_file(url) {
            Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                lapin::Error::from(lapin::ErrorKind::IOError(std::sync::Arc::new(std::io::Error::new(
                    e.kind(),
                    format!("cacertfile {path}: {e}"),
                ))))
            })?),
            None => None,
        };
        let tls = lapin::tcp::OwnedTLSConfig {
            identity: None,
            cert_chain,
        };
        Connection::connect_with_config(url, props, tls, lapin::runtime::default_runtime()?).await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => Err(BusError::Unreachable {
            target: display_url(url),
            source,
        }),
        Err(_) => Err(BusError::ConnectTimeout {
            target: display_url(url),
            after: CONNECT_TIMEOUT,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rot(n: usize) -> Rotation {
        Rotation::new((0..n).map(|i| format!("amqp://node{i}:5672/%2f")).collect())
    }

    #[test]
    fn first_attempt_tries_every_node_in_the_given_order() {
        assert_eq!(rot(3).order(), vec![0, 1, 2]);
    }

    #[test]
    fn after_losing_a_node_the_next_attempt_starts_with_the_following_one() {
        let mut r = rot(3);
        r.connected(0);
        assert_eq!(r.order(), vec![1, 2, 0]);
        r.connected(1);
        assert_eq!(r.order(), vec![2, 0, 1]);
        // Wraps round.
        r.connected(2);
        assert_eq!(r.order(), vec![0, 1, 2]);
    }

    #[test]
    fn a_connection_beside_another_tries_the_same_node_first_and_leaves_the_cursor_after_it() {
        let mut r = rot(3);
        r.connected(1);
        r.last_connected_first();
        assert_eq!(r.order(), vec![1, 2, 0]);
        // Connected there again: losing it, the next attempt starts after it, as before.
        r.connected(1);
        assert_eq!(r.order(), vec![2, 0, 1]);
        // Wraps round.
        r.connected(2);
        r.last_connected_first();
        assert_eq!(r.order(), vec![2, 0, 1]);
    }

    #[test]
    fn a_single_node_is_always_tried() {
        let mut r = rot(1);
        r.connected(0);
        assert_eq!(r.order(), vec![0]);
        let mut empty = Rotation::new(vec![]);
        empty.connected(0);
        assert!(empty.order().is_empty());
    }

    #[tokio::test]
    async fn a_down_node_is_skipped_for_the_next() {
        // Port 1 on loopback refuses at once; the second "node" refuses too, so the error names
        // the last node tried, and the cursor has not moved (nothing connected).
        let mut r = Rotation::new(vec![
            "amqp://guest:guest@127.0.0.1:1/%2f".into(),
            "amqp://guest:guest@127.0.0.1:2/%2f".into(),
        ]);
        let err = r.connect("test").await.unwrap_err();
        assert!(err.to_string().contains("127.0.0.1:2"), "{err}");
        assert_eq!(r.order(), vec![0, 1]);
    }

    #[tokio::test]
    async fn connects_to_the_next_node_when_the_first_is_down() {
        // Needs the local RabbitMQ; the first URL points at a closed port.
        let good = std::env::var("SWITCHBOARD_AMQP_URL").unwrap_or_else(|_| crate::config::DEFAULT_AMQP_URL.to_owned());
        let good = good.split(',').next().unwrap_or_default().trim().to_owned();
        let mut r = Rotation::new(vec!["amqp://guest:guest@127.0.0.1:1/%2f".into(), good]);
        let (conn, node) = r
            .connect("switchboard-rotation-test")
            .await
            .expect("connect through the second URL (is RabbitMQ up?)");
        assert_ne!(node, "127.0.0.1:1");
        // Connected to node 1: after losing it, node 0 comes first.
        assert_eq!(r.order(), vec![0, 1]);
        let _ = conn.close(200, "bye".into()).await;
    }
}
