//! Every way a gateway request can be refused, and the HTTP answer for each.
//!
//! The body is always `{"error": {"code", "message", "field"?}}`, so an integration can branch on
//! `code`, show `message` to a person, and point at `field` (a JSON path such as
//! `customer.phone`, or an email header such as `Message-ID`).

use crate::channels::table::ChannelError;
use crate::contracts::intake::IntakeError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Duration;

/// What the client is told to wait before retrying when the broker or database is down.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(2);

impl From<crate::core::access::Denied> for GatewayError {
    fn from(d: crate::core::access::Denied) -> Self {
        GatewayError::Forbidden(d.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The bytes are not what the Content-Type says: broken JSON, not an email at all.
    #[error("{message}")]
    Malformed { message: String, field: Option<String> },
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The principal may not do this (`core::access`).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("Content-Type must be {expected}{}", got.as_deref().map(|g| format!(", not {g:?}")).unwrap_or_else(|| " (none was sent)".into()))]
    UnsupportedMediaType {
        expected: &'static str,
        got: Option<String>,
    },
    /// Well-formed, but a field is wrong: missing, unknown, out of range.
    #[error("{message}")]
    Invalid { message: String, field: Option<String> },
    #[error("rate limit of this API key exceeded; retry in {} s", retry_secs(*retry_after))]
    RateLimited { retry_after: Duration },
    /// The broker (or the database, for key look-ups) cannot be reached or did not confirm in time.
    /// Nothing was accepted.
    #[error("{0}; nothing was accepted, retry later")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
fn retry_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Malformed { .. } => StatusCode::BAD_REQUEST,
            GatewayError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden(_) => StatusCode::FORBIDDEN,
            GatewayError::NotFound(_) => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            GatewayError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            GatewayError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable code of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::Malformed { .. } => "malformed",
            GatewayError::Unauthorized(_) => "unauthorized",
            GatewayError::Forbidden(_) => "forbidden",
            GatewayError::NotFound(_) => "not_found",
            GatewayError::MethodNotAllowed(_) => "method_not_allowed",
            GatewayError::TooLarge { .. } => "payload_too_large",
            GatewayError::UnsupportedMediaType { .. } => "unsupported_media_type",
            GatewayError::Invalid { .. } => "invalid",
            GatewayError::RateLimited { .. } => "rate_limited",
            GatewayError::Unavailable(_) => "unavailable",
            GatewayError::Internal(_) => "internal",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            GatewayError::Malformed { field, .. } | GatewayError::Invalid { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

/// A channel's refusal: not that format at all is 400, a wrong field 422 (naming it), too large
/// 413.
impl From<ChannelError> for GatewayError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Malformed { message, field } => GatewayError::Malformed { message, field },
            ChannelError::Invalid { message, field } => GatewayError::Invalid { message, field },
            ChannelError::TooLarge { limit } => GatewayError::TooLarge { limit },
            ChannelError::Internal(message) => GatewayError::Internal(message),
        }
    }
}

impl From<IntakeError> for GatewayError {
    fn from(e: IntakeError) -> Self {
        ChannelError::from(e).into()
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                field: self.field(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        let retry = match &self {
            GatewayError::RateLimited { retry_after } => Some(retry_secs(*retry_after)),
            GatewayError::Unavailable(_) => Some(retry_secs(UNAVAILABLE_RETRY_AFTER)),
            _ => None,
        };
        if let Some(secs) = retry {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, GatewayError> {
        crate::channels::table::decode_json::<T>(json.as_bytes()).map_err(GatewayError::from)
    }

    #[test]
    fn json_syntax_is_400_and_a_wrong_field_is_422_with_its_path() {
        use crate::contracts::intake::IntakeRequest;
        let e = decode::<IntakeRequest>("{not json").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{e}");
        let e = decode::<IntakeRequest>(
            r#"{"channel":"app","channel_message_id":"1","received_at":"2024-05-06T00:00:00Z",
                "customer":{"phone":13800138000},"body":"x"}"#,
        )
        .unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e.field(), Some("customer.phone"), "{e}");
        let e = decode::<IntakeRequest>(
            r#"{"channel":"app","channel_message_id":"1","received_at":"2024-05-06T00:00:00Z",
                "customer":{"fax":"1"},"body":"x"}"#,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("customer.fax"), "{e}");
        let e = decode::<IntakeRequest>(r#"{"channel":"app"}"#).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.to_string().contains("missing field"), "{e}");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn unsupported_media_type_says_what_was_sent() {
        let e = GatewayError::UnsupportedMediaType {
            expected: "application/json",
            got: Some("text/plain".into()),
        };
        assert_eq!(
            e.to_string(),
            "Content-Type must be application/json, not \"text/plain\""
        );
        let e = GatewayError::UnsupportedMediaType {
            expected: "message/rfc822",
            got: None,
        };
        assert_eq!(e.to_string(), "Content-Type must be message/rfc822 (none was sent)");
    }
}
