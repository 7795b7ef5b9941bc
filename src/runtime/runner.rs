//! The stage runner: the one consumer loop every stage shares.
//!
//! Shape (after Vector's AMQP source): `basic_qos` before `basic_consume`; `select!` on
//! shutdown; deliveries gathered into a batch; one Postgres transaction per batch; outgoing
//! messages published with confirms only after the commit; then one multiple-ack. A crash at any
//! point leaves the inputs unacked, and the redelivery finds the processed-message record and
//! re-publishes instead of applying twice.

use crate::bus::links::{Links, Pair};
use crate::bus::{self, BusError, Topology, dead};
use crate::config::Settings;
use crate::contracts::Outgoing;
use crate::runtime::backoff;
use crate::runtime::ops::health::Health;
use crate::runtime::trace;
use crate::store::{Db, StoreError};
use deadpool_postgres::Transaction;
use futures::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

/// One delivery, as a stage sees it.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub tag: u64,
    pub exchange: String,
    pub routing_key: String,
    pub redelivered: bool,
    pub properties: BasicProperties,
    pub data: Vec<u8>,
    /// The trace context of this message's handling (`runtime::trace`): the span the runner
    /// opened for it when exporting, else the message's own `traceparent` header. Everything
    /// published for the message carries it ([`Inbound::stamp`]).
    pub traceparent: Option<String>,
    /// Set when a chain of stages (`stages::chain`) runs this message: the tickets its stages
    /// hand each other in memory.
    pub chained: Option<Chained>,
}

/// How a message takes part in a chain of stages.
#[derive(Debug, Clone)]
pub struct Chained {
    /// The chain's tickets, shared by every message of the batch at every stage.
    pub handoff: Arc<Handoff>,
    /// The chain's first stage took this message from its queue (its processed record holds
    /// what the whole chain published for it); otherwise an earlier stage handed it over.
    pub head: bool,
}

/// Tickets decided in a chain's transaction: each stage after the first takes its tickets
/// from here instead of locking and reading them again, and leaves its decisions here instead of
/// writing them; the chain writes each ticket once, at the end. It also holds the processed
/// records of the chain's first messages until the chain knows everything they published.
#[derive(Debug, Default)]
pub struct Handoff {
    inner: std::sync::Mutex<HandoffState>,
}

#[derive(Debug, Default)]
struct HandoffState {
    /// Ticket id → (the ticket as last decided, the version its row holds).
    tickets: std::collections::HashMap<i64, (crate::core::ticket::Ticket, i32)>,
    /// Decisions of the stage running now, kept apart until it succeeds
    /// ([`Handoff::begin_stage`]); `None` outside a stage.
    staged: Option<std::collections::HashMap<i64, crate::core::ticket::Ticket>>,
    /// (batch index of a first message, its processed-record key).
    records: Vec<(usize, String)>,
    /// Ticket id → what classifying its text found for prioritising it
    /// ([`Handoff::keep_priority_evidence`]).
    priority_evidence: std::collections::HashMap<i64, crate::core::classify::triage::PriorityEvidence>,
}

impl Handoff {
    fn state(&self) -> std::sync::MutexGuard<'_, HandoffState> {
        // A panic while holding it leaves nothing half-done that matters: the transaction rolls
        // back and the batch is retried.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `ticket` as its row now holds it (the first stage wrote it).
    pub fn written(&self, ticket: crate::core::ticket::Ticket) {
        let version = ticket.version;
        self.state().tickets.insert(ticket.id, (ticket, version));
    }

    /// The ticket `id` as the chain last decided it, if the chain holds it.
    pub fn ticket(&self, id: i64) -> Option<crate::core::ticket::Ticket> {
        let state = self.state();
        if let Some(t) = state.staged.as_ref().and_then(|s| s.get(&id)) {
            return Some(t.clone());
        }
        state.tickets.get(&id).map(|(t, _)| t.clone())
    }

    /// From now on decisions are kept apart, to be kept ([`Handoff::keep_stage`]) or dropped
    /// ([`Handoff::drop_stage`]) with the stage's writes.
    pub fn begin_stage(&self) {
        self.state().staged = Some(std::collections::HashMap::new());
    }

