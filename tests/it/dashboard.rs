//! The operations dashboard on the real RabbitMQ and Postgres: the JSON of `/v1/dashboard` for a
//! small seeded state (in-process router), and the page rendered by headless Chromium against a
//! real listener (skipped with a message when Chromium is not installed).

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use common::{Harness, manifest_dir};
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard::http::{self as gateway, Gateway, dashboard};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Seeds tickets, agents' load and breach transitions; returns the team under load.
async fn seed(h: &Harness, now: DateTime<Utc>) -> String {
    h.import_sample_roster().await;
    let client = h.app.db.pool.get().await.unwrap();
    let team: String = client
        .query_one("SELECT team FROM agents GROUP BY team ORDER BY team LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    client
        .execute("UPDATE agents SET open_tickets = 0, presence = 'offline'", &[])
        .await
        .unwrap();
    client
        .execute(
            "UPDATE agents SET open_tickets = 2, presence = 'online'
             WHERE id = (SELECT id FROM agents WHERE team = $1 ORDER BY id LIMIT 1)",
            &[&team],
        )
        .await
        .unwrap();

    let m = |n: i64| Some(now + Duration::minutes(n));
    type Row<'a> = (
        &'a str,
        &'a str,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    // number, state, first_response_due, first_responded_at, resolution_due
    let rows: [Row; 7] = [
        ("T-1", "assigned", m(10), None, m(120)),              // first response at risk
        ("T-2", "in_progress", m(-30), m(-40), m(5)),          // resolution at risk
        ("T-3", "waiting_for_customer", m(-30), m(-40), m(5)), // paused: not at risk
        ("T-4", "queued", m(30), None, m(240)),                // due later: not at risk
        ("T-5", "closed", m(3), None, m(3)),                   // closed: not open, not at risk
        ("T-6", "received", None, None, None),                 // no SLA yet
        ("T-7", "assigned", m(-2), None, m(60)),               // already overdue: a breach, not at risk
    ];
    for (i, (number, state, fr_due, fr_at, res_due)) in rows.into_iter().enumerate() {
        client
            .execute(
                "INSERT INTO tickets (number, channel, channel_message_id, customer, body, state, priority, team,
                                      first_response_due, first_responded_at, resolution_due, received_at, version)
                 VALUES ($1, 'app', $2, $3, 'body', $4, 'P1', $5, $6, $7, $8, $9, 1)",
                &[
                    &number,
                    &format!("dash-{i}"),
                    &json!({"phone": "13812345678", "email": "someone@example.com"}),
                    &state,
                    &team,
                    &fr_due,
                    &fr_at,
                    &res_due,
                    &(now - Duration::hours(1)),
                ],
            )
            .await
            .unwrap();
    }

    let midnight = dashboard::local_midnight(h.app.policy.tz, now);
    let breach = |target: &str| json!({"target": target, "due": now, "late_by_seconds": 1, "sla_rule": "x"});
    let transitions = [
        (now - Duration::seconds(1), breach("first_response")),
        (now - Duration::seconds(2), breach("resolution")),
        (now - Duration::seconds(3), breach("resolution")),
        // Yesterday's breach and an escalation step do not count.
        (midnight - Duration::hours(1), breach("resolution")),
        (now - Duration::seconds(1), json!({"target": "resolution", "step": 1})),
    ];
    for (seq, (at, details)) in transitions.into_iter().enumerate() {
        client
            .execute(
                "INSERT INTO ticket_transitions (ticket_id, seq, from_state, to_state, at, actor, reason, policy_version, details)
                 VALUES ((SELECT id FROM tickets WHERE number = 'T-7'), $1, 'assigned', 'assigned', $2, 'escalate', 'SLA target missed', 'test', $3)",
                &[&(seq as i32 + 2), &at, &details],
            )
            .await
            .unwrap();
    }
    team
}

