//! No message is applied twice and none is lost: redeliveries re-publish instead of re-applying,
//! concurrent copies serialise, and `kill -9` of a running pipeline at random moments changes
//! nothing in the end result.

use crate::common;

use common::process::{Running, spawn};
use common::{Harness, inbound, run_once};
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::contracts::Outgoing;
use switchboard::runtime::runner::Outcome;
use switchboard::stages::{classify::Classify, intake::Intake};
use switchboard_tools::demo::{Kind, traffic};

fn outputs(o: &Outcome) -> Vec<Outgoing> {
    match o {
        Outcome::Done(x) | Outcome::Duplicate(x) => x.clone(),
        other => panic!("unexpected outcome {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_message_republishes_the_same_outputs_and_applies_nothing() {
    let h = Harness::new("redeliver").await;
    let intake = Intake { ctx: h.app.context() };
    let classify = Classify { ctx: h.app.context() };
    let now = chrono::Utc::now().to_rfc3339();
    let body = format!(
        r#"{{"channel":"app","channel_message_id":"m1","received_at":"{now}","customer":{{"customer_id":"C1"}},"body":"付款页面一直报错，付不了款"}}"#
    );
    let msg = inbound("intake.app", "m1", body.into_bytes());

    let first = run_once(&h, &intake, std::slice::from_ref(&msg)).await;
    assert!(matches!(first[0], Outcome::Done(_)));
    // The crash came after the commit, before the ack: the broker delivers it again.
    let again = run_once(&h, &intake, std::slice::from_ref(&msg)).await;
    assert!(matches!(again[0], Outcome::Duplicate(_)), "{again:?}");
    assert_eq!(
        outputs(&first[0]),
        outputs(&again[0]),
        "the same messages are published again"
    );
    assert_eq!(h.count("SELECT count(*) FROM tickets").await, 1);
    assert_eq!(h.count("SELECT count(*) FROM ticket_transitions").await, 1);

    let work = outputs(&first[0])
        .into_iter()
        .find(|o| o.routing_key == "classify")
        .unwrap();
    let wmsg = inbound("classify", &work.message_id, serde_json::to_vec(&work.body).unwrap());
    // Two copies of one message at once on two workers: one applies, the other waits for the
    // row lock and then recognises the duplicate.
    let (a, b) = tokio::join!(
        run_once(&h, &classify, std::slice::from_ref(&wmsg)),
        run_once(&h, &classify, std::slice::from_ref(&wmsg))
    );
    let kinds = [&a[0], &b[0]].map(|o| matches!(o, Outcome::Done(_)));
    assert_eq!(
        kinds.iter().filter(|d| **d).count(),
        1,
        "exactly one applies: {a:?} {b:?}"
    );
    assert_eq!(outputs(&a[0]), outputs(&b[0]));
    assert_eq!(h.count("SELECT count(*) FROM ticket_transitions").await, 2);
    // Both copies inside one batch: one applies, the copy is a duplicate.
    let third = run_once(&h, &classify, &[wmsg.clone(), wmsg.clone()]).await;
    assert!(third.iter().all(|o| matches!(o, Outcome::Duplicate(_))));
    assert_eq!(h.count("SELECT version::bigint FROM tickets").await, 2);
    h.cleanup().await;
}

/// A redelivery publishes the very bytes that went out the first time (the ledger keeps each
/// body's JSON text), and a record written before the ledger kept text (jsonb, formatted by
/// Postgres) is still read and re-published as the same JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_gives_back_the_bytes_first_published_and_reads_older_jsonb_records() {
    let h = Harness::new("ledger-text").await;
    let intake = Intake { ctx: h.app.context() };
    let now = chrono::Utc::now().to_rfc3339();
    let body = format!(
        r#"{{"channel":"app","channel_message_id":"lt1","received_at":"{now}","customer":{{"customer_id":"C1","name":"张三"}},"body":"付款页面一直报错，\"付不了款\""}}"#
    );
    let msg = inbound("intake.app", "lt1", body.into_bytes());
    let first = outputs(&run_once(&h, &intake, std::slice::from_ref(&msg)).await[0]);
    let again = run_once(&h, &intake, std::slice::from_ref(&msg)).await;
    assert!(matches!(again[0], Outcome::Duplicate(_)), "{again:?}");
    let again = outputs(&again[0]);
    assert_eq!(first.len(), again.len());
    assert!(first.iter().any(|m| m.routing_key == "ticket.received"), "{first:?}");
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(
            a.body.json(),
            b.body.json(),
            "{} is re-published byte for byte",
            a.message_id
        );
    }

    // A record as the ledger wrote it before V20: jsonb in `outputs`.
    let text = serde_json::to_string(&first).unwrap();
    h.execute(
        "INSERT INTO processed_messages (message_id, stage, outputs) VALUES ('older:1', 'intake', $1::text::jsonb)",
        &[&text],
    )
    .await;
    let mut client = h.app.db.pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let found = switchboard::store::ledger::lookup(&tx, &["older:1".to_owned(), "intake:app:lt1".to_owned()])
        .await
        .unwrap();
    drop(tx);
    drop(client);
    assert_eq!(found["older:1"], first, "the same messages, as JSON");
    assert_ne!(
        found["older:1"][0].body.json(),
        first[0].body.json(),
        "jsonb formats JSON its own way: this record really went through jsonb"
    );
    assert_eq!(
        found["intake:app:lt1"]
            .iter()
            .map(|m| m.body.json())
            .collect::<Vec<_>>(),
        first.iter().map(|m| m.body.json()).collect::<Vec<_>>()
    );
    h.cleanup().await;
}

