//! Runtime settings: a TOML file overridden by `SWITCHBOARD_*` environment variables.
//!
//! Connection strings live here; business rules live in the policy (`policy.rs`), which is
//! versioned separately so that every transition can name the policy it was decided under.

use crate::core::policy::{Policy, PolicyDocument, PolicyError};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/switchboard";
/// How long the events log keeps events, unless configured (RabbitMQ's `x-max-age` syntax).
pub const DEFAULT_EVENTS_LOG_MAX_AGE: &str = "7D";
/// Most bytes the events log keeps, unless configured (10 GiB).
pub const DEFAULT_EVENTS_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// One or more AMQP URLs (comma separated): the nodes of a cluster, tried in turn.
    pub amqp_url: String,
    pub database_url: String,
    /// Postgres schema for every table (tests use one schema each).
    pub database_schema: Option<String>,
    pub database_pool_size: usize,
    /// Prefix of every exchange and queue name (`switchboard.intake`, …).
    pub topology_prefix: String,
    pub policy_path: PathBuf,
    /// Unacknowledged deliveries a consumer may hold; at most twice `batch_max` is used
    /// ([`Settings::effective_prefetch`]).
    pub prefetch: u16,
    /// Most deliveries one transaction takes.
    pub batch_max: usize,
    /// How long a batch waits for more deliveries once it has one.
    pub batch_linger_ms: u64,
    /// Deliveries of one message before the broker dead-letters it.
    pub delivery_limit: u32,
    /// `host:port` for `/metrics`, `/healthz`, `/readyz`; none to disable.
    pub metrics_addr: Option<String>,
    /// How long a stopping worker may take to finish what it holds.
    pub shutdown_grace_ms: u64,
    /// How long a ticket may wait in a pipeline state (received, classified, prioritized) or
    /// in a queue with a free agent before the scheduler's sweeper re-drives it (seconds).
    pub sweep_after_s: u64,
    /// Whether a process running consecutive pipeline stages hands each ticket from stage to
    /// stage in memory and commits once (`stages::chain`), instead of through their queues.
    pub chain_stages: bool,
    /// Where `switchboard gateway` listens (`host:port`).
    pub gateway_listen: String,
    /// Requests per second each API key may make (token bucket refill), unless the key has its own.
    pub gateway_rate_per_sec: u32,
    /// Requests an API key may make in a burst (token bucket size), unless the key has its own.
    pub gateway_rate_burst: u32,
    /// Largest JSON request body (app, phone, chat) the gateway reads.
    pub gateway_max_json_bytes: usize,
    /// Largest raw email (`message/rfc822`) the gateway reads; attachments make emails big.
    pub gateway_max_email_bytes: usize,
    /// How long the gateway waits for the broker's confirm before answering 503.
    pub gateway_publish_timeout_ms: u64,
    /// Confirm channels the gateway publishes on (pipelined; rebuilt when one fails).
    pub gateway_channels: usize,
    /// How long a looked-up API key is trusted before the database is asked again (revocation delay).
    pub gateway_key_cache_ms: u64,
    /// Key look-ups the cache cannot answer (unknown, revoked or new keys) per second per client
    /// address, before the gateway answers 429 without asking the database (burst: twice this).
    pub gateway_auth_misses_per_sec: u32,
    /// Proxies in front of the gateway (addresses or CIDR blocks, comma separated): for a
    /// request from one of them, the client's address is taken from `X-Forwarded-For`.
    pub gateway_trusted_proxies: String,
    /// How far before the gateway's clock a request's `received_at` may be (seconds); older
    /// ones are refused with 422, so a backdated request cannot jump the queue.
    pub gateway_max_backdate_s: u64,
    /// How far after the gateway's clock a request's `received_at` may be (seconds: clock skew);
    /// later ones are refused with 422, so a future-dated request cannot dodge its SLA.
    pub gateway_max_ahead_s: u64,
    /// Connections the gateway holds open at once; past it new ones are closed at once.
    pub gateway_max_connections: usize,
    /// How long a client may take to send a request's headers (slow-loris; idle keep-alive).
    pub gateway_header_timeout_ms: u64,
    /// How long a request may take from its headers to the response (a trickled body): 408.
    pub gateway_request_timeout_ms: u64,
    /// Requests handled at once; past it a request is answered 503 with Retry-After at once.
    pub gateway_max_in_flight: usize,
    /// The OpenID Connect provider whose tokens the gateway accepts as bearer credentials: a
    /// token's `iss` must equal it exactly. Unset: single sign-on is off, only API keys work.
    pub oidc_issuer: Option<String>,
    /// The `aud` a token must name: the client id Switchboard is registered under at the provider.
    pub oidc_audience: String,
    /// Where the provider publishes its signing keys (a JWKS, over HTTPS): fetched on first use,
    /// every `oidc_jwks_refresh_s`, and when a token names a key not seen yet (at most every 30 s).
    pub oidc_jwks_url: Option<String>,
    /// A JWKS file instead of the URL (re-read every `oidc_jwks_refresh_s`).
    pub oidc_jwks_file: Option<PathBuf>,
    /// Clock skew allowed between the provider and the gateway on `exp`, `nbf` and `iat` (seconds).
    pub oidc_leeway_s: u64,
    /// The claim naming the Switchboard user (its `sub` when the token has no such claim).
    pub oidc_user_claim: String,
    /// The claim carrying the role (`agent`, `supervisor`, `admin`; never `integration`).
    pub oidc_role_claim: String,
    /// The claim carrying the agent's roster id.
    pub oidc_agent_claim: String,
    /// The claim carrying the supervisor's or agent's team.
    pub oidc_team_claim: String,
    /// How often the signing keys are fetched (or the file re-read) again (seconds).
    pub oidc_jwks_refresh_s: u64,
    /// The gateway's address as people reach it: the desk links in staff notifications and
    /// the survey links sent to customers start with it.
    pub public_url: String,
    /// The SMTP server mail goes out through: `smtp://host:25` (a local relay),
    /// `smtp://host:587?tls=required` (STARTTLS), `smtps://user:password@host:465`. Unset: no
    /// email is sent (staff are reached by their other media; email customers get nothing).
    pub smtp_url: Option<String>,
    /// The sender of every mail: `"Name <address>"` or an address. Its domain names the
    /// Message-IDs, by which customers' replies find their tickets.
    pub smtp_from: String,
    /// A webhook endpoint whose every delivery has failed for this long is disabled (seconds).
    pub webhook_disable_after_s: u64,
    /// Deliveries the deliver stage sends at once (per process).
    pub deliver_concurrency: usize,
    /// How long one send (an HTTP post, an SMTP transaction) may take (milliseconds).
    pub deliver_timeout_ms: u64,
    /// The wait before a failed delivery's first retry (milliseconds); later retries wait
    /// longer: ×6, ×24, ×120, ×360, ×720, ×1440, then 4 h each (5 s, 30 s, 2 min, … by default).
    pub deliver_first_retry_ms: u64,
    /// How long the events log (the stream `<prefix>.events.log`, every event ever published)
    /// keeps an event: a whole number and a unit, `Y`, `M`, `D`, `h`, `m` or `s` (`7D`, `36h`).
    /// Its `x-max-age`; removed a segment at a time, so an event may stay a little longer.
    pub events_log_max_age: String,
    /// Most bytes the events log keeps (its `x-max-length-bytes`); past it the oldest segments go.
    pub events_log_max_bytes: u64,
}

