//! The outbound transports: how Switchboard tells the world about a ticket. Each function here
//! makes **one delivery attempt** and says what became of it as an [`Attempt`]; it never
//! retries, sleeps or remembers anything. Deciding when to try again, counting attempts and
//! disabling a subscription that is gone is the dispatcher's job (`runtime::deliver`), which
//! claims due delivery rows from Postgres and turns each `Attempt` into the row's next state.
//!
//! - [`client`] — the one outbound HTTPS client (rustls on aws-lc-rs, no redirects, a deadline
//!   on every request), also used for the identity provider's keys.
//! - [`signing`] — Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`,
//!   `webhook-signature`: HMAC-SHA256 with a `whsec_` secret), signing and verifying.
//! - [`post`] — a signed webhook POST, its answer judged by HTTP status.
//! - [`robots`] — group-chat robots (WeCom, DingTalk, Feishu): their JSON formats, their URL and
//!   body signatures, and their answers (HTTP 200 with an error code in the body).
//! - [`smtp`] — email over SMTP with threading headers (`Message-ID`, `In-Reply-To`,
//!   `References`), so replies to a ticket's mails stay in one conversation.
//!
//! The layer sits beside `store` and `bus` and imports only `core` and `contracts`: a transport
//! knows nothing of rows or queues, it is handed what to send and where.
//!
//! What an [`Attempt`]'s `reason` says is meant for a person reading a delivery's history: it
//! names what happened and where (a URL without its query, which may hold a token), never a
//! secret or the body we sent, and at most the first 200 characters of the receiver's answer.

pub mod client;
pub mod post;
pub mod robots;
pub mod signing;
pub mod smtp;

use std::time::Duration;

/// What became of one delivery attempt. The dispatcher turns it into the row's next state.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The receiver took it (2xx; SMTP 2xx after DATA).
    Delivered { status: Option<u16> },
    /// Try again later: network error, timeout, 5xx, 408, 429, SMTP 4xx. `retry_after` from a
    /// Retry-After header (seconds or HTTP date), capped at 1 h.
    Retry {
        reason: String,
        status: Option<u16>,
        retry_after: Option<Duration>,
    },
    /// Will never succeed as it is: other 4xx, an invalid URL or address, SMTP 5xx, a robot's
    /// errcode meaning bad request.
    Rejected { reason: String, status: Option<u16> },
    /// The endpoint says it is gone for good (HTTP 410): the subscription should be disabled.
    Gone { reason: String },
}

impl Attempt {
    /// Whether the receiver took it.
    pub fn is_delivered(&self) -> bool {
        matches!(self, Attempt::Delivered { .. })
    }

    /// The status the receiver answered with (HTTP or SMTP), if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Attempt::Delivered { status } | Attempt::Retry { status, .. } | Attempt::Rejected { status, .. } => *status,
            Attempt::Gone { .. } => Some(410),
        }
    }

    /// What happened, for a delivery's history ("delivered" when it was).
    pub fn reason(&self) -> &str {
        match self {
            Attempt::Delivered { .. } => "delivered",
            Attempt::Retry { reason, .. } | Attempt::Rejected { reason, .. } | Attempt::Gone { reason } => reason,
        }
    }
}

/// The longest wait a receiver's `Retry-After` can ask for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How much of a receiver's answer an [`Attempt`]'s reason quotes.
pub const QUOTED_CHARS: usize = 200;

