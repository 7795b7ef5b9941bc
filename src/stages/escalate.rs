//! Escalate stage: fired SLA timers become breaches and escalation steps (SPEC §5).
//!
//! A breach timer records `sla.breached` and starts the ladder the SLA rule names; a ladder
//! timer fires the next step. Each step is a transition and a `ticket.escalated` event, and
//! schedules the next one; the ladder stops when the target is met or the escalation is
//! acknowledged.

use crate::contracts::StageName;
use crate::contracts::events;
use crate::contracts::timer::{self, TimerMessage};
use crate::core::escalation::Fired;
use crate::core::sla::{ClockState, SlaFacts, Target};
use crate::core::ticket::{Ticket, Transition};
use crate::runtime::runner::{Inbound, Outcome, Stage};
use crate::stages::actions::{fired_of, resolve_notify};
use crate::stages::{Applied, Context, finish, once};
use crate::store::locks::lock_by_id;
use crate::store::sla::{self, pauses_tx};
use crate::store::tickets;
use crate::store::{StoreError, timers};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

use serde_json::json;
use tracing::Instrument;

pub struct Escalate {
    pub ctx: Context,
}

impl Stage for Escalate {
    fn name(&self) -> &'static str {
        StageName::Escalate.as_str()
    }

    async fn process(&self, tx: &Transaction<'_>, batch: &[Inbound]) -> Result<Vec<Outcome>, StoreError> {
        let mut settled: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut copies = Vec::new();
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, m) in batch.iter().enumerate() {
            let msg: TimerMessage = match serde_json::from_slice(&m.data) {
                Ok(t) => t,
                Err(e) => {
                    settled[i] = Some(Outcome::Dead(format!("not a timer message: {e}")));
                    continue;
                }
            };
            let key = msg.message_id();
            if let Some(&j) = seen.get(&key) {
                copies.push((i, j));
                continue;
            }
            seen.insert(key.clone(), i);
            let Some(ticket) = lock_by_id(tx, msg.ticket_id).await? else {
                settled[i] = Some(Outcome::Dead(format!(
                    "ticket {} (id {}) does not exist",
                    msg.number, msg.ticket_id
                )));
                continue;
            };
            let span = tracing::info_span!("message", stage = StageName::Escalate.as_str(), ticket = %ticket.number, message_id = %key, purpose = %msg.purpose);
            let applied = once(tx, self.name(), &key, || async {
                let mut fired = self.fire(tx, &ticket, &msg).instrument(span).await;
                if let Ok(Ok(outputs)) = &mut fired {
                    m.stamp(outputs);
                }
                fired
            })
            .await?;
            settled[i] = Some(match applied {
                Applied::Done(outputs) => Outcome::Done(outputs),
                Applied::Duplicate(outputs) => Outcome::Duplicate(outputs),
                Applied::Refused(reason) => Outcome::Dead(reason),
            });
        }
        Ok(finish(settled, &copies))
    }
}

impl Escalate {
    /// Outer error: database. Inner error: the message is unusable (dead-letter reason).
    async fn fire(
        &self,
        tx: &Transaction<'_>,
        t: &Ticket,
        msg: &TimerMessage,
    ) -> Result<Result<Vec<crate::contracts::Outgoing>, String>, StoreError> {
        let policy = &self.ctx.policy;
        let now = Utc::now();
        let Some((kind, target_name)) = msg.purpose.split_once(':') else {
            return Ok(Err(format!("unknown timer purpose {:?}", msg.purpose)));
        };
        let Some(target) = Target::parse(target_name) else {
            return Ok(Err(format!("unknown SLA target {target_name:?}")));
        };
        let facts = SlaFacts::of(t, pauses_tx(tx, t.id).await?);
        let clock = policy
            .doc
            .sla
            .clocks(policy.calendar(), &facts, now)
            .into_iter()
            .find(|c| c.target == target);
        let breached = clock.as_ref().is_some_and(|c| c.state == ClockState::Breached);
        let escalation = sla::escalation(tx, t.id, target.as_str()).await?;
        let mut after = t.clone();
        let mut transitions = Vec::new();
        let mut outputs = Vec::new();
        let mut record = |after: &mut Ticket, event: &'static str, reason: String, details: serde_json::Value| {
            after.version += 1;
            let tr = Transition {
                ticket_id: t.id,
                seq: after.version,
                from: Some(after.state),
                to: after.state,
                at: now,
                actor: StageName::Escalate.as_str().into(),
                reason,
                policy_version: policy.version().to_owned(),
                details,
            };
            outputs.push(events::ticket_event(after, event, &tr));
            transitions.push(tr);
        };