impl Settings {
    /// The domain of `smtp_from`, which Message-IDs are minted in; `None` without `smtp_url`.
    pub fn mail_domain(&self) -> Option<String> {
        self.smtp_url.as_ref()?;
        let from = self.smtp_from.trim();
        let address = match (from.rfind('<'), from.rfind('>')) {
            (Some(a), Some(b)) if a < b => &from[a + 1..b],
            _ => from,
        };
        let domain = address
            .rsplit_once('@')
            .map(|(_, d)| d.trim())
            .filter(|d| !d.is_empty())?;
        Some(domain.to_ascii_lowercase())
    }

    /// The prefetch a consumer really asks for: at most two batches (the one in hand and the
    /// next). Every delivery a consumer holds when its connection drops comes back with one more
    /// delivery counted against the queue's `delivery_limit`, so deliveries held but untouched
    /// would burn their limit on every reconnect for nothing.
    pub fn effective_prefetch(&self) -> u16 {
        let two_batches = self.batch_max.max(1).saturating_mul(2).min(u16::MAX as usize) as u16;
        self.prefetch.clamp(1, two_batches)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            amqp_url: DEFAULT_AMQP_URL.into(),
            database_url: DEFAULT_DATABASE_URL.into(),
            database_schema: None,
            database_pool_size: 8,
            topology_prefix: "switchboard".into(),
            policy_path: PathBuf::from("config/policy.toml"),
            prefetch: 300,
            batch_max: 100,
            batch_linger_ms: 3,
            delivery_limit: 20,
            metrics_addr: None,
            shutdown_grace_ms: 10_000,
            gateway_listen: "0.0.0.0:8080".into(),
            gateway_rate_per_sec: 50,
            gateway_rate_burst: 100,
            gateway_max_json_bytes: crate::contracts::intake::MAX_MESSAGE_BYTES,
            gateway_max_email_bytes: crate::channels::email::MAX_RAW_EMAIL_BYTES,
            gateway_publish_timeout_ms: 5_000,
            gateway_channels: 4,
            gateway_key_cache_ms: 5_000,
            gateway_auth_misses_per_sec: 10,
            gateway_trusted_proxies: String::new(),
            gateway_max_backdate_s: 24 * 3600,
            gateway_max_ahead_s: 300,
            sweep_after_s: 120,
            chain_stages: true,
            gateway_max_connections: 10_000,
            gateway_header_timeout_ms: 10_000,
            gateway_request_timeout_ms: 30_000,
            gateway_max_in_flight: 2_000,
            oidc_issuer: None,
            oidc_audience: String::new(),
            oidc_jwks_url: None,
            oidc_jwks_file: None,
            oidc_leeway_s: 60,
            oidc_user_claim: "preferred_username".into(),
            oidc_role_claim: "switchboard_role".into(),
            oidc_agent_claim: "switchboard_agent".into(),
            oidc_team_claim: "switchboard_team".into(),
            oidc_jwks_refresh_s: 300,
            public_url: "http://localhost:8080".into(),
            smtp_url: None,
            smtp_from: "Switchboard <switchboard@localhost>".into(),
            webhook_disable_after_s: 24 * 3600,
            deliver_concurrency: 16,
            deliver_timeout_ms: 10_000,
            deliver_first_retry_ms: 5_000,
            events_log_max_age: DEFAULT_EVENTS_LOG_MAX_AGE.into(),
            events_log_max_bytes: DEFAULT_EVENTS_LOG_MAX_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}={value:?}: {problem}")]
    Env {
        name: String,
        value: String,
        problem: String,
    },
    #[error("setting {name} = {value:?}: {problem}")]
    Invalid {
        name: &'static str,
        value: String,
        problem: String,
    },
}

