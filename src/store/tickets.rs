//! Batched ticket reads and writes for the stages: one statement per batch, not per message.

use super::{Db, StoreError};
use crate::core::customer::{Customer, Tier};
use crate::core::state::TicketState;
use crate::core::ticket::{Ticket, Transition};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::{GenericClient, Row};

pub const TICKET_COLUMNS: &str = "id, number, channel, channel_message_id, customer, subject, body, language, category, \
     category_confidence, priority, state, team, assignee, sla_rule, first_response_due, resolution_due, \
     received_at, assigned_at, version, first_responded_at, last_update_at, resolved_at, closed_at, \
     sla_restarted_at, resolution, rating, rating_comment, supervisor, due_overrides, needs_triage, category_candidates, milestones, record, confirmation";

pub fn ticket_from_row(r: &Row) -> Result<Ticket, StoreError> {
    let state: &str = r.get("state");
    let customer: serde_json::Value = r.get("customer");
    let number: String = r.get("number");
    Ok(Ticket {
        id: r.get("id"),
        state: TicketState::parse(state)
            .ok_or_else(|| StoreError::Conflict(format!("ticket {number} has unknown state {state:?}")))?,
        customer: serde_json::from_value::<Customer>(customer)
            .map_err(|e| StoreError::Conflict(format!("ticket {number} has an unreadable customer: {e}")))?,
        number,
        channel: r.get("channel"),
        channel_message_id: r.get("channel_message_id"),
        subject: r.get("subject"),
        body: r.get("body"),
        language: r.get("language"),
        category: r.get("category"),
        category_confidence: r.get("category_confidence"),
        category_candidates: r
            .get::<_, Option<serde_json::Value>>("category_candidates")
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default(),
        needs_triage: r.get("needs_triage"),
        priority: r.get("priority"),
        team: r.get("team"),
        assignee: r.get("assignee"),
        sla_rule: r.get("sla_rule"),
        first_response_due: r.get("first_response_due"),
        resolution_due: r.get("resolution_due"),
        received_at: r.get("received_at"),
        assigned_at: r.get("assigned_at"),
        version: r.get("version"),
        life: crate::core::ticket::Progress {
            first_responded_at: r.get("first_responded_at"),
            last_update_at: r.get("last_update_at"),
            resolved_at: r.get("resolved_at"),
            closed_at: r.get("closed_at"),
            sla_restarted_at: r.get("sla_restarted_at"),
            resolution: r.get("resolution"),
            rating: r.get("rating"),
            rating_comment: r.get("rating_comment"),
            supervisor: r.get("supervisor"),
            due_overrides: r
                .get::<_, Option<serde_json::Value>>("due_overrides")
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            milestones: r
                .get::<_, Option<serde_json::Value>>("milestones")
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            // A record or confirmation this build cannot read (written by a newer one) shows
            // as empty rather than making the ticket unreadable.
            record: r
                .get::<_, Option<serde_json::Value>>("record")
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            confirmation: r
                .get::<_, Option<serde_json::Value>>("confirmation")
                .and_then(|v| serde_json::from_value(v).ok()),
        },
    })
}

/// Reads tickets without locking them (to learn which agents a batch will need before taking
/// the locks in order).
pub async fn read_tickets(tx: &Transaction<'_>, ids: &[i64]) -> Result<Vec<Ticket>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            &crate::store::prepared(tx, &format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ANY($1)")).await?,
            &[&ids],
        )
        .await?;
    rows.iter().map(ticket_from_row).collect()
}

