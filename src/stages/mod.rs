//! The pipeline stages. Each has the same shape: decode → decide (pure, in `domain` and
//! `classify`) → write ticket, transition and processed record in one transaction → the runner
//! publishes and acks.

pub mod actions;
pub mod assign;
pub mod chain;
pub mod classify;
pub mod escalate;
pub mod intake;
pub mod lifecycle;
pub mod notify;
pub mod prioritize;
pub mod registry;

use crate::bus::Topology;
use crate::contracts::events;
use crate::contracts::work::{DrainMessage, StageInput, WorkMessage};
use crate::contracts::{Outgoing, StageName};
use crate::core::policy::Policy;
use crate::core::state::TicketState;
use crate::core::ticket::{Ticket, Transition};
use crate::runtime::runner::{Handoff, Inbound, Outcome};
use crate::store::ledger;
use crate::store::{StoreError, tickets};
use deadpool_postgres::Transaction;
use std::collections::HashMap;
use std::sync::Arc;

/// What every stage needs: the policy it decides under and the names it publishes to.
#[derive(Clone)]
pub struct Context {
    pub policy: Arc<Policy>,
    pub topo: Topology,
    /// The database, for what a stage does outside its batch's transaction (intake's ticket
    /// numbers).
    pub db: crate::store::Db,
}

/// The work message to hand `t` (at its current version) to `stage`.
pub fn work_message(t: &Ticket, stage: StageName) -> Outgoing {
    WorkMessage::for_ticket(t, stage)
}

/// The pipeline step a ticket still waits for, asked again at its current version. Any change
/// outside the pipeline that moves the version of a ticket not yet assigned (an action, a
/// breach) supersedes the work message on its way, so whoever made the change publishes this
/// too, or the ticket would wait for the sweeper.
pub fn pending_step(t: &Ticket) -> Option<Outgoing> {
    StageName::awaited_in(t.state).map(|stage| work_message(t, stage))
}

/// Who made a change and why: the transition's actor, reason and structured details.
pub struct Because {
    pub actor: &'static str,
    pub reason: String,
    pub details: serde_json::Value,
}

/// A stage's decision for one ticket: its new state and what to say about it.
pub struct Decision {
    pub ticket: Ticket,
    pub transition: Transition,
    pub event: &'static str,
    pub next_stage: Option<StageName>,
}

impl Decision {
    /// Moves `before` to `after.state`, bumping the version and recording why.
    pub fn new(
        before: &Ticket,
        mut after: Ticket,
        why: Because,
        policy: &Policy,
        event: &'static str,
        next_stage: Option<StageName>,
    ) -> Decision {
        let Because { actor, reason, details } = why;
        after.version = before.version + 1;
        let transition = Transition {
            ticket_id: before.id,
            seq: after.version,
            from: Some(before.state),
            to: after.state,
            at: chrono::Utc::now(),
            actor: actor.to_owned(),
            reason,
            policy_version: policy.version().to_owned(),
            details,
        };
        Decision {
            ticket: after,
            transition,
            event,
            next_stage,
        }
    }

    fn outputs(&self) -> Vec<Outgoing> {
        let mut out = vec![events::ticket_event(&self.ticket, self.event, &self.transition)];
        if let Some(next) = self.next_stage {
            out.push(work_message(&self.ticket, next));
        }
        out
    }
}

/// What became of a message applied through [`once`].
pub enum Applied<E> {
    /// Applied now; publish these.
    Done(Vec<Outgoing>),
    /// Applied before (a redelivery or a retry): publish what it published then.
    Duplicate(Vec<Outgoing>),
    /// Not applied, and never will be: the reason.
    Refused(E),
}

