//! Retention on the real Postgres: the monthly partitioning of the transition log (migration and
//! insert path), anonymising and purging expired tickets with legal holds, dropping expired
//! months whole, and the `switchboard retention` commands.

use crate::backdate;
use crate::common;

use backdate::OldTicket;
use chrono::{DateTime, Duration, Months, Utc};
use common::{Harness, test_settings};
use serde_json::{Value, json};
use switchboard::app::StageName;
use switchboard::core::retention::{RetentionMode, RetentionPolicy, month_start, partition_name};
use switchboard::store::retention::{self, RetentionError, RunReport};
use switchboard::store::{Db, tickets};

use common::process::cli;

/// A retention run takes a database-wide advisory lock (one run at a time per database, by
/// design), and the purge test holds it on purpose: the retention tests, which share the test
/// database, take turns.
static RETENTION_RUNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn exists(db: &Db, table: &str) -> bool {
    let client = db.pool.get().await.unwrap();
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .unwrap()
        .get(0)
}

async fn partition_of_rows(db: &Db, ticket_id: i64) -> Vec<(String, DateTime<Utc>)> {
    let client = db.pool.get().await.unwrap();
    client
        .query(
            "SELECT tableoid::regclass::text, at FROM ticket_transitions WHERE ticket_id = $1 ORDER BY seq",
            &[&ticket_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn one<T: for<'a> tokio_postgres::types::FromSql<'a>>(db: &Db, sql: &str, id: i64) -> T {
    let client = db.pool.get().await.unwrap();
    client.query_one(sql, &[&id]).await.unwrap().get(0)
}

async fn transitions(db: &Db, id: i64) -> i64 {
    one(db, "SELECT count(*) FROM ticket_transitions WHERE ticket_id = $1", id).await
}

/// The first day of the month `n` months before this one.
fn months_ago(n: u32) -> DateTime<Utc> {
    month_start(Utc::now()).checked_sub_months(Months::new(n)).unwrap()
}

fn old_closed(number: &str, received: DateTime<Utc>) -> OldTicket {
    let mut t = OldTicket::new(number, received).closed(Duration::minutes(10), Duration::hours(3));
    t.customer = json!({"name": "张三", "phone": "13812345678", "email": "zhang.san@example.com",
                        "customer_id": format!("C-{number}"), "tier": "vip"});
    t.reasons = Some(vec![
        "inquiry 1: matched \"发货\"(+1, rule \"order or progress status\")".into(),
    ]);
    t.pauses = vec![(received + Duration::minutes(20), Some(received + Duration::minutes(50)))];
    t.rating = Some(4);
    t
}

/// V4 turns the V3 table into monthly partitions and keeps every row, in its month.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_transitions_survive_the_conversion_to_monthly_partitions() {
    let _one_run_at_a_time = RETENTION_RUNS.lock().await;
    let settings = test_settings("ret_migrate");
    switchboard::store::ensure_database(&settings.database_url)
        .await
        .unwrap();
    let db = Db::connect(&settings).await.unwrap();
    db.migrate_to(Some(3)).await.unwrap();
    let ids = {
        let client = db.pool.get().await.unwrap();
        client
            .batch_execute("INSERT INTO teams (id, name) VALUES ('front_line', 'Front line')")
            .await
            .unwrap();
        let mut ids = Vec::new();
        for (n, at) in [("M1", months_ago(26)), ("M2", months_ago(1)), ("M3", Utc::now())] {
            let mut t = old_closed(n, at + Duration::days(3));
            t.link_customer = false; // no customers table before V5
            ids.push(backdate::insert(&**client, &t).await);
        }
        ids
    };
    let before: i64 = one(&db, "SELECT count(*) FROM ticket_transitions WHERE ticket_id <> $1", -1).await;
    assert!(before > 20);
    assert_eq!(db.migrate_to(Some(4)).await.unwrap(), 1, "V4 applied");

    let after: i64 = one(&db, "SELECT count(*) FROM ticket_transitions WHERE ticket_id <> $1", -1).await;
    assert_eq!(after, before, "every row kept");
    for id in &ids {
        for (part, at) in partition_of_rows(&db, *id).await {
            assert_eq!(part, partition_name(month_start(at)), "a row of {at} is in {part}");
        }
    }
    assert_eq!(
        one::<i64>(
            &db,
            "SELECT count(*) FROM ONLY ticket_transitions_default WHERE ticket_id <> $1",
            -1
        )
        .await,
        0
    );
    let client = db.pool.get().await.unwrap();
    let partitioned: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'ticket_transitions'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(partitioned, 1);
    // The key still refuses a duplicate, and the foreign key an unknown ticket.
    let dup = client
        .execute(
            "INSERT INTO ticket_transitions SELECT * FROM ticket_transitions WHERE ticket_id = $1 AND seq = 1",
            &[&ids[0]],
        )
        .await
        .unwrap_err();
    assert_eq!(dup.code().map(|c| c.code()), Some("23505"));
    let orphan = client
        .execute(
            "INSERT INTO ticket_transitions (ticket_id, seq, to_state, at, actor, reason, policy_version)
             VALUES (-5, 1, 'received', now(), 'x', 'x', 'x')",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(orphan.code().map(|c| c.code()), Some("23503"));
    // Ahead: the months to come exist once partitions are ensured (every start does it).
    let created = retention::ensure_partitions(&db, 3, Utc::now()).await.unwrap();
    assert!(created.is_empty(), "the migration already made them: {created:?}");
    let next = month_start(Utc::now()).checked_add_months(Months::new(3)).unwrap();
    assert!(exists(&db, &partition_name(next)).await);
    let created = retention::ensure_partitions(&db, 5, Utc::now()).await.unwrap();
    assert_eq!(created.len(), 2);
    drop(client);
    assert!(db.migrate().await.unwrap() >= 1, "later migrations apply on top");
    db.drop_schema().await.unwrap();
}

/// The stages' batched insert lands in the current month's partition and reads back in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_writes_its_transitions_into_the_current_month() {
    let _one_run_at_a_time = RETENTION_RUNS.lock().await;
    let mut h = Harness::new("ret_insert").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::PIPELINE, 1);
    let req = json!({"channel": "app", "channel_message_id": "p1", "received_at": Utc::now().to_rfc3339(),
                     "customer": {"customer_id": "C1"}, "body": "my order has not arrived yet"});
    h.publish_intake("intake.app", "p1", req.to_string().as_bytes()).await;
    h.wait_for("assigned", std::time::Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')")
            .await
            == 1
    })
    .await;
    let id = h.count("SELECT id FROM tickets").await;
    let rows = partition_of_rows(&h.app.db, id).await;
    assert_eq!(rows.len(), 4);
    let current = partition_name(month_start(Utc::now()));
    assert!(
        rows.iter()
            .all(|(p, _)| *p == current || p.starts_with("ticket_transitions_p")),
        "{rows:?}"
    );
    assert_eq!(rows[0].0, partition_name(month_start(rows[0].1)));
    let client = h.app.db.pool.get().await.unwrap();
    let log = tickets::transitions_of(&**client, id).await.unwrap();
    assert_eq!(log.iter().map(|t| t.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    for n in 0..=3 {
        let m = month_start(Utc::now()).checked_add_months(Months::new(n)).unwrap();
        assert!(exists(&h.app.db, &partition_name(m)).await, "month +{n}");
    }
    assert!(exists(&h.app.db, "ticket_transitions_default").await);
    drop(client);
    h.cleanup().await;
}

fn same_plan(dry: &RunReport, real: &RunReport) {
    assert!(dry.dry_run && !real.dry_run);
    assert_eq!(dry.closed_before_cutoff, real.closed_before_cutoff);
    assert_eq!(dry.held, real.held);
    assert_eq!(dry.processed, real.processed);
    let names = |v: &[retention::PartitionInfo]| v.iter().map(|p| (p.name.clone(), p.rows)).collect::<Vec<_>>();
    assert_eq!(names(&dry.partitions_dropped), names(&real.partitions_dropped));
    assert_eq!(names(&dry.partitions_kept), names(&real.partitions_kept));
    assert_eq!(dry.transition_rows_rewritten, real.transition_rows_rewritten);
    assert_eq!(dry.customers_cleared, real.customers_cleared);
    assert_eq!(dry.ledger_entries_pruned, real.ledger_entries_pruned);
}

/// Anonymise mode (the default): expired tickets lose contacts and texts but keep their
/// figures; holds on a ticket, a customer id and a phone number keep theirs; the month that
/// only expired tickets used is dropped whole; a dry run says all this first and changes
/// nothing; a released hold lets the next run take the ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymising_respects_holds_and_drops_the_months_only_expired_tickets_used() {
    let _one_run_at_a_time = RETENTION_RUNS.lock().await;
    let h = Harness::new("ret_anon").await;
    let db = &h.app.db;
    let base = months_ago(40);
    let d = |months: u32, days: i64| base.checked_add_months(Months::new(months)).unwrap() + Duration::days(days);
    let old1 = old_closed("OLD1", d(0, 4));
    let mut old2 = old_closed("OLD2", d(0, 10)); // same month as OLD1; customer on hold
    old2.customer = json!({"customer_id": "C-held", "phone": "13700000000"});
    let old3 = old_closed("OLD3", d(1, 4)); // ticket on hold
    let mut old4 = old_closed("OLD4", d(2, 4)); // alone in its month: the month goes
    old4.escalations = vec![("first_response".into(), true, 2)];
    old4.customer["customer_id"] = json!("C-BACK"); // came back recently: the record keeps contacts
    let mut old5 = old_closed("OLD5", d(4, 4)); // phone on hold
    old5.customer = json!({"phone": "+86 139-0000-1111"});
    let mut open = OldTicket::new("OPEN", d(3, 4)); // open for years: its month stays
    open.first_responded_at = Some(open.received_at + Duration::minutes(5));
    let mut recent = old_closed("RECENT", Utc::now() - Duration::days(300));
    recent.customer["customer_id"] = json!("C-BACK");
    let mut ids = std::collections::HashMap::new();
    {
        let client = db.pool.get().await.unwrap();
        for t in [&old1, &old2, &old3, &old4, &old5, &open, &recent] {
            ids.insert(t.number.clone(), backdate::insert(&**client, t).await);
        }
        client
            .execute(
                "INSERT INTO processed_messages (message_id, stage, outputs, processed_at)
                 VALUES ('OLD1:classify:1', 'classify', '[]', $1), ('RECENT:classify:1', 'classify', '[]', now())",
                &[&d(0, 4)],
            )
            .await
            .unwrap();
    }
    let id = |n: &str| ids[n];
    let old1_rows = transitions(db, id("OLD1")).await;
    let month = |t: &OldTicket| partition_name(month_start(t.received_at));

    // Holds on a customer id and a phone number; a dry run while the old rows still sit in the
    // default partition (no month made for them yet) plans the same as the run, and changes nothing.
    let c_held = retention::HoldSubject::Customer("C-held".into());
    assert!(retention::hold(db, &c_held, "").await.unwrap());
    assert!(!retention::hold(db, &c_held, "").await.unwrap(), "already held");
    let phone = retention::HoldSubject::Customer("139 0000 1111".into());
    assert!(retention::hold(db, &phone, "court order").await.unwrap());
    let default_rows = h.count("SELECT count(*) FROM ONLY ticket_transitions_default").await;
    assert!(default_rows > 0);
    let parts_before = {
        let client = db.pool.get().await.unwrap();
        retention::partitions(&**client).await.unwrap()
    };
    let policy = RetentionPolicy::default();
    let first = retention::run(db, &policy, Utc::now(), true).await.unwrap();
    assert_eq!((first.closed_before_cutoff, first.held, first.processed), (5, 2, 3));
    assert!(
        first.partitions_created.contains(&month(&old4)),
        "{:?}",
        first.partitions_created
    );
    assert!(first.partitions_dropped.iter().any(|p| p.name == month(&old3)));
    assert_eq!(
        h.count("SELECT count(*) FROM ONLY ticket_transitions_default").await,
        default_rows
    );
    let parts_after = {
        let client = db.pool.get().await.unwrap();
        retention::partitions(&**client).await.unwrap()
    };
    assert_eq!(parts_before, parts_after, "a dry run creates no partition");
    let customer: Value = one(db, "SELECT customer FROM tickets WHERE id = $1", id("OLD1")).await;
    assert_eq!(customer["phone"], "13812345678");

    // A hold on a ticket through the CLI, and the list of holds.
    let (ok, out, err) = cli(&h, &["retention", "hold", "--ticket", "OLD3", "--reason", "case 42"]);
    assert!(ok && out.contains("legal hold placed on ticket OLD3"), "{out}{err}");
    let (ok, out, _) = cli(&h, &["retention", "hold", "--ticket", "OLD3"]);
    assert!(ok && out.contains("already"), "{out}");
    let (ok, _, err) = cli(&h, &["retention", "hold", "--ticket", "NOPE"]);
    assert!(!ok && err.contains("no ticket \"NOPE\""), "{err}");
    let (ok, out, _) = cli(&h, &["retention", "holds"]);
    assert!(ok);
    assert!(
        out.contains("ticket OLD3") && out.contains("case 42") && out.contains("customer C-held"),
        "{out}"
    );
    assert!(out.contains("customer 139****1111") && !out.contains("0000"), "{out}");

    // The CLI's dry run prints the plan with counts.
    let (ok, out, err) = cli(&h, &["retention", "run", "--dry-run"]);
    assert!(ok, "{err}");
    assert!(out.contains("dry run: nothing changed"), "{out}");
    assert!(out.contains("kept by a legal hold:          3"), "{out}");
    assert!(out.contains("would be anonymised now:"), "{out}");
    let dry = retention::run(db, &policy, Utc::now(), true).await.unwrap();
    assert_eq!((dry.closed_before_cutoff, dry.held, dry.processed), (5, 3, 2));

    // The run.
    let real = retention::run(db, &policy, Utc::now(), false).await.unwrap();
    same_plan(&dry, &real);
    let dropped: Vec<&str> = real.partitions_dropped.iter().map(|p| p.name.as_str()).collect();
    let kept: Vec<&str> = real.partitions_kept.iter().map(|p| p.name.as_str()).collect();
    assert!(dropped.contains(&month(&old4).as_str()), "{dropped:?}");
    for t in [&old1, &old3, &old5, &open] {
        assert!(kept.contains(&month(t).as_str()), "{} kept: {kept:?}", t.number);
        assert!(exists(db, &month(t)).await);
    }
    assert!(!exists(db, &month(&old4)).await);
    // Months between them that held nothing went too; the current month and those ahead stay.
    assert!(real.partitions_dropped.iter().all(|p| p.live_rows == 0));
    assert!(exists(db, &partition_name(month_start(Utc::now()))).await);
    assert_eq!(h.count("SELECT count(*) FROM ONLY ticket_transitions_default").await, 0);
    assert_eq!(real.transition_rows_rewritten, old1_rows);
    assert_eq!(real.ledger_entries_pruned, 1);
    // OLD1's customer record has no other ticket: only its tier stays. OLD4's customer came
    // back (RECENT), and held customers keep theirs.
    assert_eq!(real.customers_cleared, 1);
    let customer_row = |key: &'static str| {
        let db = db.clone();
        async move {
            let client = db.pool.get().await.unwrap();
            client
                .query_one(
                    "SELECT c.customer_id, c.phone, c.email, c.name, c.tier FROM customers c JOIN tickets t ON t.customer_ref = c.id
                     WHERE t.number = $1",
                    &[&key],
                )
                .await
                .unwrap()
        }
    };
    let c1 = customer_row("OLD1").await;
    for col in 0..4 {
        assert_eq!(c1.get::<_, Option<String>>(col), None, "OLD1's customer column {col}");
    }
    assert_eq!(c1.get::<_, Option<String>>(4).as_deref(), Some("vip"));
    let c4 = customer_row("OLD4").await;
    assert_eq!(c4.get::<_, Option<String>>(0).as_deref(), Some("C-BACK"));
    assert_eq!(c4.get::<_, Option<String>>(1).as_deref(), Some("+8613812345678"));
    for n in ["OLD2", "OLD5"] {
        let c = customer_row(n).await;
        assert!(
            c.get::<_, Option<String>>(0).is_some() || c.get::<_, Option<String>>(1).is_some(),
            "{n}"
        );
    }
    assert_eq!(
        h.count("SELECT count(*) FROM processed_messages WHERE message_id = 'RECENT:classify:1'")
            .await,
        1
    );

    // OLD1 and OLD4: no contacts, no texts; figures kept.
    for n in ["OLD1", "OLD4"] {
        let i = id(n);
        let row = {
            let client = db.pool.get().await.unwrap();
            client
                .query_one(
                    "SELECT customer, body, subject, rating_comment, resolution, category, channel, rating,
                            received_at, closed_at, anonymised_at IS NOT NULL FROM tickets WHERE id = $1",
                    &[&i],
                )
                .await
                .unwrap()
        };
        assert_eq!(row.get::<_, Value>(0), json!({"tier": "vip"}), "{n}");
        assert_eq!(row.get::<_, String>(1), "[anonymised]");
        assert_eq!(row.get::<_, Option<String>>(2), None);
        assert_eq!(row.get::<_, Option<String>>(3), None);
        assert_eq!(row.get::<_, Value>(4)["anonymised"], true);
        assert_eq!(row.get::<_, String>(5), "inquiry");
        assert_eq!(row.get::<_, String>(6), "chat");
        assert_eq!(row.get::<_, Option<i16>>(7), Some(4));
        assert!(row.get::<_, bool>(10));
        let leaks: i64 = one(
            db,
            "SELECT (SELECT count(*) FROM tickets t WHERE t.id = $1 AND t::text ~ '13812345678|zhang|张三')
                  + (SELECT count(*) FROM ticket_messages m WHERE m.ticket_id = $1 AND m::text ~ '13812345678|zhang|张三|身份证|关于订单')
                  + (SELECT count(*) FROM ticket_transitions tr WHERE tr.ticket_id = $1 AND tr::text ~ '13812345678|zhang|张三|截图')
                  + (SELECT count(*) FROM thread_keys k WHERE k.ticket_id = $1)",
            i,
        )
        .await;
        assert_eq!(leaks, 0, "{n} still holds personal data");
    }
    assert_eq!(
        transitions(db, id("OLD1")).await,
        old1_rows,
        "OLD1's month is kept: its rows scrubbed, not deleted"
    );
    assert_eq!(transitions(db, id("OLD4")).await, 0, "OLD4's month was dropped");
    let reason: String = one(
        db,
        "SELECT reason FROM ticket_transitions WHERE ticket_id = $1 AND details->>'event' = 'resolved'",
        id("OLD1"),
    )
    .await;
    assert_eq!(reason, "resolved (text removed by retention)");
    // The rating keeps its reason code (a taxonomy entry, no text of the customer's), so a past
    // period's unsatisfied reasons still count; its comment goes.
    let rating: Value = one(
        db,
        "SELECT details->'data' FROM ticket_transitions WHERE ticket_id = $1 AND details->>'action' = 'rate'",
        id("OLD1"),
    )
    .await;
    assert_eq!(rating, json!({"score": 4, "reason": "slow"}), "{rating}");
    // Held, open and recent tickets are untouched.
    for n in ["OLD2", "OLD3", "OLD5", "OPEN", "RECENT"] {
        let body: String = one(db, "SELECT body FROM tickets WHERE id = $1", id(n)).await;
        assert_ne!(body, "[anonymised]", "{n}");
        assert!(transitions(db, id(n)).await > 0, "{n}");
    }

    // Idempotent.
    let again = retention::run(db, &policy, Utc::now(), false).await.unwrap();
    assert_eq!((again.processed, again.already_anonymised, again.held), (0, 2, 3));
    assert!(again.partitions_dropped.is_empty());

    // Releasing the ticket hold lets the next run take it, and its month.
    let (ok, out, _) = cli(&h, &["retention", "release", "--ticket", "OLD3"]);
    assert!(ok && out.contains("released"), "{out}");
    let (ok, _, err) = cli(&h, &["retention", "release", "--ticket", "OLD3"]);
    assert!(!ok && err.contains("no active legal hold"), "{err}");
    let last = retention::run(db, &policy, Utc::now(), false).await.unwrap();
    assert_eq!((last.processed, last.held), (1, 2));
    assert_eq!(
        last.partitions_dropped
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>(),
        vec![month(&old3)]
    );
    let (ok, out, _) = cli(&h, &["retention", "holds", "--all"]);
    assert!(ok && out.contains("released"), "{out}");
    h.cleanup().await;
}