impl Settings {
    /// Loads `path` if given (or `SWITCHBOARD_CONFIG`, or `config/switchboard.toml` when it
    /// exists), then applies `SWITCHBOARD_*` overrides.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let env_path = std::env::var_os("SWITCHBOARD_CONFIG").map(PathBuf::from);
        let default_path = PathBuf::from("config/switchboard.toml");
        let chosen = match (path, env_path) {
            (Some(p), _) => Some(p.to_path_buf()),
            (None, Some(p)) => Some(p),
            (None, None) if default_path.exists() => Some(default_path),
            _ => None,
        };
        let mut settings = match chosen {
            Some(p) => Self::from_file(&p)?,
            None => Settings::default(),
        };
        settings.apply_env(|k| std::env::var(k).ok())?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what the broker would otherwise refuse later, with a less helpful message.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !valid_max_age(&self.events_log_max_age) {
            return Err(ConfigError::Invalid {
                name: "events_log_max_age",
                value: self.events_log_max_age.clone(),
                problem: "expected a whole number above 0 and a unit: Y, M, D, h, m or s (e.g. 7D, 36h)".into(),
            });
        }
        if self.events_log_max_bytes == 0 {
            return Err(ConfigError::Invalid {
                name: "events_log_max_bytes",
                value: "0".into(),
                problem: "the events log needs room for at least one event".into(),
            });
        }
        Ok(())
    }

    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// Environment overrides, read through `get` so tests need not touch the process env.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(name: &str, value: String) -> Result<T, ConfigError> {
            value.trim().parse().map_err(|_| ConfigError::Env {
                name: name.into(),
                value,
                problem: "expected a whole number".into(),
            })
        }
        let string_vars: [(&str, &mut String); 3] = [
            ("SWITCHBOARD_AMQP_URL", &mut self.amqp_url),
            ("SWITCHBOARD_DATABASE_URL", &mut self.database_url),
            ("SWITCHBOARD_TOPOLOGY_PREFIX", &mut self.topology_prefix),
        ];
        for (name, slot) in string_vars {
            if let Some(v) = get(name) {
                *slot = v;
            }
        }
        if let Some(v) = get("SWITCHBOARD_DATABASE_SCHEMA") {
            self.database_schema = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = get("SWITCHBOARD_POLICY") {
            self.policy_path = PathBuf::from(v);
        }
        if let Some(v) = get("SWITCHBOARD_EVENTS_LOG_MAX_AGE") {
            self.events_log_max_age = v.trim().to_owned();
        }
        if let Some(v) = get("SWITCHBOARD_EVENTS_LOG_MAX_BYTES") {
            self.events_log_max_bytes = num("SWITCHBOARD_EVENTS_LOG_MAX_BYTES", v)?;
        }
        if let Some(v) = get("SWITCHBOARD_PUBLIC_URL") {
            self.public_url = v;
        }
        if let Some(v) = get("SWITCHBOARD_SMTP_URL") {
            self.smtp_url = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = get("SWITCHBOARD_SMTP_FROM") {
            self.smtp_from = v;
        }
        if let Some(v) = get("SWITCHBOARD_WEBHOOK_DISABLE_AFTER_S") {
            self.webhook_disable_after_s = num("SWITCHBOARD_WEBHOOK_DISABLE_AFTER_S", v)?;
        }
        if let Some(v) = get("SWITCHBOARD_DELIVER_TIMEOUT_MS") {
            self.deliver_timeout_ms = num("SWITCHBOARD_DELIVER_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("SWITCHBOARD_DELIVER_FIRST_RETRY_MS") {
            self.deliver_first_retry_ms = num("SWITCHBOARD_DELIVER_FIRST_RETRY_MS", v)?;
        }
        if let Some(v) = get("SWITCHBOARD_DELIVER_CONCURRENCY") {
            self.deliver_concurrency = num("SWITCHBOARD_DELIVER_CONCURRENCY", v)?;
        }
        if let Some(v) = get("SWITCHBOARD_METRICS_ADDR") {
            self.metrics_addr = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = get("SWITCHBOARD_DATABASE_POOL_SIZE") {
            self.database_pool_size = num("SWITCHBOARD_DATABASE_POOL_SIZE", v)?;
        }
        if let Some(v) = get("SWITCHBOARD_PREFETCH") {
            self.prefetch = num("SWITCHBOARD_PREFETCH", v)?;
        }
        if let Some(v) = get("SWITCHBOARD_BATCH_MAX") {
            self.batch_max = num("SWITCHBOARD_BATCH_MAX", v)?;
        }
        if let Some(v) = get("SWITCHBOARD_BATCH_LINGER_MS") {
            self.batch_linger_ms = num("SWITCHBOARD_BATCH_LINGER_MS", v)?;
        }
        if let Some(v) = get("SWITCHBOARD_DELIVERY_LIMIT") {
            self.delivery_limit = num("SWITCHBOARD_DELIVERY_LIMIT", v)?;
        }
        if let Some(v) = get("SWITCHBOARD_SWEEP_AFTER_S") {
            self.sweep_after_s = num("SWITCHBOARD_SWEEP_AFTER_S", v)?;
        }
        if let Some(v) = get("SWITCHBOARD_CHAIN_STAGES") {
            self.chain_stages = match v.trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(ConfigError::Env {
                        name: "SWITCHBOARD_CHAIN_STAGES".into(),
                        value: v,
                        problem: "expected true or false".into(),
                    });
                }
            };
        }
        if let Some(v) = get("SWITCHBOARD_SHUTDOWN_GRACE_MS") {
            self.shutdown_grace_ms = num("SWITCHBOARD_SHUTDOWN_GRACE_MS", v)?;
        }
        if let Some(v) = get("SWITCHBOARD_GATEWAY_TRUSTED_PROXIES") {
            self.gateway_trusted_proxies = v;
        }
        if let Some(v) = get("SWITCHBOARD_GATEWAY_LISTEN") {
            self.gateway_listen = v;
        }
        let gateway_u32: [(&str, &mut u32); 3] = [
            ("SWITCHBOARD_GATEWAY_RATE_PER_SEC", &mut self.gateway_rate_per_sec),
            ("SWITCHBOARD_GATEWAY_RATE_BURST", &mut self.gateway_rate_burst),
            (
                "SWITCHBOARD_GATEWAY_AUTH_MISSES_PER_SEC",
                &mut self.gateway_auth_misses_per_sec,
            ),
        ];
        for (name, slot) in gateway_u32 {
            if let Some(v) = get(name) {
                *slot = num(name, v)?;
            }
        }
        let gateway_usize: [(&str, &mut usize); 5] = [
            ("SWITCHBOARD_GATEWAY_MAX_CONNECTIONS", &mut self.gateway_max_connections),
            ("SWITCHBOARD_GATEWAY_MAX_IN_FLIGHT", &mut self.gateway_max_in_flight),
            ("SWITCHBOARD_GATEWAY_MAX_JSON_BYTES", &mut self.gateway_max_json_bytes),
            ("SWITCHBOARD_GATEWAY_MAX_EMAIL_BYTES", &mut self.gateway_max_email_bytes),
            ("SWITCHBOARD_GATEWAY_CHANNELS", &mut self.gateway_channels),
        ];
        for (name, slot) in gateway_usize {
            if let Some(v) = get(name) {
                *slot = num(name, v)?;
            }
        }
        let gateway_u64: [(&str, &mut u64); 6] = [
            (
                "SWITCHBOARD_GATEWAY_HEADER_TIMEOUT_MS",
                &mut self.gateway_header_timeout_ms,
            ),
            (
                "SWITCHBOARD_GATEWAY_REQUEST_TIMEOUT_MS",
                &mut self.gateway_request_timeout_ms,
            ),
            (
                "SWITCHBOARD_GATEWAY_PUBLISH_TIMEOUT_MS",
                &mut self.gateway_publish_timeout_ms,
            ),
            ("SWITCHBOARD_GATEWAY_KEY_CACHE_MS", &mut self.gateway_key_cache_ms),
            ("SWITCHBOARD_GATEWAY_MAX_BACKDATE_S", &mut self.gateway_max_backdate_s),
            ("SWITCHBOARD_GATEWAY_MAX_AHEAD_S", &mut self.gateway_max_ahead_s),
        ];
        for (name, slot) in gateway_u64 {
            if let Some(v) = get(name) {
                *slot = num(name, v)?;
            }
        }
        if let Some(v) = get("SWITCHBOARD_OIDC_ISSUER") {
            self.oidc_issuer = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = get("SWITCHBOARD_OIDC_JWKS_URL") {
            self.oidc_jwks_url = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = get("SWITCHBOARD_OIDC_JWKS_FILE") {
            self.oidc_jwks_file = Some(v).filter(|s| !s.is_empty()).map(PathBuf::from);
        }
        let oidc_strings: [(&str, &mut String); 5] = [
            ("SWITCHBOARD_OIDC_AUDIENCE", &mut self.oidc_audience),
            ("SWITCHBOARD_OIDC_USER_CLAIM", &mut self.oidc_user_claim),
            ("SWITCHBOARD_OIDC_ROLE_CLAIM", &mut self.oidc_role_claim),
            ("SWITCHBOARD_OIDC_AGENT_CLAIM", &mut self.oidc_agent_claim),
            ("SWITCHBOARD_OIDC_TEAM_CLAIM", &mut self.oidc_team_claim),
        ];
        for (name, slot) in oidc_strings {
            if let Some(v) = get(name) {
                *slot = v;
            }
        }
        let oidc_u64: [(&str, &mut u64); 2] = [
            ("SWITCHBOARD_OIDC_LEEWAY_S", &mut self.oidc_leeway_s),
            ("SWITCHBOARD_OIDC_JWKS_REFRESH_S", &mut self.oidc_jwks_refresh_s),
        ];
        for (name, slot) in oidc_u64 {
            if let Some(v) = get(name) {
                *slot = num(name, v)?;
            }
        }
        if self.batch_max == 0 {
            self.batch_max = 1;
        }
        Ok(())
    }

    pub fn amqp_urls(&self) -> Vec<String> {
        self.amqp_url
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// RabbitMQ's `x-max-age`: a whole number above 0 and one of `Y M D h m s`.
fn valid_max_age(text: &str) -> bool {
    let Some(unit) = text.chars().last() else {
        return false;
    };
    let digits = &text[..text.len() - unit.len_utf8()];
    "YMDhms".contains(unit)
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0)
}

/// The policy is read here, at the edge; `core::policy` validates what was read.
impl Policy {
    /// Reads `path` and every file it `include`s, then validates the whole.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let policy = Policy::load_rules(path)?;
        let Some(model_path) = policy.doc.classification.model.clone() else {
            return Ok(policy);
        };
        // Already relative to the file that names it (see `resolve_model_path`).
        let file = model_path;
        let invalid = |message: String| PolicyError::Invalid {
            path: path.into(),
            line: String::new(),
            message,
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| invalid(format!("[classification] model: cannot read {}: {e} (run `switchboard train`, or remove `model` to use the rules alone)", file.display())))?;
        let model = crate::core::classify::Model::parse(&text)
            .map_err(|m| invalid(format!("[classification] model {}: {m}", file.display())))?;
        policy
            .with_model(Some(std::sync::Arc::new(model)))
            .map_err(|m| invalid(format!("[classification] model {}: {m}", file.display())))
    }
}

impl Policy {
    /// Like [`Policy::load`], without reading the learned model the policy names: the rules
    /// alone decide. `switchboard train` starts here (the model may not exist yet).
    pub fn load_rules(path: &Path) -> Result<Policy, PolicyError> {
        let (table, texts) = read_with_includes(path)?;
        let doc: PolicyDocument = table.try_into().map_err(|e: toml::de::Error| PolicyError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        Policy::from_document(doc, path, &texts)
    }
}

type Texts = Vec<(PathBuf, String)>;

/// `[classification] model` is relative to the file that names it, so a policy that includes
/// the shipped classification file from elsewhere (a test's policy) finds the shipped model.
fn resolve_model_path(mut table: toml::Table, file: &Path) -> toml::Table {
    let dir = file.parent().unwrap_or(Path::new("."));
    if let Some(toml::Value::Table(class)) = table.get_mut("classification")
        && let Some(toml::Value::String(model)) = class.get_mut("model")
        && Path::new(model.as_str()).is_relative()
    {
        *model = dir.join(model.as_str()).display().to_string();
    }
    table
}

/// The files `include` names, relative to `base`; an entry ending in `/*.toml` stands for
/// every `.toml` file of that directory, in name order (none is fine: e.g. `holidays/*.toml`
/// before the first import).
fn expand_includes(base: &Path, includes: &[PathBuf]) -> Result<Vec<PathBuf>, PolicyError> {
    let mut out = Vec::new();
    for inc in includes {
        let path = base.join(inc);
        if path.file_name().is_some_and(|n| n == "*.toml") {
            let dir = path.parent().unwrap_or(base);
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(PolicyError::Read {
                        path: dir.into(),
                        source,
                    });
                }
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}

/// Reads the main file and merges the top-level tables of every included file into it.
fn read_with_includes(path: &Path) -> Result<(toml::Table, Texts), PolicyError> {
    let read = |p: &Path| -> Result<(toml::Table, String), PolicyError> {
        let text = std::fs::read_to_string(p).map_err(|source| PolicyError::Read { path: p.into(), source })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| PolicyError::Parse {
            path: p.into(),
            message: e.to_string(),
        })?;
        Ok((resolve_model_path(table, p), text))
    };
    let (mut main, text) = read(path)?;
    let mut texts = vec![(path.to_path_buf(), text)];
    let includes: Vec<PathBuf> = match main.get("include") {
        Some(toml::Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(PathBuf::from)).collect(),
        _ => Vec::new(),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    for inc_path in expand_includes(base, &includes)? {
        let (table, text) = read(&inc_path)?;
        for (key, value) in table {
            // Public holidays come one file per year: their tables merge by year.
            if key == "public_holidays"
                && let (Some(toml::Value::Table(have)), toml::Value::Table(years)) = (main.get_mut(&key), &value)
            {
                for (year, decl) in years {
                    if have.contains_key(year) {
                        return Err(PolicyError::Invalid {
                            path: inc_path.clone(),
                            line: String::new(),
                            message: format!("[public_holidays.{year}] is declared twice; keep one file per year"),
                        });
                    }
                    have.insert(year.clone(), decl.clone());
                }
                continue;
            }
            if main.contains_key(&key) {
                return Err(PolicyError::Invalid {
                    path: inc_path.clone(),
                    line: crate::core::policy::locate(&[(inc_path.clone(), text.clone())], &key)
                        .1
                        .map(|l| format!(" line {l}"))
                        .unwrap_or_default(),
                    message: format!("`{key}` is already defined in {}", path.display()),
                });
            }
            main.insert(key, value);
        }
        texts.push((inc_path, text));
    }
    Ok((main, texts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_values() {
        let mut s = Settings::default();
        let env = |k: &str| match k {
            "SWITCHBOARD_AMQP_URL" => Some("amqp://a:5672/%2f, amqp://b:5672/%2f".to_string()),
            "SWITCHBOARD_BATCH_MAX" => Some("7".to_string()),
            _ => None,
        };
        s.apply_env(env).unwrap();
        assert_eq!(s.batch_max, 7);
        assert_eq!(s.amqp_urls(), vec!["amqp://a:5672/%2f", "amqp://b:5672/%2f"]);
    }

    #[test]
    fn the_events_log_keeps_a_week_or_10_gib_unless_told_otherwise() {
        let mut s = Settings::default();
        assert_eq!(
            (s.events_log_max_age.as_str(), s.events_log_max_bytes),
            ("7D", 10 << 30)
        );
        s.validate().unwrap();
        let env = |k: &str| match k {
            "SWITCHBOARD_EVENTS_LOG_MAX_AGE" => Some("36h".to_string()),
            "SWITCHBOARD_EVENTS_LOG_MAX_BYTES" => Some("1048576".to_string()),
            _ => None,
        };
        s.apply_env(env).unwrap();
        assert_eq!(
            (s.events_log_max_age.as_str(), s.events_log_max_bytes),
            ("36h", 1 << 20)
        );
        s.validate().unwrap();
        for bad in ["7", "D", "0D", "7d", "7 D", "-1h", "", "1.5h"] {
            s.events_log_max_age = bad.into();
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains("events_log_max_age"), "{bad:?}: {e}");
        }
        s.events_log_max_age = "1Y".into();
        s.events_log_max_bytes = 0;
        assert!(s.validate().unwrap_err().to_string().contains("events_log_max_bytes"));
    }

    #[test]
    fn a_consumer_holds_at_most_two_batches() {
        let mut s = Settings::default();
        assert_eq!((s.prefetch, s.batch_max), (300, 100));
        assert_eq!(
            s.effective_prefetch(),
            200,
            "300 would leave 200 untouched deliveries per consumer"
        );
        s.prefetch = 50;
        assert_eq!(s.effective_prefetch(), 50);
        s.batch_max = 0;
        assert_eq!(s.effective_prefetch(), 2);
        s.prefetch = 0;
        assert_eq!(s.effective_prefetch(), 1);
    }

    #[test]
    fn gateway_settings_from_env() {
        let mut s = Settings::default();
        assert_eq!(
            (s.gateway_listen.as_str(), s.gateway_rate_per_sec, s.gateway_rate_burst),
            ("0.0.0.0:8080", 50, 100)
        );
        let env = |k: &str| match k {
            "SWITCHBOARD_GATEWAY_LISTEN" => Some("127.0.0.1:9000".to_string()),
            "SWITCHBOARD_GATEWAY_RATE_PER_SEC" => Some("500".to_string()),
            "SWITCHBOARD_GATEWAY_MAX_EMAIL_BYTES" => Some("1048576".to_string()),
            "SWITCHBOARD_GATEWAY_KEY_CACHE_MS" => Some("0".to_string()),
            _ => None,
        };
        s.apply_env(env).unwrap();
        assert_eq!(s.gateway_listen, "127.0.0.1:9000");
        assert_eq!(
            (
                s.gateway_rate_per_sec,
                s.gateway_max_email_bytes,
                s.gateway_key_cache_ms
            ),
            (500, 1_048_576, 0)
        );
        let err = s
            .apply_env(|k| (k == "SWITCHBOARD_GATEWAY_RATE_BURST").then(|| "-1".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("SWITCHBOARD_GATEWAY_RATE_BURST"), "{err}");
    }

    #[test]
    fn oidc_settings_from_env() {
        let mut s = Settings::default();
        assert_eq!(s.oidc_issuer, None, "single sign-on is off unless asked for");
        assert_eq!(
            (
                s.oidc_leeway_s,
                s.oidc_jwks_refresh_s,
                s.oidc_user_claim.as_str(),
                s.oidc_role_claim.as_str()
            ),
            (60, 300, "preferred_username", "switchboard_role")
        );
        let env = |k: &str| match k {
            "SWITCHBOARD_OIDC_ISSUER" => Some("https://id.example.com/realms/cc".to_string()),
            "SWITCHBOARD_OIDC_AUDIENCE" => Some("switchboard".to_string()),
            "SWITCHBOARD_OIDC_JWKS_FILE" => Some("/etc/switchboard/jwks.json".to_string()),
            "SWITCHBOARD_OIDC_TEAM_CLAIM" => Some("team".to_string()),
            "SWITCHBOARD_OIDC_LEEWAY_S" => Some("5".to_string()),
            _ => None,
        };
        s.apply_env(env).unwrap();
        assert_eq!(s.oidc_issuer.as_deref(), Some("https://id.example.com/realms/cc"));
        assert_eq!(s.oidc_audience, "switchboard");
        assert_eq!(s.oidc_jwks_file, Some(PathBuf::from("/etc/switchboard/jwks.json")));
        assert_eq!((s.oidc_team_claim.as_str(), s.oidc_leeway_s), ("team", 5));
        s.apply_env(|k| (k == "SWITCHBOARD_OIDC_ISSUER").then(String::new))
            .unwrap();
        assert_eq!(s.oidc_issuer, None, "an empty value turns it off again");
        let err = s
            .apply_env(|k| (k == "SWITCHBOARD_OIDC_JWKS_REFRESH_S").then(|| "soon".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("SWITCHBOARD_OIDC_JWKS_REFRESH_S"), "{err}");
    }

    #[test]
    fn bad_number_names_the_variable() {
        let mut s = Settings::default();
        let err = s
            .apply_env(|k| (k == "SWITCHBOARD_PREFETCH").then(|| "lots".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("SWITCHBOARD_PREFETCH"), "{err}");
    }

    #[test]
    fn file_with_unknown_key_is_refused() {
        let err = toml::from_str::<Settings>("amqp_url = 'x'\nbogus = 1\n").unwrap_err();
        assert!(err.to_string().contains("bogus"));
    }
}