        let rule = policy.doc.sla.rule_for(
            t.category.as_deref().unwrap_or(""),
            t.priority.as_deref().unwrap_or(""),
            &t.channel,
        );
        // A milestone may climb its own ladder; every other target climbs the rule's.
        let ladder_name = rule.and_then(|r| r.ladder_for(target)).map(str::to_owned);
        let ladder = ladder_name.as_ref().and_then(|n| policy.doc.escalation.ladders.get(n));
        let lateness = (msg.fired_at - msg.due_at).num_milliseconds() as f64 / 1000.0;
        metrics::histogram!("switchboard_timer_lateness_seconds", "kind" => kind.to_owned()).record(lateness.max(0.0));

        let first_due = clock.as_ref().and_then(|c| c.due).unwrap_or(msg.due_at);
        // The next update recurs (every 24 h without news, 004-25): the lapse that counts now is
        // the latest one passed, and a later lapse than the one recorded is a breach of its own,
        // which tells the customer again and starts the ladder over.
        let due_now = if target == Target::NextUpdate {
            policy.doc.sla.next_update_lapse(policy.calendar(), first_due, now)
        } else {
            first_due
        };
        let new_lapse =
            |e: &crate::store::sla::Escalation| target == Target::NextUpdate && breached && due_now > e.breached_at;
        let (breached_at, last): (DateTime<Utc>, Option<Fired>) = match (kind, escalation) {
            (timer::BREACH, escalation) => {
                // A lapse already on record: the next update's timer watches the lapse after it
                // (a timer moved back, by an assignment say, must not end the recurrence).
                if let Some(e) = escalation.as_ref().filter(|e| !new_lapse(e)) {
                    if target == Target::NextUpdate && breached {
                        self.watch_next_lapse(tx, t.id, target, e.breached_at.max(due_now))
                            .await?;
                    }
                    return Ok(Ok(Vec::new()));
                }
                if !breached {
                    // Met, paused or moved since the timer was set: nothing to do.
                    return Ok(Ok(Vec::new()));
                }
                let due = due_now;
                let earlier = escalation.map(|e| e.breached_at);
                let mut details = json!({ "target": target, "due": due, "late_by_seconds": (now - due).num_seconds(), "sla_rule": rule.map(|r| &r.name) });
                if let Some(since) = earlier {
                    details["lapse_since"] = json!(since);
                }
                let again = if earlier.is_some() { " again" } else { "" };
                record(
                    &mut after,
                    "sla.breached",
                    format!(
                        "SLA target {} missed{again} (due {})",
                        target.as_str(),
                        due.to_rfc3339()
                    ),
                    details,
                );
                // By team too (`none` before routing, as the open-tickets gauge): the breaches alert is per team.
                let team = t.team.clone().unwrap_or_else(|| "none".to_owned());
                metrics::counter!("switchboard_sla_breaches_total", "target" => target.as_str(), "team" => team)
                    .increment(1);
                let ladder = ladder_name.as_deref().unwrap_or_default();
                if earlier.is_some() {
                    sla::rearm_breach(tx, t.id, target.as_str(), ladder, due).await?;
                } else {
                    sla::record_breach(tx, t.id, target.as_str(), ladder, due).await?;
                }
                self.watch_next_lapse(tx, t.id, target, due).await?;
                (due, None)
            }
            (timer::ESCALATE, None) => {
                return Ok(Err(format!(
                    "no escalation for target {} on ticket {}",
                    target.as_str(),
                    t.number
                )));
            }
            (timer::ESCALATE, Some(e)) => {
                if e.acknowledged_at.is_some() || e.stopped_at.is_some() {
                    return Ok(Ok(Vec::new()));
                }
                if !breached {
                    sla::stop_unbreached(tx, t.id, target.as_str(), now).await?;
                    return Ok(Ok(Vec::new()));
                }
                (e.breached_at, fired_of(e.last_step, e.last_repeat, e.last_fired_at))
            }
            _ => return Ok(Err(format!("unknown timer purpose {:?}", msg.purpose))),
        };

