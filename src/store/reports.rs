//! Loads the rows a report is computed from (`report::ReportInput`): the tickets received in the
//! period with their pauses, their `classified` and escalation transitions and escalations, and
//! the complaints of the period and the 30 days before it. Read-only, a handful of statements.

use super::{Db, StoreError};
use crate::core::customer::Customer;
use crate::core::policy::Policy;
use crate::core::report::{ComplaintRow, Period, REPEAT_WINDOW_DAYS, Report, ReportInput, TicketRow, customer_key};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

/// A `classified` transition is written seconds after the ticket's `received_at`; the slack
/// covers a channel clock ahead of ours while still letting Postgres skip old months.
const TRANSITION_SLACK: &str = "interval '1 day'";

fn customer_of(v: serde_json::Value) -> Option<String> {
    serde_json::from_value::<Customer>(v)
        .ok()
        .as_ref()
        .and_then(customer_key)
}

/// Everything `Report::build` needs for `period`, read in one repeatable-read transaction so the
/// figures agree with each other.
pub async fn load(db: &Db, policy: &Policy, period: &Period, now: DateTime<Utc>) -> Result<ReportInput, StoreError> {
    let mut client = db.pool.get().await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let (from, to) = (period.from, period.to);
    let rows = tx
        .query(
            "SELECT id, channel, category, priority, team, state, received_at, first_responded_at, resolved_at,
                    closed_at, last_update_at, sla_restarted_at, rating, milestones, number, assignee
             FROM tickets WHERE received_at >= $1 AND received_at < $2
               AND channel <> 'task' ORDER BY id",
            &[&from, &to],
        )
        .await?;
    let mut tickets: Vec<TicketRow> = rows
        .iter()
        .map(|r| TicketRow {
            id: r.get(0),
            channel: r.get(1),
            category: r.get(2),
            priority: r.get(3),
            team: r.get(4),
            state: r.get(5),
            received_at: r.get(6),
            first_responded_at: r.get(7),
            resolved_at: r.get(8),
            closed_at: r.get(9),
            last_update_at: r.get(10),
            restarted_at: r.get(11),
            rating: r.get(12),
            milestones: r
                .get::<_, Option<serde_json::Value>>(13)
                .and_then(|v| serde_json::from_value::<BTreeMap<String, DateTime<Utc>>>(v).ok())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, at)| Some((crate::core::sla::Target::parse(&k)?, at)))
                .collect(),
            number: r.get(14),
            assignee: r.get(15),
            ..TicketRow::default()
        })
        .collect();
    let index: HashMap<i64, usize> = tickets.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
    let at = |id: i64| index.get(&id).copied();

    for r in tx
        .query(
            "SELECT p.ticket_id, p.started_at, p.ended_at FROM ticket_pauses p JOIN tickets t ON t.id = p.ticket_id
             WHERE t.received_at >= $1 AND t.received_at < $2 ORDER BY p.ticket_id, p.started_at",
            &[&from, &to],
        )
        .await?
    {
        if let Some(i) = at(r.get(0)) {
            tickets[i].pauses.push((r.get(1), r.get(2)));
        }
    }

    for r in tx
        .query(
            &format!(
                "SELECT DISTINCT ON (tr.ticket_id) tr.ticket_id, tr.details->'reasons'
                 FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id
                 WHERE tr.at >= $1::timestamptz - {TRANSITION_SLACK} AND tr.to_state = 'classified'
                   AND t.received_at >= $1 AND t.received_at < $2
                 ORDER BY tr.ticket_id, tr.seq DESC"
            ),
            &[&from, &to],
        )
        .await?
    {
        let reasons: Option<serde_json::Value> = r.get(1);
        if let (Some(i), Some(serde_json::Value::Array(items))) = (at(r.get(0)), reasons) {
            tickets[i].classifier_reasons = items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
        }
    }

    // The unsatisfied reason of each ticket's latest rating (its `rated` step's data).
    for r in tx
        .query(
            &format!(
                "SELECT DISTINCT ON (tr.ticket_id) tr.ticket_id, tr.details->'data'->>'reason'
                 FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id
                 WHERE tr.at >= $1::timestamptz - {TRANSITION_SLACK} AND tr.details->>'event' = 'rated'
                   AND t.received_at >= $1 AND t.received_at < $2
                 ORDER BY tr.ticket_id, tr.seq DESC"
            ),
            &[&from, &to],
        )
        .await?
    {
        if let Some(i) = at(r.get(0)) {
            tickets[i].rating_reason = r.get(1);
        }
    }

    // Escalation steps are the escalate stage's transitions that carry a ladder step.
    for r in tx
        .query(
            &format!(
                "SELECT tr.ticket_id, tr.details->>'target'
                 FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id
                 WHERE tr.at >= $1::timestamptz - {TRANSITION_SLACK} AND tr.actor = 'escalate' AND tr.details ? 'step'
                   AND t.received_at >= $1 AND t.received_at < $2"
            ),
            &[&from, &to],
        )
        .await?
    {
        if let (Some(i), Some(target)) = (at(r.get(0)), r.get::<_, Option<String>>(1)) {
            tickets[i].escalation_steps.push(target);
        }
    }

    for r in tx
        .query(
            "SELECT e.ticket_id, e.target, e.acknowledged_at IS NOT NULL FROM escalations e JOIN tickets t ON t.id = e.ticket_id
             WHERE t.received_at >= $1 AND t.received_at < $2",
            &[&from, &to],
        )
        .await?
    {
        if let Some(i) = at(r.get(0)) {
            tickets[i].breaches.push((r.get(1), r.get(2)));
        }
    }

    let complaints = tx
        .query(
            &format!(
                "SELECT id, customer, received_at FROM tickets
                 WHERE category = 'complaint' AND channel <> 'task' AND received_at >= $1::timestamptz - interval '{REPEAT_WINDOW_DAYS} days'
                   AND received_at < $2"
            ),
            &[&from, &to],
        )
        .await?
        .into_iter()
        .map(|r| ComplaintRow {
            ticket_id: r.get(0),
            customer_key: customer_of(r.get(1)),
            received_at: r.get(2),
        })
        .collect();
    tx.commit().await?;

    Ok(ReportInput {
        period: period.clone(),
        generated_at: now,
        policy_version: policy.version().to_owned(),
        tickets,
        complaints,
        unsatisfied_at_or_below: policy.doc.lifecycle.reopen_rating_at_or_below,
        unsatisfied_reasons: policy.doc.lifecycle.unsatisfied_reasons.keys().cloned().collect(),
        suggestions_category: policy.doc.reports.suggestions_category.clone(),
    })
}

