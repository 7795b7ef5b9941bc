//! `switchboard dead list | show | replay | purge` against a running pipeline: invalid intake
//! messages dead-letter with their reason; browsing neither loses nor reorders the queue; a
//! replay of an unfixed message dead-letters again with the same reason; a replay that cannot
//! be published leaves the message where it was; purge empties the queue.

use crate::common;

use common::Harness;
use common::process::run_cli;
use lapin::BasicProperties;
use serde_json::Value;
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::bus::dead;
use switchboard::bus::dead_queue::REPLAY_OF;
use switchboard::contracts::Exchange;

const BAD: usize = 40;

/// Four ways to break the intake contract, in turn.
fn bad_message(i: usize) -> Vec<u8> {
    match i % 4 {
        0 => b"this is not json".to_vec(),
        1 => br#"{"channel":"app"}"#.to_vec(),
        2 => format!(
            r#"{{"channel":"app","channel_message_id":"x{i}","received_at":"2024-01-01T00:00:00Z","customer":{{}},"body":"hi"}}"#
        )
        .into_bytes(),
        _ => vec![0xff, 0xfe, b'{', 0x00, b'}'],
    }
}

async fn cli(h: &Harness, args: &[&str]) -> (bool, String, String) {
    let out = run_cli(&h.app.settings, args).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn list(h: &Harness) -> Vec<Value> {
    let (ok, out, err) = cli(h, &["dead", "list", "--json"]).await;
    assert!(ok, "dead list failed: {err}");
    serde_json::from_str::<Vec<Value>>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_can_be_listed_shown_replayed_and_purged() {
    let mut h = Harness::new("deadcli").await;
    h.start_stages(&[StageName::Intake], 1);
    for i in 0..BAD {
        h.publish_intake("intake.app", &format!("bad-{i:02}"), &bad_message(i))
            .await;
    }
    let dead_q = h.topo().dead_queue();
    h.wait_for(
        "every invalid message dead-lettered",
        Duration::from_secs(30),
        || async { h.depth(&dead_q).await == BAD as u32 },
    )
    .await;

    // list: every one, with its reason, stage and origin, in the order they failed.
    let first = list(&h).await;
    assert_eq!(first.len(), BAD);
    let message_ids: Vec<&str> = first.iter().map(|v| v["message_id"].as_str().unwrap()).collect();
    let published: Vec<String> = (0..BAD).map(|i| format!("bad-{i:02}")).collect();
    assert_eq!(
        message_ids, published,
        "head of the queue first, in the order they failed"
    );
    for v in &first {
        assert_eq!(v["stage"], "intake", "{v}");
        assert_eq!(v["original_exchange"], h.topo().exchange(Exchange::Intake), "{v}");
        assert_eq!(v["original_routing_key"], "intake.app", "{v}");
        assert!(!v["reason"].as_str().unwrap().is_empty(), "{v}");
        assert!(v["failed_at"].is_string(), "{v}");
    }
    // Browsing does not lose or reorder anything: list again (twice), same ids, same order.
    assert_eq!(ids(&list(&h).await), ids(&first));
    assert_eq!(ids(&list(&h).await), ids(&first));
    assert_eq!(h.depth(&dead_q).await, BAD as u32);

    // The table view and --limit.
    let (ok, out, err) = cli(&h, &["dead", "list", "--limit", "3"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains(ids(&first)[0].as_str()) && out.contains("3 of 40 dead letters"),
        "{out}"
    );
    assert!(!out.contains(ids(&first)[3].as_str()), "{out}");

    // show: headers, reason, body as text or escaped.
    let text_id = ids(&first)[0].clone();
    let (ok, out, err) = cli(&h, &["dead", "show", &text_id]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("reason:         {}", first[0]["reason"].as_str().unwrap())),
        "{out}"
    );
    assert!(out.contains("x-switchboard-reason:"), "{out}");
    assert!(out.contains("body (UTF-8):\nthis is not json"), "{out}");
    let binary_id = ids(&first)[3].clone();
    let (ok, out, _) = cli(&h, &["dead", "show", &binary_id, "--json"]).await;
    assert!(ok);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["body_encoding"], "escaped");
    assert_eq!(shown["body"], "\\xff\\xfe{\\x00}");
    assert!(shown["headers"]["x-switchboard-stage"] == "intake", "{shown}");
    let (ok, _, err) = cli(&h, &["dead", "show", "nosuchid"]).await;
    assert!(!ok && err.contains("no dead letter with id"), "{err}");

    // replay without fixing anything: it goes back through intake and dead-letters again, with
    // the same reason and a new id that names where it came from.
    let victim = first[1].clone();
    let vid = victim["id"].as_str().unwrap();
    let (ok, out, err) = cli(&h, &["dead", "replay", vid]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&format!("replayed {vid}")), "{out}");
    let mut after = Vec::new();
    for _ in 0..100 {
        after = list(&h).await;
        if after.len() == BAD && !ids(&after).iter().any(|i| i == vid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(after.len(), BAD, "the replayed message came back");
    assert!(!ids(&after).iter().any(|i| i == vid), "the old dead letter is gone");
    let again = after.last().unwrap();
    assert_eq!(again["message_id"], victim["message_id"]);
    assert_eq!(again["reason"], victim["reason"], "same reason as before");
    let mut expect: Vec<String> = ids(&first).into_iter().filter(|i| i != vid).collect();
    expect.push(again["id"].as_str().unwrap().to_owned());
    assert_eq!(
        ids(&after),
        expect,
        "the rest kept their order; the replayed one is at the tail"
    );
    let (ok, out, _) = cli(&h, &["dead", "show", again["id"].as_str().unwrap(), "--json"]).await;
    assert!(ok);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["headers"][REPLAY_OF], vid, "{shown}");

    // A replay that cannot be published (its original exchange is gone) loses nothing.
    let orphan = dead::dead_letter_properties(
        &BasicProperties::default().with_message_id("orphan".into()),
        "intake",
        "no-such-exchange",
        "intake.app",
        "made up for the test",
    );
    dead::publish(&h.ch, h.topo(), b"{}", orphan)
        .await
        .unwrap()
        .await
        .unwrap();
    let with_orphan = list(&h).await;
    let orphan_id = with_orphan.last().unwrap()["id"].as_str().unwrap().to_owned();
    let (ok, _, err) = cli(&h, &["dead", "replay", &orphan_id]).await;
    assert!(!ok, "replaying to a missing exchange must fail");
    assert!(err.contains("stays in the dead-letter queue"), "{err}");
    assert_eq!(ids(&list(&h).await), ids(&with_orphan), "nothing lost, nothing moved");
    let (ok, _, err) = cli(&h, &["dead", "replay", "nosuchid"]).await;
    assert!(!ok && err.contains("no dead letter with id"), "{err}");

    // purge: refuses without --yes when there is no terminal to ask on; then empties the queue.
    let (ok, _, err) = cli(&h, &["dead", "purge"]).await;
    assert!(!ok && err.contains("--yes"), "{err}");
    assert_eq!(h.depth(&dead_q).await, BAD as u32 + 1);
    let (ok, out, err) = cli(&h, &["dead", "purge", "--yes"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&format!("purged {} dead letters", BAD + 1)), "{out}");
    assert!(list(&h).await.is_empty());
    let (ok, out, _) = cli(&h, &["dead", "list"]).await;
    assert!(ok && out.contains("no dead letters"), "{out}");

    h.stop_stages().await;
    h.cleanup().await;
}

/// A flood of garbage cannot fill the broker's disk: the dead-letter queue is bounded (count and
/// bytes, the oldest dropped first) and its letters expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_queue_is_bounded_and_its_letters_expire() {
    let h = common::Harness::new("dlq_bounds").await;
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_queues", "name", "arguments", "--formatter", "json"])
        .output()
        .expect("rabbitmqctl");
    let text = String::from_utf8_lossy(&out.stdout);
    let queues: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    let dead = h.topo().dead_queue();
    let q = queues
        .as_array()
        .and_then(|a| a.iter().find(|q| q["name"] == dead.as_str()))
        .unwrap_or_else(|| panic!("{dead} not listed: {text}"));
    let args = q["arguments"].to_string();
    for (key, value) in [
        ("x-max-length", switchboard::bus::DEAD_LETTER_MAX.to_string()),
        (
            "x-max-length-bytes",
            switchboard::bus::DEAD_LETTER_MAX_BYTES.to_string(),
        ),
        ("x-overflow", "drop-head".to_owned()),
        ("x-message-ttl", switchboard::bus::DEAD_LETTER_TTL_MS.to_string()),
    ] {
        assert!(
            args.contains(key) && args.contains(&value),
            "{key}={value} missing from {args}"
        );
    }
    h.cleanup().await;
}

/// A dead-letter queue declared by an earlier version (no limits) is used as it is: declaring
/// the topology does not fail on the broker's refusal to change its arguments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_dead_letter_queue_without_limits_is_kept_and_used() {
    let settings = common::test_settings("dlq_older");
    let conn = switchboard::bus::connect(&settings.amqp_urls(), "dlq-older")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut args = lapin::types::FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
    let dead = format!("{}.dead", settings.topology_prefix);
    ch.queue_declare(
        dead.as_str().into(),
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
    let _ = conn.close(200, "declared".into()).await;
    let h = Harness::with_settings(settings).await;
    assert_eq!(h.depth(&h.topo().dead_queue()).await, 0);
    h.cleanup().await;
}
