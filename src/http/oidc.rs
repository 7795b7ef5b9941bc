//! OpenID Connect single sign-on: the gateway accepts a JWT issued by the organisation's
//! identity provider as a bearer credential, so people (agents, supervisors, admins) sign in
//! with their company account instead of holding an API key. This module only checks a token
//! and says who it names ([`Verifier::verify`] → [`OidcIdentity`]); turning that into a
//! principal is the request authentication's job.
//!
//! Settings: `oidc_issuer` (off when unset), `oidc_audience`, `oidc_jwks_url` or
//! `oidc_jwks_file`, `oidc_leeway_s`, `oidc_jwks_refresh_s` and the claim names
//! (`oidc_user_claim`, `oidc_role_claim`, `oidc_agent_claim`, `oidc_team_claim`).
//!
//! # Security rules
//!
//! - **Asymmetric signatures only** (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA). `none`
//!   and the HMAC algorithms (HS*) are refused before any key is looked at: the provider's keys
//!   are public, so a verifier that let the token's header pick HS256 would take the public key
//!   as the HMAC secret and accept anything an attacker signs with it. Symmetric (`oct`) keys in
//!   the JWKS are ignored for the same reason, and the algorithm must fit the key it names (an
//!   EC key verifies only ES256/ES384 of its curve, and a key's own `alg`, if any, must match).
//! - **Keys come only from the configured JWKS** (URL or file), chosen by the header's `kid`; a
//!   token's `jku`, `x5u` or embedded `jwk` is never used (that would let the token vouch for
//!   itself). A token without `kid` is checked against the only key, if there is exactly one.
//! - **Claims:** `iss` must equal `oidc_issuer` exactly; `aud` must contain `oidc_audience` (a
//!   token the provider issued to another application is not ours); `exp` is required; `exp`,
//!   `nbf` and `iat` are honoured with `oidc_leeway_s` of clock skew. A `crit` header is refused
//!   (we understand no extension).
//! - **Bounded work:** a token over 8 KiB is refused before it is parsed; a JWKS fetch has a
//!   10 s deadline and a 1 MiB body cap, and HTTP redirects are not followed.
//! - **Refetch throttle:** the keys are fetched on first use and every `oidc_jwks_refresh_s`,
//!   and again when a token names a `kid` we do not know (the provider rotated its keys), but
//!   such unknown-`kid` refetches happen at most once per 30 s: otherwise anyone could make
//!   every gateway hit the identity provider once per request with made-up `kid`s, turning the
//!   gateway into an amplifier against it (and getting us rate-limited by it). A failed fetch
//!   is not retried for 5 s either; stale keys keep working while a refresh fails.
//! - **Roles:** the role claim may be a string or an array; the first value naming a person's
//!   role (`agent`, `supervisor`, `admin`) wins. `integration` is never taken from a token:
//!   integrations are machines with API keys, and a person's token must not act as one.
//!
//! Failures to get the keys ([`OidcError::is_unavailable`]) are the provider's outage, not the
//! caller's fault (503); every other error is a bad credential (401).

use crate::config::Settings;
use crate::core::access::Role;
use crate::outbound::client;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Largest token looked at; real ones are 1–2 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Largest JWKS read (a provider publishes a handful of keys: a few KiB).
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Least time between two refetches caused by tokens naming an unknown `kid`.
const UNKNOWN_KID_REFETCH_EVERY: Duration = Duration::from_secs(30);
/// How long a failed fetch is remembered before the provider is asked again.
const FAILED_FETCH_BACKOFF: Duration = Duration::from_secs(5);
/// Longest piece of a token quoted in an error (they end up in logs).
const QUOTE_MAX: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("the token has expired (exp is past, beyond the allowed clock skew)")]
    Expired,
    #[error("the token is not valid yet (nbf or iat is in the future, beyond the allowed clock skew)")]
    NotYetValid,
    #[error("the token was issued by {got:?}, not by the configured issuer {expected:?}")]
    WrongIssuer { expected: String, got: String },
    #[error("the token is not meant for this service: its audience (aud) does not include oidc_audience")]
    WrongAudience,
    #[error("the token names signing key {0:?}, which the identity provider does not publish")]
    UnknownKey(String),
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error(
        "token algorithm {0} is not accepted (only RS256/384/512, PS256/384/512, ES256, ES384 and EdDSA, with a key of that kind)"
    )]
    DisallowedAlgorithm(String),
    #[error("cannot get the identity provider's signing keys: {0}")]
    Jwks(String),
    #[error("the token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("single sign-on settings: {0}")]
    Config(String),
}

impl OidcError {
    /// The keys could not be had (the provider is down, or its JWKS is broken): nothing is wrong
    /// with the caller's token as far as we know, so the gateway answers 503, not 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, OidcError::Jwks(_))
    }
}

/// Where the provider's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    Url(String),
    File(PathBuf),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::Url(url) => f.write_str(url),
            JwksSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The single sign-on settings, checked.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    pub jwks: JwksSource,
    /// Clock skew allowed on `exp`, `nbf` and `iat` (seconds).
    pub leeway_s: u64,
    pub user_claim: String,
    pub role_claim: String,
    pub agent_claim: String,
    pub team_claim: String,
    /// How old the keys may get before they are fetched (or read) again.
    pub refresh: Duration,
}

impl OidcConfig {
    /// `None` when `oidc_issuer` is unset (single sign-on off); an error naming the setting when
    /// it is set but the rest cannot work.
    pub fn from_settings(s: &Settings) -> Result<Option<OidcConfig>, OidcError> {
        let Some(issuer) = s.oidc_issuer.as_deref().map(str::trim).filter(|i| !i.is_empty()) else {
            return Ok(None);
        };
        let bad = |m: String| Err(OidcError::Config(m));
        let audience = s.oidc_audience.trim();
        if audience.is_empty() {
            return bad(
                "oidc_issuer is set but oidc_audience (SWITCHBOARD_OIDC_AUDIENCE) is empty: set it to \
                 the client id Switchboard is registered under at the identity provider"
                    .into(),
            );
        }
        let url = s.oidc_jwks_url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        let file = s.oidc_jwks_file.as_ref().filter(|p| !p.as_os_str().is_empty());
        let jwks = match (url, file) {
            (Some(_), Some(_)) => {
                return bad(
                    "set one of oidc_jwks_url (SWITCHBOARD_OIDC_JWKS_URL) and oidc_jwks_file \
                     (SWITCHBOARD_OIDC_JWKS_FILE), not both"
                        .into(),
                );
            }
            (None, None) => {
                return bad(
                    "oidc_issuer is set but neither oidc_jwks_url (SWITCHBOARD_OIDC_JWKS_URL) nor \
                     oidc_jwks_file (SWITCHBOARD_OIDC_JWKS_FILE) says where its signing keys are"
                        .into(),
                );
            }
            (Some(url), None) => {
                check_jwks_url(url)?;
                JwksSource::Url(url.to_owned())
            }
            (None, Some(path)) => JwksSource::File(path.clone()),
        };
        let claims = [
            ("oidc_user_claim", &s.oidc_user_claim),
            ("oidc_role_claim", &s.oidc_role_claim),
            ("oidc_agent_claim", &s.oidc_agent_claim),
            ("oidc_team_claim", &s.oidc_team_claim),
        ];
        for (name, value) in claims {
            if value.trim().is_empty() {
                return bad(format!("{name} is empty: it must name a claim"));
            }
        }
        Ok(Some(OidcConfig {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            jwks,
            leeway_s: s.oidc_leeway_s,
            user_claim: s.oidc_user_claim.trim().to_owned(),
            role_claim: s.oidc_role_claim.trim().to_owned(),
            agent_claim: s.oidc_agent_claim.trim().to_owned(),
            team_claim: s.oidc_team_claim.trim().to_owned(),
            // Zero would mean a fetch per request.
            refresh: Duration::from_secs(s.oidc_jwks_refresh_s.max(1)),
        }))
    }
}

