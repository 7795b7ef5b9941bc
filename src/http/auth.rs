//! API keys of the channel integrations, and the per-key rate limit.
//!
//! A key is `sbk_` + 32 random bytes (URL-safe base64). Only its SHA-256 is stored (`api_keys`,
//! migration V3); the key is shown once, by `switchboard keys create`. A plain hash is enough
//! here (no password stretching): the key has 256 bits of entropy, so nobody can guess it from
//! the hash, and a fast hash keeps the per-request check cheap.
//!
//! Look-ups are cached for `gateway_key_cache_ms`: a revoked key stops working within that
//! time. Known and unknown keys are cached apart, so spraying random keys cannot push the good
//! ones out. Every look-up the cache cannot answer costs the client's address a token from its
//! own bucket (`gateway_auth_misses_per_sec`) *before* the database is asked: a client trying
//! many keys is refused with 429 after a few, while a client with a good key never gets near it.
//! The rate limit is a token bucket per key, in memory, per gateway process.

use crate::http::error::GatewayError;
use crate::store::{Db, StoreError, keys, users};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY_PREFIX: &str = "sbk_";
/// A person's token (`switchboard users create`): the same 256 bits, looked up among users.
const USER_TOKEN_PREFIX: &str = "sbu_";
/// Longest credential we bother hashing; real keys are 47 characters.
const MAX_PRESENTED_KEY: usize = 256;
/// Cached look-ups kept at most; past this the cache starts over (bounded memory under attack).
const MAX_CACHED: usize = 10_000;

use crate::core::access::Role;
pub use crate::store::keys::ApiKey;

/// Lower-case hex SHA-256 of the key as presented.
pub fn hash_key(key: &str) -> String {
    crate::core::privacy::secret_digest(key)
}

fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| StoreError::Conflict(format!("no randomness from the OS: {e}")))?;
    Ok(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a new key is for: who holds it, its role and its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec<'a> {
    pub name: &'a str,
    pub role: Role,
    /// An integration's channel (`None`: every channel).
    pub channel: Option<&'a str>,
    /// The agent an agent key acts as.
    pub agent: Option<&'a str>,
    /// A supervisor's team (`None`: every team).
    pub team: Option<&'a str>,
    pub rate_per_sec: Option<u32>,
    pub burst: Option<u32>,
}

impl<'a> KeySpec<'a> {
    /// A channel integration's key.
    pub fn integration(name: &'a str, channel: Option<&'a str>) -> Self {
        KeySpec {
            name,
            role: Role::Integration,
            channel,
            agent: None,
            team: None,
            rate_per_sec: None,
            burst: None,
        }
    }

    /// A person's key: a supervisor's or an admin's (an agent's: [`KeySpec::agent`]).
    pub fn person(name: &'a str, role: Role) -> Self {
        KeySpec {
            role,
            ..KeySpec::integration(name, None)
        }
    }

    /// An agent's key, acting as the roster's `agent`.
    pub fn agent(name: &'a str, agent: &'a str) -> Self {
        KeySpec {
            agent: Some(agent),
            ..KeySpec::person(name, Role::Agent)
        }
    }
}

/// Creates a key and returns it with its secret, which is not stored and cannot be shown again.
pub async fn create(db: &Db, spec: &KeySpec<'_>) -> Result<(ApiKey, String), StoreError> {
    let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()?));
    let id = format!("key_{}", hex(&random_bytes::<6>()?));
    let created_at = keys::insert(
        db,
        &keys::NewKey {
            id: &id,
            name: spec.name,
            role: spec.role,
            channel: spec.channel,
            agent: spec.agent,
            team: spec.team,
            key_hash: &hash_key(&secret),
            rate_per_sec: spec.rate_per_sec.map(|r| r as i32),
            burst: spec.burst.map(|b| b as i32),
        },
    )
    .await?;
    let key = ApiKey {
        id,
        name: spec.name.to_owned(),
        channel: spec.channel.map(str::to_owned),
        rate_per_sec: spec.rate_per_sec,
        burst: spec.burst,
        created_at,
        revoked_at: None,
        role: spec.role,
        agent: spec.agent.map(str::to_owned),
        agent_team: None,
        team: spec.team.map(str::to_owned),
    };
    Ok((key, secret))
}

