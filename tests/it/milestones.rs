//! Milestones between first response and resolution (issue 14 item 4) on the real servers, with
//! a test policy whose milestones are seconds long (tests/fixtures/policy-fast-milestones.toml):
//! a missed milestone breaches and climbs its own ladder through the escalate stage, a late
//! milestone stops its escalation, a workaround in time meets its milestone without resolving
//! the ticket, and only the assignee or the team's supervisor may record one.

use crate::common;
use crate::sla::{act, log};

use common::served::{Served, assigned, key};
use common::{Harness, manifest_dir, test_settings};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::core::access::Role;
use switchboard::http::auth;

// fl-2 is fl-1's colleague but takes no ticket (max_open 0); ts-1 is another team's agent.
const ROSTER: &str = "id,name,team,languages,channels,skills,max_open,presence\n\
    fl-1,Agent One,front_line,zh;en,,,100,online\n\
    fl-2,Agent Two,front_line,zh;en,,,0,online\n\
    ts-1,Tech One,technical_support,zh;en,,,100,online\n";

async fn harness(name: &str) -> Harness {
    let mut s = test_settings(name);
    s.policy_path = manifest_dir().join("tests/fixtures/policy-fast-milestones.toml");
    let h = Harness::with_settings(s).await;
    h.import_roster(ROSTER).await;
    h
}

/// One transition as `crate::sla::log` gives it: (kind, target, at, details).
type Entry = (String, Option<String>, chrono::DateTime<chrono::Utc>, Value);

async fn milestones_of(h: &Harness, number: &str) -> Value {
    let client = h.app.db.pool.get().await.unwrap();
    client
        .query_one(
            "SELECT coalesce(milestones, '{}'::jsonb) FROM tickets WHERE number = $1",
            &[&number],
        )
        .await
        .unwrap()
        .get(0)
}

