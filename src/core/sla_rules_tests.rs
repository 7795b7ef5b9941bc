//! Rule matching by category, priority and channel, and the clocks each target names, on the
//! shipped policy (config/policy.toml with its calendars and public holidays).

use super::*;
use crate::core::policy::Policy;
use std::sync::OnceLock;

fn shipped() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        Policy::load_rules(&std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/policy.toml")).unwrap()
    })
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn due(category: &str, priority: &str, channel: &str, start: &str) -> SlaDue {
    let p = shipped();
    p.doc
        .sla
        .due(p.calendar(), category, priority, channel, at(start))
        .unwrap()
}

#[test]
fn friday_evening_plus_one_working_day_is_monday_same_time() {
    // 2026-03-06 is a Friday; low priority: 1 working day to contact, 3 to resolve.
    let d = due("inquiry", "low", "phone", "2026-03-06T20:00:00+08:00");
    assert_eq!(d.rule, "low");
    assert_eq!(
        d.first_response_due,
        at("2026-03-09T20:00:00+08:00"),
        "Monday, not Saturday"
    );
    assert_eq!(d.resolution_due, at("2026-03-11T20:00:00+08:00"));
    // After the last window of Friday the clock starts Monday morning.
    let d = due("inquiry", "low", "phone", "2026-03-06T23:00:00+08:00");
    assert_eq!(d.first_response_due, at("2026-03-10T08:00:00+08:00"));
    // A Saturday ticket: counting starts Monday 08:00, one working day later is Tuesday 08:00.
    let d = due("inquiry", "low", "app", "2026-03-07T10:00:00+08:00");
    assert_eq!(d.first_response_due, at("2026-03-10T08:00:00+08:00"));
}

#[test]
fn a_make_up_saturday_is_a_working_day() {
    // 2026-02-28 (Saturday) is a make-up workday for the Spring Festival.
    let d = due("inquiry", "low", "phone", "2026-02-27T20:00:00+08:00");
    assert_eq!(d.first_response_due, at("2026-02-28T20:00:00+08:00"));
    // An ordinary Saturday is not: 2026-03-07.
    let d = due("inquiry", "low", "phone", "2026-03-06T10:00:00+08:00");
    assert_eq!(d.first_response_due, at("2026-03-09T10:00:00+08:00"));
}

#[test]
fn spring_festival_is_skipped_by_working_days_but_staffed_by_service_hours() {
    // Friday 2026-02-13: the next working day is the make-up Saturday 02-14, then the
    // festival (02-15..02-23) is closed: three working days end on Wednesday 02-25.
    let d = due("inquiry", "low", "phone", "2026-02-13T20:00:00+08:00");
    assert_eq!(d.first_response_due, at("2026-02-14T20:00:00+08:00"));
    assert_eq!(d.resolution_due, at("2026-02-25T20:00:00+08:00"));
    // Received during the festival: counting starts on Tuesday 02-24 at 08:00.
    let d = due("inquiry", "low", "phone", "2026-02-17T10:00:00+08:00");
    assert_eq!(d.first_response_due, at("2026-02-25T08:00:00+08:00"));
    // The service hours stay open: a normal ticket is due 30 minutes later.
    let d = due("inquiry", "normal", "phone", "2026-02-17T10:00:00+08:00");
    assert_eq!(d.first_response_due, at("2026-02-17T10:30:00+08:00"));
    assert!(shipped().calendar().is_open(at("2026-02-17T10:00:00+08:00")));
}

#[test]
fn suggestions_are_answered_within_fifteen_working_days() {
    let d = due("suggestion", "normal", "app", "2026-03-02T10:00:00+08:00");
    assert_eq!(d.rule, "suggestion-normal");
    assert_eq!(d.first_response_due, at("2026-03-03T10:00:00+08:00"));
    assert_eq!(d.resolution_due, at("2026-03-23T10:00:00+08:00"));
    // Through National Day (10-01..10-07, make-up 10-10): 15 working days from Sep 28.
    let d = due("suggestion", "low", "phone", "2026-09-28T10:00:00+08:00");
    assert_eq!(d.rule, "suggestion-low");
    // 09-29, 09-30, 10-08, 10-09, 10-10 (Sat, make-up), 10-12..16, 10-19..23 = 15.
    assert_eq!(d.resolution_due, at("2026-10-23T10:00:00+08:00"));
}