/// Keys fetched in the clear could be swapped by anyone on the path, and then any token they
/// sign would be accepted: HTTPS, or plain HTTP to this machine only (a local sidecar, tests).
fn check_jwks_url(url: &str) -> Result<(), OidcError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| OidcError::Config(format!("oidc_jwks_url {url:?} is not a URL: {e}")))?;
    let host = parsed
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'));
    let loopback = host.is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    });
    match parsed.scheme() {
        "https" if host.is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(OidcError::Config(format!(
            "oidc_jwks_url {url:?} must be an https:// URL (plain http only to localhost): keys \
             fetched in the clear could be replaced on the way"
        ))),
    }
}

/// Who a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// `sub`: the provider's stable id for the person.
    pub subject: String,
    /// The `oidc_user_claim` (default `preferred_username`), or `sub` when the token has none.
    pub username: String,
    /// `email`, only when the provider says it verified it (`email_verified: true`).
    pub email: Option<String>,
    pub name: Option<String>,
    /// The first person's role in `oidc_role_claim`; never `Integration`.
    pub role: Option<Role>,
    /// `oidc_agent_claim`: the agent's roster id.
    pub agent: Option<String>,
    /// `oidc_team_claim`.
    pub team: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// Checks tokens against the provider's keys, which it caches. Share one per process (in an
/// `Arc`): the cache and the refetch throttle are per verifier.
pub struct Verifier {
    config: OidcConfig,
    /// Set for a JWKS URL.
    client: Option<reqwest::Client>,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching, so concurrent requests share one fetch instead of each making one.
    fetch: tokio::sync::Mutex<FetchState>,
    unknown_kid_refetch_every: Duration,
}

#[derive(Default)]
struct FetchState {
    last_unknown_kid_refetch: Option<Instant>,
    last_failure: Option<(Instant, String)>,
}

impl FetchState {
    fn recent_failure(&self) -> Option<OidcError> {
        self.last_failure
            .as_ref()
            .filter(|(at, _)| at.elapsed() < FAILED_FETCH_BACKOFF)
            .map(|(_, message)| OidcError::Jwks(message.clone()))
    }
}

struct KeySet {
    keys: Vec<Key>,
    loaded_at: Instant,
}

impl KeySet {
    fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

struct Key {
    kid: Option<String>,
    /// The JWK's own `alg`, when it names one.
    alg: Option<Algorithm>,
    kind: KeyKind,
    decoding: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => alg == ES256,
            KeyKind::P384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            KeyKind::Rsa => "an RSA key",
            KeyKind::P256 => "a P-256 key",
            KeyKind::P384 => "a P-384 key",
            KeyKind::Ed25519 => "an Ed25519 key",
        }
    }
}

/// The header fields looked at before any key is chosen (the rest is jsonwebtoken's).
#[derive(Deserialize)]
struct PeekedHeader {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<Value>,
}

