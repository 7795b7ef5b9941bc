//! The policy: every business rule Switchboard applies (channels, taxonomy and lexicons, priority
//! matrix, SLA table, calendars, routing), in one versioned TOML file plus the files it includes.
//!
//! It is validated as a whole at start so that a typo stops a worker with a message naming the
//! file and line, instead of mis-routing tickets for hours.

use crate::core::actions::LifecyclePolicy;
use crate::core::calendar::{BusinessCalendar, Calendars, PublicHolidayYear, PublicHolidays};
use crate::core::classify::{ClassificationPolicy, Classifier, PriorityPolicy, Triage};
use crate::core::escalation::Ladder;
use crate::core::retention::RetentionPolicy;
use crate::core::routing::RoutingPolicy;
use crate::core::sla::SlaPolicy;
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamPolicy {
    pub name: String,
    #[serde(default)]
    pub supervisor: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Recorded on every transition, so a decision can be traced to the rules that made it.
    pub version: String,
    #[serde(default)]
    pub include: Vec<PathBuf>,
    pub channels: Vec<String>,
    #[serde(default)]
    pub ticket_number_prefix: String,
    #[serde(default = "default_tz")]
    pub time_zone: String,
    pub teams: BTreeMap<String, TeamPolicy>,
    pub routing: RoutingPolicy,
    pub sla: SlaPolicy,
    pub calendars: BTreeMap<String, BusinessCalendar>,
    /// Public holidays and make-up workdays by year (`[public_holidays.2026]`, one file per
    /// year under policy/holidays/), shared by the calendars with `public_holidays = true`.
    #[serde(default)]
    pub public_holidays: BTreeMap<String, PublicHolidayYear>,
    pub classification: ClassificationPolicy,
    pub priority: PriorityPolicy,
    #[serde(default)]
    pub escalation: EscalationPolicy,
    #[serde(default)]
    pub lifecycle: LifecyclePolicy,
    /// How long closed tickets are kept and what happens to them then (`switchboard retention`).
    #[serde(default)]
    pub retention: RetentionPolicy,
    /// How the desk and the work API treat people's queues.
    #[serde(default)]
    pub desk: DeskPolicy,
    /// Who is told what, how, and in which words: staff notifications, messages to customers,
    /// surveys and follow-up visits. Absent: nobody is notified and customers get nothing.
    #[serde(default)]
    pub notify: crate::core::notify::NotifyPolicy,
    /// The service record's custom fields (`[record.fields.<name>]`).
    #[serde(default)]
    pub record: crate::core::record::RecordPolicy,
    /// Report labels, the suggestions roll-up and the daily roll-up (`switchboard report`).
    #[serde(default)]
    pub reports: crate::core::report_policy::ReportsPolicy,
}

/// The people side: presence and the work list.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeskPolicy {
    /// What happens to an agent's tickets nobody has started when the agent goes offline:
    /// `return_unstarted` hands them back to the team queue (a colleague or the next free agent
    /// takes them), `keep` leaves them with the agent.
    #[serde(default = "default_on_offline")]
    pub on_offline: OnOffline,
    /// A target due within this many minutes counts as at risk (`at_risk=true`, the board).
    #[serde(default = "default_at_risk_minutes")]
    pub at_risk_minutes: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnOffline {
    ReturnUnstarted,
    Keep,
}

fn default_on_offline() -> OnOffline {
    OnOffline::ReturnUnstarted
}

fn default_at_risk_minutes() -> u32 {
    60
}

impl Default for DeskPolicy {
    fn default() -> Self {
        DeskPolicy {
            on_offline: default_on_offline(),
            at_risk_minutes: default_at_risk_minutes(),
        }
    }
}

/// Escalation ladders by name; SLA rules name the ladder their breaches climb.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    #[serde(default)]
    pub ladders: BTreeMap<String, Ladder>,
    /// Reminders a repeating step sends when it does not set `max_repeats` itself.
    #[serde(default = "default_max_repeats")]
    pub max_repeats: u32,
    /// Who is told, once, when the last step's reminders run out (seed 004: a complaint nobody
    /// closes goes to the department head).
    #[serde(default = "default_beyond")]
    pub beyond_last_rung: String,
}

