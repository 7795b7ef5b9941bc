//! People and their work (issue: identities, the work API): users signing in with personal
//! tokens, the ticket list's filters and cursor, `me` and presence, the actions a desk needs,
//! a team board and the live stream, each against a real gateway over TCP on the real RabbitMQ
//! and Postgres. Each refusal is an attack: a principal reaching past its scope.

use crate::common;

use common::Harness;
use common::served::{Served, key, user};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::core::access::Role;
use switchboard::http::auth::{self, UserSpec};
use switchboard_tools::client::Reply;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn request(id: &str, phone: &str, subject: &str, body: &str) -> Value {
    json!({
        "channel": "app",
        "channel_message_id": id,
        "received_at": chrono::Utc::now(),
        "customer": {"name": format!("客户{id}"), "phone": phone, "customer_id": format!("C-{id}")},
        "subject": subject,
        "body": body,
    })
}

fn status(r: &Reply) -> u16 {
    r.status.as_u16()
}

async fn submit(gw: &mut Served, key: &str, req: Value) {
    let r = gw.post(key, "/v1/requests", req, &[]).await;
    assert_eq!(status(&r), 202, "{:?}", r.json());
}

/// Waits until `n` tickets have left the pipeline (assigned or queued).
async fn settled(h: &Harness, n: i64) {
    h.wait_for(&format!("{n} tickets settled"), Duration::from_secs(60), || async {
        h.count("SELECT count(*) FROM tickets WHERE state IN ('assigned', 'queued')")
            .await
            == n
    })
    .await;
}

/// Every page of a list, following `next_cursor`.
async fn all_pages(gw: &mut Served, token: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = format!("/v1/tickets?{query}");
    for _ in 0..100 {
        let r = gw.get(token, &path).await;
        assert_eq!(status(&r), 200, "{path}: {:?}", r.json());
        let v = r.json();
        out.extend(v["tickets"].as_array().unwrap().iter().cloned());
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/tickets?{query}&cursor={c}"),
            None => return out,
        }
    }
    panic!("more than 100 pages");
}