/// Locks up to `limit` queued tickets of `teams`, earliest resolution deadline first, skipping
/// those another worker holds.
///
/// `FOR NO KEY UPDATE`, the lock an UPDATE of the row takes anyway: `FOR UPDATE` would also skip
/// a ticket whose row is only key-share locked by a foreign-key check (the notify stage storing
/// a message for it, a timer being set), and a drain that skipped the whole queue for that left
/// the freed slot empty until the sweeper's next drain.
pub async fn lock_queued(tx: &Transaction<'_>, teams: &[String], limit: i64) -> Result<Vec<Ticket>, StoreError> {
    let rows = tx
        .query(
            &crate::store::prepared(
                tx,
                &format!(
                    "SELECT {TICKET_COLUMNS} FROM tickets WHERE state = 'queued' AND team = ANY($1)
                             ORDER BY resolution_due NULLS LAST, id LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED"
                ),
            )
            .await?,
            &[&teams, &limit],
        )
        .await?;
    rows.iter().map(ticket_from_row).collect()
}

/// Writes a ticket changed by a lifecycle action (every field an action can change), guarded
/// by the version it was read at. Returns the rows written: 0 means it changed under the lock.
pub async fn write_after_action(tx: &Transaction<'_>, before: &Ticket, after: &Ticket) -> Result<u64, StoreError> {
    Ok(tx
        .execute(
            &crate::store::prepared(
                tx,
                "UPDATE tickets SET state = $3, assignee = $4, team = $5, priority = $6, sla_rule = $7,
                first_response_due = $8, resolution_due = $9, assigned_at = $10,
                first_responded_at = $11, last_update_at = $12, resolved_at = $13, closed_at = $14,
                sla_restarted_at = $15, resolution = $16, rating = $17, rating_comment = $18, supervisor = $19,
                version = $20, due_overrides = $21, category = $22, needs_triage = $23, milestones = $24,
                record = $25, confirmation = $26, updated_at = now()
             WHERE id = $1 AND version = $2",
            )
            .await?,
            &[
                &before.id,
                &before.version,
                &after.state.as_str(),
                &after.assignee,
                &after.team,
                &after.priority,
                &after.sla_rule,
                &after.first_response_due,
                &after.resolution_due,
                &after.assigned_at,
                &after.life.first_responded_at,
                &after.life.last_update_at,
                &after.life.resolved_at,
                &after.life.closed_at,
                &after.life.sla_restarted_at,
                &after.life.resolution,
                &after.life.rating,
                &after.life.rating_comment,
                &after.life.supervisor,
                &after.version,
                &overrides_json(&after.life.due_overrides),
                &after.category,
                &after.needs_triage,
                &overrides_json(&after.life.milestones),
                &serde_json::to_value(&after.life.record).unwrap_or_else(|_| serde_json::json!({})),
                &after
                    .life
                    .confirmation
                    .as_ref()
                    .and_then(|c| serde_json::to_value(c).ok()),
            ],
        )
        .await?)
}

fn overrides_json(o: &std::collections::BTreeMap<String, DateTime<Utc>>) -> Option<serde_json::Value> {
    (!o.is_empty()).then(|| serde_json::to_value(o).unwrap_or_default())
}

/// The candidates as stored: NULL when there are none (not yet classified).
fn candidates_json(c: &[crate::core::classify::Candidate]) -> Option<serde_json::Value> {
    (!c.is_empty()).then(|| serde_json::to_value(c).unwrap_or_default())
}

/// Bumps a ticket's version for same-state transitions (breaches, escalation steps), guarded by
/// the version it was read at. Returns the rows written.
pub async fn bump_version(tx: &Transaction<'_>, id: i64, from: i32, to: i32) -> Result<u64, StoreError> {
    Ok(tx
        .execute(
            "UPDATE tickets SET version = $3, updated_at = now() WHERE id = $1 AND version = $2",
            &[&id, &from, &to],
        )
        .await?)
}

/// A ticket's id by its number (no lock, no other column).
pub async fn id_of<C: GenericClient>(client: &C, number: &str) -> Result<Option<i64>, StoreError> {
    let row = client
        .query_opt("SELECT id FROM tickets WHERE number = $1", &[&number])
        .await?;
    Ok(row.map(|r| r.get(0)))
}

