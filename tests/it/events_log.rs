//! Events survive having no consumer: the events log (a stream bound to every event) keeps them,
//! `switchboard events replay` puts a window of them into a queue, and the example consumers
//! (docs/EVENTS.md) dedupe by id and keep each ticket's last sequence.

use crate::common;

use common::Harness;
use common::process::cli;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::contracts::Exchange;

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

/// Runs the pipeline over `n` requests with no queue bound to the events exchange but the log,
/// then stops it: every ticket has its four events in the log only.
async fn tickets_with_no_consumer(h: &mut Harness, tag: &str, n: usize) -> Vec<String> {
    h.import_sample_roster().await;
    h.start_stages(&StageName::PIPELINE, 1);
    for i in 0..n {
        let id = format!("{tag}-{i}");
        h.publish_intake("intake.app", &id, &intake(&id)).await;
    }
    h.wait_for("every ticket routed", Duration::from_secs(60), || async {
        h.count("SELECT count(*) FROM tickets WHERE version = 4 AND state IN ('assigned', 'queued')")
            .await
            == n as i64
    })
    .await;
    h.stop_stages().await;
    let client = h.app.db.pool.get().await.unwrap();
    let rows = client
        .query("SELECT number FROM tickets ORDER BY number", &[])
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_with_no_consumer_are_replayed_from_the_log_once_each_in_order() {
    let mut h = Harness::new("evlog").await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let numbers = tickets_with_no_consumer(&mut h, "evlog", 5).await;
    assert_eq!(numbers.len(), 5);

    // A replay into a queue that does not exist says so, and what to do.
    let missing = format!("{}.nowhere", h.topo().prefix);
    let (ok, out, err) = cli(
        &h,
        &["events", "replay", "--since", &rfc3339(before), "--to-queue", &missing],
    );
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!("queue {missing} does not exist")) && err.contains("declare it first"),
        "{err}"
    );

    // Every event since `before`, to the log's tail.
    let q = h.plain_queue("test-replay").await;
    let (ok, out, err) = cli(
        &h,
        &[
            "events",
            "replay",
            "--since",
            &rfc3339(before),
            "--to-queue",
            &q,
            "--progress-every",
            "5",
            "--idle",
            "1s",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("replayed 20 events (all events from {}", rfc3339(before))),
        "{out}"
    );
    assert!(out.contains(&format!("into {q}")), "{out}");
    assert!(
        err.contains("… 5 events replayed") && err.contains("… 20 events replayed"),
        "{err}"
    );

    let got = h.drain_queue(&q).await;
    assert_eq!(got.len(), 20, "four events per ticket, each once");
    let mut per_ticket: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut ids = std::collections::HashSet::new();
    for m in &got {
        let p = &m.delivery.properties;
        let body: Value = serde_json::from_slice(&m.delivery.data).unwrap();
        let id = body["id"].as_str().unwrap();
        assert!(ids.insert(id.to_owned()), "{id} replayed twice");
        // Unchanged: id, content type, type; and nothing of the log's own.
        assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some(id));
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("application/cloudevents+json")
        );
        assert_eq!(p.kind().as_ref().map(|s| s.as_str()), body["type"].as_str());
        assert!(
            p.headers().is_none(),
            "the log's offset header stays behind: {:?}",
            p.headers()
        );
        assert_eq!(*p.delivery_mode(), Some(2));
        per_ticket
            .entry(body["subject"].as_str().unwrap().to_owned())
            .or_default()
            .push(body["sequence"].as_str().unwrap().parse::<i64>().unwrap());
    }
    assert_eq!(per_ticket.keys().cloned().collect::<Vec<_>>(), numbers);
    for (number, seqs) in &per_ticket {
        assert_eq!(seqs, &[1, 2, 3, 4], "ticket {number}: its events in sequence order");
    }

    // A type pattern and an end: only `ticket.received`, one per ticket.
    let until = chrono::Utc::now() + chrono::Duration::seconds(1);
    let (ok, out, err) = cli(
        &h,
        &[
            "events",
            "replay",
            "--since",
            &rfc3339(before),
            "--until",
            &rfc3339(until),
            "--type",
            "ticket.rec*",
            "--to-queue",
            &q,
            "--idle",
            "1s",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("replayed 0 events (ticket.rec*"),
        "`*` is a whole word: {out}"
    );
    let (ok, out, err) = cli(
        &h,
        &[
            "events",
            "replay",
            "--since",
            "10m",
            "--until",
            &rfc3339(until),
            "--type",
            "ticket.received",
            "--to-queue",
            &q,
            "--idle",
            "1s",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("replayed 5 events (ticket.received from"), "{out}");
    let got = h.drain_queue(&q).await;
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|m| {
        let body: Value = serde_json::from_slice(&m.delivery.data).unwrap();
        body["type"] == "switchboard.ticket.received.v1" && body["sequence"] == "0000000001"
    }));

    // The tail prints the log as JSON lines.
    let (ok, out, err) = cli(
        &h,
        &[
            "events",
            "tail",
            "--since",
            &rfc3339(before),
            "--type",
            "ticket.*",
            "--limit",
            "7",
            "--idle",
            "2s",
        ],
    );
    assert!(ok, "{err}");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert!(lines.iter().all(|e| e["specversion"] == "1.0"), "{out}");

    h.cleanup().await;
}

