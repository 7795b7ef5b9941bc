//! Assignment choice (SPEC §4): which team takes a ticket and which agent in it.
//!
//! Pure: the assign stage loads the team's agents (locked), asks `choose_agent`, and writes the
//! result. Keeping the choice here lets the rule be property-tested without a database.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Online,
    Away,
    Offline,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Online => "online",
            Presence::Away => "away",
            Presence::Offline => "offline",
        }
    }
    pub fn parse(s: &str) -> Option<Presence> {
        match s {
            "online" => Some(Presence::Online),
            "away" => Some(Presence::Away),
            "offline" => Some(Presence::Offline),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub team: String,
    /// Language codes (`zh`, `en`); empty means any.
    pub languages: Vec<String>,
    /// Channels the agent works; empty means all.
    pub channels: Vec<String>,
    /// Free skill tags (product lines, `complaints`, …).
    pub skills: Vec<String>,
    pub presence: Presence,
    pub max_open: i32,
    pub open_tickets: i32,
    /// When the agent last became free of new work (last assignment, or coming online).
    pub idle_since: DateTime<Utc>,
}

/// What a ticket needs from its agent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Need {
    pub language: String,
    pub channel: String,
    pub skills: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    NotOnline,
    AtCapacity,
    Language,
    Channel,
    Skill(String),
}

/// Why `agent` cannot take a ticket with `need`, if it cannot.
pub fn unfit(agent: &Agent, need: &Need) -> Option<Unfit> {
    if agent.presence != Presence::Online {
        return Some(Unfit::NotOnline);
    }
    if agent.open_tickets >= agent.max_open {
        return Some(Unfit::AtCapacity);
    }
    if !need.language.is_empty() && !agent.languages.is_empty() && !agent.languages.iter().any(|l| l == &need.language)
    {
        return Some(Unfit::Language);
    }
    if !need.channel.is_empty() && !agent.channels.is_empty() && !agent.channels.iter().any(|c| c == &need.channel) {
        return Some(Unfit::Channel);
    }
    need.skills
        .iter()
        .find(|s| !agent.skills.contains(s))
        .map(|s| Unfit::Skill(s.clone()))
}

/// The least-loaded qualified agent; ties go to the one idle longest, then to the lower id so
/// that the choice is deterministic.
pub fn choose_agent<'a>(agents: &'a [Agent], need: &Need) -> Option<&'a Agent> {
    agents.iter().filter(|a| unfit(a, need).is_none()).min_by(|a, b| {
        a.open_tickets
            .cmp(&b.open_tickets)
            .then(a.idle_since.cmp(&b.idle_since))
            .then(a.id.cmp(&b.id))
    })
}