pub async fn get_by_number<C: GenericClient>(client: &C, number: &str) -> Result<Option<Ticket>, StoreError> {
    let row = client
        .query_opt(
            &format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE number = $1"),
            &[&number],
        )
        .await?;
    row.as_ref().map(ticket_from_row).transpose()
}

/// Writes new ticket states, guarded by version: a row updates only if it is still at
/// `version - 1`. Returns the ids that were written.
pub async fn update_tickets(tx: &Transaction<'_>, tickets: &[&Ticket]) -> Result<Vec<i64>, StoreError> {
    let rows: Vec<(&Ticket, i32)> = tickets.iter().map(|t| (*t, t.version - 1)).collect();
    update_tickets_from(tx, &rows).await
}

/// [`update_tickets`] for tickets that moved on by several versions since their row was written
/// (a chain of stages writes each once): each `(ticket, version its row holds)`.
pub async fn update_tickets_from(tx: &Transaction<'_>, rows: &[(&Ticket, i32)]) -> Result<Vec<i64>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let tickets: Vec<&Ticket> = rows.iter().map(|(t, _)| *t).collect();
    let written: Vec<i32> = rows.iter().map(|(_, v)| *v).collect();
    let ids: Vec<i64> = tickets.iter().map(|t| t.id).collect();
    let versions: Vec<i32> = tickets.iter().map(|t| t.version).collect();
    let states: Vec<&str> = tickets.iter().map(|t| t.state.as_str()).collect();
    let languages: Vec<Option<&str>> = tickets.iter().map(|t| t.language.as_deref()).collect();
    let categories: Vec<Option<&str>> = tickets.iter().map(|t| t.category.as_deref()).collect();
    let confidences: Vec<Option<f64>> = tickets.iter().map(|t| t.category_confidence).collect();
    let priorities: Vec<Option<&str>> = tickets.iter().map(|t| t.priority.as_deref()).collect();
    let teams: Vec<Option<&str>> = tickets.iter().map(|t| t.team.as_deref()).collect();
    let assignees: Vec<Option<&str>> = tickets.iter().map(|t| t.assignee.as_deref()).collect();
    let rules: Vec<Option<&str>> = tickets.iter().map(|t| t.sla_rule.as_deref()).collect();
    let fr: Vec<Option<chrono::DateTime<chrono::Utc>>> = tickets.iter().map(|t| t.first_response_due).collect();
    let res: Vec<Option<chrono::DateTime<chrono::Utc>>> = tickets.iter().map(|t| t.resolution_due).collect();
    let assigned: Vec<Option<chrono::DateTime<chrono::Utc>>> = tickets.iter().map(|t| t.assigned_at).collect();
    let triage: Vec<bool> = tickets.iter().map(|t| t.needs_triage).collect();
    let candidates: Vec<Option<serde_json::Value>> = tickets
        .iter()
        .map(|t| candidates_json(&t.category_candidates))
        .collect();
    let rows = tx
        .query(
            &crate::store::prepared(tx, "UPDATE tickets t SET state = u.state, language = u.language, category = u.category,
                category_confidence = u.confidence, priority = u.priority, team = u.team, assignee = u.assignee,
                sla_rule = u.sla_rule, first_response_due = u.fr, resolution_due = u.res, assigned_at = u.assigned,
                needs_triage = u.triage, category_candidates = u.candidates, version = u.version, updated_at = now()
             FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[],
                         $14::bool[], $15::jsonb[], $16::int[])
                  AS u(id, version, state, language, category, confidence, priority, team, assignee, sla_rule, fr, res, assigned,
                       triage, candidates, written)
             WHERE t.id = u.id AND t.version = u.written
             RETURNING t.id").await?,
            &[&ids, &versions, &states, &languages, &categories, &confidences, &priorities, &teams, &assignees, &rules, &fr, &res, &assigned, &triage, &candidates, &written],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub async fn insert_transitions(tx: &Transaction<'_>, transitions: &[&Transition]) -> Result<(), StoreError> {
    if transitions.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = transitions.iter().map(|t| t.ticket_id).collect();
    let seqs: Vec<i32> = transitions.iter().map(|t| t.seq).collect();
    let froms: Vec<Option<&str>> = transitions.iter().map(|t| t.from.map(|s| s.as_str())).collect();
    let tos: Vec<&str> = transitions.iter().map(|t| t.to.as_str()).collect();
    let ats: Vec<chrono::DateTime<chrono::Utc>> = transitions.iter().map(|t| t.at).collect();
    let actors: Vec<&str> = transitions.iter().map(|t| t.actor.as_str()).collect();
    let reasons: Vec<&str> = transitions.iter().map(|t| t.reason.as_str()).collect();
    let policies: Vec<&str> = transitions.iter().map(|t| t.policy_version.as_str()).collect();
    let details: Vec<&serde_json::Value> = transitions.iter().map(|t| &t.details).collect();
    tx.execute(
        &crate::store::prepared(tx, "INSERT INTO ticket_transitions (ticket_id, seq, from_state, to_state, at, actor, reason, policy_version, details)
         SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                              $7::text[], $8::text[], $9::jsonb[])").await?,
        &[&ids, &seqs, &froms, &tos, &ats, &actors, &reasons, &policies, &details],
    )
    .await?;
    Ok(())
}

/// Transitions of one ticket, oldest first.
pub async fn transitions_of<C: GenericClient>(client: &C, ticket_id: i64) -> Result<Vec<Transition>, StoreError> {
    let rows = client
        .query(
            "SELECT ticket_id, seq, from_state, to_state, at, actor, reason, policy_version, details
             FROM ticket_transitions WHERE ticket_id = $1 ORDER BY seq",
            &[&ticket_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Transition {
            ticket_id: r.get(0),
            seq: r.get(1),
            from: r.get::<_, Option<&str>>(2).and_then(TicketState::parse),
            to: TicketState::parse(r.get(3)).unwrap_or(TicketState::Received),
            at: r.get(4),
            actor: r.get(5),
            reason: r.get(6),
            policy_version: r.get(7),
            details: r.get(8),
        })
        .collect())
}

/// The ticket a channel message went to, as the request status shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTicket {
    pub number: String,
    pub state: String,
    /// The message opened the ticket (rather than joining one).
    pub opened_by_request: bool,
    pub category: Option<String>,
    pub priority: Option<String>,
    pub team: Option<String>,
    /// The gateway key that submitted the message.
    pub submitted_by: Option<String>,
}

/// The gateway key that submitted the request which opened the ticket (`None`: it came
/// straight from RabbitMQ, or before keys were recorded).
pub async fn opening_key<C: GenericClient>(client: &C, t: &Ticket) -> Result<Option<String>, StoreError> {
    let row = client
        .query_opt(
            "SELECT submitted_by FROM ticket_messages WHERE channel = $1 AND channel_message_id = $2",
            &[&t.channel, &t.channel_message_id],
        )
        .await?;
    Ok(row.and_then(|r| r.get(0)))
}

/// The ticket that holds the message `channel_message_id` of `channel`, once intake stored it.
pub async fn of_request(db: &Db, channel: &str, channel_message_id: &str) -> Result<Option<RequestTicket>, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT t.number, t.state, t.channel = m.channel AND t.channel_message_id = m.channel_message_id,
                    t.category, t.priority, t.team, m.submitted_by
             FROM ticket_messages m JOIN tickets t ON t.id = m.ticket_id
             WHERE m.channel = $1 AND m.channel_message_id = $2",
            &[&channel, &channel_message_id],
        )
        .await?;
    Ok(row.map(|r| RequestTicket {
        number: r.get(0),
        state: r.get(1),
        opened_by_request: r.get(2),
        category: r.get(3),
        priority: r.get(4),
        team: r.get(5),
        submitted_by: r.get(6),
    }))
}