/// The ledger bookkeeping for one message, written once for every per-message path (the
/// lifecycle and escalate stages, the HTTP action API). Call it with the message's locks held:
/// a message the ledger already has under `key` is a duplicate; otherwise `apply` runs and what
/// it publishes is recorded under `key` by `recorder`, in the same transaction. `apply`'s outer
/// error is the database's (the transaction fails); its inner error refuses the message.
pub async fn once<E, F, Fut>(
    tx: &Transaction<'_>,
    recorder: &str,
    key: &str,
    apply: F,
) -> Result<Applied<E>, StoreError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Result<Vec<Outgoing>, E>, StoreError>>,
{
    if let Some(out) = ledger::lookup(tx, &[key.to_owned()]).await?.remove(key) {
        return Ok(Applied::Duplicate(out));
    }
    match apply().await? {
        Ok(outputs) => {
            ledger::record(tx, recorder, &[(key.to_owned(), outputs.as_slice())]).await?;
            Ok(Applied::Done(outputs))
        }
        Err(e) => Ok(Applied::Refused(e)),
    }
}

/// A batch of work messages decoded, de-duplicated and with their tickets locked.
pub struct WorkBatch {
    /// Final outcomes already known (bad messages, redeliveries), by batch index.
    pub settled: Vec<Option<Outcome>>,
    /// Messages to decide on: batch index, message, locked ticket.
    pub pending: Vec<(usize, WorkMessage, Ticket)>,
    /// Batch index → index of an identical earlier message in the same batch.
    pub copies: Vec<(usize, usize)>,
    /// Requests to drain a team's queue (only for a stage that takes them), by batch index.
    pub drains: Vec<(usize, DrainMessage)>,
}

/// Work messages decoded, before any lock: what `settle_work` needs after the caller locked.
pub struct DecodedWork {
    pub settled: Vec<Option<Outcome>>,
    pub work: Vec<(usize, WorkMessage)>,
    pub copies: Vec<(usize, usize)>,
    pub drains: Vec<(usize, DrainMessage)>,
    /// The tickets a chain hands over with these messages (`chain`), if a chain runs them.
    pub handoff: Option<Arc<Handoff>>,
}

impl DecodedWork {
    /// The tickets the work messages are about that this stage must lock and read itself (a
    /// chain's own tickets come with it), each once, in id order.
    pub fn ticket_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .work
            .iter()
            .map(|(_, w)| w.ticket_id)
            .filter(|id| !self.handoff.as_ref().is_some_and(|h| h.holds(*id)))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The chain's own tickets among those the messages are about.
    pub fn handed_tickets(&self) -> Vec<Ticket> {
        let Some(h) = &self.handoff else {
            return Vec::new();
        };
        let mut ids: Vec<i64> = self.work.iter().map(|(_, w)| w.ticket_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().filter_map(|id| h.ticket(id)).collect()
    }
}

/// Decodes work messages for `stage`, settling what needs no ticket: undecodable (dead), for
/// another stage (dead), copies within the batch.
pub fn decode_work(batch: &[Inbound], stage: &str, takes_drains: bool) -> DecodedWork {
    let mut settled: Vec<Option<Outcome>> = vec![None; batch.len()];
    let mut work: Vec<(usize, WorkMessage)> = Vec::new();
    let mut copies = Vec::new();
    let mut first_by_id: HashMap<String, usize> = HashMap::new();
    let mut drains = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        match StageInput::decode(&m.data) {
            Err(why) => settled[i] = Some(Outcome::Dead(why)),
            Ok(StageInput::Drain(d)) if takes_drains => drains.push((i, d)),
            Ok(StageInput::Drain(d)) => {
                settled[i] = Some(Outcome::Dead(format!(
                    "drain request for team {:?} arrived at {stage}, which has no queue to drain",
                    d.drain_team
                )))
            }
            Ok(StageInput::Work(w)) if w.stage != stage => {
                settled[i] = Some(Outcome::Dead(format!(
                    "work message for stage {:?} arrived at {stage}",
                    w.stage
                )))
            }
            Ok(StageInput::Work(w)) => {
                let id = w.message_id();
                if let Some(&j) = first_by_id.get(&id) {
                    copies.push((i, j));
                } else {
                    first_by_id.insert(id, i);
                    work.push((i, w));
                }
            }
        }
    }
    DecodedWork {
        settled,
        work,
        copies,
        drains,
        handoff: batch.first().and_then(Inbound::handoff).cloned(),
    }
}