fn spawn_pipeline(h: &Harness) -> Running {
    spawn(&h.app.settings, &["run", "--concurrency", "2"], &[])
}

/// kill -9 the whole pipeline process three times during a load; after a final restart every
/// request is a ticket with exactly one transition per stage and agent loads add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_nine_mid_load_loses_nothing_and_doubles_nothing() {
    let mut h = Harness::new("kill9").await;
    h.import_sample_roster().await;
    let pubs = traffic("kill9", 0..600, false, chrono::Utc::now());
    let new = pubs.iter().filter(|p| p.kind == Kind::New).count() as i64;
    let mut child = spawn_pipeline(&h);
    let mut kills = 0;
    for (i, p) in pubs.iter().enumerate() {
        h.publish_intake(&p.routing_key, &p.message_id, &p.payload).await;
        if i % 200 == 150 {
            // Let it get busy, then kill it without warning.
            tokio::time::sleep(Duration::from_millis(300 + 170 * kills)).await;
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
            child = spawn_pipeline(&h);
        }
    }
    assert_eq!(kills, 3);
    h.wait_for(
        "every ticket routed after the kills",
        Duration::from_secs(120),
        || async {
            h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned','queued')")
                .await
                == new
        },
    )
    .await;
    // Copies published again after a kill (a redelivered message re-publishes its outputs) may
    // still be on their way when the last ticket is routed: the pipeline acks them as
    // duplicates. Let it, then stop it; a message nobody takes fails the wait.
    h.wait_for("every stage queue drained", Duration::from_secs(60), || async {
        let mut total = 0;
        for stage in ["intake", "classify", "prioritize", "assign"] {
            total += h.depth(&h.topo().queue(stage)).await;
        }
        total == 0
    })
    .await;
    // What a consumer held when its queue emptied is acked within a batch.
    tokio::time::sleep(Duration::from_secs(1)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(h.count("SELECT count(*) FROM tickets").await, new);
    let bad = h
        .count(
            "SELECT count(*) FROM (
               SELECT ticket_id, max(seq) AS last, count(*) AS n,
                      string_agg(to_state, ',' ORDER BY seq) FILTER (WHERE details->>'event' IS DISTINCT FROM 'customer_messaged') AS path
               FROM ticket_transitions GROUP BY ticket_id) p
             WHERE path NOT IN ('received,classified,prioritized,assigned', 'received,classified,prioritized,queued') OR last <> n",
        )
        .await;
    assert_eq!(
        bad, 0,
        "one transition per stage, besides a thread reply's `customer_messaged`"
    );
    assert_eq!(
        h.count(
            "SELECT count(*) FROM agent_loads a WHERE open_tickets <> (SELECT count(*) FROM tickets t WHERE t.assignee = a.id AND t.state <> 'closed')"
        )
        .await,
        0,
        "agent loads were not double counted"
    );
    for stage in ["intake", "classify", "prioritize", "assign"] {
        assert_eq!(h.depth(&h.topo().queue(stage)).await, 0, "{stage} queue drained");
    }
    assert_eq!(h.depth(&h.topo().dead_queue()).await, 0, "nothing was dead-lettered");
    h.stop_stages().await;
    let _ = StageName::ALL;
    h.cleanup().await;
}
