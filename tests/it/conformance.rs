//! AMQP contract conformance: a non-Rust client (Python's pika, `tests/conformance_publish.py`)
//! publishes the asyncapi.yaml examples straight to the intake exchange, and each one becomes a
//! ticket that is assigned, with masked `ticket.assigned` events.
//!
//! CI installs pika (`.ci/run`). Where pika cannot be imported the test says so and skips.

use crate::common;

use common::Harness;
use std::process::Command;
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::contracts::Exchange;

fn python() -> String {
    std::env::var("SWITCHBOARD_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn pika_available() -> Result<(), String> {
    match Command::new(python()).args(["-c", "import pika"]).output() {
        Ok(out) if out.status.success() => Ok(()),
        // The last line of the traceback: `ModuleNotFoundError: No module named 'pika'`.
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned()),
        Err(e) => Err(format!("cannot run {}: {e}", python())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_pika_client_publishes_each_channel_and_sees_the_ticket_assigned() {
    if let Err(why) = pika_available() {
        eprintln!(
            "SKIPPED python_pika_client_publishes_each_channel_and_sees_the_ticket_assigned: \
             Python's pika is not importable ({why}); install it with `python3 -m pip install pika` \
             (.ci/run does)"
        );
        return;
    }
    let mut h = Harness::new("conform").await;
    h.import_sample_roster().await;
    let events = h.event_queue("ticket.assigned").await;
    h.start_stages(&StageName::ALL, 1);

    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let url = h.app.settings.amqp_urls()[0].clone();
    let exchange = h.topo().exchange(Exchange::Intake);
    let script = common::manifest_dir().join("tests/conformance_publish.py");
    let out = Command::new(python())
        .arg(&script)
        .args([&url, &exchange, &run])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "conformance_publish.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<String> = serde_json::from_slice(&out.stdout).expect("the script prints the published ids");
    assert_eq!(ids.len(), 4, "one per channel");

    h.wait_for("every published request assigned", Duration::from_secs(60), || async {
        let client = h.app.db.pool.get().await.unwrap();
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM tickets WHERE channel_message_id = ANY($1) AND state = 'assigned'",
                &[&ids],
            )
            .await
            .unwrap()
            .get(0);
        n == 4
    })
    .await;

    let client = h.app.db.pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT channel, number, body, customer FROM tickets WHERE channel_message_id = ANY($1) ORDER BY channel",
            &[&ids],
        )
        .await
        .unwrap();
    let channels: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(channels, ["app", "chat", "email", "phone"]);
    // Python escaped every non-ASCII character; the ticket holds the customer's words as written.
    let phone_body: String = rows[3].get(2);
    assert_eq!(
        phone_body,
        "喂，你好，我那个银行卡被扣了两次钱，订单号是2024051088，麻烦帮我查一下"
    );
    let phone_customer: serde_json::Value = rows[3].get(3);
    assert_eq!(
        phone_customer["phone"], "13812345678",
        "the full contact is kept in the ticket record"
    );

    // Downstream sees each assignment, with contacts masked.
    let numbers: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    h.wait_for("ticket.assigned events", Duration::from_secs(10), || async {
        h.depth(&events).await >= 4
    })
    .await;
    let delivered = h.drain_queue(&events).await;
    for number in &numbers {
        let event = delivered
            .iter()
            .map(|m| serde_json::from_slice::<serde_json::Value>(&m.data).unwrap())
            .find(|e| e["subject"] == number.as_str())
            .unwrap_or_else(|| panic!("no ticket.assigned event for {number}"));
        assert_eq!(event["type"], "switchboard.ticket.assigned.v1");
    }
    for m in &delivered {
        let text = String::from_utf8_lossy(&m.data);
        assert!(
            !text.contains("13812345678") && !text.contains("zhang.san@example.com"),
            "unmasked contact: {text}"
        );
    }
    h.cleanup().await;
}
