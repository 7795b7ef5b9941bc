//! The web desk (`GET /desk`) on the real RabbitMQ and Postgres: the page and its security
//! headers over a real socket, and the whole flow in headless Chromium driven over WebDriver:
//! an agent signs in, finds the ticket in "My tickets", opens it with the keyboard, replies and
//! resolves it, while a supervisor's window shows each change live, without a reload. The flow
//! writes the screenshots in `target/screenshots/` (`docs/screenshots/` with
//! `SWITCHBOARD_UPDATE_SCREENSHOTS=1`).

use crate::common;

use common::served::{Served, assigned, user};
use common::webdriver::{self, Browser, Driver, ESCAPE, Session};
use common::{Harness, manifest_dir};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard::app::StageName;
use switchboard::core::access::Role;
use switchboard::http::{auth, desk};
use switchboard_tools::client::Reply;

/// How long the browser gets for anything to show.
const WAIT: Duration = Duration::from_secs(20);

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn desk_page_is_served_without_a_key_under_a_strict_policy() {
    let h = Harness::new("desk_page").await;
    let mut gw = Served::start(&h).await;
    let r = gw.client.get("/desk", &[]).await.unwrap();
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert_eq!(header(&r, "referrer-policy"), "no-referrer");
    assert_eq!(header(&r, "cache-control"), "no-store");

    let csp = header(&r, "content-security-policy");
    assert_eq!(csp, desk::CONTENT_SECURITY_POLICY.as_str());
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    for d in [
        "default-src 'none'",
        "style-src 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ] {
        assert!(directives.contains(&d), "{d} in {csp}");
    }
    let script = directives
        .iter()
        .find(|d| d.starts_with("script-src "))
        .expect("a script-src");
    assert!(
        script.starts_with("script-src 'sha256-") && !script.contains("unsafe"),
        "the one inline script by hash only: {script}"
    );

    let page = String::from_utf8(r.body.to_vec()).unwrap();
    assert_eq!(page, desk::PAGE);
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing fetched from elsewhere"
    );
    assert!(!page.contains("<script src") && !page.contains("<link rel=\"stylesheet\""));
    for test_id in ["token", "signin", "queue", "ticket", "board", "live", "reply"] {
        assert!(page.contains(&format!("data-test=\"{test_id}\"")), "{test_id}");
    }
    // The API behind it still wants a key.
    assert_eq!(gw.client.get("/v1/tickets/x", &[]).await.unwrap().status.as_u16(), 401);
    h.cleanup().await;
}

/// A user's personal token (`sbu_…`, as `switchboard users create` issues): an agent's
/// (`agent` set) or a team supervisor's.
async fn person_token(h: &Harness, name: &str, agent: Option<&str>, team: Option<&str>) -> String {
    let spec = match agent {
        Some(a) => auth::UserSpec::agent(name, a),
        None => auth::UserSpec::person(name, Role::Supervisor, team),
    };
    user(h, spec).await
}

/// Submits an app request and waits until the pipeline has assigned its ticket; returns the
/// ticket's number and assignee.
async fn app_assigned(
    h: &Harness,
    gw: &mut Served,
    key: &str,
    id: &str,
    name: &str,
    phone: &str,
    body: &str,
) -> (String, String) {
    let request = json!({
        "channel": "app",
        "channel_message_id": id,
        "received_at": chrono::Utc::now(),
        "customer": {"name": name, "phone": phone},
        "body": body,
    });
    assigned(h, gw, key, request).await
}

fn sel(test: &str) -> String {
    format!("[data-test=\"{test}\"]")
}

async fn sign_in(w: &Session, url: &str, token: &str) {
    w.goto(url).await.unwrap();
    let input = w.wait_visible(&sel("token"), WAIT).await;
    w.send_keys(&input, token).await.unwrap();
    w.click(&w.find(&sel("signin")).await.unwrap()).await.unwrap();
    w.wait_visible(&sel("whoami"), WAIT).await;
    let url: Value = w.execute("return location.href", vec![]).await.unwrap();
    assert!(
        !url.as_str().unwrap_or_default().contains(token),
        "the token stays out of the URL: {url}"
    );
}

async fn wait_live(w: &Session) {
    w.wait_until("the live indicator", WAIT, || async {
        let e = w.find(&sel("live")).await?;
        Ok((w.attribute(&e, "data-state").await?.as_deref() == Some("live")).then_some(()))
    })
    .await;
}

