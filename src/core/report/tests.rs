use super::render::{Format, render};
use super::*;
use crate::core::sla::SlaPolicy;
use chrono::{NaiveDate, TimeZone};
use proptest::prelude::*;

fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).unwrap()
}

fn sla() -> SlaPolicy {
    toml::from_str(
        r#"
        next_update = "24h"
        [[rules]]
        name = "normal"
        first_response = "30m"
        resolution = "24h"
        "#,
    )
    .unwrap()
}

fn period() -> Period {
    let d = |day| NaiveDate::from_ymd_opt(2026, 3, day).unwrap();
    Period::resolve(PeriodSpec::Dates { from: d(2), to: d(8) }, t(20, 0, 0), chrono_tz::UTC).unwrap()
}

fn reasons(category: &str, hits: &[(&str, &str)]) -> Vec<String> {
    let matched: Vec<String> = hits
        .iter()
        .map(|(phrase, rule)| format!("{phrase:?}(+2, rule {rule:?})"))
        .collect();
    vec![
        format!("{category} 4 wins with 4 (runner-up 0, threshold 1)"),
        format!(
            "{category} 4: matched {}, \"吗\"(+0.5, question cue)",
            matched.join(", ")
        ),
    ]
}

fn row(id: i64, category: &str, channel: &str, received: DateTime<Utc>) -> TicketRow {
    TicketRow {
        id,
        number: format!("T{id}"),
        channel: channel.into(),
        category: Some(category.into()),
        priority: Some("normal".into()),
        team: Some(format!("team_{category}")),
        state: "assigned".into(),
        received_at: received,
        ..TicketRow::default()
    }
}

fn customer(phone: Option<&str>, email: Option<&str>) -> Customer {
    Customer {
        phone: phone.map(str::to_owned),
        email: email.map(str::to_owned),
        ..Customer::default()
    }
}

/// Seven tickets whose every figure is worked out by hand in the comments.
fn input() -> ReportInput {
    let mut t1 = row(1, "fault", "chat", t(2, 10, 0));
    t1.first_responded_at = Some(t(2, 10, 10)); // 600 s, on time
    t1.resolved_at = Some(t(2, 12, 0)); // 7200 s, on time
    t1.closed_at = Some(t(2, 13, 0));
    t1.state = "closed".into();
    t1.rating = Some(5);
    t1.classifier_reasons = reasons("fault", &[("支付失败", "payment or order fails")]);

    let mut t2 = row(2, "fault", "email", t(3, 10, 0));
    t2.first_responded_at = Some(t(3, 10, 40)); // 2400 s, late (due 10:30)
    t2.pauses = vec![(t(3, 12, 0), Some(t(3, 17, 0)))]; // 5 h waiting: resolution due 24 h + 5 h
    t2.resolved_at = Some(t(4, 16, 0)); // 30 h elapsed − 5 h = 90000 s, late (due 4th 15:00)
    t2.state = "resolved".into();
    t2.rating = Some(2);
    t2.rating_reason = Some("slow".into());
    t2.classifier_reasons = reasons(
        "fault",
        &[
            ("支付失败", "payment or order fails"),
            ("付不了", "payment or order fails"),
        ],
    );

    let mut t3 = row(3, "complaint", "phone", t(4, 9, 0));
    t3.first_responded_at = Some(t(4, 9, 20)); // 1200 s, on time; resolution overdue
    t3.state = "in_progress".into();
    t3.breaches = vec![("resolution".into(), false)];
    t3.escalation_steps = vec!["resolution".into(), "resolution".into()];
    t3.classifier_reasons = reasons("complaint", &[("等了很久", "delay and waiting")]);

    let mut t4 = row(4, "complaint", "phone", t(5, 9, 0)); // never answered: both overdue
    t4.breaches = vec![("first_response".into(), true)];
    t4.escalation_steps = vec!["first_response".into()];

    let mut t5 = row(5, "inquiry", "app", t(6, 9, 0));
    t5.priority = Some("low".into());
    t5.first_responded_at = Some(t(6, 9, 5)); // 300 s
    t5.pauses = vec![(t(6, 9, 5), None)]; // waiting: resolution undecided
    t5.state = "waiting_for_customer".into();
    t5.classifier_reasons = vec![
        "no category reached 1 (best inquiry 0.5); the text reads as a question: fallback inquiry".into(),
        "inquiry 0.5: matched \"吗\"(+0.5, question cue)".into(),
    ];

    let t6 = row(6, "complaint", "email", t(7, 9, 0));
    let mut t7 = row(7, "complaint", "app", t(7, 10, 0));
    t7.team = None;

    let complaints = vec![
        ComplaintRow {
            ticket_id: 100,
            customer_key: customer_key(&customer(None, Some("a@b.com"))),
            received_at: t(1, 0, 0) - Duration::days(9), // 20 Feb: within 30 days of t6
        },
        ComplaintRow {
            ticket_id: 3,
            customer_key: customer_key(&customer(Some("13812345678"), None)),
            received_at: t(4, 9, 0),
        },
        ComplaintRow {
            ticket_id: 4,
            customer_key: customer_key(&customer(Some("+86 138-1234-5678"), Some("x@y.cn"))),
            received_at: t(5, 9, 0),
        },
        ComplaintRow {
            ticket_id: 6,
            customer_key: customer_key(&customer(None, Some("A@B.com"))),
            received_at: t(7, 9, 0),
        },
        ComplaintRow {
            ticket_id: 7,
            customer_key: None,
            received_at: t(7, 10, 0),
        },
    ];
    t1.assignee = Some("ts-1".into());
    t2.assignee = Some("ts-1".into());
    t3.assignee = Some("cr-1".into());
    ReportInput {
        period: period(),
        generated_at: t(20, 0, 0),
        policy_version: "test-1".into(),
        tickets: vec![t1, t2, t3, t4, t5, t6, t7],
        complaints,
        unsatisfied_at_or_below: 2,
        unsatisfied_reasons: vec!["slow".into(), "not_solved".into()],
        suggestions_category: "suggestion".into(),
    }
}

