//! A test publisher that rides out broker outages: publisher confirms, and on any failure it
//! reconnects and sends the same message again until the broker confirms it. A message sent
//! again may arrive twice; the service recognises the copy by its message id.

use lapin::BasicProperties;
use std::time::{Duration, Instant};
use switchboard::bus;

pub struct Publisher {
    urls: Vec<String>,
    link: Option<(lapin::Connection, lapin::Channel)>,
    /// Messages the broker confirmed.
    pub confirmed: usize,
    /// Attempts sent again after a failed or unconfirmed one.
    pub resent: usize,
}

impl Publisher {
    pub fn new(urls: Vec<String>) -> Publisher {
        Publisher {
            urls,
            link: None,
            confirmed: 0,
            resent: 0,
        }
    }

    /// Publishes one persistent JSON message and returns once the broker has confirmed it;
    /// panics when that has not happened within 90 s.
    pub async fn publish(&mut self, exchange: &str, routing_key: &str, message_id: &str, payload: &[u8]) {
        let start = Instant::now();
        let mut attempts = 0;
        loop {
            if self.link.is_none()
                && let Ok(conn) = bus::connect(&self.urls, "switchboard-test-publisher").await
                && let Ok(ch) = bus::confirm_channel(&conn).await
            {
                self.link = Some((conn, ch));
            }
            if let Some((_, ch)) = &self.link {
                let props = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id(message_id.into());
                if attempts > 0 {
                    self.resent += 1;
                }
                attempts += 1;
                let sent = bus::publish_raw(ch, exchange, routing_key, payload, props);
                match tokio::time::timeout(Duration::from_secs(10), sent).await {
                    Ok(Ok(())) => {
                        self.confirmed += 1;
                        return;
                    }
                    Ok(Err(_)) | Err(_) => self.link = None,
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "could not publish {message_id} for 90 s"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub async fn close(mut self) {
        if let Some((conn, _)) = self.link.take() {
            let _ = conn.close(200, "bye".into()).await;
        }
    }
}
