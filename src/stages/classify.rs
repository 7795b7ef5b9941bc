//! Classify stage: the category of a received ticket, with the reasons for it.

use super::{Because, Context, Decision, commit_decisions, prepare_work};
use crate::contracts::StageName;
use crate::core::state::TicketState;
use crate::runtime::runner::{Inbound, Outcome, Stage};
use crate::store::StoreError;
use deadpool_postgres::Transaction;
use serde_json::json;

pub struct Classify {
    pub ctx: Context,
}

impl Stage for Classify {
    fn name(&self) -> &'static str {
        StageName::Classify.as_str()
    }

    async fn process(&self, tx: &Transaction<'_>, batch: &[Inbound]) -> Result<Vec<Outcome>, StoreError> {
        {
            let work = prepare_work(tx, batch, self.name(), &[TicketState::Received], false).await?;
            let policy = &self.ctx.policy;
            let mut decisions = Vec::with_capacity(work.pending.len());
            for (i, msg, t) in work.pending {
                let _span =
                    tracing::info_span!("message", stage = StageName::Classify.as_str(), ticket = %t.number, message_id = %msg.message_id()).entered();
                // In a chain, what the text says about the priority is kept for the prioritize
                // stage that follows, so it does not search and score the text again (the chain
                // holds the ticket's row locked until it commits: the text cannot change).
                let (c, evidence) = policy
                    .triage
                    .classify_keeping_evidence(t.subject.as_deref(), &t.body, &t.channel);
                if let (Some(handoff), Some(evidence)) = (batch[i].handoff(), evidence) {
                    handoff.keep_priority_evidence(t.id, evidence);
                }
                let mut after = t.clone();
                after.state = TicketState::Classified;
                after.category = Some(c.category.clone());
                after.category_confidence = Some(c.confidence);
                after.language = Some(c.language.clone());
                after.category_candidates = c.candidates.clone();
                after.needs_triage = c.needs_triage;
                let mut reason = format!("category {} ({:.0}% confidence)", c.category, c.confidence * 100.0);
                if c.needs_triage {
                    reason.push_str("; needs triage: a person chooses the category");
                }
                let details = json!({
                    "category": c.category, "confidence": c.confidence, "language": c.language, "reasons": c.reasons,
                    "candidates": c.candidates, "needs_triage": c.needs_triage,
                });
                let why = Because {
                    actor: StageName::Classify.as_str(),
                    reason,
                    details,
                };
                let d = Decision::new(&t, after, why, policy, "classified", StageName::Classify.next());
                decisions.push((i, msg.message_id(), d));
            }
            commit_decisions(
                tx,
                batch,
                self.name(),
                work.settled,
                decisions,
                Vec::new(),
                None,
                &work.copies,
            )
            .await
        }
    }
}