/// The verdict on an HTTP answer by its status alone: 2xx delivered; 408, 429 and 5xx retried
/// (after `retry_after`, capped at [`MAX_RETRY_AFTER`]); 410 gone; anything else rejected.
/// `whom` names the receiver in the reason ("https://x/y", "the WeCom robot at qyapi…"); `body`
/// is the start of its answer, quoted in the reason.
pub fn judge_status(status: u16, retry_after: Option<Duration>, whom: &str, body: &[u8]) -> Attempt {
    let quoted = quote(body);
    let reason = if quoted.is_empty() {
        format!("HTTP {status} from {whom}")
    } else {
        format!("HTTP {status} from {whom}: {quoted}")
    };
    match status {
        200..=299 => Attempt::Delivered { status: Some(status) },
        408 | 429 | 500..=599 => Attempt::Retry {
            reason,
            status: Some(status),
            retry_after: retry_after.map(|d| d.min(MAX_RETRY_AFTER)),
        },
        410 => Attempt::Gone { reason },
        300..=399 => Attempt::Rejected {
            reason: format!("{reason} (redirects are not followed: configure the final URL)"),
            status: Some(status),
        },
        _ => Attempt::Rejected {
            reason,
            status: Some(status),
        },
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date (a date in the past is no wait), capped
/// at [`MAX_RETRY_AFTER`]. `None` when it is neither.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only its size can fail to parse, and a huge wait is the cap.
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The start of a receiver's answer for a reason: at most [`QUOTED_CHARS`] characters, invalid
/// UTF-8 replaced, whitespace runs (newlines included) collapsed to one space.
pub fn quote(body: &[u8]) -> String {
    // Enough bytes for QUOTED_CHARS characters of up to 4 bytes each.
    let head = &body[..body.len().min(QUOTED_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    let mut count = 0;
    for word in text.split_whitespace() {
        if count > 0 {
            out.push(' ');
            count += 1;
        }
        for c in word.chars() {
            if count >= QUOTED_CHARS {
                return out;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

/// A URL as it may appear in a reason: scheme, host, port and path, without credentials, query
/// or fragment (a query often carries a token: `?key=…`, `?access_token=…`). Text that is not a
/// URL is cut before its first `?` or `#`.
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => {
            let cut = url.find(['?', '#']).unwrap_or(url.len());
            let mut shown: String = url[..cut].chars().take(QUOTED_CHARS).collect();
            // A `user:password@` before the host.
            if let Some(at) = shown.rfind('@')
                && let Some(scheme) = shown.find("://")
                && scheme < at
            {
                shown.replace_range(scheme + 3..=at, "");
            }
            shown
        }
    }
}

/// A reqwest error as a short reason: what failed (connecting, the deadline, the request) and
/// the innermost cause ("Connection refused (os error 111)"), naming `whom`.
pub(crate) fn describe_error(e: &reqwest::Error, whom: &str) -> String {
    let mut root: Option<String> = None;
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        root = Some(cause.to_string());
        source = cause.source();
    }
    let what = if e.is_timeout() {
        if e.is_connect() {
            format!("connecting to {whom} timed out")
        } else {
            format!("request to {whom} timed out")
        }
    } else if e.is_connect() {
        format!("cannot connect to {whom}")
    } else if e.is_body() || e.is_decode() {
        format!("reading the answer of {whom} failed")
    } else {
        format!("request to {whom} failed")
    };
    match root {
        // reqwest's own chain ends in the deadline's "operation timed out": nothing to add.
        Some(root) if !e.is_timeout() => format!("{what}: {root}"),
        _ => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn statuses_map_to_attempts() {
        let at = |s| judge_status(s, None, "https://x/y", b"");
        assert_eq!(at(200), Attempt::Delivered { status: Some(200) });
        assert_eq!(at(204), Attempt::Delivered { status: Some(204) });
        for s in [408, 429, 500, 502, 503] {
            assert!(matches!(at(s), Attempt::Retry { status: Some(x), .. } if x == s), "{s}");
        }
        assert_eq!(
            at(410),
            Attempt::Gone {
                reason: "HTTP 410 from https://x/y".into()
            }
        );
        for s in [301, 400, 401, 403, 404, 413, 422] {
            assert!(
                matches!(at(s), Attempt::Rejected { status: Some(x), .. } if x == s),
                "{s}"
            );
        }
        assert_eq!(
            at(503).reason(),
            "HTTP 503 from https://x/y",
            "the reason names the status and the receiver"
        );
    }

    #[test]
    fn retry_after_is_capped_and_kept_only_for_retries() {
        let long = Some(Duration::from_secs(86_400));
        assert_eq!(
            judge_status(429, long, "u", b""),
            Attempt::Retry {
                reason: "HTTP 429 from u".into(),
                status: Some(429),
                retry_after: Some(MAX_RETRY_AFTER)
            }
        );
        assert!(matches!(judge_status(400, long, "u", b""), Attempt::Rejected { .. }));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = Utc
            .with_ymd_and_hms(2015, 10, 21, 7, 28, 0)
            .single()
            .unwrap_or_default();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("99999999999999999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Thu, 22 Oct 2015 07:28:00 GMT", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn quotes_are_short_and_on_one_line() {
        assert_eq!(quote(b"  bad\r\n  request \n"), "bad request");
        let long = "错".repeat(500);
        assert_eq!(quote(long.as_bytes()).chars().count(), QUOTED_CHARS);
        assert_eq!(quote(&[0xff, b'x']), "\u{fffd}x");
        let reason = judge_status(500, None, "u", "x".repeat(1000).as_bytes());
        assert_eq!(reason.reason().len(), "HTTP 500 from u: ".len() + QUOTED_CHARS);
    }

    #[test]
    fn urls_in_reasons_carry_no_credentials() {
        assert_eq!(
            display_url("https://user:pw@hooks.example.com/a/b?key=secret#frag"),
            "https://hooks.example.com/a/b"
        );
        assert_eq!(
            display_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc"),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
        );
        assert_eq!(display_url("not a url?token=x"), "not a url");
        assert_eq!(display_url("ht!tp://u:p@h/x?y"), "ht!tp://h/x");
    }
}
