//! Group tickets for complex problems (issue 14 item 9, seed 001 §5.2): `add_task` on a parent
//! opens a task (a child ticket) in another team's queue, once however often the action is
//! delivered; the parent hears of each task being done and is resolved only when every task is.
//! The access tests are attacks: principals reaching for tasks or parents outside their scope.

use crate::common;

use common::Harness;
use common::served::{Served, key, user};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::bus;
use switchboard::contracts::{Exchange, Outgoing};
use switchboard::core::access::Role;
use switchboard::http::auth::{self, UserSpec};

/// Publishes an action on the actions exchange, as an agent's tool or a desk would.
async fn act(h: &Harness, number: &str, id: &str, actor: &str, action: Value) {
    let kind = action["kind"].as_str().unwrap().to_owned();
    let msg = Outgoing {
        exchange: Exchange::Actions,
        routing_key: format!("action.{kind}"),
        message_id: id.into(),
        body: json!({ "ticket": number, "actor": actor, "action": action }).into(),
        headers: vec![],
    };
    bus::publish_all(&h.ch, h.topo(), &[msg]).await.unwrap();
}

/// Waits until the action `id` has been taken (recorded in the stage's ledger: applied or
/// refused).
async fn taken(h: &Harness, id: &str) {
    let q = format!("SELECT count(*) FROM processed_messages WHERE message_id = 'action:{id}'");
    h.wait_for(&format!("action {id} taken"), Duration::from_secs(30), || async {
        h.count(&q).await >= 1
    })
    .await;
}

/// Sends a note after what was published before and waits until it is taken: with one
/// lifecycle consumer, everything published earlier (a duplicate, a refused action, which is
/// dead-lettered, not recorded) has been taken by then.
async fn settle(h: &Harness, number: &str, actor: &str, id: &str) {
    act(h, number, id, actor, json!({"kind": "note", "text": "marker"})).await;
    taken(h, id).await;
}

async fn state(h: &Harness, number: &str) -> String {
    h.text(&format!("SELECT state FROM tickets WHERE number = '{number}'"))
        .await
}