/// Loads and computes the report for `period` under `policy`.
pub async fn report(db: &Db, policy: &Policy, period: &Period, now: DateTime<Utc>) -> Result<Report, StoreError> {
    let input = load(db, policy, period, now).await?;
    Ok(Report::build(&input, &policy.doc.sla, policy.calendar()))
}

/// Whether the report of `kind` for `day` has been made (the ledger, `report_runs`).
pub async fn run_recorded(db: &Db, kind: &str, day: chrono::NaiveDate) -> Result<bool, StoreError> {
    let client = db.pool.get().await?;
    Ok(client
        .query_opt("SELECT 1 FROM report_runs WHERE kind = $1 AND day = $2", &[&kind, &day])
        .await?
        .is_some())
}

/// Records the report of `kind` for `day` and queues its deliveries, in one transaction. Returns
/// `false`, queuing nothing, when another scheduler (or this one before a restart) already has:
/// the ledger row's key makes it once per day.
pub async fn record_run(
    db: &Db,
    kind: &str,
    day: chrono::NaiveDate,
    planned: &[crate::core::notify::Planned],
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut client = db.pool.get().await?;
    let tx = client.transaction().await?;
    let n = i32::try_from(planned.len()).unwrap_or(i32::MAX);
    let inserted = tx
        .execute(
            "INSERT INTO report_runs (kind, day, deliveries) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&kind, &day, &n],
        )
        .await?;
    if inserted == 0 {
        return Ok(false);
    }
    let label = format!("{kind}-{day}");
    let rows: Vec<_> = planned.iter().map(|p| (p, None, label.as_str(), None)).collect();
    super::outbound::insert_deliveries(&tx, &rows, now).await?;
    tx.commit().await?;
    Ok(true)
}
