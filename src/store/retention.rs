//! The retention job (SPEC §7): anonymises or purges tickets closed longer ago than the policy's
//! period, keeps the transition log's monthly partitions ready ahead and drops the expired
//! ones whole, and manages legal holds, which stop all of it for a ticket or a customer.
//!
//! Order of a run: create partitions ahead → drop every month that lies before the cutoff and
//! holds only rows of expired, unheld tickets → anonymise or purge the expired tickets in
//! batches (their transition rows left in months that could not be dropped are scrubbed or
//! deleted, and customer records no live ticket needs any more are cleared) → prune the
//! processed-message ledger older than the cutoff. A dry run computes the
//! same counts and changes nothing.

use super::{Db, StoreError};
use crate::core::privacy::{mask_email, mask_phone};
use crate::core::retention::{RetentionMode, RetentionPolicy, month_start, partition_expired, partition_range};
use chrono::{DateTime, Months, Utc};
use serde::Serialize;
use std::fmt;
use tokio_postgres::GenericClient;

/// Shared with `Db::migrate`: partition DDL never runs during a migration.
const MIGRATION_LOCK: i64 = 7_269_001;
/// One retention run at a time.
const RUN_LOCK: i64 = 7_269_002;
/// Tickets anonymised or purged per transaction.
const BATCH: i64 = 500;
/// Dropping a partition briefly locks the whole transition log; give up rather than queue
/// behind a long transaction (the next run retries).
const DROP_LOCK_TIMEOUT: &str = "10s";

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("no ticket {0:?}: check the number with `switchboard ticket NUMBER`")]
    NoTicket(String),
    #[error("give a ticket number (--ticket N) or a customer id, phone or email (--customer ID)")]
    NoSubject,
    #[error(
        "another retention run is in progress (advisory lock {RUN_LOCK} is held); wait for it to finish and run again"
    )]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for RetentionError {
    fn from(e: tokio_postgres::Error) -> Self {
        RetentionError::Store(StoreError::Db(e))
    }
}

impl From<deadpool_postgres::PoolError> for RetentionError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        RetentionError::Store(e.into())
    }
}

/// SQL: the digits of a phone number, a leading 86 dropped from a 13-digit number. A little more
/// lenient than intake's `customers::normal_phone` (which drops it only after a `+`), so a hold
/// written either way catches the customer.
fn phone_digits(expr: &str) -> String {
    format!("regexp_replace(regexp_replace(coalesce({expr}, ''), '[^0-9]', '', 'g'), '^86([0-9]{{11}})$', '\\1')")
}

/// SQL predicate on a ticket aliased `t`: an active legal hold covers it, on the ticket or on its
/// customer (customer id exactly, email case-insensitively, phone by digits when the hold is
/// phone-like).
fn held_sql() -> String {
    held_sql_on("t")
}

fn held_sql_on(t: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM legal_holds h WHERE h.released_at IS NULL AND (
            h.ticket_id = {t}.id
            OR h.customer = {t}.customer->>'customer_id'
            OR lower(h.customer) = lower({t}.customer->>'email')
            OR (h.customer ~ '^[+0-9 ()-]+$' AND length({hold}) >= 7 AND {hold} = {ticket})
            -- The customer's record: a hold on one contact covers every ticket of that
            -- customer, whichever contact each was opened with.
            OR EXISTS (SELECT 1 FROM customers c WHERE c.id = {t}.customer_ref AND (
                h.customer = c.customer_id
                OR lower(h.customer) = c.email
                OR (h.customer ~ '^[+0-9 ()-]+$' AND length({hold}) >= 7 AND {hold} = {record})))))",
        hold = phone_digits("h.customer"),
        ticket = phone_digits(&format!("{t}.customer->>'phone'")),
        record = phone_digits("c.phone")
    )
}

/// SQL predicate on `t`: closed before `$1` and not held.
fn expired_sql() -> String {
    expired_sql_on("t")
}

fn expired_sql_on(t: &str) -> String {
    format!(
        "({t}.state = 'closed' AND {t}.closed_at < $1 AND NOT {})",
        held_sql_on(t)
    )
}

