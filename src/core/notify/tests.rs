use super::*;
use chrono::TimeZone;
use std::path::PathBuf;

/// The shipped `[notify]` section and SLA calendar, read without `core::policy` (which
/// depends on this module).
struct Shipped {
    notify: NotifyPolicy,
    calendar: BusinessCalendar,
}

impl Shipped {
    fn notify_rules(&self) -> Rules<'_> {
        let supervisors = [
            ("front_line", "front_line_supervisor"),
            ("technical_support", "tech_supervisor"),
            ("customer_relations", "relations_supervisor"),
            ("product_management", "product_supervisor"),
            ("green_channel", "duty_manager"),
            ("quality_management", "quality_manager"),
        ];
        Rules {
            notify: &self.notify,
            supervisors: supervisors.into_iter().collect(),
            calendar: &self.calendar,
            tz: chrono_tz::Asia::Shanghai,
        }
    }
}

fn policy() -> Shipped {
    #[derive(Deserialize)]
    struct NotifyFile {
        notify: NotifyPolicy,
    }
    #[derive(Deserialize)]
    struct CalendarFile {
        calendars: BTreeMap<String, BusinessCalendar>,
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/policy");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let notify: NotifyFile = toml::from_str(&read("notify.toml")).unwrap();
    let mut calendars: CalendarFile = toml::from_str(&read("calendar.toml")).unwrap();
    Shipped {
        notify: notify.notify,
        calendar: calendars.calendars.remove("default").unwrap(),
    }
}

/// A CloudEvent shaped as `contracts::events::ticket_event` writes it.
fn event(name: &str, seq: i32, at: DateTime<Utc>, ticket: Value, details: Value) -> EventFacts {
    let body = json!({
        "specversion": "1.0",
        "id": format!("202612-00007.{seq}"),
        "source": "switchboard/tickets/202612-00007",
        "type": format!("switchboard.{name}.v1"),
        "subject": "202612-00007",
        "time": at,
        "sequence": format!("{seq:010}"),
        "data": { "ticket": ticket, "transition": { "seq": seq, "reason": "because", "details": details } },
    });
    EventFacts::decode(name, &serde_json::to_vec(&body).unwrap()).unwrap()
}

#[test]
fn the_sequence_is_read_as_the_extension_writes_it_and_as_it_was_before() {
    let at = Utc::now();
    assert_eq!(event("ticket.resolved", 12, at, json!({}), json!({})).seq, Some(12));
    let old = json!({"specversion": "1.0", "id": "202612-00007.3", "type": "switchboard.ticket.resolved.v1",
                     "subject": "202612-00007", "time": at, "sequence": 3, "data": {}});
    let facts = EventFacts::decode("ticket.resolved", &serde_json::to_vec(&old).unwrap()).unwrap();
    assert_eq!(facts.seq, Some(3));
    let mut anonymised = old.clone();
    anonymised.as_object_mut().unwrap().remove("sequence");
    let facts = EventFacts::decode("ticket.anonymised", &serde_json::to_vec(&anonymised).unwrap()).unwrap();
    assert_eq!(facts.seq, None);
}

fn ticket(priority: &str, category: &str, team: &str, assignee: Option<&str>) -> Value {
    json!({
        "number": "202612-00007", "priority": priority, "category": category, "team": team,
        "assignee": assignee, "language": "zh-Hans", "state": "assigned",
        "resolution_due": "2026-12-07T10:00:00Z",
    })
}

/// Monday 2026-12-07 14:00 in Shanghai: inside service hours.
fn office_hours() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 6, 0, 0).unwrap()
}

/// Tuesday 2026-12-08 03:00 in Shanghai: outside service hours.
fn night() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 19, 0, 0).unwrap()
}

fn inputs<'a>(
    rules: &'a Rules<'a>,
    subs: &'a [Subscription],
    customer: Option<&'a CustomerRoute>,
    assignee: &'a [Medium],
) -> Inputs<'a> {
    Inputs {
        rules,
        subscriptions: subs,
        customer,
        assignee,
        mail_domain: Some("mail.test"),
        public_url: "https://sb.test/",
        survey_token: "tok123",
    }
}

