//! The SLA scheduler: claims due timers from Postgres and publishes what they trigger.
//!
//! Any number of schedulers run at once: `FOR UPDATE SKIP LOCKED` gives each timer to exactly
//! one. Claiming, marking fired and writing the outgoing message to the outbox happen in one
//! transaction; the relay then publishes with confirms and deletes the outbox rows in another.
//! A crash between the two leaves the rows for the next relay: nothing is lost, and a
//! duplicate is recognised downstream by its `timer:<id>` message id.
//!
//! The loop sleeps until the next due time (at most `POLL` at a time, so a timer written by
//! another process is seen quickly), which keeps lateness well under a second.

use crate::bus::rotation::Rotation;
use crate::bus::{self, BusError, Topology};
use crate::contracts::action::ActionMessage;
use crate::contracts::timer::TimerMessage;
use crate::contracts::work::{DrainMessage, WorkMessage};
use crate::contracts::{Exchange, Outgoing, StageName};
use crate::core::actions::Action;
use crate::runtime::backoff;
use crate::runtime::ops::health::Health;
use crate::runtime::relay;
use crate::store::{Db, StoreError, outbox, timers};
use chrono::Utc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Longest sleep between looks at the timer table.
pub const POLL: Duration = Duration::from_millis(200);
/// Timers claimed per transaction.
pub const CLAIM_LIMIT: i64 = 1000;

/// What a fired timer publishes.
pub fn message_for(t: &timers::Timer) -> Outgoing {
    if t.purpose == timers::AUTO_CLOSE {
        let action = ActionMessage {
            ticket: t.number.clone(),
            actor: "system".into(),
            action: Action::Close {
                reason: Some("not rated within the rating window: closed automatically".into()),
            },
        };
        return Outgoing {
            exchange: Exchange::Actions,
            routing_key: "action.close".into(),
            message_id: format!("timer:{}", t.id),
            body: crate::contracts::Body::of(&action),
            headers: vec![],
        };
    }
    let msg = TimerMessage {
        timer_id: t.id,
        ticket_id: t.ticket_id,
        number: t.number.clone(),
        purpose: t.purpose.clone(),
        due_at: t.due_at,
        fired_at: t.fired_at,
        payload: t.payload.clone(),
    };
    Outgoing {
        exchange: Exchange::Work,
        routing_key: StageName::Escalate.as_str().into(),
        message_id: msg.message_id(),
        body: crate::contracts::Body::of(&msg),
        headers: vec![],
    }
}

/// Claims every due timer (in chunks) and writes its message to the outbox. Returns how many.
pub async fn fire_due(db: &Db) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let mut client = db.pool.get().await?;
        let tx = client.transaction().await?;
        let due = timers::claim_due(&tx, Utc::now(), CLAIM_LIMIT).await?;
        let messages: Vec<Outgoing> = due.iter().map(message_for).collect();
        outbox::insert(&*tx, &messages).await?;
        tx.commit().await?;
        for t in &due {
            let late = (t.fired_at - t.due_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("switchboard_timer_claim_lateness_seconds").record(late);
        }
        total += due.len();
        if (due.len() as i64) < CLAIM_LIMIT {
            return Ok(total);
        }
    }
}

/// Re-drives of one ticket at one version before the sweeper leaves it to a person (it is in
/// the dead-letter queue for a reason, then).
pub const MAX_REDRIVES: i32 = 3;

/// Tickets indexed for search per sweep while older tickets lack their terms.
const SEARCH_INDEX_BATCH: i64 = 2_000;

fn sweep_every(after: Duration) -> Duration {
    (after / 4).clamp(Duration::from_millis(200), Duration::from_secs(30))
}