/// SQL predicate on `t`: a ticket this run anonymises or purges.
fn pending_sql_on(mode: RetentionMode, t: &str) -> String {
    match mode {
        RetentionMode::Anonymise => format!("({} AND {t}.anonymised_at IS NULL)", expired_sql_on(t)),
        RetentionMode::Purge => expired_sql_on(t),
    }
}

/// SQL predicate on `o`: a ticket that still carries its customer's contacts after the run.
fn survives_sql_on(mode: RetentionMode, o: &str) -> String {
    match mode {
        RetentionMode::Anonymise => format!("({o}.anonymised_at IS NULL AND NOT {})", pending_sql_on(mode, o)),
        RetentionMode::Purge => format!("(NOT {})", pending_sql_on(mode, o)),
    }
}

// ---------------------------------------------------------------------------------------------
// Partitions
// ---------------------------------------------------------------------------------------------

/// Creates the monthly partitions of `ticket_transitions` from the current month through
/// `months_ahead` months ahead (and for any month whose rows sit in the default partition).
/// Returns the names created. Run at every start (after migrating) and by the retention job.
pub async fn ensure_partitions(db: &Db, months_ahead: u32, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
    let mut client = db.pool.get().await?;
    let tx = client.transaction().await?;
    let created = ensure_in(&tx, months_ahead, now).await?;
    tx.commit().await?;
    Ok(created)
}

async fn ensure_in(
    tx: &tokio_postgres::Transaction<'_>,
    months_ahead: u32,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let from = month_start(now);
    let to = from.checked_add_months(Months::new(months_ahead)).unwrap_or(from);
    let rows = tx
        .query("SELECT ensure_transition_partitions($1, $2)", &[&from, &to])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A monthly partition of the transition log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionInfo {
    pub name: String,
    pub rows: i64,
    /// Rows of tickets that are not expired (open, closed recently) or held: these keep it.
    pub live_rows: i64,
    pub held_rows: i64,
}

/// Monthly partitions, oldest first.
pub async fn partitions<C: GenericClient>(c: &C) -> Result<Vec<String>, StoreError> {
    month_tables(c, true).await
}

/// Monthly tables of the transition log in this schema, attached to it or (`attached: false`)
/// not: left by a run that stopped between detaching a month and dropping it.
async fn month_tables<C: GenericClient>(c: &C, attached: bool) -> Result<Vec<String>, StoreError> {
    let rows = c
        .query(
            "SELECT c.relname::text FROM pg_class c
             WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
               AND c.relname LIKE 'ticket\\_transitions\\_p%'
               AND EXISTS (SELECT 1 FROM pg_inherits i
                           WHERE i.inhrelid = c.oid AND i.inhparent = 'ticket_transitions'::regclass) = $1
             ORDER BY 1",
            &[&attached],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|n| partition_range(n).is_some())
        .collect())
}

/// A detached month: dropped when it is expired and no live or held ticket has rows in it,
/// otherwise attached again. Returns what it held and whether it was dropped.
async fn drop_or_reattach(
    client: &Client,
    name: &str,
    cutoff: DateTime<Utc>,
) -> Result<(PartitionInfo, bool), StoreError> {
    let info = inspect(&***client, name, cutoff).await?;
    if info.live_rows == 0 && partition_expired(name, cutoff) {
        client.batch_execute(&format!("DROP TABLE \"{name}\"")).await?;
        tracing::info!(partition = %name, rows = info.rows, "dropped an expired month of the transition log");
        return Ok((info, true));
    }
    if let Some((from, to)) = partition_range(name) {
        client
            .batch_execute(&format!(
                "ALTER TABLE ticket_transitions ATTACH PARTITION \"{name}\" FOR VALUES FROM ('{}') TO ('{}')",
                from.to_rfc3339(),
                to.to_rfc3339()
            ))
            .await?;
        tracing::info!(partition = %name, "kept a month of the transition log: a live or held ticket has rows in it");
    }
    Ok((info, false))
}

async fn inspect<C: GenericClient>(c: &C, name: &str, cutoff: DateTime<Utc>) -> Result<PartitionInfo, StoreError> {
    // `name` passed partition_range (prefix + six digits), so quoting it is enough.
    let row = c
        .query_one(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE NOT {expired}), count(*) FILTER (WHERE {held})
                 FROM \"{name}\" tr JOIN tickets t ON t.id = tr.ticket_id",
                expired = expired_sql(),
                held = held_sql()
            ),
            &[&cutoff],
        )
        .await?;
    Ok(PartitionInfo {
        name: name.to_owned(),
        rows: row.get(0),
        live_rows: row.get(1),
        held_rows: row.get(2),
    })
}

