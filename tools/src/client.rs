//! A minimal HTTP/1.1 client over one keep-alive connection, for `switchboard loadgen` and the
//! gateway's tests. Plain `http://` only: the gateway is meant to sit behind a TLS-terminating
//! proxy, and a load generator wants one connection per worker, not a pool.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("unsupported URL {0:?}: expected http://host:port")]
    BadUrl(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    #[error("invalid request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// A response: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub struct HttpClient {
    /// `host:port` to connect to.
    addr: String,
    sender: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

impl HttpClient {
    /// `base` is `http://host:port` (a trailing slash or path is ignored).
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| ClientError::BadUrl(base.to_owned()))?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(ClientError::BadUrl(base.to_owned()));
        }
        let addr = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(HttpClient {
            addr,
            sender: None,
            timeout: Duration::from_secs(30),
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the server closes the connection or the sender is dropped.
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends one request and reads the whole response. A broken connection is replaced on the
    /// next call.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        let sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.addr.as_str());
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body))?;
        let timeout = self.timeout;
        let exchange = async move {
            let mut sender = sender;
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, ClientError>((
                sender,
                Reply {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                },
            ))
        };
        let (sender, reply) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        self.sender = Some(sender);
        Ok(reply)
    }

    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Reply, ClientError> {
        self.send(Method::GET, path, headers, Bytes::new()).await
    }

    pub async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply, ClientError> {
        self.send_typed(Method::POST, path, content_type, headers, body.into())
            .await
    }

    pub async fn put(
        &mut self,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply, ClientError> {
        self.send_typed(Method::PUT, path, content_type, headers, body.into())
            .await
    }

    /// A request with a body of `content_type`.
    async fn send_typed(
        &mut self,
        method: Method,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        let mut all = vec![("content-type", content_type)];
        all.extend_from_slice(headers);
        self.send(method, path, &all, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(HttpClient::new("http://127.0.0.1:8080").unwrap().addr, "127.0.0.1:8080");
        assert_eq!(HttpClient::new("http://gw/").unwrap().addr, "gw:80");
        assert!(HttpClient::new("https://gw").is_err());
        assert!(HttpClient::new("http://").is_err());
    }
}