    /// The stage succeeded: its decisions stand.
    pub fn keep_stage(&self) {
        let mut state = self.state();
        for (id, t) in state.staged.take().unwrap_or_default() {
            if let Some(slot) = state.tickets.get_mut(&id) {
                slot.0 = t;
            }
        }
    }

    /// The stage failed and its writes were rolled back: its decisions go too.
    pub fn drop_stage(&self) {
        self.state().staged = None;
    }

    /// Whether the chain holds ticket `id` (then its stages neither lock nor write it).
    pub fn holds(&self, id: i64) -> bool {
        self.state().tickets.contains_key(&id)
    }

    /// Keeps a stage's decision on a ticket the chain holds, to be written at the end. Returns
    /// false (and keeps nothing) for a ticket the chain does not hold: the stage writes it.
    pub fn decided(&self, ticket: &crate::core::ticket::Ticket) -> bool {
        let mut state = self.state();
        let state = &mut *state;
        match (state.tickets.get_mut(&ticket.id), state.staged.as_mut()) {
            (Some(_), Some(staged)) => {
                staged.insert(ticket.id, ticket.clone());
                true
            }
            (Some(slot), None) => {
                slot.0 = ticket.clone();
                true
            }
            (None, _) => false,
        }
    }

    /// Keeps what classifying ticket `id` found for prioritising it: the prioritize stage of the
    /// same chain takes it ([`Handoff::take_priority_evidence`]) instead of reading the text
    /// again. Valid because nothing changes a ticket's text while the chain holds it.
    pub fn keep_priority_evidence(&self, id: i64, evidence: crate::core::classify::triage::PriorityEvidence) {
        self.state().priority_evidence.insert(id, evidence);
    }

    /// What classifying ticket `id` in this chain found for prioritising it, if it did.
    pub fn take_priority_evidence(&self, id: i64) -> Option<crate::core::classify::triage::PriorityEvidence> {
        self.state().priority_evidence.remove(&id)
    }

    /// Defers the processed record of the first message at batch index `index` under `key`.
    pub fn defer_record(&self, index: usize, key: String) {
        self.state().records.push((index, key));
    }

    /// What the chain still has to write.
    pub fn unwritten(&self) -> Unwritten {
        let mut state = self.state();
        let tickets = state
            .tickets
            .values()
            .filter(|(t, written)| t.version != *written)
            .cloned()
            .collect();
        Unwritten {
            tickets,
            records: std::mem::take(&mut state.records),
        }
    }
}

/// What a chain writes at its end ([`Handoff::unwritten`]).
pub struct Unwritten {
    /// Tickets decided past the version their row holds, with that version.
    pub tickets: Vec<(crate::core::ticket::Ticket, i32)>,
    /// The deferred processed records: (batch index of a first message, its key).
    pub records: Vec<(usize, String)>,
}

impl Inbound {
    /// The chain's handoff, when a chain runs this message.
    pub fn handoff(&self) -> Option<&Arc<Handoff>> {
        self.chained.as_ref().map(|c| &c.handoff)
    }

    /// Whether an earlier stage of a chain handed this message over (it never was on a queue).
    pub fn handed_over(&self) -> bool {
        self.chained.as_ref().is_some_and(|c| !c.head)
    }

    pub fn message_id(&self) -> Option<&str> {
        self.properties.message_id().as_ref().map(|s| s.as_str())
    }

    /// Marks `outputs` as published for this message: each carries the message's trace context
    /// unless it has one already. Stages call it before recording outputs in the ledger, so a
    /// redelivery re-publishes them in the same trace.
    pub fn stamp(&self, outputs: &mut [Outgoing]) {
        if let Some(tp) = &self.traceparent {
            for o in outputs {
                o.carry_trace(tp);
            }
        }
    }
}

/// What became of one message. The variant decides its fate after the commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Applied in this transaction; publish these, then ack.
    Done(Vec<Outgoing>),
    /// Applied before (a redelivery): publish what the first run published, then ack.
    Duplicate(Vec<Outgoing>),
    /// Cannot ever be processed: dead-letter with this reason, then ack.
    Dead(String),
    /// Lost a race with another worker: return it to the queue to be seen again.
    Retry(String),
}