/// SQL: the name of the monthly partition a transition row `tr` belongs in.
const MONTH_OF_ROW: &str = "('ticket_transitions_p' || to_char(tr.at AT TIME ZONE 'UTC', 'YYYYMM'))";

/// Every month wholly before the cutoff that has a partition or rows, with its row counts.
/// `also` are partitions about to be created (a dry run's): the real run would create them, then
/// drop the expired empty ones.
async fn expired_months<C: GenericClient>(
    c: &C,
    cutoff: DateTime<Utc>,
    also: &[String],
) -> Result<Vec<PartitionInfo>, StoreError> {
    let rows = c
        .query(
            &format!(
                "SELECT {MONTH_OF_ROW}, count(*), count(*) FILTER (WHERE NOT {expired}), count(*) FILTER (WHERE {held})
                 FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id
                 WHERE tr.at < $2 GROUP BY 1",
                expired = expired_sql(),
                held = held_sql()
            ),
            &[&cutoff, &month_start(cutoff)],
        )
        .await?;
    let mut months: std::collections::BTreeMap<String, PartitionInfo> = rows
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            (
                name.clone(),
                PartitionInfo {
                    name,
                    rows: r.get(1),
                    live_rows: r.get(2),
                    held_rows: r.get(3),
                },
            )
        })
        .collect();
    for name in partitions(c).await?.into_iter().chain(also.iter().cloned()) {
        if partition_expired(&name, cutoff) {
            months.entry(name.clone()).or_insert(PartitionInfo {
                name,
                rows: 0,
                live_rows: 0,
                held_rows: 0,
            });
        }
    }
    Ok(months.into_values().collect())
}

// ---------------------------------------------------------------------------------------------
// Legal holds
// ---------------------------------------------------------------------------------------------

/// What a hold covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldSubject {
    Ticket(String),
    Customer(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub id: i64,
    /// Ticket number, for a ticket hold.
    pub ticket: Option<String>,
    /// Masked customer (`138****5678`, `z***@example.com`, or the customer id), for a customer hold.
    pub customer: Option<String>,
    pub reason: String,
    pub placed_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
}

/// How a customer given to `hold` is shown back: contacts masked, ids as they are.
pub fn mask_customer(value: &str) -> String {
    if value.contains('@') {
        mask_email(value)
    } else if value.chars().all(|c| c.is_ascii_digit() || "+ ()-".contains(c))
        && value.chars().filter(char::is_ascii_digit).count() >= 7
    {
        mask_phone(value)
    } else {
        value.to_owned()
    }
}

async fn ticket_id<C: GenericClient>(c: &C, number: &str) -> Result<i64, RetentionError> {
    c.query_opt("SELECT id FROM tickets WHERE number = $1", &[&number])
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| RetentionError::NoTicket(number.to_owned()))
}

/// Places a hold. Returns `false` when the same hold was already active (nothing changes).
pub async fn hold(db: &Db, subject: &HoldSubject, reason: &str) -> Result<bool, RetentionError> {
    let client = db.pool.get().await?;
    let n = match subject {
        HoldSubject::Ticket(number) => {
            let id = ticket_id(&**client, number).await?;
            client
                .execute(
                    "INSERT INTO legal_holds (ticket_id, reason) VALUES ($1, $2)
                     ON CONFLICT (ticket_id) WHERE released_at IS NULL AND ticket_id IS NOT NULL DO NOTHING",
                    &[&id, &reason],
                )
                .await?
        }
        HoldSubject::Customer(c) => {
            let c = c.trim();
            if c.is_empty() {
                return Err(RetentionError::NoSubject);
            }
            client
                .execute(
                    "INSERT INTO legal_holds (customer, reason) VALUES ($1, $2)
                     ON CONFLICT (customer) WHERE released_at IS NULL AND customer IS NOT NULL DO NOTHING",
                    &[&c, &reason],
                )
                .await?
        }
    };
    Ok(n == 1)
}