fn email_customer() -> CustomerRoute {
    CustomerRoute {
        channel: "email".into(),
        name: Some("张三".into()),
        email: Some("zhang@example.com".into()),
        language: Some("zh-Hans".into()),
        subject: Some("订单没到".into()),
        message_ids: vec!["first@cust".into(), "second@cust".into()],
        callback: None,
        thread_ref: None,
    }
}

#[test]
fn patterns_match_whole_segments() {
    assert!(pattern_matches("*", "ticket.resolved"));
    assert!(pattern_matches("ticket.*", "ticket.resolved"));
    assert!(pattern_matches("ticket.resolved", "ticket.resolved"));
    assert!(!pattern_matches("ticket.*", "sla.breached"));
    assert!(!pattern_matches("ticket.re", "ticket.resolved"));
    assert!(!pattern_matches("tick.*", "ticket.resolved"));
    assert!(pattern_matches("sla.#", "sla.breached"));
}

#[test]
fn the_shipped_policy_reaches_every_role_and_refuses_one_that_reaches_nobody() {
    let p = policy();
    assert!(!p.notify.people_in("technical_director").is_empty());
    let mut n = p.notify.clone();
    n.roles.remove("technical_director");
    let needed: BTreeSet<String> = ["technical_director".to_owned()].into();
    let err = n.validate(&needed).unwrap_err();
    assert!(
        err.contains("technical_director") && err.contains("reaches nobody"),
        "{err}"
    );
    let mut n = p.notify.clone();
    n.people.get_mut("tech_lead").unwrap().email = None;
    assert!(
        n.validate(&BTreeSet::new())
            .unwrap_err()
            .contains("no way to be reached")
    );
    let mut n = p.notify.clone();
    n.on_duty.retain(|e| !e.days.contains(&"sat".to_owned()));
    assert!(n.validate(&BTreeSet::new()).unwrap_err().contains("weekday"));
}

#[test]
fn a_webhook_gets_the_event_once_per_matching_subscription_with_the_event_id() {
    let p = policy();
    let rules = p.notify_rules();
    let subs = vec![
        Subscription {
            id: "whk_a".into(),
            url: "https://a/".into(),
            events: vec!["ticket.*".into()],
        },
        Subscription {
            id: "whk_b".into(),
            url: "https://b/".into(),
            events: vec!["sla.breached".into()],
        },
    ];
    let e = event(
        "ticket.resolved",
        6,
        office_hours(),
        ticket("normal", "inquiry", "front_line", Some("a1")),
        json!({}),
    );
    let plan = plan(&e, &inputs(&rules, &subs, None, &[]));
    let hooks: Vec<&Planned> = plan.deliveries.iter().filter(|d| d.kind == Kind::Webhook).collect();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].msg_id, "202612-00007.6");
    assert_eq!(hooks[0].key, "wh:whk_a:202612-00007.6");
    assert_eq!(hooks[0].lane, "whk_a");
    assert_eq!(hooks[0].payload, e.body);
}

#[test]
fn an_escalation_in_service_hours_reaches_the_role_and_at_night_only_the_person_on_duty() {
    let p = policy();
    let rules = p.notify_rules();
    let details = json!({ "target": "resolution", "step": 2, "repeat": 0, "notify": "technical_director" });
    let t = ticket("urgent", "fault", "green_channel", Some("a1"));
    let day = plan(
        &event("ticket.escalated", 5, office_hours(), t.clone(), details.clone()),
        &inputs(&rules, &[], None, &[]),
    );
    let to: Vec<&str> = day.deliveries.iter().map(|d| d.target.as_str()).collect();
    assert_eq!(to, ["cto@example.com"]);
    let mail = &day.deliveries[0];
    assert_eq!(mail.transport, Transport::Email);
    assert!(mail.payload["subject"].as_str().unwrap().contains("202612-00007"));
    assert!(
        mail.payload["text"]
            .as_str()
            .unwrap()
            .contains("https://sb.test/desk#202612-00007")
    );
    assert!(
        !mail.payload["text"].as_str().unwrap().contains("zhang@"),
        "never the customer's contacts"
    );

    let at_night = plan(
        &event("ticket.escalated", 5, night(), t, details),
        &inputs(&rules, &[], None, &[]),
    );
    let to: Vec<&str> = at_night.deliveries.iter().map(|d| d.target.as_str()).collect();
    assert_eq!(to, ["duty-weekday@example.com"]);
}

