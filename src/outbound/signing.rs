//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): a delivery carries
//! `webhook-id` (the message id, the same on every retry, so the receiver can drop
//! duplicates), `webhook-timestamp` (unix seconds of this attempt) and `webhook-signature`:
//! `v1,` and the standard base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed by the
//! base64-decoded part of the secret after `whsec_`.
//!
//! The header may list several space-separated signatures (during a secret rotation a sender
//! signs with the old and the new one); [`verify`] accepts the message when any `v1` signature
//! matches, compared in constant time, and refuses a timestamp outside the tolerance (a replay).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Every secret starts with it; the rest is standard base64 of the key.
pub const SECRET_PREFIX: &str = "whsec_";
/// The only signature scheme of the spec so far (symmetric, HMAC-SHA256).
const SCHEME: &str = "v1";
/// Key bytes of a new secret.
const SECRET_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("invalid webhook secret: {0}")]
    InvalidSecret(&'static str),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("invalid webhook-timestamp {0:?}: not unix seconds")]
    BadTimestamp(String),
    #[error("webhook-timestamp {timestamp} is {skew_s} s away from now (tolerance {tolerance_s} s)")]
    OutsideTolerance {
        timestamp: i64,
        skew_s: i64,
        tolerance_s: i64,
    },
    #[error("no matching signature in webhook-signature")]
    NoMatch,
}

/// A new secret: `whsec_` and the standard base64 of 32 random bytes from the OS.
pub fn new_secret() -> String {
    let mut key = [0u8; SECRET_BYTES];
    if getrandom::fill(&mut key).is_err() {
        // The OS refused randomness (it practically never does): take it from two v4 UUIDs
        // instead (244 random bits, from the same source through uuid's own fallback chain).
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        key[..16].copy_from_slice(a.as_bytes());
        key[16..].copy_from_slice(b.as_bytes());
    }
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The HMAC keyed by a `whsec_…` secret.
fn keyed(secret: &str) -> Result<HmacSha256, SigningError> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SigningError::InvalidSecret("it does not start with whsec_"))?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| SigningError::InvalidSecret("the part after whsec_ is not base64"))?;
    if key.is_empty() {
        return Err(SigningError::InvalidSecret("the key is empty"));
    }
    HmacSha256::new_from_slice(&key).map_err(|_| SigningError::InvalidSecret("unusable key"))
}