/// Purge mode: expired tickets and everything attached to them are deleted; rows in a month a
/// live ticket shares are deleted one by one, the month itself stays; held tickets (here by
/// email) stay; two runs at once are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_deletes_expired_tickets_with_everything_attached() {
    let _one_run_at_a_time = RETENTION_RUNS.lock().await;
    let h = Harness::new("ret_purge").await;
    let db = &h.app.db;
    let base = months_ago(36);
    let d = |months: u32, days: i64| base.checked_add_months(Months::new(months)).unwrap() + Duration::days(days);
    let mut p1 = old_closed("P1", d(0, 3));
    p1.escalations = vec![("resolution".into(), false, 1)];
    let p2 = old_closed("P2", d(1, 3)); // shares its month with LIVE
    let mut live = OldTicket::new("LIVE", d(1, 5));
    live.first_responded_at = Some(live.received_at + Duration::minutes(3));
    let mut kept = old_closed("KEPT", d(2, 3));
    kept.customer = json!({"email": "Legal@Example.com"});
    let mut ids = std::collections::HashMap::new();
    {
        let client = db.pool.get().await.unwrap();
        for t in [&p1, &p2, &live, &kept] {
            ids.insert(t.number.clone(), backdate::insert(&**client, t).await);
        }
    }
    let id = |n: &str| ids[n];
    let p2_rows = transitions(db, id("P2")).await;
    retention::hold(
        db,
        &retention::HoldSubject::Customer("legal@example.com".into()),
        "audit",
    )
    .await
    .unwrap();
    // A released hold does not stop the purge, and goes with the ticket.
    let p1_hold = retention::HoldSubject::Ticket("P1".into());
    assert!(retention::hold(db, &p1_hold, "").await.unwrap());
    assert!(retention::release(db, &p1_hold).await.unwrap());

    let policy = RetentionPolicy {
        mode: RetentionMode::Purge,
        ..RetentionPolicy::default()
    };
    // One run at a time.
    {
        let client = db.pool.get().await.unwrap();
        client.execute("SELECT pg_advisory_lock(7269002)", &[]).await.unwrap();
        let busy = retention::run(db, &policy, Utc::now(), false).await.unwrap_err();
        assert!(matches!(busy, RetentionError::Busy), "{busy}");
        assert!(busy.to_string().contains("wait for it to finish"));
        client.execute("SELECT pg_advisory_unlock(7269002)", &[]).await.unwrap();
    }
    let dry = retention::run(db, &policy, Utc::now(), true).await.unwrap();
    let real = retention::run(db, &policy, Utc::now(), false).await.unwrap();
    same_plan(&dry, &real);
    assert_eq!((real.closed_before_cutoff, real.held, real.processed), (3, 1, 2));
    assert_eq!(real.transition_rows_rewritten, p2_rows);
    assert_eq!(real.customers_cleared, 2, "P1's and P2's customer records");
    assert_eq!(
        h.count("SELECT count(*) FROM customers WHERE customer_id IN ('C-P1', 'C-P2')")
            .await,
        0
    );
    assert_eq!(
        h.count("SELECT count(*) FROM customers WHERE customer_id = 'C-LIVE' OR email = 'legal@example.com'")
            .await,
        2
    );
    let month = |t: &OldTicket| partition_name(month_start(t.received_at));
    assert!(!exists(db, &month(&p1)).await);
    assert!(exists(db, &month(&p2)).await && exists(db, &month(&kept)).await);
    for n in ["P1", "P2"] {
        let i = id(n);
        let left: i64 = one(
            db,
            "SELECT (SELECT count(*) FROM tickets WHERE id = $1) + (SELECT count(*) FROM ticket_messages WHERE ticket_id = $1)
                  + (SELECT count(*) FROM thread_keys WHERE ticket_id = $1) + (SELECT count(*) FROM ticket_pauses WHERE ticket_id = $1)
                  + (SELECT count(*) FROM sla_timers WHERE ticket_id = $1) + (SELECT count(*) FROM escalations WHERE ticket_id = $1)
                  + (SELECT count(*) FROM legal_holds WHERE ticket_id = $1) + (SELECT count(*) FROM ticket_transitions WHERE ticket_id = $1)",
            i,
        )
        .await;
        assert_eq!(left, 0, "{n} left rows behind");
    }
    for n in ["LIVE", "KEPT"] {
        assert!(transitions(db, id(n)).await > 0, "{n}");
    }
    let out = real.to_string();
    assert!(out.contains("purged now:") && out.contains("deleted"), "{out}");
    h.cleanup().await;
}