#[test]
fn an_urgent_assignment_reaches_the_assignee_and_the_supervisor_and_a_normal_one_nobody() {
    let p = policy();
    let rules = p.notify_rules();
    let me = [Medium::email("a1@example.com")];
    let urgent = plan(
        &event(
            "ticket.assigned",
            4,
            office_hours(),
            ticket("urgent", "fault", "green_channel", Some("a1")),
            json!({}),
        ),
        &inputs(&rules, &[], None, &me),
    );
    let mut to: Vec<&str> = urgent.deliveries.iter().map(|d| d.target.as_str()).collect();
    to.sort();
    assert_eq!(to, ["a1@example.com", "duty-weekday@example.com"]);
    let normal = plan(
        &event(
            "ticket.assigned",
            4,
            office_hours(),
            ticket("normal", "fault", "technical_support", Some("a1")),
            json!({}),
        ),
        &inputs(&rules, &[], None, &me),
    );
    assert!(normal.deliveries.is_empty());
}

#[test]
fn without_an_smtp_server_nothing_is_planned_for_email() {
    let p = policy();
    let rules = p.notify_rules();
    let mut i = inputs(&rules, &[], None, &[]);
    i.mail_domain = None;
    let details = json!({ "target": "resolution", "step": 1, "repeat": 0, "notify": "technical_director" });
    let e = event(
        "ticket.escalated",
        5,
        office_hours(),
        ticket("urgent", "fault", "green_channel", None),
        details,
    );
    assert!(plan(&e, &i).deliveries.is_empty());
}

#[test]
fn the_customer_is_acknowledged_once_per_ticket_in_a_threaded_email_in_their_language() {
    let p = policy();
    let rules = p.notify_rules();
    let c = email_customer();
    let a = plan(
        &event(
            "ticket.assigned",
            4,
            office_hours(),
            ticket("normal", "inquiry", "front_line", Some("a1")),
            json!({}),
        ),
        &inputs(&rules, &[], Some(&c), &[]),
    );
    assert_eq!(a.deliveries.len(), 1);
    let d = &a.deliveries[0];
    assert_eq!(
        (d.kind, d.transport, d.purpose.as_str()),
        (Kind::Customer, Transport::Email, "acknowledgement")
    );
    assert_eq!(d.key, "cust:202612-00007:acknowledgement");
    assert_eq!(d.payload["in_reply_to"], "second@cust");
    assert_eq!(d.payload["references"], json!(["first@cust", "second@cust"]));
    assert!(d.payload["subject"].as_str().unwrap().contains("[#202612-00007]"));
    assert!(d.payload["text"].as_str().unwrap().contains("张三"));
    assert!(
        d.payload["text"].as_str().unwrap().contains("2026-12-07 18:00"),
        "{}",
        d.payload["text"]
    );
    assert_eq!(d.msg_id, d.payload["message_id"]);
    assert!(d.msg_id.ends_with("@mail.test"));

    let mut en = email_customer();
    en.language = Some("en".into());
    let a = plan(
        &event(
            "ticket.queued",
            4,
            office_hours(),
            ticket("normal", "inquiry", "front_line", None),
            json!({}),
        ),
        &inputs(&rules, &[], Some(&en), &[]),
    );
    assert!(
        a.deliveries[0].payload["subject"]
            .as_str()
            .unwrap()
            .starts_with("We have your request")
    );
    assert_eq!(a.deliveries[0].key, "cust:202612-00007:acknowledgement");
}