/// One escalation of a ticket, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationRow {
    pub target: String,
    pub ladder: String,
    pub breached_at: DateTime<Utc>,
    /// Index of the last step fired (from 0).
    pub last_step: Option<i32>,
    pub last_repeat: Option<i32>,
    pub last_fired_at: Option<DateTime<Utc>>,
    pub last_notified: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub stop_reason: Option<String>,
}

/// Every escalation of a ticket, oldest breach first.
pub async fn escalations_of<C: GenericClient>(c: &C, ticket_id: i64) -> Result<Vec<EscalationRow>, StoreError> {
    let rows = c
        .query(
            "SELECT target, ladder, breached_at, last_step, last_repeat, last_fired_at, last_notified,
                    acknowledged_at, acknowledged_by, stopped_at, stop_reason
             FROM escalations WHERE ticket_id = $1 ORDER BY breached_at",
            &[&ticket_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| EscalationRow {
            target: r.get(0),
            ladder: r.get(1),
            breached_at: r.get(2),
            last_step: r.get(3),
            last_repeat: r.get(4),
            last_fired_at: r.get(5),
            last_notified: r.get(6),
            acknowledged_at: r.get(7),
            acknowledged_by: r.get(8),
            stopped_at: r.get(9),
            stop_reason: r.get(10),
        })
        .collect())
}

