//! An example consumer of Switchboard's events (docs/EVENTS.md), with lapin.
//!
//! It declares its own durable quorum queue, binds it to the events exchange with topic
//! patterns, and handles each event once:
//!
//! - duplicates (at-least-once delivery, or a replay from the events log) are recognised by the
//!   CloudEvents `id` and skipped;
//! - per ticket (`subject`) it keeps the last `sequence` handled: a lower one is an older state
//!   that arrived late (after a redelivery) and is skipped; a jump over missing numbers is
//!   reported, since those events were filtered out by the binding or are still on their way;
//! - it acks an event only after handling it, so a crash means a redelivery, never a loss.
//!
//! Here "handling" is printing one line per event. A real consumer keeps `seen` and `last` in
//! its own database, in the same transaction as the effect of the event.
//!
//! ```text
//! cargo run --example event_consumer -- --queue my-app.events --bind 'ticket.#' [--idle 5]
//! switchboard events replay --since 2h --to-queue my-app.events   # catch up from the log
//! ```

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

#[derive(Debug, clap::Parser)]
#[command(about = "An example consumer of Switchboard's events: dedupe by id, order by sequence")]
struct Args {
    /// The broker.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    /// The events exchange.
    #[arg(long, default_value = "switchboard.events")]
    exchange: String,
    /// This consumer's own queue.
    #[arg(long, default_value = "example.events")]
    queue: String,
    /// Topic patterns to bind with (repeatable): ticket.#, ticket.resolved, sla.*.
    #[arg(long = "bind", default_value = "ticket.#")]
    patterns: Vec<String>,
    /// Unacked events held at once.
    #[arg(long, default_value_t = 100)]
    prefetch: u16,
    /// Stop after this many seconds without an event (default: run until Ctrl-C).
    #[arg(long)]
    idle: Option<u64>,
}

/// What became of one event.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Handled { gap: Option<(i64, i64)> },
    Duplicate,
    Stale { last: i64 },
}

/// Dedupe by id (remembering the last `remember` ids), order by each ticket's sequence.
struct Handler {
    seen: HashSet<String>,
    order: VecDeque<String>,
    remember: usize,
    last: HashMap<String, i64>,
}

impl Handler {
    fn new(remember: usize) -> Self {
        Handler {
            seen: HashSet::new(),
            order: VecDeque::new(),
            remember,
            last: HashMap::new(),
        }
    }

    fn judge(&mut self, id: &str, ticket: &str, sequence: Option<i64>) -> Verdict {
        if self.seen.contains(id) {
            return Verdict::Duplicate;
        }
        self.remember_id(id);
        let Some(seq) = sequence else {
            // `ticket.anonymised` has no sequence: it applies whatever came before.
            return Verdict::Handled { gap: None };
        };
        let last = self.last.get(ticket).copied().unwrap_or(0);
        if seq <= last {
            return Verdict::Stale { last };
        }
        self.last.insert(ticket.to_owned(), seq);
        let gap = (last > 0 && seq > last + 1).then_some((last + 1, seq - 1));
        Verdict::Handled { gap }
    }

    fn remember_id(&mut self, id: &str) {
        self.seen.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        if self.order.len() > self.remember
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = <Args as clap::Parser>::parse();
    let conn = Connection::connect(&args.url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    // A quorum queue: replicated on a cluster, and durable, so events wait while we are down.
    let mut queue_args = FieldTable::default();
    queue_args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(args.queue.as_str().into(), durable, queue_args)
        .await?;
    for pattern in &args.patterns {
        ch.queue_bind(
            args.queue.as_str().into(),
            args.exchange.as_str().into(),
            pattern.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    ch.basic_qos(args.prefetch, BasicQosOptions::default()).await?;
    let tag = format!("event-consumer-{}", std::process::id());
    let mut consumer = ch
        .basic_consume(
            args.queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let mut handler = Handler::new(100_000);
    let (mut handled, mut duplicates, mut stale) = (0u64, 0u64, 0u64);
    // Without --idle: a year, asked again and again.
    let idle = Duration::from_secs(args.idle.unwrap_or(365 * 24 * 3600));
    loop {
        let delivery = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            next = tokio::time::timeout(idle, consumer.next()) => match next {
                Err(_) if args.idle.is_some() => break, // --idle passed with nothing new
                Err(_) => continue,
                Ok(None) => break,
                Ok(Some(d)) => d?,
            },
        };
        let event: serde_json::Value = match serde_json::from_slice(&delivery.data) {
            Ok(v) => v,
            Err(e) => {
                // Not an event we understand: set it aside rather than retry it for ever.
                eprintln!("rejected delivery {}: {e}", delivery.delivery_tag);
                delivery.reject(BasicRejectOptions { requeue: false }).await?;
                continue;
            }
        };
        let id = event["id"].as_str().unwrap_or_default();
        let ticket = event["subject"].as_str().unwrap_or_default();
        // The CloudEvents sequence extension: a zero-padded string ("0000000004").
        let sequence = event["sequence"].as_str().and_then(|s| s.parse::<i64>().ok());
        match handler.judge(id, ticket, sequence) {
            Verdict::Duplicate => {
                duplicates += 1;
                println!("duplicate {id} (already handled)");
            }
            Verdict::Stale { last } => {
                stale += 1;
                println!(
                    "stale {id}: sequence {} after {last}, an older state arrived late",
                    sequence.unwrap_or_default()
                );
            }
            Verdict::Handled { gap } => {
                if let Some((from, to)) = gap {
                    println!(
                        "gap before {id}: sequences {from}..{to} not seen (filtered out by the binding, or still on their way)"
                    );
                }
                // The event's effect goes here; this example prints it.
                println!(
                    "event {id} {} ticket {ticket} sequence {}",
                    event["type"].as_str().unwrap_or("?"),
                    sequence.map(|s| s.to_string()).unwrap_or_else(|| "-".into())
                );
                handled += 1;
            }
        }
        // Acked only once handled: a crash before this line means a redelivery, not a loss.
        delivery.ack(BasicAckOptions::default()).await?;
    }
    ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
        .await?;
    println!("handled {handled} events, skipped {duplicates} duplicates and {stale} stale");
    conn.close(200, "bye".into()).await?;
    Ok(())
}