/// A pipeline stage: decode → decide (pure) → write → (runner: publish → ack).
pub trait Stage: Send + Sync + 'static {
    /// Stage name: queue suffix, metrics label, transition actor.
    fn name(&self) -> &'static str;

    /// Processes a batch inside `tx`, returning one outcome per input, in order. An `Err`
    /// rolls the whole transaction back (the runner then retries or splits the batch).
    fn process<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        batch: &'a [Inbound],
    ) -> impl Future<Output = Result<Vec<Outcome>, StoreError>> + Send + 'a;
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stage cannot start as configured (a bad SMTP URL, no TLS roots).
    #[error("{0}")]
    Setup(String),
}

/// Runs `concurrency` consumers of one stage until `shutdown`, on the process's shared
/// connections (`links`: one consumes, one publishes), and reports connection and consumers to
/// `health`. When the connections are lost it opens its channels again, with backoff, on the
/// pair [`Links::pair`] makes next (the next node, when several AMQP URLs are configured).
///
/// On `shutdown` the consumers stop taking deliveries and the batches in flight complete; if
/// they have not within `shutdown_grace_ms` (the database hangs, say), the runner closes its
/// channels, which hands every delivery they still hold back to the broker, and returns.
#[allow(clippy::too_many_arguments)]
pub async fn run_stage<S: Stage>(
    stage: Arc<S>,
    settings: &Settings,
    topo: Topology,
    db: Db,
    links: Arc<Links>,
    concurrency: usize,
    shutdown: CancellationToken,
    health: Arc<Health>,
) -> Result<(), RunError> {
    let name = stage.name();
    health.register(name, concurrency.max(1));
    let mut backoff = backoff::broker();
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        // Raced against the shutdown: connecting may wait on unreachable nodes, and opening a
        // confirm channel waits for as long as a memory alarm blocks the publishing connection.
        let opening = async {
            let pair = links.pair().await?;
            let channels = open_session(&pair, &topo, concurrency).await?;
            Ok::<_, BusError>((pair, channels))
        };
        let opened = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            opened = opening => opened,
        };
        let (pair, channels) = match opened {
            Ok(o) => o,
            Err(e) => {
                let retry_in = backoff.next_delay();
                warn!(stage = name, error = %e, ?retry_in, "waiting for RabbitMQ");
                if !backoff::pause(retry_in, &shutdown).await {
                    return Ok(());
                }
                continue;
            }
        };
        info!(stage = name, node = %pair.node, "connected to RabbitMQ");
        health.set_connected(name, true);
        let connected_at = std::time::Instant::now();
        let grace = Duration::from_millis(settings.shutdown_grace_ms);
        let outcome = tokio::select! {
            r = run_connected(&stage, settings, &topo, &db, &channels, &shutdown, &health) => Some(r),
            _ = grace_expired(&shutdown, grace) => None,
        };
        health.set_connected(name, false);
        match outcome {
            None => {
                warn!(stage = name, grace = ?grace, "shutdown grace period over with batches still in flight: closing this stage's channels, which returns every delivery they still hold to the queue");
                close_channels(&channels, 320, "shutdown grace period over").await;
                return Ok(());
            }
            Some(Ok(())) => return Ok(()),
            Some(Err(e)) => {
                backoff::after_session(&mut backoff, connected_at.elapsed());
                let retry_in = backoff.next_delay();
                warn!(stage = name, error = %e, ?retry_in, "consumer lost its connection; reconnecting");
                if !backoff::pause(retry_in, &shutdown).await {
                    return Ok(());
                }
            }
        }
    }
}

