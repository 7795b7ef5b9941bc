//! The one outbound HTTP client: fetching the identity provider's keys (`http::oidc`), webhook
//! deliveries (`outbound::post`) and group-chat robots (`outbound::robots`).
//!
//! TLS is rustls on aws-lc-rs (the provider the broker and database connections already build;
//! no ring, no OpenSSL) with the system's root certificates, HTTP/1.1 only. Every request has a
//! deadline, and redirects are not followed: the configured URL is the one that is meant, and a
//! redirect would let whoever answers it send us anywhere, plain HTTP included.

use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot set up TLS for outbound HTTP: {0}")]
    Tls(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    #[error("{url}: {message}")]
    Request { url: String, message: String },
    #[error("{url}: the response is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
}

/// A client whose every request (connect, headers and body) must finish within `timeout`.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // One unparsable certificate in the system store should not take HTTPS away.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        // Plain HTTP on loopback still works; an HTTPS request will name the unknown issuer.
        tracing::warn!("no system CA certificates found: outbound HTTPS requests will be refused");
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Build(e.to_string()))
}

/// GETs `url` and returns its body, refusing a non-2xx answer and a body over `limit` bytes
/// (checked as it arrives, so a huge or endless body costs at most `limit` bytes of memory).
pub async fn get_bounded(client: &reqwest::Client, url: &str, limit: usize) -> Result<Vec<u8>, ClientError> {
    let failed = |message: String| ClientError::Request {
        url: url.to_owned(),
        message,
    };
    let too_large = || ClientError::TooLarge {
        url: url.to_owned(),
        limit,
    };
    let mut response = client.get(url).send().await.map_err(|e| failed(describe(e)))?;
    let status = response.status();
    if !status.is_success() {
        let hint = if status.is_redirection() {
            " (redirects are not followed: configure the final URL)"
        } else {
            ""
        };
        return Err(failed(format!("HTTP {status}{hint}")));
    }
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(describe(e)))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// reqwest's own message is often just "error sending request"; the causes say what happened.
/// The URL is left out: the caller's error names it already.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