/// Releases the active hold. Returns `false` when there was none.
pub async fn release(db: &Db, subject: &HoldSubject) -> Result<bool, RetentionError> {
    let client = db.pool.get().await?;
    let n = match subject {
        HoldSubject::Ticket(number) => {
            let id = ticket_id(&**client, number).await?;
            client
                .execute(
                    "UPDATE legal_holds SET released_at = now() WHERE ticket_id = $1 AND released_at IS NULL",
                    &[&id],
                )
                .await?
        }
        HoldSubject::Customer(c) => {
            client
                .execute(
                    // A released hold keeps only a hash of the contact it named: the record says a
                    // hold existed and until when, not whose number it was.
                    "UPDATE legal_holds SET released_at = now(),
                            customer = 'released:' || encode(sha256(convert_to(customer, 'UTF8')), 'hex')
                     WHERE customer = $1 AND released_at IS NULL",
                    &[&c.trim()],
                )
                .await?
        }
    };
    Ok(n > 0)
}

/// Holds, active ones first; released ones too when `all`.
pub async fn holds(db: &Db, all: bool) -> Result<Vec<Hold>, RetentionError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            "SELECT h.id, t.number, h.customer, h.reason, h.placed_at, h.released_at
             FROM legal_holds h LEFT JOIN tickets t ON t.id = h.ticket_id
             WHERE $1 OR h.released_at IS NULL ORDER BY h.released_at IS NOT NULL, h.id",
            &[&all],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Hold {
            id: r.get(0),
            ticket: r.get(1),
            customer: r.get::<_, Option<&str>>(2).map(mask_customer),
            reason: r.get(3),
            placed_at: r.get(4),
            released_at: r.get(5),
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub dry_run: bool,
    pub mode: RetentionMode,
    pub period: String,
    pub cutoff: DateTime<Utc>,
    /// Partitions created ahead (dry run: that would be).
    pub partitions_created: Vec<String>,
    /// Closed before the cutoff, held or not.
    pub closed_before_cutoff: i64,
    /// Of those, kept by a legal hold.
    pub held: i64,
    /// Anonymised by an earlier run (anonymise mode only).
    pub already_anonymised: i64,
    /// Anonymised or purged now.
    pub processed: i64,
    /// Expired months dropped whole, with their row counts.
    pub partitions_dropped: Vec<PartitionInfo>,
    /// Expired months kept because live or held tickets have rows in them.
    pub partitions_kept: Vec<PartitionInfo>,
    /// Transition rows of processed tickets outside the dropped months: scrubbed (anonymise) or
    /// deleted (purge).
    pub transition_rows_rewritten: i64,
    /// Customer records (`customers`) left with no ticket that needs their contacts: contacts
    /// removed (anonymise) or the record deleted (purge).
    pub customers_cleared: i64,
    /// Processed-message ledger entries older than the cutoff, deleted.
    pub ledger_entries_pruned: i64,
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let would = if self.dry_run { "would be " } else { "" };
        let verb = match self.mode {
            RetentionMode::Anonymise => "anonymised",
            RetentionMode::Purge => "purged",
        };
        writeln!(
            f,
            "retention{}: mode {}, period {}, cutoff {} (tickets closed before it have expired)",
            if self.dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            },
            self.mode.as_str(),
            self.period,
            self.cutoff.to_rfc3339()
        )?;
        writeln!(
            f,
            "  partitions {would}created ahead: {}",
            if self.partitions_created.is_empty() {
                "none needed".to_owned()
            } else {
                self.partitions_created.join(", ")
            }
        )?;
        writeln!(f, "  tickets closed before the cutoff: {}", self.closed_before_cutoff)?;
        writeln!(f, "    kept by a legal hold:          {}", self.held)?;
        if self.mode == RetentionMode::Anonymise {
            writeln!(f, "    anonymised earlier:            {}", self.already_anonymised)?;
        }
        writeln!(f, "    {:<31}{}", format!("{would}{verb} now:"), self.processed)?;
        writeln!(
            f,
            "  transition-log months {would}dropped: {}",
            self.partitions_dropped.len()
        )?;
        for p in &self.partitions_dropped {
            writeln!(f, "    {} ({} rows)", p.name, p.rows)?;
        }
        for p in &self.partitions_kept {
            writeln!(
                f,
                "    {} kept: {} of {} rows belong to live tickets, {} to held ones",
                p.name, p.live_rows, p.rows, p.held_rows
            )?;
        }
        writeln!(
            f,
            "  transition rows of {verb} tickets in kept months {would}{}: {}",
            match self.mode {
                RetentionMode::Anonymise => "scrubbed",
                RetentionMode::Purge => "deleted",
            },
            self.transition_rows_rewritten
        )?;
        writeln!(
            f,
            "  customer records left without a live ticket {would}{}: {}",
            match self.mode {
                RetentionMode::Anonymise => "anonymised",
                RetentionMode::Purge => "deleted",
            },
            self.customers_cleared
        )?;
        write!(
            f,
            "  processed-message ledger entries older than the cutoff {would}deleted: {}",
            self.ledger_entries_pruned
        )
    }
}

