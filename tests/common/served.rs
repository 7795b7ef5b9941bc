//! A gateway serving a harness's app on a real socket, with an HTTP client speaking to it as a
//! principal.

use super::Harness;
use serde_json::Value;
use std::time::Duration;
use switchboard::http as gateway;
use switchboard_tools::client::{HttpClient, Reply};
use tokio_util::sync::CancellationToken;

pub struct Served {
    pub client: HttpClient,
    pub stop: CancellationToken,
    pub addr: std::net::SocketAddr,
}

impl Served {
    pub async fn start(h: &Harness) -> Served {
        Served::start_with(h, |_| {}).await
    }

    /// A gateway with changed settings (same database schema and topology).
    pub async fn start_with(h: &Harness, change: impl FnOnce(&mut switchboard::config::Settings)) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let mut app = h.app.clone();
        change(&mut app.settings);
        let token = stop.clone();
        tokio::spawn(async move { gateway::serve(&app, listener, token).await });
        let client = HttpClient::new(&format!("http://{addr}"))
            .unwrap()
            .with_timeout(Duration::from_secs(10));
        Served { client, stop, addr }
    }

    pub async fn get(&mut self, key: &str, path: &str) -> Reply {
        let auth = format!("Bearer {key}");
        self.client.get(path, &[("authorization", &auth)]).await.unwrap()
    }

    pub async fn post(&mut self, key: &str, path: &str, body: Value, extra: &[(&str, &str)]) -> Reply {
        let auth = format!("Bearer {key}");
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend_from_slice(extra);
        self.client
            .post(path, "application/json", &headers, serde_json::to_vec(&body).unwrap())
            .await
            .unwrap()
    }

    pub async fn put(&mut self, key: &str, path: &str, body: &str) -> Reply {
        let auth = format!("Bearer {key}");
        self.client
            .put(
                path,
                "application/json",
                &[("authorization", auth.as_str())],
                body.to_owned(),
            )
            .await
            .unwrap()
    }

    pub async fn act(&mut self, key: &str, number: &str, body: Value) -> Reply {
        self.post(key, &format!("/v1/tickets/{number}/actions"), body, &[])
            .await
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
