//! `switchboard loadgen`: drives a running gateway over HTTP with a mix of all four channels and
//! reports accepted requests per second and latency percentiles.
//!
//! Requests cycle app → email → phone → chat. Their text comes from the built-in samples
//! (`crate::demo::samples`); one email in five is a real MIME fixture (GB2312, GBK, Big5,
//! multipart with attachments, HTML only) with a fresh `Message-ID`. Every request has an id
//! unique to the run, so each one is a new ticket. Latency is measured from sending the request
//! to reading the whole response, i.e. it includes the broker's confirm.

use crate::client::{ClientError, HttpClient};
use crate::demo::{Sample, samples};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard::contracts::intake::IntakeRequest;
use switchboard::core::customer::Customer;

pub const CHANNELS: [&str; 4] = ["app", "email", "phone", "chat"];

/// Real messages from `tests/fixtures/email`, compiled in so the binary needs no files.
const EMAIL_FIXTURES: [&[u8]; 6] = [
    include_bytes!("../../tests/fixtures/email/alternative_utf8.eml"),
    include_bytes!("../../tests/fixtures/email/gb2312_base64.eml"),
    include_bytes!("../../tests/fixtures/email/gbk_qp.eml"),
    include_bytes!("../../tests/fixtures/email/big5_subject.eml"),
    include_bytes!("../../tests/fixtures/email/html_only.eml"),
    include_bytes!("../../tests/fixtures/email/mixed_attachments.eml"),
];

/// One request, ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub channel: &'static str,
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: Bytes,
}

/// The samples of each channel, in [`CHANNELS`] order (all samples when a channel has none).
pub struct Corpus {
    by_channel: Vec<Vec<Sample>>,
}

impl Corpus {
    pub fn builtin() -> Corpus {
        let all = samples();
        let by_channel = CHANNELS
            .iter()
            .map(|c| {
                let mine: Vec<Sample> = all.iter().filter(|s| s.channel == *c).cloned().collect();
                if mine.is_empty() { all.clone() } else { mine }
            })
            .collect();
        Corpus { by_channel }
    }

    fn sample(&self, channel: usize, n: usize) -> Option<&Sample> {
        let pool = self.by_channel.get(channel)?;
        pool.get(n % pool.len().max(1))
    }
}

/// Request `i` of run `run`: channel `i % 4`, text from the samples.
pub fn prepare(corpus: &Corpus, run: &str, i: usize, now: DateTime<Utc>) -> Prepared {
    let c = i % CHANNELS.len();
    let n = i / CHANNELS.len();
    let id = format!("loadgen-{run}-{i}");
    let (subject, text, tier) = match corpus.sample(c, n) {
        Some(s) => (s.subject.clone(), s.body.clone(), Some(s.tier)),
        None => (None, "打印机坏了，无法打印，请尽快处理".to_owned(), None),
    };
    let phone = format!("+86 13{} {:04} {:04}", n % 10, (n / 10) % 10_000, (i * 7919) % 10_000);
    match CHANNELS[c] {
        "app" => {
            let request = IntakeRequest {
                channel: "app".into(),
                channel_message_id: id,
                received_at: now,
                customer: Customer {
                    customer_id: Some(format!("C{n:06}")),
                    phone: Some(phone),
                    tier,
                    ..Default::default()
                },
                subject,
                body: text,
                quoted_history: None,
                thread_ref: None,
                attachments: vec![],
                submitted_by: None,
                record: None,
            };
            json("app", "/v1/requests", &request)
        }
        "email" => {
            let raw = if n.is_multiple_of(5) {
                with_message_id(
                    EMAIL_FIXTURES[(n / 5) % EMAIL_FIXTURES.len()],
                    &format!("{id}@loadgen.example"),
                )
            } else {
                synth_email(&id, n, subject.as_deref(), &text, now)
            };
            Prepared {
                channel: "email",
                path: "/v1/channels/email",
                content_type: "message/rfc822",
                body: raw.into(),
            }
        }
        "phone" => {
            let missed = n % 10 == 9;
            let event = serde_json::json!({
                "call_id": id,
                "caller_number": phone,
                "line_called": "400-820-1234",
                "ivr_choice": if n.is_multiple_of(3) { serde_json::Value::from("2 故障报修") } else { serde_json::Value::Null },
                "started_at": now - chrono::Duration::seconds(90),
                "ended_at": now,
                "outcome": if missed { "missed" } else { "answered" },
                "transcript": if missed { serde_json::Value::Null } else { serde_json::Value::from(text) },
                "tier": tier,
            });
            json("phone", "/v1/channels/phone", &event)
        }
        _ => {
            let platform = ["web", "app", "mini-program"][n % 3];
            let message = serde_json::json!({
                "session_id": format!("loadgen-{run}-s{i}"),
                "message_id": id,
                "sent_at": now,
                "visitor": { "name": format!("访客{n}"), "customer_id": format!("C{n:06}"), "tier": tier },
                "text": text,
                "platform": platform,
            });
            json("chat", "/v1/channels/chat", &message)
        }
    }
}