fn build() -> Report {
    Report::build(&input(), &sla(), &Calendars::default())
}

#[test]
fn every_figure_matches_the_hand_computation() {
    let r = build();
    assert_eq!(r.received, 7);
    let cats: Vec<(&str, u64)> = r.by_category.iter().map(|c| (c.key.as_str(), c.count)).collect();
    assert_eq!(cats, vec![("complaint", 4), ("fault", 2), ("inquiry", 1)]);
    assert_eq!(r.by_team.iter().find(|c| c.key == "(none)").map(|c| c.count), Some(1));
    assert_eq!(r.by_priority[0].key, "normal");
    assert_eq!(r.by_priority[0].count, 6);

    // First response: 300, 600, 1200, 2400.
    assert_eq!(r.first_response.count, 4);
    assert_eq!(r.first_response.mean_seconds, Some(1125.0));
    assert_eq!(r.first_response.p50_seconds, Some(600));
    assert_eq!(r.first_response.p90_seconds, Some(2400));
    // Resolution: 7200 and 90000 (five hours of waiting excluded).
    assert_eq!(r.resolution.count, 2);
    assert_eq!(r.resolution.mean_seconds, Some(48600.0));
    assert_eq!(r.resolution.p50_seconds, Some(7200));
    assert_eq!(r.resolution.p90_seconds, Some(90000));

    let fr = &r.on_time[0];
    assert_eq!(fr.target, "first_response");
    assert_eq!((fr.on_time, fr.late, fr.breached, fr.undecided), (3, 1, 3, 0));
    assert_eq!(fr.rate, Some(3.0 / 7.0));
    let res = &r.on_time[1];
    assert_eq!((res.on_time, res.late, res.breached, res.undecided), (1, 1, 4, 1));
    assert_eq!(res.rate, Some(1.0 / 6.0));

    let esc: Vec<(&str, u64, u64, u64)> = r
        .escalations
        .iter()
        .map(|e| (e.target.as_str(), e.tickets, e.steps, e.acknowledged))
        .collect();
    assert_eq!(esc, vec![("first_response", 1, 1, 1), ("resolution", 1, 2, 0)]);

    assert_eq!((r.resolution_rate.count, r.resolution_rate.of), (2, 7));
    assert_eq!(r.csat.rated, 2);
    assert_eq!(r.csat.mean, Some(3.5));
    assert_eq!(r.csat.distribution, [0, 1, 0, 0, 1]);

    let rc = &r.repeat_complaints;
    assert_eq!((rc.complaints, rc.repeats, rc.unidentified), (4, 2, 1));
    assert_eq!(rc.rate, Some(0.5));

    let top: Vec<(&str, &str, u64)> = r
        .problems
        .top
        .iter()
        .map(|p| (p.category.as_str(), p.rule.as_str(), p.tickets))
        .collect();
    assert_eq!(
        top,
        vec![
            ("fault", "payment or order fails", 2),
            ("complaint", "delay and waiting", 1)
        ]
    );
    assert_eq!(
        r.problems.top[0].phrases,
        vec![("支付失败".to_owned(), 2), ("付不了".to_owned(), 1)]
    );
    assert_eq!((r.problems.no_rule, r.problems.unclassified), (1, 3));
}

