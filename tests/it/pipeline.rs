//! End to end on the real servers: intake → classify → prioritize → assign.

use crate::common;

use common::{Harness, header};
use std::collections::HashMap;
use std::time::Duration;
use switchboard::app::StageName;
use switchboard_tools::demo::{Kind, traffic};

/// A few hundred mixed requests from all channels, with duplicates, thread replies and invalid
/// messages: every valid one ends assigned or queued with exactly one transition per stage (and
/// one `customer_messaged` per reply threaded onto it), and every invalid one sits in the
/// dead-letter queue with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_traffic_ends_assigned_or_queued_and_invalid_messages_are_dead_lettered() {
    let mut h = Harness::new("mixed").await;
    h.import_sample_roster().await;
    let events = h.event_queue("ticket.#").await;
    h.start_stages(&StageName::ALL, 2);

    let pubs = traffic("mixed", 0..400, true, chrono::Utc::now());
    // Replies come later than what they answer (a reply racing its original by microseconds
    // may open its own ticket: it cannot name a message that does not exist yet).
    for p in pubs.iter().filter(|p| p.kind != Kind::Reply) {
        h.publish_intake(&p.routing_key, &p.message_id, &p.payload).await;
    }
    let new = pubs.iter().filter(|p| p.kind == Kind::New).count() as i64;
    let replies = pubs.iter().filter(|p| p.kind == Kind::Reply).count() as i64;
    let invalid = pubs.iter().filter(|p| p.kind == Kind::Invalid).count() as u32;
    assert!(pubs.iter().any(|p| p.kind == Kind::Duplicate) && replies > 0 && invalid > 0);
    assert_eq!(
        ["phone", "chat", "email", "app"]
            .iter()
            .filter(|c| pubs.iter().any(|p| p.routing_key.ends_with(*c)))
            .count(),
        4
    );

    h.wait_for("every ticket routed", Duration::from_secs(120), || async {
        h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')")
            .await
            == new
    })
    .await;
    for p in pubs.iter().filter(|p| p.kind == Kind::Reply) {
        h.publish_intake(&p.routing_key, &p.message_id, &p.payload).await;
    }
    h.wait_for("replies appended", Duration::from_secs(60), || async {
        h.count("SELECT count(*) FROM ticket_messages").await == new + replies
    })
    .await;
    // Each reply tells the ticket's assignee: one same-state transition, applied once.
    h.wait_for("replies announced", Duration::from_secs(60), || async {
        h.count("SELECT count(*) FROM ticket_transitions WHERE details->>'event' = 'customer_messaged'")
            .await
            == replies
    })
    .await;
    let dead_queue = h.topo().dead_queue();
    h.wait_for("invalid messages dead-lettered", Duration::from_secs(30), || async {
        h.depth(&dead_queue).await >= invalid
    })
    .await;
    // Let any straggling duplicate finish before counting exact numbers.
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(
        h.count("SELECT count(*) FROM tickets").await,
        new,
        "duplicates and replies open no ticket"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM ticket_messages").await,
        new + replies,
        "replies are appended"
    );
    // Exactly one transition per stage, in order, for every ticket, besides the replies'.
    let bad = h
        .count(
            "SELECT count(*) FROM (
               SELECT ticket_id,
                      string_agg(to_state, ',' ORDER BY seq) FILTER (WHERE details->>'event' IS DISTINCT FROM 'customer_messaged') AS path,
                      count(*) FILTER (WHERE details->>'event' = 'customer_messaged' AND from_state = to_state) AS replies,
                      count(*) AS n
               FROM ticket_transitions
               -- A chat's first reply is due within 10 s (shipped policy): its breach and
               -- escalation may come while the test runs; they are the escalate stage's rows.
               WHERE actor <> 'escalate'
               GROUP BY ticket_id) p
             WHERE NOT (path IN ('received,classified,prioritized,assigned', 'received,classified,prioritized,queued') AND n = 4 + replies)",
        )
        .await;
    assert_eq!(bad, 0, "tickets whose transitions are not exactly one per stage");
    assert_eq!(
        h.count(
            "SELECT count(*) FROM tickets t WHERE version <> (SELECT count(*) FROM ticket_transitions tr WHERE tr.ticket_id = t.id)"
        )
        .await,
        0
    );
    assert_eq!(
        h.count("SELECT count(*) FROM tickets WHERE state = 'assigned' AND (assignee IS NULL OR team IS NULL)")
            .await,
        0
    );
    // Ticket numbers: unique, YYYYMM-NNNNN.
    assert_eq!(
        h.count("SELECT count(*) FROM tickets WHERE number !~ '^[0-9]{6}-[0-9]{5,}$'")
            .await,
        0
    );
    // Agents never exceed their cap, and their load matches their tickets.
    assert_eq!(
        h.count("SELECT count(*) FROM agent_loads WHERE open_tickets > max_open")
            .await,
        0
    );
    assert_eq!(
        h.count(
            "SELECT count(*) FROM agent_loads a WHERE open_tickets <> (SELECT count(*) FROM tickets t WHERE t.assignee = a.id AND t.state <> 'closed')"
        )
        .await,
        0
    );

    let dead = h.drain_queue(&dead_queue).await;
    assert_eq!(dead.len() as u32, invalid, "exactly the invalid messages are dead");
    for d in &dead {
        let reason = header(d, "x-switchboard-reason").expect("a dead letter says why");
        assert!(reason.starts_with("intake request rejected:"), "{reason}");
        assert_eq!(header(d, "x-switchboard-stage").as_deref(), Some("intake"));
    }
    let reasons: Vec<String> = dead.iter().filter_map(|d| header(d, "x-switchboard-reason")).collect();
    assert!(
        reasons.iter().any(|r| r.contains("unknown channel \"fax\"")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("customer")), "{reasons:?}");

    // Events: one per transition, gap-free per ticket; redeliveries share an id.
    let client = h.app.db.pool.get().await.unwrap();
    let versions: HashMap<String, i64> = client
        .query("SELECT number, version::bigint FROM tickets", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut per_ticket: HashMap<String, Vec<i64>> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        for m in &h.drain_queue(&events).await {
            let ev: serde_json::Value = serde_json::from_slice(&m.delivery.data).unwrap();
            assert_eq!(ev["specversion"], "1.0");
            // The sequence extension: a zero-padded string, ordered within the ticket's source.
            let seq: i64 = ev["sequence"].as_str().unwrap().parse().unwrap();
            assert_eq!(ev["id"], format!("{}.{}", ev["subject"].as_str().unwrap(), seq));
            assert_eq!(
                ev["source"],
                format!("switchboard/tickets/{}", ev["subject"].as_str().unwrap())
            );
            let seqs = per_ticket
                .entry(ev["subject"].as_str().unwrap().to_owned())
                .or_default();
            if !seqs.contains(&seq) {
                seqs.push(seq);
            }
        }
        let seen: usize = per_ticket.values().map(Vec::len).sum();
        if seen as i64 >= versions.values().sum::<i64>() || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(per_ticket.len() as i64, new);
    for (number, mut seqs) in per_ticket {
        seqs.sort();
        assert_eq!(seqs, (1..=versions[&number]).collect::<Vec<_>>(), "events of {number}");
    }
    h.cleanup().await;
}

