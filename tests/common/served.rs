//! A gateway serving a harness's app on a real socket, with an HTTP client speaking to it as a
//! principal.

use super::Harness;
use serde_json::Value;
use std::time::Duration;
use switchboard::http::{self as gateway, auth};
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

/// A new API key's secret.
pub async fn key(h: &Harness, spec: auth::KeySpec<'_>) -> String {
    auth::create(&h.app.db, &spec).await.expect("create key").1
}

/// A new user's personal token.
pub async fn user(h: &Harness, spec: auth::UserSpec<'_>) -> String {
    auth::create_user(&h.app.db, &spec)
        .await
        .expect("create user")
        .1
        .expect("a user with a token")
}

/// Submits an intake `request` through the gateway with `key` and waits until the pipeline has
/// assigned its ticket; returns the ticket's number and assignee.
pub async fn assigned(h: &Harness, gw: &mut Served, key: &str, request: Value) -> (String, String) {
    let id = request["channel_message_id"]
        .as_str()
        .expect("a channel_message_id")
        .to_owned();
    let r = gw.post(key, "/v1/requests", request, &[]).await;
    assert_eq!(r.status.as_u16(), 202, "{:?}", r.json());
    let sql = format!("SELECT count(*) FROM tickets WHERE channel_message_id = '{id}' AND state = 'assigned'");
    h.wait_for(&format!("{id} assigned"), Duration::from_secs(30), || async {
        h.count(&sql).await == 1
    })
    .await;
    let number = h
        .text(&format!("SELECT number FROM tickets WHERE channel_message_id = '{id}'"))
        .await;
    let assignee = h
        .text(&format!(
            "SELECT assignee FROM tickets WHERE channel_message_id = '{id}'"
        ))
        .await;
    (number, assignee)
}