fn python() -> String {
    std::env::var("SWITCHBOARD_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn pika_missing() -> Option<String> {
    match Command::new(python()).args(["-c", "import pika"]).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_owned(),
        ),
        Err(e) => Some(format!("cannot run {}: {e}", python())),
    }
}

/// `examples/event_consumer.py` on `queue` until it is idle for a second: (stdout, stderr).
fn python_consumer(h: &Harness, queue: &str) -> (String, String) {
    let script = common::manifest_dir().join("examples/event_consumer.py");
    let out = Command::new(python())
        .arg(&script)
        .args([
            "--url",
            &h.app.settings.amqp_urls()[0],
            "--exchange",
            &h.topo().exchange(Exchange::Events),
            "--queue",
            queue,
            "--bind",
            "ticket.#",
            "--idle",
            "1",
        ])
        .output()
        .expect("run python");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "event_consumer.py failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_consumer_prints_each_event_once_and_recognises_replayed_copies() {
    if let Some(why) = pika_missing() {
        eprintln!(
            "SKIPPED the_python_example_consumer_prints_each_event_once_and_recognises_replayed_copies: \
             Python's pika is not importable ({why}); install it with `python3 -m pip install pika` \
             (.ci/run does)"
        );
        return;
    }
    let mut h = Harness::new("evpy").await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    // The consumer declares its queue and binding (and finds nothing yet) …
    let queue = format!("{}.test-consumer", h.topo().prefix);
    let (out, _) = python_consumer(&h, &queue);
    assert!(out.contains("handled 0 events"), "{out}");
    // … events go to it while it is not running …
    let numbers = tickets_with_no_consumer(&mut h, "evpy", 3).await;
    // … and a replay adds a second copy of each ticket's first event.
    let (ok, out, err) = cli(
        &h,
        &[
            "events",
            "replay",
            "--since",
            &rfc3339(before),
            "--type",
            "ticket.received",
            "--to-queue",
            &queue,
            "--idle",
            "1s",
        ],
    );
    assert!(ok && out.contains("replayed 3 events"), "{out}{err}");

    let (out, err) = python_consumer(&h, &queue);
    for number in &numbers {
        for seq in 1..=4 {
            let line = format!("event {number}.{seq} ");
            assert_eq!(out.matches(&line).count(), 1, "{line:?} once in:\n{out}\n{err}");
        }
        let dup = format!("duplicate {number}.1");
        assert_eq!(out.matches(&dup).count(), 1, "{dup:?} in:\n{out}");
    }
    assert!(
        out.contains("handled 12 events, skipped 3 duplicates and 0 stale"),
        "{out}"
    );
    assert_eq!(h.depth(&queue).await, 0, "the consumer acked what it handled");

    h.cleanup().await;
}