/// Messages of one chat session thread onto one ticket; an email reply of the same customer
/// quoting the ticket number in its subject does too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_thread_onto_their_open_ticket() {
    let mut h = Harness::new("thread").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let now = chrono::Utc::now().to_rfc3339();
    for i in 0..3 {
        let body = format!(
            r#"{{"channel":"chat","channel_message_id":"s1-m{i}","received_at":"{now}","customer":{{"customer_id":"C1"}},"body":"第{i}条：我的订单一直没发货","thread_ref":"chat:s1"}}"#
        );
        h.publish_intake("intake.chat", &format!("s1-m{i}"), body.as_bytes())
            .await;
    }
    h.wait_for("chat ticket routed", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned','queued')")
            .await
            == 1
    })
    .await;
    let client = h.app.db.pool.get().await.unwrap();
    let number: String = client
        .query_one("SELECT number FROM tickets", &[])
        .await
        .unwrap()
        .get(0);
    let reply = format!(
        r#"{{"channel":"email","channel_message_id":"e-1","received_at":"{now}","customer":{{"customer_id":"C1","email":"a@example.com"}},"subject":"Re: [{number}] 订单","body":"还没收到","thread_ref":"ticket:{number}"}}"#
    );
    h.publish_intake("intake.email", "e-1", reply.as_bytes()).await;
    h.wait_for("reply stored", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM ticket_messages").await == 4
    })
    .await;
    assert_eq!(h.count("SELECT count(*) FROM tickets").await, 1);
    h.cleanup().await;
}