fn numbers(rows: &[Value]) -> Vec<String> {
    rows.iter().map(|t| t["number"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_with_personal_tokens_and_a_disabled_user_cannot() {
    let h = Harness::with_settings(switchboard::config::Settings {
        gateway_key_cache_ms: 100,
        ..common::test_settings("ppl_users")
    })
    .await;
    h.import_sample_roster().await;
    let mut gw = Served::start(&h).await;
    let li = user(&h, UserSpec::agent("li.na", "fl-002")).await;
    assert!(li.starts_with("sbu_"), "{li}");
    let me = gw.get(&li, "/v1/me").await;
    assert_eq!(status(&me), 200, "{:?}", me.json());
    let me = me.json();
    assert_eq!(me["principal"]["kind"], "user");
    assert_eq!(me["principal"]["role"], "agent");
    assert_eq!(me["principal"]["actor"], "agent:fl-002");
    assert_eq!(me["agent"]["id"], "fl-002");
    assert_eq!(me["teams"], json!(["front_line"]));

    // Names, emails and agents are one person each.
    let dup = auth::create_user(&h.app.db, &UserSpec::agent("LI.NA", "fl-001")).await;
    assert!(dup.is_err(), "a second enabled user called li.na");
    let same_agent = auth::create_user(&h.app.db, &UserSpec::agent("other", "fl-002")).await;
    assert!(same_agent.is_err(), "a second user for agent fl-002");
    assert!(
        auth::create_user(&h.app.db, &UserSpec::person("relay", Role::Integration, None))
            .await
            .is_err(),
        "a user with the integration role"
    );

    // A token that is almost right, a key-shaped token and no token.
    let forged = format!("{}x", &li[..li.len() - 1]);
    assert_eq!(status(&gw.get(&forged, "/v1/me").await), 401);
    assert_eq!(status(&gw.client.get("/v1/me", &[]).await.unwrap()), 401);

    // Disabled: the token stops working once the cache lapses.
    assert!(
        switchboard::store::users::disable(&h.app.db, "li.na")
            .await
            .unwrap()
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(status(&gw.get(&li, "/v1/me").await), 401, "a disabled user's token");
    // The name is free again for a new person.
    let again = user(&h, UserSpec::agent("li.na", "fl-002")).await;
    assert_eq!(status(&gw.get(&again, "/v1/me").await), 200);

    // Integrations see none of the people's API.
    let relay = key(&h, auth::KeySpec::integration("relay", None)).await;
    for path in ["/v1/me", "/v1/tickets", "/v1/stream", "/v1/teams/front_line/board"] {
        let r = gw.get(&relay, path).await;
        assert_eq!(status(&r), 403, "integration key on {path}: {:?}", r.body);
    }
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_list_filters_searches_and_pages_within_the_principal_s_scope() {
    let mut h = Harness::new("ppl_list").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let relay = key(&h, auth::KeySpec::integration("app", Some("app"))).await;
    let texts = [
        ("退款申请", "我上周申请的退款到现在还没有到账，请问什么时候能退回？"),
        ("營業時間", "請問你們門市週末的營業時間是幾點到幾點？"),
        ("Router", "My router keeps rebooting every hour, WiFi drops."),
        ("发票", "请问怎么开具增值税专用发票？需要提供什么资料？"),
        ("会员", "请问会员积分怎么兑换优惠券？"),
        ("地址", "请问你们的售后服务中心地址在哪里？"),
        ("账单", "How do I download last month's invoice from the app?"),
        ("投诉", "快递员态度恶劣，包裹被扔在门口，要求赔偿并道歉！"),
        ("密码", "请问忘记登录密码怎么找回？"),
        ("配送", "请问订单一般几天能送到上海？"),
        ("保修", "请问产品保修期是多久？"),
        ("App", "请问App在哪里修改收货地址？"),
    ];
    for (i, (subject, body)) in texts.iter().enumerate() {
        let phone = format!("1381234{:04}", 100 + i);
        submit(&mut gw, &relay, request(&format!("list-{i}"), &phone, subject, body)).await;
    }
    settled(&h, texts.len() as i64).await;

    let boss = user(&h, UserSpec::person("boss", Role::Supervisor, None)).await;
    // Every page once, in deadline order, whatever the page size.
    let all = all_pages(&mut gw, &boss, "limit=5").await;
    assert_eq!(all.len(), texts.len());
    let unique: HashSet<String> = numbers(&all).into_iter().collect();
    assert_eq!(unique.len(), texts.len(), "a ticket on two pages");
    let dues: Vec<Option<&str>> = all.iter().map(|t| t["next_due"]["due_at"].as_str()).collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> = dues.iter().map(|d| d.unwrap().parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "sorted by due: {dues:?}");
    for sort in ["received", "priority"] {
        let rows = all_pages(&mut gw, &boss, &format!("sort={sort}&limit=4")).await;
        let got: HashSet<String> = numbers(&rows).into_iter().collect();
        assert_eq!(got, unique, "sort={sort} pages");
    }

    // Text search, Chinese (Traditional finds Simplified) and English.
    let find = |rows: Vec<Value>| -> Vec<String> {
        rows.iter()
            .map(|t| t["subject"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let q = |s: &str| format!("q={}", urlencode(s));
    assert_eq!(find(all_pages(&mut gw, &boss, &q("退款")).await), vec!["退款申请"]);
    assert_eq!(find(all_pages(&mut gw, &boss, &q("營業時間")).await), vec!["營業時間"]);
    assert_eq!(find(all_pages(&mut gw, &boss, &q("营业时间")).await), vec!["營業時間"]);
    assert_eq!(find(all_pages(&mut gw, &boss, &q("router wifi")).await), vec!["Router"]);
    assert!(all_pages(&mut gw, &boss, &q("不存在的词")).await.is_empty());

    // A customer by the id the integration vouches for; a phone merely typed into an app
    // form finds nobody's tickets (it would let anyone pad a stranger's history).
    let by_id = all_pages(&mut gw, &boss, "customer=C-list-2").await;
    assert_eq!(find(by_id), vec!["Router"]);
    assert!(all_pages(&mut gw, &boss, "customer=138-1234-0102").await.is_empty());

    // State and team filters agree with the database.
    let queued_db = h.count("SELECT count(*) FROM tickets WHERE state = 'queued'").await;
    assert_eq!(all_pages(&mut gw, &boss, "state=queued").await.len() as i64, queued_db);
    let fl_db = h.count("SELECT count(*) FROM tickets WHERE team = 'front_line'").await;
    assert_eq!(all_pages(&mut gw, &boss, "team=front_line").await.len() as i64, fl_db);
    let open = all_pages(&mut gw, &boss, "state=assigned,queued&priority=urgent,normal,low").await;
    assert_eq!(open.len(), texts.len());

    // An agent sees their team's and their own tickets only; assignee=me is theirs.
    let agent_id = h
        .text("SELECT assignee FROM tickets WHERE team = 'front_line' AND assignee IS NOT NULL LIMIT 1")
        .await;
    let agent = user(&h, UserSpec::agent("agent", &agent_id)).await;
    let seen = all_pages(&mut gw, &agent, "").await;
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|t| t["team"] == "front_line" || t["assignee"] == agent_id.as_str()),
        "{seen:?}"
    );
    let outside = h.count("SELECT count(*) FROM tickets WHERE team <> 'front_line'").await;
    assert_eq!(seen.len() as i64, texts.len() as i64 - outside);
    let mine = all_pages(&mut gw, &agent, "assignee=me").await;
    let mine_db = h
        .count(&format!("SELECT count(*) FROM tickets WHERE assignee = '{agent_id}'"))
        .await;
    assert_eq!(mine.len() as i64, mine_db);
    // Asking for another team gives nothing more than the scope.
    let other_team = all_pages(&mut gw, &agent, "team=technical_support").await;
    assert!(other_team.iter().all(|t| t["assignee"] == agent_id.as_str()));
    // A team supervisor: that team only.
    let fl_boss = user(&h, UserSpec::person("fl-boss", Role::Supervisor, Some("front_line"))).await;
    let fl_rows = all_pages(&mut gw, &fl_boss, "").await;
    assert_eq!(fl_rows.len() as i64, fl_db);

    // Bad queries name what is wrong.
    for (path, what) in [
        ("/v1/tickets?stat=queued", "stat"),
        ("/v1/tickets?state=lost", "lost"),
        ("/v1/tickets?priority=P0", "P0"),
        ("/v1/tickets?sort=name", "name"),
        ("/v1/tickets?limit=0", "limit"),
        ("/v1/tickets?limit=1000", "limit"),
        ("/v1/tickets?cursor=garbage", "cursor"),
        ("/v1/tickets?q=%21%21%21", "q"),
        ("/v1/tickets?at_risk=maybe", "at_risk"),
        ("/v1/tickets?assignee=me", "agents"),
    ] {
        let r = gw.get(&boss, path).await;
        assert_eq!(status(&r), 400, "{path}");
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(what), "{path}: {message}");
    }
    h.cleanup().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sets every agent of `team` away (nobody takes new work) or online.
async fn team_presence(h: &Harness, team: &str, presence: &str) {
    h.execute("UPDATE agents SET presence = $2 WHERE team = $1", &[&team, &presence])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_claim_note_reclassify_transfer_and_merge_and_supervisors_reset_deadlines() {
    let mut h = Harness::new("ppl_actions").await;
    h.import_sample_roster().await;
    team_presence(&h, "front_line", "away").await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let relay = key(&h, auth::KeySpec::integration("app", Some("app"))).await;
    submit(
        &mut gw,
        &relay,
        request("act-1", "13900000001", "营业时间", "请问你们周末营业吗？"),
    )
    .await;
    submit(
        &mut gw,
        &relay,
        request("act-2", "13900000001", "营业时间", "请问你们周末营业吗？重复发一次"),
    )
    .await;
    settled(&h, 2).await;
    let first = h
        .text("SELECT number FROM tickets WHERE channel_message_id = 'act-1'")
        .await;
    let second = h
        .text("SELECT number FROM tickets WHERE channel_message_id = 'act-2'")
        .await;
    assert_eq!(
        h.text(&format!("SELECT state FROM tickets WHERE number = '{first}'"))
            .await,
        "queued"
    );

    let wang = user(&h, UserSpec::agent("wang", "fl-001")).await;
    let zhao = user(&h, UserSpec::agent("zhao", "ts-001")).await;
    let fl_boss = user(&h, UserSpec::person("fl-boss", Role::Supervisor, Some("front_line"))).await;
    let act = |kind: Value| json!({ "action": kind });

    // The queue shows both; another team's agent may not claim.
    let queue = all_pages(&mut gw, &wang, "team=front_line&state=queued").await;
    assert_eq!(queue.len(), 2);
    assert_eq!(status(&gw.act(&zhao, &first, act(json!({"kind": "claim"}))).await), 403);
    assert_eq!(
        status(&gw.act(&fl_boss, &first, act(json!({"kind": "claim"}))).await),
        403,
        "supervisors do not claim"
    );
    let r = gw.act(&wang, &first, act(json!({"kind": "claim"}))).await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    assert_eq!(r.json()["ticket"]["assignee"], "fl-001");
    assert_eq!(r.json()["ticket"]["state"], "assigned");
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agent_loads WHERE id = 'fl-001'")
            .await,
        1
    );
    // Claimed twice: the state machine says no.
    assert_eq!(status(&gw.act(&wang, &first, act(json!({"kind": "claim"}))).await), 409);

    // The ticket view offers what this principal may do now.
    let view = gw.get(&wang, &format!("/v1/tickets/{first}")).await.json();
    let allowed: Vec<&str> = view["allowed_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for k in ["respond", "start", "note", "resolve", "transfer", "merge"] {
        assert!(allowed.contains(&k), "{k} in {allowed:?}");
    }
    for k in ["claim", "set_priority", "set_due", "reassign", "close"] {
        assert!(!allowed.contains(&k), "{k} in {allowed:?}");
    }

    // A note, a correction for the classifier (which leaves the deadlines given alone), an
    // attachment by reference.
    let r = gw
        .act(&wang, &first, act(json!({"kind": "note", "text": "客户说周末也要用"})))
        .await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    let rule_before = h
        .text(&format!(
            "SELECT sla_rule || ' ' || resolution_due::text FROM tickets WHERE number = '{first}'"
        ))
        .await;
    let r = gw
        .act(
            &wang,
            &first,
            act(json!({"kind": "reclassify", "category": "complaint", "reason": "actually a complaint about hours"})),
        )
        .await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    assert_eq!(
        h.count("SELECT count(*) FROM classifier_corrections WHERE from_category = 'inquiry' AND to_category = 'complaint' AND actor = 'agent:fl-001'").await,
        1
    );
    assert_eq!(
        h.text(&format!(
            "SELECT sla_rule || ' ' || resolution_due::text FROM tickets WHERE number = '{first}'"
        ))
        .await,
        rule_before,
        "an agent's reclassification does not move their own deadlines"
    );
    let bad = gw
        .act(
            &wang,
            &first,
            act(json!({"kind": "attach", "name": "x.html", "url": "javascript:alert(1)"})),
        )
        .await;
    assert_eq!(status(&bad), 409);
    let r = gw
        .act(&wang, &first, act(json!({"kind": "attach", "name": "photo.jpg", "content_type": "image/jpeg", "size": 2048, "url": "s3://evidence/act-1/photo.jpg"})))
        .await;
    assert_eq!(status(&r), 200);
    let view = gw.get(&wang, &format!("/v1/tickets/{first}")).await.json();
    assert_eq!(view["notes"][0]["text"], "客户说周末也要用");
    assert_eq!(view["attachments"][0]["url"], "s3://evidence/act-1/photo.jpg");

    // Deadlines are a supervisor's: the agent may not, the team's supervisor may, with a reason.
    // A target already breached and escalating is watched afresh at its new time.
    h.execute(
        "INSERT INTO escalations (ticket_id, target, ladder, breached_at, last_step)
                 SELECT id, 'resolution', 'standard', now() - interval '1 hour', 0 FROM tickets WHERE number = $1",
        &[&first],
    )
    .await;
    let due = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let set_due =
        act(json!({"kind": "set_due", "target": "resolution", "due": due, "reason": "spare part arrives Tuesday"}));
    assert_eq!(status(&gw.act(&wang, &first, set_due.clone()).await), 403);
    let r = gw.act(&fl_boss, &first, set_due).await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM tickets WHERE number = '{first}' AND abs(extract(epoch FROM resolution_due - '{due}'::timestamptz)) < 0.01"
        ))
        .await,
        1,
        "the agreed resolution time is the ticket's"
    );
    let timer = h.text(&format!("SELECT count(*)::text FROM sla_timers s JOIN tickets t ON t.id = s.ticket_id WHERE t.number = '{first}' AND s.state = 'pending' AND s.purpose = 'breach:resolution' AND abs(extract(epoch FROM s.due_at - t.resolution_due)) < 0.01"),
    )
    .await;
    assert_eq!(timer, "1", "the breach timer moved to the agreed time");
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM escalations e JOIN tickets t ON t.id = e.ticket_id WHERE t.number = '{first}'"
        ))
        .await,
        0,
        "the old breach no longer stands for the renegotiated deadline"
    );

    // Waiting for the customer holds the resolution clock: no stored deadline meanwhile (the
    // list does not call it breached), and it is back when the customer answers.
    let r = gw
        .act(
            &wang,
            &first,
            act(json!({"kind": "wait_for_customer", "reason": "photo of the receipt"})),
        )
        .await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    assert_eq!(
        h.text(&format!(
            "SELECT coalesce(resolution_due::text, 'none') FROM tickets WHERE number = '{first}'"
        ))
        .await,
        "none"
    );
    let r = gw.act(&wang, &first, act(json!({"kind": "customer_replied"}))).await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM tickets WHERE number = '{first}' AND abs(extract(epoch FROM resolution_due - '{due}'::timestamptz)) < 0.01"
        ))
        .await,
        1,
        "the agreed time stands after the wait"
    );

    // Merging the duplicate (still queued) closes it and links both ways; the other team may not.
    let merge = act(json!({"kind": "merge", "into": first, "reason": "same question twice"}));
    assert_eq!(status(&gw.act(&zhao, &second, merge.clone()).await), 403);
    let r = gw.act(&fl_boss, &second, merge).await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    assert_eq!(r.json()["ticket"]["state"], "closed");
    assert_eq!(
        h.text(&format!(
            "SELECT coalesce(resolved_at::text, 'none') FROM tickets WHERE number = '{second}'"
        ))
        .await,
        "none",
        "a duplicate is closed, not counted as resolved"
    );
    let view = gw.get(&wang, &format!("/v1/tickets/{first}")).await.json();
    assert_eq!(view["links"][0]["number"], second.as_str());
    assert_eq!(view["links"][0]["kind"], "duplicate");

    // Linking to a ticket the agent may not read is refused (no probing other teams).
    submit(
        &mut gw,
        &relay,
        request("act-3", "13900000003", "故障", "路由器坏了，一直掉线，无法上网"),
    )
    .await;
    h.wait_for("act-3 settled", Duration::from_secs(60), || async {
        h.count("SELECT count(*) FROM tickets WHERE channel_message_id = 'act-3' AND state IN ('assigned', 'queued')")
            .await
            == 1
    })
    .await;
    let tech = h
        .text("SELECT number FROM tickets WHERE channel_message_id = 'act-3'")
        .await;
    let tech_team = h
        .text(&format!(
            "SELECT coalesce(team, '') FROM tickets WHERE number = '{tech}'"
        ))
        .await;
    assert_ne!(tech_team, "front_line");
    let link = act(json!({"kind": "link", "ticket": tech}));
    assert_eq!(
        status(&gw.act(&wang, &first, link).await),
        403,
        "linking to another team's ticket"
    );

    // Transfer by the assignee: into the other team's queue, the agent's slot freed. A retry
    // of it is a duplicate, though the ticket is now out of the agent's reach.
    let transfer = act(json!({"kind": "transfer", "team": "customer_relations", "reason": "complaint"}));
    let path = format!("/v1/tickets/{first}/actions");
    let r = gw
        .post(&wang, &path, transfer.clone(), &[("idempotency-key", "tr-1")])
        .await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    let again = gw.post(&wang, &path, transfer, &[("idempotency-key", "tr-1")]).await;
    assert_eq!(status(&again), 200, "{:?}", again.json());
    assert_eq!(again.json()["duplicate"], true);
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agent_loads WHERE id = 'fl-001'")
            .await,
        0
    );
    h.wait_for("the transferred ticket is assigned in its new team", Duration::from_secs(30), || async {
        h.count(&format!(
            "SELECT count(*) FROM tickets t JOIN agents a ON a.id = t.assignee WHERE t.number = '{first}' AND a.team = 'customer_relations' AND t.state = 'assigned'"
        ))
        .await
            == 1
    })
    .await;
    // The former assignee no longer acts on it.
    assert_eq!(
        status(&gw.act(&wang, &first, act(json!({"kind": "respond"}))).await),
        403
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_offline_hands_back_unstarted_tickets_and_the_board_shows_the_team() {
    let mut h = Harness::new("ppl_presence").await;
    h.import_sample_roster().await;
    // One front-line agent online: every inquiry goes to them.
    team_presence(&h, "front_line", "away").await;
    h.execute("UPDATE agents SET presence = 'online' WHERE id = 'fl-001'", &[])
        .await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let relay = key(&h, auth::KeySpec::integration("app", Some("app"))).await;
    submit(
        &mut gw,
        &relay,
        request("off-1", "13900000011", "营业时间", "请问你们周末营业吗？"),
    )
    .await;
    submit(
        &mut gw,
        &relay,
        request("off-2", "13900000012", "发票", "请问怎么开发票？"),
    )
    .await;
    settled(&h, 2).await;
    assert_eq!(
        h.count("SELECT count(*) FROM tickets WHERE assignee = 'fl-001'").await,
        2
    );
    let started = h
        .text("SELECT number FROM tickets WHERE channel_message_id = 'off-1'")
        .await;
    let wang = user(&h, UserSpec::agent("wang", "fl-001")).await;
    let r = gw
        .act(
            &wang,
            &started,
            json!({"action": {"kind": "respond", "message": "您好"}}),
        )
        .await;
    assert_eq!(status(&r), 200);

    let me = gw.get(&wang, "/v1/me").await.json();
    assert_eq!(me["open_tickets"].as_array().unwrap().len(), 2);
    assert_eq!(me["agent"]["open_tickets"], 2);

    // A supervisor sees the board; an agent and another team's supervisor may not.
    let fl_boss = user(&h, UserSpec::person("fl-boss", Role::Supervisor, Some("front_line"))).await;
    let ts_boss = user(
        &h,
        UserSpec::person("ts-boss", Role::Supervisor, Some("technical_support")),
    )
    .await;
    let board = gw.get(&fl_boss, "/v1/teams/front_line/board").await;
    assert_eq!(status(&board), 200, "{:?}", board.json());
    let board = board.json();
    let agents = board["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 6);
    assert_eq!(agents[0]["id"], "fl-001", "online agents first: {agents:?}");
    assert_eq!(agents[0]["open_tickets"], 2);
    assert_eq!(status(&gw.get(&wang, "/v1/teams/front_line/board").await), 403);
    assert_eq!(status(&gw.get(&ts_boss, "/v1/teams/front_line/board").await), 403);
    assert_eq!(status(&gw.get(&fl_boss, "/v1/teams/nowhere/board").await), 403);

    // Presence is the agent's own; bad values are named.
    let r = gw.put(&wang, "/v1/me/presence", r#"{"presence": "asleep"}"#).await;
    assert_eq!(status(&r), 422);
    let r = gw.put(&wang, "/v1/me/presence", r#"{"presence": "offline"}"#).await;
    assert_eq!(status(&r), 200, "{:?}", r.json());
    let r = r.json();
    assert_eq!(r["agent"]["presence"], "offline");
    // The unstarted one went back; the one already answered stays.
    let unstarted = h
        .text("SELECT number FROM tickets WHERE channel_message_id = 'off-2'")
        .await;
    assert_eq!(r["returned"], json!([unstarted]));
    assert_eq!(
        h.text("SELECT coalesce(assignee, '-') FROM tickets WHERE channel_message_id = 'off-1'")
            .await,
        "fl-001"
    );
    assert_eq!(
        h.text("SELECT state || '/' || coalesce(assignee, '-') FROM tickets WHERE channel_message_id = 'off-2'")
            .await,
        "queued/-"
    );
    assert_eq!(
        h.count("SELECT open_tickets::bigint FROM agent_loads WHERE id = 'fl-001'")
            .await,
        1
    );
    let board = gw.get(&fl_boss, "/v1/teams/front_line/board").await.json();
    assert_eq!(board["queued"], 1);
    // A supervisor has no presence of their own.
    let r = gw.put(&fl_boss, "/v1/me/presence", r#"{"presence": "online"}"#).await;
    assert_eq!(status(&r), 403);
    h.cleanup().await;
}

/// An open `GET /v1/stream` on a raw socket, read line by line.
struct Stream {
    lines: tokio::io::Lines<BufReader<tokio::net::TcpStream>>,
}

impl Stream {
    async fn open(addr: std::net::SocketAddr, token: &str) -> Stream {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /v1/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        );
        socket.write_all(req.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(socket).lines();
        let status = lines.next_line().await.unwrap().unwrap();
        assert!(status.contains(" 200 "), "{status}");
        let mut s = Stream { lines };
        // The stream says it is ready once subscribed, so nothing after this is missed.
        s.next_event("ready", Duration::from_secs(10)).await.expect("ready");
        s
    }

    /// The data of the next event named `name` within `timeout`.
    async fn next_event(&mut self, name: &str, timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut current = String::new();
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Ok(Ok(Some(l))) => l,
                _ => return None,
            };
            // Chunked framing: the size lines are not SSE lines.
            if let Some(e) = line.strip_prefix("event: ").or_else(|| line.strip_prefix("event:")) {
                current = e.trim().to_owned();
            } else if let Some(d) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:"))
                && current == name
            {
                return Some(d.to_owned());
            }
        }
    }

    /// Events named `ticket` until one is about `number`.
    async fn change_of(&mut self, number: &str, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let data = self.next_event("ticket", left).await?;
            let v: Value = serde_json::from_str(&data).unwrap();
            if v["number"] == number {
                return Some(v);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_carries_each_change_to_those_who_may_see_it() {
    let mut h = Harness::new("ppl_stream").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let relay = key(&h, auth::KeySpec::integration("app", Some("app"))).await;
    let fl_boss = user(&h, UserSpec::person("fl-boss", Role::Supervisor, Some("front_line"))).await;
    let ts_agent = user(&h, UserSpec::agent("zhao", "ts-001")).await;
    let mut boss_stream = Stream::open(gw.addr, &fl_boss).await;
    let mut other_stream = Stream::open(gw.addr, &ts_agent).await;

    submit(
        &mut gw,
        &relay,
        request("live-1", "13900000021", "营业时间", "请问你们周末营业吗？"),
    )
    .await;
    settled(&h, 1).await;
    let number = h
        .text("SELECT number FROM tickets WHERE channel_message_id = 'live-1'")
        .await;
    assert_eq!(
        h.text(&format!("SELECT team FROM tickets WHERE number = '{number}'"))
            .await,
        "front_line"
    );
    let assignee = h
        .text(&format!("SELECT assignee FROM tickets WHERE number = '{number}'"))
        .await;
    let agent = user(&h, UserSpec::agent("agent", &assignee)).await;
    let r = gw
        .act(
            &agent,
            &number,
            json!({"action": {"kind": "respond", "message": "您好"}}),
        )
        .await;
    assert_eq!(status(&r), 200);

    // The team's supervisor sees it move, live, up to the response.
    let mut events = Vec::new();
    while let Some(v) = boss_stream.change_of(&number, Duration::from_secs(20)).await {
        events.push(v["event"].as_str().unwrap().to_owned());
        if v["event"] == "responded" {
            assert_eq!(v["ticket"]["state"], "in_progress");
            break;
        }
    }
    assert_eq!(events.last().map(String::as_str), Some("responded"), "{events:?}");
    // Another team's agent sees none of it.
    assert!(
        other_stream.change_of(&number, Duration::from_secs(2)).await.is_none(),
        "a technical-support agent saw a front-line ticket"
    );
    h.cleanup().await;
}

/// A signing key the test makes (ES256), and the JWKS file an identity provider would publish.
struct TestIdp {
    encoding: jsonwebtoken::EncodingKey,
    jwks_file: std::path::PathBuf,
}

const ISSUER: &str = "https://sso.example.com/realms/cc";

impl TestIdp {
    fn new(name: &str) -> TestIdp {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        use base64::Engine as _;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
                                    "x": b64(&point[1..33]), "y": b64(&point[33..])}]});
        let jwks_file = std::env::temp_dir().join(format!("switchboard-jwks-{name}-{}.json", std::process::id()));
        std::fs::write(&jwks_file, jwks.to_string()).unwrap();
        TestIdp {
            encoding: jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwks_file,
        }
    }

    fn token(&self, kid: &str, claims: Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap()
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.jwks_file);
    }
}

fn claims(user: &str, extra: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({"iss": ISSUER, "aud": "switchboard", "sub": format!("sub-{user}"), "preferred_username": user,
                       "iat": now, "exp": now + 600});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_maps_a_token_to_its_user_or_its_role_claims_and_refuses_bad_tokens() {
    let h = Harness::with_settings(switchboard::config::Settings {
        gateway_key_cache_ms: 100,
        ..common::test_settings("ppl_sso")
    })
    .await;
    h.import_sample_roster().await;
    let idp = TestIdp::new("sso");
    let path = idp.jwks_file.clone();
    let mut gw = Served::start_with(&h, move |s| {
        s.oidc_issuer = Some(ISSUER.into());
        s.oidc_audience = "switchboard".into();
        s.oidc_jwks_file = Some(path);
    })
    .await;
    // A Switchboard user named by the token: the user's role applies, not the token's claim.
    auth::create_user(
        &h.app.db,
        &UserSpec {
            email: Some("li.na@example.com"),
            token: false,
            ..UserSpec::agent("li.na", "fl-002")
        },
    )
    .await
    .unwrap();
    // An address the provider has not verified names nobody.
    let unverified = idp.token("k1", claims("lina-sso", json!({"email": "li.na@example.com"})));
    assert_eq!(status(&gw.get(&unverified, "/v1/me").await), 401);
    // A verified one does, and binds the user to this subject at the first sign-in.
    let first = idp.token(
        "k1",
        claims(
            "lina-sso",
            json!({"email": "LI.NA@example.com", "email_verified": true, "switchboard_role": "admin"}),
        ),
    );
    let me = gw.get(&first, "/v1/me").await;
    assert_eq!(status(&me), 200, "{:?}", me.json());
    assert_eq!(me.json()["principal"]["kind"], "user");
    assert_eq!(
        me.json()["principal"]["role"],
        "agent",
        "the stored role wins over the claim"
    );
    assert_eq!(me.json()["principal"]["actor"], "agent:fl-002");
    assert_eq!(
        h.text("SELECT sso_subject FROM users WHERE name = 'li.na'").await,
        "sub-lina-sso"
    );
    // Someone else who got the username `li.na` at the provider cannot take the account over.
    let takeover = idp.token(
        "k1",
        claims("li.na", json!({"sub": "sub-attacker", "switchboard_role": "admin"})),
    );
    assert_eq!(
        status(&gw.get(&takeover, "/v1/me").await),
        401,
        "a second subject for a bound user"
    );
    // Nor claim li.na's roster agent by role claims.
    let agent_claim = idp.token(
        "k1",
        claims(
            "mallory",
            json!({"switchboard_role": "agent", "switchboard_agent": "fl-002"}),
        ),
    );
    assert_eq!(
        status(&gw.get(&agent_claim, "/v1/me").await),
        401,
        "an agent some user holds"
    );

    // A person Switchboard does not know: the role claims decide, and a supervisor's team
    // must be stated (`*` for every team).
    let sup = idp.token(
        "k1",
        claims(
            "chen",
            json!({"switchboard_role": "supervisor", "switchboard_team": "front_line"}),
        ),
    );
    let me = gw.get(&sup, "/v1/me").await.json();
    assert_eq!(me["principal"]["kind"], "sso");
    assert_eq!(me["principal"]["role"], "supervisor");
    assert_eq!(me["principal"]["team"], "front_line");
    assert_eq!(status(&gw.get(&sup, "/v1/teams/front_line/board").await), 200);
    assert_eq!(status(&gw.get(&sup, "/v1/teams/technical_support/board").await), 403);
    let all = idp.token(
        "k1",
        claims("wu", json!({"switchboard_role": "supervisor", "switchboard_team": "*"})),
    );
    assert_eq!(status(&gw.get(&all, "/v1/teams/technical_support/board").await), 200);
    // No role, an integration role, an agent without an agent, a supervisor without a team:
    // nobody.
    for c in [
        json!({}),
        json!({"switchboard_role": "integration"}),
        json!({"switchboard_role": "agent"}),
        json!({"switchboard_role": "supervisor"}),
        json!({"switchboard_role": "supervisor", "switchboard_team": ["front_line"]}),
    ] {
        let t = idp.token("k1", claims("stranger", c.clone()));
        assert_eq!(status(&gw.get(&t, "/v1/me").await), 401, "{c}");
    }

    // Bad tokens: expired, not yet valid, another audience or issuer, an unknown key, tampered.
    let now = chrono::Utc::now().timestamp();
    let bad = [
        (
            "expired",
            idp.token("k1", claims("lina-sso", json!({"exp": now - 3600}))),
        ),
        (
            "wrong audience",
            idp.token("k1", claims("lina-sso", json!({"aud": "another-app"}))),
        ),
        (
            "wrong issuer",
            idp.token("k1", claims("lina-sso", json!({"iss": "https://evil.example.com"}))),
        ),
        ("unknown key", idp.token("k2", claims("lina-sso", json!({})))),
        (
            "not yet valid",
            idp.token("k1", claims("lina-sso", json!({"nbf": now + 3600}))),
        ),
    ];
    for (what, token) in &bad {
        assert_eq!(status(&gw.get(token, "/v1/me").await), 401, "{what}");
    }
    let good = idp.token("k1", claims("chen", json!({"switchboard_role": "admin"})));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    assert_eq!(
        status(&gw.get(&parts.join("."), "/v1/me").await),
        401,
        "tampered claims"
    );

    // A disabled user's SSO sign-in stops too, whatever role the token claims.
    switchboard::store::users::disable(&h.app.db, "li.na")
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let t = idp.token("k1", claims("lina-sso", json!({"switchboard_role": "admin"})));
    assert_eq!(status(&gw.get(&t, "/v1/me").await), 401);
    let t = idp.token("k1", claims("li.na", json!({"switchboard_role": "admin"})));
    assert_eq!(status(&gw.get(&t, "/v1/me").await), 401);
    h.cleanup().await;
}
