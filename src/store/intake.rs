//! What the intake stage writes: conversation locks, thread keys, the monthly number counters,
//! new tickets and every stored customer message. Each is one statement for the whole batch.

use super::{StoreError, prepared};
use crate::contracts::intake::IntakeRequest;
use deadpool_postgres::Transaction;

/// Takes a transaction-scoped advisory lock on each key, in hash order so that batches cannot
/// deadlock: two workers never both open a ticket for one conversation or one message.
pub async fn lock_conversations(tx: &Transaction<'_>, keys: &[String]) -> Result<(), StoreError> {
    tx.execute(
        &prepared(
            tx,
            "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($1::text[]) k ORDER BY h) s",
        )
        .await?,
        &[&keys],
    )
    .await?;
    Ok(())
}

/// A ticket a thread key leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    pub key: String,
    pub ticket_id: i64,
    pub number: String,
    pub state: String,
    /// When it was resolved: a resolved ticket takes a message only within the reopen window.
    pub resolved_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Who the ticket is for: a message joins it only when it comes from the same customer.
    pub customer: crate::core::customer::Customer,
}

/// Closed tickets one key leads to that are looked at (the newest): a message never joins one,
/// it only links its follow-up to it, and a long-lived chat session must not cost a row per
/// ticket it ever had.
const CLOSED_PER_KEY: i64 = 4;

/// The tickets the thread keys `keys` lead to, newest ticket first: every ticket not closed,
/// the newest closed ones ([`CLOSED_PER_KEY`] a key), and the follow-up tickets already opened
/// for any of them (a message quoting a closed ticket's number joins its open follow-up rather
/// than opening another).
pub async fn threads(tx: &Transaction<'_>, keys: &[String]) -> Result<Vec<Thread>, StoreError> {
    let rows = tx
        .query(
            &prepared(
                tx,
                "WITH direct AS (
                     SELECT k.key, k.ticket_id FROM thread_keys k JOIN tickets t ON t.id = k.ticket_id
                      WHERE k.key = ANY($1) AND t.state <> 'closed'
                     UNION
                     SELECT u.key, c.ticket_id FROM unnest($1::text[]) AS u(key)
                      CROSS JOIN LATERAL (
                          SELECT k.ticket_id FROM thread_keys k JOIN tickets t ON t.id = k.ticket_id
                           WHERE k.key = u.key AND t.state = 'closed'
                           ORDER BY k.ticket_id DESC LIMIT $2) c
                 ), reach AS (
                     SELECT key, ticket_id FROM direct
                     UNION
                     SELECT d.key, l.other_id FROM direct d
                       JOIN ticket_links l ON l.ticket_id = d.ticket_id AND l.kind = 'follow_up'
                 )
                 SELECT r.key, t.id, t.number, t.state, t.customer, t.resolved_at
                   FROM reach r JOIN tickets t ON t.id = r.ticket_id
                  ORDER BY t.id DESC",
            )
            .await?,
            &[&keys, &CLOSED_PER_KEY],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Thread {
            key: r.get(0),
            ticket_id: r.get(1),
            number: r.get(2),
            state: r.get(3),
            // A customer that no longer decodes matches nobody: the message opens its own ticket.
            customer: serde_json::from_value(r.get(4)).unwrap_or_default(),
            resolved_at: r.get(5),
        })
        .collect())
}

/// Reserves `count` numbers of `period` and returns the last one: the batch's numbers are
/// `last - count + 1 ..= last`. The counter row stays locked until the transaction ends.
pub async fn reserve_numbers(tx: &Transaction<'_>, period: &str, count: i64) -> Result<i64, StoreError> {
    Ok(tx
        .query_one(
            &prepared(
                tx,
                "INSERT INTO ticket_counters (period, last) VALUES ($1, $2)
                         ON CONFLICT (period) DO UPDATE SET last = ticket_counters.last + EXCLUDED.last RETURNING last",
            )
            .await?,
            &[&period, &count],
        )
        .await?
        .get(0))
}

/// Reserves `count` numbers of `period` in a transaction of their own, committed at once, and
/// returns the last: intake's batches then do not wait for each other on the month's counter
/// row for as long as their transactions last (a chain of stages runs in intake's). A batch that
/// rolls back leaves its numbers unused: numbers stay unique and in order, with gaps.
///
/// The commit does not wait for its WAL flush: the transaction that uses the numbers commits
/// after it and waits for its own flush, which covers this one's (the WAL is flushed in order),
/// and numbers never used need not survive a crash.
pub async fn reserve_numbers_apart(db: &super::Db, period: &str, count: i64) -> Result<i64, StoreError> {
    let mut client = db.numbering.get().await?;
    let tx = client.transaction().await?;
    // A wait Postgres cannot see through (the caller's own transaction holding what the
    // counter's holder waits for) ends in a lock timeout, which the caller retries.
    tx.batch_execute("SET LOCAL synchronous_commit = off; SET LOCAL lock_timeout = '5s'")
        .await?;
    let last = reserve_numbers(&tx, period, count).await?;
    tx.commit().await?;
    Ok(last)
}

/// A ticket to open: its number, the request that opens it and its customer record.
pub struct NewTicket<'a> {
    pub number: &'a str,
    pub request: &'a IntakeRequest,
    /// `None`: the request names no identity to file it under.
    pub customer_ref: Option<i64>,
}

