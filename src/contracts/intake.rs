//! The intake request (contract v1): what a channel integration hands to Switchboard.
//!
//! Decoding is strict and every failure names the field that is wrong, because the error text
//! travels with the dead letter and is what an integrator reads when a request is refused.

use crate::core::customer::Customer;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Largest body we accept: a long email thread fits, a pasted log file does not.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest encoded intake message (body, subject, attachments' metadata and envelope).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Longest value of each short field, in bytes. Each is stored in an indexed column (a B-tree
/// entry holds at most about 2.7 KB) or shown on one line; a request over them could be accepted
/// but never stored, so it is refused where the integrator can still fix it.
pub const FIELD_LIMITS: &[(&str, usize)] = &[
    ("customer.customer_id", 256),
    ("customer.phone", 64),
    ("customer.email", 320),
    ("customer.name", 256),
    ("thread_ref", 16 * 1024),
    ("attachments.filename", 1024),
    ("attachments.content_type", 255),
    ("attachments.url", 4096),
];
/// Longest single id in `thread_ref` (each becomes an indexed thread key).
pub const MAX_THREAD_REF_TOKEN_BYTES: usize = 1000;
/// Attachments one request may list.
pub const MAX_ATTACHMENTS: usize = 250;

/// `received_at` outside these years is refused: a timestamp Postgres can store and a clock
/// that is plausibly right. The gateway holds it to a tighter window around its own clock
/// ([`IntakeRequest::check_clock`]).
pub const RECEIVED_AT_YEARS: std::ops::RangeInclusive<i32> = 2000..=2999;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub filename: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Where the integration stored the bytes (Switchboard never carries file contents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One customer request, as published on `switchboard.intake` with routing key
/// `intake.<channel>` and AMQP `message_id` = `channel_message_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeRequest {
    pub channel: String,
    pub channel_message_id: String,
    pub received_at: DateTime<Utc>,
    pub customer: Customer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The customer's own words, verbatim.
    pub body: String,
    /// Earlier messages quoted below an email reply: kept verbatim, never classified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_history: Option<String>,
    /// Chat session id, email In-Reply-To/References (space separated), or a quoted ticket number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The id of the gateway API key that submitted the request, set by the gateway (whatever a
    /// client sends is replaced). It decides who may read the request's status and speak for
    /// the customer on the ticket it opens; absent for requests published to RabbitMQ directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_by: Option<String>,
    /// The service record's fields the customer or the channel knows (product, model, when it
    /// happened, what was tried, expectation, urgency, …; `core::record`). Optional: a v1
    /// request without it is what it always was. Checked against the policy's custom fields by
    /// [`IntakeRequest::validate_record`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<crate::core::record::ServiceRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error("message is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("body is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 { offset: usize },
    #[error("malformed intake request: {0}")]
    Malformed(String),
    #[error("field `{field}`: {problem}")]
    Invalid { field: &'static str, problem: String },
    /// A service record field (`record.<field>`) that is wrong.
    #[error("{0}")]
    Record(#[from] crate::core::record::RecordError),
}

impl IntakeRequest {
    /// Decode and validate a raw message body. `known_channels` comes from the policy so that a
    /// new channel (a social account, a walk-in counter) needs configuration, not code.
    pub fn decode(raw: &[u8], known_channels: &[String]) -> Result<Self, IntakeError> {
        if raw.len() > MAX_MESSAGE_BYTES {
            return Err(IntakeError::TooLarge {
                size: raw.len(),
                limit: MAX_MESSAGE_BYTES,
            });
        }
        let text = std::str::from_utf8(raw).map_err(|e| IntakeError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        // A wrong type or value names the field's path (`customer.tier`): serde's own message
        // does not, and the dead letter's reason is all an integrator gets.
        let mut de = serde_json::Deserializer::from_str(text);
        let request: IntakeRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || inner.classify() != serde_json::error::Category::Data {
                IntakeError::Malformed(inner.to_string())
            } else {
                IntakeError::Malformed(format!("field `{path}`: {inner}"))
            }
        })?;
        de.end().map_err(|e| IntakeError::Malformed(e.to_string()))?;
        request.validate(known_channels)?;
        Ok(request)
    }

    pub fn validate(&self, known_channels: &[String]) -> Result<(), IntakeError> {
        let invalid = |field, problem: &str| {
            Err(IntakeError::Invalid {
                field,
                problem: problem.to_owned(),
            })
        };
        if !known_channels.iter().any(|c| c == &self.channel) {
            return Err(IntakeError::Invalid {
                field: "channel",
                problem: format!(
                    "unknown channel {:?}; known: {}",
                    self.channel,
                    known_channels.join(", ")
                ),
            });
        }
        // Postgres stores no NUL in text or jsonb: a request carrying one could be accepted
        // but never stored, so refuse it here, naming the field.
        if let Some(field) = self.field_with_nul() {
            return invalid(field, "contains a NUL character (U+0000), which cannot be stored");
        }
        if self.channel_message_id.trim().is_empty() {
            return invalid("channel_message_id", "must not be empty");
        }
        if self.channel_message_id.len() > 512 {
            return invalid("channel_message_id", "longer than 512 bytes");
        }
        if self.body.trim().is_empty() && self.attachments.is_empty() {
            return invalid("body", "must not be empty (unless attachments are present)");
        }
        if self.body.len() > MAX_BODY_BYTES {
            return Err(IntakeError::Invalid {
                field: "body",
                problem: format!("{} bytes; the limit is {MAX_BODY_BYTES}", self.body.len()),
            });
        }
        if let Some(subject) = &self.subject
            && subject.len() > 1000
        {
            return invalid("subject", "longer than 1000 bytes");
        }
        if let Some((field, limit)) = self.field_over_limit() {
            return Err(IntakeError::Invalid {
                field,
                problem: format!("longer than {limit} bytes"),
            });
        }
        if let Some(r) = &self.thread_ref
            && r.split(|c: char| c.is_whitespace() || c == ',')
                .any(|t| t.len() > MAX_THREAD_REF_TOKEN_BYTES)
        {
            return Err(IntakeError::Invalid {
                field: "thread_ref",
                problem: format!("holds an id longer than {MAX_THREAD_REF_TOKEN_BYTES} bytes"),
            });
        }
        if self.attachments.len() > MAX_ATTACHMENTS {
            return Err(IntakeError::Invalid {
                field: "attachments",
                problem: format!("{} listed; at most {MAX_ATTACHMENTS}", self.attachments.len()),
            });
        }
        use chrono::Datelike as _;
        if !RECEIVED_AT_YEARS.contains(&self.received_at.year()) {
            return Err(IntakeError::Invalid {
                field: "received_at",
                problem: format!(
                    "{} is not a plausible time (years {} to {})",
                    self.received_at.to_rfc3339(),
                    RECEIVED_AT_YEARS.start(),
                    RECEIVED_AT_YEARS.end()
                ),
            });
        }
        let c = &self.customer;
        let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        if !(has(&c.phone) || has(&c.email) || has(&c.customer_id)) {
            return invalid("customer", "needs at least one contact: phone, email or customer_id");
        }
        if let Some(email) = &c.email
            && !email.contains('@')
        {
            return invalid("customer.email", "is not an email address");
        }
        if let Some(phone) = &c.phone
            && phone.chars().filter(|ch| ch.is_ascii_digit()).count() < 3
        {
            return invalid("customer.phone", "has fewer than 3 digits");
        }
        Ok(())
    }

    /// Checks the record fields against the policy (sizes, custom fields' declarations) and
    /// refuses the staff-only ones; the error names the field (`record.custom.contract_no`).
    pub fn validate_record(&self, policy: &crate::core::record::RecordPolicy) -> Result<(), IntakeError> {
        let Some(r) = &self.record else {
            return Ok(());
        };
        r.customer_settable()?;
        Ok(r.validate(policy)?)
    }

    /// Whether `received_at` lies within `max_age` before `now` and `max_ahead` after it: a
    /// backdated request would jump the queue (its deadlines already past), a future one would
    /// dodge its SLA. The gateway checks this; the intake stage does not (a message may wait
    /// on the broker longer than any window).
    pub fn check_clock(
        &self,
        now: DateTime<Utc>,
        max_age: chrono::Duration,
        max_ahead: chrono::Duration,
    ) -> Result<(), IntakeError> {
        let at = self.received_at;
        let earliest = now.checked_sub_signed(max_age).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let latest = now.checked_add_signed(max_ahead).unwrap_or(DateTime::<Utc>::MAX_UTC);
        let problem = if at < earliest {
            format!(
                "{} is more than {} h before the gateway's clock ({}); send the time the channel received it",
                at.to_rfc3339(),
                max_age.num_hours(),
                now.to_rfc3339()
            )
        } else if at > latest {
            format!(
                "{} is more than {} s after the gateway's clock ({}); check the sender's clock",
                at.to_rfc3339(),
                max_ahead.num_seconds(),
                now.to_rfc3339()
            )
        } else {
            return Ok(());
        };
        Err(IntakeError::Invalid {
            field: "received_at",
            problem,
        })
    }

    /// The first field longer than its [`FIELD_LIMITS`] entry, with that limit.
    fn field_over_limit(&self) -> Option<(&'static str, usize)> {
        let len = |v: &Option<String>| v.as_deref().map_or(0, str::len);
        let c = &self.customer;
        let longest = |f: fn(&Attachment) -> usize| self.attachments.iter().map(f).max().unwrap_or(0);
        let lengths = [
            len(&c.customer_id),
            len(&c.phone),
            len(&c.email),
            len(&c.name),
            len(&self.thread_ref),
            longest(|a| a.filename.len()),
            longest(|a| a.content_type.as_deref().map_or(0, str::len)),
            longest(|a| a.url.as_deref().map_or(0, str::len)),
        ];
        FIELD_LIMITS
            .iter()
            .zip(lengths)
            .find(|((_, limit), n)| n > limit)
            .map(|((field, limit), _)| (*field, *limit))
    }

    /// The first text field holding a NUL character, if any.
    fn field_with_nul(&self) -> Option<&'static str> {
        let nul = |v: &str| v.contains('\0');
        let opt = |v: &Option<String>| v.as_deref().is_some_and(nul);
        let c = &self.customer;
        [
            ("channel_message_id", nul(&self.channel_message_id)),
            ("subject", opt(&self.subject)),
            ("body", nul(&self.body)),
            ("quoted_history", opt(&self.quoted_history)),
            ("thread_ref", opt(&self.thread_ref)),
            ("customer.name", opt(&c.name)),
            ("customer.phone", opt(&c.phone)),
            ("customer.email", opt(&c.email)),
            ("customer.customer_id", opt(&c.customer_id)),
            (
                "attachments",
                self.attachments
                    .iter()
                    .any(|a| nul(&a.filename) || opt(&a.content_type) || opt(&a.url)),
            ),
        ]
        .into_iter()
        .find_map(|(field, bad)| bad.then_some(field))
    }

    /// The text the classifier reads: subject and body.
    pub fn text_for_classification(&self) -> String {
        match &self.subject {
            Some(s) if !s.is_empty() => format!("{s}\n{}", self.body),
            _ => self.body.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_a_database_index_cannot_hold_are_refused_naming_the_field() {
        let base: IntakeRequest = serde_json::from_str(&request("hi", "C1")).unwrap();
        let check = |change: &dyn Fn(&mut IntakeRequest), field: &str| {
            let mut r = base.clone();
            change(&mut r);
            match r.validate(&channels()) {
                Err(IntakeError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        };
        check(
            &|r| r.customer.customer_id = Some("x".repeat(300)),
            "customer.customer_id",
        );
        check(
            &|r| r.customer.email = Some(format!("{}@x", "a".repeat(400))),
            "customer.email",
        );
        check(&|r| r.customer.phone = Some("1".repeat(65)), "customer.phone");
        check(
            &|r| r.thread_ref = Some(format!("<{}@x>", "r".repeat(1200))),
            "thread_ref",
        );
        check(
            &|r| {
                r.received_at = "9999-01-01T00:00:00Z".parse().unwrap();
            },
            "received_at",
        );
        assert_eq!(base.validate(&channels()), Ok(()));
    }

    #[test]
    fn the_gateway_window_refuses_backdated_and_future_requests() {
        let mut r: IntakeRequest = serde_json::from_str(&request("hi", "C1")).unwrap();
        let now: DateTime<Utc> = "2026-12-05T12:00:00Z".parse().unwrap();
        let (age, ahead) = (chrono::Duration::hours(24), chrono::Duration::minutes(5));
        for (offset, ok) in [(-86_000, true), (-86_500, false), (290, true), (310, false), (0, true)] {
            r.received_at = now + chrono::Duration::seconds(offset);
            assert_eq!(r.check_clock(now, age, ahead).is_ok(), ok, "{offset}");
        }
        // A window too wide to compute is no window, not a panic.
        r.received_at = now;
        assert!(r.check_clock(now, chrono::Duration::MAX, chrono::Duration::MAX).is_ok());
    }

    fn channels() -> Vec<String> {
        vec!["app".to_owned()]
    }

    fn request(body: &str, customer_id: &str) -> String {
        serde_json::json!({
            "channel": "app", "channel_message_id": "m-1", "received_at": "2026-05-06T02:00:00Z",
            "customer": {"customer_id": customer_id}, "body": body,
        })
        .to_string()
    }

    #[test]
    fn a_wrong_type_names_the_field_path() {
        let raw = request("ok", "C1").replace(r#""customer":{"#, r#""customer":{"tier":"gold","#);
        let e = IntakeRequest::decode(raw.as_bytes(), &channels()).unwrap_err();
        assert!(
            e.to_string().contains("field `customer.tier`: unknown variant `gold`"),
            "{e}"
        );
        let e = IntakeRequest::decode(format!("{} x", request("ok", "C1")).as_bytes(), &channels()).unwrap_err();
        assert!(e.to_string().contains("trailing characters"), "{e}");
    }

    #[test]
    fn a_nul_character_is_refused_naming_its_field() {
        assert!(IntakeRequest::decode(request("ok", "C1").as_bytes(), &channels()).is_ok());
        let e = IntakeRequest::decode(request("a\0b", "C1").as_bytes(), &channels()).unwrap_err();
        assert!(matches!(e, IntakeError::Invalid { field: "body", .. }), "{e}");
        let e = IntakeRequest::decode(request("ok", "C\u{0}1").as_bytes(), &channels()).unwrap_err();
        assert!(
            matches!(
                e,
                IntakeError::Invalid {
                    field: "customer.customer_id",
                    ..
                }
            ),
            "{e}"
        );
    }
}
