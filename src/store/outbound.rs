//! What Switchboard sends (migration V10): deliveries, written by the notify stage in the
//! transaction that records the event they answer and claimed by the deliver stage; webhook
//! subscriptions; surveys and follow-up visits.

use super::{Db, StoreError, prepared};
use crate::core::notify::{CustomerRoute, Planned, Subscription};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde_json::Value;
use std::collections::HashMap;

/// What the notify stage needs to know of one ticket.
#[derive(Debug, Clone)]
pub struct TicketFacts {
    pub id: i64,
    pub route: CustomerRoute,
    /// The assignee's email, from their user.
    pub assignee_email: Option<String>,
}

/// The enabled webhook subscriptions.
pub async fn subscriptions(tx: &Transaction<'_>) -> Result<Vec<Subscription>, StoreError> {
    let rows = tx
        .query(
            &prepared(
                tx,
                "SELECT id, url, events FROM webhook_endpoints WHERE disabled_at IS NULL ORDER BY id",
            )
            .await?,
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Subscription {
            id: r.get(0),
            url: r.get(1),
            events: r.get(2),
        })
        .collect())
}

/// For each ticket number: its id, where its customer is reached and its assignee's email.
pub async fn ticket_facts(
    tx: &Transaction<'_>,
    numbers: &[String],
) -> Result<HashMap<String, TicketFacts>, StoreError> {
    if numbers.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .query(
            &prepared(
                tx,
                "SELECT t.id, t.number, t.channel, t.customer, t.language, t.subject,
                        (SELECT u.email FROM users u WHERE u.agent = t.assignee AND u.disabled_at IS NULL AND u.email IS NOT NULL ORDER BY u.created_at LIMIT 1),
                        first.submitted_by, k.callback_url,
                        ARRAY(SELECT m.channel_message_id FROM ticket_messages m
                              WHERE m.ticket_id = t.id AND m.channel = t.channel ORDER BY m.id LIMIT 50)
                 FROM tickets t
                 LEFT JOIN LATERAL (SELECT m.submitted_by FROM ticket_messages m WHERE m.ticket_id = t.id ORDER BY m.id LIMIT 1) first ON true
                 LEFT JOIN api_keys k ON k.id = first.submitted_by AND k.revoked_at IS NULL
                 WHERE t.number = ANY($1)",
            )
            .await?,
            &[&numbers],
        )
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let customer: crate::core::customer::Customer =
            serde_json::from_value(r.get::<_, Value>(3)).unwrap_or_default();
        let key: Option<String> = r.get(7);
        let callback: Option<String> = r.get(8);
        let number: String = r.get(1);
        out.insert(
            number,
            TicketFacts {
                id: r.get(0),
                route: CustomerRoute {
                    channel: r.get(2),
                    name: customer.name.clone(),
                    email: customer.email.clone(),
                    language: r.get(4),
                    subject: r.get(5),
                    message_ids: r.get(9),
                    callback: key.zip(callback),
                    thread_ref: None,
                },
                assignee_email: r.get(6),
            },
        );
    }
    Ok(out)
}

/// Writes planned deliveries; a key already there (the event decided again) is skipped.
pub async fn insert_deliveries(
    tx: &Transaction<'_>,
    planned: &[(&Planned, Option<i64>, &str, Option<i32>)],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if planned.is_empty() {
        return Ok(0);
    }
    let mut keys = Vec::new();
    let mut msg_ids = Vec::new();
    let mut kinds = Vec::new();
    let mut purposes = Vec::new();
    let mut tickets = Vec::new();
    let mut numbers = Vec::new();
    let mut seqs = Vec::new();
    let mut lanes = Vec::new();
    let mut endpoints = Vec::new();
    let mut key_ids = Vec::new();
    let mut transports = Vec::new();
    let mut targets = Vec::new();
    let mut payloads = Vec::new();
    let mut give_up = Vec::new();
    let mut states = Vec::new();
    let mut errors = Vec::new();
    for (p, ticket, number, seq) in planned {
        states.push(if p.failed.is_some() { "failed" } else { "pending" });
        errors.push(p.failed.as_deref());
        keys.push(p.key.as_str());
        msg_ids.push(p.msg_id.as_str());
        kinds.push(p.kind.as_str());
        purposes.push(p.purpose.as_str());
        tickets.push(*ticket);
        numbers.push(*number);
        seqs.push(*seq);
        lanes.push(p.lane.as_str());
        endpoints.push(p.endpoint_id.as_deref());
        key_ids.push(p.key_id.as_deref());
        transports.push(p.transport.as_str());
        targets.push(p.target.as_str());
        payloads.push(&p.payload);
        give_up.push(now + chrono::Duration::seconds(p.give_up_after_s));
    }
    Ok(tx
        .execute(
            &prepared(
                tx,
                "INSERT INTO deliveries (key, msg_id, kind, purpose, ticket_id, number, seq, lane, endpoint_id, key_id,
                                         transport, target, payload, next_attempt_at, give_up_at, state, last_error)
                 SELECT k, m, ki, pu, ti, nu, se, la, en, ke, tr, ta, pa, $14, g, st, er
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::int[],
                             $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::jsonb[],
                             $15::timestamptz[], $16::text[], $17::text[])
                      AS u(k, m, ki, pu, ti, nu, se, la, en, ke, tr, ta, pa, g, st, er)
                 ON CONFLICT (key) DO NOTHING",
            )
            .await?,
            &[
                &keys,
                &msg_ids,
                &kinds,
                &purposes,
                &tickets,
                &numbers,
                &seqs,
                &lanes,
                &endpoints,
                &key_ids,
                &transports,
                &targets,
                &payloads,
                &now,
                &give_up,
                &states,
                &errors,
            ],
        )
        .await?)
}