/// Runs retention under `policy` as of `now`.
pub async fn run(
    db: &Db,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<RunReport, RetentionError> {
    // The run lock is a session lock on a connection kept for the whole run.
    let lock_conn = db.pool.get().await?;
    let got: bool = lock_conn
        .query_one("SELECT pg_try_advisory_lock($1)", &[&RUN_LOCK])
        .await?
        .get(0);
    if !got {
        return Err(RetentionError::Busy);
    }
    let result = run_locked(db, policy, now, dry_run).await;
    let _ = lock_conn.execute("SELECT pg_advisory_unlock($1)", &[&RUN_LOCK]).await;
    result
}

async fn run_locked(
    db: &Db,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<RunReport, RetentionError> {
    let cutoff = policy.cutoff(now);
    let mut client = db.pool.get().await?;
    let partitions_created = partitions_ahead(&mut client, policy, now, dry_run).await?;
    let (closed_before_cutoff, held, already_anonymised) = closed_counts(&client, cutoff).await?;
    let (partitions_dropped, partitions_kept) =
        expired_partitions(&mut client, cutoff, &partitions_created, dry_run).await?;
    let (processed, transition_rows_rewritten, customers_cleared) = if dry_run {
        expired_tickets_counted(&client, policy, cutoff, &partitions_dropped).await?
    } else {
        expired_tickets_applied(&mut client, policy, cutoff, now).await?
    };
    let ledger_entries_pruned = prune_ledger(&client, policy.ledger_cutoff(now), dry_run).await?;
    Ok(RunReport {
        dry_run,
        mode: policy.mode,
        period: policy.period.to_string(),
        cutoff,
        partitions_created,
        closed_before_cutoff,
        held,
        already_anonymised,
        processed,
        partitions_dropped,
        partitions_kept,
        transition_rows_rewritten,
        customers_cleared,
        ledger_entries_pruned,
    })
}

type Client = deadpool_postgres::Object;

/// Step 1: partitions ahead. A dry run creates them in a transaction it rolls back, which gives
/// the exact list without keeping anything.
async fn partitions_ahead(
    client: &mut Client,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<Vec<String>, RetentionError> {
    let tx = client.transaction().await?;
    let created = ensure_in(&tx, policy.partition_months_ahead, now).await?;
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(created)
}

/// Closed tickets before the cutoff: all of them, those held, those already anonymised.
async fn closed_counts(client: &Client, cutoff: DateTime<Utc>) -> Result<(i64, i64, i64), RetentionError> {
    let counts = client
        .query_one(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE {held}),
                        count(*) FILTER (WHERE NOT {held} AND t.anonymised_at IS NOT NULL)
                 FROM tickets t WHERE t.state = 'closed' AND t.closed_at < $1",
                held = held_sql()
            ),
            &[&cutoff],
        )
        .await?;
    Ok((counts.get(0), counts.get(1), counts.get(2)))
}

/// Step 2: expired months of the transition log, dropped whole when only expired, unheld
/// tickets have rows in them. Returns the months dropped (or that a real run would drop) and
/// those kept.
async fn expired_partitions(
    client: &mut Client,
    cutoff: DateTime<Utc>,
    partitions_created: &[String],
    dry_run: bool,
) -> Result<(Vec<PartitionInfo>, Vec<PartitionInfo>), RetentionError> {
    let mut partitions_dropped = Vec::new();
    let mut partitions_kept = Vec::new();
    if dry_run {
        // Rows of a month not created yet sit in the default partition; the real run would
        // first move them into their month, so look at the log by month, not by partition.
        for info in expired_months(&***client, cutoff, partitions_created).await? {
            if info.live_rows == 0 {
                partitions_dropped.push(info);
            } else {
                partitions_kept.push(info);
            }
        }
        return Ok((partitions_dropped, partitions_kept));
    }
    // A run that died between detaching a month and dropping it left the month detached:
    // finish its work (drop it, or put it back) before anything else.
    let mut settle = |(info, dropped): (PartitionInfo, bool)| {
        if dropped {
            partitions_dropped.push(info);
        } else {
            partitions_kept.push(info);
        }
    };
    for name in month_tables(&***client, false).await? {
        settle(drop_or_reattach(client, &name, cutoff).await?);
    }
    for name in partitions(&***client).await? {
        if !partition_expired(&name, cutoff) {
            continue;
        }
        // Scan first, with no lock on the log: the month's rows are old, and writers only add
        // rows for now. A month with live rows is kept without ever taking a lock.
        let info = inspect(&***client, &name, cutoff).await?;
        if info.live_rows > 0 {
            settle((info, false));
            continue;
        }
        // Lock only to detach: the parent is held exclusively for the catalogue change alone.
        let tx = client.transaction().await?;
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'; ALTER TABLE ticket_transitions DETACH PARTITION \"{name}\""
        ))
        .await?;
        tx.commit().await?;
        // Detached, the month is a table of its own: check it again (a legal hold placed since
        // the scan keeps it) and drop it, or put it back.
        settle(drop_or_reattach(client, &name, cutoff).await?);
    }
    Ok((partitions_dropped, partitions_kept))
}