/// Through the real stages: the plan milestone (2 s) is missed, so the escalate stage records
/// `sla.breached` for `plan` on time and climbs the plan's own ladder (to `plan_owner`, not the
/// rule's supervisor) with reminders; the plan recorded late stops them. The workaround given
/// in time (due 8 s) never breaches, and the ticket stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_milestone_escalates_on_its_ladder_and_a_workaround_in_time_does_not_resolve() {
    let mut h = harness("milestones").await;
    // The rule's ladder gets a second rung of its own (the technical team's supervisor), so an
    // escalation by hand shows which ladder it climbed.
    h.adjust_policy(|doc| {
        let fast = doc.escalation.ladders.get_mut("fast").unwrap();
        let mut second = fast.steps[0].clone();
        second.notify = "technical_support".into();
        second.repeat = None;
        fast.steps.insert(1, second);
    });
    // The ticket's events, drained at the end (each checked against its type's schema).
    let events = h.event_queue("#").await;
    h.start_stages(&StageName::ALL, 1);
    let number = crate::sla::open_ticket(&h, "ms-1", "我的订单怎么还没发货？").await;
    act(
        &h,
        &number,
        "ms-1-workaround",
        json!({"kind": "workaround", "done": "sent a replacement code", "note": "internal"}),
    )
    .await;
    h.wait_for("workaround recorded", Duration::from_secs(10), || async {
        milestones_of(&h, &number).await.get("workaround").is_some()
    })
    .await;
    let received: chrono::DateTime<chrono::Utc> = h
        .app
        .db
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT received_at FROM tickets WHERE number = $1", &[&number])
        .await
        .unwrap()
        .get(0);
    // Breach of plan at 2 s, reminders every 2 s: wait for two steps on the plan's ladder.
    let plan_steps = |entries: &[Entry]| {
        entries
            .iter()
            .filter(|e| e.0 == "escalated" && e.1.as_deref() == Some("plan"))
            .count()
    };
    h.wait_for("two plan escalation steps", Duration::from_secs(15), || async {
        plan_steps(&log(&h, &number).await) >= 2
    })
    .await;
    let entries = log(&h, &number).await;
    let breach = entries
        .iter()
        .find(|e| e.0 == "sla.breached" && e.1.as_deref() == Some("plan"))
        .expect("the plan's breach is recorded");
    let late = (breach.2 - (received + chrono::Duration::seconds(2))).num_milliseconds();
    assert!(
        (0..1500).contains(&late),
        "plan breach recorded {late} ms after its due time"
    );
    let step = entries
        .iter()
        .find(|e| e.0 == "escalated" && e.1.as_deref() == Some("plan"))
        .unwrap();
    assert_eq!(step.3["notified"], "plan_owner", "{}", step.3);
    assert_eq!(step.3["ladder"], "plan", "{}", step.3);
    // Escalated by hand while the plan's escalation climbs: the next rung of the plan's ladder
    // (past its last step: `beyond_last_rung`, the department head), not of the rule's (the
    // technical team's supervisor).
    act(
        &h,
        &number,
        "ms-1-escalate",
        json!({"kind": "escalate", "reason": "the customer is calling again"}),
    )
    .await;
    h.wait_for("escalated by hand", Duration::from_secs(10), || async {
        log(&h, &number)
            .await
            .iter()
            .any(|e| e.3["data"]["manual"] == json!(true))
    })
    .await;
    let by_hand = log(&h, &number)
        .await
        .into_iter()
        .find(|e| e.3["data"]["manual"] == json!(true))
        .unwrap();
    assert_eq!(by_hand.3["data"]["notified"], "department_head", "{}", by_hand.3);

    // Past the workaround's due time (8 s): met in time, so no breach; the ticket is not resolved.
    let given: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(milestones_of(&h, &number).await["workaround"].clone()).unwrap();
    assert!(
        given <= received + chrono::Duration::seconds(8),
        "the workaround came too late for this test ({given})"
    );
    let wait = (received + chrono::Duration::seconds(9)) - chrono::Utc::now();
    if let Ok(wait) = wait.to_std() {
        tokio::time::sleep(wait).await;
    }
    let entries = log(&h, &number).await;
    assert!(
        !entries
            .iter()
            .any(|e| e.1.as_deref() == Some("workaround") && e.0 != "other"),
        "a workaround in time breached: {entries:?}"
    );
    assert_eq!(crate::sla::state(&h, &number).await, "in_progress");
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM tickets WHERE number = '{number}' AND resolved_at IS NULL"
        ))
        .await,
        1
    );

    // The plan, late: its escalation stops and no reminder follows.
    act(
        &h,
        &number,
        "ms-1-plan",
        json!({"kind": "milestone", "name": "plan", "note": "refund within 3 days"}),
    )
    .await;
    h.wait_for("plan escalation stopped", Duration::from_secs(10), || async {
        h.count(&format!(
            "SELECT count(*) FROM escalations e JOIN tickets t ON t.id = e.ticket_id
             WHERE t.number = '{number}' AND e.target = 'plan' AND e.stop_reason = 'target met'"
        ))
        .await
            == 1
    })
    .await;
    let before = plan_steps(&log(&h, &number).await);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        before,
        plan_steps(&log(&h, &number).await),
        "no reminder after the plan was met"
    );
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM sla_timers s JOIN tickets t ON t.id = s.ticket_id
             WHERE t.number = '{number}' AND s.state = 'pending' AND s.purpose LIKE '%:plan'"
        ))
        .await,
        0,
        "a plan timer is still pending"
    );
    let met = milestones_of(&h, &number).await;
    assert!(met.get("plan").is_some() && met.get("workaround").is_some(), "{met}");
    // The milestone not in the rule is refused (dead-lettered with the reason).
    let dq = h.topo().dead_queue();
    act(
        &h,
        &number,
        "ms-1-diagnosis",
        json!({"kind": "milestone", "name": "diagnosis"}),
    )
    .await;
    h.wait_for("refusal dead-lettered", Duration::from_secs(10), || async {
        h.depth(&dq).await == 1
    })
    .await;
    let dead = h.drain_queue(&dq).await;
    let reason = common::header(&dead[0], "x-switchboard-reason").unwrap();
    assert!(reason.contains("not a milestone of the ticket's SLA rule"), "{reason}");
    let types: Vec<String> = h
        .drain_queue(&events)
        .await
        .iter()
        .map(|m| serde_json::from_slice::<Value>(&m.delivery.data).unwrap()["type"].to_string())
        .collect();
    for t in [
        "ticket.milestone_met",
        "ticket.workaround_provided",
        "sla.breached",
        "ticket.escalated",
    ] {
        let t = format!("switchboard.{t}.v1");
        assert!(types.iter().any(|x| x.contains(&t)), "no {t} among {types:?}");
    }
    h.cleanup().await;
}