/// A survey to record with the event that sends it.
pub async fn insert_survey(
    tx: &Transaction<'_>,
    number: &str,
    ticket_id: i64,
    channel: &str,
    dimensions: &[String],
    token_hash: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO surveys (number, ticket_id, channel, dimensions, token_hash) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (number) DO NOTHING",
        &[&number, &ticket_id, &channel, &dimensions, &token_hash],
    )
    .await?;
    Ok(())
}

/// A follow-up visit (回访) for the ticket's team.
pub async fn insert_follow_up(
    tx: &Transaction<'_>,
    key: &str,
    ticket_id: i64,
    number: &str,
    team: Option<&str>,
    reason: &str,
    due: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO follow_ups (key, ticket_id, number, team, reason, due_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (key) DO NOTHING",
        &[&key, &ticket_id, &number, &team, &reason, &due],
    )
    .await?;
    Ok(())
}

/// A delivery claimed for sending.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub key: String,
    pub msg_id: String,
    pub kind: String,
    pub purpose: String,
    pub ticket_id: Option<i64>,
    pub number: Option<String>,
    pub seq: Option<i32>,
    pub endpoint_id: Option<String>,
    pub transport: String,
    pub target: String,
    pub payload: Value,
    pub attempts: i32,
    pub give_up_at: DateTime<Utc>,
    /// The endpoint's or the integration key's signing secret.
    pub secret: Option<String>,
}

/// A ticket's delivery in a lane waits while an earlier one of the same lane is pending, and
/// while the event before it has not been seen by the notify stage (its ledger record), for at
/// most `ORDER_WAIT_S`: events can reach the notify queue out of order after a redelivery.
pub const ORDER_WAIT_S: i64 = 30;

/// Claims up to `limit` due deliveries: each is leased for `lease` (held by its sender, longer
/// than a send may take: a sender killed mid-send loses it then, and the delivery goes again with
/// the same id) and its attempt counted.
pub async fn claim_due(db: &Db, limit: i64, lease: std::time::Duration) -> Result<Vec<Due>, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            &client
                .prepare_cached(
                    "UPDATE deliveries d SET attempts = d.attempts + 1,
                        next_attempt_at = now() + make_interval(secs => $2)
                 FROM (
                     SELECT c.id FROM deliveries c
                     LEFT JOIN webhook_endpoints w ON w.id = c.endpoint_id
                     WHERE c.state = 'pending' AND c.next_attempt_at <= now()
                       AND (c.endpoint_id IS NULL OR w.disabled_at IS NULL)
                       AND NOT EXISTS (
                           SELECT 1 FROM deliveries p
                           WHERE p.lane = c.lane AND p.ticket_id = c.ticket_id AND p.state = 'pending'
                             AND (p.seq < c.seq OR (c.seq IS NULL AND p.seq IS NOT NULL)))
                       AND (c.seq IS NULL OR c.seq <= 1 OR c.created_at < now() - make_interval(secs => $3)
                            OR EXISTS (SELECT 1 FROM processed_messages m
                                       WHERE m.message_id = 'notify:' || c.number || '.' || (c.seq - 1)))
                     ORDER BY c.next_attempt_at
                     LIMIT $1
                     FOR UPDATE OF c SKIP LOCKED
                 ) due
                 WHERE d.id = due.id
                 RETURNING d.id, d.key, d.msg_id, d.kind, d.purpose, d.ticket_id, d.number, d.seq, d.endpoint_id,
                           d.transport, d.target, d.payload, d.attempts, d.give_up_at,
                           COALESCE((SELECT w.secret FROM webhook_endpoints w WHERE w.id = d.endpoint_id),
                                    (SELECT k.callback_secret FROM api_keys k WHERE k.id = d.key_id))",
                )
                .await?,
            &[&limit, &lease.as_secs_f64(), &(ORDER_WAIT_S as f64)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Due {
            id: r.get(0),
            key: r.get(1),
            msg_id: r.get(2),
            kind: r.get(3),
            purpose: r.get(4),
            ticket_id: r.get(5),
            number: r.get(6),
            seq: r.get(7),
            endpoint_id: r.get(8),
            transport: r.get(9),
            target: r.get(10),
            payload: r.get(11),
            attempts: r.get(12),
            give_up_at: r.get(13),
            secret: r.get(14),
        })
        .collect())
}