/// The accepted algorithms; everything else, `none` and HS* included, is refused.
fn asymmetric(alg: &str) -> Option<Algorithm> {
    Some(match alg {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// At most [`QUOTE_MAX`] characters of something a token said, for an error message.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

impl Verifier {
    /// A verifier for `config`. A JWKS file is read now, so a missing or broken file stops the
    /// gateway at start rather than at the first sign-in; a JWKS URL is fetched on first use.
    pub fn new(config: OidcConfig) -> Result<Verifier, OidcError> {
        let (client, keys) = match &config.jwks {
            JwksSource::Url(_) => {
                let client = client::http_client(FETCH_TIMEOUT).map_err(|e| OidcError::Config(e.to_string()))?;
                (Some(client), None)
            }
            JwksSource::File(path) => {
                let bytes = read_jwks_file(path)?;
                let keys = parse_jwks(&bytes).map_err(|e| OidcError::Jwks(format!("{}: {e}", path.display())))?;
                (
                    None,
                    Some(Arc::new(KeySet {
                        keys,
                        loaded_at: Instant::now(),
                    })),
                )
            }
        };
        Ok(Verifier {
            config,
            client,
            keys: RwLock::new(keys),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            unknown_kid_refetch_every: UNKNOWN_KID_REFETCH_EVERY,
        })
    }

    /// `None` when single sign-on is off (`oidc_issuer` unset).
    pub fn from_settings(settings: &Settings) -> Result<Option<Verifier>, OidcError> {
        OidcConfig::from_settings(settings)?.map(Verifier::new).transpose()
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Fetches (or re-reads) the keys now, e.g. at start to warn early of an unreachable
    /// provider; returns how many usable keys there are. `verify` does this on its own.
    pub async fn load_keys(&self) -> Result<usize, OidcError> {
        let mut state = self.fetch.lock().await;
        Ok(self.reload(&mut state).await?.keys.len())
    }

    /// Checks `token` (the bearer credential, without `Bearer `) and says whom it names.
    pub async fn verify(&self, token: &str) -> Result<OidcIdentity, OidcError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(OidcError::TooLarge);
        }
        let header = peek_header(token)?;
        let alg_name = header
            .alg
            .ok_or_else(|| OidcError::Malformed("the header names no algorithm (alg)".into()))?;
        let alg =
            asymmetric(&alg_name).ok_or_else(|| OidcError::DisallowedAlgorithm(format!("{:?}", quote(&alg_name))))?;
        if header.crit.is_some() {
            return Err(OidcError::Malformed(
                "the header has critical extensions (crit), which are not supported".into(),
            ));
        }
        let mut set = self.key_set().await?;
        if let Some(kid) = header.kid.as_deref()
            && !set.has_kid(kid)
        {
            set = self.refetch_for_unknown_kid(kid).await?.unwrap_or(set);
        }
        let key = select_key(&set, header.kid.as_deref(), alg)?;
        let claims = self.check(token, key, alg)?;
        self.identity(claims)
    }

    fn loaded(&self) -> Option<Arc<KeySet>> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn fresh(&self) -> Option<Arc<KeySet>> {
        self.loaded()
            .filter(|set| set.loaded_at.elapsed() < self.config.refresh)
    }

    /// The keys to check a token with: the cached ones while fresh; stale ones are refreshed by
    /// one request while the others go on with what is cached (a slow provider holds up nobody
    /// once keys were had).
    async fn key_set(&self) -> Result<Arc<KeySet>, OidcError> {
        if let Some(set) = self.fresh() {
            return Ok(set);
        }
        match self.loaded() {
            Some(stale) => {
                let Ok(mut state) = self.fetch.try_lock() else {
                    return Ok(stale);
                };
                if let Some(set) = self.fresh() {
                    return Ok(set);
                }
                if state.recent_failure().is_some() {
                    return Ok(stale);
                }
                match self.reload(&mut state).await {
                    Ok(set) => Ok(set),
                    Err(e) => {
                        tracing::warn!(error = %e, "refreshing the OIDC signing keys failed; keeping the previous ones");
                        Ok(stale)
                    }
                }
            }
            None => {
                let mut state = self.fetch.lock().await;
                if let Some(set) = self.loaded() {
                    return Ok(set);
                }
                if let Some(e) = state.recent_failure() {
                    return Err(e);
                }
                self.reload(&mut state).await
            }
        }
    }

    /// A token names a key we do not have: the provider may have rotated its keys since we
    /// fetched them. `None` when the throttle says not now (or the keys were just fetched).
    async fn refetch_for_unknown_kid(&self, kid: &str) -> Result<Option<Arc<KeySet>>, OidcError> {
        let mut state = self.fetch.lock().await;
        // Another request may have fetched it while this one waited.
        if let Some(set) = self.loaded().filter(|set| set.has_kid(kid)) {
            return Ok(Some(set));
        }
        if state
            .last_unknown_kid_refetch
            .is_some_and(|at| at.elapsed() < self.unknown_kid_refetch_every)
            || state.recent_failure().is_some()
        {
            return Ok(None);
        }
        state.last_unknown_kid_refetch = Some(Instant::now());
        tracing::info!(kid = %quote(kid), "a token names an unknown OIDC signing key; fetching the keys again");
        self.reload(&mut state).await.map(Some)
    }

    /// Fetches or reads the keys and caches them; the caller holds the fetch lock.
    async fn reload(&self, state: &mut FetchState) -> Result<Arc<KeySet>, OidcError> {
        let source = &self.config.jwks;
        let result = match (source, &self.client) {
            (JwksSource::Url(url), Some(client)) => client::get_bounded(client, url, MAX_JWKS_BYTES)
                .await
                .map_err(|e| e.to_string()),
            (JwksSource::Url(url), None) => Err(format!("{url}: no HTTP client")),
            (JwksSource::File(path), _) => read_jwks_file_async(path).await,
        }
        .and_then(|bytes| parse_jwks(&bytes).map_err(|e| format!("{source}: {e}")));
        match result {
            Ok(keys) => {
                tracing::debug!(source = %source, keys = keys.len(), "OIDC signing keys loaded");
                let set = Arc::new(KeySet {
                    keys,
                    loaded_at: Instant::now(),
                });
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(set.clone());
                state.last_failure = None;
                Ok(set)
            }
            Err(message) => {
                state.last_failure = Some((Instant::now(), message.clone()));
                Err(OidcError::Jwks(message))
            }
        }
    }

    /// The signature and the standard claims; returns the claims.
    fn check(&self, token: &str, key: &Key, alg: Algorithm) -> Result<Map<String, Value>, OidcError> {
        let mut validation = Validation::new(alg);
        validation.leeway = self.config.leeway_s;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // `iss` is compared below, for an error that says which issuer it was (and because
        // jsonwebtoken would also accept an array of issuers containing ours).
        validation.iss = None;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation).map_err(|e| {
            match e.into_kind() {
                ErrorKind::ExpiredSignature => OidcError::Expired,
                ErrorKind::ImmatureSignature => OidcError::NotYetValid,
                ErrorKind::InvalidAudience => OidcError::WrongAudience,
                ErrorKind::InvalidSignature => OidcError::BadSignature,
                ErrorKind::InvalidAlgorithm => OidcError::DisallowedAlgorithm(format!("{alg:?}")),
                ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                    "aud" => OidcError::WrongAudience,
                    "iss" => OidcError::WrongIssuer {
                        expected: self.config.issuer.clone(),
                        got: String::new(),
                    },
                    _ => OidcError::Malformed(format!("the token has no {claim} claim")),
                },
                ErrorKind::InvalidClaimFormat(claim) => {
                    OidcError::Malformed(format!("the {claim} claim is not a time"))
                }
                ErrorKind::Base64(e) => OidcError::Malformed(format!("bad base64url: {e}")),
                ErrorKind::Json(e) => OidcError::Malformed(format!("bad JSON: {e}")),
                ErrorKind::Utf8(e) => OidcError::Malformed(format!("bad UTF-8: {e}")),
                // A key the provider published that cannot verify anything, or a signature of
                // the wrong shape for it: either way the token is not proven.
                _ => OidcError::BadSignature,
            }
        })?;
        let claims = data.claims;
        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.config.issuer => {}
            other => {
                return Err(OidcError::WrongIssuer {
                    expected: self.config.issuer.clone(),
                    got: quote(&match other {
                        Some(Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    }),
                });
            }
        }
        // jsonwebtoken checks `exp` and `nbf`; a token issued in the future is as suspect.
        if let Some(iat) = claims.get("iat") {
            let iat = iat
                .as_f64()
                .ok_or_else(|| OidcError::Malformed("the iat claim is not a time".into()))?;
            let latest = Utc::now().timestamp() as f64 + self.config.leeway_s as f64;
            if iat > latest {
                return Err(OidcError::NotYetValid);
            }
        }
        Ok(claims)
    }

    fn identity(&self, claims: Map<String, Value>) -> Result<OidcIdentity, OidcError> {
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let subject =
            text("sub").ok_or_else(|| OidcError::Malformed("the sub claim is not a non-empty string".into()))?;
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or_else(|| OidcError::Malformed("the exp claim is not a time".into()))?;
        let expires_at = DateTime::from_timestamp(exp as i64, 0)
            .ok_or_else(|| OidcError::Malformed("the exp claim is out of range".into()))?;
        // An address the provider has not said it verified is only what the person typed: it
        // names nobody (a self-registered account could claim an admin's address).
        let email_verified = claims.get("email_verified").and_then(Value::as_bool) == Some(true);
        Ok(OidcIdentity {
            username: text(&self.config.user_claim).unwrap_or_else(|| subject.clone()),
            email: text("email").filter(|_| email_verified),
            name: text("name"),
            role: person_role(claims.get(&self.config.role_claim)),
            agent: text(&self.config.agent_claim),
            team: text(&self.config.team_claim),
            subject,
            expires_at,
        })
    }
}

/// The first value naming a person's role; `integration` is skipped (people only).
fn person_role(claim: Option<&Value>) -> Option<Role> {
    let person = |s: &str| Role::parse(s).filter(|r| *r != Role::Integration);
    match claim? {
        Value::String(s) => person(s),
        Value::Array(items) => items.iter().filter_map(Value::as_str).find_map(person),
        _ => None,
    }
}

