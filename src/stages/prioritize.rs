//! Prioritize stage: urgency × impact → priority, then the SLA due times it implies.

use super::{Because, Context, Decision, commit_decisions, prepare_work};
use crate::contracts::StageName;
use crate::core::classify::PriorityInput;
use crate::core::state::TicketState;
use crate::runtime::runner::{Inbound, Outcome, Stage};
use crate::store::StoreError;
use deadpool_postgres::Transaction;
use serde_json::json;

pub struct Prioritize {
    pub ctx: Context,
}

impl Stage for Prioritize {
    fn name(&self) -> &'static str {
        StageName::Prioritize.as_str()
    }

    async fn process(&self, tx: &Transaction<'_>, batch: &[Inbound]) -> Result<Vec<Outcome>, StoreError> {
        {
            let work = prepare_work(tx, batch, self.name(), &[TicketState::Classified], false).await?;
            let policy = &self.ctx.policy;
            let mut settled = work.settled;
            let mut decisions = Vec::with_capacity(work.pending.len());
            for (i, msg, t) in work.pending {
                let _span =
                    tracing::info_span!("message", stage = StageName::Prioritize.as_str(), ticket = %t.number, message_id = %msg.message_id()).entered();
                let category = t.category.clone().unwrap_or_default();
                let evidence = batch[i].handoff().and_then(|h| h.take_priority_evidence(t.id));
                let input = PriorityInput {
                    subject: t.subject.as_deref(),
                    body: &t.body,
                    category: &category,
                    tier: t.customer.tier(),
                    channel: &t.channel,
                };
                let mut p = policy.triage.prioritize_with(&input, evidence.as_ref());
                // A priority set before this stage ran (a supervisor's `set_priority` while the
                // ticket was still being classified) stands: people outrank the rules.
                let kept = t
                    .priority
                    .clone()
                    .filter(|set| policy.doc.priority.levels.contains(set));
                if let Some(set) = &kept {
                    p.reasons.push(format!(
                        "kept the priority {set} set before prioritisation (rules said {})",
                        p.priority
                    ));
                    p.priority = set.clone();
                }
                let Some(due) =
                    policy
                        .doc
                        .sla
                        .due(policy.calendar(), &category, &p.priority, &t.channel, t.received_at)
                else {
                    settled[i] = Some(Outcome::Dead(format!(
                        "no SLA rule covers category {category:?} at priority {:?}",
                        p.priority
                    )));
                    continue;
                };
                let mut after = t.clone();
                after.state = TicketState::Prioritized;
                after.priority = Some(p.priority.clone());
                after.sla_rule = Some(due.rule.clone());
                after.first_response_due = Some(due.first_response_due);
                after.resolution_due = Some(due.resolution_due);
                let reason = format!(
                    "priority {} (urgency {}, impact {}); SLA rule {}",
                    p.priority, p.urgency, p.impact, due.rule
                );
                let details = json!({
                    "priority": p.priority, "urgency": p.urgency, "impact": p.impact, "reasons": p.reasons,
                    "sla_rule": due.rule, "first_response_due": due.first_response_due, "resolution_due": due.resolution_due,
                });
                let why = Because {
                    actor: StageName::Prioritize.as_str(),
                    reason,
                    details,
                };
                let d = Decision::new(&t, after, why, policy, "prioritized", StageName::Prioritize.next());
                decisions.push((i, msg.message_id(), d));
            }
            commit_decisions(
                tx,
                batch,
                self.name(),
                settled,
                decisions,
                Vec::new(),
                None,
                &work.copies,
            )
            .await
        }
    }
}