/// When the next pending delivery is due (the sender sleeps until then).
pub async fn next_due(db: &Db) -> Result<Option<DateTime<Utc>>, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_one(
            &client
                .prepare_cached("SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'")
                .await?,
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// What became of an attempt, as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    Delivered {
        status: Option<u16>,
    },
    /// Try again at `at`.
    Retry {
        at: DateTime<Utc>,
        status: Option<u16>,
        error: String,
    },
    /// Given up: the delivery failed for good.
    Failed {
        status: Option<u16>,
        error: String,
    },
}

/// Records an attempt's outcome, and the endpoint's run of failures (a success ends it). A
/// delivery given up is dead-lettered: `dead_letter` goes to the outbox in the same
/// transaction, so `switchboard dead list` shows it exactly once.
pub async fn settle(
    db: &Db,
    d: &Due,
    outcome: &Settled,
    dead_letter: Option<&crate::contracts::Outgoing>,
) -> Result<(), StoreError> {
    let mut conn = db.pool.get().await?;
    let client = conn.transaction().await?;
    let status = |s: &Option<u16>| s.map(i32::from);
    match outcome {
        Settled::Delivered { status: s } => {
            client
                .execute(
                    &prepared(
                        &client,
                        // A customer's message quotes them and may hold a survey link (a
                        // credential): once it is delivered, only the record stays.
                        "UPDATE deliveries SET state = 'delivered', delivered_at = now(), last_status = $2, last_error = NULL,
                                payload = CASE WHEN kind = 'customer' THEN '{}'::jsonb ELSE payload END
                         WHERE id = $1 AND state = 'pending'",
                    )
                    .await?,
                    &[&d.id, &status(s)],
                )
                .await?;
            if let Some(e) = &d.endpoint_id {
                client
                    .execute(
                        &prepared(
                            &client,
                            "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
                        )
                        .await?,
                        &[e],
                    )
                    .await?;
            }
        }
        Settled::Retry { at, status: s, error } => {
            client
                .execute(
                    &prepared(
                        &client,
                        "UPDATE deliveries SET next_attempt_at = $2, last_status = $3, last_error = $4
                         WHERE id = $1 AND state = 'pending'",
                    )
                    .await?,
                    &[&d.id, at, &status(s), error],
                )
                .await?;
        }
        Settled::Failed { status: s, error } => {
            let n = client
                .execute(
                    &prepared(
                        &client,
                        "UPDATE deliveries SET state = 'failed', last_status = $2, last_error = $3
                         WHERE id = $1 AND state = 'pending'",
                    )
                    .await?,
                    &[&d.id, &status(s), error],
                )
                .await?;
            if n > 0
                && let Some(m) = dead_letter
            {
                super::outbox::insert(&*client, std::slice::from_ref(m)).await?;
            }
        }
    }
    if !matches!(outcome, Settled::Delivered { .. })
        && let Some(e) = &d.endpoint_id
    {
        client
            .execute(
                &prepared(
                    &client,
                    "UPDATE webhook_endpoints SET failing_since = now() WHERE id = $1 AND failing_since IS NULL",
                )
                .await?,
                &[e],
            )
            .await?;
    }
    client.commit().await?;
    Ok(())
}

/// Disables an endpoint that answered 410 Gone; true if it was enabled until now.
pub async fn disable_gone(db: &Db, id: &str, reason: &str) -> Result<bool, StoreError> {
    let client = db.pool.get().await?;
    Ok(client
        .execute(
            "UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = $2 WHERE id = $1 AND disabled_at IS NULL",
            &[&id, &reason],
        )
        .await?
        > 0)
}

