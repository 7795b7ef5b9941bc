//! Chained stages (`stages::chain`): one process running consecutive pipeline stages hands each
//! ticket on in memory and commits once, with the same transitions, events and
//! effectively-once guarantees as stages that talk through their queues.

use crate::common;

use common::Harness;
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::bus::links::Links;
use switchboard::stages::registry;
use switchboard_tools::demo::{Kind, traffic};

/// Only the chain runs, on the intake queue: no consumer takes the later stages' queues, so every
/// ticket that ends routed went from stage to stage in memory. Each still has one transition per
/// stage and each stage's event, and nothing was left on the work queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_routes_tickets_without_the_later_stages_queues() {
    let h = Harness::new("chain_alone").await;
    h.import_sample_roster().await;
    let events = h.event_queue("ticket.#").await;
    let stop = tokio_util::sync::CancellationToken::new();
    let app = h.app.clone();
    let chain_stop = stop.clone();
    let chain = tokio::spawn(async move {
        let links = Links::new(app.settings.amqp_urls(), "switchboard-test-chain");
        let ran = registry::run_chain(
            &StageName::PIPELINE,
            app.context(),
            &app.settings,
            app.db.clone(),
            links.clone(),
            app.health.clone(),
            2,
            chain_stop,
        )
        .await;
        links.close(200, "done").await;
        ran
    });

    let pubs = publish_new_requests(&h, "chain", 0..150).await;
    let n = pubs.len() as i64;
    h.wait_for(
        "every ticket routed by the chain alone",
        Duration::from_secs(60),
        || async {
            h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')")
                .await
                == n
        },
    )
    .await;
    stop.cancel();
    chain.await.expect("chain task").expect("chain ran");

    assert_eq!(
        h.count(
            "SELECT count(*) FROM (
               SELECT ticket_id, string_agg(to_state, ',' ORDER BY seq) AS path, count(*) AS k
               FROM ticket_transitions WHERE actor <> 'escalate' GROUP BY ticket_id) p
             WHERE path IN ('received,classified,prioritized,assigned', 'received,classified,prioritized,queued') AND k = 4"
        )
        .await,
        n,
        "one transition per stage, in order"
    );
    for stage in ["classify", "prioritize", "assign"] {
        assert_eq!(
            h.depth(&h.topo().queue(stage)).await,
            0,
            "nothing was published to {stage}"
        );
    }
    let got = h.drain_queue(&events).await;
    for kind in ["ticket.received", "ticket.classified", "ticket.prioritized"] {
        let k = got.iter().filter(|m| m.delivery.routing_key.as_str() == kind).count() as i64;
        assert_eq!(k, n, "one {kind} per ticket");
    }
    let routed = got
        .iter()
        .filter(|m| matches!(m.delivery.routing_key.as_str(), "ticket.assigned" | "ticket.queued"))
        .count() as i64;
    assert_eq!(routed, n, "one ticket.assigned or ticket.queued per ticket");
    h.cleanup().await;
}

/// A request delivered again after its chain committed (a crash before the ack) is a duplicate:
/// it re-publishes what the first stage recorded, the later stages find their own records, and
/// nothing is applied twice; every stage's event still reaches subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_delivered_again_after_a_chained_commit_applies_nothing_twice() {
    let mut h = Harness::new("chain_again").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 2);
    let pubs = publish_new_requests(&h, "again", 0..20).await;
    let n = pubs.len() as i64;
    h.wait_for("routed", Duration::from_secs(60), || async {
        h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')")
            .await
            == n
    })
    .await;
    let transitions = h
        .count("SELECT count(*) FROM ticket_transitions WHERE actor <> 'escalate'")
        .await;

    // The same requests again, as a redelivery would bring them: subscribers see each stage's
    // event again (the same ids), and the database is unchanged.
    let events = h.event_queue("ticket.#").await;
    for p in &pubs {
        h.publish_intake(&p.routing_key, &p.message_id, &p.payload).await;
    }
    h.wait_for(
        "the chain's events published again",
        Duration::from_secs(60),
        || async { h.depth(&events).await as i64 >= 4 * n },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = h.drain_queue(&events).await;
    for kind in ["ticket.received", "ticket.classified", "ticket.prioritized"] {
        let k = got.iter().filter(|m| m.delivery.routing_key.as_str() == kind).count() as i64;
        assert_eq!(k, n, "{kind} re-published once per request");
    }
    assert_eq!(h.count("SELECT count(*) FROM tickets").await, n);
    assert_eq!(
        h.count("SELECT count(*) FROM ticket_transitions WHERE actor <> 'escalate'")
            .await,
        transitions,
        "nothing applied twice"
    );
    h.stop_stages().await;
    h.cleanup().await;
}

/// Publishes the sample traffic's new requests (no duplicates, replies or invalid messages) of
/// `range`, and returns them.
async fn publish_new_requests(
    h: &Harness,
    run: &str,
    range: std::ops::Range<usize>,
) -> Vec<switchboard_tools::demo::Publication> {
    let pubs: Vec<_> = traffic(run, range, false, chrono::Utc::now())
        .into_iter()
        .filter(|p| p.kind == Kind::New)
        .collect();
    for p in &pubs {
        h.publish_intake(&p.routing_key, &p.message_id, &p.payload).await;
    }
    pubs
}

/// A chain decides as stages talking through their queues do: the same requests get the same
/// category, priority and reasons either way (in a chain, prioritize scores the text from what
/// classify kept instead of reading it again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_decides_every_ticket_as_stages_through_the_queues_do() {
    let mut chained = Harness::new("chain_same").await;
    let mut settings = common::test_settings("chain_same_queued");
    settings.chain_stages = false;
    let mut queued = Harness::with_settings(settings).await;
    let mut decisions = Vec::new();
    for h in [&mut chained, &mut queued] {
        h.import_sample_roster().await;
        h.start_stages(&StageName::PIPELINE, 2);
        let n = publish_new_requests(h, "chain_same", 0..150).await.len() as i64;
        h.wait_for("every ticket routed", Duration::from_secs(60), || async {
            h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')")
                .await
                == n
        })
        .await;
        let client = h.app.db.pool.get().await.unwrap();
        let rows = client
            .query(
                "SELECT t.channel_message_id, t.category, t.priority, p.details->'reasons'
                 FROM tickets t JOIN ticket_transitions p ON p.ticket_id = t.id AND p.to_state = 'prioritized'
                 ORDER BY 1",
                &[],
            )
            .await
            .unwrap();
        let seen: Vec<(String, String, String, serde_json::Value)> =
            rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
        assert_eq!(seen.len() as i64, n);
        decisions.push(seen);
    }
    assert_eq!(decisions[0], decisions[1]);
    assert!(
        decisions[0]
            .iter()
            .any(|(_, _, _, reasons)| reasons.to_string().contains("model triage-")),
        "the model took part: {:?}",
        decisions[0].first()
    );
    chained.cleanup().await;
    queued.cleanup().await;
}
