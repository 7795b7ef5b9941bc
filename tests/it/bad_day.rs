//! A bad day for the servers, on the real Postgres and RabbitMQ: the database turns read-only
//! (what a failover looks like) while requests keep arriving. Each test that changes a server
//! setting does it on a database of its own, so the tests beside it are untouched.

use crate::common;

use common::{Harness, test_settings};
use std::time::Duration;
use switchboard::app::StageName;

/// A connection to the `postgres` database, for ALTER DATABASE and terminating backends.
async fn admin(url: &str) -> tokio_postgres::Client {
    let mut cfg: tokio_postgres::Config = url.parse().unwrap();
    cfg.dbname("postgres");
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Sets the database read-only (or writable) for every session, and ends the sessions open now
/// so that the service's pool reconnects under the new setting, as after a failover.
async fn set_read_only(admin: &tokio_postgres::Client, db: &str, on: bool) {
    let setting = if on {
        format!("ALTER DATABASE \"{db}\" SET default_transaction_read_only = on")
    } else {
        format!("ALTER DATABASE \"{db}\" RESET default_transaction_read_only")
    };
    admin.batch_execute(&setting).await.unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .await
        .unwrap();
}

/// `h.count`, retried: the harness's pooled connections were ended with everyone else's.
async fn count(h: &Harness, sql: &str) -> i64 {
    for _ in 0..20 {
        if let Ok(client) = h.app.db.pool.get().await
            && let Ok(row) = client.query_one(sql, &[]).await
        {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot count: {sql}");
}

fn intake(id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "channel": "app",
        "channel_message_id": id,
        "received_at": chrono::Utc::now(),
        "customer": {"customer_id": format!("C-{id}")},
        "body": "APP 付款页面一直报错，无法下单",
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_postgres_for_10_seconds_holds_every_request_and_dead_letters_none() {
    let mut settings = test_settings("ro");
    let db_name = format!("switchboard_ro_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let base = settings.database_url.clone();
    let at = base.rfind('/').unwrap();
    settings.database_url = format!("{}/{db_name}", &base[..at]);
    let admin = admin(&settings.database_url).await;
    let mut h = Harness::with_settings(settings).await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);

    set_read_only(&admin, &db_name, true).await;
    for n in 0..30 {
        let id = format!("ro-{n}");
        h.publish_intake("intake.app", &id, &intake(&id)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        count(&h, "SELECT count(*) FROM tickets").await,
        0,
        "nothing can be written while read-only"
    );
    set_read_only(&admin, &db_name, false).await;

    h.wait_for("all 30 ticketed and routed", Duration::from_secs(60), || async {
        count(&h, "SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')").await == 30
    })
    .await;
    assert_eq!(
        h.depth(&h.topo().dead_queue()).await,
        0,
        "dead letters: {}",
        h.snapshot().await
    );
    h.cleanup().await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"))
        .await
        .unwrap();
}

/// A work message lost on its way (or dead-lettered by the broker after its delivery limit) no
/// longer strands its ticket: the scheduler's sweeper re-drives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_limit_a_ticket_whose_work_message_is_lost_is_redriven_by_the_sweeper() {
    let mut settings = test_settings("sweeper");
    settings.sweep_after_s = 1;
    let mut h = Harness::with_settings(settings).await;
    h.import_sample_roster().await;
    h.start_stages(&[StageName::Intake], 1);
    h.publish_intake("intake.app", "lost-1", &intake("lost-1")).await;
    h.wait_for("received", Duration::from_secs(20), || async {
        h.count("SELECT count(*) FROM tickets WHERE state = 'received'").await == 1
    })
    .await;
    // The classify work message disappears (as if dead-lettered after too many deliveries).
    let classify = h.topo().queue("classify");
    h.wait_for("the work message queued", Duration::from_secs(10), || async {
        h.depth(&classify).await == 1
    })
    .await;
    h.ch.queue_purge(classify.as_str().into(), lapin::options::QueuePurgeOptions::default())
        .await
        .unwrap();
    h.stop_stages().await;
    h.start_stages(&StageName::ALL, 1);
    h.wait_for("re-driven and routed", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')")
            .await
            == 1
    })
    .await;
    assert_eq!(
        h.count("SELECT count(*) FROM ticket_redrives").await,
        1,
        "the sweeper recorded its re-drive"
    );
    // One transition per stage: the re-drive applied nothing twice.
    assert_eq!(
        h.count("SELECT count(*) FROM ticket_transitions WHERE actor = 'classify'")
            .await,
        1
    );
    h.cleanup().await;
}

/// A graceful stop leaves nothing in the outbox: a row written after the timers' loop last
/// relayed (as by a sweep that commits just before the stop) is published before the scheduler
/// returns, not left for its next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_scheduler_relays_what_is_left_in_the_outbox() {
    let h = Harness::new("lastrelay").await;
    let stop = tokio_util::sync::CancellationToken::new();
    let scheduler = tokio::spawn(switchboard::runtime::scheduler::run(
        h.app.db.clone(),
        h.app.topo.clone(),
        h.app.settings.amqp_urls(),
        // No sweep during the test.
        Duration::from_secs(3600),
        h.app.health.clone(),
        stop.clone(),
    ));
    let assign = h.topo().queue("assign");
    // Running: its first round relays a row written before it.
    let client = h.app.db.pool.get().await.unwrap();
    let drain = |reason: &str| switchboard::stages::actions::drain_message("billing", reason);
    switchboard::store::outbox::insert(&**client, &[drain("relayed by a round")])
        .await
        .unwrap();
    h.wait_for("the first round relayed", Duration::from_secs(20), || async {
        h.depth(&assign).await == 1
    })
    .await;
    // Written while the loop sleeps, with nothing to wake it, and the stop asked for at once.
    switchboard::store::outbox::insert(&**client, &[drain("left for the last relay")])
        .await
        .unwrap();
    stop.cancel();
    scheduler.await.unwrap().unwrap();
    assert_eq!(
        h.count("SELECT count(*) FROM outbox").await,
        0,
        "the outbox is relayed before the scheduler returns"
    );
    assert_eq!(h.depth(&assign).await, 2, "both drain requests published");
    h.cleanup().await;
}