/// Disables endpoints failing without a success for longer than `after_s`; returns (id,
/// reason) of each disabled now.
pub async fn disable_failing(db: &Db, after_s: i64) -> Result<Vec<(String, String)>, StoreError> {
    let client = db.pool.get().await?;
    let mut out = Vec::new();
    let rows = client
        .query(
            "UPDATE webhook_endpoints SET disabled_at = now(),
                    disabled_reason = 'every delivery failed since ' || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                        || ' (last: ' || coalesce((SELECT d.last_error FROM deliveries d WHERE d.endpoint_id = webhook_endpoints.id AND d.last_error IS NOT NULL ORDER BY d.id DESC LIMIT 1), 'no answer') || ')'
             WHERE disabled_at IS NULL AND failing_since < now() - make_interval(secs => $1)
             RETURNING id, disabled_reason",
            &[&(after_s as f64)],
        )
        .await?;
    out.extend(rows.iter().map(|r| (r.get(0), r.get(1))));
    Ok(out)
}

/// A webhook subscription, as `switchboard webhooks list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    pub pending: i64,
    pub failed: i64,
}

pub async fn create_endpoint(
    db: &Db,
    id: &str,
    url: &str,
    events: &[String],
    secret: &str,
    description: &str,
) -> Result<(), StoreError> {
    let client = db.pool.get().await?;
    client
        .execute(
            "INSERT INTO webhook_endpoints (id, url, events, secret, description) VALUES ($1, $2, $3, $4, $5)",
            &[&id, &url, &events, &secret, &description],
        )
        .await?;
    Ok(())
}

pub async fn endpoints(db: &Db) -> Result<Vec<Endpoint>, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            "SELECT w.id, w.url, w.events, w.description, w.created_at, w.disabled_at, w.disabled_reason, w.failing_since,
                    (SELECT count(*) FROM deliveries d WHERE d.endpoint_id = w.id AND d.state = 'pending'),
                    (SELECT count(*) FROM deliveries d WHERE d.endpoint_id = w.id AND d.state = 'failed')
             FROM webhook_endpoints w ORDER BY w.created_at, w.id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Endpoint {
            id: r.get(0),
            url: r.get(1),
            events: r.get(2),
            description: r.get(3),
            created_at: r.get(4),
            disabled_at: r.get(5),
            disabled_reason: r.get(6),
            failing_since: r.get(7),
            pending: r.get(8),
            failed: r.get(9),
        })
        .collect())
}

/// Disables (or, `enable`, re-enables) an endpoint; false when there is no such endpoint.
pub async fn set_endpoint_enabled(db: &Db, id: &str, enable: bool, reason: &str) -> Result<bool, StoreError> {
    let client = db.pool.get().await?;
    let n = if enable {
        client
            .execute(
                "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL WHERE id = $1",
                &[&id],
            )
            .await?
    } else {
        client
            .execute(
                "UPDATE webhook_endpoints SET disabled_at = coalesce(disabled_at, now()), disabled_reason = $2 WHERE id = $1",
                &[&id, &reason],
            )
            .await?
    };
    Ok(n > 0)
}

/// A delivery as listed (`webhooks deliveries`, a ticket's view).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub msg_id: String,
    pub kind: String,
    pub purpose: String,
    pub number: Option<String>,
    pub seq: Option<i32>,
    pub transport: String,
    pub target: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

const DELIVERY_COLUMNS: &str =
    "id, msg_id, kind, purpose, number, seq, transport, target, state, attempts, next_attempt_at,
     last_status, last_error, created_at, delivered_at";

fn delivery_of(r: &tokio_postgres::Row) -> DeliveryRow {
    DeliveryRow {
        id: r.get(0),
        msg_id: r.get(1),
        kind: r.get(2),
        purpose: r.get(3),
        number: r.get(4),
        seq: r.get(5),
        transport: r.get(6),
        target: r.get(7),
        state: r.get(8),
        attempts: r.get(9),
        next_attempt_at: r.get(10),
        last_status: r.get(11),
        last_error: r.get(12),
        created_at: r.get(13),
        delivered_at: r.get(14),
    }
}

/// An endpoint's latest deliveries, newest first.
pub async fn endpoint_deliveries(db: &Db, endpoint: &str, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2"),
            &[&endpoint, &limit],
        )
        .await?;
    Ok(rows.iter().map(delivery_of).collect())
}