/// Routing rule from the policy: the first rule whose conditions all hold picks the team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    /// `true`: only tickets the classifier was unsure of (below the policy's
    /// `triage_threshold`), until a person decides their category; `false`: only the others.
    #[serde(default)]
    pub needs_triage: Option<bool>,
    pub team: String,
    /// Skills an agent must have for tickets this rule routes.
    #[serde(default)]
    pub skills: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingPolicy {
    pub default_team: String,
    #[serde(default)]
    pub rules: Vec<RoutingRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamChoice {
    pub team: String,
    pub skills: Vec<String>,
    pub reason: String,
}

/// The team for a ticket of `category`, `priority` and `channel`, flagged `needs_triage` or not.
pub fn choose_team(
    policy: &RoutingPolicy,
    category: &str,
    priority: &str,
    channel: &str,
    needs_triage: bool,
) -> TeamChoice {
    let matches = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    for (i, rule) in policy.rules.iter().enumerate() {
        if matches(&rule.category, category)
            && matches(&rule.priority, priority)
            && matches(&rule.channel, channel)
            && rule.needs_triage.is_none_or(|w| w == needs_triage)
        {
            let mut why = Vec::new();
            if let Some(n) = rule.needs_triage {
                why.push(format!("needs_triage={n}"));
            }
            if let Some(c) = &rule.category {
                why.push(format!("category={c}"));
            }
            if let Some(p) = &rule.priority {
                why.push(format!("priority={p}"));
            }
            if let Some(c) = &rule.channel {
                why.push(format!("channel={c}"));
            }
            return TeamChoice {
                team: rule.team.clone(),
                skills: rule.skills.clone(),
                reason: format!("routing rule #{} ({}) → {}", i + 1, why.join(", "), rule.team),
            };
        }
    }
    TeamChoice {
        team: policy.default_team.clone(),
        skills: Vec::new(),
        reason: format!("no routing rule matched → default team {}", policy.default_team),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn agent(id: &str, open: i32, max: i32, idle_min: i64) -> Agent {
        Agent {
            id: id.into(),
            name: id.into(),
            team: "t".into(),
            languages: vec!["zh".into()],
            channels: vec![],
            skills: vec![],
            presence: Presence::Online,
            max_open: max,
            open_tickets: open,
            idle_since: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::minutes(idle_min),
        }
    }

    #[test]
    fn least_loaded_then_longest_idle() {
        let agents = vec![agent("a", 3, 5, 0), agent("b", 1, 5, 10), agent("c", 1, 5, 5)];
        let need = Need {
            language: "zh".into(),
            ..Default::default()
        };
        assert_eq!(choose_agent(&agents, &need).unwrap().id, "c");
    }

    #[test]
    fn full_offline_and_unskilled_agents_are_skipped() {
        let mut offline = agent("off", 0, 5, 0);
        offline.presence = Presence::Offline;
        let full = agent("full", 5, 5, 0);
        let mut english = agent("en", 0, 5, 0);
        english.languages = vec!["en".into()];
        let agents = vec![offline, full, english];
        let need = Need {
            language: "zh".into(),
            ..Default::default()
        };
        assert!(choose_agent(&agents, &need).is_none());
        assert_eq!(unfit(&agents[1], &need), Some(Unfit::AtCapacity));
    }

    #[test]
    fn first_matching_rule_wins() {
        let policy = RoutingPolicy {
            default_team: "front".into(),
            rules: vec![
                RoutingRule {
                    category: None,
                    priority: Some("urgent".into()),
                    channel: None,
                    needs_triage: None,
                    team: "green".into(),
                    skills: vec![],
                },
                RoutingRule {
                    category: Some("fault".into()),
                    priority: None,
                    channel: None,
                    needs_triage: None,
                    team: "tech".into(),
                    skills: vec![],
                },
            ],
        };
        assert_eq!(choose_team(&policy, "fault", "urgent", "chat", false).team, "green");
        assert_eq!(choose_team(&policy, "fault", "normal", "chat", false).team, "tech");
        assert_eq!(choose_team(&policy, "inquiry", "low", "chat", false).team, "front");
    }

    fn rule(priority: Option<&str>, category: Option<&str>, needs_triage: Option<bool>, team: &str) -> RoutingRule {
        RoutingRule {
            category: category.map(str::to_owned),
            priority: priority.map(str::to_owned),
            channel: None,
            needs_triage,
            team: team.into(),
            skills: vec![],
        }
    }

    #[test]
    fn an_unsure_ticket_goes_to_triage_after_the_urgent_rule_and_a_decided_one_by_its_category() {
        let policy = RoutingPolicy {
            default_team: "front".into(),
            rules: vec![
                rule(Some("urgent"), None, None, "green"),
                rule(None, None, Some(true), "triage"),
                rule(None, Some("fault"), None, "tech"),
            ],
        };
        // Urgent never waits for triage.
        assert_eq!(choose_team(&policy, "fault", "urgent", "chat", true).team, "green");
        let unsure = choose_team(&policy, "fault", "normal", "chat", true);
        assert_eq!(unsure.team, "triage");
        assert!(unsure.reason.contains("needs_triage=true"), "{}", unsure.reason);
        assert_eq!(choose_team(&policy, "inquiry", "low", "app", true).team, "triage");
        // Once decided (or never unsure) the category's rule applies.
        assert_eq!(choose_team(&policy, "fault", "normal", "chat", false).team, "tech");
        assert_eq!(choose_team(&policy, "inquiry", "low", "app", false).team, "front");
        // A rule may also be for decided tickets only.
        let decided_only = RoutingPolicy {
            default_team: "front".into(),
            rules: vec![rule(None, Some("fault"), Some(false), "tech")],
        };
        assert_eq!(
            choose_team(&decided_only, "fault", "normal", "chat", false).team,
            "tech"
        );
        assert_eq!(
            choose_team(&decided_only, "fault", "normal", "chat", true).team,
            "front"
        );
    }

    #[test]
    fn the_shipped_policy_sends_unsure_tickets_to_triage_but_urgent_ones_to_the_green_channel() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/policy.toml");
        let p = crate::core::policy::Policy::load(&path).unwrap();
        let r = &p.doc.routing;
        assert_eq!(choose_team(r, "fault", "urgent", "phone", true).team, "green_channel");
        for category in ["inquiry", "fault", "complaint", "suggestion", "other"] {
            assert_eq!(
                choose_team(r, category, "normal", "chat", true).team,
                "triage",
                "{category}"
            );
            assert_ne!(
                choose_team(r, category, "normal", "chat", false).team,
                "triage",
                "{category}"
            );
        }
        assert_eq!(
            choose_team(r, "complaint", "low", "email", false).team,
            "customer_relations"
        );
        assert!(p.doc.teams["triage"].supervisor.is_some());
    }

    #[test]
    fn a_routing_rule_reads_needs_triage_from_the_policy() {
        let rule: RoutingRule = toml::from_str("needs_triage = true\nteam = \"triage\"").unwrap();
        assert_eq!(rule.needs_triage, Some(true));
        let plain: RoutingRule = toml::from_str("category = \"fault\"\nteam = \"tech\"").unwrap();
        assert_eq!(plain.needs_triage, None);
    }

    proptest! {
        #[test]
        fn the_chosen_agent_is_qualified_and_no_one_qualified_has_less_load(
            loads in proptest::collection::vec((0i32..8, 1i32..8, 0i64..100, any::<bool>()), 0..12)
        ) {
            let agents: Vec<Agent> = loads.iter().enumerate().map(|(i, (open, max, idle, online))| {
                let mut a = agent(&format!("a{i}"), *open, *max, *idle);
                if !online { a.presence = Presence::Away; }
                a
            }).collect();
            let need = Need { language: "zh".into(), ..Default::default() };
            match choose_agent(&agents, &need) {
                Some(chosen) => {
                    prop_assert!(unfit(chosen, &need).is_none());
                    for a in agents.iter().filter(|a| unfit(a, &need).is_none()) {
                        prop_assert!(a.open_tickets >= chosen.open_tickets);
                    }
                }
                None => prop_assert!(agents.iter().all(|a| unfit(a, &need).is_some())),
            }
        }
    }
}