#[test]
fn no_format_shows_a_phone_number_or_an_email_address() {
    let r = build();
    for format in [Format::Table, Format::Csv, Format::Json, Format::Html] {
        let out = render(&r, format).unwrap();
        for secret in [
            "13812345678",
            "1234-5678",
            "a@b.com",
            "A@B.com",
            "x@y.cn",
            "phone:",
            "email:",
        ] {
            assert!(!out.contains(secret), "{format:?} shows {secret}");
        }
    }
}

#[test]
fn the_html_report_is_one_self_contained_page_with_charts() {
    let html = render(&build(), Format::Html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<style>"));
    // Four volume charts, on-time rates, the CSAT histogram and the problems.
    assert_eq!(html.matches("<svg").count(), 7, "{html}");
    for external in ["<script", "http://", "https://", "<link", "src=", "@import", "url("] {
        assert!(
            !html.contains(external),
            "the page refers to something outside it: {external}"
        );
    }
    assert!(html.contains("tickets received in the period"));
    assert!(html.trim_end().ends_with("</html>"));
}

#[test]
fn html_escapes_what_comes_from_the_database() {
    let mut input = input();
    input.tickets[0].team = Some("<b>&\"team\"</b>".into());
    let html = render(&Report::build(&input, &sla(), &Calendars::default()), Format::Html).unwrap();
    assert!(!html.contains("<b>&"));
    assert!(html.contains("&lt;b&gt;&amp;&quot;team&quot;&lt;/b&gt;"));
}

#[test]
fn csv_has_one_figure_per_row() {
    let out = render(&build(), Format::Csv).unwrap();
    let mut rd = ::csv::Reader::from_reader(out.as_bytes());
    let rows: Vec<::csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert!(rows.iter().all(|r| r.len() == 4));
    let get = |section: &str, item: &str, metric: &str| {
        rows.iter()
            .find(|r| &r[0] == section && &r[1] == item && &r[2] == metric)
            .map(|r| r[3].to_owned())
    };
    assert_eq!(get("volume", "received", "tickets").as_deref(), Some("7"));
    assert_eq!(get("sla_on_time", "resolution", "rate").as_deref(), Some("0.1667"));
    assert_eq!(get("csat", "5", "tickets").as_deref(), Some("1"));
    assert_eq!(
        get("problems", "fault: payment or order fails", "tickets").as_deref(),
        Some("2")
    );
}

#[test]
fn the_table_reads_well() {
    let out = render(&build(), Format::Table).unwrap();
    assert!(out.contains("Tickets received: 7"));
    assert!(out.contains("2026-03-02 to 2026-03-08"));
    assert!(out.contains("first response"));
    assert!(out.contains("Repeat complaints: 2 of 4 complaints (50.0%)"));
    assert!(out.contains("payment or order fails"));
}

#[test]
fn an_empty_period_has_no_rates_rather_than_zero_or_nan() {
    let mut input = input();
    input.tickets.clear();
    input.complaints.clear();
    let r = Report::build(&input, &sla(), &Calendars::default());
    assert_eq!(r.received, 0);
    assert_eq!(r.first_response.mean_seconds, None);
    assert_eq!(r.resolution_rate.rate, None);
    assert_eq!(r.csat.mean, None);
    assert!(r.on_time.iter().all(|o| o.rate.is_none()));
    for format in [Format::Table, Format::Csv, Format::Json, Format::Html] {
        let out = render(&r, format).unwrap();
        assert!(!out.contains("NaN"), "{format:?}");
    }
}

#[test]
fn customers_are_known_by_id_then_phone_then_email() {
    let mut c = customer(Some("+86 138 1234 5678"), Some("Zhang@Example.com"));
    assert_eq!(customer_key(&c).as_deref(), Some("phone:+8613812345678"));
    c.customer_id = Some(" C-1 ".into());
    assert_eq!(customer_key(&c).as_deref(), Some("id:C-1"));
    assert_eq!(
        customer_key(&customer(Some("  "), Some("Zhang@Example.com"))).as_deref(),
        Some("email:zhang@example.com")
    );
    assert_eq!(customer_key(&Customer::default()), None);
}

#[test]
fn a_complaint_31_days_later_is_not_a_repeat() {
    let p = period();
    let key = Some("id:C".to_owned());
    let c = |id, at| ComplaintRow {
        ticket_id: id,
        customer_key: key.clone(),
        received_at: at,
    };
    let late = t(4, 0, 0);
    let r = repeat_complaints(&[c(1, late - Duration::days(31)), c(2, late)], &p);
    assert_eq!((r.complaints, r.repeats), (1, 0));
    let r = repeat_complaints(&[c(1, late - Duration::days(30)), c(2, late)], &p);
    assert_eq!((r.complaints, r.repeats), (1, 1));
    // Two complaints in the period: only the second is a repeat.
    let r = repeat_complaints(&[c(2, t(5, 0, 0)), c(1, t(4, 0, 0))], &p);
    assert_eq!((r.complaints, r.repeats), (2, 1));
}

#[test]
fn percentiles_use_the_nearest_rank() {
    let v: Vec<i64> = (1..=10).collect();
    assert_eq!(percentile(&v, 50), Some(5));
    assert_eq!(percentile(&v, 90), Some(9));
    assert_eq!(percentile(&[7], 90), Some(7));
    assert_eq!(percentile(&[], 50), None);
    assert_eq!(percentile(&[1, 2], 50), Some(1));
    assert_eq!(percentile(&[1, 2, 3], 90), Some(3));
}

#[test]
fn overlapping_and_open_pauses_count_once() {
    let pauses = vec![
        (t(2, 11, 0), Some(t(2, 13, 0))),
        (t(2, 12, 0), Some(t(2, 14, 0))),
        (t(2, 8, 0), Some(t(2, 10, 30))), // starts before the ticket
        (t(2, 15, 0), None),              // still open at the end
    ];
    // 10:00 → 16:00 is 6 h; paused 10:00–10:30, 11:00–14:00, 15:00–16:00 = 4.5 h.
    assert_eq!(resolution_seconds(t(2, 10, 0), t(2, 16, 0), &pauses), 5400);
    assert_eq!(resolution_seconds(t(2, 10, 0), t(2, 9, 0), &[]), 0);
}

#[test]
fn the_shipped_classifier_reasons_parse_into_rules() {
    let policy = crate::core::policy::Policy::load(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/policy.toml"),
    )
    .unwrap();
    let rules: Vec<String> = policy.doc.classification.rules.iter().map(|r| r.name.clone()).collect();
    for text in [
        "支付失败了好几次，付不了款",
        "客服态度太差了，等了三天没人理",
        "I cannot log in to my account",
        "建议增加夜间模式",
    ] {
        let c = policy.classifier.classify(None, text);
        let hits = problems::rule_hits(&c.reasons, &c.category);
        assert!(!hits.is_empty(), "{text}: {:?}", c.reasons);
        for (rule, phrase) in hits {
            assert!(rules.contains(&rule), "{rule:?} is not a rule of the policy");
            assert!(!phrase.is_empty());
        }
    }
}

proptest! {
    #[test]
    fn percentiles_lie_between_the_extremes_and_in_order(mut v in prop::collection::vec(0i64..1_000_000, 1..200)) {
        let s = stats(v.clone());
        v.sort_unstable();
        let (min, max) = (v[0], v[v.len() - 1]);
        let (p50, p90, mean) = (s.p50_seconds.unwrap(), s.p90_seconds.unwrap(), s.mean_seconds.unwrap());
        prop_assert!(min <= p50 && p50 <= p90 && p90 <= max);
        prop_assert!(min as f64 <= mean + 1e-6 && mean <= max as f64 + 1e-6);
        prop_assert!(v.contains(&p50) && v.contains(&p90));
        // At least half (nine tenths) of the values are at or below p50 (p90).
        prop_assert!(v.iter().filter(|&&x| x <= p50).count() * 100 >= v.len() * 50);
        prop_assert!(v.iter().filter(|&&x| x <= p90).count() * 100 >= v.len() * 90);
    }

    #[test]
    fn paused_time_never_makes_resolution_negative_or_longer(
        len in 0i64..100_000,
        pauses in prop::collection::vec((-50_000i64..150_000, 0i64..50_000, any::<bool>()), 0..6),
    ) {
        let start = t(2, 0, 0);
        let end = start + Duration::seconds(len);
        let ps: Vec<_> = pauses
            .iter()
            .map(|&(from, l, open)| {
                let f = start + Duration::seconds(from);
                (f, (!open).then(|| f + Duration::seconds(l)))
            })
            .collect();
        let with = resolution_seconds(start, end, &ps);
        prop_assert!(with >= 0 && with <= len);
        prop_assert_eq!(resolution_seconds(start, end, &[]), len);
        // One pause more never adds time.
        let mut more = ps.clone();
        more.push((start + Duration::seconds(len / 3), Some(start + Duration::seconds(len / 2))));
        prop_assert!(resolution_seconds(start, end, &more) <= with);
    }

    #[test]
    fn volumes_and_ratings_add_up(
        cats in prop::collection::vec(0usize..4, 0..60),
        ratings in prop::collection::vec(prop::option::of(1i16..=5), 0..60),
    ) {
        let names = ["inquiry", "fault", "complaint", "suggestion"];
        let mut input = input();
        input.tickets = cats
            .iter()
            .zip(ratings.iter().chain(std::iter::repeat(&None)))
            .enumerate()
            .map(|(i, (&c, &r))| {
                let mut row = row(i as i64, names[c], "chat", t(3, 0, 0));
                row.rating = r;
                row
            })
            .collect();
        let r = Report::build(&input, &sla(), &Calendars::default());
        for v in [&r.by_category, &r.by_channel, &r.by_priority, &r.by_team] {
            prop_assert_eq!(v.iter().map(|c| c.count).sum::<u64>(), r.received);
        }
        prop_assert_eq!(r.csat.distribution.iter().sum::<u64>(), r.csat.rated);
        if let Some(m) = r.csat.mean {
            prop_assert!((1.0..=5.0).contains(&m));
        }
        for o in &r.on_time {
            prop_assert_eq!(o.on_time + o.late + o.breached + o.undecided, r.received);
        }
        let b = &r.breakdowns;
        for v in [&b.by_category, &b.by_priority, &b.by_team, &b.by_agent] {
            prop_assert_eq!(v.iter().map(|x| x.tickets).sum::<u64>(), r.received);
            prop_assert_eq!(v.iter().map(|x| x.rated).sum::<u64>(), r.csat.rated);
        }
        let low = ratings.iter().take(cats.len()).filter(|x| x.is_some_and(|x| x <= 2)).count() as u64;
        prop_assert_eq!(r.unsatisfied.tickets, low);
        prop_assert_eq!(r.unsatisfied.reasons.iter().map(|c| c.count).sum::<u64>(), low);
        prop_assert!(r.review.len() as u64 <= r.received);
        prop_assert_eq!(r.suggestions.tickets, cats.iter().filter(|&&c| c == 3).count() as u64);
    }
}

#[test]
fn a_pattern_counts_for_its_rule_but_is_not_quoted() {
    let mut input = input();
    input.tickets[0].classifier_reasons = vec![
        r#"fault 3: matched "(付|支付)(不了|失败)"(+2, rule "payment or order fails"), "卡"(+1, rule "crash")"#
            .to_owned(),
    ];
    let r = Report::build(&input, &sla(), &Calendars::default());
    let pay = r
        .problems
        .top
        .iter()
        .find(|p| p.rule == "payment or order fails")
        .unwrap();
    assert_eq!(pay.tickets, 2);
    assert_eq!(pay.phrases, vec![("付不了".to_owned(), 1), ("支付失败".to_owned(), 1)]);
    assert!(
        r.problems
            .top
            .iter()
            .any(|p| p.rule == "crash" && p.phrases == vec![("卡".to_owned(), 1)])
    );
}

#[test]
fn breakdowns_give_tickets_handling_time_on_time_rates_and_csat_per_group() {
    let r = build();
    let b = &r.breakdowns;
    let keys = |v: &[review::Breakdown]| v.iter().map(|x| (x.key.clone(), x.tickets)).collect::<Vec<_>>();
    assert_eq!(
        keys(&b.by_category),
        vec![("complaint".into(), 4), ("fault".into(), 2), ("inquiry".into(), 1)]
    );
    assert_eq!(keys(&b.by_priority), vec![("normal".into(), 6), ("low".into(), 1)]);
    assert_eq!(
        keys(&b.by_team),
        vec![
            ("team_complaint".into(), 3),
            ("team_fault".into(), 2),
            ("(none)".into(), 1),
            ("team_inquiry".into(), 1)
        ]
    );
    assert_eq!(
        keys(&b.by_agent),
        vec![("(none)".into(), 4), ("ts-1".into(), 2), ("cr-1".into(), 1)]
    );
    let complaint = &b.by_category[0];
    // t3 answered on time; t4, t6, t7 never answered; none resolved, all four overdue.
    assert_eq!(
        (
            complaint.first_response_on_time.count,
            complaint.first_response_on_time.of
        ),
        (1, 4)
    );
    assert_eq!(complaint.resolution_on_time.rate, Some(0.0));
    assert_eq!((complaint.resolved, complaint.mean_resolution_seconds), (0, None));
    assert_eq!((complaint.rated, complaint.csat_mean), (0, None));
    let fault = &b.by_category[1];
    assert_eq!(fault.resolved, 2);
    assert_eq!(fault.mean_resolution_seconds, Some(48600.0));
    assert_eq!(fault.first_response_on_time.rate, Some(0.5));
    assert_eq!(fault.resolution_on_time.rate, Some(0.5));
    assert_eq!((fault.rated, fault.csat_mean), (2, Some(3.5)));
    let inquiry = &b.by_category[2];
    // Waiting for the customer: the resolution target is undecided, so no rate at all.
    assert_eq!(inquiry.resolution_on_time.rate, None);
    assert_eq!(inquiry.first_response_on_time.rate, Some(1.0));
    let ts1 = b.by_agent.iter().find(|x| x.key == "ts-1").unwrap();
    assert_eq!((ts1.resolved, ts1.csat_mean), (2, Some(3.5)));
    // Every breakdown covers every ticket once.
    for set in [&b.by_category, &b.by_priority, &b.by_team, &b.by_agent] {
        assert_eq!(set.iter().map(|x| x.tickets).sum::<u64>(), r.received);
    }
}

#[test]
fn the_review_lists_late_unresolved_and_unsatisfied_tickets_with_their_reasons() {
    use review::ReviewReason::*;
    let r = build();
    let ids: Vec<i64> = r.review.iter().map(|i| i.id).collect();
    assert_eq!(ids, vec![2, 3, 4, 5, 6, 7], "t1 was on time, closed and rated 5");
    let t2 = &r.review[0];
    assert_eq!(t2.number, "T2");
    assert_eq!(
        t2.reasons,
        vec![
            Late {
                target: "first_response".into(),
                due: t(3, 10, 30),
                met_at: Some(t(3, 10, 40)),
                late_seconds: 600
            },
            Late {
                target: "resolution".into(),
                due: t(4, 15, 0),
                met_at: Some(t(4, 16, 0)),
                late_seconds: 3600
            },
            Unsatisfied {
                rating: 2,
                reason: Some("slow".into())
            },
        ]
    );
    let t3 = &r.review[1];
    // The customer has not been updated either: the next-update target is late too.
    let late: Vec<&str> = t3
        .reasons
        .iter()
        .filter_map(|x| match x {
            Late {
                target, met_at: None, ..
            } => Some(target.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(late, vec!["resolution", "next_update"]);
    let t3_reasons: Vec<_> = t3
        .reasons
        .iter()
        .filter(|x| !matches!(x, Late { target, .. } if target == "next_update"))
        .cloned()
        .collect();
    assert_eq!(
        t3_reasons,
        vec![
            Late {
                target: "resolution".into(),
                due: t(5, 9, 0),
                met_at: None,
                late_seconds: (t(20, 0, 0) - t(5, 9, 0)).num_seconds()
            },
            Unresolved {
                state: "in_progress".into(),
                open_seconds: (t(20, 0, 0) - t(4, 9, 0)).num_seconds()
            },
        ]
    );
    assert_eq!(t3.assignee.as_deref(), Some("cr-1"));
    // Waiting for the customer: not late, but not resolved either.
    assert_eq!(
        r.review[3].reasons,
        vec![Unresolved {
            state: "waiting_for_customer".into(),
            open_seconds: (t(20, 0, 0) - t(6, 9, 0)).num_seconds()
        }]
    );
    // A threshold of 1 no longer counts t2's 2 as unsatisfied.
    let mut strict = input();
    strict.unsatisfied_at_or_below = 1;
    let r = Report::build(&strict, &sla(), &Calendars::default());
    assert!(!r.review[0].reasons.iter().any(|x| matches!(x, Unsatisfied { .. })));
}

#[test]
fn unsatisfied_reasons_are_counted_by_the_policy_taxonomy() {
    let mut input = input();
    input.tickets[0].rating = Some(1); // no reason given
    input.tickets[4].rating = Some(2);
    input.tickets[4].rating_reason = Some("gone_from_policy".into());
    input.tickets[5].rating = Some(4);
    input.tickets[5].rating_reason = Some("not_solved".into()); // satisfied: not counted
    let r = Report::build(&input, &sla(), &Calendars::default());
    let counts: Vec<(&str, u64)> = r
        .unsatisfied
        .reasons
        .iter()
        .map(|c| (c.reason.as_str(), c.count))
        .collect();
    assert_eq!(
        counts,
        vec![("slow", 1), ("not_solved", 0), ("gone_from_policy", 1), ("(none)", 1)]
    );
    assert_eq!((r.unsatisfied.tickets, r.unsatisfied.at_or_below), (3, 2));
}

#[test]
fn suggestions_are_rolled_up_by_problem_without_the_customers_words() {
    let mut input = input();
    for (i, phrase) in [(4usize, "建议增加"), (5, "建议增加"), (6, "希望能")] {
        let t = &mut input.tickets[i];
        t.category = Some("suggestion".into());
        t.classifier_reasons = reasons("suggestion", &[(phrase, "product improvement")]);
    }
    input.tickets[6].classifier_reasons = reasons("suggestion", &[("流程", "service process")]);
    input.tickets[6].state = "closed".into();
    let r = Report::build(&input, &sla(), &Calendars::default());
    let s = &r.suggestions;
    assert_eq!((s.category.as_str(), s.tickets, s.resolved), ("suggestion", 3, 1));
    let groups: Vec<(&str, u64)> = s.by_problem.top.iter().map(|p| (p.rule.as_str(), p.tickets)).collect();
    assert_eq!(groups, vec![("product improvement", 2), ("service process", 1)]);
    assert_eq!(s.by_problem.top[0].phrases, vec![("建议增加".to_owned(), 2)]);
    let csv = render(&r, Format::Csv).unwrap();
    assert!(csv.contains("suggestions,product improvement,tickets,2"), "{csv}");
}

// The tests below load the shipped policy (the layout test reads no further than this line).
#[cfg(test)]
mod with_the_shipped_policy {
    use super::*;

    fn policy() -> crate::core::policy::Policy {
        crate::core::policy::Policy::load(
            &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/policy.toml"),
        )
        .unwrap()
    }

    fn zh() -> labels::Labels {
        labels::Labels::from_policy(&policy(), labels::Lang::Zh)
    }

    #[test]
    fn lang_zh_labels_every_format_from_the_policy() {
        use super::render::render_in;
        let mut input = input();
        for t in &mut input.tickets {
            t.team = t.team.as_ref().map(|_| "technical_support".into());
        }
        let r = Report::build(&input, &sla(), &Calendars::default());
        let l = zh();
        let table = render_in(&r, Format::Table, &l).unwrap();
        for zh in [
            "客户服务报告",
            "故障类",
            "投诉类",
            "普通",
            "技术支持",
            "首次响应",
            "问题复盘",
            "不满意原因",
            "响应或处理太慢",
            "建议汇总",
            "电话",
        ] {
            assert!(table.contains(zh), "table lacks {zh}:\n{table}");
        }
        assert!(
            !table.contains("Technical support"),
            "a team's English name in zh:\n{table}"
        );
        assert!(!table.contains(" complaint "), "{table}");
        let csv = render_in(&r, Format::Csv, &l).unwrap();
        assert!(csv.contains("by_category,故障类,tickets,2"), "{csv}");
        assert!(csv.contains("breakdown_category,投诉类,tickets,4"), "{csv}");
        let html = render_in(&r, Format::Html, &l).unwrap();
        assert!(html.contains("lang=\"zh-Hans\"") && html.contains("问题复盘") && html.contains("故障类"));
        let json: serde_json::Value = serde_json::from_str(&render_in(&r, Format::Json, &l).unwrap()).unwrap();
        assert_eq!(json["by_category"][1]["key"], "fault", "JSON keeps the ids");
        assert_eq!(json["labels"]["categories"]["fault"], "故障类");
        // English: ids as they were, reasons by their English part.
        let en = labels::Labels::from_policy(&policy(), labels::Lang::En);
        let table = render_in(&r, Format::Table, &en).unwrap();
        assert!(
            table.contains("Slow response or handling") && table.contains("fault"),
            "{table}"
        );
        assert!(!table.contains("故障类"));
    }

    #[test]
    fn the_daily_roll_up_is_due_from_its_local_time_and_planned_once_per_person_and_day() {
        use chrono_tz::Asia::Shanghai;
        let at = chrono::NaiveTime::from_hms_opt(16, 30, 0).unwrap();
        // 16:29 in Shanghai is 08:29 UTC.
        let utc = |h, m| Utc.with_ymd_and_hms(2026, 12, 4, h, m, 0).unwrap();
        assert_eq!(daily::due_day(utc(8, 29), Shanghai, at), None);
        let day = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        assert_eq!(daily::due_day(utc(8, 30), Shanghai, at), Some(day));
        assert_eq!(daily::due_day(utc(15, 59), Shanghai, at), Some(day));
        // 00:10 on the 5th in Shanghai: the 5th's roll-up is not due yet.
        assert_eq!(daily::due_day(utc(16, 10), Shanghai, at), None);

        let policy = policy();
        let cfg = policy.doc.reports.daily.clone().unwrap();
        let (subject, text) = daily::message(&build(), &zh());
        assert!(subject.starts_with("服务日报"), "{subject}");
        assert!(text.contains("受理工单数: 7") && text.contains("T2"), "{text}");
        let planned = daily::plan(day, &cfg.notify, &policy.doc.notify, &subject, &text, Some("sb.test"));
        let to: Vec<(&str, &str)> = planned.iter().map(|p| (p.key.as_str(), p.target.as_str())).collect();
        assert_eq!(
            to,
            vec![("daily_report:2026-12-04:quality_lead:email", "quality@example.com")]
        );
        assert_eq!(planned[0].payload["subject"], subject.as_str());
        // Without a mail domain (no smtp_from) email cannot be sent, as for staff notifications.
        assert!(daily::plan(day, &cfg.notify, &policy.doc.notify, &subject, &text, None).is_empty());
    }
}
