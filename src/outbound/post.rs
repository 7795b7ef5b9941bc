//! One signed webhook POST: the body as given, the Standard Webhooks headers (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature`) when there is a secret, and the answer judged by
//! its status ([`super::judge_status`]). At most [`MAX_ANSWER_BYTES`] of the answer are read.

use super::{Attempt, describe_error, display_url, judge_status, parse_retry_after, signing};
use chrono::{DateTime, Utc};

/// The most of a receiver's answer that is read (only its start is quoted; the rest is not
/// worth the memory or the wait).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A webhook delivery: where, what, and how to sign it.
pub struct SignedPost<'a> {
    pub url: &'a str,
    /// Sent as `webhook-id`; the same on every attempt of one message.
    pub msg_id: &'a str,
    /// `whsec_…`; `None`: no signature headers (a robot, say).
    pub secret: Option<&'a str>,
    pub body: &'a [u8],
    /// "application/json".
    pub content_type: &'a str,
    pub extra_headers: &'a [(&'a str, String)],
}

/// An HTTP answer as far as it was read.
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<std::time::Duration>,
    /// At most [`MAX_ANSWER_BYTES`].
    pub body: Vec<u8>,
    /// Reading the body failed after the status came (the status still stands).
    pub body_error: Option<String>,
}

/// Checks that `url` is an absolute http(s) URL with a host.
pub(crate) fn check_url(url: &str) -> Result<reqwest::Url, Attempt> {
    let rejected = |why: &str| Attempt::Rejected {
        reason: format!("invalid URL {}: {why}", display_url(url)),
        status: None,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| rejected(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(rejected("only http and https URLs are delivered to"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(rejected("no host"));
    }
    Ok(parsed)
}

/// POSTs `body` to `url` with `headers` and reads the answer (its first
/// [`MAX_ANSWER_BYTES`]). A request that gets no answer is the `Retry` it should become.
pub(crate) async fn post(
    client: &reqwest::Client,
    url: reqwest::Url,
    headers: &[(&str, String)],
    body: &[u8],
    whom: &str,
    now: DateTime<Utc>,
) -> Result<Answer, Attempt> {
    let mut request = client.post(url).body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let mut response = request.send().await.map_err(|e| Attempt::Retry {
        reason: describe_error(&e, whom),
        status: None,
        retry_after: None,
    })?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now));
    let mut answer = Vec::new();
    let mut body_error = None;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ANSWER_BYTES - answer.len();
                answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if answer.len() >= MAX_ANSWER_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                body_error = Some(describe_error(&e, whom));
                break;
            }
        }
    }
    Ok(Answer {
        status,
        retry_after,
        body: answer,
        body_error,
    })
}

/// Sends one webhook delivery and judges the answer: 2xx delivered; 408, 429, 5xx and no answer
/// at all (refused, timed out, reset) retried, with the receiver's `Retry-After`; 410 gone;
/// every other status, and a URL that is not http(s), rejected.
pub async fn post_signed(client: &reqwest::Client, p: &SignedPost<'_>, now: DateTime<Utc>) -> Attempt {
    let url = match check_url(p.url) {
        Ok(url) => url,
        Err(rejected) => return rejected,
    };
    let whom = display_url(p.url);
    let timestamp = now.timestamp();
    let mut headers: Vec<(&str, String)> = vec![("content-type", p.content_type.to_owned())];
    if let Some(secret) = p.secret {
        let signature = match signing::sign(secret, p.msg_id, timestamp, p.body) {
            Ok(s) => s,
            Err(e) => {
                return Attempt::Rejected {
                    reason: format!("cannot sign the delivery to {whom}: {e}"),
                    status: None,
                };
            }
        };
        headers.push(("webhook-signature", signature));
    }
    headers.push(("webhook-id", p.msg_id.to_owned()));
    headers.push(("webhook-timestamp", timestamp.to_string()));
    for (name, value) in p.extra_headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            || reqwest::header::HeaderValue::from_str(value).is_err()
        {
            return Attempt::Rejected {
                reason: format!(
                    "invalid extra header {:?} for {whom}",
                    name.chars().take(40).collect::<String>()
                ),
                status: None,
            };
        }
        headers.push((name, value.clone()));
    }
    match post(client, url, &headers, p.body, &whom, now).await {
        Ok(answer) => judge_status(answer.status, answer.retry_after, &whom, &answer.body),
        Err(attempt) => attempt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> reqwest::Client {
        super::super::client::http_client(std::time::Duration::from_secs(5)).unwrap()
    }

    fn delivery(url: &str) -> SignedPost<'_> {
        SignedPost {
            url,
            msg_id: "msg_1",
            secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            body: b"{}",
            content_type: "application/json",
            extra_headers: &[],
        }
    }

    #[tokio::test]
    async fn only_http_and_https_urls_are_posted_to() {
        for url in ["ftp://x/y", "file:///etc/passwd", "mailto:a@b", "not a url", "http://"] {
            let attempt = post_signed(&client(), &delivery(url), Utc::now()).await;
            assert!(
                matches!(&attempt, Attempt::Rejected { status: None, reason } if reason.starts_with("invalid URL")),
                "{url}: {attempt:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_bad_secret_or_header_is_rejected_without_a_request() {
        let mut p = delivery("http://127.0.0.1:9/x");
        p.secret = Some("not-a-secret");
        let attempt = post_signed(&client(), &p, Utc::now()).await;
        assert!(
            matches!(&attempt, Attempt::Rejected { reason, .. } if reason.contains("cannot sign")),
            "{attempt:?}"
        );
        let bad = [("x-bad header", "v".to_owned())];
        let mut p = delivery("http://127.0.0.1:9/x");
        p.extra_headers = &bad;
        let attempt = post_signed(&client(), &p, Utc::now()).await;
        assert!(
            matches!(&attempt, Attempt::Rejected { reason, .. } if reason.contains("invalid extra header")),
            "{attempt:?}"
        );
    }
}