/// One customer message of a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub channel: String,
    pub channel_message_id: String,
    pub received_at: DateTime<Utc>,
    pub subject: Option<String>,
    pub body: String,
    pub attachments: serde_json::Value,
}

/// The customer's messages on a ticket, in the order received.
pub async fn messages_of<C: GenericClient>(c: &C, ticket_id: i64) -> Result<Vec<MessageRow>, StoreError> {
    let rows = c
        .query(
            "SELECT channel, channel_message_id, received_at, subject, body, attachments FROM ticket_messages
             WHERE ticket_id = $1 ORDER BY received_at, id",
            &[&ticket_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| MessageRow {
            channel: r.get(0),
            channel_message_id: r.get(1),
            received_at: r.get(2),
            subject: r.get(3),
            body: r.get(4),
            attachments: r.get(5),
        })
        .collect())
}

/// Another ticket of the same customer, in brief.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerTicket {
    pub number: String,
    pub state: String,
    pub category: Option<String>,
    pub priority: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// The customer's other tickets, newest first, at most `limit`.
pub async fn customer_tickets_of<C: GenericClient>(
    c: &C,
    ticket_id: i64,
    limit: i64,
) -> Result<Vec<CustomerTicket>, StoreError> {
    let rows = c
        .query(
            "SELECT e.number, e.state, e.category, e.priority, e.received_at FROM tickets t
             JOIN tickets e ON e.customer_ref = t.customer_ref AND e.id <> t.id
             WHERE t.id = $1 ORDER BY e.received_at DESC LIMIT $2",
            &[&ticket_id, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| CustomerTicket {
            number: r.get(0),
            state: r.get(1),
            category: r.get(2),
            priority: r.get(3),
            received_at: r.get(4),
        })
        .collect())
}

/// Records a category a person corrected: the classifier's training signal.
pub async fn record_correction(
    tx: &Transaction<'_>,
    ticket_id: i64,
    at: DateTime<Utc>,
    from: Option<&str>,
    to: &str,
    actor: &str,
    reason: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO classifier_corrections (ticket_id, at, from_category, to_category, actor, reason)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        &[&ticket_id, &at, &from, &to, &actor, &reason],
    )
    .await?;
    Ok(())
}

/// A ticket's category as a person decided it, with the text it was decided on: a training row
/// for `switchboard train --with-corrections`.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrectionRow {
    pub number: String,
    pub channel: String,
    pub subject: Option<String>,
    pub body: String,
    pub tier: Tier,
    /// As the classifier detected it (`zh-Hans`, `zh-Hant`, `en`).
    pub language: Option<String>,
    /// The latest correction's `to_category`: the label.
    pub category: String,
    /// The ticket's priority now (a supervisor's `set_priority` included).
    pub priority: Option<String>,
    /// Why the person chose it (a triage decision reads `triage: …`).
    pub reason: String,
    /// When the latest correction was made.
    pub at: DateTime<Utc>,
}

