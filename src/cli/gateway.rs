//! `switchboard gateway` and `switchboard keys …`: the HTTP intake gateway and its API keys.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use switchboard::app::{App, shutdown_on_signals};
use switchboard::config::Settings;
use switchboard::core::access::Role;
use switchboard::http::{self as gateway, auth};

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
    },
    /// List keys (never their secrets), revoked ones included.
    List,
    /// Revoke a key by id; gateways stop accepting it within gateway_key_cache_ms.
    Revoke { id: String },
}

pub async fn serve(settings: Settings, args: GatewayArgs) -> Result<()> {
    let listen = args.listen.unwrap_or_else(|| settings.gateway_listen.clone());
    let app = App::start(settings).await?;
    if let Err(e) = switchboard::runtime::telemetry::install_metrics(app.settings.metrics_addr.as_deref()) {
        tracing::warn!(error = %e, "metrics endpoint disabled");
    }
    gateway::run(&app, &listen, shutdown_on_signals()).await?;
    Ok(())
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
        }
        KeysCommand::List => {
            let keys = auth::list_keys(&app.db).await?;
            println!(
                "{:<16} {:<24} {:<11} {:<18} {:>8} {:>8}  {:<20} revoked",
                "id", "name", "role", "scope", "rate/s", "burst", "created"
            );
            for k in keys {
                let num = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_else(|| "default".into());
                let scope = k
                    .channel
                    .as_deref()
                    .or(k.agent.as_deref())
                    .or(k.team.as_deref())
                    .unwrap_or("any");
                println!(
                    "{:<16} {:<24} {:<11} {:<18} {:>8} {:>8}  {:<20} {}",
                    k.id,
                    k.name,
                    k.role.as_str(),
                    scope,
                    num(k.rate_per_sec),
                    num(k.burst),
                    k.created_at.format("%Y-%m-%d %H:%M:%S"),
                    k.revoked_at
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
        KeysCommand::Revoke { id } => {
            if auth::revoke_key(&app.db, &id).await? {
                println!(
                    "revoked {id}; gateways refuse it within {} ms",
                    app.settings.gateway_key_cache_ms
                );
            } else {
                bail!("no active key {id:?} (see `switchboard keys list`)");
            }
        }
    }
    Ok(())
}