/// Step 3, dry run: how many expired tickets, transition rows and customers a real run would
/// touch. Rows in months that would be dropped go with them, not one by one.
async fn expired_tickets_counted(
    client: &Client,
    policy: &RetentionPolicy,
    cutoff: DateTime<Utc>,
    partitions_dropped: &[PartitionInfo],
) -> Result<(i64, i64, i64), RetentionError> {
    let pending_sql = pending_sql_on(policy.mode, "t");
    let dropped: Vec<String> = partitions_dropped.iter().map(|p| p.name.clone()).collect();
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM tickets t WHERE {pending_sql}),
                        (SELECT count(*) FROM tickets t JOIN ticket_transitions tr ON tr.ticket_id = t.id
                         WHERE {pending_sql} AND NOT ({MONTH_OF_ROW} = ANY($2)))"
            ),
            &[&cutoff, &dropped],
        )
        .await?;
    // Customers left with no ticket that still needs their contacts.
    let customers_cleared: i64 = client
        .query_one(
            &format!(
                "SELECT count(DISTINCT t.customer_ref) FROM tickets t
                 WHERE {pending_sql} AND t.customer_ref IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM tickets o WHERE o.customer_ref = t.customer_ref AND {survives})",
                survives = survives_sql_on(policy.mode, "o")
            ),
            &[&cutoff],
        )
        .await?
        .get(0);
    Ok((row.get(0), row.get(1), customers_cleared))
}