fn peek_header(token: &str) -> Result<PeekedHeader, OidcError> {
    let parts = token.split('.').count();
    if parts == 5 {
        return Err(OidcError::Malformed(
            "an encrypted token (JWE) is not accepted, only a signed one".into(),
        ));
    }
    if parts != 3 {
        return Err(OidcError::Malformed(format!(
            "a JWT has 3 parts separated by dots, this has {parts}"
        )));
    }
    let encoded = token.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|e| OidcError::Malformed(format!("the header is not base64url: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| OidcError::Malformed(format!("the header is not a JWT header: {e}")))
}

fn select_key<'a>(set: &'a KeySet, kid: Option<&str>, alg: Algorithm) -> Result<&'a Key, OidcError> {
    let fits = |k: &Key| k.kind.fits(alg) && k.alg.is_none_or(|own| own == alg);
    let mismatch = |k: &Key| {
        OidcError::DisallowedAlgorithm(format!(
            "{alg:?} with {}{}",
            k.kind.describe(),
            k.alg.map(|a| format!(" for {a:?}")).unwrap_or_default()
        ))
    };
    match kid {
        Some(kid) => {
            let mut named = set.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).peekable();
            let first = named.peek().copied().ok_or_else(|| OidcError::UnknownKey(quote(kid)))?;
            named.find(|k| fits(k)).ok_or_else(|| mismatch(first))
        }
        None => match set.keys.as_slice() {
            [only] if fits(only) => Ok(only),
            [only] => Err(mismatch(only)),
            keys => Err(OidcError::Malformed(format!(
                "the token names no signing key (kid) and the provider publishes {}",
                keys.len()
            ))),
        },
    }
}

fn read_jwks_file(path: &Path) -> Result<Vec<u8>, OidcError> {
    let failed = |e: std::io::Error| OidcError::Jwks(format!("{}: {e}", path.display()));
    let len = std::fs::metadata(path).map_err(failed)?.len();
    if len > MAX_JWKS_BYTES as u64 {
        return Err(OidcError::Jwks(format!(
            "{}: larger than {MAX_JWKS_BYTES} bytes",
            path.display()
        )));
    }
    std::fs::read(path).map_err(failed)
}

async fn read_jwks_file_async(path: &Path) -> Result<Vec<u8>, String> {
    let failed = |e: std::io::Error| format!("{}: {e}", path.display());
    let len = tokio::fs::metadata(path).await.map_err(failed)?.len();
    if len > MAX_JWKS_BYTES as u64 {
        return Err(format!("{}: larger than {MAX_JWKS_BYTES} bytes", path.display()));
    }
    tokio::fs::read(path).await.map_err(failed)
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<Value>,
}

/// The usable signing keys of a JWKS. Entries we cannot or must not use (encryption keys,
/// symmetric keys, other curves, broken ones) are skipped, so one odd entry does not take
/// sign-in down; a set with no usable key at all is an error.
fn parse_jwks(bytes: &[u8]) -> Result<Vec<Key>, String> {
    let raw: RawJwks = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS: {e}"))?;
    let total = raw.keys.len();
    let mut keys = Vec::new();
    for entry in raw.keys {
        match usable_key(entry) {
            Ok(key) => keys.push(key),
            Err(why) => tracing::debug!(why, "skipped a JWKS entry"),
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "no usable signing key among its {total} entries (RSA, P-256, P-384 or Ed25519 keys for signatures)"
        ));
    }
    Ok(keys)
}

