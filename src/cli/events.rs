//! `switchboard events`: read the events log (the stream of every event, `switchboard::bus::events_log`)
//! back: replay a window of it into a queue, or print it as JSON lines. The contract consumers
//! rely on is docs/EVENTS.md.

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use std::io::Write as _;
use std::time::Duration;
use switchboard::app::shutdown_on_signals;
use switchboard::bus::events_log::{self, Replay, ReplayProgress, Start};
use switchboard::bus::{self, Topology};
use switchboard::config::Settings;
use switchboard::contracts::events::topic_matches;

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Republish a time window of the events log to a queue (catching a consumer up).
    ///
    /// Each event goes unchanged (body, message id, content type, type, headers), in the order
    /// they were published, confirmed by the broker; progress on standard error, a summary at the
    /// end. For a consumer that was down longer than its queue could hold, or that was bound
    /// after the events went out.
    #[command(
        after_help = "Examples:\n  switchboard events replay --since 2h --to-queue billing.events\n  \
        switchboard events replay --since 2026-11-23T09:00:00+08:00 --until 2026-11-23T12:00:00+08:00 \
        --type 'ticket.resolved' --to-queue billing.events\n\n\
        Events come to the queue through the default exchange, so their routing key is the \
        queue's name: tell them apart by the CloudEvents `type` (also the AMQP `type`). \
        A consumer that already saw some of them recognises them by `id` (docs/EVENTS.md)."
    )]
    Replay(ReplayArgs),
    /// Print events from the events log as JSON lines (one CloudEvent per line).
    ///
    /// Those published from now on, or from --since; until Ctrl-C, --limit or --idle.
    Tail(TailArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// From when: an RFC 3339 time (2026-11-23T09:00:00+08:00), or how long ago: 90s, 30m, 2h,
    /// 1d, 1w, 1h30m, "2h ago". Events older than the log's retention are gone.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    since: DateTime<Utc>,
    /// Up to when (the same forms, included to the second). Without it the replay runs to the
    /// log's tail: it stops at the first event published after it started, or when no event
    /// comes within --idle.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    until: Option<DateTime<Utc>>,
    /// Only events whose routing key matches this topic pattern, as a binding would:
    /// `ticket.resolved`, `ticket.*` (one word), `sla.#` (any number of words). Default: all.
    #[arg(long = "type", value_name = "PATTERN")]
    pattern: Option<String>,
    /// The queue to republish to, by name through the default exchange. It must exist (declare
    /// it first); the replay does not create it.
    #[arg(long, value_name = "QUEUE")]
    to_queue: String,
    /// Report progress on standard error every N events replayed (0: never).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    progress_every: u64,
    /// The log's tail: stop when no event comes within this long (500ms, 3s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    idle: Duration,
}

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Only events whose routing key matches this topic pattern (`ticket.resolved`, `ticket.*`,
    /// `sla.#`). Default: all.
    #[arg(long = "type", value_name = "PATTERN")]
    pattern: Option<String>,
    /// Start with the events published at this time (RFC 3339, or how long ago: 30m, 2h, 1d)
    /// instead of with the next one published.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    since: Option<DateTime<Utc>>,
    /// Stop after printing this many events.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Stop when no event comes within this long (3s, 1m). Default: wait for more until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    idle: Option<Duration>,
}

pub async fn run(settings: Settings, command: EventsCommand) -> Result<()> {
    let topo = Topology::from_settings(&settings);
    let conn = bus::connect(&settings.amqp_urls(), "switchboard-events").await?;
    let result = match command {
        EventsCommand::Replay(args) => replay(&conn, &topo, args).await,
        EventsCommand::Tail(args) => tail(&conn, &topo, args).await,
    };
    let _ = conn.close(200, "done".into()).await;
    result
}

async fn replay(conn: &lapin::Connection, topo: &Topology, args: ReplayArgs) -> Result<()> {
    if args.to_queue == topo.events_log() {
        bail!(
            "--to-queue {} is the events log itself: replay into a queue of your own",
            args.to_queue
        );
    }
    if let Some(until) = args.until
        && until < args.since
    {
        bail!(
            "--until ({}) is before --since ({})",
            rfc3339(until),
            rfc3339(args.since)
        );
    }
    let started = Utc::now();
    let what = args.pattern.clone().unwrap_or_else(|| "all events".into());
    let r = Replay {
        since: args.since,
        until: args.until,
        pattern: args.pattern,
        to_queue: args.to_queue,
        idle: args.idle,
    };
    let done = events_log::replay(conn, topo, &r, args.progress_every, |p: &ReplayProgress| {
        eprintln!(
            "… {} events replayed ({} read), up to {}",
            p.replayed,
            p.read,
            p.last.map(rfc3339).unwrap_or_else(|| "-".into())
        );
    })
    .await?;
    let end = r.until.unwrap_or(started);
    println!(
        "replayed {} events ({what} from {} to {}) into {} (read {} from {})",
        done.replayed,
        rfc3339(r.since),
        rfc3339(end),
        r.to_queue,
        done.read,
        topo.events_log()
    );
    Ok(())
}