/// The numbers of `parent`'s tasks, oldest first.
async fn tasks(h: &Harness, parent: &str) -> Vec<String> {
    let client = h.app.db.pool.get().await.unwrap();
    client
        .query(
            "SELECT c.number FROM ticket_links l JOIN tickets p ON p.id = l.ticket_id
               JOIN tickets c ON c.id = l.other_id
             WHERE p.number = $1 AND l.kind = 'task' ORDER BY c.id",
            &[&parent],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// (event, details.data) of the ticket's transitions with event `event`, oldest first.
async fn events_of(h: &Harness, number: &str, event: &str) -> Vec<Value> {
    let client = h.app.db.pool.get().await.unwrap();
    client
        .query(
            "SELECT tr.details->'data' FROM ticket_transitions tr JOIN tickets t ON t.id = tr.ticket_id
             WHERE t.number = $1 AND tr.details->>'event' = $2 ORDER BY tr.seq",
            &[&number, &event],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn wait_state(h: &Harness, number: &str, want: &str) {
    let q = format!("SELECT count(*) FROM tickets WHERE number = '{number}' AND state = '{want}'");
    h.wait_for(&format!("{number} {want}"), Duration::from_secs(30), || async {
        h.count(&q).await == 1
    })
    .await;
}

/// Sends a chat request and waits until its ticket is assigned: (number, assignee).
async fn assigned(h: &Harness, id: &str, body: &str) -> (String, String) {
    let req = json!({"channel": "chat", "channel_message_id": id, "received_at": chrono::Utc::now(),
                     "customer": {"customer_id": "C-G1", "name": "张先生"}, "body": body});
    h.publish_intake("intake.chat", id, req.to_string().as_bytes()).await;
    let q = format!("SELECT count(*) FROM tickets WHERE channel_message_id = '{id}' AND state = 'assigned'");
    h.wait_for("ticket assigned", Duration::from_secs(30), || async {
        h.count(&q).await == 1
    })
    .await;
    let number = h
        .text(&format!("SELECT number FROM tickets WHERE channel_message_id = '{id}'"))
        .await;
    let assignee = h
        .text(&format!("SELECT assignee FROM tickets WHERE number = '{number}'"))
        .await;
    (number, assignee)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_ticket_opens_each_task_once_and_is_resolved_only_when_every_task_is_done() {
    let mut h = Harness::new("grp_tasks").await;
    h.import_sample_roster().await;
    // The group's events, drained at the end (each checked against its type's schema).
    let events = h.event_queue("ticket.*").await;
    h.start_stages(&StageName::ALL, 1);
    let (parent, owner) = assigned(&h, "grp-1", "设备无法开机，已经试过重启和换电源，影响生产，请尽快处理").await;
    let by_owner = format!("agent:{owner}");

    // One task for product management, delivered twice (a redelivery after a lost ack), and
    // one for customer relations.
    let pm = json!({"kind": "add_task", "team": "product_management", "summary": "确认固件缺陷并排期"});
    act(&h, &parent, "task-pm", &by_owner, pm.clone()).await;
    act(&h, &parent, "task-pm", &by_owner, pm).await;
    act(
        &h,
        &parent,
        "task-cr",
        &by_owner,
        json!({"kind": "add_task", "team": "customer_relations", "summary": "与客户商定补偿"}),
    )
    .await;
    taken(&h, "task-cr").await;
    settle(&h, &parent, &by_owner, "marker-1").await;
    let opened = tasks(&h, &parent).await;
    assert_eq!(
        opened.len(),
        2,
        "one task per add_task, however often delivered: {opened:?}"
    );
    assert_eq!(events_of(&h, &parent, "task_added").await.len(), 2);
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM tickets WHERE channel = 'task' AND channel_message_id LIKE '{parent}:task:%'"
        ))
        .await,
        2
    );
    let (pm_task, cr_task) = (opened[0].clone(), opened[1].clone());
    // Each task is its team's, inherits the parent's customer, category and priority, and is
    // handed to the team's agents like any queued ticket.
    for (task, team) in [(&pm_task, "product_management"), (&cr_task, "customer_relations")] {
        wait_state(&h, task, "assigned").await;
        let row = h
            .text(&format!(
                "SELECT c.team || '|' || c.category || '|' || c.priority || '|' || (c.customer->>'customer_id')
                   || '|' || (c.category = p.category AND c.priority = p.priority)::text
                 FROM tickets c, tickets p WHERE c.number = '{task}' AND p.number = '{parent}'"
            ))
            .await;
        assert!(row.starts_with(&format!("{team}|")), "{row}");
        assert!(row.ends_with("|C-G1|true"), "{row}");
        assert_eq!(events_of(&h, task, "task_opened").await[0]["parent"], json!(parent));
        // The task has its own breach timers.
        assert!(
            h.count(&format!(
                "SELECT count(*) FROM sla_timers WHERE purpose LIKE 'breach:%' AND state = 'pending'
                   AND ticket_id = (SELECT id FROM tickets WHERE number = '{task}')"
            ))
            .await
                >= 1
        );
    }
    // The parent's task_added steps name the tasks they opened.
    let added: Vec<Value> = events_of(&h, &parent, "task_added").await;
    assert_eq!(added[0]["task"], json!(pm_task));

    // Not before every task is done: the parent's resolution is refused.
    let resolve = json!({"kind": "resolve", "result": "主板更换，客户已获补偿"});
    act(&h, &parent, "resolve-early", &by_owner, resolve.clone()).await;
    settle(&h, &parent, &by_owner, "marker-2").await;
    assert_ne!(state(&h, &parent).await, "resolved");

    // The first task done: recorded on the parent, one still open.
    let pm_agent = h
        .text(&format!("SELECT assignee FROM tickets WHERE number = '{pm_task}'"))
        .await;
    act(
        &h,
        &pm_task,
        "pm-done",
        &format!("agent:{pm_agent}"),
        json!({"kind": "resolve", "result": "固件 2.3.1 修复"}),
    )
    .await;
    wait_state(&h, &pm_task, "resolved").await;
    taken(&h, "pm-done").await;
    let done = events_of(&h, &parent, "task_done").await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["task"], json!(pm_task));
    assert_eq!(done[0]["all_done"], json!(false));
    assert_eq!(done[0]["open_tasks"], json!([cr_task]));
    act(&h, &parent, "resolve-still-early", &by_owner, resolve.clone()).await;
    settle(&h, &parent, &by_owner, "marker-3").await;
    assert_ne!(state(&h, &parent).await, "resolved");

    // The last task done: the parent hears that every task is done, and stays open for its
    // owner to check the result (seed 001 §5.2 结果验收) …
    let cr_agent = h
        .text(&format!("SELECT assignee FROM tickets WHERE number = '{cr_task}'"))
        .await;
    act(
        &h,
        &cr_task,
        "cr-done",
        &format!("agent:{cr_agent}"),
        json!({"kind": "resolve", "result": "补偿 200 元已确认"}),
    )
    .await;
    taken(&h, "cr-done").await;
    let done = events_of(&h, &parent, "task_done").await;
    assert_eq!(done.len(), 2);
    assert_eq!(done[1]["all_done"], json!(true));
    assert_ne!(
        state(&h, &parent).await,
        "resolved",
        "the owner resolves, not the last task"
    );
    // … who may now resolve it.
    act(&h, &parent, "resolve-now", &by_owner, resolve).await;
    wait_state(&h, &parent, "resolved").await;

    // A task reopened is news for the parent too.
    act(
        &h,
        &pm_task,
        "pm-reopen",
        &format!("agent:{pm_agent}"),
        json!({"kind": "reopen", "reason": "固件回归"}),
    )
    .await;
    taken(&h, "pm-reopen").await;
    let reopened = events_of(&h, &parent, "task_reopened").await;
    assert_eq!(reopened.len(), 1, "{reopened:?}");
    assert_eq!(reopened[0]["task"], json!(pm_task));

    // Nothing about the tasks was sent to the customer.
    assert_eq!(
        h.count(
            "SELECT count(*) FROM deliveries d JOIN tickets t ON t.id = d.ticket_id
             WHERE t.channel = 'task' AND d.purpose IN ('acknowledgement', 'reply', 'resolution', 'survey', 'progress_update')"
        )
        .await,
        0
    );
    let types: Vec<String> = h
        .drain_queue(&events)
        .await
        .iter()
        .map(|m| serde_json::from_slice::<Value>(&m.delivery.data).unwrap()["type"].to_string())
        .collect();
    for t in ["task_added", "task_opened", "task_done"] {
        let t = format!("switchboard.ticket.{t}.v1");
        assert!(types.iter().any(|x| x.contains(&t)), "no {t} among {types:?}");
    }
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_and_the_team_s_supervisor_add_tasks_and_each_team_reads_only_its_own() {
    let mut h = Harness::new("grp_access").await;
    h.import_sample_roster().await;
    // Front line away: the inquiry waits in its queue and an agent claims it.
    h.execute("UPDATE agents SET presence = 'away' WHERE team = 'front_line'", &[])
        .await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let relay = key(&h, auth::KeySpec::integration("app", Some("app"))).await;
    let r = gw
        .post(
            &relay,
            "/v1/requests",
            json!({"channel": "app", "channel_message_id": "grp-a1", "received_at": chrono::Utc::now(),
                   "customer": {"customer_id": "C-G2", "name": "李女士", "phone": "13900000009"},
                   "subject": "订单进度", "body": "请问我的订单什么时候发货？"}),
            &[],
        )
        .await;
    assert_eq!(r.status.as_u16(), 202, "{:?}", r.json());
    h.wait_for("queued", Duration::from_secs(30), || async {
        h.count("SELECT count(*) FROM tickets WHERE channel_message_id = 'grp-a1' AND state = 'queued'")
            .await
            == 1
    })
    .await;
    let parent = h
        .text("SELECT number FROM tickets WHERE channel_message_id = 'grp-a1'")
        .await;
    let team = h
        .text(&format!("SELECT team FROM tickets WHERE number = '{parent}'"))
        .await;
    assert_eq!(team, "front_line");

    let wang = user(&h, UserSpec::agent("wang", "fl-001")).await;
    let li = user(&h, UserSpec::agent("li", "fl-002")).await;
    let zhao = user(&h, UserSpec::agent("zhao", "ts-001")).await;
    let fl_boss = user(&h, UserSpec::person("fl-boss", Role::Supervisor, Some("front_line"))).await;
    let ts_boss = user(
        &h,
        UserSpec::person("ts-boss", Role::Supervisor, Some("technical_support")),
    )
    .await;
    let r = gw.act(&wang, &parent, json!({"action": {"kind": "claim"}})).await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());

    let task = |team: &str, summary: &str| json!({"action": {"kind": "add_task", "team": team, "summary": summary}});
    let ts_task = task("technical_support", "查询仓库系统的发货记录");
    // Attacks first: none of these may open a task on the front line's ticket.
    for (who, name) in [
        (&zhao, "an agent of another team"),
        (&li, "an agent of the team who is not the owner"),
        (&ts_boss, "a supervisor of another team"),
        (&relay, "an integration key"),
    ] {
        let r = gw.act(who, &parent, ts_task.clone()).await;
        assert_eq!(r.status.as_u16(), 403, "{name}: {:?}", r.json());
    }
    assert!(tasks(&h, &parent).await.is_empty());
    // The owner may, and a retry with the same Idempotency-Key opens nothing more.
    let path = format!("/v1/tickets/{parent}/actions");
    let r = gw
        .post(&wang, &path, ts_task.clone(), &[("idempotency-key", "k-1")])
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    let r = gw.post(&wang, &path, ts_task, &[("idempotency-key", "k-1")]).await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    assert_eq!(r.json()["duplicate"], json!(true));
    // So may the team's supervisor; an unknown team is refused.
    let r = gw
        .act(&fl_boss, &parent, task("customer_relations", "确认是否需要补偿"))
        .await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.json());
    let r = gw.act(&wang, &parent, task("nobody", "x")).await;
    assert_eq!(r.status.as_u16(), 409, "{:?}", r.json());
    let opened = tasks(&h, &parent).await;
    assert_eq!(opened.len(), 2, "{opened:?}");
    let ts_child = opened[0].clone();

    // The owner sees each task's summary, team and state on the parent …
    let view = gw.get(&wang, &format!("/v1/tickets/{parent}")).await;
    assert_eq!(view.status.as_u16(), 200);
    let listed = view.json()["tasks"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["number"], json!(ts_child));
    assert_eq!(listed[0]["team"], json!("technical_support"));
    assert_eq!(listed[0]["summary"], json!("查询仓库系统的发货记录"));
    assert_eq!(listed[0]["done"], json!(false));
    // … but not the task itself, which is another team's; nor may another team's agent read
    // the parent through its task. The task's team reads the task, which names its parent.
    assert_eq!(
        gw.get(&wang, &format!("/v1/tickets/{ts_child}")).await.status.as_u16(),
        403
    );
    assert_eq!(
        gw.get(&zhao, &format!("/v1/tickets/{parent}")).await.status.as_u16(),
        403
    );
    let child = gw.get(&zhao, &format!("/v1/tickets/{ts_child}")).await;
    assert_eq!(child.status.as_u16(), 200);
    assert_eq!(child.json()["parent"]["number"], json!(parent));
    assert_eq!(child.json()["ticket"]["channel"], json!("task"));
    // Tasks do not nest; the owner cannot act on the task; the parent is not resolved while
    // its tasks are open.
    let r = gw.act(&ts_boss, &ts_child, task("customer_relations", "x")).await;
    assert_eq!(r.status.as_u16(), 409, "{:?}", r.json());
    let resolve = json!({"action": {"kind": "resolve", "result": "已发货"}});
    assert_eq!(gw.act(&wang, &ts_child, resolve.clone()).await.status.as_u16(), 403);
    let r = gw.act(&wang, &parent, resolve).await;
    assert_eq!(r.status.as_u16(), 409, "{:?}", r.json());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&ts_child),
        "{:?}",
        r.json()
    );
    // The desk offers add_task to the owner, not to an agent who only shares the team.
    let allowed = |v: &Value| -> Vec<String> {
        v["allowed_actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(allowed(&view.json()).contains(&"add_task".to_owned()));
    let li_view = gw.get(&li, &format!("/v1/tickets/{parent}")).await.json();
    assert!(!allowed(&li_view).contains(&"add_task".to_owned()));
    // Nor on a task (they do not nest), even to its team's supervisor.
    let sup_child = gw.get(&ts_boss, &format!("/v1/tickets/{ts_child}")).await.json();
    assert!(allowed(&sup_child).contains(&"note".to_owned()), "{sup_child:?}");
    assert!(!allowed(&sup_child).contains(&"add_task".to_owned()));
    drop(gw);
    h.cleanup().await;
}