/// Decodes work messages for `stage` and locks their tickets (`store::locks`, tickets only),
/// settling whatever needs no decision. A stage that also locks agents decodes, locks both in
/// one call, then calls [`settle_work`].
pub async fn prepare_work(
    tx: &Transaction<'_>,
    batch: &[Inbound],
    stage: &str,
    expected: &[TicketState],
    takes_drains: bool,
) -> Result<WorkBatch, StoreError> {
    let decoded = decode_work(batch, stage, takes_drains);
    let ids = decoded.ticket_ids();
    let locked = crate::store::locks::lock(tx, &crate::store::locks::LockSet::tickets(&ids)).await?;
    settle_work(tx, decoded, locked.tickets, stage, expected).await
}

/// With the tickets locked: already processed (duplicate), superseded (acked), stale or
/// missing (dead), or pending a decision.
pub async fn settle_work(
    tx: &Transaction<'_>,
    decoded: DecodedWork,
    locked: Vec<Ticket>,
    stage: &str,
    expected: &[TicketState],
) -> Result<WorkBatch, StoreError> {
    let handed = decoded.handed_tickets();
    let DecodedWork {
        mut settled,
        work: mut decoded,
        copies,
        drains,
        handoff: _,
    } = decoded;
    let held: std::collections::HashSet<i64> = handed.iter().map(|t| t.id).collect();
    let locked: HashMap<i64, Ticket> = locked.into_iter().chain(handed).map(|t| (t.id, t)).collect();
    // Locked first, then the ledger: a concurrent worker that applied the same message has
    // committed by the time we hold the lock, so its record is visible and this copy is a
    // duplicate, not a stale message. A chain's own ticket was decided in this transaction:
    // nothing can have processed a message about its current version before.
    let keys: Vec<String> = decoded
        .iter()
        .filter(|(_, w)| !held.contains(&w.ticket_id))
        .map(|(_, w)| w.message_id())
        .collect();
    let done = ledger::lookup(tx, &keys).await?;
    decoded.retain(|(i, w)| match done.get(&w.message_id()) {
        Some(out) => {
            settled[*i] = Some(Outcome::Duplicate(out.clone()));
            false
        }
        None => true,
    });
    let mut pending = Vec::with_capacity(decoded.len());
    for (i, w) in decoded {
        // `get`, not `remove`: a superseded message and its successor can share a batch.
        match locked.get(&w.ticket_id).cloned() {
            None => {
                settled[i] = Some(Outcome::Dead(format!(
                    "ticket {} (id {}) does not exist",
                    w.number, w.ticket_id
                )))
            }
            Some(t) if t.version > w.version => {
                // Superseded: something (an action before assignment, a reprioritisation) moved
                // the ticket on and published the work message for its new version. Nothing
                // is wrong with this one; it is simply no longer needed.
                tracing::debug!(ticket = %t.number, message_version = w.version, ticket_version = t.version, "superseded work message");
                metrics::counter!("switchboard_work_superseded_total", "stage" => stage.to_owned()).increment(1);
                settled[i] = Some(Outcome::Duplicate(Vec::new()));
            }
            Some(t) if t.version != w.version || !expected.contains(&t.state) => {
                settled[i] = Some(Outcome::Dead(format!(
                    "stale work message: ticket {} is at version {} in state {}, the message expected version {} in {}",
                    t.number,
                    t.version,
                    t.state,
                    w.version,
                    expected.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("/")
                )))
            }
            Some(t) => pending.push((i, w, t)),
        }
    }
    Ok(WorkBatch {
        settled,
        pending,
        copies,
        drains,
    })
}