/// Creates an integration key (see [`create`]).
pub async fn create_key(
    db: &Db,
    name: &str,
    channel: Option<&str>,
    rate_per_sec: Option<u32>,
    burst: Option<u32>,
) -> Result<(ApiKey, String), StoreError> {
    create(
        db,
        &KeySpec {
            rate_per_sec,
            burst,
            ..KeySpec::integration(name, channel)
        },
    )
    .await
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

/// Who a new user is (`switchboard users create`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec<'a> {
    pub name: &'a str,
    pub role: Role,
    /// The roster agent an agent user is.
    pub agent: Option<&'a str>,
    /// A supervisor's team (`None`: every team).
    pub team: Option<&'a str>,
    pub email: Option<&'a str>,
    /// Issue a personal token (`false`: the user signs in only through SSO).
    pub token: bool,
    /// The identity provider's `sub` of this person (else bound at their first SSO sign-in).
    pub sso_subject: Option<&'a str>,
}

impl<'a> UserSpec<'a> {
    /// An agent user, tied to the roster's `agent`, with a token.
    pub fn agent(name: &'a str, agent: &'a str) -> Self {
        UserSpec {
            name,
            role: Role::Agent,
            agent: Some(agent),
            team: None,
            email: None,
            token: true,
            sso_subject: None,
        }
    }

    /// A supervisor (of `team`, or of every team) or an admin, with a token.
    pub fn person(name: &'a str, role: Role, team: Option<&'a str>) -> Self {
        UserSpec {
            name,
            role,
            agent: None,
            team,
            email: None,
            token: true,
            sso_subject: None,
        }
    }
}

/// Creates a user; returns it with its personal token (`None` for an SSO-only user), which is
/// not stored and cannot be shown again.
pub async fn create_user(db: &Db, spec: &UserSpec<'_>) -> Result<(users::User, Option<String>), StoreError> {
    if spec.role == Role::Integration {
        return Err(StoreError::Conflict(
            "a user is a person (agent, supervisor or admin); integrations get API keys".into(),
        ));
    }
    let secret = if spec.token {
        Some(format!(
            "{USER_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
        ))
    } else {
        None
    };
    let id = format!("usr_{}", hex(&random_bytes::<6>()?));
    let hash = secret.as_deref().map(hash_key);
    let email = spec.email.map(str::trim).filter(|e| !e.is_empty());
    let created_at = users::insert(
        db,
        &users::NewUser {
            id: &id,
            name: spec.name,
            role: spec.role,
            agent: spec.agent,
            team: spec.team,
            email,
            token_hash: hash.as_deref(),
            sso_subject: spec.sso_subject,
        },
    )
    .await?;
    let user = users::User {
        id,
        name: spec.name.to_owned(),
        role: spec.role,
        agent: spec.agent.map(str::to_owned),
        team: spec.team.map(str::to_owned),
        email: email.map(str::to_lowercase),
        created_at,
        disabled_at: None,
        has_token: secret.is_some(),
    };
    Ok((user, secret))
}

/// The principal behind a presented key or personal token (by its hash).
async fn find_credential(db: &Db, presented: &str, hash: &str) -> Result<Option<ApiKey>, StoreError> {
    if presented.starts_with(USER_TOKEN_PREFIX) {
        users::find_by_token(db, hash).await
    } else {
        keys::find(db, hash).await
    }
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

/// An address or a CIDR block (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl IpBlock {
    pub fn parse(s: &str) -> Option<IpBlock> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a.parse::<std::net::IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.trim().parse::<std::net::IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpBlock { addr, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        match (self.addr, ip) {
            (V4(a), V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (V6(a), V6(b)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }

    /// Every block of a comma-separated list; what does not parse is left out (and logged).
    pub fn parse_list(list: &str) -> Vec<IpBlock> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                let block = IpBlock::parse(s);
                if block.is_none() {
                    tracing::warn!(
                        entry = s,
                        "gateway_trusted_proxies: not an address or CIDR block; ignored"
                    );
                }
                block
            })
            .collect()
    }
}

