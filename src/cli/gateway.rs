//! `switchboard gateway` and `switchboard keys …`: the HTTP intake gateway and its API keys.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use switchboard::app::{App, shutdown_on_signals};
use switchboard::config::Settings;
use switchboard::http::{self as gateway, auth};

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on (default: the `gateway_listen` setting, 0.0.0.0:8080).
    #[arg(long)]
    listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a channel integration. The key is printed once and only its hash is
    /// stored: keep it.
    Create {
        /// Who uses the key (e.g. "mail-relay", "ivr-platform").
        #[arg(long)]
        name: String,
        /// Restrict the key to one channel (phone, chat, email, app, …); default: every channel.
        #[arg(long)]
        channel: Option<String>,
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
            channel,
            rate,
            burst,
        } => {
            if name.trim().is_empty() {
                bail!("--name must not be empty");
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
            let (key, secret) = auth::create_key(&app.db, name.trim(), channel.as_deref(), rate, burst).await?;
            println!(
                "created API key {} ({}) for {}",
                key.id,
                key.name,
                key.channel.as_deref().unwrap_or("every channel")
            );
            println!("\n  {secret}\n");
            println!("This is the only time the key is shown: only its SHA-256 is stored.");
            println!("Send it as `Authorization: Bearer <key>` (or `X-Api-Key: <key>`).");
        }
        KeysCommand::List => {
            let keys = auth::list_keys(&app.db).await?;
            println!(
                "{:<16} {:<24} {:<8} {:>8} {:>8}  {:<20} revoked",
                "id", "name", "channel", "rate/s", "burst", "created"
            );
            for k in keys {
                let num = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_else(|| "default".into());
                println!(
                    "{:<16} {:<24} {:<8} {:>8} {:>8}  {:<20} {}",
                    k.id,
                    k.name,
                    k.channel.as_deref().unwrap_or("any"),
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
