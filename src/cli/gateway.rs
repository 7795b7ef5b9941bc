//! `switchboard gateway`, `switchboard keys …` and `switchboard users …`: the HTTP gateway, its
//! API keys and the people who sign in to it.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use switchboard::app::{App, shutdown_on_signals};
use switchboard::config::Settings;
use switchboard::core::access::Role;
use switchboard::http::{self as gateway, auth};

use super::exit::not_found;
use super::output::{FormatArg, Listing};

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on (default: the `gateway_listen` setting, 0.0.0.0:8080).
    #[arg(long)]
    listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key. The key is printed once and only its hash is stored: keep it.
    ///
    /// Roles (docs/SECURITY.md): `integration` (default) submits requests for its channel and
    /// reads their status; `agent` (with --agent) reads the team's tickets and works its own;
    /// `supervisor` acts on every ticket, or on one team's with --team; `admin` may do everything.
    Create {
        /// Who uses the key (e.g. "mail-relay", "ivr-platform", a supervisor's name).
        #[arg(long)]
        name: String,
        /// integration, agent, supervisor or admin.
        #[arg(long, default_value = "integration")]
        role: String,
        /// Restrict an integration key to one channel (phone, chat, email, app, …); default:
        /// every channel.
        #[arg(long)]
        channel: Option<String>,
        /// The agent (roster id) an agent key acts as.
        #[arg(long)]
        agent: Option<String>,
        /// The team a supervisor key covers; default: every team.
        #[arg(long)]
        team: Option<String>,
        /// Requests per second for this key (default: the gateway_rate_per_sec setting).
        #[arg(long)]
        rate: Option<u32>,
        /// Burst size for this key (default: the gateway_rate_burst setting).
        #[arg(long)]
        burst: Option<u32>,
        /// Where this integration takes messages for its customers (replies, acknowledgements,
        /// surveys on chat, app or SMS): Switchboard POSTs them here, signed (Standard
        /// Webhooks) with a secret printed once.
        #[arg(long)]
        callback_url: Option<String>,
    },
    /// Set (or with no --url, remove) an integration key's callback URL; prints a new signing
    /// secret.
    SetCallback {
        id: String,
        #[arg(long)]
        url: Option<String>,
    },
    /// List keys (never their secrets), revoked ones included.
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Revoke a key by id; gateways stop accepting it within gateway_key_cache_ms.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user. Their personal token (`sbu_…`) is printed once and only its hash is
    /// stored: hand it to the person, who signs in to the desk (/desk) or the API with it.
    ///
    /// Roles: `agent` (with --agent: the roster agent this person is) works their own tickets
    /// and claims from their team's queue; `supervisor` acts on their team's tickets (--team) or
    /// every team's; `admin` may do everything.
    Create {
        /// The person's sign-in name (unique among enabled users; an SSO claim can name it).
        #[arg(long)]
        name: String,
        /// agent, supervisor or admin.
        #[arg(long)]
        role: String,
        /// The roster agent (`switchboard agents list`) an agent user is.
        #[arg(long)]
        agent: Option<String>,
        /// The team a supervisor covers; default: every team.
        #[arg(long)]
        team: Option<String>,
        /// The person's email (unique among enabled users; an SSO claim can name it).
        #[arg(long)]
        email: Option<String>,
        /// Create no token: the person signs in only through the identity provider (SSO).
        #[arg(long)]
        sso_only: bool,
        /// The person's `sub` at the identity provider. Without it the user is bound to the
        /// subject of their first SSO sign-in (by name, or verified email).
        #[arg(long)]
        sso_subject: Option<String>,
    },
    /// List users (never their tokens), disabled ones included.
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Disable a user by id or name: their token and SSO sign-ins stop working within
    /// gateway_key_cache_ms.
    Disable { user: String },
}