#[test]
fn a_reply_goes_to_the_integrations_callback_and_an_empty_respond_sends_nothing() {
    let p = policy();
    let rules = p.notify_rules();
    let chat = CustomerRoute {
        channel: "chat".into(),
        callback: Some(("key_1".into(), "https://chat.test/cb".into())),
        thread_ref: Some("chat:s-9".into()),
        ..Default::default()
    };
    let t = ticket("normal", "inquiry", "front_line", Some("a1"));
    let r = plan(
        &event(
            "ticket.responded",
            5,
            office_hours(),
            t.clone(),
            json!({ "data": { "message": "已为您补发" } }),
        ),
        &inputs(&rules, &[], Some(&chat), &[]),
    );
    assert_eq!(r.deliveries.len(), 1);
    let d = &r.deliveries[0];
    assert_eq!(d.transport, Transport::Callback);
    assert_eq!(d.key_id.as_deref(), Some("key_1"));
    assert_eq!(d.payload["thread_ref"], "chat:s-9");
    assert!(d.payload["text"].as_str().unwrap().contains("已为您补发"));
    let none = plan(
        &event(
            "ticket.responded",
            5,
            office_hours(),
            t,
            json!({ "data": { "message": null } }),
        ),
        &inputs(&rules, &[], Some(&chat), &[]),
    );
    assert!(none.deliveries.is_empty());
}

#[test]
fn a_traced_event_puts_its_traceparent_in_the_callback_and_the_mail() {
    let p = policy();
    let rules = p.notify_rules();
    let chat = CustomerRoute {
        channel: "chat".into(),
        callback: Some(("key_1".into(), "https://chat.test/cb".into())),
        thread_ref: Some("chat:s-9".into()),
        ..Default::default()
    };
    let t = ticket("normal", "inquiry", "front_line", Some("a1"));
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = |tp: &str| {
        let mut e = event(
            "ticket.responded",
            5,
            office_hours(),
            t.clone(),
            json!({ "data": { "message": "已为您补发" } }),
        );
        e.body["traceparent"] = json!(tp);
        e
    };
    let r = plan(&traced(tp), &inputs(&rules, &[], Some(&chat), &[]));
    assert_eq!(r.deliveries[0].payload["traceparent"], tp);
    let r = plan(&traced("not\r\na traceparent"), &inputs(&rules, &[], Some(&chat), &[]));
    assert!(r.deliveries[0].payload.get("traceparent").is_none());
    let mail = plan(&traced(tp), &inputs(&rules, &[], Some(&email_customer()), &[]));
    assert!(!mail.deliveries.is_empty());
    assert!(mail.deliveries.iter().all(|d| d.payload["traceparent"] == tp));
}

#[test]
fn a_resolution_sends_the_result_and_a_survey_and_a_complaint_gets_a_follow_up() {
    let p = policy();
    let rules = p.notify_rules();
    let c = email_customer();
    let e = event(
        "ticket.resolved",
        8,
        office_hours(),
        ticket("normal", "complaint", "customer_relations", Some("a1")),
        json!({ "data": { "result": "已退款", "root_cause": "物流延误" } }),
    );
    let r = plan(&e, &inputs(&rules, &[], Some(&c), &[]));
    let purposes: Vec<&str> = r.deliveries.iter().map(|d| d.purpose.as_str()).collect();
    assert_eq!(purposes, ["resolution", "survey", "follow_up"]);
    assert!(r.deliveries[0].payload["text"].as_str().unwrap().contains("已退款"));
    assert!(
        r.deliveries[1].payload["text"]
            .as_str()
            .unwrap()
            .contains("https://sb.test/v1/surveys/tok123")
    );
    assert_eq!(
        r.survey,
        Some((
            "202612-00007-S8".into(),
            vec!["overall".into(), "speed".into(), "attitude".into()]
        ))
    );
    let (key, reason, due) = r.follow_up.unwrap();
    assert_eq!(
        (key.as_str(), reason.as_str()),
        ("202612-00007:complaint:8", "complaint")
    );
    assert!(due > e.at);
}

