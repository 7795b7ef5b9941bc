//! `switchboard webhooks …`: downstream systems subscribed to events over HTTP (Standard
//! Webhooks), and their deliveries.

use anyhow::{Result, bail};
use clap::Subcommand;
use switchboard::app::App;
use switchboard::config::Settings;
use switchboard::core::notify::WEBHOOK_GIVE_UP_S;
use switchboard::outbound::signing;
use switchboard::store::outbound as store;

use super::exit::not_found;
use super::output::{Format, FormatArg, Listing};

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Subscribe a URL to events. Prints the endpoint's id and its signing secret (`whsec_…`),
    /// once: the receiver verifies every delivery with it (Standard Webhooks: headers
    /// `webhook-id` (the event id), `webhook-timestamp`, `webhook-signature`). The body is the
    /// CloudEvent. Deliveries are at least once, in each ticket's event order, retried with
    /// backoff for 24 hours.
    Create {
        /// Where to POST (https://…; http:// only for a receiver on a private network).
        #[arg(long)]
        url: String,
        /// Event types, comma separated: `ticket.resolved`, `ticket.*` (every ticket event),
        /// `sla.*`, `*` (everything).
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// What the endpoint is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Print the endpoint as JSON (`{"id", "secret", "url", "events"}`).
        #[arg(long)]
        json: bool,
    },
    /// Every endpoint: its events, whether it is enabled, deliveries pending and failed.
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// An endpoint's latest deliveries (newest first): event, state, attempts, last error.
    Deliveries {
        /// The endpoint's id (`whk_…`).
        id: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Send a failed delivery again now (by its number, from `deliveries` or `dead list`), or
    /// with --endpoint every failed delivery of an endpoint (re-enabling it).
    Retry {
        /// The delivery's number.
        delivery: Option<i64>,
        #[arg(long, conflicts_with = "delivery")]
        endpoint: Option<String>,
    },
    /// Stop delivering to an endpoint; its deliveries wait until it is enabled again.
    Disable {
        id: String,
        #[arg(long, default_value = "disabled by an operator")]
        reason: String,
    },
    /// Deliver to a disabled endpoint again (what waited goes out, in order).
    Enable { id: String },
}

/// Checks a subscription's URL and event patterns; the patterns normalised.
pub fn check_subscription(url: &str, events: &[String]) -> Result<Vec<String>> {
    switchboard::core::notify::check_subscription(url, events).map_err(|m| anyhow::anyhow!("--{m}"))
}

pub async fn run(settings: Settings, command: WebhooksCommand) -> Result<()> {
    let app = App::start(settings).await?;
    match command {
        WebhooksCommand::Create {
            url,
            events,
            description,
            json,
        } => {
            let events = check_subscription(&url, &events)?;
            let id = format!("whk_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
            let secret = signing::new_secret();
            store::create_endpoint(&app.db, &id, &url, &events, &secret, &description).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "id": id, "secret": secret, "url": url, "events": events })
                );
            } else {
                println!("created webhook endpoint {id} → {url} for {}", events.join(", "));
                println!("\n  {secret}\n");
                println!("This is the only time the signing secret is shown: the receiver verifies each");
                println!("delivery's `webhook-signature` with it (any Standard Webhooks library does).");
            }
        }
        WebhooksCommand::List { format } => {
            let format = format.get();
            let all = store::endpoints(&app.db).await?;
            if all.is_empty() && format == Format::Table {
                println!(
                    "no webhook endpoints; create one with `switchboard webhooks create --url URL --events 'ticket.*'`"
                );
                return Ok(());
            }
            let mut out = Listing::new()
                .col("id", "id")
                .col("url", "url")
                .col("events", "events")
                .num("pending", "pending")
                .num("failed", "failed")
                .col("state", "state")
                .extra("description")
                .extra("created_at")
                .extra("disabled_at")
                .extra("disabled_reason")
                .extra("failing_since");
            for e in all {
                let state = match (&e.disabled_at, &e.failing_since) {
                    (Some(at), _) => format!(
                        "disabled {} ({})",
                        at.format("%Y-%m-%d %H:%M"),
                        e.disabled_reason.as_deref().unwrap_or("")
                    ),
                    (None, Some(since)) => format!("failing since {}", since.format("%Y-%m-%d %H:%M")),
                    (None, None) => "enabled".into(),
                };
                out.row(serde_json::json!({
                    "id": e.id,
                    "url": e.url,
                    "events": e.events,
                    "description": e.description,
                    "created_at": e.created_at,
                    "disabled_at": e.disabled_at,
                    "disabled_reason": e.disabled_reason,
                    "failing_since": e.failing_since,
                    "pending": e.pending,
                    "failed": e.failed,
                    "state": state,
                }));
            }
            out.print(format)?;
        }
        WebhooksCommand::Deliveries { id, limit, format } => {
            let rows = store::endpoint_deliveries(&app.db, &id, limit.clamp(1, 1000)).await?;
            let mut out = Listing::new()
                .num("id", "number")
                .col("msg_id", "event")
                .col("purpose", "type")
                .col("state", "state")
                .num("attempts", "attempts")
                .shown("last_error", "last", false, |r| {
                    match (r.get("last_status"), r.get("last_error")) {
                        (_, Some(serde_json::Value::String(e))) => e.clone(),
                        (Some(s), _) if !s.is_null() => format!("HTTP {s}"),
                        _ => String::new(),
                    }
                })
                .extra("last_status")
                .extra("number")
                .extra("next_attempt_at")
                .extra("created_at")
                .extra("delivered_at");
            for d in rows {
                out.row(serde_json::to_value(&d)?);
            }
            out.print(format.get())?;
        }
        WebhooksCommand::Retry { delivery, endpoint } => {
            if delivery.is_none() && endpoint.is_none() {
                bail!("name a delivery number, or --endpoint ID for every failed delivery of an endpoint");
            }
            if let Some(e) = &endpoint
                && !store::set_endpoint_enabled(&app.db, e, true, "").await?
            {
                return Err(not_found(format!(
                    "no webhook endpoint {e:?} (see `switchboard webhooks list`)"
                )));
            }
            let n = store::retry(&app.db, delivery, endpoint.as_deref(), WEBHOOK_GIVE_UP_S).await?;
            if n == 0 && delivery.is_some() {
                return Err(not_found(format!(
                    "no failed or waiting delivery number {} (see `switchboard webhooks deliveries ID`)",
                    delivery.unwrap_or_default()
                )));
            }
            println!("{n} deliveries will be sent again now");
        }
        WebhooksCommand::Disable { id, reason } => {
            if !store::set_endpoint_enabled(&app.db, &id, false, &reason).await? {
                return Err(not_found(format!(
                    "no webhook endpoint {id:?} (see `switchboard webhooks list`)"
                )));
            }
            println!("disabled {id}: deliveries wait until `switchboard webhooks enable {id}`");
        }
        WebhooksCommand::Enable { id } => {
            if !store::set_endpoint_enabled(&app.db, &id, true, "").await? {
                return Err(not_found(format!(
                    "no webhook endpoint {id:?} (see `switchboard webhooks list`)"
                )));
            }
            println!("enabled {id}");
        }
    }
    Ok(())
}