#[test]
fn email_is_answered_within_24_hours() {
    let d = due("inquiry", "normal", "email", "2026-03-06T20:00:00+08:00");
    assert_eq!(d.rule, "email-normal");
    assert_eq!(d.first_response_due, at("2026-03-07T20:00:00+08:00"));
    // The same ticket by phone keeps the 30 minutes.
    assert_eq!(
        due("inquiry", "normal", "phone", "2026-03-06T20:00:00+08:00").rule,
        "normal"
    );
    // An urgent email keeps the urgent targets, a complaint its own.
    assert_eq!(
        due("fault", "urgent", "email", "2026-03-06T20:00:00+08:00").rule,
        "urgent"
    );
    assert_eq!(
        due("complaint", "normal", "email", "2026-03-06T20:00:00+08:00").rule,
        "complaint-normal-email"
    );
}

#[test]
fn chat_gets_its_first_reply_within_10_seconds() {
    for (category, priority, rule) in [
        ("inquiry", "normal", "chat-normal"),
        ("fault", "urgent", "chat-urgent"),
        ("inquiry", "low", "chat-low"),
        ("complaint", "normal", "complaint-normal-chat"),
        ("suggestion", "low", "suggestion-low-chat"),
    ] {
        let d = due(category, priority, "chat", "2026-03-06T20:00:00+08:00");
        assert_eq!(d.rule, rule);
        assert_eq!(d.first_response_due, at("2026-03-06T20:00:10+08:00"), "{rule}");
    }
    // A chat's low-priority resolution still counts working days.
    assert_eq!(
        due("inquiry", "low", "chat", "2026-03-06T20:00:00+08:00").resolution_due,
        at("2026-03-11T20:00:00+08:00")
    );
}

#[test]
fn the_clocks_follow_the_channel_too() {
    let p = shipped();
    let facts = SlaFacts {
        received_at: at("2026-03-06T20:00:00+08:00"),
        category: "inquiry".into(),
        priority: "normal".into(),
        channel: "chat".into(),
        ..Default::default()
    };
    let clocks = p.doc.sla.clocks(p.calendar(), &facts, at("2026-03-06T20:00:30+08:00"));
    assert_eq!(clocks[0].state, ClockState::Breached);
    assert_eq!(clocks[0].due, Some(at("2026-03-06T20:00:10+08:00")));
}

fn table(rules: &str) -> SlaPolicy {
    toml::from_str(rules).unwrap()
}

fn values() -> [Vec<String>; 3] {
    let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    [
        v(&["inquiry", "complaint"]),
        v(&["urgent", "normal", "low"]),
        v(&["phone", "email"]),
    ]
}

fn validate(p: &SlaPolicy) -> Result<(), String> {
    let v = values();
    p.validate_rules([&v[0], &v[1], &v[2]])
}

const R: &str = "first_response = \"1h\"\nresolution = \"2h\"\n";

#[test]
fn two_rules_as_specific_that_overlap_are_refused_naming_both_and_the_fix() {
    let p = table(&format!(
        "[[rules]]\nname = \"complaints\"\ncategory = \"complaint\"\n{R}[[rules]]\nname = \"emails\"\nchannel = \"email\"\n{R}[[rules]]\nname = \"all\"\n{R}"
    ));
    let e = validate(&p).unwrap_err();
    assert!(e.contains("\"complaints\"") && e.contains("\"emails\""), "{e}");
    assert!(
        e.contains("add a rule for category = \"complaint\", channel = \"email\""),
        "{e}"
    );
    // The rule the message asks for settles it.
    let fixed = table(&format!(
        "[[rules]]\nname = \"complaints\"\ncategory = \"complaint\"\n{R}[[rules]]\nname = \"emails\"\nchannel = \"email\"\n{R}[[rules]]\nname = \"all\"\n{R}[[rules]]\nname = \"complaint-emails\"\ncategory = \"complaint\"\nchannel = \"email\"\n{R}"
    ));
    assert_eq!(validate(&fixed), Ok(()));
    assert_eq!(
        fixed.rule_for("complaint", "low", "email").unwrap().name,
        "complaint-emails"
    );
    assert_eq!(fixed.rule_for("complaint", "low", "phone").unwrap().name, "complaints");
    assert_eq!(fixed.rule_for("inquiry", "low", "email").unwrap().name, "emails");
    assert_eq!(fixed.rule_for("inquiry", "low", "phone").unwrap().name, "all");
    // Two identical rules overlap everywhere.
    let twice = table(&format!("[[rules]]\nname = \"a\"\n{R}[[rules]]\nname = \"b\"\n{R}"));
    assert!(validate(&twice).unwrap_err().contains("\"a\" and \"b\""));
}

