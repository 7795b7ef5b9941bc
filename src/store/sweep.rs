//! What the sweeper looks for: tickets whose next pipeline step never happened (their work
//! message lost, or dead-lettered by the broker after too many deliveries), and teams whose
//! queue waits although an agent is free (a drain request lost).

use super::StoreError;
use super::tickets::{TICKET_COLUMNS, ticket_from_row};
use crate::core::ticket::Ticket;
use deadpool_postgres::Transaction;

/// Tickets waiting in `received`, `classified` or `prioritized` unchanged for `stale_after_s`,
/// which the sweeper has re-driven fewer than `max_attempts` times at their current version
/// (and not within `stale_after_s`). Each is recorded as re-driven once more; rows another
/// sweeper holds are skipped.
pub async fn stuck_tickets(
    tx: &Transaction<'_>,
    stale_after_s: f64,
    max_attempts: i32,
    limit: i64,
) -> Result<Vec<Ticket>, StoreError> {
    let rows = tx
        .query(
            &format!(
                "SELECT {TICKET_COLUMNS} FROM tickets t
                 WHERE t.state IN ('received', 'classified', 'prioritized')
                   AND t.updated_at < now() - make_interval(secs => $1)
                   AND NOT EXISTS (SELECT 1 FROM ticket_redrives r
                                   WHERE r.ticket_id = t.id AND r.version = t.version
                                     AND (r.attempts >= $2 OR r.last_at >= now() - make_interval(secs => $1)))
                 ORDER BY t.id LIMIT $3 FOR UPDATE SKIP LOCKED"
            ),
            &[&stale_after_s, &max_attempts, &limit],
        )
        .await?;
    let tickets: Vec<Ticket> = rows.iter().map(ticket_from_row).collect::<Result<_, _>>()?;
    if tickets.is_empty() {
        return Ok(tickets);
    }
    let ids: Vec<i64> = tickets.iter().map(|t| t.id).collect();
    let versions: Vec<i32> = tickets.iter().map(|t| t.version).collect();
    tx.execute(
        "INSERT INTO ticket_redrives (ticket_id, version, attempts, last_at)
         SELECT id, v, 1, now() FROM unnest($1::bigint[], $2::int[]) AS u(id, v)
         ON CONFLICT (ticket_id) DO UPDATE SET
            attempts = CASE WHEN ticket_redrives.version = EXCLUDED.version THEN ticket_redrives.attempts + 1 ELSE 1 END,
            version = EXCLUDED.version, last_at = now()",
        &[&ids, &versions],
    )
    .await?;
    Ok(tickets)
}

/// Teams with a ticket queued for longer than `stale_after_s` and an online agent with a free
/// slot: their queue should have moved.
pub async fn teams_to_drain(tx: &Transaction<'_>, stale_after_s: f64) -> Result<Vec<String>, StoreError> {
    let rows = tx
        .query(
            "SELECT DISTINCT t.team FROM tickets t
             WHERE t.state = 'queued' AND t.team IS NOT NULL AND t.updated_at < now() - make_interval(secs => $1)
               AND EXISTS (SELECT 1 FROM agent_loads a WHERE a.team = t.team AND a.presence = 'online'
                           AND a.open_tickets < a.max_open)
             ORDER BY t.team",
            &[&stale_after_s],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
