//! Triage (issue 13, item 4) on the real RabbitMQ and Postgres: a request the classifier is unsure
//! of is flagged `needs_triage` with its two best candidates, waits in the triage team's queue
//! (after the urgent rule: an urgent one goes to the green channel all the same), and a triage
//! agent's `reclassify` (their decision, a correction for `switchboard train
//! --with-corrections`) clears the flag and sends it to the team its category routes to. Every
//! refusal is an attack: someone reaching a ticket of the triage queue they have no business with.

use crate::common;

use common::Harness;
use common::served::{Served, assigned, key};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::core::access::Role;
use switchboard::core::routing::choose_team;
use switchboard::core::state::TicketState;
use switchboard::core::ticket::Ticket;
use switchboard::http::auth::KeySpec;
use switchboard::store::tickets;
use switchboard_tools::client::Reply;

/// A threshold no rules' confidence reaches (it is top / (top + runner-up + smoothing)): every
/// decision is unsure.
const UNSURE: f64 = 1.0;

fn request(id: &str, phone: &str, subject: &str, body: &str) -> Value {
    json!({
        "channel": "app",
        "channel_message_id": id,
        "received_at": chrono::Utc::now(),
        "customer": {"name": format!("客户{id}"), "phone": phone},
        "subject": subject,
        "body": body,
    })
}

fn status(r: &Reply) -> u16 {
    r.status.as_u16()
}

fn assert_forbidden(r: &Reply, what: &str) {
    assert_eq!(status(r), 403, "{what}: {:?}", r.json());
}

async fn ticket(h: &Harness, number: &str) -> Ticket {
    let client = h.app.db.pool.get().await.unwrap();
    tickets::get_by_number(&**client, number)
        .await
        .unwrap()
        .expect("the ticket")
}

