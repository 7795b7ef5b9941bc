//! The service record (售后服务记录) and the customer's confirmation, on the real gateway,
//! RabbitMQ and Postgres: intake with and without record fields (contract v1 stays valid),
//! invalid fields refused at HTTP or dead-lettered with their reason, an agent's update as a
//! transition with before/after, the helper who may work the ticket (and the agents and keys
//! who still may not), and the confirmation as a fact apart from closing.

use crate::common;

use common::served::{Served, assigned, key};
use common::{Harness, header};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::core::access::Role;
use switchboard::http::auth;
use switchboard_tools::client::Reply;

fn app_request(id: &str, phone: &str, record: Option<Value>) -> Value {
    let mut r = json!({
        "channel": "app",
        "channel_message_id": id,
        "received_at": chrono::Utc::now(),
        "customer": {"name": "某科技公司 王经理", "phone": phone},
        "body": "打印机无法连接电脑，已经影响开票，APP 付款页面一直报错，无法下单",
    });
    if let Some(rec) = record {
        r["record"] = rec;
    }
    r
}

fn status(r: &Reply, want: u16, what: &str) {
    assert_eq!(r.status.as_u16(), want, "{what}: {:?}", r.json());
}

async fn record_of(h: &Harness, number: &str) -> Value {
    let client = h.app.db.pool.get().await.unwrap();
    client
        .query_one("SELECT record FROM tickets WHERE number = $1", &[&number])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_intake_with_and_without_fields_and_invalid_ones_refused_or_dead_lettered() {
    let mut h = Harness::new("rec_intake").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let app_key = key(&h, auth::KeySpec::integration("app-backend", Some("app"))).await;
    let boss = key(&h, auth::KeySpec::person("boss", Role::Supervisor)).await;

    // A v1 request without a record is what it always was: an empty record.
    let (plain, _) = assigned(&h, &mut gw, &app_key, app_request("rec-in-1", "13812345601", None)).await;
    assert_eq!(record_of(&h, &plain).await, json!({}));

    // With the record: every customer-settable field and a custom field the policy declares.
    let rec = json!({
        "product": "激光打印机", "device_model": "LJ-1020",
        "occurred_at": "2024-05-01T01:30:00Z", "tried": "重启电脑和打印机",
        "expectation": "今天内恢复", "expected_by": "2024-05-01T10:00:00Z",
        "urgency": "特急", "appointment_at": "2024-05-02T02:00:00Z", "callback_requested": true,
        "custom": {"contract_no": "HT-2024-001"}
    });
    let (number, _) = assigned(&h, &mut gw, &app_key, app_request("rec-in-2", "13812345602", Some(rec))).await;
    let stored = record_of(&h, &number).await;
    assert_eq!(stored["device_model"], "LJ-1020");
    assert_eq!(stored["urgency"], "critical", "the customer's 特急, as said");
    assert_eq!(stored["custom"]["contract_no"], "HT-2024-001");
    let view = gw.get(&boss, &format!("/v1/tickets/{number}")).await;
    status(&view, 200, "the supervisor reads the ticket");
    let v = view.json();
    assert_eq!(v["ticket"]["record"]["tried"], "重启电脑和打印机");
    assert_eq!(v["ticket"]["confirmation"], Value::Null);
    let columns = v["record_columns"].as_array().unwrap();
    assert!(
        columns.contains(&json!({"label": "合同号 Contract no.", "value": "HT-2024-001"})),
        "{columns:?}"
    );
    assert!(
        columns.contains(&json!({"label": "urgency", "value": "特急"})),
        "{columns:?}"
    );

    // Refused at the gateway, naming the field; nothing stored.
    for (id, record, field) in [
        (
            "rec-bad-1",
            json!({"custom": {"colour": "red"}}),
            "record.custom.colour",
        ),
        (
            "rec-bad-2",
            json!({"custom": {"contract_no": "x".repeat(65)}}),
            "record.custom.contract_no",
        ),
        ("rec-bad-3", json!({"helper": "ts-001"}), "record.helper"),
        ("rec-bad-4", json!({"product": "p".repeat(201)}), "record.product"),
    ] {
        let r = gw
            .post(
                &app_key,
                "/v1/requests",
                app_request(id, "13812345609", Some(record)),
                &[],
            )
            .await;
        status(&r, 422, id);
        assert_eq!(r.json()["error"]["field"], field, "{id}: {:?}", r.json());
        assert!(r.json()["error"]["message"].as_str().unwrap().contains(field), "{id}");
    }
    // A field the contract does not know is refused as before (the record adds no leniency).
    let mut unknown = app_request("rec-bad-5", "13812345609", None);
    unknown["recrod"] = json!({"product": "x"});
    let r = gw.post(&app_key, "/v1/requests", unknown, &[]).await;
    status(&r, 422, "an unknown top-level field");
    let r = gw
        .post(
            &app_key,
            "/v1/requests",
            app_request("rec-bad-6", "13812345609", Some(json!({"colour": "red"}))),
            &[],
        )
        .await;
    status(&r, 422, "an unknown record field");

    // Published straight to RabbitMQ: dead-lettered with the reason, nothing lost or stored.
    let bad = app_request("rec-bad-amqp", "13812345608", Some(json!({"custom": {"units": 3}})));
    h.publish_intake("intake.app", "rec-bad-amqp", &serde_json::to_vec(&bad).unwrap())
        .await;
    let dq = h.topo().dead_queue();
    h.wait_for("the bad record dead-lettered", Duration::from_secs(30), || async {
        h.depth(&dq).await >= 1
    })
    .await;
    let dead = h.drain_queue(&dq).await;
    let reasons: Vec<String> = dead
        .iter()
        .map(|d| header(d, "x-switchboard-reason").unwrap_or_default())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("record.custom.units") && r.contains("declared: contract_no")),
        "{reasons:?}"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM tickets WHERE channel_message_id LIKE 'rec-bad%'")
            .await,
        0
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_updates_helpers_and_confirmation_by_who_may_and_by_nobody_else() {
    let mut h = Harness::new("rec_update").await;
    h.import_sample_roster().await;
    // The ticket's events, drained at the end (each checked against its type's schema).
    let events = h.event_queue("ticket.*").await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let app_key = key(&h, auth::KeySpec::integration("app-backend", Some("app"))).await;
    let (number, assignee) = assigned(&h, &mut gw, &app_key, app_request("rec-up-1", "13812345611", None)).await;
    let owner = key(&h, auth::KeySpec::agent("owner", &assignee)).await;
    let client = h.app.db.pool.get().await.unwrap();
    let team: String = client
        .query_one("SELECT team FROM agents WHERE id = $1", &[&assignee])
        .await
        .unwrap()
        .get(0);
    let others: Vec<String> = client
        .query("SELECT id FROM agents WHERE team <> $1 ORDER BY id LIMIT 2", &[&team])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (helper_id, stranger_id) = (&others[0], &others[1]);
    let helper = key(&h, auth::KeySpec::agent("helper", helper_id)).await;
    let stranger = key(&h, auth::KeySpec::agent("stranger", stranger_id)).await;
    let ticket = format!("/v1/tickets/{number}");
    let forbidden = |r: &Reply, what: &str| status(r, 403, what);

    // Before being named, the helper is a stranger.
    forbidden(&gw.get(&helper, &ticket).await, "the helper-to-be reads the ticket");

    // The owner fills in the record and names a helper: a transition with before/after.
    let update = json!({"action": {"kind": "update_record",
        "set": {"device_model": "LJ-1020", "helper": helper_id, "custom": {"contract_no": "HT-9"}}}});
    status(
        &gw.act(&owner, &number, update).await,
        200,
        "the owner updates the record",
    );
    let row = client
        .query_one(
            "SELECT tr.actor, tr.details, tr.from_state, tr.to_state, tr.policy_version FROM ticket_transitions tr
             JOIN tickets t ON t.id = tr.ticket_id WHERE t.number = $1 AND tr.details->>'event' = 'record_updated'",
            &[&number],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), format!("agent:{assignee}"));
    let details: Value = row.get(1);
    assert_eq!(
        details["data"]["fields"],
        json!(["device_model", "helper", "custom.contract_no"])
    );
    assert_eq!(details["data"]["before"]["device_model"], Value::Null);
    assert_eq!(details["data"]["after"]["helper"], json!(helper_id));
    assert_eq!(row.get::<_, String>(2), row.get::<_, String>(3), "no state change");
    assert!(!row.get::<_, String>(4).is_empty(), "with the policy version");
    assert_eq!(record_of(&h, &number).await["device_model"], "LJ-1020");

    // The helper (another team) reads and works the ticket; cannot choose the helper.
    status(&gw.get(&helper, &ticket).await, 200, "the helper reads the ticket");
    status(
        &gw.act(
            &helper,
            &number,
            json!({"action": {"kind": "respond", "message": "工程师明日10:00前到达"}}),
        )
        .await,
        200,
        "the helper responds",
    );
    let arrived = json!({"action": {"kind": "update_record", "set": {"engineer_arrived_at": "2026-05-02T02:00:00Z"}}});
    status(
        &gw.act(&helper, &number, arrived).await,
        200,
        "the helper records the arrival",
    );
    let replace = json!({"action": {"kind": "update_record", "set": {"helper": stranger_id}}});
    status(
        &gw.act(&helper, &number, replace.clone()).await,
        409,
        "the helper replaces the helper",
    );
    let unname = json!({"action": {"kind": "update_record", "clear": ["helper"]}});
    status(
        &gw.act(&helper, &number, unname).await,
        409,
        "the helper removes the helper",
    );
    // Supervisor actions stay a supervisor's.
    let lower = json!({"action": {"kind": "set_priority", "priority": "low", "reason": "r"}});
    forbidden(&gw.act(&helper, &number, lower).await, "the helper sets the priority");

    // Another agent of the helper's team gains nothing; nor does the opening integration key.
    forbidden(&gw.get(&stranger, &ticket).await, "a stranger reads the ticket");
    forbidden(
        &gw.act(&stranger, &number, replace.clone()).await,
        "a stranger updates the record",
    );
    forbidden(
        &gw.act(
            &stranger,
            &number,
            json!({"action": {"kind": "confirm", "method": "phone"}}),
        )
        .await,
        "a stranger confirms",
    );
    forbidden(
        &gw.act(&app_key, &number, replace).await,
        "the integration updates the record",
    );
    let helper_team: String = client
        .query_one("SELECT team FROM agents WHERE id = $1", &[helper_id])
        .await
        .unwrap()
        .get(0);
    let their_sup = key(
        &h,
        auth::KeySpec {
            team: Some(&helper_team),
            ..auth::KeySpec::person("their-sup", Role::Supervisor)
        },
    )
    .await;
    forbidden(
        &gw.get(&their_sup, &ticket).await,
        "the helper's supervisor reads the ticket",
    );

    // Invalid values: refused naming the field, the record unchanged.
    let too_long = json!({"action": {"kind": "update_record", "set": {"custom": {"contract_no": "x".repeat(65)}}}});
    let r = gw.act(&owner, &number, too_long).await;
    status(&r, 409, "an over-long custom field");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("record.custom.contract_no")
    );
    let undeclared = json!({"action": {"kind": "update_record", "set": {"custom": {"colour": "red"}}}});
    status(
        &gw.act(&owner, &number, undeclared).await,
        409,
        "an undeclared custom field",
    );
    let wrong_type = json!({"action": {"kind": "update_record", "set": {"callback_requested": "yes"}}});
    status(&gw.act(&owner, &number, wrong_type).await, 422, "a wrong type");
    assert_eq!(record_of(&h, &number).await["custom"]["contract_no"], "HT-9");

    // Confirmation: a result is confirmed, once, and it is not the closing.
    let confirm = |m: &str| json!({"action": {"kind": "confirm", "method": m}});
    status(
        &gw.act(&owner, &number, confirm("signature")).await,
        409,
        "confirmed before resolving",
    );
    status(
        &gw.act(
            &owner,
            &number,
            json!({"action": {"kind": "resolve", "result": "更换数据线后恢复"}}),
        )
        .await,
        200,
        "resolve",
    );
    // The customer's key may confirm online only.
    status(
        &gw.act(&app_key, &number, confirm("signature")).await,
        409,
        "the customer signs by key",
    );
    status(
        &gw.act(&app_key, &number, confirm("online")).await,
        200,
        "the customer confirms online",
    );
    let v = gw.get(&owner, &ticket).await.json();
    assert_eq!(v["ticket"]["state"], "resolved", "confirming does not close");
    assert_eq!(v["ticket"]["closed_at"], Value::Null);
    assert_eq!(v["ticket"]["confirmation"]["method"], "online");
    assert!(
        v["ticket"]["confirmation"]["by"]
            .as_str()
            .unwrap()
            .starts_with("customer:")
    );
    status(&gw.act(&owner, &number, confirm("phone")).await, 409, "confirmed twice");
    status(
        &gw.act(&owner, &number, json!({"action": {"kind": "close"}})).await,
        200,
        "close",
    );
    let v = gw.get(&owner, &ticket).await.json();
    assert_eq!(v["ticket"]["state"], "closed");
    assert_eq!(v["ticket"]["confirmation"]["method"], "online", "kept after closing");
    let types: Vec<String> = h
        .drain_queue(&events)
        .await
        .iter()
        .map(|m| serde_json::from_slice::<Value>(&m.delivery.data).unwrap()["type"].to_string())
        .collect();
    for t in ["ticket.record_updated", "ticket.confirmed"] {
        let t = format!("switchboard.{t}.v1");
        assert!(types.iter().any(|x| x.contains(&t)), "no {t} among {types:?}");
    }
    h.cleanup().await;
}