/// The MAC over `{msg_id}.{timestamp}.{body}`, not yet finalised.
fn content(mut mac: HmacSha256, msg_id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` value for one message: `v1,<base64>`.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, SigningError> {
    let mac = content(keyed(secret)?, msg_id, &timestamp.to_string(), body);
    Ok(format!("{SCHEME},{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// Checks a received message: the three header values as they came (`timestamp` unparsed),
/// the raw body, the receiver's clock `now` (unix seconds) and how far the timestamp may be
/// from it either way. Signatures of other schemes in the list are skipped.
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
    tolerance_s: i64,
) -> Result<(), SigningError> {
    let mac = keyed(secret)?;
    if msg_id.is_empty() {
        return Err(SigningError::MissingHeader("webhook-id"));
    }
    if timestamp.trim().is_empty() {
        return Err(SigningError::MissingHeader("webhook-timestamp"));
    }
    if signatures.trim().is_empty() {
        return Err(SigningError::MissingHeader("webhook-signature"));
    }
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SigningError::BadTimestamp(timestamp.chars().take(40).collect()))?;
    let skew_s = now.saturating_sub(ts).saturating_abs();
    if skew_s > tolerance_s {
        return Err(SigningError::OutsideTolerance {
            timestamp: ts,
            skew_s,
            tolerance_s,
        });
    }
    // Signed over the timestamp as sent (the sender's spelling is what it hashed).
    let expected = content(mac, msg_id, timestamp.trim(), body);
    let matched = signatures
        .split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(scheme, _)| *scheme == SCHEME)
        .filter_map(|(_, sig)| STANDARD.decode(sig).ok())
        // `verify_slice` compares in constant time.
        .any(|sig| expected.clone().verify_slice(&sig).is_ok());
    if matched { Ok(()) } else { Err(SigningError::NoMatch) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The Standard Webhooks reference vector (the spec's libraries test against it).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_reference_vector_signs_and_verifies() {
        assert_eq!(sign(SECRET, MSG_ID, TIMESTAMP, BODY).unwrap(), EXPECTED);
        verify(SECRET, MSG_ID, "1614265330", EXPECTED, BODY, TIMESTAMP, 300).unwrap();
    }

    #[test]
    fn any_matching_entry_of_several_verifies() {
        let list = format!("v1,Zm9v v2,abc {EXPECTED} v1a,xyz");
        verify(SECRET, MSG_ID, "1614265330", &list, BODY, TIMESTAMP + 10, 300).unwrap();
    }

    #[test]
    fn tampering_and_replays_are_refused() {
        let v = |id: &str, ts: &str, sigs: &str, body: &[u8], now: i64| verify(SECRET, id, ts, sigs, body, now, 300);
        assert!(matches!(
            v(MSG_ID, "1614265330", EXPECTED, br#"{"test": 2432232315}"#, TIMESTAMP),
            Err(SigningError::NoMatch)
        ));
        assert!(matches!(
            v("msg_other", "1614265330", EXPECTED, BODY, TIMESTAMP),
            Err(SigningError::NoMatch)
        ));
        assert!(matches!(
            v(
                MSG_ID,
                "1614265330",
                "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                BODY,
                TIMESTAMP
            ),
            Err(SigningError::NoMatch)
        ));
        assert!(matches!(
            v(MSG_ID, "1614265330", "v1,not-base64!", BODY, TIMESTAMP),
            Err(SigningError::NoMatch)
        ));
        assert!(matches!(
            v(MSG_ID, "1614265330", EXPECTED, BODY, TIMESTAMP + 301),
            Err(SigningError::OutsideTolerance { skew_s: 301, .. })
        ));
        assert!(matches!(
            v(MSG_ID, "1614265330", EXPECTED, BODY, TIMESTAMP - 301),
            Err(SigningError::OutsideTolerance { .. })
        ));
        assert!(matches!(
            v(MSG_ID, "soon", EXPECTED, BODY, TIMESTAMP),
            Err(SigningError::BadTimestamp(_))
        ));
        assert!(matches!(
            v("", "1614265330", EXPECTED, BODY, TIMESTAMP),
            Err(SigningError::MissingHeader("webhook-id"))
        ));
        assert!(matches!(
            v(MSG_ID, "", EXPECTED, BODY, TIMESTAMP),
            Err(SigningError::MissingHeader("webhook-timestamp"))
        ));
        assert!(matches!(
            v(MSG_ID, "1614265330", " ", BODY, TIMESTAMP),
            Err(SigningError::MissingHeader("webhook-signature"))
        ));
        // The extremes of the clock do not overflow.
        assert!(matches!(
            v(MSG_ID, &i64::MIN.to_string(), EXPECTED, BODY, i64::MAX),
            Err(SigningError::OutsideTolerance { .. })
        ));
    }

    #[test]
    fn secrets_must_be_whsec_base64() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_",
            "whsec_not base64!",
            "WHSEC_MfKQ",
        ] {
            assert!(
                matches!(sign(bad, MSG_ID, TIMESTAMP, BODY), Err(SigningError::InvalidSecret(_))),
                "{bad}"
            );
            assert!(matches!(
                verify(bad, MSG_ID, "1614265330", EXPECTED, BODY, TIMESTAMP, 300),
                Err(SigningError::InvalidSecret(_))
            ));
        }
    }

    #[test]
    fn new_secrets_are_fresh_32_byte_keys() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        let key = STANDARD.decode(a.strip_prefix(SECRET_PREFIX).unwrap()).unwrap();
        assert_eq!(key.len(), 32);
        sign(&a, MSG_ID, TIMESTAMP, BODY).unwrap();
    }

    proptest! {
        #[test]
        fn what_is_signed_verifies_and_a_flipped_byte_does_not(
            key in proptest::collection::vec(any::<u8>(), 1..64),
            msg_id in "[a-zA-Z0-9_]{1,40}",
            ts in 0i64..4_000_000_000,
            body in proptest::collection::vec(any::<u8>(), 1..512),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let secret = format!("{SECRET_PREFIX}{}", STANDARD.encode(&key));
            let sig = sign(&secret, &msg_id, ts, &body).unwrap();
            prop_assert!(verify(&secret, &msg_id, &ts.to_string(), &sig, &body, ts, 300).is_ok());
            let mut flipped = body.clone();
            flipped[at.index(body.len())] ^= 1 << bit;
            prop_assert!(matches!(
                verify(&secret, &msg_id, &ts.to_string(), &sig, &flipped, ts, 300),
                Err(SigningError::NoMatch)
            ));
        }
    }
}