/// Every corrected ticket's latest correction, oldest correction first, with the ticket's text;
/// tickets anonymised by retention are left out (their text is gone).
pub async fn corrections_for_training(db: &Db) -> Result<Vec<CorrectionRow>, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            "SELECT t.number, t.channel, t.subject, t.body, t.customer->'tier', t.language, c.to_category,
                    t.priority, c.reason, c.at
             FROM (SELECT DISTINCT ON (ticket_id) ticket_id, to_category, reason, at
                   FROM classifier_corrections ORDER BY ticket_id, at DESC) c
             JOIN tickets t ON t.id = c.ticket_id
             WHERE t.anonymised_at IS NULL
             ORDER BY c.at, t.id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| CorrectionRow {
            number: r.get(0),
            channel: r.get(1),
            subject: r.get(2),
            body: r.get(3),
            tier: r
                .get::<_, Option<serde_json::Value>>(4)
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or(Tier::Standard),
            language: r.get(5),
            category: r.get(6),
            priority: r.get(7),
            reason: r.get(8),
            at: r.get(9),
        })
        .collect())
}

/// A link kind as the other ticket sees it: `duplicate_of` ↔ `duplicate` (merged into this
/// one), `follow_up_of` ↔ `follow_up` (a later ticket of the customer's, opened by a message on
/// this closed one), `task_of` ↔ `task` (a task opened on this group ticket, `core::groups`),
/// `related` both ways.
pub fn converse_kind(kind: &str) -> &str {
    match kind {
        "duplicate_of" => "duplicate",
        "duplicate" => "duplicate_of",
        "follow_up_of" => "follow_up",
        "follow_up" => "follow_up_of",
        "task_of" => "task",
        "task" => "task_of",
        other => other,
    }
}

/// Links two tickets both ways: `kind` from `ticket_id` (`related`, `duplicate_of`,
/// `follow_up_of`) and its converse from the other ([`converse_kind`]). Linking a related pair
/// again changes nothing; merging it records the duplicate.
pub async fn link(
    tx: &Transaction<'_>,
    ticket_id: i64,
    other_id: i64,
    kind: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    link_all(tx, &[(ticket_id, other_id)], kind, actor, at).await
}

/// [`link`] for many pairs `(ticket, other)` in one statement.
pub async fn link_all(
    tx: &Transaction<'_>,
    pairs: &[(i64, i64)],
    kind: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if pairs.is_empty() {
        return Ok(());
    }
    let (from, to): (Vec<i64>, Vec<i64>) = pairs.iter().copied().unzip();
    let converse = converse_kind(kind);
    tx.execute(
        "INSERT INTO ticket_links (ticket_id, other_id, kind, actor, at)
         SELECT a, b, $3::text, $5::text, $6::timestamptz FROM unnest($1::bigint[], $2::bigint[]) AS u(a, b)
         UNION ALL SELECT b, a, $4::text, $5::text, $6::timestamptz FROM unnest($1::bigint[], $2::bigint[]) AS u(a, b)
         ON CONFLICT (ticket_id, other_id) DO UPDATE SET kind = EXCLUDED.kind, actor = EXCLUDED.actor, at = EXCLUDED.at
         WHERE ticket_links.kind = 'related'",
        &[&from, &to, &kind, &converse, &actor, &at],
    )
    .await?;
    Ok(())
}

/// A ticket's links: (other ticket's number, kind, state).
pub async fn links_of<C: GenericClient>(c: &C, ticket_id: i64) -> Result<Vec<(String, String, String)>, StoreError> {
    let rows = c
        .query(
            "SELECT t.number, l.kind, t.state FROM ticket_links l JOIN tickets t ON t.id = l.other_id
             WHERE l.ticket_id = $1 ORDER BY l.at, t.number",
            &[&ticket_id],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}