/// Declares the topology and opens a consuming and a publishing (confirm) channel for each of
/// `concurrency` consumers. A refusal leaves the pair alone: if the connection is gone,
/// [`Links::pair`] replaces it; if it is up and refuses a channel (the broker's `channel_max`
/// reached), tearing it down would only stop every other runner of the process as well.
async fn open_session(pair: &Pair, topo: &Topology, concurrency: usize) -> Result<Vec<(Channel, Channel)>, BusError> {
    topo.declare(&pair.consume).await?;
    let mut channels = Vec::with_capacity(concurrency.max(1));
    for _ in 0..concurrency.max(1) {
        let opened = match pair.consume.create_channel().await {
            Ok(ch) => match bus::confirm_channel(&pair.publish).await {
                Ok(pub_ch) => Ok((ch, pub_ch)),
                Err(e) => {
                    close_channel(&ch, 200, "no publishing channel").await;
                    Err(e)
                }
            },
            Err(e) => Err(e.into()),
        };
        match opened {
            Ok(both) => channels.push(both),
            Err(e) => {
                close_channels(&channels, 200, "session not started").await;
                return Err(e);
            }
        }
    }
    Ok(channels)
}

/// Closes a session's channels: the consuming ones first and together, since they hold the
/// deliveries (closing a publishing channel can take its whole timeout under a memory alarm).
async fn close_channels(channels: &[(Channel, Channel)], code: u16, why: &str) {
    futures::future::join_all(channels.iter().map(|(ch, _)| close_channel(ch, code, why))).await;
    futures::future::join_all(channels.iter().map(|(_, pub_ch)| close_channel(pub_ch, code, why))).await;
}

/// Resolves `grace` after `shutdown` is cancelled; never before.
pub async fn grace_expired(shutdown: &CancellationToken, grace: Duration) {
    shutdown.cancelled().await;
    tokio::time::sleep(grace).await;
}

/// Closes a channel without waiting long for a broker that may be gone. Closing a consuming
/// channel returns the deliveries it held unacked to their queues.
async fn close_channel(ch: &Channel, code: u16, why: &str) {
    let _ = tokio::time::timeout(Duration::from_secs(2), ch.close(code, why.into())).await;
}

async fn run_connected<S: Stage>(
    stage: &Arc<S>,
    settings: &Settings,
    topo: &Topology,
    db: &Db,
    channels: &[(Channel, Channel)],
    shutdown: &CancellationToken,
    health: &Arc<Health>,
) -> Result<(), RunError> {
    // A failing slot stops its siblings, so the whole session is opened again together.
    let failed = shutdown.child_token();
    let tracker = TaskTracker::new();
    let (err_tx, mut err_rx) = tokio::sync::mpsc::channel::<RunError>(channels.len().max(1));
    for (slot, (ch, pub_ch)) in channels.iter().cloned().enumerate() {
        let stage = stage.clone();
        let topo = topo.clone();
        let db = db.clone();
        let settings = settings.clone();
        let stop = failed.clone();
        let err_tx = err_tx.clone();
        let health = health.clone();
        tracker.spawn(async move {
            if let Err(e) = consume(&*stage, &settings, &topo, &db, (&ch, &pub_ch), slot, &stop, &health).await {
                let _ = err_tx.send(e).await;
                stop.cancel();
            }
            // Returns whatever the channel still holds unacked (after an error) to the queue.
            close_channel(&ch, 200, "bye").await;
            close_channel(&pub_ch, 200, "bye").await;
        });
    }
    tracker.close();
    drop(err_tx);
    tracker.wait().await;
    match err_rx.recv().await {
        Some(e) if !shutdown.is_cancelled() => Err(e),
        _ => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn consume<S: Stage>(
    stage: &S,
    settings: &Settings,
    topo: &Topology,
    db: &Db,
    (ch, pub_ch): (&Channel, &Channel),
    slot: usize,
    stop: &CancellationToken,
    health: &Arc<Health>,
) -> Result<(), RunError> {
    ch.basic_qos(settings.effective_prefetch(), BasicQosOptions::default())
        .await
        .map_err(BusError::from)?;
    let mut consumer = ch
        .basic_consume(
            topo.queue(stage.name()).into(),
            format!("{}-{}-{}", stage.name(), std::process::id(), slot).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BusError::from)?;
    // Counted as consuming until this function returns, however it returns.
    let _consuming = health.consumer_started(stage.name());
    info!(stage = stage.name(), slot, queue = %topo.queue(stage.name()), "consuming");
    let linger = Duration::from_millis(settings.batch_linger_ms);
    loop {
        let first = tokio::select! {
            // Biased: with deliveries always ready, a fair choice could keep taking batches for
            // a while after a shutdown was asked for.
            biased;
            _ = stop.cancelled() => return Ok(()),
            next = consumer.next() => next,
        };
        let Some(first) = first else {
            return Err(BusError::ConsumerClosed.into());
        };
        let mut batch = vec![to_inbound(first.map_err(BusError::from)?)];
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < settings.batch_max {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(d)) => batch.push(to_inbound(d.map_err(BusError::from)?)),
                Ok(None) | Err(_) => break,
            }
        }
        // One span per message, in its own trace (held until the message is settled); its
        // context is what the message's outputs carry.
        let messages: Vec<trace::Work> = batch
            .iter_mut()
            .map(|m| {
                let id = m.message_id().unwrap_or("-").to_owned();
                let work = trace::start(trace::Kind::Consume, stage.name(), &id, m.traceparent.as_deref());
                m.traceparent = work.traceparent.clone();
                work
            })
            .collect();
        // Instrumented, not entered: an entered span held across awaits leaks into whatever
        // else runs on the thread.
        let span = info_span!("batch", stage = stage.name(), size = batch.len());
        trace::link_batch(&span, &messages);
        handle_batch(stage, topo, db, (ch, pub_ch), batch, stop)
            .instrument(span)
            .await?;
        drop(messages);
    }
}

