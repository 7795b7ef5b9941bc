//! Chained stages: consecutive pipeline stages run by one process hand each ticket on in memory
//! and commit once, the way a stream processor chains operators that need no repartitioning.
//!
//! A [`Chain`] consumes its first stage's queue. For a batch it runs the first stage, takes the
//! work messages it produced for the next stage out of the outputs, gives them to that stage as
//! if they had been delivered, and so on, all in the batch's one transaction. The tickets go
//! along in memory ([`Handoff`]): a later stage neither locks nor reads them again, and leaves
//! its decision there instead of writing it, so each ticket's row is written once more at the
//! end, not once per stage (every write of a row is a new row version with an entry in each of
//! the table's indexes). Each stage still writes its own transition and publishes its own event.
//! The processed record of the message the chain took from the queue holds everything the chain
//! published for it, so a redelivery re-publishes all of it; the handed-over work messages have
//! no record of their own, and need none: they were never on a queue, and a copy of one (a
//! sweep, a later copy of the request) finds the ticket at a newer version and is superseded.
//! What goes away per hop is a commit, a persistent publish with its confirm, a delivery and an
//! ack, a row lock and read, a row version, and a processed record.
//!
//! A handed-over message a later stage cannot take (dead, or a lost race to retry) is published
//! to that stage's queue after all, so its own consumer settles it exactly as it would have
//! settled the message without the chain. The stages after the first keep their own consumers:
//! work published by others (a sweep, an action before assignment, a drain) still arrives there.

use super::{Context, assign::Assign, classify::Classify, intake::Intake, prioritize::Prioritize};
use crate::contracts::{Exchange, Outgoing, StageName};
use crate::core::ticket::Ticket;
use crate::runtime::runner::{Chained, Handoff, Inbound, Outcome, Stage, Unwritten};
use crate::store::{self, StoreError};
use deadpool_postgres::Transaction;
use futures::FutureExt;
use std::sync::Arc;

/// One stage of a chain.
pub enum Link {
    Intake(Intake),
    Classify(Classify),
    Prioritize(Prioritize),
    Assign(Assign),
}

impl Link {
    /// The implementation of `stage`, if it is one of the pipeline's chainable stages.
    pub fn of(stage: StageName, ctx: &Context) -> Option<Link> {
        let ctx = ctx.clone();
        Some(match stage {
            StageName::Intake => Link::Intake(Intake { ctx }),
            StageName::Classify => Link::Classify(Classify { ctx }),
            StageName::Prioritize => Link::Prioritize(Prioritize { ctx }),
            StageName::Assign => Link::Assign(Assign { ctx }),
            _ => return None,
        })
    }

    fn stage(&self) -> StageName {
        match self {
            Link::Intake(_) => StageName::Intake,
            Link::Classify(_) => StageName::Classify,
            Link::Prioritize(_) => StageName::Prioritize,
            Link::Assign(_) => StageName::Assign,
        }
    }

    async fn process(&self, tx: &Transaction<'_>, batch: &[Inbound]) -> Result<Vec<Outcome>, StoreError> {
        match self {
            Link::Intake(s) => s.process(tx, batch).await,
            Link::Classify(s) => s.process(tx, batch).await,
            Link::Prioritize(s) => s.process(tx, batch).await,
            Link::Assign(s) => s.process(tx, batch).await,
        }
    }
}

/// Consecutive pipeline stages run as one: see the module documentation.
pub struct Chain {
    links: Vec<Link>,
    work_exchange: String,
}

impl Chain {
    /// The chain of `stages` (consecutive: each the `next` of the one before), or `None` when
    /// they are not.
    pub fn new(stages: &[StageName], ctx: &Context) -> Option<Chain> {
        if stages.is_empty() || stages.windows(2).any(|w| w[0].next() != Some(w[1])) {
            return None;
        }
        let links = stages.iter().map(|&s| Link::of(s, ctx)).collect::<Option<Vec<_>>>()?;
        Some(Chain {
            links,
            work_exchange: ctx.topo.exchange(Exchange::Work),
        })
    }
}

