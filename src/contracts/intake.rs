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
