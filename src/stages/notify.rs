//! Notify stage: events → the deliveries they call for (SPEC §5 notifications, seed 000
//! §(四)).
//!
//! Same shape as every stage: decode the CloudEvent → look up what planning needs (webhook
//! subscriptions, the customer's route, the assignee's email) → plan (pure,
//! `core::notify::plan`) → write the deliveries, surveys and follow-ups with the event's ledger
//! record in one transaction. Nothing is sent here: the deliver stage claims the rows, so a
//! crash between this decision and the send loses nothing, and a redelivered event finds its
//! ledger record and plans nothing twice.

use crate::contracts::StageName;
use crate::core::notify::{self, EventFacts, Inputs, Medium, Transport};
use crate::core::privacy::secret_digest;
use crate::runtime::runner::{Inbound, Outcome, Stage};
use crate::stages::{Context, finish};
use crate::store::StoreError;
use crate::store::{intake as intake_store, ledger, outbound};
use base64::Engine as _;
use deadpool_postgres::Transaction;
use std::collections::HashMap;

/// Where outbound messages point and come from.
#[derive(Debug, Clone)]
pub struct Reach {
    /// The domain Message-IDs are minted in; `None` when no SMTP server is configured.
    pub mail_domain: Option<String>,
    /// The base URL of the gateway as people reach it (desk links, survey links).
    pub public_url: String,
}

pub struct Notify {
    pub ctx: Context,
    pub reach: Reach,
}

/// The ledger key of an event the notify stage has planned for. The deliver stage reads it to
/// keep a ticket's deliveries in sequence order (`store::outbound::claim_due`).
pub fn ledger_key(event_id: &str) -> String {
    format!("notify:{event_id}")
}

/// A survey link's token: 32 random bytes, URL-safe base64. Only its SHA-256 is stored.
/// `None` when the operating system has no randomness to give.
pub fn survey_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl Stage for Notify {
    fn name(&self) -> &'static str {
        StageName::Notify.as_str()
    }

    async fn process(&self, tx: &Transaction<'_>, batch: &[Inbound]) -> Result<Vec<Outcome>, StoreError> {
        let policy = &self.ctx.policy;
        let mut settled: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut copies = Vec::new();
        let mut first: HashMap<String, usize> = HashMap::new();
        let mut events: Vec<(usize, EventFacts)> = Vec::new();
        for (i, m) in batch.iter().enumerate() {
            match EventFacts::decode(&m.routing_key, &m.data) {
                Err(e) => settled[i] = Some(Outcome::Dead(e.to_string())),
                Ok(e) => {
                    let key = ledger_key(&e.id);
                    if let Some(&j) = first.get(&key) {
                        copies.push((i, j));
                    } else {
                        first.insert(key, i);
                        events.push((i, e));
                    }
                }
            }
        }
        if events.is_empty() {
            return Ok(finish(settled, &copies));
        }
        let keys: Vec<String> = events.iter().map(|(_, e)| ledger_key(&e.id)).collect();
        // Lock each event's key before reading the ledger: a copy of the event in another
        // worker's batch waits here for that batch to commit, then finds its record (read
        // first, it would plan again and lose the race on the record).
        intake_store::lock_conversations(tx, &keys).await?;
        let done = ledger::lookup(tx, &keys).await?;
        events.retain(|(i, e)| {
            if done.contains_key(&ledger_key(&e.id)) {
                settled[*i] = Some(Outcome::Duplicate(Vec::new()));
                false
            } else {
                true
            }
        });
        if events.is_empty() {
            return Ok(finish(settled, &copies));
        }

        let subscriptions = outbound::subscriptions(tx).await?;
        let n = &policy.doc.notify;
        // A ticket's facts are read only when something will be sent about it: most events
        // (received, classified, …) call for nothing when nobody subscribed to them.
        let mut numbers: Vec<String> = events
            .iter()
            .filter(|(_, e)| {
                subscriptions
                    .iter()
                    .any(|s| s.events.iter().any(|p| notify::pattern_matches(p, &e.name)))
                    || notify::needs_customer(e, n)
                    || notify::needs_assignee(e, n)
                    || notify::needs_ticket(e, n)
            })
            .map(|(_, e)| e.number.clone())
            .collect();
        numbers.sort();
        numbers.dedup();
        let facts = outbound::ticket_facts(tx, &numbers).await?;

        let rules = policy.notify_rules();
        let mut planned = Vec::new();
        let mut thread_keys: Vec<(String, i64)> = Vec::new();
        let mut records = Vec::new();
        for (i, e) in &events {
            let span = tracing::info_span!("message", stage = StageName::Notify.as_str(), ticket = %e.number, message_id = %e.id);
            let fact = facts.get(&e.number);
            let customer = fact.filter(|_| notify::needs_customer(e, n)).map(|f| &f.route);
            let assignee: Vec<Medium> = fact
                .filter(|_| notify::needs_assignee(e, n))
                .and_then(|f| f.assignee_email.as_deref())
                .map(Medium::email)
                .into_iter()
                .collect();
            // Without randomness a link would be guessable: hold the batch and try again.
            let Some(token) = survey_token() else {
                return Err(StoreError::Conflict("no randomness for a survey token".into()));
            };
            let plan = span.in_scope(|| {
                notify::plan(
                    e,
                    &Inputs {
                        rules: &rules,
                        subscriptions: &subscriptions,
                        customer,
                        assignee: &assignee,
                        mail_domain: self.reach.mail_domain.as_deref(),
                        public_url: &self.reach.public_url,
                        survey_token: &token,
                    },
                )
            });
            let ticket_id = fact.map(|f| f.id);
            if let (Some((number, dimensions)), Some(f)) = (&plan.survey, fact) {
                outbound::insert_survey(tx, number, f.id, &f.route.channel, dimensions, &secret_digest(&token)).await?;
            }
            if let (Some((key, reason, due)), Some(f)) = (&plan.follow_up, fact) {
                let team = e.ticket.get("team").and_then(|t| t.as_str());
                outbound::insert_follow_up(tx, key, f.id, &e.number, team, reason, *due).await?;
            }
            for d in plan.deliveries {
                // A customer's reply to our email names its Message-ID: register it, so the
                // reply threads onto this ticket.
                if d.transport == Transport::Email
                    && d.kind == notify::Kind::Customer
                    && let Some(id) = ticket_id
                {
                    thread_keys.push((format!("msg:{}", d.msg_id), id));
                }
                metrics::counter!("switchboard_deliveries_planned_total", "kind" => d.kind.as_str(), "transport" => d.transport.as_str()).increment(1);
                planned.push((d, ticket_id, e.number.clone(), e.seq));
            }
            records.push((ledger_key(&e.id), Vec::new()));
            settled[*i] = Some(Outcome::Done(Vec::new()));
        }
        let rows: Vec<_> = planned
            .iter()
            .map(|(d, t, number, seq)| (d, *t, number.as_str(), *seq))
            .collect();
        outbound::insert_deliveries(tx, &rows, chrono::Utc::now()).await?;
        if !thread_keys.is_empty() {
            let (k, ids): (Vec<String>, Vec<i64>) = thread_keys.into_iter().unzip();
            intake_store::register_thread_keys(tx, &k, &ids).await?;
        }
        ledger::record_own(tx, self.name(), &records).await?;
        Ok(finish(settled, &copies))
    }
}