fn app_request(id: &str) -> Value {
    json!({
        "channel": "app",
        "channel_message_id": id,
        "received_at": chrono::Utc::now(),
        "customer": {"name": "王先生", "phone": "13812349001"},
        "body": "我的订单怎么还没发货？",
    })
}

/// Who may record a milestone or a workaround over HTTP: the ticket's assignee and the
/// supervisor of its team; not a colleague, not another team's agent or supervisor, not the
/// integration whose request opened the ticket. The clocks the API shows include the
/// milestones, met.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_assignee_or_their_supervisor_records_a_milestone() {
    let mut h = harness("milestones_access").await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let app_key = key(&h, auth::KeySpec::integration("app-backend", Some("app"))).await;
    let (number, assignee) = assigned(&h, &mut gw, &app_key, app_request("ms-acc-1")).await;
    assert_eq!(assignee, "fl-1");
    let own = key(&h, auth::KeySpec::agent("fl-1", "fl-1")).await;
    let colleague = key(&h, auth::KeySpec::agent("fl-2", "fl-2")).await;
    let tech = key(&h, auth::KeySpec::agent("ts-1", "ts-1")).await;
    let tech_sup = key(
        &h,
        auth::KeySpec {
            team: Some("technical_support"),
            ..auth::KeySpec::person("sup-tech", Role::Supervisor)
        },
    )
    .await;
    let front_sup = key(
        &h,
        auth::KeySpec {
            team: Some("front_line"),
            ..auth::KeySpec::person("sup-front", Role::Supervisor)
        },
    )
    .await;
    let plan = json!({"action": {"kind": "milestone", "name": "plan", "note": "x"}});
    let workaround = json!({"action": {"kind": "workaround", "done": "x"}});
    for (who, k) in [
        ("the opening integration", &app_key),
        ("a colleague", &colleague),
        ("another team's agent", &tech),
        ("another team's supervisor", &tech_sup),
    ] {
        for body in [&plan, &workaround] {
            let r = gw.act(k, &number, body.clone()).await;
            assert_eq!(r.status.as_u16(), 403, "{who} {body}: {:?}", r.json());
        }
    }
    assert_eq!(milestones_of(&h, &number).await, json!({}), "nothing was recorded");
    let r = gw.act(&own, &number, workaround.clone()).await;
    assert_eq!(r.status.as_u16(), 200, "the assignee: {:?}", r.json());
    let r = gw.act(&front_sup, &number, plan.clone()).await;
    assert_eq!(r.status.as_u16(), 200, "the team's supervisor: {:?}", r.json());
    let r = gw.get(&own, &format!("/v1/tickets/{number}")).await;
    assert_eq!(r.status.as_u16(), 200);
    let v = r.json();
    let clock = |target: &str| {
        v["sla"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["target"] == target)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert!(
        ["met", "met_late"].contains(&clock("plan")["state"].as_str().unwrap_or("")),
        "{}",
        clock("plan")
    );
    assert_eq!(clock("workaround")["state"], "met", "{}", clock("workaround"));
    assert_eq!(clock("resolution")["state"], "running", "{}", clock("resolution"));
    assert!(v["ticket"]["milestones"]["plan"].is_string(), "{v}");
    let allowed: Vec<&str> = v["allowed_actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        allowed.contains(&"workaround") && allowed.contains(&"milestone"),
        "{allowed:?}"
    );
    h.cleanup().await;
}