/// Writes decisions (tickets, transitions, processed records) and returns the final outcome of
/// every message in the batch (`batch`, whose messages' trace contexts the outputs carry). `extra` are decisions no message asked for (queued tickets that
/// got an agent); their outputs are recorded with `extra_owner` (a message without a decision of
/// its own, such as a drain request) or else with the first decision's message, so a redelivery
/// re-publishes them too.
#[allow(clippy::too_many_arguments)]
pub async fn commit_decisions(
    tx: &Transaction<'_>,
    batch: &[Inbound],
    stage: &str,
    mut settled: Vec<Option<Outcome>>,
    decisions: Vec<(usize, String, Decision)>,
    extra: Vec<Decision>,
    extra_owner: Option<(usize, String)>,
    copies: &[(usize, usize)],
) -> Result<Vec<Outcome>, StoreError> {
    // A chain's own tickets stay with the chain, which writes each once at the end.
    let handoff = batch.first().and_then(Inbound::handoff);
    let ticket_refs: Vec<&Ticket> = decisions
        .iter()
        .map(|(_, _, d)| &d.ticket)
        .chain(extra.iter().map(|d| &d.ticket))
        .filter(|t| !handoff.is_some_and(|h| h.decided(t)))
        .collect();
    let written = tickets::update_tickets(tx, &ticket_refs).await?;
    // The first stage of a chain hands the tickets it wrote to the next (`chain`).
    for (i, _, d) in &decisions {
        if let Some(c) = batch[*i].chained.as_ref().filter(|c| c.head) {
            c.handoff.written(d.ticket.clone());
        }
    }
    if written.len() != ticket_refs.len() {
        return Err(StoreError::Conflict(format!(
            "{stage}: {} of {} tickets changed under us despite the row lock",
            ticket_refs.len() - written.len(),
            ticket_refs.len()
        )));
    }
    let transitions: Vec<&Transition> = decisions
        .iter()
        .map(|(_, _, d)| &d.transition)
        .chain(extra.iter().map(|d| &d.transition))
        .collect();
    tickets::insert_transitions(tx, &transitions).await?;
    let extra_out: Vec<Outgoing> = extra.iter().flat_map(Decision::outputs).collect();
    let mut records = Vec::with_capacity(decisions.len() + 1);
    let mut extra_pending = Some(extra_out);
    // A chain records what its first messages published once it knows all of it; the messages
    // it handed over need no record (see `chain`).
    let mut keep = |i: usize, key: String, out: &Vec<Outgoing>| match &batch[i].chained {
        Some(c) if c.head => c.handoff.defer_record(i, key),
        Some(_) => {}
        None => records.push((key, out.clone())),
    };
    if let Some((i, key)) = extra_owner {
        let mut out = extra_pending.take().unwrap_or_default();
        batch[i].stamp(&mut out);
        keep(i, key, &out);
        settled[i] = Some(Outcome::Done(out));
    }
    for (i, key, d) in &decisions {
        let mut out = d.outputs();
        if let Some(more) = extra_pending.take() {
            out.extend(more);
        }
        batch[*i].stamp(&mut out);
        keep(*i, key.clone(), &out);
        settled[*i] = Some(Outcome::Done(out));
    }
    if extra_pending.is_some_and(|e| !e.is_empty()) {
        return Err(StoreError::Conflict(format!(
            "{stage}: decisions without a message to record them with"
        )));
    }
    ledger::record_own(tx, stage, &records).await?;
    Ok(finish(settled, copies))
}

/// Copies inside one batch get the outcome of their first occurrence, as duplicates.
pub fn finish(mut settled: Vec<Option<Outcome>>, copies: &[(usize, usize)]) -> Vec<Outcome> {
    for &(i, j) in copies {
        settled[i] = Some(match &settled[j] {
            Some(Outcome::Done(out)) | Some(Outcome::Duplicate(out)) => Outcome::Duplicate(out.clone()),
            Some(other) => other.clone(),
            None => Outcome::Retry("first copy undecided".into()),
        });
    }
    settled
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::Retry("no decision".into())))
        .collect()
}