/// The client a request comes from: the peer, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not one (addresses further left can be forged by the
/// client, so the walk goes from the right and stops at the first untrusted one).
pub fn client_address(peer: std::net::IpAddr, forwarded_for: Option<&str>, trusted: &[IpBlock]) -> std::net::IpAddr {
    let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|b| b.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(chain) = forwarded_for else { return peer };
    let mut client = peer;
    for hop in chain.rsplit(',') {
        let Ok(ip) = hop.trim().parse::<std::net::IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// A cached look-up: when it was made, and the key (`None`: no such active key).
type CacheEntry = (Instant, Option<Arc<ApiKey>>);

/// Key look-ups with a short-lived cache in front of the database.
pub struct KeyCache {
    db: Db,
    ttl: Duration,
    /// Known keys, by hash.
    entries: Mutex<HashMap<String, CacheEntry>>,
    /// Hashes that matched no active key, kept apart so they cannot evict the known ones.
    unknown: Mutex<HashMap<String, Instant>>,
    /// Look-ups the cache could not answer, per client address.
    misses: Mutex<HashMap<std::net::IpAddr, Bucket>>,
    miss_rate: u32,
    miss_burst: u32,
    /// Single sign-on: OpenID Connect tokens checked against the identity provider's keys.
    oidc: Option<Arc<crate::http::oidc::Verifier>>,
}

impl KeyCache {
    pub fn new(db: Db, ttl: Duration) -> Self {
        KeyCache::with_miss_limit(db, ttl, 10, 20)
    }

    /// A cache whose per-address look-up budget is `miss_rate` per second, `miss_burst` at once.
    pub fn with_miss_limit(db: Db, ttl: Duration, miss_rate: u32, miss_burst: u32) -> Self {
        KeyCache {
            db,
            ttl,
            entries: Mutex::new(HashMap::new()),
            unknown: Mutex::new(HashMap::new()),
            misses: Mutex::new(HashMap::new()),
            miss_rate,
            miss_burst,
            oidc: None,
        }
    }

    /// Accepts OpenID Connect bearer tokens checked by `verifier` as well as keys and tokens.
    pub fn with_oidc(mut self, verifier: Option<Arc<crate::http::oidc::Verifier>>) -> Self {
        self.oidc = verifier;
        self
    }

    /// Takes a look-up token from `client`'s bucket, or says when to come back.
    fn charge_miss(&self, client: Option<std::net::IpAddr>) -> Result<(), GatewayError> {
        let Some(ip) = client else { return Ok(()) };
        let now = Instant::now();
        let mut misses = self.misses.lock().map_err(poisoned)?;
        if misses.len() >= MAX_CACHED && !misses.contains_key(&ip) {
            // Many addresses at once: forget the full buckets, keep the ones still paying.
            let (rate, burst) = (self.miss_rate, self.miss_burst);
            misses.retain(|_, b| {
                let mut probe = *b;
                probe.take(now, rate, burst).is_err()
            });
        }
        misses
            .entry(ip)
            .or_insert_with(|| Bucket::full(self.miss_burst, now))
            .take(now, self.miss_rate, self.miss_burst)
            .map_err(|retry_after| {
                metrics::counter!("switchboard_gateway_auth_throttled_total").increment(1);
                GatewayError::RateLimited { retry_after }
            })
    }

    /// The key behind the presented credential, or 401; 429 when `client` has asked about too
    /// many unknown keys lately. A database outage is 503: the caller cannot tell whether its
    /// key is good, and nothing was accepted.
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
        client: Option<std::net::IpAddr>,
    ) -> Result<Arc<ApiKey>, GatewayError> {
        const MISSING: &str = "missing API key: send `Authorization: Bearer <key>` or `X-Api-Key: <key>`";
        const INVALID: &str = "invalid or revoked API key";
        let presented = presented.ok_or(GatewayError::Unauthorized(MISSING))?;
        if let Some(verifier) = &self.oidc
            && looks_like_jwt(presented)
        {
            return self.authenticate_sso(verifier, presented, client).await;
        }
        if presented.len() > MAX_PRESENTED_KEY
            || !(presented.starts_with(KEY_PREFIX) || presented.starts_with(USER_TOKEN_PREFIX))
        {
            self.charge_miss(client)?;
            return Err(GatewayError::Unauthorized(INVALID));
        }
        let hash = hash_key(presented);
        let cached = self.known(&hash)?;
        let known_unknown = cached.is_none() && {
            let unknown = self.unknown.lock().map_err(poisoned)?;
            unknown.get(&hash).is_some_and(|at| at.elapsed() < self.ttl)
        };
        if known_unknown {
            self.charge_miss(client)?;
            return Err(GatewayError::Unauthorized(INVALID));
        }
        if let Some(found) = cached {
            return Ok(found);
        }
        self.charge_miss(client)?;
        let found = find_credential(&self.db, presented, &hash).await.map_err(|e| {
            tracing::warn!(error = %e, "API key look-up failed");
            GatewayError::Unavailable("the key store is unavailable".into())
        })?;
        match found {
            Some(found) => {
                let found = Arc::new(found);
                self.remember(hash, found.clone())?;
                Ok(found)
            }
            None => {
                let mut unknown = self.unknown.lock().map_err(poisoned)?;
                if unknown.len() >= MAX_CACHED {
                    unknown.clear();
                }
                unknown.insert(hash, Instant::now());
                Err(GatewayError::Unauthorized(INVALID))
            }
        }
    }

    /// The principal a fresh cache entry holds for this hash.
    fn known(&self, hash: &str) -> Result<Option<Arc<ApiKey>>, GatewayError> {
        let entries = self.entries.lock().map_err(poisoned)?;
        Ok(entries
            .get(hash)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .and_then(|(_, k)| k.clone()))
    }

    /// Caches a found principal (stale entries go first when the cache is full).
    fn remember(&self, hash: String, principal: Arc<ApiKey>) -> Result<(), GatewayError> {
        let mut entries = self.entries.lock().map_err(poisoned)?;
        if entries.len() >= MAX_CACHED {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        entries.insert(hash, (Instant::now(), Some(principal)));
        Ok(())
    }
}

fn poisoned<T>(_: T) -> GatewayError {
    GatewayError::Internal("key cache poisoned".into())
}

/// Three dot-separated base64url parts: a JWT (keys and user tokens have no dots).
fn looks_like_jwt(presented: &str) -> bool {
    presented.len() <= crate::http::oidc::MAX_TOKEN_BYTES
        && presented.split('.').count() == 3
        && presented
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

impl KeyCache {
    /// The principal an SSO token stands for: the enabled Switchboard user bound to its subject
    /// (or, at a first sign-in, named by it: by name, else verified email), whose role and
    /// scope apply; else, for a person Switchboard does not know at all, the role, agent and
    /// team claims. A token naming a disabled user, or an agent some user holds, gets nothing.
    async fn authenticate_sso(
        &self,
        verifier: &crate::http::oidc::Verifier,
        token: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Arc<ApiKey>, GatewayError> {
        const INVALID: &str = "invalid or expired single sign-on token";
        const NOBODY: &str = "the single sign-on token names no enabled Switchboard user and carries no role";
        let hash = hash_key(token);
        if let Some(found) = self.known(&hash)? {
            return Ok(found);
        }
        self.charge_miss(client)?;
        let identity = match verifier.verify(token).await {
            Ok(i) => i,
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "identity provider keys unavailable");
                return Err(GatewayError::Unavailable(
                    "the identity provider's keys cannot be fetched".into(),
                ));
            }
            Err(e) => {
                tracing::info!(error = %e, "single sign-on token refused");
                return Err(GatewayError::Unauthorized(INVALID));
            }
        };
        let unavailable = |e: StoreError| {
            tracing::warn!(error = %e, "user look-up failed");
            GatewayError::Unavailable("the user store is unavailable".into())
        };
        let email = identity.email.as_deref();
        let principal = match users::find_for_sso(&self.db, &identity.subject, &identity.username, email)
            .await
            .map_err(unavailable)?
        {
            Some(user) => user,
            None => {
                if users::claims_someone(
                    &self.db,
                    &identity.subject,
                    &identity.username,
                    email,
                    identity.agent.as_deref(),
                )
                .await
                .map_err(unavailable)?
                {
                    return Err(GatewayError::Unauthorized(NOBODY));
                }
                let Some(role) = identity.role else {
                    return Err(GatewayError::Unauthorized(NOBODY));
                };
                let agent_team = match (&role, &identity.agent) {
                    (Role::Agent, Some(a)) => Some(
                        users::agent_team(&self.db, a)
                            .await
                            .map_err(unavailable)?
                            .ok_or(GatewayError::Unauthorized(NOBODY))?,
                    ),
                    (Role::Agent, None) => return Err(GatewayError::Unauthorized(NOBODY)),
                    _ => None,
                };
                // A supervisor's scope must be stated: a team, or `*` for every team. A
                // missing claim grants nothing rather than everything.
                let team = match (role, identity.team.as_deref()) {
                    (Role::Supervisor, None) => return Err(GatewayError::Unauthorized(NOBODY)),
                    (Role::Supervisor, Some("*")) => None,
                    (Role::Supervisor, Some(t)) => Some(t.to_owned()),
                    _ => None,
                };
                ApiKey {
                    id: format!("oidc:{}", identity.subject),
                    name: identity.username.clone(),
                    channel: None,
                    rate_per_sec: None,
                    burst: None,
                    created_at: chrono::Utc::now(),
                    revoked_at: None,
                    role,
                    agent: if role == Role::Agent {
                        identity.agent.clone()
                    } else {
                        None
                    },
                    agent_team,
                    team,
                }
            }
        };
        let principal = Arc::new(principal);
        // Cached only while the token itself stays valid for the whole cache time.
        let lasts = identity.expires_at - chrono::Utc::now();
        if lasts.to_std().is_ok_and(|d| d > self.ttl) {
            self.remember(hash, principal.clone())?;
        }
        Ok(principal)
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
    fn the_client_behind_trusted_proxies_is_the_first_untrusted_hop_from_the_right() {
        let trusted = IpBlock::parse_list("10.0.0.0/8, 192.168.1.5, not-an-ip");
        assert_eq!(trusted.len(), 2);
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // A direct client: its own address, whatever it claims.
        assert_eq!(
            client_address(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        // Through the proxy: the address the proxy saw; a forged entry further left is ignored.
        assert_eq!(
            client_address(ip("10.1.2.3"), Some("6.6.6.6, 198.51.100.7, 10.9.9.9"), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(client_address(ip("192.168.1.5"), None, &trusted), ip("192.168.1.5"));
        assert_eq!(
            client_address(ip("10.1.2.3"), Some("garbage"), &trusted),
            ip("10.1.2.3")
        );
        assert!(IpBlock::parse("::1/128").unwrap().contains(ip("::1")));
        assert!(!IpBlock::parse("10.0.0.0/8").unwrap().contains(ip("11.0.0.1")));
        assert!(IpBlock::parse("10.0.0.0/33").is_none());
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