impl Default for EscalationPolicy {
    fn default() -> Self {
        EscalationPolicy {
            ladders: BTreeMap::new(),
            max_repeats: default_max_repeats(),
            beyond_last_rung: default_beyond(),
        }
    }
}

fn default_max_repeats() -> u32 {
    6
}

fn default_beyond() -> String {
    "department_head".into()
}

fn default_tz() -> String {
    "Asia/Shanghai".into()
}

/// A loaded, validated policy with its compiled parts.
#[derive(Debug, Clone)]
pub struct Policy {
    pub doc: PolicyDocument,
    pub tz: Tz,
    pub classifier: Arc<Classifier>,
    /// The rules and the learned model together, as the classify and prioritize stages use them.
    pub triage: Arc<Triage>,
    pub source: PathBuf,
    /// The calendars with the declared public holidays merged in; SLA clocks run on these.
    pub calendars: Calendars,
    /// The declared public holidays and make-up workdays of every year.
    pub public_holidays: PublicHolidays,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source} (set SWITCHBOARD_POLICY or --policy to the right file)")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("policy file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("policy {path}{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: String,
        message: String,
    },
}

impl Policy {
    /// The built-in default policy (the files under `config/`), for tests and `--policy` absent.
    pub fn from_document(doc: PolicyDocument, path: &Path, texts: &[(PathBuf, String)]) -> Result<Policy, PolicyError> {
        let invalid = |needle: &str, message: String| {
            let (file, line) = locate(texts, needle);
            PolicyError::Invalid {
                path: file.unwrap_or_else(|| path.to_path_buf()),
                line: line.map(|l| format!(" line {l}")).unwrap_or_default(),
                message,
            }
        };
        let tz: Tz = doc
            .time_zone
            .parse()
            .map_err(|_| invalid("time_zone", format!("unknown time zone {:?}", doc.time_zone)))?;
        if doc.channels.is_empty() {
            return Err(invalid("channels", "`channels` must list at least one channel".into()));
        }
        for team in std::iter::once(&doc.routing.default_team).chain(doc.routing.rules.iter().map(|r| &r.team)) {
            if !doc.teams.contains_key(team) {
                return Err(invalid(
                    &format!("\"{team}\""),
                    format!("routing names team {team:?}, which is not declared under [teams]"),
                ));
            }
        }
        if let Err(message) = doc.classification.validate() {
            return Err(invalid("[classification", format!("[classification]: {message}")));
        }
        if let Err(message) = doc.priority.validate() {
            return Err(invalid("[priority", format!("[priority]: {message}")));
        }
        let categories = doc.classification.category_ids();
        let levels = doc.priority.levels.clone();
        for rule in &doc.routing.rules {
            if let Some(c) = &rule.category
                && !categories.contains(c)
            {
                return Err(invalid(
                    &format!("\"{c}\""),
                    format!("routing rule names unknown category {c:?}"),
                ));
            }
            if let Some(p) = &rule.priority
                && !levels.contains(p)
            {
                return Err(invalid(
                    &format!("\"{p}\""),
                    format!("routing rule names unknown priority {p:?}"),
                ));
            }
        }
        if !doc.calendars.contains_key(&doc.sla.calendar) {
            return Err(invalid(
                "calendar",
                format!(
                    "[sla] calendar {:?} is not declared under [calendars]",
                    doc.sla.calendar
                ),
            ));
        }
        let public_holidays = PublicHolidays::from_years(doc.public_holidays.clone())
            .map_err(|e| invalid("[public_holidays", format!("{e}")))?;
        let mut resolved = BTreeMap::new();
        for (name, cal) in &doc.calendars {
            let cal = cal
                .validate()
                .and_then(|()| cal.with_public_holidays(&public_holidays))
                .map_err(|e| invalid(&format!("[calendars.{name}"), format!("calendar {name}: {e}")))?;
            if cal.public_holidays && public_holidays.years.is_empty() {
                return Err(invalid(
                    &format!("[calendars.{name}"),
                    format!(
                        "calendar {name} sets public_holidays = true but no [public_holidays.YYYY] is declared; \
                         include \"policy/holidays/*.toml\" or import a year with `switchboard calendar import`"
                    ),
                ));
            }
            resolved.insert(name.clone(), cal);
        }
        if !public_holidays.years.is_empty() && !resolved.values().any(|c| c.public_holidays) {
            return Err(invalid(
                "[public_holidays",
                "public holidays are declared but no calendar uses them; set public_holidays = true on the calendars they close".into(),
            ));
        }
        let calendars = Calendars::new(&doc.sla.calendar, resolved).ok_or_else(|| {
            invalid(
                "calendar",
                format!(
                    "[sla] calendar {:?} is not declared under [calendars]",
                    doc.sla.calendar
                ),
            )
        })?;
        for rule in &doc.sla.rules {
            let milestone_clocks = rule.milestones.iter().map(|m| ("a milestone's clock", m.clock));
            for (what, clock) in [
                ("first_response_clock", rule.first_response_clock),
                ("resolution_clock", rule.resolution_clock),
            ]
            .into_iter()
            .chain(milestone_clocks)
            {
                if !calendars.knows(clock) {
                    return Err(invalid(
                        &rule.name,
                        format!(
                            "SLA rule {:?}: {what} \"{clock}\" names no calendar; write \"wall\", \"business\" or one of [calendars]: {}",
                            rule.name,
                            calendars.iter().map(|(n, _)| n).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
            if let Some(c) = &rule.category
                && !categories.contains(c)
            {
                return Err(invalid(
                    &rule.name,
                    format!("SLA rule {:?} names unknown category {c:?}", rule.name),
                ));
            }
            if let Some(p) = &rule.priority
                && !levels.contains(p)
            {
                return Err(invalid(
                    &rule.name,
                    format!("SLA rule {:?} names unknown priority {p:?}", rule.name),
                ));
            }
            if let Some(ch) = &rule.channel
                && !doc.channels.contains(ch)
            {
                return Err(invalid(
                    &rule.name,
                    format!(
                        "SLA rule {:?} names channel {ch:?}, which is not in `channels`",
                        rule.name
                    ),
                ));
            }
        }
        for (name, ladder) in &doc.escalation.ladders {
            ladder
                .validate()
                .map_err(|e| invalid(&format!("[escalation.ladders.{name}"), format!("ladder {name}: {e}")))?;
        }
        if doc.escalation.beyond_last_rung.trim().is_empty() {
            return Err(invalid(
                "beyond_last_rung",
                "[escalation] beyond_last_rung must name someone".into(),
            ));
        }
        // Every ladder runs bounded: no reminder repeats forever.
        let mut doc = doc;
        let (cap, beyond) = (doc.escalation.max_repeats, doc.escalation.beyond_last_rung.clone());
        for ladder in doc.escalation.ladders.values_mut() {
            *ladder = ladder.bounded(cap, &beyond);
        }
        for rule in &doc.sla.rules {
            rule.validate_milestones().map_err(|e| invalid(&rule.name, e))?;
            for m in &rule.milestones {
                if let Some(l) = &m.escalation
                    && !doc.escalation.ladders.contains_key(l)
                {
                    return Err(invalid(
                        &rule.name,
                        format!(
                            "SLA rule {:?}: milestone {} names escalation ladder {l:?}, which is not under [escalation.ladders]",
                            rule.name,
                            m.name.as_str()
                        ),
                    ));
                }
            }
            if let Some(l) = &rule.escalation
                && !doc.escalation.ladders.contains_key(l)
            {
                return Err(invalid(
                    &format!("escalation = \"{l}\""),
                    format!(
                        "SLA rule {:?} names escalation ladder {l:?}, which is not under [escalation.ladders]",
                        rule.name
                    ),
                ));
            }
        }
        if let Err(message) = doc.record.validate() {
            return Err(invalid("[record", message));
        }
        if !(1..=5).contains(&doc.lifecycle.reopen_rating_at_or_below) {
            return Err(invalid(
                "reopen_rating_at_or_below",
                "[lifecycle] reopen_rating_at_or_below must be 1 to 5".into(),
            ));
        }
        if doc.notify.people.is_empty() && doc.notify.roles.is_empty() {
            // No [notify.people]: staff notifications are off, so no role needs to reach anyone.
            doc.notify
                .validate(&std::collections::BTreeSet::new())
                .map_err(|m| invalid("[notify", m))?;
        } else {
            let mut needed: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
            for ladder in doc.escalation.ladders.values() {
                for role in ladder.roles() {
                    needed.insert(role.to_owned());
                }
            }
            needed.insert(doc.escalation.beyond_last_rung.clone());
            for team in doc.teams.values() {
                if let Some(s) = &team.supervisor {
                    needed.insert(s.clone());
                }
            }
            // `supervisor` and a team id name the team's supervisor role, checked above.
            needed.retain(|r| r != crate::core::notify::SUPERVISOR && !doc.teams.contains_key(r));
            doc.notify.validate(&needed).map_err(|m| {
                let needle = m
                    .split('"')
                    .nth(1)
                    .map(|r| format!("{r} ="))
                    .unwrap_or_else(|| "[notify".into());
                invalid(&needle, m)
            })?;
        }
        for (code, label) in &doc.lifecycle.unsatisfied_reasons {
            if code.trim().is_empty() || label.trim().is_empty() {
                return Err(invalid(
                    "unsatisfied_reasons",
                    format!("[lifecycle.unsatisfied_reasons] {code:?} needs a code and a label"),
                ));
            }
        }
        let roles: Vec<String> = doc.notify.roles.keys().cloned().collect();
        doc.reports
            .validate(&categories, &levels, &doc.channels, &roles)
            .map_err(|m| invalid("[reports", m))?;
        if let Err(message) = doc.retention.validate() {
            return Err(invalid("[retention", message));
        }
        for category in &categories {
            for level in &levels {
                for channel in &doc.channels {
                    if doc.sla.rule_for(category, level, channel).is_none() {
                        return Err(invalid(
                            "[sla",
                            format!(
                                "no SLA rule covers category {category:?} at priority {level:?} on channel {channel:?}; add a catch-all rule"
                            ),
                        ));
                    }
                }
            }
        }
        doc.sla
            .validate_rules([&categories, &levels, &doc.channels])
            .map_err(|m| invalid("[sla", format!("[sla]: {m}")))?;
        let classifier = doc
            .classification
            .compile()
            .map_err(|m| invalid("[classification", format!("[classification]: {m}")))?;
        let classifier = Arc::new(classifier);
        let prioritizer = doc
            .priority
            .compiled()
            .map_err(|m| invalid("[priority", format!("[priority]: {m}")))?
            .clone();
        let triage = Triage::new(
            classifier.clone(),
            prioritizer,
            None,
            doc.classification.triage_threshold,
        )
        .map_err(|m| invalid("[classification", m))?;
        Ok(Policy {
            doc,
            tz,
            classifier,
            triage: Arc::new(triage),
            source: path.to_path_buf(),
            calendars,
            public_holidays,
        })
    }

    pub fn version(&self) -> &str {
        &self.doc.version
    }

    /// Use `model` (read by the loader from the file `[classification] model` names); refused
    /// when it does not speak the policy's categories and priority levels.
    pub fn with_model(mut self, model: Option<Arc<crate::core::classify::Model>>) -> Result<Policy, String> {
        self.triage = Arc::new(self.triage.with_model(model)?);
        Ok(self)
    }

    /// The supervisor of a team, from the policy.
    pub fn supervisor_of(&self, team: Option<&str>) -> Option<String> {
        team.and_then(|t| self.doc.teams.get(t))
            .and_then(|t| t.supervisor.clone())
    }

    /// What notification planning reads of the policy.
    pub fn notify_rules(&self) -> crate::core::notify::Rules<'_> {
        crate::core::notify::Rules {
            notify: &self.doc.notify,
            supervisors: self
                .doc
                .teams
                .iter()
                .filter_map(|(id, t)| t.supervisor.as_deref().map(|s| (id.as_str(), s)))
                .collect(),
            calendar: self.calendar(),
            tz: self.tz,
        }
    }

    /// Every calendar, with the public holidays merged in; it dereferences to the SLA's own
    /// (`[sla] calendar`, the service hours).
    pub fn calendar(&self) -> &Calendars {
        &self.calendars
    }
}

/// The first file and line containing `needle`: good enough to point an operator at the spot.
pub(crate) fn locate(texts: &[(PathBuf, String)], needle: &str) -> (Option<PathBuf>, Option<usize>) {
    for (path, text) in texts {
        if let Some(i) = text.lines().position(|l| l.contains(needle)) {
            return (Some(path.clone()), Some(i + 1));
        }
    }
    (None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_policy_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/policy.toml")
    }

    #[test]
    fn the_shipped_policy_loads() {
        let p = Policy::load(&default_policy_path()).unwrap();
        assert_eq!(p.doc.channels, vec!["phone", "chat", "email", "app"]);
        assert_eq!(p.tz, chrono_tz::Asia::Shanghai);
    }

    #[test]
    fn an_unknown_team_is_named_with_its_line() {
        let dir = std::env::temp_dir().join(format!("sb-policy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("policy/holidays")).unwrap();
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        for f in shipped_policy_files(&src) {
            std::fs::copy(src.join(&f), dir.join(&f)).unwrap();
        }
        let main = std::fs::read_to_string(src.join("policy.toml")).unwrap();
        let broken = main.replacen("team = \"technical_support\"", "team = \"tech_suport\"", 1);
        assert_ne!(main, broken, "the sample policy routes to technical_support");
        std::fs::write(dir.join("policy.toml"), broken).unwrap();
        let err = Policy::load(&dir.join("policy.toml")).unwrap_err().to_string();
        assert!(err.contains("tech_suport") && err.contains("line"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Seed 004 §(三): a complex complaint goes up to the department head. The shipped complaint
    /// ladder tells quality management at the breach and the department head 4 h later, and
    /// every complaint rule climbs it.
    #[test]
    fn the_shipped_complaint_ladder_reaches_the_department_head() {
        use crate::core::escalation::Fired;
        let p = Policy::load_rules(&default_policy_path()).unwrap();
        let ladder = &p.doc.escalation.ladders["complaint"];
        let breached = chrono::DateTime::parse_from_rfc3339("2026-03-06T20:00:00+08:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let first = ladder.next_step(breached, None, p.calendar()).unwrap();
        assert_eq!((first.notify.as_str(), first.due), ("quality_management", breached));
        let fired = Fired {
            step: first.step,
            repeat: first.repeat,
            at: first.due,
        };
        let second = ladder.next_step(breached, Some(&fired), p.calendar()).unwrap();
        assert_eq!(second.notify, "department_head");
        assert_eq!(second.due, breached + chrono::Duration::hours(4));
        for rule in p
            .doc
            .sla
            .rules
            .iter()
            .filter(|r| r.category.as_deref() == Some("complaint"))
        {
            assert_eq!(rule.escalation.as_deref(), Some("complaint"), "{}", rule.name);
        }
    }

    /// The shipped milestones, by the seeds: every complaint rule (normal) has the initial plan in
    /// 4 h (004 §(三)), every fault rule the diagnosis in 8 h, pausing (004 §(三)), every urgent
    /// rule a temporary solution in 2 h (000 表格2), whatever the channel.
    #[test]
    fn the_shipped_milestones_are_the_seeds_times_on_every_channel() {
        use crate::core::sla::Target;
        let p = Policy::load_rules(&default_policy_path()).unwrap();
        let cases = [
            ("complaint", "normal", Target::Plan, 4, false),
            ("fault", "normal", Target::Diagnosis, 8, true),
            ("inquiry", "urgent", Target::Workaround, 2, false),
            ("fault", "urgent", Target::Workaround, 2, false),
        ];
        for (category, priority, target, hours, pauses) in cases {
            for channel in &p.doc.channels {
                let rule = p.doc.sla.rule_for(category, priority, channel).unwrap();
                let m =
                    rule.milestones.iter().find(|m| m.name == target).unwrap_or_else(|| {
                        panic!("{category}/{priority}/{channel}: rule {} has no {target:?}", rule.name)
                    });
                assert_eq!(m.within.wall_time(), chrono::Duration::hours(hours), "{}", rule.name);
                assert_eq!(m.pauses, pauses, "{}", rule.name);
            }
        }
    }

    /// A copy of the shipped policy in a temporary directory, `edit` applied to (file, text).
    fn shipped_copy(edit: impl Fn(&str, String) -> String) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sb-policy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("policy/holidays")).unwrap();
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        for f in shipped_policy_files(&src) {
            let text = std::fs::read_to_string(src.join(&f)).unwrap();
            std::fs::write(dir.join(&f), edit(&f, text)).unwrap();
        }
        dir
    }

    /// Every file of the shipped policy, relative to `config/`: policy.toml and the .toml files
    /// under policy/ (the ones it includes), so a new included file needs no test edit.
    fn shipped_policy_files(config: &Path) -> Vec<String> {
        let mut files = vec!["policy.toml".to_owned()];
        let mut dirs = vec![PathBuf::from("policy")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(config.join(&d)).unwrap() {
                let rel = d.join(e.unwrap().file_name());
                if config.join(&rel).is_dir() {
                    dirs.push(rel);
                } else if rel.extension().is_some_and(|x| x == "toml") {
                    files.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        files
    }

    fn load_err(dir: &Path) -> String {
        let err = Policy::load_rules(&dir.join("policy.toml")).unwrap_err().to_string();
        std::fs::remove_dir_all(dir).unwrap();
        err
    }

    /// The shipped calendars with the year files merged in: the service hours stay open on
    /// public holidays (and know them), working days close on them and open on make-up days.
    #[test]
    fn the_shipped_calendars_know_the_2026_holidays() {
        use chrono::{DateTime, Utc};
        let date = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let shipped = Policy::load_rules(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/policy.toml"
        )))
        .unwrap();
        let service = shipped.calendar();
        assert_eq!(service.time_zone, Tz::Asia__Shanghai);
        assert!(
            service.holidays.contains(&date("2026-02-17")),
            "the duty rota knows the holidays"
        );
        assert!(
            service.is_open(utc("2026-02-17T10:00:00+08:00")),
            "phone and chat are staffed every day"
        );
        assert!(!service.is_open(utc("2026-02-17T23:00:00+08:00")));
        let work = shipped.calendar().get("working_days").unwrap();
        assert!(!work.is_open(utc("2026-02-17T10:00:00+08:00")), "Spring Festival");
        assert!(work.is_open(utc("2026-02-28T10:00:00+08:00")), "make-up Saturday");
        assert!(!work.is_open(utc("2026-03-07T10:00:00+08:00")), "an ordinary Saturday");
        assert!(work.is_open(utc("2026-03-09T10:00:00+08:00")), "a Monday");
        assert_eq!(work.validate(), Ok(()));
    }

    #[test]
    fn public_holidays_come_one_file_per_year_and_are_checked() {
        let same = |_: &str, t: String| t;
        let dir = shipped_copy(same);
        std::fs::write(
            dir.join("policy/holidays/2099.toml"),
            "[public_holidays.2099]\nholidays = [\"2099-01-01\"]\nworkdays = [\"2099-01-03\"]\n",
        )
        .unwrap();
        let p = Policy::load_rules(&dir.join("policy.toml")).unwrap();
        assert_eq!(
            p.public_holidays.years.keys().copied().collect::<Vec<_>>(),
            vec![2026, 2099]
        );
        let work = p.calendar().get("working_days").unwrap();
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        assert!(!work.is_open(at("2099-01-01T10:00:00+08:00")), "a declared holiday");
        assert!(
            work.is_open(at("2099-01-03T10:00:00+08:00")),
            "a declared make-up Saturday"
        );
        assert!(p.calendar().holidays.contains(&"2099-01-01".parse().unwrap()));

        std::fs::write(
            dir.join("policy/holidays/2099-again.toml"),
            "[public_holidays.2099]\nholidays = [\"2099-01-02\"]\n",
        )
        .unwrap();
        assert!(load_err(&dir).contains("[public_holidays.2099] is declared twice"));

        let dir = shipped_copy(same);
        std::fs::write(
            dir.join("policy/holidays/2098.toml"),
            "[public_holidays.2098]\nholidays = [\"2099-05-01\"]\n",
        )
        .unwrap();
        let e = load_err(&dir);
        assert!(
            e.contains("public_holidays.2098.holidays") && e.contains("not in 2098"),
            "{e}"
        );

        let dir = shipped_copy(|f, t| {
            if f == "policy/calendar.toml" {
                t.replace("public_holidays = true", "public_holidays = false")
            } else {
                t
            }
        });
        assert!(load_err(&dir).contains("no calendar uses them"));
        let dir = shipped_copy(same);
        std::fs::remove_file(dir.join("policy/holidays/2026.toml")).unwrap();
        let e = load_err(&dir);
        assert!(
            e.contains("public_holidays = true but no [public_holidays.YYYY]"),
            "{e}"
        );
    }

    #[test]
    fn sla_rules_name_known_calendars_and_channels() {
        let dir = shipped_copy(|f, t| {
            if f == "policy.toml" {
                t.replacen(
                    "resolution_clock = \"working_days\"",
                    "resolution_clock = \"workdays\"",
                    1,
                )
            } else {
                t
            }
        });
        let e = load_err(&dir);
        assert!(
            e.contains("\"workdays\" names no calendar") && e.contains("working_days"),
            "{e}"
        );
        let dir = shipped_copy(|f, t| {
            if f == "policy.toml" {
                t.replacen("channel = \"email\"", "channel = \"fax\"", 1)
            } else {
                t
            }
        });
        let e = load_err(&dir);
        assert!(e.contains("channel \"fax\"") && e.contains("line"), "{e}");
        // A misspelt category or priority would make a rule that never applies: refused.
        for (from, to, want) in [
            (
                "name = \"complaint-normal\"\ncategory = \"complaint\"",
                "name = \"complaint-normal\"\ncategory = \"complant\"",
                "unknown category \"complant\"",
            ),
            (
                "name = \"urgent\"\npriority = \"urgent\"",
                "name = \"urgent\"\npriority = \"urgnet\"",
                "unknown priority \"urgnet\"",
            ),
        ] {
            let dir = shipped_copy(|f, t| {
                if f == "policy.toml" {
                    assert!(t.contains(from), "{from}");
                    t.replacen(from, to, 1)
                } else {
                    t
                }
            });
            let e = load_err(&dir);
            assert!(e.contains(want) && e.contains("line"), "{e}");
        }
        // Without the rule that covers complaint + normal by email, two rules tie there.
        let block = "[[sla.rules]]\nname = \"complaint-normal-email\"\ncategory = \"complaint\"\npriority = \"normal\"\nchannel = \"email\"\n";
        let dir = shipped_copy(|f, t| {
            if f == "policy.toml" {
                assert!(t.contains(block));
                t.replace(block, "[[sla.rules]]\nname = \"unused\"\ncategory = \"other\"\npriority = \"urgent\"\nchannel = \"phone\"\n")
            } else {
                t
            }
        });
        let e = load_err(&dir);
        assert!(
            e.contains("\"complaint-normal\" and \"email-normal\"")
                && e.contains("add a rule for category = \"complaint\", priority = \"normal\", channel = \"email\""),
            "{e}"
        );
    }

    /// A milestone naming a ladder that does not exist, or a target that is no milestone, is
    /// refused at load with the rule and the line.
    #[test]
    fn a_bad_milestone_is_named_with_its_rule() {
        let shipped = "milestones = [{ name = \"plan\", within = \"4h\" }]";
        for (broken, want) in [
            (
                "milestones = [{ name = \"plan\", within = \"4h\", escalation = \"nope\" }]",
                "nope",
            ),
            (
                "milestones = [{ name = \"resolution\", within = \"4h\" }]",
                "not a milestone",
            ),
            (
                "milestones = [{ name = \"plan\", within = \"0m\" }]",
                "longer than zero",
            ),
        ] {
            let dir = shipped_copy(|f, t| {
                if f == "policy.toml" {
                    assert!(
                        t.contains(shipped),
                        "the sample policy gives complaints a plan milestone"
                    );
                    t.replacen(shipped, broken, 1)
                } else {
                    t
                }
            });
            let err = load_err(&dir);
            assert!(
                err.contains(want) && err.contains("complaint-normal") && err.contains("line"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let dir = std::env::temp_dir().join(format!("sb-policy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("policy.toml"), "version = \"1\"\nchannels = [\"phone\"\n").unwrap();
        let err = Policy::load(&dir.join("policy.toml")).unwrap_err().to_string();
        assert!(err.contains("line 2") || err.contains("line 3"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
