//! `[reports]` of the policy: Chinese labels, the suggestions category and the daily roll-up
//! (`core::report` uses them; kept apart so the policy does not depend on the reports).

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[reports]` of the policy.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsPolicy {
    /// The category whose tickets make the suggestions roll-up for product management.
    #[serde(default = "default_suggestions")]
    pub suggestions_category: String,
    #[serde(default)]
    pub labels: LabelSets,
    /// The daily roll-up; absent: none is sent.
    #[serde(default)]
    pub daily: Option<DailyPolicy>,
}

fn default_suggestions() -> String {
    "suggestion".into()
}

impl Default for ReportsPolicy {
    fn default() -> Self {
        ReportsPolicy {
            suggestions_category: default_suggestions(),
            labels: LabelSets::default(),
            daily: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSets {
    #[serde(default)]
    pub zh: LabelSet,
}

/// Labels by id, per kind of thing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSet {
    #[serde(default)]
    pub priorities: BTreeMap<String, String>,
    #[serde(default)]
    pub targets: BTreeMap<String, String>,
    #[serde(default)]
    pub channels: BTreeMap<String, String>,
}

/// `[reports.daily]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DailyPolicy {
    /// Local time (policy time zone) the day's roll-up is made and sent, "HH:MM".
    pub at: String,
    /// Roles of `[notify.roles]` whose people receive it.
    pub notify: Vec<String>,
    #[serde(default)]
    pub lang: Lang,
}

/// The latest time of day the daily roll-up may be set to (seed 002 §5: 每日17:00前).
pub const DAILY_DEADLINE: &str = "17:00";

impl DailyPolicy {
    pub fn time(&self) -> Result<NaiveTime, String> {
        NaiveTime::parse_from_str(&self.at, "%H:%M")
            .map_err(|_| format!("[reports.daily] at = {:?} is not a time of day HH:MM", self.at))
    }
}

impl ReportsPolicy {
    /// Checks every key against what the policy declares; `roles` are `[notify.roles]`.
    pub fn validate(
        &self,
        categories: &[String],
        priorities: &[String],
        channels: &[String],
        roles: &[String],
    ) -> Result<(), String> {
        if !categories.contains(&self.suggestions_category) {
            return Err(format!(
                "[reports] suggestions_category = {:?} is not a category of [[classification.categories]] ({})",
                self.suggestions_category,
                categories.join(", ")
            ));
        }
        let zh = &self.labels.zh;
        let targets: Vec<String> = crate::core::sla::Target::ALL
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        for (kind, map, known) in [
            ("priorities", &zh.priorities, priorities),
            ("targets", &zh.targets, &targets[..]),
            ("channels", &zh.channels, channels),
        ] {
            for (key, label) in map {
                if !known.contains(key) {
                    return Err(format!(
                        "[reports.labels.zh] {kind} labels {key:?}, which the policy does not declare (known: {})",
                        known.join(", ")
                    ));
                }
                if label.trim().is_empty() {
                    return Err(format!("[reports.labels.zh] {kind}.{key} is empty"));
                }
            }
        }
        if let Some(d) = &self.daily {
            let at = d.time()?;
            let deadline = NaiveTime::from_hms_opt(17, 0, 0).unwrap_or(NaiveTime::MIN);
            if at >= deadline {
                return Err(format!(
                    "[reports.daily] at = {:?} must be before {DAILY_DEADLINE} (seed 002 §5: the day's records are summed up before 17:00)",
                    d.at
                ));
            }
            if d.notify.is_empty() {
                return Err("[reports.daily] notify must name at least one role of [notify.roles]".into());
            }
            for r in &d.notify {
                if !roles.contains(r) {
                    return Err(format!(
                        "[reports.daily] notify names role {r:?}, which is not under [notify.roles]"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    #[default]
    En,
    Zh,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn check(p: &ReportsPolicy) -> Result<(), String> {
        p.validate(
            &v(&["fault", "suggestion"]),
            &v(&["urgent", "normal"]),
            &v(&["phone"]),
            &v(&["quality_manager"]),
        )
    }

    fn daily(at: &str, notify: &[&str]) -> ReportsPolicy {
        ReportsPolicy {
            daily: Some(DailyPolicy {
                at: at.into(),
                notify: v(notify),
                lang: Lang::Zh,
            }),
            ..ReportsPolicy::default()
        }
    }

    #[test]
    fn every_key_and_the_daily_roll_up_are_validated() {
        assert_eq!(check(&ReportsPolicy::default()), Ok(()));
        assert_eq!(check(&daily("16:30", &["quality_manager"])), Ok(()));
        let err = |p: &ReportsPolicy| check(p).unwrap_err();
        assert!(err(&daily("17:00", &["quality_manager"])).contains("before 17:00"));
        assert!(err(&daily("4pm", &["quality_manager"])).contains("HH:MM"));
        assert!(err(&daily("16:00", &["ceo"])).contains("\"ceo\""));
        assert!(err(&daily("16:00", &[])).contains("at least one role"));
        let mut p = ReportsPolicy::default();
        p.labels.zh.priorities.insert("critical".into(), "特急".into());
        assert!(err(&p).contains("priorities labels \"critical\""), "{}", err(&p));
        let mut p = ReportsPolicy::default();
        p.labels.zh.targets.insert("resolution".into(), " ".into());
        assert!(err(&p).contains("empty"));
        let p = ReportsPolicy {
            suggestions_category: "ideas".into(),
            ..ReportsPolicy::default()
        };
        assert!(err(&p).contains("suggestions_category"));
    }
}