/// The runs of consecutive pipeline stages among `stages` that a process can chain: each run's
/// first stage is one whose predecessor is not among them. Runs of one stage are left out.
pub fn runs(stages: &[StageName]) -> Vec<Vec<StageName>> {
    let has = |s: StageName| stages.contains(&s);
    let mut out = Vec::new();
    for head in StageName::PIPELINE {
        let preceded = StageName::PIPELINE.iter().any(|p| p.next() == Some(head) && has(*p));
        if !has(head) || preceded {
            continue;
        }
        let mut run = vec![head];
        while let Some(next) = run.last().and_then(|s| s.next()).filter(|s| has(*s)) {
            run.push(next);
        }
        if run.len() > 1 {
            out.push(run);
        }
    }
    out
}

/// A work message handed to the next stage as if the broker had delivered it, in the trace of
/// the message that led to it.
fn handed_over(m: &Outgoing, work_exchange: &str, from: &Inbound, handoff: &Arc<Handoff>) -> Inbound {
    Inbound {
        tag: 0,
        exchange: work_exchange.to_owned(),
        routing_key: m.routing_key.clone(),
        redelivered: false,
        properties: crate::bus::properties(m),
        data: m.body.as_bytes().to_vec(),
        traceparent: from.traceparent.clone(),
        chained: Some(Chained {
            handoff: handoff.clone(),
            head: false,
        }),
    }
}

impl Chain {
    /// Runs one later stage of the chain behind a savepoint. `None`: it failed for good (an
    /// error that retrying will not cure, or a panic); its writes and its decisions in the
    /// handoff are undone, and the transaction goes on without them. A transient error (a
    /// deadlock, the database going away) fails the whole transaction, to be retried.
    async fn run_link(
        &self,
        link: &Link,
        tx: &Transaction<'_>,
        inputs: &[Inbound],
        handoff: &Handoff,
    ) -> Result<Option<Vec<Outcome>>, StoreError> {
        store::savepoint(tx, "chain_link").await?;
        handoff.begin_stage();
        let failure = match std::panic::AssertUnwindSafe(link.process(tx, inputs))
            .catch_unwind()
            .await
        {
            Ok(Ok(results)) => {
                handoff.keep_stage();
                store::release_savepoint(tx, "chain_link").await?;
                return Ok(Some(results));
            }
            Ok(Err(e)) if e.is_transient() => return Err(e),
            Ok(Err(e)) => e.to_string(),
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".into()),
        };
        handoff.drop_stage();
        store::rollback_to_savepoint(tx, "chain_link").await?;
        tracing::warn!(
            stage = link.stage().as_str(),
            error = %crate::core::privacy::redact_personal(&failure),
            "a chained stage failed; its tickets go to its queue"
        );
        Ok(None)
    }
}