/// The sweeper: a ticket whose next pipeline step never happened gets its work message again
/// (at its current version, so a copy still on its way is recognised as a duplicate), and a
/// team whose queue waits beside a free agent gets a drain request; the slots agents freed since
/// anyone last locked them are counted in. Without it a work message
/// lost on the way, or dead-lettered by the broker after too many deliveries (every reconnect
/// counts against the delivery limit of what a consumer holds), would strand its ticket.
pub async fn sweep(db: &Db, after: Duration) -> Result<usize, StoreError> {
    let mut client = db.pool.get().await?;
    // Slots freed since anyone last locked their agents (`store::agents::release_slot`), in a
    // transaction of its own: the agents' rows are free again at once, not after the scans below.
    // A failure here is logged and left for the next sweep: the re-drives below matter more.
    let folded = async {
        let fold = client.transaction().await?;
        crate::store::agents::fold_unheld_releases(&fold).await?;
        fold.commit().await?;
        Ok::<(), StoreError>(())
    };
    if let Err(e) = folded.await {
        warn!(error = %e, "sweeper could not fold the agents' freed slots; the next sweep tries again");
    }
    let tx = client.transaction().await?;
    let secs = after.as_secs_f64();
    let stuck = crate::store::sweep::stuck_tickets(&tx, secs, MAX_REDRIVES, CLAIM_LIMIT).await?;
    let mut messages: Vec<Outgoing> = stuck
        .iter()
        .filter_map(|t| StageName::awaited_in(t.state).map(|stage| WorkMessage::for_ticket(t, stage)))
        .collect();
    let teams = crate::store::sweep::teams_to_drain(&tx, secs).await?;
    for team in &teams {
        messages.push(DrainMessage::for_team(
            team,
            "sweeper: queued tickets wait beside a free agent",
        ));
    }
    outbox::insert(&*tx, &messages).await?;
    tx.commit().await?;
    if !stuck.is_empty() || !teams.is_empty() {
        warn!(
            tickets = stuck.len(),
            teams = teams.len(),
            "sweeper re-drove stalled tickets and queues"
        );
        metrics::counter!("switchboard_sweeper_redriven_total", "kind" => "ticket").increment(stuck.len() as u64);
        metrics::counter!("switchboard_sweeper_redriven_total", "kind" => "queue").increment(teams.len() as u64);
    }
    Ok(stuck.len() + teams.len())
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs until `shutdown`, reconnecting to RabbitMQ (the next node first, when several are
/// configured) and waiting out Postgres outages. Reports its connection to `health`.
///
/// The sweep runs in a task of its own, beside the timers: its queries scan the tickets in the
/// pipeline's states and the ones not yet indexed for search, and at a million tickets every
/// timer due while they ran would wait for them. What a sweep writes to the outbox is relayed
/// by the timers' loop, which the sweep wakes; on shutdown the sweep stops first and the
/// timers' loop relays once more, so a graceful stop leaves nothing in the outbox.
pub async fn run(
    db: Db,
    topo: Topology,
    amqp_urls: Vec<String>,
    sweep_after: Duration,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> Result<(), SchedulerError> {
    let sweeping = shutdown.child_token();
    let sweep = SweepLink {
        broker_up: Arc::new(AtomicBool::new(false)),
        swept: Arc::new(Notify::new()),
        stopped: CancellationToken::new(),
    };
    let sweeper = tokio::spawn({
        let (db, sweep) = (db.clone(), sweep.clone());
        async move {
            // Dropped however the task ends, a panic included: the timers' loop never waits
            // for a sweeper that is gone.
            let _stopped = sweep.stopped.clone().drop_guard();
            sweep_loop(db, sweep_after, &sweep, sweeping).await;
        }
    });
    let result = run_timers(db, topo, amqp_urls, health, &sweep, shutdown).await;
    if let Err(e) = sweeper.await {
        warn!(error = %e, "the sweeper task ended abnormally");
    }
    result
}

/// What the sweeper and the timers' loop share.
#[derive(Clone)]
struct SweepLink {
    /// The timers' loop has the broker: only then does the sweeper sweep.
    broker_up: Arc<AtomicBool>,
    /// A sweep wrote to the outbox: the timers' loop relays it at once.
    swept: Arc<Notify>,
    /// The sweeper has stopped: nothing more will be written to the outbox by it.
    stopped: CancellationToken,
}

/// Longest a stopping scheduler waits for the sweeper and then relays the outbox: a stop
/// during a broker or database outage is not held up by it (the rows stay for the next start).
const FINAL_RELAY_WITHIN: Duration = Duration::from_secs(5);

/// Sweeps every `sweep_every(sweep_after)` until `shutdown`: re-drives stalled tickets and
/// queues (into the outbox, which the timers' loop relays) and indexes a batch of tickets that
/// lack search terms. A failed round is logged and the next one tries again.
///
/// Only while the timers' loop is connected to the broker (`broker_up`): in an outage nothing moves, every
/// ticket in the pipeline would look stalled, and each sweep would spend one of its re-drives.
async fn sweep_loop(db: Db, sweep_after: Duration, link: &SweepLink, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(sweep_every(sweep_after)) => {}
        }
        if !link.broker_up.load(Ordering::Acquire) {
            continue;
        }
        let round = async {
            if sweep(&db, sweep_after).await? > 0 {
                link.swept.notify_one();
            }
            // Tickets stored before the work list's search existed are indexed a batch per
            // sweep, so a large upgrade never holds a long transaction.
            let indexed = crate::store::worklist::index_unindexed(&db, SEARCH_INDEX_BATCH).await?;
            if indexed > 0 {
                metrics::counter!("switchboard_search_backfilled_total").increment(indexed);
            }
            Ok::<(), StoreError>(())
        };
        let round = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            r = round => r,
        };
        if let Err(e) = round {
            warn!(error = %e, "sweep failed; the next sweep tries again");
        }
    }
}