#[test]
fn a_low_rating_tells_the_supervisor_and_opens_a_follow_up() {
    let p = policy();
    let rules = p.notify_rules();
    let c = email_customer();
    let t = ticket("normal", "inquiry", "front_line", Some("a1"));
    let reopened = plan(
        &event(
            "ticket.reopened",
            9,
            office_hours(),
            t.clone(),
            json!({ "data": { "rating": 1 } }),
        ),
        &inputs(&rules, &[], None, &[]),
    );
    let to: Vec<&str> = reopened.deliveries.iter().map(|d| d.target.as_str()).collect();
    assert_eq!(to, ["front-line-lead@example.com"]);
    let rated = plan(
        &event("ticket.rated", 8, office_hours(), t, json!({ "data": { "score": 1 } })),
        &inputs(&rules, &[], Some(&c), &[]),
    );
    assert_eq!(rated.follow_up.as_ref().map(|f| f.1.as_str()), Some("low_rating"));
}

#[test]
fn a_progress_update_is_sent_when_the_update_target_breaches() {
    let p = policy();
    let rules = p.notify_rules();
    let c = email_customer();
    let e = event(
        "sla.breached",
        6,
        office_hours(),
        ticket("normal", "fault", "technical_support", Some("a1")),
        json!({ "target": "next_update" }),
    );
    let me = [Medium::email("a1@example.com")];
    let r = plan(&e, &inputs(&rules, &[], Some(&c), &me));
    let purposes: Vec<(&str, &str)> = r
        .deliveries
        .iter()
        .map(|d| (d.purpose.as_str(), d.target.as_str()))
        .collect();
    assert_eq!(
        purposes,
        [
            ("staff_breach", "a1@example.com"),
            ("progress_update", "zhang@example.com")
        ]
    );
}

#[test]
fn an_event_that_is_not_ours_is_named() {
    assert!(EventFacts::decode("ticket.x", b"{").unwrap_err().0.contains("JSON"));
    assert!(
        EventFacts::decode("ticket.x", b"{\"id\":\"1\"}")
            .unwrap_err()
            .0
            .contains("subject")
    );
}

#[test]
fn follow_ups_are_worked_by_the_team_its_supervisors_and_admins_only() {
    use crate::core::access::{Principal, Role};
    let p = |role, agent_team, team| Principal {
        key_id: "k",
        name: "n",
        role,
        channel: None,
        agent: Some("a1"),
        agent_team,
        team,
    };
    assert_eq!(follow_up_scope(&p(Role::Admin, None, None)), Ok(None));
    assert_eq!(
        follow_up_scope(&p(Role::Supervisor, None, Some("front_line"))),
        Ok(Some("front_line"))
    );
    assert_eq!(
        follow_up_scope(&p(Role::Agent, Some("front_line"), None)),
        Ok(Some("front_line"))
    );
    assert!(follow_up_scope(&p(Role::Agent, None, None)).is_err());
    assert!(follow_up_scope(&p(Role::Integration, None, None)).is_err());
    assert!(in_scope(None, Some("x")) && in_scope(Some("x"), Some("x")));
    assert!(!in_scope(Some("x"), Some("y")) && !in_scope(Some("x"), None));
}

#[test]
fn subscriptions_take_types_families_and_everything_only() {
    let ev = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        check_subscription("https://x.test/h", &ev(&["ticket.resolved", " ticket.* ", "*"])).unwrap(),
        ev(&["ticket.resolved", "ticket.*", "*"])
    );
    assert!(check_subscription("ftp://x.test/h", &ev(&["*"])).is_err());
    assert!(check_subscription("https:///h", &ev(&["*"])).is_err());
    assert!(check_subscription("https://x.test/h", &ev(&["ticket.*.x"])).is_err());
    assert!(check_subscription("https://x.test/h", &ev(&["Ticket.Resolved"])).is_err());
    assert!(check_subscription("https://x.test/h", &ev(&[""])).is_err());
}