/// The value of `data-state` of the open ticket's state.
async fn ticket_state(w: &Session) -> Option<String> {
    // The pane re-renders when the live stream brings the change the action just made: a read
    // that lands in between finds no element (or a stale one), so read again for a moment.
    for _ in 0..50 {
        if let Ok(e) = w.find(&sel("ticket-state")).await
            && let Ok(Some(state)) = w.attribute(&e, "data-state").await
        {
            return Some(state);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Screenshots go to `target/screenshots/`, or to `docs/screenshots/` (shown in docs/PEOPLE.md) when
/// `SWITCHBOARD_UPDATE_SCREENSHOTS=1` (so an ordinary test run leaves the checkout clean).
async fn shot(w: &Session, name: &str) {
    let dir = if std::env::var("SWITCHBOARD_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        manifest_dir().join("docs/screenshots")
    } else {
        manifest_dir().join("target/screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    w.screenshot_to(&path).await.unwrap();
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is a PNG");
    assert!(png.len() > 20_000, "{name} of {} bytes looks empty", png.len());
    println!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn desk_an_agent_resolves_a_ticket_and_the_supervisor_sees_it_live() {
    let Some(chromedriver) = webdriver::chromedriver_or_skip("desk_an_agent_resolves_a_ticket") else {
        return;
    };
    let mut h = Harness::new("desk_flow").await;
    h.import_sample_roster().await;
    h.start_stages(&StageName::ALL, 1);
    let mut gw = Served::start(&h).await;
    let intake = auth::create(&h.app.db, &auth::KeySpec::integration("app-backend", Some("app")))
        .await
        .unwrap()
        .1;

    let (number, agent) = app_assigned(
        &h,
        &mut gw,
        &intake,
        "desk-1",
        "王先生",
        "13812340101",
        "APP 登录以后一直报错，页面打不开",
    )
    .await;
    let team = h.text(&format!("SELECT team FROM agents WHERE id = '{agent}'")).await;
    // The rest of the team is away: the next requests go to the same agent, and the board shows
    // both presences.
    h.execute(
        "UPDATE agents SET presence = 'away' WHERE team = $1 AND id <> $2",
        &[&team, &agent],
    )
    .await;
    for (i, (name, body)) in [
        ("李女士", "APP 更新以后一直报错，订单页面打不开"),
        ("Mr. Smith", "The app keeps crashing when I open my orders"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("desk-{}", i + 2);
        let (other, to) = app_assigned(&h, &mut gw, &intake, &id, name, &format!("1381234020{i}"), body).await;
        assert_eq!(to, agent, "{other} goes to the one agent of {team} online");
    }
    let agent_token = person_token(&h, "desk-agent", Some(&agent), None).await;
    let lead_token = person_token(&h, "desk-lead", None, Some(&team)).await;

    let driver = Driver::start(&chromedriver).await;
    let url = format!("http://{}/desk", gw.addr);
    let row = format!("{} {}[data-number=\"{number}\"]", sel("queue"), sel("row"));

    // The agent, in English: the ticket is in "My tickets", soonest deadline first.
    let aw = driver.session(&Browser::default()).await;
    sign_in(&aw, &url, &agent_token).await;
    aw.wait_text(&sel("role"), WAIT, |t| t == "Agent").await;
    aw.wait_visible(&row, WAIT).await;
    let left = aw
        .wait_text(&format!("{row} {}", sel("row-due")), WAIT, |t| t.contains('m'))
        .await;
    assert!(!left.contains("overdue"), "due in 30 minutes: {left}");
    wait_live(&aw).await;

    // The supervisor, in Chinese: the team queue with every open state, the ticket opened.
    let lw = driver
        .session(&Browser {
            lang: "zh-CN".into(),
            ..Browser::default()
        })
        .await;
    sign_in(&lw, &url, &lead_token).await;
    lw.wait_text(&sel("role"), WAIT, |t| t == "主管").await;
    lw.click(
        &lw.find(&format!("{} option[value=\"{team}\"]", sel("team")))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    lw.click(
        &lw.find(&format!("{} option[value^=\"received,\"]", sel("filter-state")))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    lw.click_when(&row, WAIT).await;
    lw.wait_text(&sel("ticket-number"), WAIT, |t| t == number).await;
    lw.wait_text(&sel("ticket-state"), WAIT, |t| t == "已分配").await;
    wait_live(&lw).await;
    // Anything the page reloads would lose this.
    lw.execute("window.__deskMarker = 42; return true", vec![])
        .await
        .unwrap();

    // The agent: `?` shows the shortcuts, Escape closes them; `j` walks the list to the ticket
    // and Enter opens it.
    aw.press("?").await.unwrap();
    let open = || async {
        aw.execute(
            &format!("return document.querySelector('{}').open", sel("shortcuts")),
            vec![],
        )
        .await
        .unwrap()
    };
    assert_eq!(open().await, true, "? opens the shortcuts");
    aw.press(ESCAPE).await.unwrap();
    assert_eq!(open().await, false, "Escape closes them");
    let rows = aw.find_all(&format!("{} {}", sel("queue"), sel("row"))).await.unwrap();
    assert_eq!(rows.len(), 3, "the agent's three tickets");
    let mut found = false;
    for _ in 0..rows.len() {
        aw.press("j").await.unwrap();
        let current: Value = aw
            .execute("return document.activeElement.dataset.number || null", vec![])
            .await
            .unwrap();
        if current == number.as_str() {
            found = true;
            break;
        }
    }
    assert!(found, "j reaches {number}");
    shot(&aw, "desk-queue.png").await;
    aw.press(webdriver::ENTER).await.unwrap();
    aw.wait_text(&sel("ticket-number"), WAIT, |t| t == number).await;
    aw.wait_text(&sel("ticket-state"), WAIT, |t| t == "Assigned").await;
    aw.wait_text(&sel("messages"), WAIT, |t| t.contains("登录以后一直报错"))
        .await;

    // `r` goes to the reply box; the reply is sent with its own idempotency key.
    aw.execute("document.activeElement.blur(); return true", vec![])
        .await
        .unwrap();
    aw.press("r").await.unwrap();
    let focused: Value = aw
        .execute("return document.activeElement.dataset.test || null", vec![])
        .await
        .unwrap();
    assert_eq!(focused, "reply", "r focuses the reply box");
    let reply = aw.find(&sel("reply")).await.unwrap();
    aw.send_keys(&reply, "您好，我们已经定位到登录页面的问题，正在修复。")
        .await
        .unwrap();
    aw.click(&aw.find(&sel("action-respond")).await.unwrap()).await.unwrap();
    aw.wait_text(&sel("action-status"), WAIT, |t| t.contains("Respond: done"))
        .await;
    aw.wait_text(&sel("ticket-state"), WAIT, |t| t == "In progress").await;
    // The supervisor's window follows, on its own.
    lw.wait_text(&sel("ticket-state"), WAIT, |t| t == "处理中").await;
    lw.wait_text(&format!("{row} {}", sel("row-state")), WAIT, |t| t == "处理中")
        .await;

    // Resolve, with the result and root cause.
    aw.click_when(&sel("action-resolve"), WAIT).await;
    let result = aw.wait_visible(&sel("field-result"), WAIT).await;
    aw.send_keys(&result, "修复了登录服务的证书配置，客户确认可以正常登录。")
        .await
        .unwrap();
    aw.send_keys(&aw.find(&sel("field-root_cause")).await.unwrap(), "登录服务证书过期")
        .await
        .unwrap();
    shot(&aw, "desk-ticket.png").await;
    aw.click(&aw.find(&sel("action-submit")).await.unwrap()).await.unwrap();
    aw.wait_text(&sel("ticket-state"), WAIT, |t| t == "Resolved").await;
    assert_eq!(ticket_state(&aw).await.as_deref(), Some("resolved"));
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM tickets WHERE number = '{number}' AND state = 'resolved'"
        ))
        .await,
        1
    );
    // It leaves the agent's list (resolved is not in "My tickets").
    aw.wait_until("the resolved ticket to leave My tickets", WAIT, || async {
        Ok(aw.find_all(&row).await?.is_empty().then_some(()))
    })
    .await;

    // The supervisor sees it resolved, live: same page, no reload.
    lw.wait_text(&sel("ticket-state"), WAIT, |t| t == "已解决").await;
    assert_eq!(ticket_state(&lw).await.as_deref(), Some("resolved"));
    let marker = lw.execute("return window.__deskMarker", vec![]).await.unwrap();
    assert_eq!(marker, 42, "the supervisor's page was not reloaded");
    lw.wait_text(&sel("timeline"), WAIT, |t| t.contains("已解决")).await;

    // One of the agent's other tickets missed its first response and escalated to the
    // supervisor (written as the escalation stage would, five minutes ago).
    let escalated = h
        .text("SELECT number FROM tickets WHERE channel_message_id = 'desk-2'")
        .await;
    h.execute("INSERT INTO escalations (ticket_id, target, ladder, breached_at, last_step, last_fired_at, last_notified)
             SELECT id, 'first_response', 'normal', now() - interval '5 minutes', 0, now() - interval '5 minutes', 'supervisor'
             FROM tickets WHERE number = $1",
            &[&escalated]).await;

    // The team board: agents with presence and load, the queue, tickets at risk, escalations.
    lw.click(&lw.find(&sel("tab-board")).await.unwrap()).await.unwrap();
    lw.wait_visible(&sel("board-queued"), WAIT).await;
    let agents = lw.find_all(&sel("board-agent")).await.unwrap();
    assert!(!agents.is_empty(), "the board lists the team's agents");
    lw.wait_text(&format!("{}[data-agent=\"{agent}\"]", sel("board-agent")), WAIT, |t| {
        t.contains("在线") && t.contains("2 /")
    })
    .await;
    let ack = format!("{}[data-number=\"{escalated}\"]", sel("ack"));
    lw.wait_visible(&ack, WAIT).await;
    shot(&lw, "desk-board.png").await;
    // Acknowledged from the board: it leaves the list.
    lw.click_when(&ack, WAIT).await;
    lw.wait_until("the escalation to leave the board", WAIT, || async {
        Ok(lw.find_all(&sel("board-escalation")).await?.is_empty().then_some(()))
    })
    .await;
    let acked = format!(
        "SELECT count(*) FROM escalations e JOIN tickets t ON t.id = e.ticket_id
         WHERE t.number = '{escalated}' AND e.acknowledged_at IS NOT NULL"
    );
    assert_eq!(h.count(&acked).await, 1);
    // An action the server refuses (starting a resolved ticket) shows its message.
    lw.execute("send('start', {}, null); return true", vec![])
        .await
        .unwrap();
    let refused = lw.wait_text(&sel("action-error"), WAIT, |t| !t.is_empty()).await;
    assert!(
        refused.starts_with("被拒绝：") || refused.starts_with("无权操作："),
        "{refused}"
    );
    assert_eq!(ticket_state(&lw).await.as_deref(), Some("resolved"));

    // The agent steps away from the presence selector (PUT /v1/me/presence).
    aw.click(
        &aw.find(&format!("{} option[value=\"away\"]", sel("presence")))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let away = format!("SELECT count(*) FROM agents WHERE id = '{agent}' AND presence = 'away'");
    h.wait_for("the agent away", WAIT, || async { h.count(&away).await == 1 })
        .await;

    // With nobody online the next request waits in the team queue; the agent claims it from
    // the "Team queue" tab and leaves a note.
    let r = gw
        .post(
            &intake,
            "/v1/requests",
            json!({
                "channel": "app",
                "channel_message_id": "desk-4",
                "received_at": chrono::Utc::now(),
                "customer": {"name": "赵女士", "phone": "13812340301"},
                "body": "APP 登录以后一直报错，页面打不开，换了手机也一样",
            }),
            &[],
        )
        .await;
    assert_eq!(r.status.as_u16(), 202, "{:?}", r.json());
    let queued = "SELECT count(*) FROM tickets WHERE channel_message_id = 'desk-4' AND state = 'queued'";
    h.wait_for("desk-4 queued", Duration::from_secs(30), || async {
        h.count(queued).await == 1
    })
    .await;
    let waiting = h
        .text("SELECT number FROM tickets WHERE channel_message_id = 'desk-4'")
        .await;
    aw.click(&aw.find(&sel("tab-team")).await.unwrap()).await.unwrap();
    let queued_row = format!("{} {}[data-number=\"{waiting}\"]", sel("queue"), sel("row"));
    aw.click_when(&queued_row, WAIT).await;
    aw.wait_text(&sel("ticket-number"), WAIT, |t| t == waiting).await;
    aw.wait_text(&sel("ticket-state"), WAIT, |t| t == "Queued").await;
    aw.click_when(&sel("action-claim"), WAIT).await;
    aw.wait_text(&sel("ticket-state"), WAIT, |t| t == "Assigned").await;
    aw.wait_text(&sel("ticket-assignee"), WAIT, |t| t == agent).await;
    aw.click_when(&sel("action-note"), WAIT).await;
    let text = aw.wait_visible(&sel("field-text"), WAIT).await;
    aw.send_keys(&text, "客户说支付成功但订单没有生成，先查支付回调。")
        .await
        .unwrap();
    aw.click(&aw.find(&sel("action-submit")).await.unwrap()).await.unwrap();
    aw.wait_text(&sel("notes"), WAIT, |t| t.contains("先查支付回调")).await;

    // Signing out forgets the token.
    aw.click(&aw.find(&sel("signout")).await.unwrap()).await.unwrap();
    aw.wait_visible(&sel("token"), WAIT).await;
    let kept = aw
        .execute(
            "return [sessionStorage.length, localStorage.getItem('switchboard.desk.token')]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, json!([0, null]), "nothing kept after sign-out");

    // The language switch redraws the page's text.
    aw.click(&aw.find(&format!("{} option[value=\"zh\"]", sel("lang"))).await.unwrap())
        .await
        .unwrap();
    aw.wait_text(&sel("signin"), WAIT, |t| t == "登录").await;

    aw.quit().await;
    lw.quit().await;
    drop(driver);
    drop(gw);
    h.cleanup().await;
}