/// Step 3: anonymises or purges the expired tickets, a batch per transaction. Returns the
/// tickets processed, transition rows rewritten and customers cleared.
async fn expired_tickets_applied(
    client: &mut Client,
    policy: &RetentionPolicy,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(i64, i64, i64), RetentionError> {
    let pending_sql = pending_sql_on(policy.mode, "t");
    let (mut processed, mut transition_rows_rewritten, mut customers_cleared) = (0i64, 0i64, 0i64);
    loop {
        let tx = client.transaction().await?;
        let ids: Vec<i64> = tx
            .query(
                &format!(
                    "SELECT t.id FROM tickets t WHERE {pending_sql} ORDER BY t.id LIMIT {BATCH} FOR UPDATE SKIP LOCKED"
                ),
                &[&cutoff],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if ids.is_empty() {
            tx.rollback().await?;
            break;
        }
        let (rows, customers) = match policy.mode {
            RetentionMode::Anonymise => anonymise(&tx, &ids, now).await?,
            RetentionMode::Purge => purge(&tx, &ids).await?,
        };
        transition_rows_rewritten += rows;
        customers_cleared += customers;
        tx.commit().await?;
        processed += ids.len() as i64;
    }
    Ok((processed, transition_rows_rewritten, customers_cleared))
}

/// Step 4: the ledger only de-duplicates redeliveries; entries this old serve nothing and carry
/// ticket views (names, masked contacts). Returns how many are (or would be) deleted.
async fn prune_ledger(client: &Client, cutoff: DateTime<Utc>, dry_run: bool) -> Result<i64, RetentionError> {
    Ok(if dry_run {
        client
            .query_one(
                "SELECT count(*) FROM processed_messages WHERE processed_at < $1",
                &[&cutoff],
            )
            .await?
            .get(0)
    } else {
        client
            .execute("DELETE FROM processed_messages WHERE processed_at < $1", &[&cutoff])
            .await? as i64
    })
}

/// A `ticket.anonymised` event per ticket, through the outbox (the scheduler's relay publishes
/// it): consumers that kept earlier events erase their copies.
async fn announce(
    tx: &tokio_postgres::Transaction<'_>,
    ids: &[i64],
    at: DateTime<Utc>,
    purged: bool,
) -> Result<(), StoreError> {
    let numbers: Vec<String> = tx
        .query("SELECT number FROM tickets WHERE id = ANY($1) ORDER BY id", &[&ids])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let events: Vec<crate::contracts::Outgoing> = numbers
        .iter()
        .map(|n| crate::contracts::events::anonymised_event(n, at, purged))
        .collect();
    super::outbox::insert(tx, &events).await?;
    Ok(())
}

/// Removes contacts, names and free text; keeps numbers, categories, channels, teams, times,
/// ratings and the SLA record, so reports over old periods still add up.
/// Returns the transition rows scrubbed and the customer records anonymised.
async fn anonymise(
    tx: &tokio_postgres::Transaction<'_>,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<(i64, i64), StoreError> {
    announce(tx, ids, now, false).await?;
    // Message ids name people (an email's Message-ID embeds the sender's address): they leave
    // the transitions' reasons and details first, then become one-way hashes (still unique).
    tx.execute(
        "UPDATE ticket_transitions tr SET
            reason = CASE WHEN tr.actor = 'intake' THEN 'opened from ' || coalesce(tr.details->>'channel', 'a') || ' message (id removed by retention)'
                          ELSE replace(tr.reason, t.channel_message_id, '[message id removed]') END,
            details = tr.details - 'channel_message_id' #- '{data,message}'
         FROM tickets t WHERE t.id = tr.ticket_id AND tr.ticket_id = ANY($1)",
        &[&ids],
    )
    .await?;
    for table in ["ticket_messages", "tickets"] {
        let id_column = if table == "tickets" { "id" } else { "ticket_id" };
        tx.execute(
            &format!(
                "UPDATE {table} SET channel_message_id = 'anonymised:' || encode(sha256(convert_to(channel_message_id, 'UTF8')), 'hex')
                 WHERE {id_column} = ANY($1) AND channel_message_id NOT LIKE 'anonymised:%'"
            ),
            &[&ids],
        )
        .await?;
    }
    tx.execute(
        "UPDATE tickets SET
            customer = jsonb_strip_nulls(jsonb_build_object('tier', customer->'tier')),
            subject = NULL, body = '[anonymised]', rating_comment = NULL, search_terms = '{}',
            resolution = CASE WHEN resolution IS NULL THEN NULL
                              ELSE jsonb_build_object('anonymised', true, 'at', resolution->'at') END,
            -- The service record keeps what reports count, none of the customer's words.
            record = jsonb_strip_nulls(jsonb_build_object('urgency', record->'urgency',
                'callback_requested', record->'callback_requested', 'archived_on', record->'archived_on')),
            confirmation = confirmation - 'note',
            anonymised_at = $2, updated_at = now()
         WHERE id = ANY($1)",
        &[&ids, &now],
    )
    .await?;
    tx.execute(
        "UPDATE ticket_messages SET subject = NULL, body = '[anonymised]', quoted_history = NULL, attachments = '[]', record = NULL
         WHERE ticket_id = ANY($1)",
        &[&ids],
    )
    .await?;
    // Chat sessions and email Message-IDs point at people; an old conversation continuing
    // opens a new ticket.
    tx.execute("DELETE FROM thread_keys WHERE ticket_id = ANY($1)", &[&ids])
        .await?;
    // What was sent quotes the customer (the address, the name, replies and the events' texts);
    // survey comments and follow-up outcomes are their words or about them. Scores stay.
    tx.execute("DELETE FROM deliveries WHERE ticket_id = ANY($1)", &[&ids])
        .await?;
    tx.execute("UPDATE surveys SET comment = NULL WHERE ticket_id = ANY($1)", &[&ids])
        .await?;
    tx.execute(
        "UPDATE follow_ups SET outcome = NULL WHERE ticket_id = ANY($1)",
        &[&ids],
    )
    .await?;
    // What agents and customers wrote lives in lifecycle transitions: the free-text reason and
    // the message, comment and resolution fields of the details. A rating's `reason` is a code
    // of the policy's taxonomy, checked when rated, not text: it stays, so reports on an old
    // period still count why customers were unsatisfied.
    let n = tx
        .execute(
            "UPDATE ticket_transitions SET
                reason = CASE WHEN details ? 'action'
                              THEN coalesce(details->>'event', details->>'action') || ' (text removed by retention)'
                              ELSE reason END,
                details = details #- '{data,message}' #- '{data,comment}' #- '{data,result}' #- '{data,notes}'
                                  #- '{data,root_cause}' #- '{data,text}' #- '{data,url}' #- '{data,name}'
                                  #- (CASE WHEN details->>'action' = 'rate' THEN '{data,kept}' ELSE '{data,reason}' END)::text[]
                                  #- '{data,before}' #- '{data,after}' #- '{data,note}'
                                  #- '{data,summary}' #- '{data,done}'
             WHERE ticket_id = ANY($1)",
            &[&ids],
        )
        .await?;
    tx.execute(
        "UPDATE classifier_corrections SET reason = '(text removed by retention)' WHERE ticket_id = ANY($1)",
        &[&ids],
    )
    .await?;
    // The customer record keeps its contacts while any ticket still needs them (open, recent,
    // held); after its last ticket only the tier stays.
    let customers = tx
        .execute(
            "UPDATE customers c SET customer_id = NULL, phone = NULL, email = NULL, name = NULL, updated_at = now()
             WHERE c.id IN (SELECT customer_ref FROM tickets WHERE id = ANY($1))
               AND NOT EXISTS (SELECT 1 FROM tickets o WHERE o.customer_ref = c.id AND o.anonymised_at IS NULL)
               AND (c.customer_id IS NOT NULL OR c.phone IS NOT NULL OR c.email IS NOT NULL OR c.name IS NOT NULL)",
            &[&ids],
        )
        .await?;
    Ok((n as i64, customers as i64))
}

/// Deletes the tickets and everything attached to them, and customer records left without a
/// ticket. Returns the transition rows and customer records deleted.
async fn purge(tx: &tokio_postgres::Transaction<'_>, ids: &[i64]) -> Result<(i64, i64), StoreError> {
    announce(tx, ids, Utc::now(), true).await?;
    let refs: Vec<i64> = tx
        .query(
            "SELECT DISTINCT customer_ref FROM tickets WHERE id = ANY($1) AND customer_ref IS NOT NULL",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for table in [
        "thread_keys",
        "ticket_messages",
        "ticket_pauses",
        "sla_timers",
        "escalations",
        // Released holds only: an active one keeps the ticket out of the batch.
        "legal_holds",
        "ticket_redrives",
        "classifier_corrections",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE ticket_id = ANY($1)"), &[&ids])
            .await?;
    }
    tx.execute(
        "DELETE FROM ticket_links WHERE ticket_id = ANY($1) OR other_id = ANY($1)",
        &[&ids],
    )
    .await?;
    let n = tx
        .execute("DELETE FROM ticket_transitions WHERE ticket_id = ANY($1)", &[&ids])
        .await?;
    tx.execute("DELETE FROM tickets WHERE id = ANY($1)", &[&ids]).await?;
    let customers = tx
        .execute(
            "DELETE FROM customers c WHERE c.id = ANY($1)
               AND NOT EXISTS (SELECT 1 FROM tickets o WHERE o.customer_ref = c.id)",
            &[&refs],
        )
        .await?;
    Ok((n as i64, customers as i64))
}