/// Privacy: anonymising removes what still names a person after the contacts are gone (an
/// email's Message-ID embeds the sender's address), tells consumers through `ticket.anonymised`,
/// and a hold on one contact of a customer covers every ticket of that customer, whichever
/// contact opened it; a released hold keeps no contact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymisation_erases_message_ids_tells_consumers_and_a_customer_hold_covers_every_contact() {
    let _one_run_at_a_time = RETENTION_RUNS.lock().await;
    let h = Harness::new("ret_privacy").await;
    let db = &h.app.db;
    let long_ago = months_ago(30);
    let mut mail = old_closed("PRIV-MAIL", long_ago);
    mail.channel = "email".into();
    mail.customer = json!({"name": "Alice Smith", "email": "Alice.Smith@example.com", "customer_id": "C-alice"});
    let mut call = old_closed("PRIV-CALL", long_ago + Duration::days(1));
    call.channel = "phone".into();
    call.customer = json!({"phone": "13900002222", "customer_id": "C-alice"});
    let other = old_closed("PRIV-OTHER", long_ago);
    let message_id = "CAB+alice.smith=example.com@mail.gmail.example";
    {
        let client = db.pool.get().await.unwrap();
        for t in [&mail, &call, &other] {
            backdate::insert(&**client, t).await;
        }
        for table in ["tickets", "ticket_messages"] {
            client
                .execute(
                    &format!("UPDATE {table} SET channel_message_id = $1 WHERE channel_message_id = 'PRIV-MAIL'"),
                    &[&message_id],
                )
                .await
                .unwrap();
        }
        client
            .execute(
                "UPDATE ticket_transitions tr SET reason = 'opened from email message ' || $1,
                        details = details || jsonb_build_object('channel', 'email', 'channel_message_id', $1::text), actor = 'intake'
                 FROM tickets t WHERE t.id = tr.ticket_id AND t.number = 'PRIV-MAIL' AND tr.seq = 1",
                &[&message_id],
            )
            .await
            .unwrap();
        // What was sent to and about Alice: a delivered reply, her survey comment, a follow-up.
        client
            .execute(
                "INSERT INTO deliveries (key, msg_id, kind, purpose, ticket_id, number, seq, lane, transport, target,
                                         payload, state, give_up_at)
                 SELECT 'cust:PRIV-MAIL:reply:3', 'm1', 'customer', 'reply', id, number, 3, 'customer', 'email',
                        'Alice.Smith@example.com', '{\"to\": \"Alice.Smith@example.com\", \"to_name\": \"Alice Smith\"}',
                        'failed', now()
                 FROM tickets WHERE number = 'PRIV-MAIL'",
                &[],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO surveys (number, ticket_id, channel, dimensions, token_hash, answered_at, score, comment)
                 SELECT 'PRIV-MAIL-S4', id, 'email', '{overall}', 'h-alice', now(), 2, 'Alice says: too slow'
                 FROM tickets WHERE number = 'PRIV-MAIL'",
                &[],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO follow_ups (key, ticket_id, number, team, reason, due_at, done_at, done_by, outcome)
                 SELECT 'PRIV-MAIL:low_rating:5', id, number, 'front_line', 'low_rating', now(), now(), 'agent:a',
                        'called Alice Smith, satisfied now'
                 FROM tickets WHERE number = 'PRIV-MAIL'",
                &[],
            )
            .await
            .unwrap();
    }
    let anonymised = |n: &'static str| {
        let h = &h;
        async move {
            h.count(&format!(
                "SELECT count(*) FROM tickets WHERE number = '{n}' AND anonymised_at IS NOT NULL"
            ))
            .await
                == 1
        }
    };
    // A hold on Alice's email covers the call too: same customer, another contact.
    let alice = retention::HoldSubject::Customer("alice.smith@example.com".into());
    assert!(retention::hold(db, &alice, "court order").await.unwrap());
    let policy = RetentionPolicy::default();
    retention::run(db, &policy, Utc::now(), false).await.unwrap();
    assert!(anonymised("PRIV-OTHER").await);
    assert!(!anonymised("PRIV-MAIL").await, "the held email ticket was anonymised");
    assert!(
        !anonymised("PRIV-CALL").await,
        "the hold did not cover the same customer's call"
    );

    assert!(retention::release(db, &alice).await.unwrap());
    assert_eq!(
        h.count("SELECT count(*) FROM legal_holds WHERE customer ILIKE '%alice%'")
            .await,
        0,
        "a released hold still names the contact"
    );
    retention::run(db, &policy, Utc::now(), false).await.unwrap();
    assert!(anonymised("PRIV-MAIL").await && anonymised("PRIV-CALL").await);
    for (table, text) in [
        (
            "tickets",
            "customer::text || channel_message_id || coalesce(subject, '') || body",
        ),
        (
            "ticket_messages",
            "channel_message_id || body || coalesce(quoted_history, '')",
        ),
        ("ticket_transitions", "reason || details::text"),
        (
            "customers",
            "coalesce(customer_id, '') || coalesce(email, '') || coalesce(name, '')",
        ),
        ("deliveries", "target || payload::text"),
        ("surveys", "coalesce(comment, '')"),
        ("follow_ups", "coalesce(outcome, '')"),
    ] {
        assert_eq!(
            h.count(&format!("SELECT count(*) FROM {table} WHERE ({text}) ILIKE '%alice%'"))
                .await,
            0,
            "{table} still names Alice"
        );
    }
    let announced = h
        .count("SELECT count(*) FROM outbox WHERE message->>'routing_key' = 'ticket.anonymised'")
        .await;
    assert_eq!(announced, 3, "one ticket.anonymised event per ticket");
    assert_eq!(
        h.count("SELECT count(*) FROM surveys WHERE number = 'PRIV-MAIL-S4' AND score = 2")
            .await,
        1,
        "the score stays for the reports"
    );
    h.cleanup().await;
}