fn json(channel: &'static str, path: &'static str, value: &impl serde::Serialize) -> Prepared {
    Prepared {
        channel,
        path,
        content_type: "application/json",
        body: serde_json::to_vec(value).unwrap_or_default().into(),
    }
}

/// A plain UTF-8 email: encoded-word subject, base64 body, as most mailers send Chinese text.
fn synth_email(id: &str, n: usize, subject: Option<&str>, text: &str, now: DateTime<Utc>) -> Vec<u8> {
    let subject = subject.unwrap_or("咨询");
    let mut body = String::new();
    let encoded = STANDARD.encode(text.as_bytes());
    for chunk in encoded.as_bytes().chunks(76) {
        body.push_str(&String::from_utf8_lossy(chunk));
        body.push_str("\r\n");
    }
    format!(
        "From: =?UTF-8?B?{name}?= <customer{n}@loadgen.example>\r\n\
         To: support@switchboard.example\r\n\
         Subject: =?UTF-8?B?{subject}?=\r\n\
         Message-ID: <{id}@loadgen.example>\r\n\
         Date: {date}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=UTF-8\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{body}",
        name = STANDARD.encode(format!("客户{n}")),
        subject = STANDARD.encode(subject),
        date = now.to_rfc2822(),
    )
    .into_bytes()
}

/// `raw` with its `Message-ID` header (and any folded continuation) replaced by `<id>`, or one
/// added when there is none.
pub fn with_message_id(raw: &[u8], id: &str) -> Vec<u8> {
    let header_end = find(raw, b"\r\n\r\n")
        .or_else(|| find(raw, b"\n\n"))
        .unwrap_or(raw.len());
    let mut line_start = 0;
    while line_start < header_end {
        let line_end = raw[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |p| line_start + p + 1);
        let line = &raw[line_start..line_end];
        if line.len() >= 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
            let mut end = line_end;
            while end < header_end && matches!(raw.get(end), Some(b' ' | b'\t')) {
                end = raw[end..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(raw.len(), |p| end + p + 1);
            }
            let eol: &[u8] = if line.ends_with(b"\r\n") { b"\r\n" } else { b"\n" };
            let mut out = Vec::with_capacity(raw.len() + id.len());
            out.extend_from_slice(&raw[..line_start]);
            out.extend_from_slice(format!("Message-ID: <{id}>").as_bytes());
            out.extend_from_slice(eol);
            out.extend_from_slice(&raw[end..]);
            return out;
        }
        line_start = line_end;
    }
    let mut out = format!("Message-ID: <{id}>\r\n").into_bytes();
    out.extend_from_slice(raw);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub url: String,
    pub key: String,
    pub requests: usize,
    pub concurrency: usize,
    /// Requests per second over all workers; `None`: as fast as the gateway answers.
    pub rate: Option<f64>,
    /// A live progress line on stderr.
    pub progress: bool,
}