pub async fn users(settings: Settings, command: UsersCommand) -> Result<()> {
    let app = App::start(settings).await?;
    match command {
        UsersCommand::Create {
            name,
            role,
            agent,
            team,
            email,
            sso_only,
            sso_subject,
        } => {
            let name = name.trim();
            if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
                bail!("--name must be 1 to 100 printable characters");
            }
            let role = match Role::parse(&role) {
                Some(Role::Integration) => bail!("integrations get API keys: `switchboard keys create`"),
                Some(r) => r,
                None => bail!("unknown role {role:?}; use agent, supervisor or admin"),
            };
            match (role, &agent) {
                (Role::Agent, None) => bail!("an agent user needs --agent <roster id> (see `switchboard agents list`)"),
                (Role::Agent, Some(a)) => {
                    let mut client = app.db.pool.get().await?;
                    let tx = client.transaction().await?;
                    if !switchboard::store::agents::agent_exists(&tx, a).await? {
                        bail!("no agent {a:?} in the roster (see `switchboard agents import`)");
                    }
                }
                (_, Some(_)) => bail!("--agent is for agent users"),
                _ => {}
            }
            if let Some(t) = &team {
                if role != Role::Supervisor {
                    bail!("--team is for supervisors");
                }
                if !app.policy.doc.teams.contains_key(t) {
                    let teams: Vec<&str> = app.policy.doc.teams.keys().map(String::as_str).collect();
                    bail!("unknown team {t:?}; the policy knows: {}", teams.join(", "));
                }
            }
            if let Some(e) = &email
                && !(e.contains('@') && e.len() <= 254)
            {
                bail!("--email {e:?} is not an email address");
            }
            let spec = auth::UserSpec {
                name,
                role,
                agent: agent.as_deref(),
                team: team.as_deref(),
                email: email.as_deref(),
                token: !sso_only,
                sso_subject: sso_subject.as_deref(),
            };
            let (user, token) = auth::create_user(&app.db, &spec).await?;
            let scope = match (role, &user.agent, &user.team) {
                (Role::Agent, Some(a), _) => format!("agent {a}"),
                (Role::Supervisor, _, Some(t)) => format!("team {t}"),
                (Role::Supervisor, _, None) => "every team".to_owned(),
                _ => "everything".to_owned(),
            };
            println!("created {} user {} ({}) for {scope}", role.as_str(), user.id, user.name);
            match token {
                Some(token) => {
                    println!("\n  {token}\n");
                    println!("This is the only time the token is shown: only its SHA-256 is stored.");
                    println!("Sign in at <gateway>/desk with it, or send `Authorization: Bearer <token>` to the API.");
                }
                None => println!("No token: this user signs in through the identity provider (SSO) only."),
            }
        }
        UsersCommand::List { format } => {
            let mut out = Listing::new()
                .col("id", "id")
                .col("name", "name")
                .col("role", "role")
                .col("scope", "scope")
                .col("email", "email")
                .shown("has_token", "token", false, |r| {
                    let has = r.get("has_token").and_then(serde_json::Value::as_bool) == Some(true);
                    if has { "yes" } else { "no" }.to_owned()
                })
                .time("created_at", "created")
                .time("disabled_at", "disabled")
                .extra("agent")
                .extra("team");
            for u in switchboard::store::users::list(&app.db).await? {
                out.row(serde_json::json!({
                    "id": u.id,
                    "name": u.name,
                    "role": u.role.as_str(),
                    "scope": u.agent.as_deref().or(u.team.as_deref()).unwrap_or("any"),
                    "agent": u.agent,
                    "team": u.team,
                    "email": u.email,
                    "has_token": u.has_token,
                    "created_at": u.created_at,
                    "disabled_at": u.disabled_at,
                }));
            }
            out.print(format.get())?;
        }
        UsersCommand::Disable { user } => match switchboard::store::users::disable(&app.db, &user).await? {
            Some(id) => println!("disabled user {id}; their token stops working within the gateway's key cache time"),
            None => {
                return Err(not_found(format!(
                    "no enabled user with id or name {user:?} (see `switchboard users list`)"
                )));
            }
        },
    }
    Ok(())
}

pub async fn serve(settings: Settings, args: GatewayArgs) -> Result<()> {
    let listen = args.listen.unwrap_or_else(|| settings.gateway_listen.clone());
    if let Err(e) = switchboard::runtime::telemetry::install_metrics(settings.metrics_addr.as_deref()) {
        tracing::warn!(error = %e, "metrics endpoint disabled");
    }
    let shutdown = shutdown_on_signals();
    // No stage here: the policy without the learned model (`app::policy_for`).
    let Some(app) = App::start_when_ready(settings, Some(&[]), &shutdown).await? else {
        return Ok(());
    };
    gateway::run(&app, &listen, shutdown).await?;
    Ok(())
}

fn check_callback(url: &str) -> Result<()> {
    switchboard::core::notify::check_url(url).map_err(|m| anyhow::anyhow!("--callback-{m}"))
}