/// The numbers of the tickets `token` lists with `query`.
async fn listed(gw: &mut Served, token: &str, query: &str) -> Vec<String> {
    let r = gw.get(token, &format!("/v1/tickets?{query}")).await;
    assert_eq!(status(&r), 200, "{query}: {:?}", r.json());
    r.json()["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["number"].as_str().unwrap().to_owned())
        .collect()
}

fn reclassify(category: &str, reason: &str) -> Value {
    json!({"action": {"kind": "reclassify", "category": category, "reason": reason}})
}

/// The team the policy's rules give a decided ticket of `category`.
fn route(h: &Harness, t: &Ticket, category: &str) -> String {
    choose_team(
        &h.app.policy.doc.routing,
        category,
        t.priority.as_deref().unwrap_or(""),
        &t.channel,
        false,
    )
    .team
}

/// Waits until `number` is assigned to an agent of `team` (the normal assignment after a move).
async fn assigned_in(h: &Harness, number: &str, team: &str) {
    let sql = format!(
        "SELECT count(*) FROM tickets t JOIN agents a ON a.id = t.assignee
         WHERE t.number = '{number}' AND t.state = 'assigned' AND t.team = '{team}' AND a.team = '{team}'"
    );
    h.wait_for(
        &format!("{number} assigned in {team}"),
        Duration::from_secs(30),
        || async { h.count(&sql).await == 1 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsure_request_waits_for_triage_and_the_triage_agents_decision_sends_it_to_its_team() {
    let mut h = Harness::new("triage_flow").await;
    h.adjust_policy(|doc| doc.classification.triage_threshold = UNSURE);
    h.import_sample_roster().await;
    let events = h.event_queue("ticket.classified").await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let app = key(&h, KeySpec::integration("app-backend", Some("app"))).await;

    // Urgent first: it never waits for triage, flagged or not.
    let (urgent, _) = assigned(
        &h,
        &mut gw,
        &app,
        request(
            "tri-urgent",
            "13812345000",
            "紧急：系统无法访问",
            "从今天上午9点开始，我们公司所有员工都无法登录后台，业务全部停了，请立刻处理！",
        ),
    )
    .await;
    let u = ticket(&h, &urgent).await;
    assert_eq!(u.priority.as_deref(), Some("urgent"));
    assert!(u.needs_triage, "flagged all the same");
    assert_eq!(u.team.as_deref(), Some("green_channel"));

    // An ordinary request, unsure: flagged, its candidates stored, a triage agent takes it.
    let (number, assignee) = assigned(
        &h,
        &mut gw,
        &app,
        request("tri-1", "13812345001", "营业时间", "请问你们的营业时间是几点到几点？"),
    )
    .await;
    let t = ticket(&h, &number).await;
    assert!(t.needs_triage);
    assert_eq!(t.team.as_deref(), Some("triage"));
    assert!(assignee.starts_with("tg-"), "a triage agent: {assignee}");
    assert_eq!(t.category_candidates.len(), 2, "{:?}", t.category_candidates);
    assert_eq!(Some(&t.category_candidates[0].category), t.category.as_ref());
    assert_ne!(t.category_candidates[0].category, t.category_candidates[1].category);
    assert!(t.category_candidates[0].probability < UNSURE);
    let client = h.app.db.pool.get().await.unwrap();
    let log = tickets::transitions_of(&**client, t.id).await.unwrap();
    let classified = log.iter().find(|tr| tr.to == TicketState::Classified).unwrap();
    assert_eq!(classified.details["needs_triage"], true);
    assert_eq!(classified.details["candidates"].as_array().map(Vec::len), Some(2));
    assert!(classified.reason.contains("needs triage"), "{}", classified.reason);
    let routed = log.iter().find(|tr| tr.to == TicketState::Assigned).unwrap();
    assert!(routed.reason.contains("needs_triage=true"), "{}", routed.reason);

    // The classified event carries the flag and the candidates.
    let mut seen = None;
    for m in h.drain_queue(&events).await {
        let ev: Value = serde_json::from_slice(&m.delivery.data).unwrap();
        if ev["subject"] == json!(number) {
            seen = Some(ev);
        }
    }
    let ev = seen.expect("the ticket.classified event");
    assert_eq!(ev["data"]["ticket"]["needs_triage"], true);
    assert_eq!(
        ev["data"]["ticket"]["candidates"][1]["category"],
        json!(t.category_candidates[1].category)
    );
    assert_eq!(ev["data"]["transition"]["details"]["needs_triage"], true);

    // The triage agent's desk: the flag, the two candidates, the decision on offer.
    let triage = key(&h, KeySpec::agent("triage", &assignee)).await;
    let r = gw.get(&triage, &format!("/v1/tickets/{number}")).await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    let view = r.json();
    assert_eq!(view["ticket"]["needs_triage"], true);
    assert_eq!(view["ticket"]["candidates"].as_array().map(Vec::len), Some(2));
    assert!(
        view["allowed_actions"]
            .as_array()
            .unwrap()
            .contains(&json!("reclassify")),
        "{}",
        view["allowed_actions"]
    );
    assert!(listed(&mut gw, &triage, "needs_triage=true").await.contains(&number));
    assert!(!listed(&mut gw, &triage, "needs_triage=false").await.contains(&number));
    let r = gw.get(&triage, "/v1/tickets?needs_triage=maybe").await;
    assert_eq!(status(&r), 400, "{:?}", r.json());

    // The decision: the runner-up. Flag cleared, correction stored, moved to that team's queue,
    // and the normal assignment gives it an agent there.
    let chosen = t.category_candidates[1].category.clone();
    let team = route(&h, &t, &chosen);
    assert_ne!(team, "triage");
    let reason = format!("triage: chose {chosen}");
    let r = gw.act(&triage, &number, reclassify(&chosen, &reason)).await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    let after = r.json();
    assert_eq!(after["ticket"]["needs_triage"], false);
    assert_eq!(after["ticket"]["category"], json!(chosen));
    assert_eq!(after["ticket"]["team"], json!(team));
    assigned_in(&h, &number, &team).await;
    let row = client
        .query_one(
            "SELECT from_category, to_category, actor, reason FROM classifier_corrections WHERE ticket_id = $1",
            &[&t.id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), t.category);
    assert_eq!(row.get::<_, String>(1), chosen);
    assert_eq!(row.get::<_, String>(2), format!("agent:{assignee}"));
    assert_eq!(row.get::<_, String>(3), reason);
    let log = tickets::transitions_of(&**client, t.id).await.unwrap();
    let events: Vec<&str> = log
        .iter()
        .filter_map(|tr| tr.details.get("event").and_then(Value::as_str))
        .collect();
    assert_eq!(events, vec!["reclassified", "transferred"], "{log:#?}");
    let moved = log.iter().find(|tr| tr.details["event"] == "transferred").unwrap();
    assert_eq!(moved.actor, format!("agent:{assignee}"));
    assert!(
        moved.reason.contains("triage decided") && moved.reason.contains(&team),
        "{}",
        moved.reason
    );
    let load: i32 = client
        .query_one("SELECT open_tickets FROM agent_loads WHERE id = $1", &[&assignee])
        .await
        .unwrap()
        .get(0);
    assert_eq!(load, 0, "the triage agent's slot is free again");

    // The training row `switchboard train --with-corrections` reads.
    let rows = tickets::corrections_for_training(&h.app.db).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let c = &rows[0];
    assert_eq!((c.number.as_str(), c.channel.as_str()), (number.as_str(), "app"));
    assert_eq!(c.subject.as_deref(), Some("营业时间"));
    assert_eq!(c.body, "请问你们的营业时间是几点到几点？");
    assert_eq!(c.category, chosen);
    assert_eq!(c.reason, reason);
    assert_eq!(c.tier, switchboard::core::customer::Tier::Standard);
    assert_eq!(c.language, t.language);
    assert_eq!(c.priority, t.priority);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triage_queue_no_one_outside_reaches_a_flagged_ticket_and_the_decision_may_confirm_the_guess() {
    let mut h = Harness::new("triage_queue").await;
    h.adjust_policy(|doc| doc.classification.triage_threshold = UNSURE);
    // Nobody of the triage team is online: the ticket waits in its queue.
    h.import_roster(
        "id,name,team,languages,channels,skills,max_open,presence
fl-001,A,front_line,,,,8,online
ts-001,B,technical_support,,,,8,online
cr-001,C,customer_relations,,,,8,online
pm-001,D,product_management,,,,8,online
gc-001,E,green_channel,,,,8,online
qm-001,F,quality_management,,,,8,online
tg-001,G,triage,,,,8,offline
tg-002,H,triage,,,,8,offline
",
    )
    .await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let app = key(&h, KeySpec::integration("app-backend", Some("app"))).await;
    let r = gw
        .post(
            &app,
            "/v1/requests",
            request("tri-q", "13812345002", "App", "你们的App怎么样设置夜间模式？"),
            &[],
        )
        .await;
    assert_eq!(status(&r), 202, "{:?}", r.json());
    let sql =
        "SELECT count(*) FROM tickets WHERE channel_message_id = 'tri-q' AND state = 'queued' AND team = 'triage'";
    h.wait_for("tri-q queued for triage", Duration::from_secs(30), || async {
        h.count(sql).await == 1
    })
    .await;
    let number = h
        .text("SELECT number FROM tickets WHERE channel_message_id = 'tri-q'")
        .await;
    let t = ticket(&h, &number).await;
    assert!(t.needs_triage && t.assignee.is_none());
    let guess = t.category.clone().unwrap();
    let path = format!("/v1/tickets/{number}");

    // Agents of every other team: not seen, not listed, not decided.
    for agent in ["fl-001", "ts-001", "cr-001", "pm-001", "gc-001", "qm-001"] {
        let k = key(&h, KeySpec::agent(agent, agent)).await;
        assert_forbidden(&gw.get(&k, &path).await, &format!("{agent} reads a triage ticket"));
        assert_forbidden(
            &gw.act(&k, &number, reclassify(&guess, "triage: mine")).await,
            &format!("{agent} decides a triage ticket"),
        );
        for query in ["needs_triage=true", "team=triage&needs_triage=true", "team=triage"] {
            assert!(
                !listed(&mut gw, &k, query).await.contains(&number),
                "{agent} lists a triage ticket with {query}"
            );
        }
    }
    // A supervisor of another team neither; an integration never.
    let other_lead = key(
        &h,
        KeySpec {
            team: Some("customer_relations"),
            ..KeySpec::person("relations-lead", Role::Supervisor)
        },
    )
    .await;
    assert_forbidden(&gw.get(&other_lead, &path).await, "another team's supervisor reads it");
    assert_forbidden(
        &gw.act(&other_lead, &number, reclassify(&guess, "x")).await,
        "another team's supervisor decides it",
    );
    assert_forbidden(
        &gw.act(&app, &number, reclassify(&guess, "x")).await,
        "the integration decides it",
    );

    // A triage agent may decide, and only decide: the rest is for whoever is assigned it.
    let tg1 = key(&h, KeySpec::agent("tg-001", "tg-001")).await;
    let r = gw.get(&tg1, &path).await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    let allowed = r.json()["allowed_actions"].clone();
    assert!(allowed.as_array().unwrap().contains(&json!("reclassify")), "{allowed}");
    assert!(!allowed.as_array().unwrap().contains(&json!("transfer")), "{allowed}");
    assert_forbidden(
        &gw.act(
            &tg1,
            &number,
            json!({"action": {"kind": "transfer", "team": "front_line"}}),
        )
        .await,
        "a triage agent moves an unassigned ticket by hand",
    );
    assert!(
        listed(&mut gw, &tg1, "team=triage&needs_triage=true")
            .await
            .contains(&number)
    );
    // A reason is still needed.
    let r = gw.act(&tg1, &number, reclassify(&guess, "  ")).await;
    assert_eq!(status(&r), 409, "{:?}", r.json());

    // Confirming the guess is the decision: recorded with from == to, the ticket moves on.
    let team = route(&h, &t, &guess);
    let r = gw
        .act(&tg1, &number, reclassify(&guess, &format!("triage: chose {guess}")))
        .await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    assert_eq!(r.json()["ticket"]["needs_triage"], false);
    assigned_in(&h, &number, &team).await;
    let client = h.app.db.pool.get().await.unwrap();
    let (from, to): (Option<String>, String) = {
        let row = client
            .query_one(
                "SELECT from_category, to_category FROM classifier_corrections WHERE ticket_id = $1",
                &[&t.id],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((from.as_deref(), to.as_str()), (Some(guess.as_str()), guess.as_str()));
    // Decided: the triage agent no longer reaches it, and nobody decides twice.
    assert_forbidden(
        &gw.get(&tg1, &path).await,
        "the triage agent reads it after handing it on",
    );
    let tg2 = key(&h, KeySpec::agent("tg-002", "tg-002")).await;
    assert_forbidden(
        &gw.act(&tg2, &number, reclassify(&guess, "again")).await,
        "another triage agent decides it again",
    );
    assert!(!listed(&mut gw, &tg2, "needs_triage=true").await.contains(&number));

    // A supervisor's later correction is the one training learns from; an anonymised ticket's
    // text is gone and it is left out.
    let boss = key(&h, KeySpec::person("boss", Role::Supervisor)).await;
    let other = t
        .category_candidates
        .iter()
        .map(|c| c.category.clone())
        .find(|c| c != &guess)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = gw.act(&boss, &number, reclassify(&other, "customer confirmed")).await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    let rows = tickets::corrections_for_training(&h.app.db).await.unwrap();
    assert_eq!(rows.len(), 1, "one row per ticket: {rows:?}");
    assert_eq!(
        (rows[0].category.as_str(), rows[0].reason.as_str()),
        (other.as_str(), "customer confirmed")
    );
    h.execute(
        "UPDATE tickets SET anonymised_at = now(), body = '[anonymised]' WHERE id = $1",
        &[&t.id],
    )
    .await;
    assert!(tickets::corrections_for_training(&h.app.db).await.unwrap().is_empty());
    h.cleanup().await;
}