/// What happened.
#[derive(Debug)]
pub struct Report {
    pub url: String,
    pub requests: usize,
    pub concurrency: usize,
    pub elapsed: Duration,
    pub accepted: usize,
    /// Responses other than 202, by status code.
    pub refused: BTreeMap<u16, usize>,
    /// Requests that got no response (connection refused, timeout).
    pub transport_errors: usize,
    pub first_error: Option<String>,
    pub accepted_by_channel: BTreeMap<&'static str, usize>,
    /// Latency of accepted requests, in microseconds.
    pub latency: Histogram<u64>,
}

impl Report {
    pub fn accepted_per_sec(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "loadgen: {} requests to {} with concurrency {} (app/email/phone/chat mix)",
            self.requests, self.url, self.concurrency
        )?;
        writeln!(
            f,
            "  accepted (202): {}   refused: {}   transport errors: {}",
            self.accepted,
            if self.refused.is_empty() {
                "none".to_owned()
            } else {
                self.refused
                    .iter()
                    .map(|(s, n)| format!("{s}×{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
            self.transport_errors
        )?;
        writeln!(
            f,
            "  per channel: {}",
            self.accepted_by_channel
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(
            f,
            "  elapsed {:.2} s → {:.0} accepted requests/s",
            self.elapsed.as_secs_f64(),
            self.accepted_per_sec()
        )?;
        write!(
            f,
            "  latency (accepted, ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            self.latency_ms(0.5),
            self.latency_ms(0.9),
            self.latency_ms(0.99),
            self.latency.max() as f64 / 1000.0
        )?;
        if let Some(e) = &self.first_error {
            write!(f, "\n  first error: {e}")?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Tally {
    refused: BTreeMap<u16, usize>,
    transport_errors: usize,
    first_error: Option<String>,
    accepted_by_channel: BTreeMap<&'static str, usize>,
}

/// Runs the load and returns the report. Fails only when the URL is unusable.
pub async fn run(spec: LoadSpec) -> Result<Report, ClientError> {
    HttpClient::new(&spec.url)?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let corpus = Arc::new(Corpus::builtin());
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).map_err(|e| ClientError::BadUrl(e.to_string()))?;
    let latency = Arc::new(Mutex::new(hist));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let auth = format!("Bearer {}", spec.key);
    let started = Instant::now();

    let progress = spec.progress.then(|| {
        let (accepted, done, latency) = (accepted.clone(), done.clone(), latency.clone());
        let total = spec.requests;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let (a, d) = (accepted.load(Ordering::Relaxed), done.load(Ordering::Relaxed));
                let p99 = latency
                    .lock()
                    .map(|h| h.value_at_quantile(0.99) as f64 / 1000.0)
                    .unwrap_or(0.0);
                let rate = a as f64 / started.elapsed().as_secs_f64().max(1e-9);
                eprint!("\rloadgen: {d}/{total} answered, {a} accepted, {rate:.0} accepted/s, p99 {p99:.1} ms   ");
                let _ = std::io::stderr().flush();
            }
        })
    });

    let mut workers = Vec::with_capacity(spec.concurrency.max(1));
    for _ in 0..spec.concurrency.max(1) {
        let (corpus, next, accepted, done) = (corpus.clone(), next.clone(), accepted.clone(), done.clone());
        let (latency, tally, auth, spec, run_id) = (
            latency.clone(),
            tally.clone(),
            auth.clone(),
            spec.clone(),
            run_id.clone(),
        );
        workers.push(tokio::spawn(async move {
            let Ok(mut client) = HttpClient::new(&spec.url) else {
                return;
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= spec.requests {
                    break;
                }
                if let Some(rate) = spec.rate.filter(|r| *r > 0.0) {
                    tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into()).await;
                }
                let req = prepare(&corpus, &run_id, i, Utc::now());
                let sent = Instant::now();
                let result = client
                    .post(
                        req.path,
                        req.content_type,
                        &[("authorization", auth.as_str())],
                        req.body,
                    )
                    .await;
                let micros = sent.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                done.fetch_add(1, Ordering::Relaxed);
                let Ok(mut t) = tally.lock() else { return };
                match result {
                    Ok(reply) if reply.status.as_u16() == 202 => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        *t.accepted_by_channel.entry(req.channel).or_default() += 1;
                        drop(t);
                        if let Ok(mut h) = latency.lock() {
                            h.saturating_record(micros.max(1));
                        }
                    }
                    Ok(reply) => {
                        *t.refused.entry(reply.status.as_u16()).or_default() += 1;
                        if t.first_error.is_none() {
                            t.first_error = Some(format!(
                                "{} {}: {}",
                                reply.status,
                                req.path,
                                String::from_utf8_lossy(&reply.body)
                                    .chars()
                                    .take(300)
                                    .collect::<String>()
                            ));
                        }
                    }
                    Err(e) => {
                        t.transport_errors += 1;
                        if t.first_error.is_none() {
                            t.first_error = Some(e.to_string());
                        }
                    }
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let tally = std::mem::take(&mut *tally.lock().map_err(|_| ClientError::BadUrl("poisoned".into()))?);
    let latency = latency
        .lock()
        .map(|h| h.clone())
        .map_err(|_| ClientError::BadUrl("poisoned".into()))?;
    Ok(Report {
        url: spec.url,
        requests: spec.requests,
        concurrency: spec.concurrency.max(1),
        elapsed,
        accepted: accepted.load(Ordering::Relaxed),
        refused: tally.refused,
        transport_errors: tally.transport_errors,
        first_error: tally.first_error,
        accepted_by_channel: tally.accepted_by_channel,
        latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard::channels::{chat, email, phone};

    #[test]
    fn every_prepared_request_normalises() {
        let corpus = Corpus::builtin();
        let now = Utc::now();
        let channels: Vec<String> = ["phone", "chat", "email", "app"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for i in 0..200 {
            let p = prepare(&corpus, "t", i, now);
            let request = match p.channel {
                "app" => serde_json::from_slice::<IntakeRequest>(&p.body).unwrap(),
                "email" => email::parse_email(&p.body, now).unwrap(),
                "phone" => phone::normalize_call(&phone::parse_call_event(&p.body).unwrap(), now).unwrap(),
                _ => chat::normalize_chat(&chat::parse_chat_message(&p.body).unwrap(), now).unwrap(),
            };
            assert_eq!(request.channel, p.channel);
            assert_eq!(request.validate(&channels), Ok(()), "{i}");
            assert!(
                request.channel_message_id.starts_with(&format!("loadgen-t-{i}")),
                "{i}: {}",
                request.channel_message_id
            );
        }
    }

    #[test]
    fn message_id_is_replaced_or_added() {
        let raw = b"From: a@b.c\r\nMessage-ID:\r\n <old@x>\r\nSubject: hi\r\n\r\nMessage-ID: body";
        assert_eq!(
            with_message_id(raw, "new@y"),
            b"From: a@b.c\r\nMessage-ID: <new@y>\r\nSubject: hi\r\n\r\nMessage-ID: body".to_vec()
        );
        let raw = b"message-id: <old@x>\nSubject: hi\n\nbody";
        assert_eq!(
            with_message_id(raw, "n"),
            b"Message-ID: <n>\nSubject: hi\n\nbody".to_vec()
        );
        let raw = b"Subject: hi\r\n\r\nbody";
        assert_eq!(
            with_message_id(raw, "n"),
            b"Message-ID: <n>\r\nSubject: hi\r\n\r\nbody".to_vec()
        );
    }
}