/// Every stage running, one technical-support agent with no free slot (`ts-1`, cap 0), and `n`
/// app faults (`q0`, `q1`, …) received a minute apart, the oldest first (earlier deadlines, same
/// SLA rule), all waiting in the team's queue.
async fn faults_queued_beside_a_full_agent(name: &str, n: i64) -> Harness {
    let mut h = Harness::new(name).await;
    h.import_roster(
        "id,name,team,languages,channels,skills,max_open,presence\nts-1,Tech,technical_support,zh;en,,,0,online\n",
    )
    .await;
    h.start_stages(&StageName::ALL, 1);
    let base = chrono::Utc::now();
    for i in 0..n {
        let at = (base - chrono::Duration::minutes(10 - i)).to_rfc3339();
        let body = format!(
            r#"{{"channel":"app","channel_message_id":"q{i}","received_at":"{at}","customer":{{"customer_id":"C{i}"}},"body":"The app crashes every time I open the settings page"}}"#
        );
        h.publish_intake("intake.app", &format!("q{i}"), body.as_bytes()).await;
    }
    h.wait_for("all queued", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM tickets WHERE state = 'queued'").await == n
    })
    .await;
    h
}

/// With no capacity, tickets wait in their team's queue; raising an agent's cap hands them out
/// in due-time order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_tickets_are_assigned_when_capacity_frees_in_due_order() {
    let h = faults_queued_beside_a_full_agent("queue", 4).await;
    assert_eq!(
        h.count("SELECT count(*) FROM tickets WHERE team = 'technical_support'")
            .await,
        4
    );

    let team = h.app.db.set_agent_status("ts-1", None, Some(2)).await.unwrap();
    assert_eq!(team.as_deref(), Some("technical_support"));
    publish_drain(&h, "technical_support", "drain-1").await;
    h.wait_for("two assigned", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM tickets WHERE state = 'assigned'").await == 2
    })
    .await;
    let client = h.app.db.pool.get().await.unwrap();
    let assigned: Vec<String> = client
        .query(
            "SELECT channel_message_id FROM tickets WHERE state = 'assigned' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(assigned, vec!["q0", "q1"], "the earliest deadlines are served first");
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agent_loads WHERE id = 'ts-1'")
            .await,
        2
    );
    h.cleanup().await;
}

/// Asks the assign stage to drain `team`'s queue, as a freed slot or a presence change does.
async fn publish_drain(h: &Harness, team: &str, message_id: &str) {
    let drain = switchboard::contracts::Outgoing {
        exchange: switchboard::contracts::Exchange::Work,
        routing_key: "assign".into(),
        message_id: message_id.into(),
        body: serde_json::json!({"drain_team": team, "reason": "test"}).into(),
        headers: vec![],
    };
    switchboard::bus::publish_all(&h.ch, h.topo(), &[drain]).await.unwrap();
}

