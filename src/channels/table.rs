//! The table of channels a client can submit in its own format, and the one error type every
//! normaliser's refusal becomes. One HTTP handler serves every row.

use super::chat::{self, ChatError};
use super::email::{self, EmailError};
use super::phone::{self, PhoneError};
use crate::contracts::intake::{IntakeError, IntakeRequest};
use chrono::{DateTime, Utc};

/// Why bytes in a channel's format could not become an intake request. The variants decide the
/// answer: `Malformed` (the bytes are not that format at all), `Invalid` (well-formed, but a
/// field is wrong; `field` names it), `TooLarge`, `Internal` (our fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("{message}")]
    Malformed { message: String, field: Option<String> },
    #[error("{message}")]
    Invalid { message: String, field: Option<String> },
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ChannelError {
    fn malformed(message: String) -> Self {
        ChannelError::Malformed { message, field: None }
    }

    fn invalid(field: Option<&str>, message: String) -> Self {
        ChannelError::Invalid {
            message,
            field: field.map(str::to_owned),
        }
    }
}

/// The body's media type a channel expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json` (or a `+json` structured syntax).
    Json,
    /// `message/rfc822`: a raw email.
    Rfc822,
}

/// One way in: a path under `/v1`, the format it takes and how that becomes a request.
pub struct Native {
    /// The route under `/v1` (`requests`, `channels/email`, …).
    pub route: &'static str,
    /// The channel every request on this route belongs to; `None` when the body names it.
    pub channel: Option<&'static str>,
    pub format: Format,
    /// Turning the bytes into a request is CPU work worth a blocking thread (MIME parsing).
    pub heavy: bool,
    pub normalize: fn(&[u8], DateTime<Utc>) -> Result<IntakeRequest, ChannelError>,
}

/// Every format a client may submit in.
pub const NATIVE: [Native; 4] = [
    Native {
        route: "requests",
        channel: None,
        format: Format::Json,
        heavy: false,
        normalize: |bytes, _| decode_json::<IntakeRequest>(bytes),
    },
    Native {
        route: "channels/email",
        channel: Some(email::CHANNEL),
        format: Format::Rfc822,
        heavy: true,
        normalize: |bytes, now| email::parse_email(bytes, now).map_err(ChannelError::from),
    },
    Native {
        route: "channels/phone",
        channel: Some(phone::CHANNEL),
        format: Format::Json,
        heavy: false,
        normalize: |bytes, now| {
            let event: phone::CallEvent = decode_json(bytes)?;
            phone::normalize_call(&event, now).map_err(ChannelError::from)
        },
    },
    Native {
        route: "channels/chat",
        channel: Some(chat::CHANNEL),
        format: Format::Json,
        heavy: false,
        normalize: |bytes, now| {
            let message: chat::ChatMessage = decode_json(bytes)?;
            chat::normalize_chat(&message, now).map_err(ChannelError::from)
        },
    },
];

/// Strict JSON decoding: broken syntax is `Malformed`; a well-formed document with a wrong,
/// missing or unknown field is `Invalid`, naming the field's path (`visitor.openid`).
pub fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ChannelError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => ChannelError::Invalid {
                message: inner.to_string(),
                // `.` is the document itself (e.g. a JSON array where an object was expected).
                field: (path != ".").then_some(path),
            },
            _ => ChannelError::malformed(format!("malformed JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ChannelError::malformed(format!("malformed JSON: {e}")))?;
    Ok(value)
}

impl From<IntakeError> for ChannelError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::TooLarge { limit, .. } => ChannelError::TooLarge { limit },
            IntakeError::InvalidUtf8 { .. } | IntakeError::Malformed(_) => ChannelError::malformed(e.to_string()),
            IntakeError::Invalid { field, .. } => ChannelError::invalid(Some(field), e.to_string()),
            IntakeError::Record(r) => ChannelError::invalid(Some(&format!("record.{}", r.field)), r.to_string()),
        }
    }
}

impl From<PhoneError> for ChannelError {
    fn from(e: PhoneError) -> Self {
        match &e {
            PhoneError::Malformed(_) => ChannelError::malformed(e.to_string()),
            PhoneError::Invalid { field, .. } => ChannelError::invalid(Some(field), e.to_string()),
        }
    }
}

impl From<ChatError> for ChannelError {
    fn from(e: ChatError) -> Self {
        match &e {
            ChatError::Malformed(_) => ChannelError::malformed(e.to_string()),
            ChatError::Invalid { field, .. } => ChannelError::invalid(Some(field.as_str()), e.to_string()),
        }
    }
}

/// Bytes that are not an email at all are malformed; a message missing what a request needs
/// (a `From`, a `Message-ID`, any content) is invalid, naming the header.
impl From<EmailError> for ChannelError {
    fn from(e: EmailError) -> Self {
        match &e {
            EmailError::Empty | EmailError::NotAMessage(_) => ChannelError::malformed(e.to_string()),
            EmailError::RawTooLarge { limit, .. } => ChannelError::TooLarge { limit: *limit },
            EmailError::MissingHeader(h) | EmailError::InvalidHeader { header: h, .. } => {
                ChannelError::invalid(Some(h), e.to_string())
            }
            EmailError::NoContent | EmailError::BodyTooLarge { .. } => {
                ChannelError::invalid(Some("body"), e.to_string())
            }
            EmailError::EncodedTooLarge { .. } | EmailError::TooManyParts { .. } | EmailError::NestedTooDeep { .. } => {
                ChannelError::invalid(None, e.to_string())
            }
            EmailError::Encode(_) => ChannelError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_listed_once_and_json_errors_name_the_field() {
        let mut routes: Vec<&str> = NATIVE.iter().map(|n| n.route).collect();
        routes.dedup();
        assert_eq!(routes.len(), NATIVE.len());
        let e = decode_json::<phone::CallEvent>(br#"{"call_id": 5}"#).unwrap_err();
        assert!(
            matches!(&e, ChannelError::Invalid { field: Some(f), .. } if f == "call_id"),
            "{e:?}"
        );
        let e = decode_json::<phone::CallEvent>(b"{").unwrap_err();
        assert!(matches!(e, ChannelError::Malformed { .. }), "{e:?}");
    }
}
