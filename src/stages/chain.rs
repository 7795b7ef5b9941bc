//! Chained stages: consecutive pipeline stages run by one process hand each ticket on in memory
//! and commit once, the way a stream processor chains operators that need no repartitioning.
//!
//! A [`Chain`] consumes its first stage's queue. For a batch it runs the first stage, takes the
//! work messages it produced for the next stage out of the outputs, gives them to that stage as
//! if they had been delivered, and so on, all in the batch's one transaction. What a ticket goes
//! through is unchanged: each stage writes its transition, its event and its processed-message
//! record exactly as it does from its own queue, so a redelivery of the first message finds the
//! records and re-publishes, and a copy of a handed-over work message found on a queue later is
//! a duplicate. What goes away is a commit, a persistent publish with its confirm, a delivery
//! and an ack per hop.
//!
//! A handed-over message a later stage cannot take (dead, or a lost race to retry) is published
//! to that stage's queue after all, so its own consumer settles it exactly as it would have
//! settled the message without the chain. The stages after the first keep their own consumers:
//! work published by others (a sweep, an action before assignment, a drain) still arrives there.

use super::{Context, assign::Assign, classify::Classify, intake::Intake, prioritize::Prioritize};
use crate::contracts::{Exchange, Outgoing, StageName};
use crate::runtime::runner::{Inbound, Outcome, Stage};
use crate::store::StoreError;
use deadpool_postgres::Transaction;

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
fn handed_over(m: &Outgoing, work_exchange: &str, from: &Inbound) -> Inbound {
    Inbound {
        tag: 0,
        exchange: work_exchange.to_owned(),
        routing_key: m.routing_key.clone(),
        redelivered: false,
        properties: crate::bus::properties(m),
        data: serde_json::to_vec(&m.body).unwrap_or_default(),
        traceparent: from.traceparent.clone(),
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
        let mut outcomes = first.process(tx, batch).await?;
        for link in rest {
            let stage = link.stage().as_str();
            // (outcome index, the work message handed over) for each message given to `link`.
            let mut handed: Vec<(usize, Outgoing)> = Vec::new();
            let mut inputs: Vec<Inbound> = Vec::new();
            for (i, outcome) in outcomes.iter_mut().enumerate() {
                let Outcome::Done(out) = outcome else { continue };
                let (to_link, keep): (Vec<Outgoing>, Vec<Outgoing>) = std::mem::take(out)
                    .into_iter()
                    .partition(|m| m.exchange == Exchange::Work && m.routing_key == stage);
                *out = keep;
                for m in to_link {
                    inputs.push(handed_over(&m, &self.work_exchange, &batch[i]));
                    handed.push((i, m));
                }
            }
            if inputs.is_empty() {
                break;
            }
            let results = link.process(tx, &inputs).await?;
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
        Ok(outcomes)
    }
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