#[test]
fn a_rule_that_can_never_apply_is_refused() {
    let p = table(&format!(
        "[[rules]]\nname = \"complaints\"\ncategory = \"complaint\"\n{R}\
         [[rules]]\nname = \"c-urgent\"\ncategory = \"complaint\"\npriority = \"urgent\"\n{R}\
         [[rules]]\nname = \"c-normal\"\ncategory = \"complaint\"\npriority = \"normal\"\n{R}\
         [[rules]]\nname = \"c-low\"\ncategory = \"complaint\"\npriority = \"low\"\n{R}\
         [[rules]]\nname = \"all\"\n{R}"
    ));
    let e = validate(&p).unwrap_err();
    assert!(e.contains("\"complaints\" can never apply"), "{e}");
}

#[test]
fn the_shipped_table_is_valid_and_its_order_does_not_matter() {
    let p = shipped();
    let v = [
        p.doc.classification.category_ids(),
        p.doc.priority.levels.clone(),
        p.doc.channels.clone(),
    ];
    assert_eq!(p.doc.sla.validate_rules([&v[0], &v[1], &v[2]]), Ok(()));
    let mut reversed = p.doc.sla.clone();
    reversed.rules.reverse();
    for c in &v[0] {
        for pr in &v[1] {
            for ch in &v[2] {
                assert_eq!(
                    p.doc.sla.rule_for(c, pr, ch).map(|r| &r.name),
                    reversed.rule_for(c, pr, ch).map(|r| &r.name),
                    "{c} {pr} {ch}"
                );
            }
        }
    }
}

#[test]
fn a_clock_may_name_a_calendar_and_an_unknown_one_is_refused_at_load() {
    let rule: SlaRule = toml::from_str(&format!("name = \"x\"\nfirst_response_clock = \"working_days\"\n{R}")).unwrap();
    assert_eq!(rule.first_response_clock.to_string(), "working_days");
    assert!(toml::from_str::<SlaRule>(&format!("name = \"x\"\nresolution_clock = \"Working Days\"\n{R}")).is_err());
}

proptest::proptest! {
    /// With the shipped table, whatever the order of its rules, each ticket gets the rule with
    /// the most conditions among those that match.
    #[test]
    fn the_most_specific_matching_rule_wins(seed in 0u64..1000, c in 0usize..5, pr in 0usize..3, ch in 0usize..4) {
        let p = shipped();
        let mut rules = p.doc.sla.clone();
        // A cheap deterministic shuffle.
        let n = rules.rules.len();
        for i in 0..n {
            let j = ((seed as usize).wrapping_mul(31).wrapping_add(i * 17)) % n;
            rules.rules.swap(i, j);
        }
        let (cats, levels) = (p.doc.classification.category_ids(), &p.doc.priority.levels);
        let (c, pr, ch) = (&cats[c], &levels[pr], &p.doc.channels[ch]);
        let chosen = rules.rule_for(c, pr, ch).unwrap();
        let best = rules.rules.iter().filter(|r| r.matches(c, pr, ch)).map(SlaRule::specificity).max().unwrap();
        proptest::prop_assert_eq!(chosen.specificity(), best);
        proptest::prop_assert_eq!(&chosen.name, &p.doc.sla.rule_for(c, pr, ch).unwrap().name);
    }
}