async fn get(router: &axum::Router, path: &str) -> (StatusCode, String, Vec<u8>) {
    let response = router
        .clone()
        .oneshot(Request::builder().uri(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, ct, body.to_vec())
}

#[tokio::test]
async fn dashboard_json_counts_the_seeded_state() {
    let h = Harness::new("dashboard_json").await;
    let now = Utc::now();
    let team = seed(&h, now).await;
    h.publish_intake("intake.app", "dash-queued", br#"{"not":"processed"}"#)
        .await;
    let router = gateway::router(&h.app, Arc::new(Gateway::new(&h.app)));

    // No API key needed for either.
    let (status, ct, _) = get(&router, "/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/html"), "{ct}");
    let (status, _, body) = get(&router, "/v1/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert!(
        !text.contains("13812345678") && !text.contains("example.com"),
        "no contact details: {text}"
    );
    let d: Value = serde_json::from_str(&text).unwrap();

    assert_eq!(d["broker_ok"], true, "{d:#}");
    let queues: Vec<(&str, u64)> = d["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["queue"].as_str().unwrap(), q["ready"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        queues,
        [
            ("intake", 1),
            ("classify", 0),
            ("prioritize", 0),
            ("assign", 0),
            ("escalate", 0),
            ("lifecycle", 0),
            ("notify", 0),
            ("dead", 0)
        ]
    );

    assert_eq!(
        d["open_by_state"],
        json!({"received": 1, "classified": 0, "prioritized": 0, "queued": 1, "assigned": 2,
               "in_progress": 1, "waiting_for_customer": 1, "resolved": 0})
    );
    assert_eq!(d["open_total"], 6);

    assert_eq!(d["at_risk_total"], 2, "{:#}", d["at_risk"]);
    let risk = d["at_risk"].as_array().unwrap();
    assert_eq!(risk[0]["number"], "T-2");
    assert_eq!(risk[0]["target"], "resolution");
    assert_eq!(risk[1]["number"], "T-1");
    assert_eq!(risk[1]["target"], "first_response");
    assert_eq!(risk[1]["priority"], "P1");
    assert_eq!(risk[1]["team"], team.as_str());
    let left = risk[1]["minutes_left"].as_i64().unwrap();
    assert!((8..=10).contains(&left), "minutes left {left}");
    assert!((3..=5).contains(&risk[0]["minutes_left"].as_i64().unwrap()));

    let b = &d["breaches_today"];
    assert_eq!(
        b["by_target"],
        json!({"first_response": 1, "resolution": 2, "next_update": 0})
    );
    assert_eq!(b["total"], 3);

    let teams = d["teams"].as_array().unwrap();
    let loaded = teams.iter().find(|t| t["team"] == team.as_str()).unwrap();
    let capacity = h
        .count(&format!(
            "SELECT coalesce(sum(max_open), 0)::bigint FROM agents WHERE team = '{team}'"
        ))
        .await;
    let agents = h
        .count(&format!("SELECT count(*) FROM agents WHERE team = '{team}'"))
        .await;
    assert_eq!(loaded["open"], 2);
    assert_eq!(loaded["capacity"], capacity);
    assert_eq!(loaded["online"], 1);
    assert_eq!(loaded["agents"], agents);
    for t in teams.iter().filter(|t| t["team"] != team.as_str()) {
        assert_eq!((t["open"].as_i64(), t["online"].as_i64()), (Some(0), Some(0)), "{t}");
    }
    h.cleanup().await;
}

#[tokio::test]
async fn dashboard_renders_in_headless_chromium() {
    if !std::path::Path::new(CHROMIUM).exists() {
        println!("SKIPPED: {CHROMIUM} not found; install it (apt-get install -y chromium) to run the screenshot test");
        return;
    }
    let h = Harness::new("dashboard_shot").await;
    seed(&h, Utc::now()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let app = h.app.clone();
    let server = tokio::spawn({
        let stop = stop.clone();
        async move { gateway::serve(&app, listener, stop).await }
    });

    let out_dir = manifest_dir().join("target/dashboard");
    std::fs::create_dir_all(&out_dir).unwrap();
    let png = out_dir.join("dashboard.png");
    let _ = std::fs::remove_file(&png);
    let profile = std::env::temp_dir().join(format!("switchboard-chromium-{}", std::process::id()));
    let url = format!("http://127.0.0.1:{port}/dashboard");
    let args = vec![
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--hide-scrollbars".into(),
        // Lets the page's first fetch finish before the shot (the 5 s refresh does not fire).
        "--virtual-time-budget=3000".into(),
        format!("--user-data-dir={}", profile.display()),
        format!("--screenshot={}", png.display()),
        "--window-size=1280,900".into(),
        url,
    ];
    let mut child = tokio::process::Command::new(CHROMIUM)
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(90), child.wait())
        .await
        .expect("chromium finished within 90 s")
        .unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    stop.cancel();
    let _ = server.await;
    assert!(status.success(), "chromium exited with {status}");

    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    // A blank 1280×900 page compresses to a few kilobytes; the rendered dashboard is far larger.
    assert!(bytes.len() > 20_000, "screenshot of {} bytes looks empty", bytes.len());
    println!("dashboard screenshot: {}", png.display());
    h.cleanup().await;
}

#[test]
fn grafana_dashboard_uses_only_documented_metrics() {
    let grafana = std::fs::read_to_string(manifest_dir().join("docs/grafana-dashboard.json")).unwrap();
    let doc: Value = serde_json::from_str(&grafana).expect("docs/grafana-dashboard.json is JSON");
    assert!(doc["panels"].as_array().is_some_and(|p| p.len() >= 10));
    let readme = std::fs::read_to_string(manifest_dir().join("docs/OPERATIONS.md")).unwrap();
    let names = regex::Regex::new(r"switchboard_[a-z_]+").unwrap();
    let mut used: Vec<&str> = names.find_iter(&grafana).map(|m| m.as_str()).collect();
    used.sort_unstable();
    used.dedup();
    for name in used {
        let base = name.strip_suffix("_bucket").unwrap_or(name);
        assert!(
            readme.contains(&format!("`{base}`")),
            "{name} is not in the Metrics table of docs/OPERATIONS.md"
        );
    }
}