async fn run_timers(
    db: Db,
    topo: Topology,
    amqp_urls: Vec<String>,
    health: Arc<Health>,
    sweep: &SweepLink,
    shutdown: CancellationToken,
) -> Result<(), SchedulerError> {
    const NAME: &str = StageName::Scheduler.as_str();
    health.register(NAME, 0);
    let mut nodes = Rotation::new(amqp_urls);
    let mut backoff = backoff::broker();
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let connected = async {
            let (conn, node) = nodes.connect("switchboard-scheduler").await?;
            let ch = match bus::confirm_channel(&conn).await {
                Ok(ch) => ch,
                Err(e) => {
                    let _ = conn.close(320, "no channel".into()).await;
                    return Err(e);
                }
            };
            if let Err(e) = topo.declare(&conn).await {
                let _ = conn.close(320, "declare failed".into()).await;
                return Err(e);
            }
            Ok((conn, ch, node))
        }
        .await;
        let (conn, ch, node) = match connected {
            Ok(c) => c,
            Err(e) => {
                let retry_in = backoff.next_delay();
                warn!(error = %e, ?retry_in, "scheduler waiting for RabbitMQ");
                if !backoff::pause(retry_in, &shutdown).await {
                    return Ok(());
                }
                continue;
            }
        };
        let connected_at = std::time::Instant::now();
        health.set_connected(NAME, true);
        sweep.broker_up.store(true, Ordering::Release);
        info!(node = %node, "scheduler running");
        let result = tick_loop(&db, &topo, &ch, &sweep.swept, &shutdown).await;
        if result.is_ok() {
            // Stopping: the sweeper stops too (its token is a child of `shutdown`); what it
            // wrote since the last round goes out now rather than at the next start.
            let last = async {
                sweep.stopped.cancelled().await;
                relay_all(&db, &ch, &topo).await
            };
            match tokio::time::timeout(FINAL_RELAY_WITHIN, last).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(error = %e, "scheduler stopping without its last relay; the outbox goes out at the next start")
                }
                Err(_) => {
                    warn!(within = ?FINAL_RELAY_WITHIN, "scheduler stopping without its last relay (not done in time); the outbox goes out at the next start")
                }
            }
        }
        sweep.broker_up.store(false, Ordering::Release);
        health.set_connected(NAME, false);
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "bye".into())).await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) => {
                backoff::after_session(&mut backoff, connected_at.elapsed());
                let retry_in = backoff.next_delay();
                warn!(error = %e, ?retry_in, "scheduler lost the broker; reconnecting");
                if !backoff::pause(retry_in, &shutdown).await {
                    return Ok(());
                }
            }
        }
    }
}

/// Relays the outbox until it is empty, a claim at a time.
async fn relay_all(db: &Db, ch: &lapin::Channel, topo: &Topology) -> Result<(), relay::RelayError> {
    while relay::relay(db, ch, topo, CLAIM_LIMIT).await? as i64 >= CLAIM_LIMIT {}
    Ok(())
}

async fn tick_loop(
    db: &Db,
    topo: &Topology,
    ch: &lapin::Channel,
    swept: &Notify,
    shutdown: &CancellationToken,
) -> Result<(), BusError> {
    let mut db_backoff = backoff::database();
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        // With no timer due the scheduler publishes nothing, so it would not otherwise notice a
        // dead connection (and `/readyz` would go on calling it connected).
        if !ch.status().connected() {
            return Err(BusError::ConnectionLost);
        }
        let round: Result<Duration, relay::RelayError> = async {
            let fired = fire_due(db).await?;
            relay_all(db, ch, topo).await?;
            if fired > 0 {
                metrics::counter!("switchboard_timers_fired_total").increment(fired as u64);
            }
            let client = db.pool.get().await.map_err(StoreError::from)?;
            let next = timers::next_due(&**client).await?;
            Ok(match next {
                Some(due) => (due - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(POLL),
                None => POLL,
            })
        }
        .await;
        let sleep = match round {
            Ok(d) => {
                db_backoff.reset();
                d
            }
            Err(relay::RelayError::Bus(e)) => return Err(e),
            Err(relay::RelayError::Store(e)) => {
                let retry_in = db_backoff.next_delay();
                warn!(error = %e, ?retry_in, "scheduler waiting for Postgres");
                retry_in
            }
        };
        if sleep > Duration::ZERO {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = swept.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }
}