pub async fn keys(settings: Settings, command: KeysCommand) -> Result<()> {
    let app = App::start(settings).await?;
    match command {
        KeysCommand::Create {
            name,
            role,
            channel,
            agent,
            team,
            rate,
            burst,
            callback_url,
        } => {
            if name.trim().is_empty() {
                bail!("--name must not be empty");
            }
            let Some(role) = Role::parse(&role) else {
                bail!("unknown role {role:?}; use integration, agent, supervisor or admin");
            };
            if channel.is_some() && role != Role::Integration {
                bail!("--channel is for integration keys");
            }
            match (role, &agent) {
                (Role::Agent, None) => bail!("an agent key needs --agent <roster id>"),
                (Role::Agent, Some(a)) => {
                    let mut client = app.db.pool.get().await?;
                    let tx = client.transaction().await?;
                    if !switchboard::store::agents::agent_exists(&tx, a).await? {
                        bail!("no agent {a:?} in the roster (see `switchboard agents import`)");
                    }
                }
                (_, Some(_)) => bail!("--agent is for agent keys"),
                _ => {}
            }
            if team.is_some() && role != Role::Supervisor {
                bail!("--team is for supervisor keys");
            }
            if let Some(c) = &channel
                && !app.policy.doc.channels.contains(c)
            {
                bail!(
                    "unknown channel {c:?}; the policy knows: {}",
                    app.policy.doc.channels.join(", ")
                );
            }
            if rate == Some(0) || burst == Some(0) {
                bail!("--rate and --burst must be at least 1");
            }
            if let Some(u) = &callback_url {
                if role != Role::Integration {
                    bail!("--callback-url is for integration keys");
                }
                check_callback(u)?;
            }
            let spec = auth::KeySpec {
                name: name.trim(),
                role,
                channel: channel.as_deref(),
                agent: agent.as_deref(),
                team: team.as_deref(),
                rate_per_sec: rate,
                burst,
            };
            let (key, secret) = auth::create(&app.db, &spec).await?;
            let scope = match role {
                Role::Integration => key.channel.as_deref().unwrap_or("every channel").to_owned(),
                Role::Agent => format!("agent {}", key.agent.as_deref().unwrap_or_default()),
                Role::Supervisor => match &key.team {
                    Some(t) => format!("team {t}"),
                    None => "every team".to_owned(),
                },
                Role::Admin => "everything".to_owned(),
            };
            println!("created {} key {} ({}) for {scope}", role.as_str(), key.id, key.name);
            println!("\n  {secret}\n");
            println!("This is the only time the key is shown: only its SHA-256 is stored.");
            println!("Send it as `Authorization: Bearer <key>` (or `X-Api-Key: <key>`).");
            if let Some(u) = &callback_url {
                let secret = switchboard::outbound::signing::new_secret();
                switchboard::store::outbound::set_callback(&app.db, &key.id, Some(u), Some(&secret)).await?;
                println!("\nCallbacks go to {u}, signed (Standard Webhooks) with:\n\n  {secret}\n");
            }
        }
        KeysCommand::SetCallback { id, url } => match &url {
            Some(u) => {
                check_callback(u)?;
                let secret = switchboard::outbound::signing::new_secret();
                if !switchboard::store::outbound::set_callback(&app.db, &id, Some(u), Some(&secret)).await? {
                    return Err(not_found(format!("no key {id:?} (see `switchboard keys list`)")));
                }
                println!("callbacks of {id} go to {u}, signed (Standard Webhooks) with:\n\n  {secret}\n");
            }
            None => {
                if !switchboard::store::outbound::set_callback(&app.db, &id, None, None).await? {
                    return Err(not_found(format!("no key {id:?} (see `switchboard keys list`)")));
                }
                println!("{id} has no callback URL now: its customers are reached by email if they gave one");
            }
        },
        KeysCommand::List { format } => {
            let mut out = Listing::new()
                .col("id", "id")
                .col("name", "name")
                .col("role", "role")
                .col("scope", "scope")
                .shown("rate_per_sec", "rate/s", true, |r| default_or(r, "rate_per_sec"))
                .shown("burst", "burst", true, |r| default_or(r, "burst"))
                .time("created_at", "created")
                .time("revoked_at", "revoked")
                .extra("channel")
                .extra("agent")
                .extra("team");
            for k in auth::list_keys(&app.db).await? {
                let scope = k
                    .channel
                    .as_deref()
                    .or(k.agent.as_deref())
                    .or(k.team.as_deref())
                    .unwrap_or("any");
                out.row(serde_json::json!({
                    "id": k.id,
                    "name": k.name,
                    "role": k.role.as_str(),
                    "scope": scope,
                    "channel": k.channel,
                    "agent": k.agent,
                    "team": k.team,
                    "rate_per_sec": k.rate_per_sec,
                    "burst": k.burst,
                    "created_at": k.created_at,
                    "revoked_at": k.revoked_at,
                }));
            }
            out.print(format.get())?;
        }
        KeysCommand::Revoke { id } => {
            if auth::revoke_key(&app.db, &id).await? {
                println!(
                    "revoked {id}; gateways refuse it within {} ms",
                    app.settings.gateway_key_cache_ms
                );
            } else {
                return Err(not_found(format!("no active key {id:?} (see `switchboard keys list`)")));
            }
        }
    }
    Ok(())
}

/// A per-key limit, or `default` when the key uses the gateway's setting.
fn default_or(row: &serde_json::Map<String, serde_json::Value>, key: &str) -> String {
    match row.get(key) {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => "default".into(),
    }
}