fn to_inbound(d: lapin::message::Delivery) -> Inbound {
    Inbound {
        tag: d.delivery_tag,
        exchange: d.exchange.as_str().to_owned(),
        routing_key: d.routing_key.as_str().to_owned(),
        redelivered: d.redelivered,
        traceparent: trace::from_amqp(&d.properties),
        properties: d.properties,
        data: d.data,
        chained: None,
    }
}

/// Processes, publishes and settles one batch. Returns an error only for broker failures (the
/// caller reconnects); database trouble is retried here, holding the deliveries.
async fn handle_batch<S: Stage>(
    stage: &S,
    topo: &Topology,
    db: &Db,
    (ch, pub_ch): (&Channel, &Channel),
    batch: Vec<Inbound>,
    stop: &CancellationToken,
) -> Result<(), RunError> {
    let started = Instant::now();
    let outcomes = match process_with_retry(stage, db, &batch, stop).await {
        Some(o) => o,
        None => {
            // Shutting down while the database is away: give everything back.
            for m in &batch {
                ch.basic_nack(
                    m.tag,
                    BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    },
                )
                .await
                .map_err(BusError::from)?;
            }
            return Ok(());
        }
    };
    let mut outcomes = outcomes;
    let mut to_publish: Vec<Outgoing> = Vec::new();
    let mut dead_confirms = Vec::new();
    for (m, outcome) in batch.iter().zip(outcomes.iter_mut()) {
        // Moved out, not copied: only the variants are needed after this.
        let label = match outcome {
            Outcome::Done(out) => {
                to_publish.append(out);
                "done"
            }
            Outcome::Duplicate(out) => {
                to_publish.append(out);
                "duplicate"
            }
            Outcome::Dead(reason) => {
                // The reason travels with the dead letter and into the log: no contacts in it.
                let reason = &crate::core::privacy::redact_personal(reason);
                warn!(message_id = m.message_id().unwrap_or("-"), reason = %reason, "dead-lettering");
                let props =
                    dead::dead_letter_properties(&m.properties, stage.name(), &m.exchange, &m.routing_key, reason);
                dead_confirms.push(dead::publish(pub_ch, topo, &m.data, props).await?);
                "dead"
            }
            Outcome::Retry(_) => "retry",
        };
        metrics::counter!("switchboard_messages_total", "stage" => stage.name(), "outcome" => label).increment(1);
    }
    bus::publish_all(pub_ch, topo, &to_publish).await?;
    let dead_count = dead_confirms.len() as u64;
    for c in dead_confirms {
        c.accepted().await?;
    }
    if dead_count > 0 {
        metrics::counter!("switchboard_dead_lettered_total", "stage" => stage.name()).increment(dead_count);
    }

    let all_ack = outcomes.iter().all(|o| !matches!(o, Outcome::Retry(_)));
    if all_ack {
        if let Some(max) = batch.iter().map(|m| m.tag).max() {
            ch.basic_ack(max, BasicAckOptions { multiple: true })
                .await
                .map_err(BusError::from)?;
        }
    } else {
        for (m, o) in batch.iter().zip(&outcomes) {
            match o {
                Outcome::Retry(why) => {
                    info!(message_id = m.message_id().unwrap_or("-"), why = %why, "returning message to the queue");
                    ch.basic_nack(
                        m.tag,
                        BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        },
                    )
                    .await
                }
                _ => ch.basic_ack(m.tag, BasicAckOptions::default()).await,
            }
            .map_err(BusError::from)?;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    metrics::histogram!("switchboard_batch_seconds", "stage" => stage.name()).record(elapsed);
    // Every message of the batch waited the whole batch: one sample each, one call.
    metrics::histogram!("switchboard_message_processing_seconds", "stage" => stage.name())
        .record_many(elapsed, batch.len());
    metrics::histogram!("switchboard_batch_size", "stage" => stage.name()).record(batch.len() as f64);
    Ok(())
}

