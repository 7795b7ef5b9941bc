//! `switchboard dead …`: look into the dead-letter queue, replay what was fixed, purge the rest.
//! The browsing rules (nothing lost, nothing reordered) are in `switchboard::bus::dead_queue`.

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use serde_json::json;
use std::io::{IsTerminal, Write};
use switchboard::bus::dead_queue::{Browser, DeadLetter, purge};
use switchboard::bus::{self, Topology};
use switchboard::config::Settings;

use super::exit::not_found;
use super::output::{Format, FormatArg, Listing, progress};

#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// List dead letters, head of the queue first: id, when and in which stage it failed, where
    /// it was going, its size and why it is dead.
    List {
        /// Show at most this many (from the head of the queue).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Show one dead letter: why it is dead, every header, and its body (as text when it is
    /// UTF-8, else with bytes escaped).
    Show {
        /// The id from `switchboard dead list`.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Republish dead letters to their original exchange and routing key (waiting for the
    /// broker's confirm), then remove them from the dead-letter queue. One that cannot be
    /// republished stays where it is.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["id", "all"]))]
    Replay {
        /// The id from `switchboard dead list`.
        id: Option<String>,
        /// Every dead letter in the queue.
        #[arg(long)]
        all: bool,
    },
    /// Delete every dead letter. Asks first unless --yes.
    Purge {
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

/// What went wrong when a browse could not put the queue back as it was.
const RESTORE_FAILED: &str = "putting the browsed dead letters back in the queue failed; none is lost (the broker returns any not yet put back), but the queue's order may have changed";

pub async fn run(settings: Settings, command: DeadCommand) -> Result<()> {
    let topo = Topology::from_settings(&settings);
    let conn = bus::connect(&settings.amqp_urls(), "switchboard-dead").await?;
    let ch = bus::confirm_channel(&conn).await?;
    // A fresh install has no dead-letter queue yet; declaring is idempotent.
    topo.declare(&conn).await?;
    let result = match command {
        DeadCommand::List { limit, format } => list(&conn, &topo, limit, format.get()).await,
        DeadCommand::Show { id, json } => show(&conn, &topo, &id, json).await,
        DeadCommand::Replay { id, all } => replay(&conn, &topo, id.as_deref(), all).await,
        DeadCommand::Purge { yes } => purge_cmd(&ch, &topo, yes).await,
    };
    let _ = conn.close(200, "done".into()).await;
    result
}

fn origin(d: &DeadLetter) -> String {
    format!(
        "{} / {}",
        d.original_exchange.as_deref().unwrap_or("?"),
        d.original_routing_key.as_deref().unwrap_or("?")
    )
}

fn summary_json(d: &DeadLetter) -> serde_json::Value {
    json!({
        "id": d.id,
        "position": d.position,
        "reason": d.reason,
        "stage": d.stage,
        "original_exchange": d.original_exchange,
        "original_routing_key": d.original_routing_key,
        "failed_at": d.failed_at,
        "message_id": d.message_id,
        "size": d.size(),
    })
}

async fn list(conn: &lapin::Connection, topo: &Topology, limit: Option<usize>, format: Format) -> Result<()> {
    let mut browser = Browser::open(conn, topo).await?;
    let restored = browser.restore(&[]).await;
    let total = browser.held.len();
    let mut held = browser.held.clone();
    let finished = browser.finish().await;
    restored.and(finished).context(RESTORE_FAILED)?;
    held.truncate(limit.unwrap_or(usize::MAX));
    if format == Format::Table && held.is_empty() {
        println!("no dead letters in {}", topo.dead_queue());
        return Ok(());
    }
    let mut out = Listing::new()
        .col("id", "id")
        .time("failed_at", "failed at (UTC)")
        .col("stage", "stage")
        .shown("original_exchange", "original exchange / routing key", false, |r| {
            let part = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_owned();
            super::output::fit(
                &format!("{} / {}", part("original_exchange"), part("original_routing_key")),
                60,
            )
        })
        // The routing key shares the origin column in a table; a CSV has it on its own.
        .extra("original_routing_key")
        .num("size", "bytes")
        .cut("reason", "reason", 100)
        .extra("position")
        .extra("message_id");
    for d in &held {
        out.row(summary_json(d));
    }
    out.print(format)?;
    if format == Format::Table {
        println!(
            "\n{} of {} dead letters in {} (head of the queue first; `switchboard dead show ID` for the details)",
            held.len(),
            total,
            topo.dead_queue()
        );
    }
    Ok(())
}

async fn show(conn: &lapin::Connection, topo: &Topology, id: &str, as_json: bool) -> Result<()> {
    let mut browser = Browser::open(conn, topo).await?;
    let restored = browser.restore(&[]).await;
    let found: Vec<DeadLetter> = browser.find(id).into_iter().map(|i| browser.held[i].clone()).collect();
    let finished = browser.finish().await;
    restored.and(finished).context(RESTORE_FAILED)?;
    let Some(d) = found.first() else {
        return Err(not_found(format!(
            "no dead letter with id {id:?} in {}; `switchboard dead list` shows the ids",
            topo.dead_queue()
        )));
    };
    if as_json {
        let mut v = summary_json(d);
        v["headers"] = json!(d.headers().into_iter().collect::<std::collections::BTreeMap<_, _>>());
        v["content_type"] = json!(d.properties.content_type().as_ref().map(|c| c.to_string()));
        v["body_encoding"] = json!(if d.body_is_utf8() { "utf-8" } else { "escaped" });
        v["body"] = json!(d.body_text());
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("id:             {}", d.id);
    println!("reason:         {}", d.reason);
    println!("stage:          {}", d.stage.as_deref().unwrap_or("-"));
    println!("original:       {}", origin(d));
    println!("failed at:      {}", d.failed_at.as_deref().unwrap_or("-"));
    println!("message id:     {}", d.message_id.as_deref().unwrap_or("-"));
    println!(
        "content type:   {}",
        d.properties
            .content_type()
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into())
    );
    println!("position:       {} (1 = head of the queue)", d.position);
    println!("size:           {} bytes", d.size());
    println!("headers:");
    for (k, v) in d.headers() {
        println!("  {k}: {v}");
    }
    if d.body_is_utf8() {
        println!("body (UTF-8):");
    } else {
        println!("body (not UTF-8; bytes escaped as \\xNN):");
    }
    println!("{}", d.body_text());
    if found.len() > 1 {
        println!("\n({} dead letters share this id; this is the first)", found.len());
    }
    Ok(())
}

async fn replay(conn: &lapin::Connection, topo: &Topology, id: Option<&str>, all: bool) -> Result<()> {
    let mut browser = Browser::open(conn, topo).await?;
    let targets: Vec<usize> = match (id, all) {
        (_, true) => (0..browser.held.len()).collect(),
        (Some(id), false) => browser.find(id),
        (None, false) => Vec::new(),
    };
    // The others go back first, so that a replayed message that fails again lands behind them.
    if let Err(e) = browser.restore(&targets).await {
        let _ = browser.finish().await;
        return Err(e).context(RESTORE_FAILED);
    }
    if let (Some(id), true) = (id, targets.is_empty()) {
        browser.finish().await.context(RESTORE_FAILED)?;
        return Err(not_found(format!(
            "no dead letter with id {id:?} in {}; `switchboard dead list` shows the ids",
            topo.dead_queue()
        )));
    }
    let mut publish = bus::confirm_channel(conn).await?;
    let mut replayed = 0;
    let mut failures = Vec::new();
    // A bar for `--all` (one letter needs none); hidden unless standard error is a terminal.
    let bar = if all {
        progress(targets.len() as u64, "dead letters replayed")
    } else {
        indicatif::ProgressBar::hidden()
    };
    for i in targets {
        bar.inc(1);
        let (did, to) = (browser.held[i].id.clone(), origin(&browser.held[i]));
        match browser.replay(i, &publish).await {
            Ok(()) => {
                replayed += 1;
                bar.suspend(|| println!("replayed {did} to {to}"));
            }
            Err(e) => {
                bar.suspend(|| eprintln!("not replayed: {e}"));
                failures.push(did);
                // Publishing to a missing exchange closes the channel; the next one needs a new one.
                if !publish.status().connected() {
                    publish = bus::confirm_channel(conn).await?;
                }
            }
        }
    }
    bar.finish_and_clear();
    // What could not be replayed goes back to the dead-letter queue (at its tail).
    let restored = browser.restore(&[]).await;
    let finished = browser.finish().await;
    restored.and(finished).context(RESTORE_FAILED)?;
    println!("{replayed} replayed, {} left in {}", failures.len(), topo.dead_queue());
    if !failures.is_empty() {
        bail!(
            "{} dead letters could not be replayed and are still in the queue: {}",
            failures.len(),
            failures.join(", ")
        );
    }
    Ok(())
}

async fn purge_cmd(ch: &lapin::Channel, topo: &Topology, yes: bool) -> Result<()> {
    let queue = topo.dead_queue();
    let n = topo.depth(ch, &queue).await?;
    if n == 0 {
        println!("no dead letters in {queue}");
        return Ok(());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to delete {n} dead letters from {queue} without --yes (no terminal to ask on)");
        }
        print!("Delete {n} dead letters from {queue}? This cannot be undone. [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing deleted");
            return Ok(());
        }
    }
    let purged = purge(ch, topo).await?;
    println!("purged {purged} dead letters from {queue}");
    Ok(())
}
