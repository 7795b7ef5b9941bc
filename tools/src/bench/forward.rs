//! The ceiling's stages: they take the same queues as the real pipeline, run in the same runner
//! (batching, one transaction per batch, confirms, one multiple-ack), and do nothing else but
//! forward each message to the next queue (the last hop publishes a `ticket.assigned` event) — optionally writing one row per message, so the
//! second ceiling pays for exactly one Postgres transaction per hop and no business logic.

use deadpool_postgres::Transaction;
use switchboard::contracts::{Exchange, Outgoing};
use switchboard::runtime::runner::{Inbound, Outcome, Stage};
use switchboard::store::StoreError;

/// The four hops of intake → assigned, each with the queue it forwards to.
pub const HOPS: [(&str, Option<&str>); 4] = [
    ("intake", Some("classify")),
    ("classify", Some("prioritize")),
    ("prioritize", Some("assign")),
    ("assign", None),
];

/// Table the writing ceiling inserts into: one row per message per hop.
pub const HOPS_TABLE: &str = "bench_hops";

pub struct Forward {
    pub name: &'static str,
    pub next: Option<&'static str>,
    /// Write one row per message (the broker + database ceiling) or nothing (broker only).
    pub write: bool,
}

impl Forward {
    /// The forwarding stage standing in for `stage`, or `None` if it is not one of the four hops.
    pub fn for_stage(stage: &str, write: bool) -> Option<Forward> {
        HOPS.iter().find(|(n, _)| *n == stage).map(|(name, next)| Forward {
            name,
            next: *next,
            write,
        })
    }
}

impl Stage for Forward {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn process(&self, tx: &Transaction<'_>, batch: &[Inbound]) -> Result<Vec<Outcome>, StoreError> {
        let ids: Vec<String> = batch.iter().map(|m| m.message_id().unwrap_or("-").to_owned()).collect();
        if self.write {
            // `at` is when this hop handled the message: the last hop's rows are the finish line.
            tx.execute(
                "INSERT INTO bench_hops (message_id, hop, at) SELECT m, $2, now() FROM unnest($1::text[]) m",
                &[&ids, &self.name],
            )
            .await?;
        }
        Ok(ids
            .iter()
            .map(|id| match self.next {
                Some(next) => Outcome::Done(vec![Outgoing {
                    exchange: Exchange::Work,
                    routing_key: next.into(),
                    message_id: format!("{id}:{next}"),
                    body: serde_json::json!({ "m": id }).into(),
                    headers: vec![],
                }]),
                // The finish line: an event like the real assign stage's, which the benchmark
                // counts the same way in every pass.
                None => Outcome::Done(vec![Outgoing {
                    exchange: Exchange::Events,
                    routing_key: "ticket.assigned".into(),
                    message_id: format!("{id}:done"),
                    body: serde_json::json!({ "m": id }).into(),
                    headers: vec![],
                }]),
            })
            .collect())
    }
}