/// A ticket's deliveries, oldest first.
pub async fn ticket_deliveries<C: tokio_postgres::GenericClient>(
    client: &C,
    ticket_id: i64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let rows = client
        .query(
            &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE ticket_id = $1 ORDER BY id LIMIT 500"),
            &[&ticket_id],
        )
        .await?;
    Ok(rows.iter().map(delivery_of).collect())
}

/// Sends a failed (or waiting) delivery again now, for another `give_up_after_s`; with
/// `endpoint`, every failed delivery of that endpoint. Returns how many were requeued.
pub async fn retry(
    db: &Db,
    delivery: Option<i64>,
    endpoint: Option<&str>,
    give_up_after_s: i64,
) -> Result<u64, StoreError> {
    let client = db.pool.get().await?;
    Ok(client
        .execute(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = now(),
                    give_up_at = now() + make_interval(secs => $3)
             WHERE state IN ('failed', 'pending') AND (id = $1 OR endpoint_id = $2)
               AND ($1 IS NOT NULL OR state = 'failed')",
            &[&delivery, &endpoint, &(give_up_after_s as f64)],
        )
        .await?)
}

/// A survey found by its link's token.
#[derive(Debug, Clone)]
pub struct Survey {
    pub number: String,
    pub ticket_id: i64,
    pub ticket_number: String,
    pub dimensions: Vec<String>,
    pub answered_at: Option<DateTime<Utc>>,
    pub score: Option<i16>,
}

pub async fn survey_by_token(db: &Db, token_hash: &str) -> Result<Option<Survey>, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT s.number, s.ticket_id, t.number, s.dimensions, s.answered_at, s.score
             FROM surveys s JOIN tickets t ON t.id = s.ticket_id WHERE s.token_hash = $1",
            &[&token_hash],
        )
        .await?;
    Ok(row.map(|r| Survey {
        number: r.get(0),
        ticket_id: r.get(1),
        ticket_number: r.get(2),
        dimensions: r.get(3),
        answered_at: r.get(4),
        score: r.get(5),
    }))
}

/// Records the answer once; false if the survey was answered already.
pub async fn answer_survey(
    tx: &Transaction<'_>,
    number: &str,
    score: i16,
    scores: &Value,
    comment: Option<&str>,
) -> Result<bool, StoreError> {
    Ok(tx
        .execute(
            "UPDATE surveys SET answered_at = now(), score = $2, scores = $3, comment = $4
             WHERE number = $1 AND answered_at IS NULL",
            &[&number, &score, scores, &comment],
        )
        .await?
        > 0)
}

/// A follow-up visit as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FollowUp {
    pub id: i64,
    pub number: String,
    pub team: Option<String>,
    pub reason: String,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub done_by: Option<String>,
    pub outcome: Option<String>,
}

/// Open follow-ups, earliest due first, of one team (or every team).
pub async fn open_follow_ups(db: &Db, team: Option<&str>, limit: i64) -> Result<Vec<FollowUp>, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            "SELECT id, number, team, reason, due_at, created_at, done_at, done_by, outcome FROM follow_ups
             WHERE done_at IS NULL AND ($1::text IS NULL OR team = $1) ORDER BY due_at, id LIMIT $2",
            &[&team, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| FollowUp {
            id: r.get(0),
            number: r.get(1),
            team: r.get(2),
            reason: r.get(3),
            due_at: r.get(4),
            created_at: r.get(5),
            done_at: r.get(6),
            done_by: r.get(7),
            outcome: r.get(8),
        })
        .collect())
}

/// Marks a follow-up done; returns its team, or `None` if there is no such open follow-up.
pub async fn finish_follow_up(db: &Db, id: i64, by: &str, outcome: &str) -> Result<Option<Option<String>>, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_opt(
            "UPDATE follow_ups SET done_at = now(), done_by = $2, outcome = $3 WHERE id = $1 AND done_at IS NULL RETURNING team",
            &[&id, &by, &outcome],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// A follow-up's team, for the access check before it is finished.
pub async fn follow_up_team(db: &Db, id: i64) -> Result<Option<Option<String>>, StoreError> {
    let client = db.pool.get().await?;
    let row = client
        .query_opt("SELECT team FROM follow_ups WHERE id = $1", &[&id])
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Sets (or clears) an integration key's callback URL and secret.
pub async fn set_callback(db: &Db, key_id: &str, url: Option<&str>, secret: Option<&str>) -> Result<bool, StoreError> {
    let client = db.pool.get().await?;
    Ok(client
        .execute(
            "UPDATE api_keys SET callback_url = $2, callback_secret = $3 WHERE id = $1",
            &[&key_id, &url, &secret],
        )
        .await?
        > 0)
}