async fn tail(conn: &lapin::Connection, topo: &Topology, args: TailArgs) -> Result<()> {
    let start = args.since.map(Start::At).unwrap_or(Start::Next);
    let since = args.since.map(|t| t.timestamp());
    let mut reader = events_log::Reader::open(conn, topo, start).await?;
    let shutdown = shutdown_on_signals();
    // "Until Ctrl-C" is a long wait, asked again and again.
    let wait = args.idle.unwrap_or(Duration::from_secs(3600));
    let mut printed = 0u64;
    let mut out = std::io::stdout();
    let result = loop {
        if args.limit.is_some_and(|n| printed >= n) {
            break Ok(());
        }
        let next = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            next = reader.next(wait) => next,
        };
        let event = match next {
            Ok(Some(e)) => e,
            Ok(None) if args.idle.is_some() => break Ok(()),
            Ok(None) => continue,
            Err(e) => break Err(e.into()),
        };
        // A time offset starts at the chunk holding it: skip what came before.
        if since.is_some_and(|s| event.published_at.is_some_and(|t| t.timestamp() < s)) {
            continue;
        }
        if let Some(p) = &args.pattern
            && !topic_matches(p, &event.routing_key)
        {
            continue;
        }
        let line = match serde_json::from_slice::<serde_json::Value>(&event.data) {
            Ok(v) => v.to_string(),
            Err(_) => serde_json::json!({
                "offset": event.offset,
                "routing_key": event.routing_key,
                "body": String::from_utf8_lossy(&event.data),
            })
            .to_string(),
        };
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            // A closed pipe (`| head`) ends the tail quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break Ok(());
            }
            break Err(e.into());
        }
        printed += 1;
    };
    reader.close().await;
    result
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `2026-11-23T09:00:00+08:00`, or how long ago (`2h`, `30m`, `1d`, `1h30m`, `2h ago`).
fn parse_when(text: &str) -> Result<DateTime<Utc>, String> {
    when_at(text, Utc::now())
}

fn when_at(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let ago = text.strip_suffix("ago").map(str::trim_end).unwrap_or(text);
    match parse_duration(ago) {
        Ok(d) => chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .ok_or_else(|| format!("{text:?} is too long ago")),
        Err(_) => Err(format!(
            "{text:?} is neither an RFC 3339 time (2026-11-23T09:00:00+08:00) nor how long ago (2h, 30m, 1d, \"2h ago\")"
        )),
    }
}

/// `500ms`, `90s`, `30m`, `2h`, `1d`, `1w`, or several: `1h30m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration: a number and a unit, ms, s, m, h, d or w (500ms, 3s, 2h, 1h30m)");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let n: u64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let seconds = match unit {
            "ms" => {
                total += Duration::from_millis(n);
                rest = tail.trim_start();
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(bad()),
        };
        total += Duration::from_secs(n.checked_mul(seconds).ok_or_else(bad)?);
        rest = tail.trim_start();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_a_unit() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["", "3", "h", "3 hours", "1.5h", "-1h", "3x"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn since_is_a_time_or_how_long_ago() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| when_at(s, now).map(rfc3339);
        assert_eq!(at("2h").as_deref(), Ok("2026-11-23T10:00:00Z"));
        assert_eq!(at("2h ago").as_deref(), Ok("2026-11-23T10:00:00Z"));
        assert_eq!(at("30m").as_deref(), Ok("2026-11-23T11:30:00Z"));
        assert_eq!(at("1d").as_deref(), Ok("2026-11-22T12:00:00Z"));
        assert_eq!(at("2026-11-23T09:00:00+08:00").as_deref(), Ok("2026-11-23T01:00:00Z"));
        let e = at("yesterday").unwrap_err();
        assert!(e.contains("RFC 3339") && e.contains("2h"), "{e}");
    }
}
