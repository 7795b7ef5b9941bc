//! API keys of the channel integrations, and the per-key rate limit.
//!
//! A key is `sbk_` + 32 random bytes (URL-safe base64). Only its SHA-256 is stored (`api_keys`,
//! migration V3); the key is shown once, by `switchboard keys create`. A plain hash is enough
//! here (no password stretching): the key has 256 bits of entropy, so nobody can guess it from
//! the hash, and a fast hash keeps the per-request check cheap.
//!
//! Look-ups are cached for `gateway_key_cache_ms` (unknown keys too, so a client hammering with
//! a bad key does not hammer the database): a revoked key stops working within that time.
//! The rate limit is a token bucket per key, in memory, per gateway process.

use crate::http::error::GatewayError;
use crate::store::{Db, StoreError, keys};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY_PREFIX: &str = "sbk_";
/// Longest credential we bother hashing; real keys are 47 characters.
const MAX_PRESENTED_KEY: usize = 256;
/// Cached look-ups kept at most; past this the cache starts over (bounded memory under attack).
const MAX_CACHED: usize = 10_000;

pub use crate::store::keys::ApiKey;

impl ApiKey {
    /// Whether this key may submit or read requests of `channel`.
    pub fn allows(&self, channel: &str) -> Result<(), GatewayError> {
        match &self.channel {
            Some(allowed) if allowed != channel => Err(GatewayError::Forbidden {
                allowed: allowed.clone(),
                channel: channel.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// Lower-case hex SHA-256 of the key as presented.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| StoreError::Conflict(format!("no randomness from the OS: {e}")))?;
    Ok(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates a key and returns it with its secret, which is not stored and cannot be shown again.
pub async fn create_key(
    db: &Db,
    name: &str,
    channel: Option<&str>,
    rate_per_sec: Option<u32>,
    burst: Option<u32>,
) -> Result<(ApiKey, String), StoreError> {
    let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()?));
    let id = format!("key_{}", hex(&random_bytes::<6>()?));
    let rate = rate_per_sec.map(|r| r as i32);
    let burst_i = burst.map(|b| b as i32);
    let created_at = keys::insert(db, &id, name, channel, &hash_key(&secret), rate, burst_i).await?;
    let key = ApiKey {
        id,
        name: name.to_owned(),
        channel: channel.map(str::to_owned),
        rate_per_sec,
        burst,
        created_at,
        revoked_at: None,
    };
    Ok((key, secret))
}

/// Every key, newest first, revoked ones included.
pub async fn list_keys(db: &Db) -> Result<Vec<ApiKey>, StoreError> {
    keys::list(db).await
}

/// Revokes a key; `false` when there is no such key or it was already revoked.
pub async fn revoke_key(db: &Db, id: &str) -> Result<bool, StoreError> {
    keys::revoke(db, id).await
}

/// The unrevoked key whose hash this is.
pub async fn find_key(db: &Db, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
    keys::find(db, key_hash).await
}

/// The credential of a request: `Authorization: Bearer <key>`, else `X-Api-Key: <key>`.
pub fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim))
        .filter(|k| !k.is_empty())
}

/// A cached look-up: when it was made, and the key (`None`: no such active key).
type CacheEntry = (Instant, Option<Arc<ApiKey>>);

/// Key look-ups with a short-lived cache in front of the database.
pub struct KeyCache {
    db: Db,
    ttl: Duration,
    entries: Mutex<HashMap<String, CacheEntry>>,
}

impl KeyCache {
    pub fn new(db: Db, ttl: Duration) -> Self {
        KeyCache {
            db,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The key behind the presented credential, or 401. A database outage is 503: the caller
    /// cannot tell whether its key is good, and nothing was accepted.
    pub async fn authenticate(&self, presented: Option<&str>) -> Result<Arc<ApiKey>, GatewayError> {
        const MISSING: &str = "missing API key: send `Authorization: Bearer <key>` or `X-Api-Key: <key>`";
        const INVALID: &str = "invalid or revoked API key";
        let presented = presented.ok_or(GatewayError::Unauthorized(MISSING))?;
        if presented.len() > MAX_PRESENTED_KEY || !presented.starts_with(KEY_PREFIX) {
            return Err(GatewayError::Unauthorized(INVALID));
        }
        let hash = hash_key(presented);
        let cached = {
            let entries = self
                .entries
                .lock()
                .map_err(|_| GatewayError::Internal("key cache poisoned".into()))?;
            entries
                .get(&hash)
                .filter(|(at, _)| at.elapsed() < self.ttl)
                .map(|(_, k)| k.clone())
        };
        let found = match cached {
            Some(found) => found,
            None => {
                let found = find_key(&self.db, &hash).await.map_err(|e| {
                    tracing::warn!(error = %e, "API key look-up failed");
                    GatewayError::Unavailable("the key store is unavailable".into())
                })?;
                let found = found.map(Arc::new);
                let mut entries = self
                    .entries
                    .lock()
                    .map_err(|_| GatewayError::Internal("key cache poisoned".into()))?;
                if entries.len() >= MAX_CACHED {
                    entries.clear();
                }
                entries.insert(hash, (Instant::now(), found.clone()));
                found
            }
        };
        found.ok_or(GatewayError::Unauthorized(INVALID))
    }
}

/// A token bucket: `burst` tokens, refilled at `rate` per second; a request takes one.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn full(burst: u32, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    /// Takes a token, or says how long until one is there.
    pub fn take(&mut self, now: Instant, rate: u32, burst: u32) -> Result<(), Duration> {
        let rate = f64::from(rate.max(1));
        let burst = f64::from(burst.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// One token bucket per API key, with the gateway's defaults for keys without their own.
pub struct RateLimiter {
    rate: u32,
    burst: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(rate: u32, burst: u32) -> Self {
        RateLimiter {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, key: &ApiKey) -> Result<(), GatewayError> {
        let rate = key.rate_per_sec.unwrap_or(self.rate);
        let burst = key.burst.unwrap_or(self.burst);
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| GatewayError::Internal("rate limiter poisoned".into()))?;
        let bucket = buckets
            .entry(key.id.clone())
            .or_insert_with(|| Bucket::full(burst, now));
        bucket
            .take(now, rate, burst)
            .map_err(|retry_after| GatewayError::RateLimited { retry_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};
    use chrono::Utc;

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3, t0);
        for _ in 0..3 {
            assert_eq!(b.take(t0, 10, 3), Ok(()));
        }
        let wait = b.take(t0, 10, 3).unwrap_err();
        assert!(
            wait <= Duration::from_millis(100) && wait > Duration::from_millis(90),
            "{wait:?}"
        );
        // 100 ms later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(b.take(t1, 10, 3), Ok(()));
        assert!(b.take(t1, 10, 3).is_err());
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.take(t2, 10, 3), Ok(()));
        }
        assert!(b.take(t2, 10, 3).is_err());
    }

    #[test]
    fn channel_restriction() {
        let mut k = ApiKey {
            id: "key_1".into(),
            name: "mail".into(),
            channel: Some("email".into()),
            rate_per_sec: None,
            burst: None,
            created_at: Utc::now(),
            revoked_at: None,
        };
        assert_eq!(k.allows("email"), Ok(()));
        assert!(matches!(k.allows("chat"), Err(GatewayError::Forbidden { .. })));
        k.channel = None;
        assert_eq!(k.allows("chat"), Ok(()));
    }

    #[test]
    fn credentials_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", HeaderValue::from_static(" sbk_b "));
        assert_eq!(presented_key(&h), Some("sbk_b"));
        h.insert("authorization", HeaderValue::from_static("Bearer sbk_a"));
        assert_eq!(presented_key(&h), Some("sbk_a"));
        h.insert("authorization", HeaderValue::from_static("bearer   sbk_c"));
        assert_eq!(presented_key(&h), Some("sbk_c"));
        h.remove("x-api-key");
        h.insert("authorization", HeaderValue::from_static("Basic dXNlcjpwYXNz"));
        assert_eq!(presented_key(&h), None);
    }
}