        let Some(ladder) = ladder else {
            // A breach without a ladder is still recorded and published.
            return Ok(Ok(self.finish(tx, t, after, transitions, outputs).await?));
        };
        // Fire every step whose time has come (normally one), then schedule the next.
        let cal = policy.calendar();
        let mut last = last;
        while let Some(next) = ladder.next_step(breached_at, last.as_ref(), cal) {
            if next.due > now {
                timers::set(
                    tx,
                    &[(
                        t.id,
                        timers::escalate_purpose(target.as_str()),
                        next.due,
                        json!({ "step": next.step, "repeat": next.repeat }),
                    )],
                )
                .await?;
                break;
            }
            let who = resolve_notify(policy, t, &next.notify);
            record(
                &mut after,
                "escalated",
                format!(
                    "{} missed: escalated to {who} ({}, step {}{})",
                    target.as_str(),
                    next.notify,
                    next.step + 1,
                    if next.repeat > 0 {
                        format!(", reminder {}", next.repeat)
                    } else {
                        String::new()
                    }
                ),
                json!({ "target": target, "ladder": ladder_name, "step": next.step + 1, "repeat": next.repeat, "notify": next.notify, "notified": who }),
            );
            metrics::counter!("switchboard_escalations_total", "target" => target.as_str()).increment(1);
            sla::record_step(
                tx,
                t.id,
                target.as_str(),
                next.step as i32,
                next.repeat as i32,
                now,
                &who,
            )
            .await?;
            last = Some(Fired {
                step: next.step,
                repeat: next.repeat,
                at: now,
            });
        }
        Ok(Ok(self.finish(tx, t, after, transitions, outputs).await?))
    }

    /// After a lapse of the next update is recorded, its breach timer watches the next one.
    async fn watch_next_lapse(
        &self,
        tx: &Transaction<'_>,
        ticket_id: i64,
        target: Target,
        due: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if target != Target::NextUpdate {
            return Ok(());
        }
        let policy = &self.ctx.policy;
        let next = policy.doc.sla.next_update_after(policy.calendar(), due);
        timers::set(
            tx,
            &[(
                ticket_id,
                timers::breach_purpose(target.as_str()),
                next,
                json!({ "target": target }),
            )],
        )
        .await
    }

    async fn finish(
        &self,
        tx: &Transaction<'_>,
        t: &Ticket,
        after: Ticket,
        transitions: Vec<Transition>,
        outputs: Vec<crate::contracts::Outgoing>,
    ) -> Result<Vec<crate::contracts::Outgoing>, StoreError> {
        if transitions.is_empty() {
            return Ok(outputs);
        }
        let n = tickets::bump_version(tx, t.id, t.version, after.version).await?;
        if n != 1 {
            return Err(StoreError::Conflict(format!(
                "ticket {} changed under the lock",
                t.number
            )));
        }
        let refs: Vec<&Transition> = transitions.iter().collect();
        crate::store::tickets::insert_transitions(tx, &refs).await?;
        let mut outputs = outputs;
        // A breach before assignment (a customer wrote again, and a chat's first reply is due
        // in seconds) moves the version on.
        outputs.extend(super::pending_step(&after));
        Ok(outputs)
    }
}