/// A foreign-key check elsewhere (the notify stage storing a message for the ticket, a timer
/// being set) holds a key-share lock on the ticket's row for its transaction. A drain must still
/// take that queued ticket: skipping it left the freed slot empty until the sweeper's next drain
/// (this is what made `queued_tickets_are_assigned_when_capacity_frees_in_due_order` fail now
/// and then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_takes_a_queued_ticket_whose_row_a_foreign_key_check_holds() {
    let h = faults_queued_beside_a_full_agent("queue_keyshare", 1).await;
    let mut b_client = h.app.db.pool.get().await.unwrap();
    let b = b_client.transaction().await.unwrap();
    b.execute("SELECT 1 FROM tickets WHERE state = 'queued' FOR KEY SHARE", &[])
        .await
        .unwrap();
    h.app.db.set_agent_status("ts-1", None, Some(1)).await.unwrap();
    publish_drain(&h, "technical_support", "drain-ks").await;
    // Assigned while B still holds its key-share lock.
    h.wait_for("assigned", Duration::from_secs(15), || async {
        h.count("SELECT count(*) FROM tickets WHERE state = 'assigned'").await == 1
    })
    .await;
    b.commit().await.unwrap();
    drop(b_client);
    h.cleanup().await;
}

/// A poison work message (its ticket does not exist) is dead-lettered with its reason and does
/// not block the messages behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_work_message_is_dead_lettered_and_the_queue_moves_on() {
    let mut h = Harness::new("poison").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let ghost = switchboard::contracts::Outgoing {
        exchange: switchboard::contracts::Exchange::Work,
        routing_key: "classify".into(),
        message_id: "209901-99999:classify:1".into(),
        body: serde_json::json!({"ticket_id": 999999, "number": "209901-99999", "version": 1, "stage": "classify", "received_at": "2026-01-01T00:00:00Z"}).into(),
        headers: vec![],
    };
    let garbage = switchboard::contracts::Outgoing {
        body: serde_json::json!({"hello": "world"}).into(),
        message_id: "g".into(),
        ..ghost.clone()
    };
    switchboard::bus::publish_all(&h.ch, h.topo(), &[ghost, garbage])
        .await
        .unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    let ok = format!(
        r#"{{"channel":"phone","channel_message_id":"call-1","received_at":"{now}","customer":{{"phone":"13812345678"}},"body":"我想问一下你们营业时间"}}"#
    );
    h.publish_intake("intake.phone", "call-1", ok.as_bytes()).await;
    h.wait_for("the good request routed", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned','queued')")
            .await
            == 1
    })
    .await;
    let dq = h.topo().dead_queue();
    h.wait_for("two dead letters", Duration::from_secs(30), || async {
        h.depth(&dq).await == 2
    })
    .await;
    let reasons: Vec<String> = h
        .drain_queue(&dq)
        .await
        .iter()
        .filter_map(|d| header(d, "x-switchboard-reason"))
        .collect();
    assert!(reasons.iter().any(|r| r.contains("does not exist")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not a work message")), "{reasons:?}");
    h.cleanup().await;
}

/// Requests are matched to customers by id, phone or email; the ticket API lists the
/// customer's earlier tickets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_are_matched_by_id_phone_or_email_and_tickets_show_earlier_ones() {
    let mut h = Harness::new("customers").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::PIPELINE, 1);
    let now = chrono::Utc::now().to_rfc3339();
    let reqs = [
        ("c1", "phone", r#"{"phone":"138-1234-5678"}"#),
        ("c2", "app", r#"{"phone":"+86 13812345678","customer_id":"C77"}"#),
        ("c3", "email", r#"{"email":"Li@Example.com","customer_id":"C77"}"#),
        ("c4", "email", r#"{"email":"someone.else@example.com"}"#),
    ];
    for (id, ch, cust) in reqs {
        let body = format!(
            r#"{{"channel":"{ch}","channel_message_id":"{id}","received_at":"{now}","customer":{cust},"body":"请问我的订单到哪了"}}"#
        );
        h.publish_intake(&format!("intake.{ch}"), id, body.as_bytes()).await;
    }
    h.wait_for("routed", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned','queued')")
            .await
            == 4
    })
    .await;
    assert_eq!(
        h.count("SELECT count(*) FROM customers").await,
        2,
        "c1..c3 are one customer"
    );
    assert_eq!(
        h.count("SELECT count(DISTINCT customer_ref) FROM tickets WHERE channel_message_id IN ('c1','c2','c3')")
            .await,
        1
    );
    let client = h.app.db.pool.get().await.unwrap();
    let number: String = client
        .query_one("SELECT number FROM tickets WHERE channel_message_id = 'c3'", &[])
        .await
        .unwrap()
        .get(0);
    let view = switchboard::http::api::ticket_json(&h.app, &number)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view["customer_tickets"].as_array().unwrap().len(), 2, "{view:#}");
    h.cleanup().await;
}

/// Requests of one batch from the same new customer create one record, filled in from all of
/// them; a later batch finds it by any of its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_creates_each_new_customer_once_with_everything_it_learned() {
    use switchboard::runtime::runner::Outcome;
    let h = Harness::new("customers_batch").await;
    let intake = switchboard::stages::intake::Intake { ctx: h.app.context() };
    let now = chrono::Utc::now().to_rfc3339();
    let inbound = |id: &str, ch: &str, cust: &str| {
        let body = format!(
            r#"{{"channel":"{ch}","channel_message_id":"{id}","received_at":"{now}","customer":{cust},"body":"请问我的订单到哪了"}}"#
        );
        common::inbound(&format!("intake.{ch}"), id, body.into_bytes())
    };
    let run = |batch: Vec<switchboard::runtime::runner::Inbound>| {
        let (h, intake) = (&h, &intake);
        async move { common::run_once(h, intake, &batch).await }
    };
    let first = run(vec![
        inbound("b1", "phone", r#"{"phone":"138-1234-5678"}"#),
        inbound(
            "b2",
            "app",
            r#"{"phone":"+86 13812345678","customer_id":"C77","name":"李雷"}"#,
        ),
        inbound(
            "b3",
            "email",
            r#"{"email":"Li@Example.com","customer_id":"C77","tier":"vip"}"#,
        ),
        inbound("b4", "email", r#"{"email":"someone.else@example.com"}"#),
    ])
    .await;
    assert!(first.iter().all(|o| matches!(o, Outcome::Done(_))), "{first:?}");
    assert_eq!(h.count("SELECT count(*) FROM customers").await, 2);
    assert_eq!(
        h.count(
            "SELECT count(*) FROM customers WHERE customer_id = 'C77' AND phone = '+8613812345678'
             AND email = 'li@example.com' AND name = '李雷' AND tier = 'vip'"
        )
        .await,
        1,
        "the record holds what all three requests said"
    );
    assert_eq!(
        h.count("SELECT count(DISTINCT customer_ref) FROM tickets WHERE channel_message_id IN ('b1','b2','b3')")
            .await,
        1
    );
    // A later batch: found by email alone, and by phone alone.
    let later = run(vec![
        inbound("b5", "email", r#"{"email":"LI@example.com"}"#),
        inbound("b6", "phone", r#"{"phone":"13812345678"}"#),
    ])
    .await;
    assert!(later.iter().all(|o| matches!(o, Outcome::Done(_))), "{later:?}");
    assert_eq!(h.count("SELECT count(*) FROM customers").await, 2);
    assert_eq!(
        h.count(
            "SELECT count(DISTINCT customer_ref) FROM tickets WHERE channel_message_id IN ('b1','b2','b3','b5','b6')"
        )
        .await,
        1
    );
    h.cleanup().await;
}