impl Stage for Chain {
    fn name(&self) -> &'static str {
        self.links.first().map(|l| l.stage().as_str()).unwrap_or("chain")
    }

    async fn process(&self, tx: &Transaction<'_>, batch: &[Inbound]) -> Result<Vec<Outcome>, StoreError> {
        let Some((first, rest)) = self.links.split_first() else {
            return Ok(Vec::new());
        };
        let handoff = Arc::new(Handoff::default());
        let heads: Vec<Inbound> = batch
            .iter()
            .map(|m| Inbound {
                chained: Some(Chained {
                    handoff: handoff.clone(),
                    head: true,
                }),
                ..m.clone()
            })
            .collect();
        let mut outcomes = first.process(tx, &heads).await?;
        for link in rest {
            let stage = link.stage().as_str();
            // (outcome index, the work message handed over) for each message given to `link`.
            let mut handed: Vec<(usize, Outgoing)> = Vec::new();
            let mut inputs: Vec<Inbound> = Vec::new();
            for (i, outcome) in outcomes.iter_mut().enumerate() {
                let Outcome::Done(out) = outcome else { continue };
                let (to_link, keep): (Vec<Outgoing>, Vec<Outgoing>) = std::mem::take(out).into_iter().partition(|m| {
                    m.exchange == Exchange::Work && m.routing_key == stage && handed_ticket(m, &handoff)
                });
                *out = keep;
                for m in to_link {
                    inputs.push(handed_over(&m, &self.work_exchange, &batch[i], &handoff));
                    handed.push((i, m));
                }
            }
            if inputs.is_empty() {
                break;
            }
            let results = match self.run_link(link, tx, &inputs, &handoff).await? {
                Some(results) => results,
                None => {
                    // The stage failed on these tickets for good: they go to its queue, where its
                    // own consumer meets the same failure and dead-letters only its work message,
                    // as it would have without the chain; the earlier stages' work stands.
                    for (i, message) in handed {
                        metrics::counter!("switchboard_chained_total", "stage" => stage, "outcome" => "handed_back")
                            .increment(1);
                        if let Outcome::Done(out) = &mut outcomes[i] {
                            out.push(message);
                        }
                    }
                    break;
                }
            };
            if results.len() != handed.len() {
                return Err(StoreError::Conflict(format!(
                    "chain: the {stage} stage settled {} of {} messages handed to it",
                    results.len(),
                    handed.len()
                )));
            }
            for ((i, message), result) in handed.into_iter().zip(results) {
                let label = match &result {
                    Outcome::Done(_) => "done",
                    Outcome::Duplicate(_) => "duplicate",
                    Outcome::Dead(_) | Outcome::Retry(_) => "handed_back",
                };
                metrics::counter!("switchboard_chained_total", "stage" => stage, "outcome" => label).increment(1);
                let Outcome::Done(out) = &mut outcomes[i] else { continue };
                match result {
                    Outcome::Done(more) | Outcome::Duplicate(more) => out.extend(more),
                    // Published after all: the stage's own consumer settles it as it would have.
                    Outcome::Dead(_) | Outcome::Retry(_) => out.push(message),
                }
            }
        }
        // Each ticket once, as the chain left it; then each first message's processed record,
        // with everything the chain published for it, so a redelivery re-publishes all of it.
        let Unwritten { tickets, records } = handoff.unwritten();
        let rows: Vec<(&Ticket, i32)> = tickets.iter().map(|(t, v)| (t, *v)).collect();
        let written = store::tickets::update_tickets_from(tx, &rows).await?;
        if written.len() != rows.len() {
            return Err(StoreError::Conflict(format!(
                "chain: {} of {} tickets changed under us despite the row lock",
                rows.len() - written.len(),
                rows.len()
            )));
        }
        let entries: Vec<(String, &[Outgoing])> = records
            .into_iter()
            .filter_map(|(i, key)| match &outcomes[i] {
                Outcome::Done(out) => Some((key, out.as_slice())),
                _ => None,
            })
            .collect();
        store::ledger::record_own(tx, self.name(), &entries).await?;
        Ok(outcomes)
    }
}

/// Whether `m` is about a ticket the chain holds: only those are handed on in memory (a work
/// message about any other ticket goes out on the queue as usual).
fn handed_ticket(m: &Outgoing, handoff: &Handoff) -> bool {
    #[derive(serde::Deserialize)]
    struct About {
        ticket_id: Option<i64>,
    }
    m.body
        .decode::<About>()
        .ok()
        .and_then(|a| a.ticket_id)
        .is_some_and(|id| handoff.holds(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use StageName::*;

    #[test]
    fn runs_are_the_consecutive_pipeline_stages_of_a_process() {
        assert_eq!(runs(&StageName::ALL), vec![vec![Intake, Classify, Prioritize, Assign]]);
        assert_eq!(
            runs(&[Intake, Classify, Prioritize]),
            vec![vec![Intake, Classify, Prioritize]]
        );
        assert_eq!(
            runs(&[Classify, Assign, Prioritize]),
            vec![vec![Classify, Prioritize, Assign]]
        );
        assert_eq!(runs(&[Intake, Prioritize, Assign]), vec![vec![Prioritize, Assign]]);
        assert!(runs(&[Intake, Prioritize]).is_empty());
        assert!(runs(&[Intake, Lifecycle, Notify]).is_empty());
    }
}