/// Runs the batch in one transaction. Transient failures are retried with backoff (the
/// deliveries stay unacked and safe); a permanent failure splits the batch so that only the
/// message at fault is dead-lettered. `None` = shutdown while waiting for the database.
async fn process_with_retry<S: Stage>(
    stage: &S,
    db: &Db,
    batch: &[Inbound],
    stop: &CancellationToken,
) -> Option<Vec<Outcome>> {
    let mut backoff = backoff::database();
    loop {
        match run_transaction(stage, db, batch).await {
            Ok(outcomes) => return Some(outcomes),
            Err(e) if e.is_transient() => {
                let retry_in = backoff.next_delay();
                warn!(stage = stage.name(), error = %e, ?retry_in, "database unavailable; holding the batch and retrying");
                if !backoff::pause(retry_in, stop).await {
                    return None;
                }
            }
            Err(e) if batch.len() > 1 => {
                warn!(stage = stage.name(), error = %e, "batch failed; retrying its messages one by one");
                let mut outcomes = Vec::with_capacity(batch.len());
                for one in batch {
                    let single = Box::pin(process_with_retry(stage, db, std::slice::from_ref(one), stop)).await?;
                    outcomes.extend(single);
                }
                return Some(outcomes);
            }
            Err(e) => {
                // Dead-letter only against a healthy database: an outage can surface as an
                // error we did not list as transient (a new SQLSTATE, a proxy's message).
                if !db.accepts_writes().await {
                    let retry_in = backoff.next_delay();
                    warn!(stage = stage.name(), error = %e, ?retry_in, "message failed while the database takes no writes; holding it and retrying");
                    if !backoff::pause(retry_in, stop).await {
                        return None;
                    }
                    continue;
                }
                // Display, not Debug: a database error's detail can quote the row.
                error!(stage = stage.name(), error = %crate::core::privacy::redact_personal(&e.to_string()), "message failed permanently");
                return Some(vec![Outcome::Dead(format!("{} stage failed: {e}", stage.name()))]);
            }
        }
    }
}

async fn run_transaction<S: Stage>(stage: &S, db: &Db, batch: &[Inbound]) -> Result<Vec<Outcome>, StoreError> {
    let mut client = db.pool.get().await?;
    let tx = client.transaction().await?;
    // A bug that panics on one message must not take the worker down: the panic becomes a
    // permanent error, the batch is split, and the message at fault is dead-lettered.
    let outcomes = match std::panic::AssertUnwindSafe(stage.process(&tx, batch))
        .catch_unwind()
        .await
    {
        Ok(result) => result?,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            return Err(StoreError::Conflict(format!(
                "the {} stage panicked: {what}",
                stage.name()
            )));
        }
    };
    debug_assert_eq!(outcomes.len(), batch.len());
    if outcomes.len() != batch.len() {
        return Err(StoreError::Conflict(format!(
            "stage {} returned {} outcomes for {} messages",
            stage.name(),
            outcomes.len(),
            batch.len()
        )));
    }
    tx.commit().await?;
    Ok(outcomes)
}