fn usable_key(entry: Value) -> Result<Key, &'static str> {
    if entry.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
        return Err("not a signature key (use)");
    }
    let alg = match entry.get("alg") {
        None => None,
        Some(Value::String(a)) => Some(asymmetric(a).ok_or("an algorithm we do not accept (alg)")?),
        Some(_) => return Err("alg is not a string"),
    };
    let jwk: Jwk = serde_json::from_value(entry).map_err(|_| "not a JWK we understand")?;
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => KeyKind::P256,
            EllipticCurve::P384 => KeyKind::P384,
            _ => return Err("an unsupported curve"),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => KeyKind::Ed25519,
        AlgorithmParameters::OctetKeyPair(_) => return Err("an unsupported curve"),
        // A shared secret has no place in a public key set, and using it would allow HS*.
        AlgorithmParameters::OctetKey(_) => return Err("a symmetric key"),
    };
    if let Some(alg) = alg
        && !kind.fits(alg)
    {
        return Err("its alg does not fit its key type");
    }
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| "key material is not base64url")?;
    Ok(Key {
        kid: jwk.common.key_id,
        alg,
        kind,
        decoding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const ISSUER: &str = "https://id.example.com/realms/contact-center";
    const AUDIENCE: &str = "switchboard";

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn now() -> i64 {
        Utc::now().timestamp()
    }

    /// A signing key made by the test, and its public half as a JWK.
    struct TestKey {
        kid: String,
        alg: Algorithm,
        encoding: EncodingKey,
        jwk: Value,
    }

    impl TestKey {
        fn es256(kid: &str) -> TestKey {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
            // The uncompressed point: 0x04, then x and y.
            let point = pair.public_key().as_ref();
            assert_eq!((point.len(), point[0]), (65, 4));
            TestKey {
                kid: kid.into(),
                alg: Algorithm::ES256,
                encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
                jwk: json!({
                    "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                    "x": b64(&point[1..33]), "y": b64(&point[33..]),
                }),
            }
        }

        /// No `alg` in the JWK: the key serves RS* and PS* alike.
        fn rsa(kid: &str) -> TestKey {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
            let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
            let pkcs8 = pair.as_der().unwrap();
            TestKey {
                kid: kid.into(),
                alg: Algorithm::RS256,
                // jsonwebtoken signs with a PKCS#1 key.
                encoding: EncodingKey::from_rsa_der(&pkcs1_of(pkcs8.as_ref())),
                jwk: json!({"kty": "RSA", "kid": kid, "n": b64(&public.n), "e": b64(&public.e)}),
            }
        }

        fn ed25519(kid: &str) -> TestKey {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
            TestKey {
                kid: kid.into(),
                alg: Algorithm::EdDSA,
                encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
                jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pair.public_key().as_ref())}),
            }
        }

        fn sign(&self, claims: &Value) -> String {
            self.sign_as(self.alg, Some(&self.kid), claims)
        }

        fn sign_as(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
            let mut header = Header::new(alg);
            header.kid = kid.map(str::to_owned);
            encode(&header, claims, &self.encoding).unwrap()
        }
    }

    /// The RSAPrivateKey inside a PKCS#8 PrivateKeyInfo (version, algorithm, OCTET STRING key).
    fn pkcs1_of(pkcs8: &[u8]) -> Vec<u8> {
        fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
            let (len, header) = match input[1] {
                short if short < 0x80 => (short as usize, 2),
                long => {
                    let n = (long & 0x7f) as usize;
                    (input[2..2 + n].iter().fold(0, |acc, b| (acc << 8) | *b as usize), 2 + n)
                }
            };
            (input[0], &input[header..header + len], &input[header + len..])
        }
        let (_, info, _) = tlv(pkcs8);
        let (_, _, rest) = tlv(info);
        let (_, _, rest) = tlv(rest);
        let (tag, key, _) = tlv(rest);
        assert_eq!(tag, 0x04, "an OCTET STRING");
        key.to_vec()
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "8c1f2e7a-5b0d-4c55-9f1e-2d3a4b5c6d7e",
            "exp": now() + 600,
            "iat": now(),
            "preferred_username": "mei.lin",
            "email": "mei.lin@example.com",
            "email_verified": true,
            "name": "Mei Lin",
            "switchboard_role": "agent",
            "switchboard_agent": "A-17",
            "switchboard_team": "billing",
        })
    }

    /// `claims()` with some set or (null) removed.
    fn claims_with(changes: Value) -> Value {
        let mut all = claims();
        for (k, v) in changes.as_object().unwrap() {
            match v {
                Value::Null => all.as_object_mut().unwrap().remove(k),
                v => all.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        all
    }

    fn jwks(keys: &[&TestKey]) -> String {
        json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
    }

    fn config(jwks: JwksSource) -> OidcConfig {
        OidcConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            jwks,
            leeway_s: 60,
            user_claim: "preferred_username".into(),
            role_claim: "switchboard_role".into(),
            agent_claim: "switchboard_agent".into(),
            team_claim: "switchboard_team".into(),
            refresh: Duration::from_secs(300),
        }
    }

    /// A JWKS file in the temp directory, removed when dropped.
    struct JwksFile(PathBuf);

    impl JwksFile {
        fn new(body: &str) -> JwksFile {
            let file = JwksFile(std::env::temp_dir().join(format!("switchboard-oidc-{}.json", uuid::Uuid::new_v4())));
            file.write(body);
            file
        }

        fn write(&self, body: &str) {
            // Written aside and renamed, as a deployment would, so no read sees half a file.
            let tmp = self.0.with_extension("tmp");
            std::fs::write(&tmp, body).unwrap();
            std::fs::rename(&tmp, &self.0).unwrap();
        }
    }

    impl Drop for JwksFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn verifier_over(keys: &[&TestKey]) -> (Verifier, JwksFile) {
        let file = JwksFile::new(&jwks(keys));
        let verifier = Verifier::new(config(JwksSource::File(file.0.clone()))).unwrap();
        (verifier, file)
    }

    #[tokio::test]
    async fn a_good_token_names_the_person_with_role_agent_and_team() {
        let key = TestKey::es256("2026-05");
        let (v, _file) = verifier_over(&[&key]);
        let exp = now() + 600;
        let id = v.verify(&key.sign(&claims_with(json!({"exp": exp})))).await.unwrap();
        assert_eq!(
            id,
            OidcIdentity {
                subject: "8c1f2e7a-5b0d-4c55-9f1e-2d3a4b5c6d7e".into(),
                username: "mei.lin".into(),
                email: Some("mei.lin@example.com".into()),
                name: Some("Mei Lin".into()),
                role: Some(Role::Agent),
                agent: Some("A-17".into()),
                team: Some("billing".into()),
                expires_at: DateTime::from_timestamp(exp, 0).unwrap(),
            }
        );
    }

    #[tokio::test]
    async fn the_username_falls_back_to_sub_and_an_unverified_email_is_dropped() {
        let key = TestKey::es256("k");
        let (v, _file) = verifier_over(&[&key]);
        let token = key.sign(&claims_with(json!({
            "preferred_username": null, "email_verified": false, "name": null,
            "switchboard_role": null, "switchboard_agent": null, "switchboard_team": null,
        })));
        let id = v.verify(&token).await.unwrap();
        assert_eq!(id.username, id.subject);
        assert_eq!(
            (id.email, id.name, id.role, id.agent, id.team),
            (None, None, None, None, None)
        );
    }

    #[tokio::test]
    async fn expired_beyond_the_leeway_is_refused_and_within_it_accepted() {
        let key = TestKey::es256("k");
        let (v, _file) = verifier_over(&[&key]);
        let late = key.sign(&claims_with(json!({"exp": now() - 120, "iat": now() - 900})));
        assert_eq!(v.verify(&late).await, Err(OidcError::Expired));
        let skewed = key.sign(&claims_with(json!({"exp": now() - 30, "iat": now() - 900})));
        assert!(
            v.verify(&skewed).await.is_ok(),
            "30 s past exp is within the 60 s leeway"
        );
        let forever = key.sign(&claims_with(json!({"exp": null})));
        assert!(
            matches!(v.verify(&forever).await, Err(OidcError::Malformed(m)) if m.contains("exp")),
            "a token without exp never expires: refused"
        );
    }

    #[tokio::test]
    async fn nbf_or_iat_in_the_future_beyond_the_leeway_is_refused() {
        let key = TestKey::es256("k");
        let (v, _file) = verifier_over(&[&key]);
        let early = key.sign(&claims_with(json!({"nbf": now() + 120})));
        assert_eq!(v.verify(&early).await, Err(OidcError::NotYetValid));
        let issued_later = key.sign(&claims_with(json!({"iat": now() + 120})));
        assert_eq!(v.verify(&issued_later).await, Err(OidcError::NotYetValid));
        let skewed = key.sign(&claims_with(json!({"nbf": now() + 30, "iat": now() + 30})));
        assert!(v.verify(&skewed).await.is_ok(), "30 s ahead is within the 60 s leeway");
    }

    #[tokio::test]
    async fn a_wrong_audience_is_refused_and_a_list_naming_ours_accepted() {
        let key = TestKey::es256("k");
        let (v, _file) = verifier_over(&[&key]);
        let other_app = key.sign(&claims_with(json!({"aud": "crm"})));
        assert_eq!(v.verify(&other_app).await, Err(OidcError::WrongAudience));
        let none_of_ours = key.sign(&claims_with(json!({"aud": ["crm", "wiki"]})));
        assert_eq!(v.verify(&none_of_ours).await, Err(OidcError::WrongAudience));
        let no_aud = key.sign(&claims_with(json!({"aud": null})));
        assert_eq!(
            v.verify(&no_aud).await,
            Err(OidcError::WrongAudience),
            "a token for nobody in particular is not ours"
        );
        let several = key.sign(&claims_with(json!({"aud": ["crm", AUDIENCE]})));
        assert!(v.verify(&several).await.is_ok());
    }

    #[tokio::test]
    async fn a_wrong_issuer_is_refused_even_a_near_one() {
        let key = TestKey::es256("k");
        let (v, _file) = verifier_over(&[&key]);
        for iss in [json!("https://evil.example.com"), json!(format!("{ISSUER}/"))] {
            let token = key.sign(&claims_with(json!({"iss": iss})));
            assert_eq!(
                v.verify(&token).await,
                Err(OidcError::WrongIssuer {
                    expected: ISSUER.into(),
                    got: iss.as_str().unwrap().into()
                })
            );
        }
        let unsigned = key.sign(&claims_with(json!({"iss": null})));
        assert!(matches!(v.verify(&unsigned).await, Err(OidcError::WrongIssuer { got, .. }) if got.is_empty()));
        let listed = key.sign(&claims_with(json!({"iss": [ISSUER, "https://evil.example.com"]})));
        assert!(matches!(v.verify(&listed).await, Err(OidcError::WrongIssuer { .. })));
        let err = v
            .verify(&key.sign(&claims_with(json!({"iss": "https://evil.example.com"}))))
            .await;
        assert!(err.unwrap_err().to_string().contains("evil.example.com"));
    }

    #[tokio::test]
    async fn an_unknown_kid_is_refused() {
        let key = TestKey::es256("k");
        let stranger = TestKey::es256("stranger");
        let (v, _file) = verifier_over(&[&key]);
        assert_eq!(
            v.verify(&stranger.sign(&claims())).await,
            Err(OidcError::UnknownKey("stranger".into()))
        );
        // Our key's kid on a stranger's signature is caught by the signature.
        let forged = stranger.sign_as(Algorithm::ES256, Some("k"), &claims());
        assert_eq!(v.verify(&forged).await, Err(OidcError::BadSignature));
    }

    #[tokio::test]
    async fn a_tampered_signature_or_payload_is_refused() {
        let key = TestKey::es256("k");
        let (v, _file) = verifier_over(&[&key]);
        let token = key.sign(&claims());
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[10] ^= 0x01;
        let bad_signature = format!("{signed}.{}", b64(&bytes));
        assert_eq!(v.verify(&bad_signature).await, Err(OidcError::BadSignature));

        let header = token.split('.').next().unwrap();
        let promoted = b64(claims_with(json!({"switchboard_role": "admin"})).to_string().as_bytes());
        let bad_payload = format!("{header}.{promoted}.{signature}");
        assert_eq!(v.verify(&bad_payload).await, Err(OidcError::BadSignature));
    }

    #[tokio::test]
    async fn alg_none_is_refused() {
        let key = TestKey::es256("k");
        let (v, _file) = verifier_over(&[&key]);
        for alg in ["none", "None", "NONE"] {
            let header = b64(json!({"alg": alg, "typ": "JWT", "kid": "k"}).to_string().as_bytes());
            let payload = b64(claims().to_string().as_bytes());
            for token in [format!("{header}.{payload}."), format!("{header}.{payload}.c2ln")] {
                assert!(
                    matches!(v.verify(&token).await, Err(OidcError::DisallowedAlgorithm(a)) if a.contains(alg)),
                    "{alg}"
                );
            }
        }
        let header = b64(json!({"typ": "JWT", "kid": "k"}).to_string().as_bytes());
        let payload = b64(claims().to_string().as_bytes());
        assert!(matches!(
            v.verify(&format!("{header}.{payload}.")).await,
            Err(OidcError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn hs256_signed_with_the_public_key_as_secret_is_refused() {
        let key = TestKey::es256("k");
        let (v, _file) = verifier_over(&[&key]);
        let jwk_text = key.jwk.to_string();
        let x = URL_SAFE_NO_PAD.decode(key.jwk["x"].as_str().unwrap()).unwrap();
        for secret in [jwk_text.as_bytes(), &x[..]] {
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let mut header = Header::new(alg);
                header.kid = Some("k".into());
                let token = encode(&header, &claims(), &EncodingKey::from_secret(secret)).unwrap();
                assert_eq!(
                    v.verify(&token).await,
                    Err(OidcError::DisallowedAlgorithm(format!("{:?}", format!("{alg:?}"))))
                );
            }
        }
    }

    #[tokio::test]
    async fn a_token_over_8_kib_is_refused_before_parsing() {
        let key = TestKey::es256("k");
        let (v, _file) = verifier_over(&[&key]);
        let padded = key.sign(&claims_with(json!({"padding": "x".repeat(MAX_TOKEN_BYTES)})));
        assert_eq!(v.verify(&padded).await, Err(OidcError::TooLarge));
        assert_eq!(
            v.verify(&"a".repeat(MAX_TOKEN_BYTES + 1)).await,
            Err(OidcError::TooLarge)
        );
        let fits = key.sign(&claims_with(json!({"padding": "x".repeat(4096)})));
        assert!(v.verify(&fits).await.is_ok());
    }

    #[tokio::test]
    async fn the_integration_role_is_never_taken_from_a_token() {
        let key = TestKey::es256("k");
        let (v, _file) = verifier_over(&[&key]);
        let machine = key.sign(&claims_with(json!({"switchboard_role": "integration"})));
        assert_eq!(v.verify(&machine).await.unwrap().role, None);
        let only_machine = key.sign(&claims_with(json!({"switchboard_role": ["integration"]})));
        assert_eq!(v.verify(&only_machine).await.unwrap().role, None);
        let unknown = key.sign(&claims_with(json!({"switchboard_role": "root"})));
        assert_eq!(v.verify(&unknown).await.unwrap().role, None);
        let not_text = key.sign(&claims_with(json!({"switchboard_role": 3})));
        assert_eq!(v.verify(&not_text).await.unwrap().role, None);
    }

    #[tokio::test]
    async fn the_role_claim_may_be_an_array_and_the_first_persons_role_wins() {
        let key = TestKey::es256("k");
        let (v, _file) = verifier_over(&[&key]);
        for (roles, want) in [
            (json!(["offline_access", "supervisor", "admin"]), Some(Role::Supervisor)),
            (json!(["integration", "admin"]), Some(Role::Admin)),
            (json!(["uma_authorization", 7, "agent"]), Some(Role::Agent)),
            (json!([]), None),
        ] {
            let token = key.sign(&claims_with(json!({"switchboard_role": roles})));
            assert_eq!(v.verify(&token).await.unwrap().role, want, "{roles}");
        }
    }

    #[tokio::test]
    async fn rsa_and_eddsa_tokens_verify_and_the_algorithm_must_fit_the_key() {
        let rsa = TestKey::rsa("rsa-1");
        let ed = TestKey::ed25519("ed-1");
        let ec = TestKey::es256("ec-1");
        let (v, _file) = verifier_over(&[&rsa, &ed, &ec]);
        for alg in [Algorithm::RS256, Algorithm::RS512, Algorithm::PS256] {
            assert!(
                v.verify(&rsa.sign_as(alg, Some("rsa-1"), &claims())).await.is_ok(),
                "{alg:?}"
            );
        }
        assert!(v.verify(&ed.sign(&claims())).await.is_ok());
        // The EC key's JWK says ES256; an RSA signature naming it is refused before checking.
        let crossed = rsa.sign_as(Algorithm::RS256, Some("ec-1"), &claims());
        assert!(matches!(
            v.verify(&crossed).await,
            Err(OidcError::DisallowedAlgorithm(_))
        ));
        let crossed = ec.sign_as(Algorithm::ES256, Some("rsa-1"), &claims());
        assert!(matches!(
            v.verify(&crossed).await,
            Err(OidcError::DisallowedAlgorithm(_))
        ));
    }

    #[tokio::test]
    async fn a_token_without_kid_uses_the_only_key_and_no_guess_among_several() {
        let key = TestKey::es256("k");
        let other = TestKey::es256("other");
        let (v, _file) = verifier_over(&[&key]);
        assert!(v.verify(&key.sign_as(Algorithm::ES256, None, &claims())).await.is_ok());
        let (v, _file) = verifier_over(&[&key, &other]);
        assert!(matches!(
            v.verify(&key.sign_as(Algorithm::ES256, None, &claims())).await,
            Err(OidcError::Malformed(m)) if m.contains("kid")
        ));
    }

    #[tokio::test]
    async fn symmetric_encryption_and_broken_jwks_entries_are_skipped() {
        let key = TestKey::es256("k");
        let body = json!({"keys": [
            {"kty": "oct", "kid": "shared", "k": b64(b"a shared secret")},
            {"kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AQAB", "y": "AQAB"},
            {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "not base64!", "y": "!"},
            {"kty": "RSA", "kid": "hmac-alg", "alg": "HS256", "n": "AQAB", "e": "AQAB"},
            {"something": "else"},
            key.jwk,
        ]})
        .to_string();
        let file = JwksFile::new(&body);
        let v = Verifier::new(config(JwksSource::File(file.0.clone()))).unwrap();
        assert_eq!(v.load_keys().await, Ok(1));
        assert!(v.verify(&key.sign(&claims())).await.is_ok());
        let shared = {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("shared".into());
            encode(&header, &claims(), &EncodingKey::from_secret(b"a shared secret")).unwrap()
        };
        assert!(matches!(
            v.verify(&shared).await,
            Err(OidcError::DisallowedAlgorithm(_))
        ));
        let naming_oct = key.sign_as(Algorithm::ES256, Some("shared"), &claims());
        assert_eq!(v.verify(&naming_oct).await, Err(OidcError::UnknownKey("shared".into())));

        file.write(&json!({"keys": [{"kty": "oct", "kid": "shared", "k": "c2VjcmV0"}]}).to_string());
        let err = Verifier::new(config(JwksSource::File(file.0.clone()))).err().unwrap();
        assert!(
            err.is_unavailable() && err.to_string().contains("no usable signing key"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn garbage_is_malformed_and_says_why() {
        let key = TestKey::es256("k");
        let (v, _file) = verifier_over(&[&key]);
        let good = key.sign(&claims());
        let (header, rest) = good.split_once('.').unwrap();
        let crit = b64(json!({"alg": "ES256", "kid": "k", "crit": ["exp"], "exp": 1})
            .to_string()
            .as_bytes());
        for (token, says) in [
            ("".to_owned(), "3 parts"),
            ("abc".to_owned(), "3 parts"),
            ("a.b.c.d.e".to_owned(), "encrypted"),
            (format!("{header}.{rest}.extra"), "parts"),
            (format!("!!.{rest}"), "base64url"),
            (format!("{}.{rest}", b64(b"[1,2]")), "header"),
            (format!("{crit}.{rest}"), "crit"),
            (key.sign(&claims_with(json!({"sub": null}))), "sub"),
            (key.sign(&claims_with(json!({"sub": ""}))), "sub"),
            (key.sign(&claims_with(json!({"exp": "tomorrow"}))), "exp"),
            (key.sign(&claims_with(json!({"iat": "today"}))), "iat"),
        ] {
            match v.verify(&token).await {
                Err(OidcError::Malformed(m)) => assert!(m.contains(says), "{token}: {m}"),
                other => panic!("{token}: {other:?}"),
            }
        }
    }

    #[test]
    fn only_key_fetch_failures_are_unavailable() {
        assert!(OidcError::Jwks("down".into()).is_unavailable());
        for e in [
            OidcError::Expired,
            OidcError::NotYetValid,
            OidcError::WrongAudience,
            OidcError::UnknownKey("k".into()),
            OidcError::BadSignature,
            OidcError::Malformed("m".into()),
            OidcError::DisallowedAlgorithm("HS256".into()),
            OidcError::TooLarge,
            OidcError::Config("c".into()),
        ] {
            assert!(!e.is_unavailable(), "{e}");
        }
    }

    #[test]
    fn settings_make_the_config_or_name_what_is_missing() {
        let mut s = Settings::default();
        assert!(OidcConfig::from_settings(&s).unwrap().is_none(), "off by default");
        assert!(Verifier::from_settings(&s).unwrap().is_none());
        s.oidc_issuer = Some(ISSUER.into());
        let err = |s: &Settings| OidcConfig::from_settings(s).unwrap_err().to_string();
        assert!(err(&s).contains("oidc_audience"), "{}", err(&s));
        s.oidc_audience = AUDIENCE.into();
        assert!(
            err(&s).contains("oidc_jwks_url") && err(&s).contains("oidc_jwks_file"),
            "{}",
            err(&s)
        );
        s.oidc_jwks_file = Some("/etc/switchboard/jwks.json".into());
        s.oidc_jwks_url = Some("https://id.example.com/certs".into());
        assert!(err(&s).contains("not both"), "{}", err(&s));
        s.oidc_jwks_file = None;
        for refused in [
            "http://id.example.com/certs",
            "ftp://id.example.com/certs",
            "not a url",
            "https://",
        ] {
            s.oidc_jwks_url = Some(refused.into());
            assert!(err(&s).contains("oidc_jwks_url"), "{refused}: {}", err(&s));
        }
        for accepted in [
            "https://id.example.com/realms/cc/protocol/openid-connect/certs",
            "http://127.0.0.1:8180/certs",
            "http://localhost/certs",
            "http://[::1]:8180/certs",
        ] {
            s.oidc_jwks_url = Some(accepted.into());
            let c = OidcConfig::from_settings(&s).unwrap().unwrap();
            assert_eq!(c.jwks, JwksSource::Url(accepted.into()));
        }
        s.oidc_role_claim = " ".into();
        assert!(err(&s).contains("oidc_role_claim"), "{}", err(&s));
        s.oidc_role_claim = "roles".into();
        s.oidc_jwks_refresh_s = 0;
        let c = OidcConfig::from_settings(&s).unwrap().unwrap();
        assert_eq!(
            (c.issuer.as_str(), c.role_claim.as_str(), c.refresh, c.leeway_s),
            (ISSUER, "roles", Duration::from_secs(1), 60)
        );
    }

    #[tokio::test]
    async fn a_jwks_file_is_read_at_start_and_reread_on_refresh_and_for_an_unknown_kid() {
        let missing = std::env::temp_dir().join("switchboard-oidc-no-such-file.json");
        let err = Verifier::new(config(JwksSource::File(missing.clone()))).err().unwrap();
        assert!(err.to_string().contains(&*missing.to_string_lossy()), "{err}");
        let not_json = JwksFile::new("<html>");
        assert!(matches!(
            Verifier::new(config(JwksSource::File(not_json.0.clone()))),
            Err(OidcError::Jwks(_))
        ));

        let old = TestKey::es256("old");
        let new = TestKey::es256("new");
        let file = JwksFile::new(&jwks(&[&old]));
        let rotating = Verifier::new(config(JwksSource::File(file.0.clone()))).unwrap();
        let mut refreshing = config(JwksSource::File(file.0.clone()));
        refreshing.refresh = Duration::from_millis(50);
        let refreshing = Verifier::new(refreshing).unwrap();
        assert!(rotating.verify(&old.sign(&claims())).await.is_ok());
        assert!(refreshing.verify(&old.sign(&claims())).await.is_ok());

        file.write(&jwks(&[&new]));
        assert!(
            rotating.verify(&new.sign(&claims())).await.is_ok(),
            "an unknown kid re-reads the file"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(refreshing.verify(&new.sign(&claims())).await.is_ok());
        assert_eq!(
            refreshing.verify(&old.sign(&claims())).await,
            Err(OidcError::UnknownKey("old".into())),
            "a key taken out of the file stops working at the next refresh"
        );
    }

    /// A JWKS endpoint on loopback that counts the requests it gets.
    struct JwksServer {
        url: String,
        answer: Arc<std::sync::Mutex<(u16, String)>>,
        hits: Arc<AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
    }

    impl JwksServer {
        async fn start(body: String) -> JwksServer {
            let answer = Arc::new(std::sync::Mutex::new((200, body)));
            let hits = Arc::new(AtomicUsize::new(0));
            let (a, h) = (answer.clone(), hits.clone());
            let app = axum::Router::new().route(
                "/certs",
                axum::routing::get(move || {
                    let (a, h) = (a.clone(), h.clone());
                    async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        let (status, body) = a.lock().unwrap().clone();
                        (
                            axum::http::StatusCode::from_u16(status).unwrap(),
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            body,
                        )
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/certs", listener.local_addr().unwrap());
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            JwksServer {
                url,
                answer,
                hits,
                task,
            }
        }

        fn answer(&self, status: u16, body: String) {
            *self.answer.lock().unwrap() = (status, body);
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }

        fn verifier(&self) -> Verifier {
            Verifier::new(config(JwksSource::Url(self.url.clone()))).unwrap()
        }
    }

    impl Drop for JwksServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    #[tokio::test]
    async fn a_jwks_url_is_fetched_on_first_use_once_for_concurrent_requests() {
        let key = TestKey::es256("k");
        let server = JwksServer::start(jwks(&[&key])).await;
        let v = Arc::new(server.verifier());
        assert_eq!(server.hits(), 0, "nothing is fetched before the first token");
        let token = key.sign(&claims());
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (v, token) = (v.clone(), token.clone());
                tokio::spawn(async move { v.verify(&token).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().username, "mei.lin");
        }
        assert_eq!(server.hits(), 1, "eight first requests share one fetch");
        v.verify(&token).await.unwrap();
        assert_eq!(server.hits(), 1, "cached");
    }

    #[tokio::test]
    async fn a_rotated_key_is_fetched_but_unknown_kids_refetch_at_most_once_per_window() {
        let k1 = TestKey::es256("2026-04");
        let k2 = TestKey::es256("2026-05");
        let k3 = TestKey::es256("2026-06");
        let server = JwksServer::start(jwks(&[&k1])).await;
        let v = server.verifier();
        v.verify(&k1.sign(&claims())).await.unwrap();
        assert_eq!(server.hits(), 1);

        server.answer(200, jwks(&[&k1, &k2]));
        let id = v.verify(&k2.sign(&claims())).await.unwrap();
        assert_eq!(id.username, "mei.lin", "a key rotated in after start is found");
        assert_eq!(server.hits(), 2);

        for i in 0..20 {
            let garbage = k1.sign_as(Algorithm::ES256, Some(&format!("made-up-{i}")), &claims());
            assert_eq!(
                v.verify(&garbage).await,
                Err(OidcError::UnknownKey(format!("made-up-{i}")))
            );
        }
        server.answer(200, jwks(&[&k1, &k2, &k3]));
        assert_eq!(
            v.verify(&k3.sign(&claims())).await,
            Err(OidcError::UnknownKey("2026-06".into())),
            "within 30 s of the last refetch even a real new key waits"
        );
        assert_eq!(server.hits(), 2, "made-up kids did not reach the identity provider");
        v.verify(&k1.sign(&claims())).await.unwrap();
        assert_eq!(server.hits(), 2, "known keys never fetch");

        // The window passes (shortened here), and the next unknown kid fetches again, once.
        let mut v = server.verifier();
        v.unknown_kid_refetch_every = Duration::from_millis(500);
        let hits = server.hits();
        let garbage = k1.sign_as(Algorithm::ES256, Some("made-up"), &claims());
        assert!(v.verify(&garbage).await.is_err());
        assert!(v.verify(&garbage).await.is_err());
        assert_eq!(server.hits(), hits + 2, "the first load, then one refetch");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(v.verify(&garbage).await.is_err());
        assert!(v.verify(&garbage).await.is_err());
        assert_eq!(server.hits(), hits + 3);
    }

    #[tokio::test]
    async fn key_fetch_failures_are_unavailable_backed_off_and_stale_keys_kept() {
        let key = TestKey::es256("k");
        let token = key.sign(&claims());
        let server = JwksServer::start(jwks(&[&key])).await;

        server.answer(500, "oops".into());
        let v = server.verifier();
        let err = v.verify(&token).await.unwrap_err();
        assert!(err.is_unavailable() && err.to_string().contains("500"), "{err}");
        let again = v.verify(&token).await.unwrap_err();
        assert!(again.is_unavailable());
        assert_eq!(server.hits(), 1, "a failed fetch is not retried at once");

        server.answer(
            200,
            format!("{{\"keys\": [], \"pad\": \"{}\"}}", "x".repeat(MAX_JWKS_BYTES)),
        );
        let err = server.verifier().verify(&token).await.unwrap_err();
        assert!(err.is_unavailable() && err.to_string().contains("larger than"), "{err}");

        server.answer(200, "<html>sign in</html>".into());
        let err = server.verifier().verify(&token).await.unwrap_err();
        assert!(err.is_unavailable() && err.to_string().contains("not a JWKS"), "{err}");

        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/certs", closed.local_addr().unwrap());
        drop(closed);
        let err = Verifier::new(config(JwksSource::Url(url)))
            .unwrap()
            .verify(&token)
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err}");

        // Keys once had keep working while the provider is down.
        server.answer(200, jwks(&[&key]));
        let mut c = config(JwksSource::Url(server.url.clone()));
        c.refresh = Duration::from_millis(50);
        let v = Verifier::new(c).unwrap();
        v.verify(&token).await.unwrap();
        server.answer(503, "maintenance".into());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let hits = server.hits();
        assert!(v.verify(&token).await.is_ok(), "stale keys are better than none");
        assert_eq!(server.hits(), hits + 1, "the refresh was tried");
    }
}