#[test]
fn a_customer_who_cannot_be_reached_is_recorded_as_failed_and_never_emailed_from_a_web_form() {
    let p = policy();
    let rules = p.notify_rules();
    let app = CustomerRoute {
        channel: "app".into(),
        email: Some("victim@example.org".into()),
        name: Some("<b>click here</b>".into()),
        ..Default::default()
    };
    let r = plan(
        &event(
            "ticket.assigned",
            4,
            office_hours(),
            ticket("normal", "inquiry", "front_line", Some("a1")),
            json!({}),
        ),
        &inputs(&rules, &[], Some(&app), &[]),
    );
    assert_eq!(r.deliveries.len(), 1);
    let d = &r.deliveries[0];
    assert_eq!(d.transport, Transport::Callback);
    assert!(
        d.failed.as_deref().unwrap().contains("no callback URL"),
        "{:?}",
        d.failed
    );
    assert!(d.target.is_empty());
}

#[test]
fn at_night_a_breach_reaches_only_the_person_on_duty() {
    let p = policy();
    let rules = p.notify_rules();
    let me = [Medium::email("a1@example.com")];
    let r = plan(
        &event(
            "sla.breached",
            6,
            night(),
            ticket("normal", "fault", "technical_support", Some("a1")),
            json!({ "target": "resolution" }),
        ),
        &inputs(&rules, &[], None, &me),
    );
    let to: Vec<&str> = r.deliveries.iter().map(|d| d.target.as_str()).collect();
    assert_eq!(to, ["duty-weekday@example.com"]);
    assert_eq!(r.deliveries[0].lane, "staff:duty_weekday:email");
    assert_eq!(r.deliveries[0].payload["person"], "duty_weekday");
}

#[test]
fn a_shown_target_keeps_addresses_and_drops_url_tokens() {
    assert_eq!(shown_target("email", "a@b.c"), "a@b.c");
    assert_eq!(
        shown_target("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET"),
        "https://qyapi.weixin.qq.com/…"
    );
    assert_eq!(
        shown_target("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/SECRET"),
        "https://open.feishu.cn/…"
    );
    assert_eq!(shown_target("webhook", "https://user:pw@h.test/x"), "https://h.test/…");
}

/// A task of a group ticket (`core::groups`) is internal work: its queueing, assignment,
/// replies and resolution send the customer nothing (the parent's owner speaks to them), and a
/// complaint task's resolution opens no follow-up visit.
#[test]
fn a_task_of_a_group_ticket_sends_the_customer_nothing() {
    let p = policy();
    let rules = p.notify_rules();
    let c = email_customer();
    let mut task = ticket("normal", "complaint", "customer_relations", Some("a1"));
    task["channel"] = json!(crate::core::groups::TASK_CHANNEL);
    let mut parent = task.clone();
    parent["channel"] = json!("email");
    for (name, details) in [
        ("ticket.queued", json!({})),
        ("ticket.assigned", json!({})),
        ("ticket.responded", json!({ "data": { "message": "已联系仓库" } })),
        ("ticket.resolved", json!({ "data": { "result": "已退款" } })),
    ] {
        let e = event(name, 3, office_hours(), task.clone(), details.clone());
        assert!(customer_purposes(&e, &p.notify).is_empty(), "{name}");
        let r = plan(&e, &inputs(&rules, &[], Some(&c), &[]));
        let to_customer = ["acknowledgement", "reply", "progress_update", "resolution", "survey"];
        assert!(
            r.deliveries.iter().all(|d| !to_customer.contains(&d.purpose.as_str())),
            "{name}: {:?}",
            r.deliveries
        );
        assert!(r.follow_up.is_none() && r.survey.is_none(), "{name}");
        // The same event of the customer's own ticket does reach them.
        let own = event(name, 3, office_hours(), parent.clone(), details);
        assert!(!customer_purposes(&own, &p.notify).is_empty(), "{name}");
    }
}
