//! Request references: what the gateway hands back for an accepted request.
//!
//! A reference is derived from the idempotency key alone (`channel` + `channel_message_id`), so a
//! client that retries a request gets the same reference, and any gateway process can answer for
//! it without shared state. It is a URL-safe base64 encoding (no padding) of
//! `<channel>:<channel_message_id>` behind a `rq_` prefix: reversible, so the status look-up
//! needs no table of its own; it only reveals what the client sent.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const PREFIX: &str = "rq_";

/// The reference of the request with this idempotency key.
pub fn encode(channel: &str, channel_message_id: &str) -> String {
    format!(
        "{PREFIX}{}",
        URL_SAFE_NO_PAD.encode(format!("{channel}:{channel_message_id}"))
    )
}

/// `(channel, channel_message_id)` of a reference; `None` when it is not one.
pub fn decode(reference: &str) -> Option<(String, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(reference.strip_prefix(PREFIX)?).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (channel, id) = text.split_once(':')?;
    (!channel.is_empty() && !id.is_empty()).then(|| (channel.to_owned(), id.to_owned()))
}

/// Where the client polls for the ticket.
pub fn status_url(reference: &str) -> String {
    format!("/v1/requests/{reference}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn deterministic_and_url_safe() {
        let r = encode("email", "CAGy9+def456UVW@mail.gmail.example");
        assert_eq!(r, encode("email", "CAGy9+def456UVW@mail.gmail.example"));
        assert!(r.starts_with("rq_"));
        assert!(
            r[3..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{r}"
        );
        assert_ne!(r, encode("chat", "CAGy9+def456UVW@mail.gmail.example"));
        assert_eq!(
            decode(&r),
            Some(("email".into(), "CAGy9+def456UVW@mail.gmail.example".into()))
        );
    }

    #[test]
    fn rejects_what_is_not_a_reference() {
        assert_eq!(decode("email:abc"), None);
        assert_eq!(decode("rq_!!!"), None);
        assert_eq!(decode(&format!("rq_{}", URL_SAFE_NO_PAD.encode("nocolon"))), None);
        assert_eq!(
            decode(&format!("rq_{}", URL_SAFE_NO_PAD.encode([0xff, 0xfe, b':', b'a']))),
            None
        );
    }

    proptest! {
        #[test]
        fn round_trips(channel in "[a-z]{1,10}", id in "\\PC{1,60}") {
            prop_assert_eq!(decode(&encode(&channel, &id)), Some((channel, id)));
        }
    }
}