/// Inserts new tickets (state `received`, version 1). Returns `(id, number)` of those inserted;
/// a request whose message already opened a ticket inserts nothing.
pub async fn insert_tickets(tx: &Transaction<'_>, new: &[NewTicket<'_>]) -> Result<Vec<(i64, String)>, StoreError> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let nums: Vec<&str> = new.iter().map(|t| t.number).collect();
    let channels: Vec<&str> = new.iter().map(|t| t.request.channel.as_str()).collect();
    let cmids: Vec<&str> = new.iter().map(|t| t.request.channel_message_id.as_str()).collect();
    let customers: Vec<serde_json::Value> = new
        .iter()
        .map(|t| serde_json::to_value(&t.request.customer).unwrap_or_default())
        .collect();
    let subjects: Vec<Option<&str>> = new.iter().map(|t| t.request.subject.as_deref()).collect();
    let bodies: Vec<&str> = new.iter().map(|t| t.request.body.as_str()).collect();
    let received: Vec<chrono::DateTime<chrono::Utc>> = new.iter().map(|t| t.request.received_at).collect();
    let customer_refs: Vec<Option<i64>> = new.iter().map(|t| t.customer_ref).collect();
    let records: Vec<serde_json::Value> = new
        .iter()
        .map(|t| serde_json::to_value(t.request.record.clone().unwrap_or_default()).unwrap_or_default())
        .collect();
    // Terms hold no spaces (`core::search`): one string per ticket, split again in SQL.
    let terms: Vec<String> = new
        .iter()
        .map(|t| {
            let mut terms = crate::core::search::document_terms(t.request.subject.as_deref(), &t.request.body);
            terms.extend(crate::core::search::identity_terms(
                &t.request.customer,
                &t.request.channel,
            ));
            terms.join(" ")
        })
        .collect();
    let rows = tx
        .query(
            &prepared(
                tx,
                "INSERT INTO tickets (number, channel, channel_message_id, customer, subject, body, received_at, state, version, customer_ref, search_terms, record)
                         SELECT n, c, m, cu, s, b, r, 'received', 1, cr, string_to_array(st, ' '), rec
                         FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::text[], $7::timestamptz[], $8::bigint[], $9::text[], $10::jsonb[])
                              AS u(n, c, m, cu, s, b, r, cr, st, rec)
                         ON CONFLICT (channel, channel_message_id) DO NOTHING
                         RETURNING id, number",
            )
            .await?,
            &[&nums, &channels, &cmids, &customers, &subjects, &bodies, &received, &customer_refs, &terms, &records],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Stores each request's message on its ticket. Returns `(channel, channel_message_id)` of the
/// messages stored; one stored before (an old duplicate) is skipped.
pub async fn insert_messages(
    tx: &Transaction<'_>,
    messages: &[(i64, &IntakeRequest)],
) -> Result<Vec<(String, String)>, StoreError> {
    let tids: Vec<i64> = messages.iter().map(|(t, _)| *t).collect();
    let channels: Vec<&str> = messages.iter().map(|(_, r)| r.channel.as_str()).collect();
    let cmids: Vec<&str> = messages.iter().map(|(_, r)| r.channel_message_id.as_str()).collect();
    let received: Vec<chrono::DateTime<chrono::Utc>> = messages.iter().map(|(_, r)| r.received_at).collect();
    let subjects: Vec<Option<&str>> = messages.iter().map(|(_, r)| r.subject.as_deref()).collect();
    let bodies: Vec<&str> = messages.iter().map(|(_, r)| r.body.as_str()).collect();
    let quoted: Vec<Option<&str>> = messages.iter().map(|(_, r)| r.quoted_history.as_deref()).collect();
    let attachments: Vec<serde_json::Value> = messages
        .iter()
        .map(|(_, r)| serde_json::to_value(&r.attachments).unwrap_or_default())
        .collect();
    let submitted_by: Vec<Option<&str>> = messages.iter().map(|(_, r)| r.submitted_by.as_deref()).collect();
    let records: Vec<Option<serde_json::Value>> = messages
        .iter()
        .map(|(_, r)| r.record.as_ref().and_then(|x| serde_json::to_value(x).ok()))
        .collect();
    let rows = tx
        .query(
            &prepared(
                tx,
                "INSERT INTO ticket_messages (ticket_id, channel, channel_message_id, received_at, subject, body, quoted_history, attachments, submitted_by, record)
                     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::jsonb[], $9::text[], $10::jsonb[])
                     ON CONFLICT (channel, channel_message_id) DO NOTHING
                     RETURNING channel, channel_message_id",
            )
            .await?,
            &[&tids, &channels, &cmids, &received, &subjects, &bodies, &quoted, &attachments, &submitted_by, &records],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Records that each thread key leads to its ticket. A key already leading to a ticket keeps
/// it: a later message never re-points a conversation.
pub async fn register_thread_keys(tx: &Transaction<'_>, keys: &[String], ticket_ids: &[i64]) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    tx.execute(
        &prepared(
            tx,
            "INSERT INTO thread_keys (key, ticket_id)
                     SELECT DISTINCT k, t FROM unnest($1::text[], $2::bigint[]) AS u(k, t)
                     ON CONFLICT (key, ticket_id) DO NOTHING",
        )
        .await?,
        &[&keys, &ticket_ids],
    )
    .await?;
    Ok(())
}
