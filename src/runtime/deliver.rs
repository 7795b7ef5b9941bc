//! The deliver stage: claims due deliveries (written by the notify stage) and sends them.
//!
//! A claim leases a row for twice `deliver_timeout_ms` and counts the attempt; the send's
//! outcome then marks it delivered, schedules the next attempt (backoff, or the receiver's
//! `Retry-After`), or gives it up: a delivery past its give-up time, or refused for good, is
//! marked failed and dead-lettered through the outbox (so `switchboard dead list` shows it).
//! A sender killed mid-send leaves the lease to expire, and the delivery goes again with the
//! same id (`webhook-id`, Message-ID): at least once, recognisable by the receiver. Deliveries
//! of one ticket in one lane go one at a time, in event order (`claim_due`).

use crate::bus::dead;
use crate::config::Settings;
use crate::contracts::{Exchange, Outgoing, StageName};
use crate::core::notify::{self, NotifyPolicy, Transport};
use crate::core::privacy::mask_email;
use crate::outbound::robots::{self, Robot};
use crate::outbound::smtp::{Mail, Mailer};
use crate::outbound::{Attempt, client, post};
use crate::runtime::ops::health::Health;
use crate::store::outbound::{self as store, Due, Settled};
use crate::store::{Db, StoreError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("cannot set up outbound HTTP: {0}")]
    Client(#[from] client::ClientError),
    #[error("smtp_url / smtp_from: {0}")]
    Smtp(#[from] crate::outbound::smtp::SmtpError),
}

/// What sends: the HTTPS client, the mailer (if SMTP is configured) and the limits.
#[derive(Clone)]
pub struct Sender {
    pub http: reqwest::Client,
    pub mailer: Option<Mailer>,
    /// People's media secrets are looked up here when sending, never stored with a delivery.
    pub notify: Arc<NotifyPolicy>,
    /// How long a claimed delivery is held: twice a send's deadline, and a second more.
    pub lease: Duration,
}

impl Sender {
    pub fn from_settings(s: &Settings, notify: Arc<NotifyPolicy>) -> Result<Sender, DeliverError> {
        let timeout = Duration::from_millis(s.deliver_timeout_ms.max(100));
        let mailer = match &s.smtp_url {
            Some(url) => Some(Mailer::new(url, &s.smtp_from, timeout)?),
            None => None,
        };
        Ok(Sender {
            http: client::http_client(timeout)?,
            mailer,
            notify,
            lease: timeout * 2 + Duration::from_secs(1),
        })
    }

    /// Sends one delivery once.
    pub async fn send(&self, d: &Due, now: DateTime<Utc>) -> Attempt {
        let Some(transport) = Transport::parse(&d.transport) else {
            return Attempt::Rejected {
                reason: format!("unknown transport {:?}", d.transport),
                status: None,
            };
        };
        let payload = &d.payload;
        // A person's own webhook or robot secret, from the policy (a rotation applies to retries).
        let own_secret = payload
            .get("person")
            .and_then(Value::as_str)
            .and_then(|p| self.notify.secret_of(p, transport))
            .map(str::to_owned);
        match transport {
            Transport::Webhook | Transport::Callback => {
                let secret = d.secret.clone().or(own_secret);
                if transport == Transport::Callback && secret.is_none() {
                    return Attempt::Rejected {
                        reason: "the integration key has no callback secret: set its callback URL again".into(),
                        status: None,
                    };
                }
                let body = match serde_json::to_vec(payload) {
                    Ok(b) => b,
                    Err(e) => {
                        return Attempt::Rejected {
                            reason: format!("payload does not serialise: {e}"),
                            status: None,
                        };
                    }
                };
                let trace = trace_header(payload);
                let p = post::SignedPost {
                    url: &d.target,
                    msg_id: &d.msg_id,
                    secret: secret.as_deref(),
                    body: &body,
                    content_type: "application/json",
                    extra_headers: &trace,
                };
                post::post_signed(&self.http, &p, now).await
            }
            Transport::Email => {
                let Some(mailer) = &self.mailer else {
                    return Attempt::Retry {
                        reason: "no SMTP server is configured (smtp_url)".into(),
                        status: None,
                        retry_after: None,
                    };
                };
                mailer.send(&mail_of(d, payload)).await
            }
            Transport::WeCom | Transport::DingTalk | Transport::Feishu => {
                let robot = match transport {
                    Transport::WeCom => Robot::WeCom,
                    Transport::DingTalk => Robot::DingTalk,
                    _ => Robot::Feishu,
                };
                let text = |k: &str| payload.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                robots::send(
                    &self.http,
                    robot,
                    &d.target,
                    own_secret.as_deref(),
                    &text("title"),
                    &text("text"),
                    now,
                )
                .await
            }
        }
    }
}

fn mail_of(d: &Due, payload: &Value) -> Mail {
    let s = |k: &str| payload.get(k).and_then(Value::as_str).map(str::to_owned);
    Mail {
        message_id: s("message_id").unwrap_or_else(|| d.msg_id.clone()),
        to: s("to").unwrap_or_else(|| d.target.clone()),
        to_name: s("to_name"),
        subject: s("subject").unwrap_or_default(),
        text: s("text").unwrap_or_default(),
        in_reply_to: s("in_reply_to"),
        references: payload
            .get("references")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        headers: payload
            .get("headers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|h| Some((h.get(0)?.as_str()?.to_owned(), h.get(1)?.as_str()?.to_owned())))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .chain(
                trace_header(payload)
                    .into_iter()
                    .map(|(_, t)| ("Traceparent".to_owned(), t)),
            )
            .collect(),
    }
}

/// What an attempt's outcome makes of the row. Pure.
pub fn settle_of(d: &Due, attempt: &Attempt, now: DateTime<Utc>, first_retry: chrono::Duration) -> Settled {
    match attempt {
        Attempt::Delivered { status } => Settled::Delivered { status: *status },
        Attempt::Retry {
            reason,
            status,
            retry_after,
        } => {
            let backoff = notify::backoff(d.attempts, first_retry);
            let wait = retry_after
                .and_then(|r| chrono::Duration::from_std(r).ok())
                .map_or(backoff, |r| r.max(backoff).min(chrono::Duration::hours(1)));
            let at = now + wait;
            if at > d.give_up_at {
                Settled::Failed {
                    status: *status,
                    error: format!("gave up after {} attempts: {reason}", d.attempts),
                }
            } else {
                Settled::Retry {
                    at,
                    status: *status,
                    error: reason.clone(),
                }
            }
        }
        Attempt::Rejected { reason, status } => Settled::Failed {
            status: *status,
            error: reason.clone(),
        },
        Attempt::Gone { reason } => Settled::Failed {
            status: Some(410),
            error: reason.clone(),
        },
    }
}

/// The dead letter of a delivery given up: what it was and why, without the message itself
/// (a customer's address is masked).
/// The W3C `traceparent` header for a webhook whose body is an event that carries one (the
/// CloudEvents distributed-tracing attribute), so the receiver's work joins the ticket's trace.
/// A malformed value is not passed on.
pub fn trace_header(payload: &Value) -> Vec<(&'static str, String)> {
    payload
        .get(crate::contracts::outgoing::TRACEPARENT)
        .and_then(Value::as_str)
        .and_then(crate::runtime::trace::valid)
        .map(|t| vec![(crate::contracts::outgoing::TRACEPARENT, t)])
        .unwrap_or_default()
}

pub fn dead_letter(d: &Due, error: &str, now: DateTime<Utc>) -> Outgoing {
    let target = if d.kind == notify::Kind::Customer.as_str() && d.transport == Transport::Email.as_str() {
        mask_email(&d.target)
    } else {
        crate::outbound::display_url(&d.target)
    };
    Outgoing {
        exchange: Exchange::Dlx,
        routing_key: String::new(),
        message_id: d.msg_id.clone(),
        body: json!({
            "delivery": d.id,
            "key": d.key,
            "kind": d.kind,
            "purpose": d.purpose,
            "ticket": d.number,
            "sequence": d.seq,
            "endpoint": d.endpoint_id,
            "transport": d.transport,
            "target": target,
            "attempts": d.attempts,
            "error": error,
            "retry": format!("switchboard webhooks retry {}", d.id),
        })
        .into(),
        headers: vec![
            (
                dead::REASON.into(),
                format!("delivery {} ({} to {target}) failed: {error}", d.id, d.purpose),
            ),
            (dead::STAGE.into(), StageName::Deliver.as_str().into()),
            (dead::ORIGINAL_EXCHANGE.into(), String::new()),
            (dead::ORIGINAL_ROUTING_KEY.into(), String::new()),
            (dead::FAILED_AT.into(), now.to_rfc3339()),
            (dead::DEAD_ID.into(), format!("dlv{}", d.id)),
        ],
    }
}

/// Claims and sends one round; returns how many deliveries were claimed.
pub async fn round(
    db: &Db,
    sender: &Sender,
    limit: usize,
    concurrency: usize,
    first_retry: chrono::Duration,
) -> Result<usize, StoreError> {
    let due = store::claim_due(db, limit as i64, sender.lease).await?;
    let n = due.len();
    let results: Vec<Result<(), StoreError>> = futures::stream::iter(due)
        .map(|d| async move {
            let span = tracing::info_span!("delivery", stage = StageName::Deliver.as_str(), ticket = d.number.as_deref().unwrap_or(""), message_id = %d.msg_id, purpose = %d.purpose);
            async {
                let started = std::time::Instant::now();
                let attempt = sender.send(&d, Utc::now()).await;
                let now = Utc::now();
                let settled = settle_of(&d, &attempt, now, first_retry);
                let result = match &settled {
                    Settled::Delivered { .. } => "delivered",
                    Settled::Retry { .. } => "retry",
                    Settled::Failed { .. } => "failed",
                };
                metrics::counter!("switchboard_deliveries_total", "transport" => d.transport.clone(), "result" => result).increment(1);
                metrics::histogram!("switchboard_delivery_seconds", "transport" => d.transport.clone())
                    .record(started.elapsed().as_secs_f64());
                let dead = match &settled {
                    Settled::Failed { error, .. } => {
                        warn!(delivery = d.id, target = %crate::outbound::display_url(&d.target), error = %error, "delivery given up");
                        Some(dead_letter(&d, error, now))
                    }
                    Settled::Retry { error, at, .. } => {
                        info!(delivery = d.id, attempt = d.attempts, next = %at, error = %error, "delivery will be retried");
                        None
                    }
                    Settled::Delivered { .. } => None,
                };
                store::settle(db, &d, &settled, dead.as_ref()).await?;
                if let (Attempt::Gone { reason }, Some(e)) = (&attempt, &d.endpoint_id)
                    && store::disable_gone(db, e, reason).await?
                {
                    warn!(endpoint = %e, reason = %reason, "webhook endpoint disabled: it answered 410 Gone");
                }
                Ok(())
            }
            .instrument(span)
            .await
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(n)
}

/// Runs until `shutdown`: claims due deliveries, sends them, sleeps until the next is due
/// (at most 200 ms, so rows written by the notify stage go out promptly). Sends in flight
/// finish (each is bounded by `deliver_timeout_ms`) before it returns.
pub async fn run(
    db: Db,
    settings: &Settings,
    notify: Arc<NotifyPolicy>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> Result<(), DeliverError> {
    const NAME: &str = StageName::Deliver.as_str();
    const POLL: Duration = Duration::from_millis(200);
    let sender = Sender::from_settings(settings, notify)?;
    if sender.mailer.is_none() {
        info!("no smtp_url: email deliveries are not planned, staff are reached by their other media");
    }
    health.register(NAME, 0);
    health.set_connected(NAME, true);
    let concurrency = settings.deliver_concurrency.max(1);
    let disable_after = settings.webhook_disable_after_s as i64;
    let first_retry = chrono::Duration::milliseconds(settings.deliver_first_retry_ms.max(1) as i64);
    let mut backoff = super::backoff::database();
    let mut next_check = tokio::time::Instant::now();
    loop {
        if shutdown.is_cancelled() {
            health.set_connected(NAME, false);
            return Ok(());
        }
        let r: Result<Duration, StoreError> = async {
            if tokio::time::Instant::now() >= next_check {
                next_check = tokio::time::Instant::now() + Duration::from_secs(30);
                for (id, reason) in store::disable_failing(&db, disable_after).await? {
                    warn!(endpoint = %id, reason = %reason, "webhook endpoint disabled");
                }
            }
            // No more than can be sent at once: a claimed row waiting for a free slot could
            // outlive its lease and be sent twice.
            let claimed = round(&db, &sender, concurrency, concurrency, first_retry).await?;
            if claimed > 0 {
                return Ok(Duration::ZERO);
            }
            // Nothing claimable: sleep until the next due time, or a poll interval when the
            // earliest row is due but waits its turn (behind an earlier one of its ticket, or
            // for a disabled endpoint) — never a busy loop.
            let next = store::next_due(&db).await?;
            Ok(next
                .and_then(|t| (t - Utc::now()).to_std().ok())
                .filter(|d| !d.is_zero())
                .map_or(POLL, |d| d.min(POLL)))
        }
        .await;
        let sleep = match r {
            Ok(d) => {
                health.set_connected(NAME, true);
                backoff.reset();
                d
            }
            Err(e) => {
                health.set_connected(NAME, false);
                let retry_in = backoff.next_delay();
                warn!(error = %e, ?retry_in, "deliver waiting for Postgres");
                retry_in
            }
        };
        if sleep > Duration::ZERO {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mail_of_a_traced_event_has_a_traceparent_header() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let d = Due {
            id: 1,
            key: "k".into(),
            msg_id: "m@x".into(),
            kind: "customer".into(),
            purpose: "reply".into(),
            ticket_id: None,
            number: None,
            seq: None,
            endpoint_id: None,
            transport: "email".into(),
            target: "a@example.com".into(),
            payload: serde_json::json!({}),
            attempts: 0,
            give_up_at: Utc::now(),
            secret: None,
        };
        let payload = serde_json::json!({"to": "a@example.com", "subject": "s", "text": "t",
            "headers": [["X-Switchboard-Ticket", "202612-00001"]], "traceparent": tp});
        assert_eq!(
            mail_of(&d, &payload).headers,
            vec![
                ("X-Switchboard-Ticket".to_owned(), "202612-00001".to_owned()),
                ("Traceparent".to_owned(), tp.to_owned())
            ]
        );
        let untraced = serde_json::json!({"to": "a@example.com", "headers": []});
        assert!(mail_of(&d, &untraced).headers.is_empty());
    }

    #[test]
    fn a_webhook_of_a_traced_event_carries_its_traceparent_and_nothing_malformed() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_header(&serde_json::json!({"type": "x", "traceparent": tp})),
            vec![("traceparent", tp.to_owned())]
        );
        assert!(trace_header(&serde_json::json!({"type": "x"})).is_empty());
        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf9\r\nX: y",
        ] {
            assert!(
                trace_header(&serde_json::json!({"traceparent": bad})).is_empty(),
                "{bad}"
            );
        }
        assert!(trace_header(&serde_json::json!({"traceparent": 7})).is_empty());
    }

    fn five() -> chrono::Duration {
        chrono::Duration::seconds(5)
    }

    fn due(attempts: i32, give_up_in: i64) -> Due {
        Due {
            id: 1,
            key: "k".into(),
            msg_id: "m".into(),
            kind: "customer".into(),
            purpose: "reply".into(),
            ticket_id: Some(1),
            number: Some("202612-00001".into()),
            seq: Some(3),
            endpoint_id: None,
            transport: "email".into(),
            target: "zhang.san@example.com".into(),
            payload: json!({}),
            attempts,
            give_up_at: Utc::now() + chrono::Duration::seconds(give_up_in),
            secret: None,
        }
    }

    #[test]
    fn a_retry_waits_longer_each_time_and_gives_up_past_the_deadline() {
        let now = Utc::now();
        let retry = Attempt::Retry {
            reason: "HTTP 503".into(),
            status: Some(503),
            retry_after: None,
        };
        let Settled::Retry { at: first, .. } = settle_of(&due(1, 3600), &retry, now, five()) else {
            panic!()
        };
        let Settled::Retry { at: third, .. } = settle_of(&due(3, 3600), &retry, now, five()) else {
            panic!()
        };
        assert!(first < third);
        match settle_of(&due(9, 10), &retry, now, five()) {
            Settled::Failed { error, status } => {
                assert!(error.contains("gave up after 9 attempts: HTTP 503"), "{error}");
                assert_eq!(status, Some(503));
            }
            other => panic!("{other:?}"),
        }
        let after = Attempt::Retry {
            reason: "429".into(),
            status: Some(429),
            retry_after: Some(Duration::from_secs(600)),
        };
        let Settled::Retry { at, .. } = settle_of(&due(1, 3600), &after, now, five()) else {
            panic!()
        };
        assert!(at >= now + chrono::Duration::seconds(600));
    }

    #[test]
    fn a_refusal_fails_at_once_and_its_dead_letter_masks_the_customer() {
        let now = Utc::now();
        let s = settle_of(
            &due(1, 3600),
            &Attempt::Rejected {
                reason: "550 no such user".into(),
                status: Some(550),
            },
            now,
            five(),
        );
        assert!(matches!(s, Settled::Failed { .. }));
        let dl = dead_letter(&due(1, 3600), "550 no such user", now);
        let text = dl.body.json().to_owned() + &format!("{:?}", dl.headers);
        assert!(!text.contains("zhang.san@example.com"), "{text}");
        assert!(dl.headers.iter().any(|(k, v)| k == dead::STAGE && v == "deliver"));
    }
}