/// A retention run scans an expired month of the transition log without locking the log: a
/// reader holding the log open (as every transaction that writes a transition does) does not
/// stop it, where a run that locked the whole log first waited for it and gave up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_scan_takes_no_exclusive_lock_on_the_transition_log() {
    let _one_run_at_a_time = RETENTION_RUNS.lock().await;
    let h = Harness::new("ret_nolock").await;
    let db = &h.app.db;
    let held = old_closed("NOLOCK-HELD", months_ago(30));
    {
        let client = db.pool.get().await.unwrap();
        backdate::insert(&**client, &held).await;
    }
    let hold = retention::HoldSubject::Ticket("NOLOCK-HELD".into());
    assert!(retention::hold(db, &hold, "litigation").await.unwrap());
    let policy = RetentionPolicy::default();
    // The first run moves the old rows into their month (that needs the log briefly).
    retention::run(db, &policy, Utc::now(), false).await.unwrap();
    let month = partition_name(month_start(held.received_at));
    assert!(exists(db, &month).await, "{month} was not created");

    // A transaction holds the log open while the next run looks at the expired month.
    let mut reader_client = db.pool.get().await.unwrap();
    let reader = reader_client.transaction().await.unwrap();
    reader
        .query("SELECT 1 FROM ticket_transitions LIMIT 1", &[])
        .await
        .unwrap();
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        retention::run(db, &policy, Utc::now(), false),
    )
    .await
    .expect("the run waited on the open transaction")
    .expect("the run failed");
    assert!(report.partitions_kept.iter().any(|p| p.name == month), "{report:?}");
    assert!(exists(db, &month).await, "the held month was dropped");
    reader.rollback().await.unwrap();
    drop(reader_client);
    h.cleanup().await;
}
