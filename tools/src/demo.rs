//! Built-in sample traffic: realistic requests from all four channels, with duplicates, thread
//! replies and a few broken messages, for the quick start and for load tests.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use switchboard::contracts::intake::IntakeRequest;
use switchboard::core::customer::{Customer, Tier};

/// The labelled requests shipped in `config/eval/requests.jsonl`, reused as sample traffic.
pub const SAMPLE_REQUESTS: &str = include_str!("../../config/eval/requests.jsonl");

#[derive(Debug, Clone, Deserialize)]
pub struct Sample {
    pub id: String,
    pub channel: String,
    pub tier: Tier,
    #[serde(default)]
    pub subject: Option<String>,
    pub body: String,
}

pub fn samples() -> Vec<Sample> {
    SAMPLE_REQUESTS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// One message to publish: routing key, AMQP message id, body bytes, and what it is.
#[derive(Debug, Clone)]
pub struct Publication {
    pub routing_key: String,
    pub message_id: String,
    pub payload: Vec<u8>,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Opens a ticket.
    New,
    /// Same channel message id as an earlier one: must not open a second ticket.
    Duplicate,
    /// Continues an earlier conversation: appended, not a new ticket.
    Reply,
    /// Breaks the contract: must end in the dead-letter queue with its reason.
    Invalid,
}

fn customer(n: usize, channel: &str, tier: Tier) -> Customer {
    let phone = format!("13{:09}", (n * 7919) % 1_000_000_000);
    let mut c = Customer {
        tier: Some(tier),
        ..Default::default()
    };
    match channel {
        "email" => {
            c.email = Some(format!("customer{n}@example.com"));
            c.name = Some(format!("Customer {n}"));
        }
        "phone" => c.phone = Some(phone),
        "chat" => c.customer_id = Some(format!("C{n:06}")),
        _ => {
            c.customer_id = Some(format!("C{n:06}"));
            c.phone = Some(phone);
        }
    }
    c
}

/// New requests numbered `range` (cycling through the samples) plus, every 25th, a duplicate, a thread
/// reply on chat or email, and every 100th an invalid message when `with_invalid`.
pub fn traffic(run: &str, range: std::ops::Range<usize>, with_invalid: bool, now: DateTime<Utc>) -> Vec<Publication> {
    let samples = samples();
    let mut out = Vec::with_capacity(range.len() + range.len() / 10);
    if samples.is_empty() {
        return out;
    }
    for n in range {
        let s = &samples[n % samples.len()];
        let cmid = format!("demo-{run}-{n}");
        let thread_ref = (s.channel == "chat").then(|| format!("chat:demo-{run}-session-{n}"));
        let req = IntakeRequest {
            channel: s.channel.clone(),
            channel_message_id: cmid.clone(),
            received_at: now,
            customer: customer(n, &s.channel, s.tier),
            subject: s.subject.clone(),
            body: s.body.clone(),
            quoted_history: None,
            thread_ref,
            attachments: vec![],
            submitted_by: None,
            record: None,
        };
        let payload = serde_json::to_vec(&req).unwrap_or_default();
        out.push(Publication {
            routing_key: format!("intake.{}", s.channel),
            message_id: cmid.clone(),
            payload: payload.clone(),
            kind: Kind::New,
        });
        if n % 25 == 7 {
            out.push(Publication {
                routing_key: format!("intake.{}", s.channel),
                message_id: cmid.clone(),
                payload,
                kind: Kind::Duplicate,
            });
        }
        if n % 25 == 13 && (s.channel == "chat" || s.channel == "email") {
            let reply_id = format!("{cmid}-reply");
            let thread_ref = if s.channel == "chat" {
                format!("chat:demo-{run}-session-{n}")
            } else {
                format!("<{cmid}>")
            };
            let reply = IntakeRequest {
                channel_message_id: reply_id.clone(),
                body: if s.channel == "chat" {
                    "还在吗？麻烦快一点，谢谢".into()
                } else {
                    "Any update on this? Thanks.".into()
                },
                subject: s.subject.as_ref().map(|x| format!("Re: {x}")),
                thread_ref: Some(thread_ref),
                ..req.clone()
            };
            out.push(Publication {
                routing_key: format!("intake.{}", s.channel),
                message_id: reply_id,
                payload: serde_json::to_vec(&reply).unwrap_or_default(),
                kind: Kind::Reply,
            });
        }
        if with_invalid && n % 100 == 50 {
            let bad: &[(&str, Vec<u8>)] = &[
                ("intake.app", b"{not json".to_vec()),
                ("intake.app", br#"{"channel":"app","channel_message_id":"x","received_at":"2026-01-01T00:00:00Z","customer":{},"body":"no contact"}"#.to_vec()),
                ("intake.fax", br#"{"channel":"fax","channel_message_id":"x","received_at":"2026-01-01T00:00:00Z","customer":{"phone":"13800000000"},"body":"hello"}"#.to_vec()),
                ("intake.chat", vec![0xff, 0xfe, 0x00, 0x41]),
            ];
            let (rk, payload) = &bad[(n / 100) % bad.len()];
            out.push(Publication {
                routing_key: rk.to_string(),
                message_id: format!("demo-{run}-bad-{n}"),
                payload: payload.clone(),
                kind: Kind::Invalid,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cover_all_four_channels() {
        let s = samples();
        assert!(s.len() >= 300);
        for ch in ["phone", "chat", "email", "app"] {
            assert!(s.iter().any(|x| x.channel == ch), "{ch}");
        }
    }

    #[test]
    fn traffic_mixes_kinds_and_valid_messages_decode() {
        let t = traffic("r1", 0..400, true, Utc::now());
        let channels = vec!["phone".to_string(), "chat".into(), "email".into(), "app".into()];
        for kind in [Kind::New, Kind::Duplicate, Kind::Reply, Kind::Invalid] {
            assert!(t.iter().any(|p| p.kind == kind), "{kind:?}");
        }
        for p in t.iter().filter(|p| p.kind != Kind::Invalid) {
            IntakeRequest::decode(&p.payload, &channels).unwrap();
        }
        for p in t.iter().filter(|p| p.kind == Kind::Invalid) {
            assert!(IntakeRequest::decode(&p.payload, &channels).is_err());
        }
    }
}
