//! Reaching people: who is told what, through which medium, and in which words (SPEC §5, seed
//! 000 §(四) and table 3, seed 002 §2.2, seed 003 steps 2–4).
//!
//! Everything here is pure. [`plan`] turns one event (and the facts the notify stage looked up
//! for it: subscriptions, the customer's address, the assignee's contacts) into the deliveries
//! to make; the notify stage writes them with the event's ledger record, and the deliver stage
//! sends them. The policy's `[notify]` section ([`NotifyPolicy`]) maps every role an escalation
//! can name to people, says how each person is reached, who is on duty outside service hours,
//! and holds the message templates.

mod templates;

pub use templates::{Rendered, TemplateError, Templates};

use crate::core::calendar::BusinessCalendar;
use chrono::{DateTime, Datelike, Utc, Weekday};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// How long a delivery is retried before it is given up and dead-lettered.
pub const WEBHOOK_GIVE_UP_S: i64 = 24 * 3600;
pub const CUSTOMER_GIVE_UP_S: i64 = 24 * 3600;
pub const STAFF_GIVE_UP_S: i64 = 6 * 3600;

/// How long to wait after the `attempt`-th failed attempt (counting from 1), when the first
/// retry waits `first`: ×1, ×6, ×24, ×120, ×360, ×720, ×1440, then 4 h each (5 s, 30 s, 2 min,
/// 10 min, 30 min, 1 h, 2 h, 4 h … for the default 5 s), until the delivery is given up.
pub fn backoff(attempt: i32, first: chrono::Duration) -> chrono::Duration {
    const FACTORS: [i32; 7] = [1, 6, 24, 120, 360, 720, 1440];
    let i = usize::try_from(attempt.max(1) - 1).unwrap_or(0);
    match FACTORS.get(i) {
        Some(f) => (first * *f).min(chrono::Duration::hours(4)),
        None => chrono::Duration::hours(4),
    }
}

/// One person notifications reach, and how.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// A URL that takes Standard Webhooks posts (signed with `webhook_secret`).
    #[serde(default)]
    pub webhook: Option<String>,
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// A WeCom (企业微信) group robot's URL.
    #[serde(default)]
    pub wecom: Option<String>,
    /// A DingTalk (钉钉) group robot's URL, and its signing secret if the robot has one.
    #[serde(default)]
    pub dingtalk: Option<String>,
    #[serde(default)]
    pub dingtalk_secret: Option<String>,
    /// A Feishu (飞书) group robot's URL, and its signing secret if the robot has one.
    #[serde(default)]
    pub feishu: Option<String>,
    #[serde(default)]
    pub feishu_secret: Option<String>,
}

/// One way to reach a person: how, and where. A medium's signing secret stays in the policy
/// (`NotifyPolicy::secret_of`), looked up when sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Medium {
    pub transport: Transport,
    pub target: String,
}

impl Medium {
    pub fn email(address: &str) -> Medium {
        Medium {
            transport: Transport::Email,
            target: address.to_owned(),
        }
    }
}

impl Person {
    /// Every medium this person has, email first.
    pub fn media(&self) -> Vec<Medium> {
        [
            (Transport::Email, &self.email),
            (Transport::Webhook, &self.webhook),
            (Transport::WeCom, &self.wecom),
            (Transport::DingTalk, &self.dingtalk),
            (Transport::Feishu, &self.feishu),
        ]
        .into_iter()
        .filter_map(|(transport, target)| {
            target.as_ref().map(|t| Medium {
                transport,
                target: t.clone(),
            })
        })
        .collect()
    }
}

/// Who is on duty on some days: outside service hours, escalations reach only them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RotaEntry {
    pub person: String,
    /// Weekdays (`mon` … `sun`) this entry covers.
    #[serde(default)]
    pub days: Vec<String>,
    /// Also (or only) the calendar's holidays.
    #[serde(default)]
    pub holidays: bool,
}

/// Satisfaction surveys (seed 000 §(四): 满意度回访).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SurveyPolicy {
    /// Send a survey when a ticket is resolved.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// What the customer scores 1–5; the first is the overall score the `rate` action takes.
    #[serde(default = "default_dimensions")]
    pub dimensions: Vec<String>,
}

impl Default for SurveyPolicy {
    fn default() -> Self {
        SurveyPolicy {
            enabled: true,
            dimensions: default_dimensions(),
        }
    }
}

fn default_dimensions() -> Vec<String> {
    vec!["overall".into(), "speed".into(), "attitude".into()]
}

fn yes() -> bool {
    true
}

/// Follow-up visits (回访): complaints and low ratings get one, with its own deadline.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FollowUpPolicy {
    /// Categories whose resolution creates a follow-up visit.
    #[serde(default = "default_follow_up_categories")]
    pub categories: Vec<String>,
    /// A rating at or below this creates one too (0: never).
    #[serde(default = "default_follow_up_rating")]
    pub rating_at_or_below: u8,
    /// How long the team has for it (on the SLA calendar's business clock for `bd`).
    #[serde(default = "default_follow_up_within")]
    pub within: crate::core::calendar::SlaDuration,
}

impl Default for FollowUpPolicy {
    fn default() -> Self {
        FollowUpPolicy {
            categories: default_follow_up_categories(),
            rating_at_or_below: default_follow_up_rating(),
            within: default_follow_up_within(),
        }
    }
}

fn default_follow_up_categories() -> Vec<String> {
    vec!["complaint".into()]
}

fn default_follow_up_rating() -> u8 {
    2
}

fn default_follow_up_within() -> crate::core::calendar::SlaDuration {
    crate::core::calendar::SlaDuration::from_business_days(1).unwrap_or_default()
}

/// The policy's `[notify]` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NotifyPolicy {
    /// People by id.
    #[serde(default)]
    pub people: BTreeMap<String, Person>,
    /// Role → the ids of the people it reaches. Every role an escalation ladder, a team's
    /// supervisor or `beyond_last_rung` names must reach someone.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Outside the SLA calendar's service hours, escalations reach only who is on duty.
    #[serde(default)]
    pub on_duty: Vec<RotaEntry>,
    /// Priorities whose assignment is announced to the assignee and the team's supervisor.
    #[serde(default = "default_urgent")]
    pub urgent_priorities: Vec<String>,
    /// The language of staff notifications.
    #[serde(default = "default_staff_language")]
    pub staff_language: String,
    /// Send messages to customers (acknowledgement, replies, updates, resolution, survey).
    #[serde(default = "yes")]
    pub customer_messages: bool,
    #[serde(default)]
    pub survey: SurveyPolicy,
    #[serde(default)]
    pub follow_up: FollowUpPolicy,
    /// Message templates: purpose → language → subject and body (minijinja).
    #[serde(default)]
    pub templates: Templates,
}

fn default_urgent() -> Vec<String> {
    vec!["urgent".into()]
}

fn default_staff_language() -> String {
    "zh-Hans".into()
}

/// A role that reaches people according to the ticket rather than the policy.
pub const ASSIGNEE: &str = "assignee";
pub const SUPERVISOR: &str = "supervisor";

impl NotifyPolicy {
    /// Refuses people without a medium, roles naming unknown people, a rota that leaves a day
    /// uncovered, and any of `needed` (every role the ladders, teams and `beyond_last_rung`
    /// name) that reaches nobody.
    pub fn validate(&self, needed: &BTreeSet<String>) -> Result<(), String> {
        for (id, p) in &self.people {
            if p.media().is_empty() {
                return Err(format!(
                    "[notify.people.{id}] has no way to be reached: give it an email, webhook, wecom, dingtalk or feishu"
                ));
            }
            for (what, url) in [
                ("webhook", &p.webhook),
                ("wecom", &p.wecom),
                ("dingtalk", &p.dingtalk),
                ("feishu", &p.feishu),
            ] {
                if let Some(u) = url
                    && !(u.starts_with("https://") || u.starts_with("http://"))
                {
                    return Err(format!("[notify.people.{id}] {what} {u:?} is not an http(s) URL"));
                }
            }
            if let Some(s) = &p.webhook_secret
                && !s.starts_with("whsec_")
            {
                return Err(format!(
                    "[notify.people.{id}] webhook_secret must be a whsec_… secret (switchboard webhooks secret prints one)"
                ));
            }
        }
        for (role, ids) in &self.roles {
            for id in ids {
                if !self.people.contains_key(id) {
                    return Err(format!(
                        "[notify.roles] {role} names {id:?}, who is not under [notify.people]"
                    ));
                }
            }
        }
        for role in needed {
            if role == ASSIGNEE {
                continue;
            }
            if self.roles.get(role).is_none_or(|ids| ids.is_empty()) {
                return Err(format!(
                    "role {role:?} reaches nobody: list who it notifies under [notify.roles] ({role} = [\"person id\"])"
                ));
            }
        }
        if !self.on_duty.is_empty() {
            for e in &self.on_duty {
                if !self.people.contains_key(&e.person) {
                    return Err(format!(
                        "[notify] on_duty names {:?}, who is not under [notify.people]",
                        e.person
                    ));
                }
                for d in &e.days {
                    if weekday(d).is_none() {
                        return Err(format!(
                            "[notify] on_duty day {d:?} is not one of mon, tue, wed, thu, fri, sat, sun"
                        ));
                    }
                }
            }
            let covered: BTreeSet<u32> = self
                .on_duty
                .iter()
                .flat_map(|e| e.days.iter().filter_map(|d| weekday(d)))
                .map(|d| d.num_days_from_monday())
                .collect();
            if covered.len() < 7 {
                return Err("[notify] on_duty leaves a weekday without anyone on duty: cover mon … sun".into());
            }
        }
        if self.survey.dimensions.is_empty() {
            return Err("[notify.survey] dimensions must name at least one".into());
        }
        self.templates.validate()
    }

    /// The signing secret of a person's medium (webhook, DingTalk, Feishu), if it has one.
    pub fn secret_of(&self, person: &str, transport: Transport) -> Option<&str> {
        let p = self.people.get(person)?;
        match transport {
            Transport::Webhook => p.webhook_secret.as_deref(),
            Transport::DingTalk => p.dingtalk_secret.as_deref(),
            Transport::Feishu => p.feishu_secret.as_deref(),
            _ => None,
        }
    }

    /// The people a role reaches (none for an unknown role).
    pub fn people_in(&self, role: &str) -> Vec<(&str, &Person)> {
        self.roles
            .get(role)
            .into_iter()
            .flatten()
            .filter_map(|id| self.people.get_key_value(id).map(|(k, p)| (k.as_str(), p)))
            .collect()
    }

    /// Who is on duty at `at` (the calendar decides the local date and whether it is a holiday).
    pub fn on_duty_at(&self, calendar: &BusinessCalendar, at: DateTime<Utc>) -> Vec<(&str, &Person)> {
        let local = at.with_timezone(&calendar.time_zone).date_naive();
        let holiday = calendar.holidays.contains(&local);
        let day = local.weekday();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for e in &self.on_duty {
            let on = (holiday && e.holidays)
                || (!holiday || !self.on_duty.iter().any(|x| x.holidays))
                    && e.days.iter().any(|d| weekday(d) == Some(day));
            if on
                && seen.insert(e.person.as_str())
                && let Some((k, p)) = self.people.get_key_value(&e.person)
            {
                out.push((k.as_str(), p));
            }
        }
        out
    }
}

fn weekday(d: &str) -> Option<Weekday> {
    Some(match d.to_ascii_lowercase().as_str() {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

/// Whose follow-up visits a principal works: `Ok(None)` every team's, `Ok(Some(team))` one
/// team's. Integrations work none.
pub fn follow_up_scope<'a>(p: &crate::core::access::Principal<'a>) -> Result<Option<&'a str>, String> {
    use crate::core::access::Role;
    match p.role {
        Role::Admin => Ok(None),
        Role::Supervisor => Ok(p.team),
        Role::Agent => p
            .agent_team
            .map(Some)
            .ok_or_else(|| "this agent belongs to no team, so has no follow-up visits".into()),
        Role::Integration => Err("integration keys have no follow-up visits".into()),
    }
}

/// May a principal with `scope` work a follow-up of `team`?
pub fn in_scope(scope: Option<&str>, team: Option<&str>) -> bool {
    scope.is_none_or(|s| team == Some(s))
}

/// How a delivery is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// A subscriber's endpoint (or a person's), Standard Webhooks signed.
    Webhook,
    /// The channel integration's callback URL (chat, app, SMS), signed with the key's secret.
    Callback,
    Email,
    WeCom,
    DingTalk,
    Feishu,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Webhook => "webhook",
            Transport::Callback => "callback",
            Transport::Email => "email",
            Transport::WeCom => "wecom",
            Transport::DingTalk => "dingtalk",
            Transport::Feishu => "feishu",
        }
    }

    pub fn parse(s: &str) -> Option<Transport> {
        [
            Transport::Webhook,
            Transport::Callback,
            Transport::Email,
            Transport::WeCom,
            Transport::DingTalk,
            Transport::Feishu,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// Whom a delivery is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Webhook,
    Staff,
    Customer,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Staff => "staff",
            Kind::Customer => "customer",
        }
    }
}

/// One delivery to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Unique per decision: planning the same event again yields the same keys.
    pub key: String,
    /// What the receiver dedupes on (`webhook-id`, Message-ID).
    pub msg_id: String,
    pub kind: Kind,
    pub purpose: String,
    /// Deliveries of one lane for one ticket are sent one at a time, in `seq` order.
    pub lane: String,
    pub endpoint_id: Option<String>,
    pub key_id: Option<String>,
    pub transport: Transport,
    pub target: String,
    /// What to send: the event (webhooks), a rendered mail, a robot's title and text.
    pub payload: Value,
    pub give_up_after_s: i64,
    /// Why this message cannot be sent at all (no address, no template): recorded as failed,
    /// so the ticket shows that the customer was not told.
    pub failed: Option<String>,
}

impl Planned {
    /// A message to one person on one medium (`person` is put in the payload, for the sender to
    /// find that person's own secret). Per medium its own lane: a failing mail server must not
    /// hold back the robot.
    pub fn to_staff(
        person: &str,
        m: &Medium,
        purpose: &str,
        key: String,
        msg_id: String,
        mut payload: Value,
    ) -> Planned {
        payload["person"] = json!(person);
        Planned {
            key,
            msg_id,
            kind: Kind::Staff,
            purpose: purpose.into(),
            lane: format!("staff:{person}:{}", m.transport.as_str()),
            endpoint_id: None,
            key_id: None,
            transport: m.transport,
            target: m.target.clone(),
            payload,
            give_up_after_s: STAFF_GIVE_UP_S,
            failed: None,
        }
    }
}

/// The facts of one event, as the notify stage decodes them from the CloudEvent.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFacts {
    pub id: String,
    /// The routing key: `ticket.assigned`, `sla.breached`, …
    pub name: String,
    pub number: String,
    pub seq: Option<i32>,
    pub at: DateTime<Utc>,
    /// `data.ticket` (the event's masked view), if any.
    pub ticket: Value,
    /// `data.transition.details`.
    pub details: Value,
    pub reason: String,
    /// The whole CloudEvent, as a webhook carries it.
    pub body: Value,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("not a Switchboard event: {0}")]
pub struct NotAnEvent(String);

impl EventFacts {
    /// Reads a CloudEvent as `contracts::events` writes it.
    pub fn decode(routing_key: &str, body: &[u8]) -> Result<EventFacts, NotAnEvent> {
        let v: Value = serde_json::from_slice(body).map_err(|e| NotAnEvent(format!("invalid JSON: {e}")))?;
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| NotAnEvent("no `id`".into()))?
            .to_owned();
        let number = v
            .get("subject")
            .and_then(Value::as_str)
            .ok_or_else(|| NotAnEvent("no `subject` (the ticket number)".into()))?
            .to_owned();
        let at = v
            .get("time")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| NotAnEvent("no RFC 3339 `time`".into()))?;
        // The sequence extension's zero-padded string; a number from before it was one.
        let seq = match v.get("sequence") {
            Some(Value::String(s)) => s.parse::<i32>().ok(),
            Some(n) => n.as_i64().and_then(|s| i32::try_from(s).ok()),
            None => None,
        };
        let data = v.get("data").cloned().unwrap_or(Value::Null);
        let transition = data.get("transition").cloned().unwrap_or(Value::Null);
        // The type names the event wherever the message travelled (a replay into a queue
        // arrives with the queue's name as its routing key).
        let name = v
            .get("type")
            .and_then(Value::as_str)
            .and_then(|t| t.strip_prefix("switchboard."))
            .and_then(|t| t.strip_suffix(".v1"))
            .map(str::to_owned)
            .unwrap_or_else(|| routing_key.to_owned());
        Ok(EventFacts {
            id,
            name,
            number,
            seq,
            at,
            ticket: data.get("ticket").cloned().unwrap_or(Value::Null),
            details: transition.get("details").cloned().unwrap_or(Value::Null),
            reason: transition
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            body: v,
        })
    }

    fn ticket_str(&self, field: &str) -> Option<&str> {
        self.ticket.get(field).and_then(Value::as_str)
    }

    fn data(&self) -> &Value {
        self.details.get("data").unwrap_or(&self.details)
    }
}

/// Does an event type pattern match `name`? `*` matches everything; `ticket.*` every
/// `ticket.` event; anything else must be equal.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.trim();
    if pattern == "*" || pattern == "#" {
        return true;
    }
    match pattern.strip_suffix(".*").or_else(|| pattern.strip_suffix(".#")) {
        Some(prefix) => name.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.')),
        None => pattern == name,
    }
}

/// Where Switchboard may post (a webhook, an integration's callback): an http or https URL with
/// a host and no spaces.
pub fn check_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("url {url:?} is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if !matches!(scheme, "http" | "https") || host.is_empty() || url.chars().any(char::is_whitespace) {
        return Err(format!("url {url:?} is not an http:// or https:// URL with a host"));
    }
    Ok(())
}

/// Checks a subscription's URL (http or https, with a host) and its event patterns (an event
/// type, a family `ticket.*`, or `*`); returns the patterns trimmed.
pub fn check_subscription(url: &str, events: &[String]) -> Result<Vec<String>, String> {
    check_url(url)?;
    let mut out = Vec::new();
    for e in events {
        let e = e.trim();
        if e.is_empty() {
            continue;
        }
        let ok = e == "*"
            || e.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.' || c == '*')
                && !e.starts_with('.')
                && (!e.contains('*') || e.ends_with(".*") && e.matches('*').count() == 1);
        if !ok {
            return Err(format!(
                "event pattern {e:?}: use an event type (ticket.resolved), a family (ticket.*) or *"
            ));
        }
        out.push(e.to_owned());
    }
    if out.is_empty() {
        return Err("events must name at least one event type".into());
    }
    Ok(out)
}

/// A webhook subscription, as planning needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
}

/// Where the customer of a ticket is reached, looked up by the notify stage.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CustomerRoute {
    pub channel: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub language: Option<String>,
    pub subject: Option<String>,
    /// The Message-IDs of the customer's emails on the ticket, oldest first (threading).
    pub message_ids: Vec<String>,
    /// The integration key that submitted the ticket's first message, and its callback URL.
    pub callback: Option<(String, String)>,
    /// The conversation reference the integration gave (chat session, …), echoed back to it.
    pub thread_ref: Option<String>,
}

/// The parts of the policy planning reads (`Policy::notify_rules`).
pub struct Rules<'a> {
    pub notify: &'a NotifyPolicy,
    /// Team id → the role of its supervisor.
    pub supervisors: BTreeMap<&'a str, &'a str>,
    /// The SLA calendar: service hours (quiet hours outside them), holidays, follow-up deadlines.
    pub calendar: &'a BusinessCalendar,
    /// Times in messages are local to this zone.
    pub tz: chrono_tz::Tz,
}

/// What planning needs besides the event.
pub struct Inputs<'a> {
    pub rules: &'a Rules<'a>,
    pub subscriptions: &'a [Subscription],
    /// The customer's route, when the event calls for a customer message.
    pub customer: Option<&'a CustomerRoute>,
    /// The assignee's own media (their user's email), for `assignee` notifications.
    pub assignee: &'a [Medium],
    /// The domain Message-IDs are minted in; `None` when no SMTP server is configured (then
    /// nothing is planned for email).
    pub mail_domain: Option<&'a str>,
    /// Where the desk is (for links in staff notifications) and surveys are answered.
    pub public_url: &'a str,
    /// A fresh survey token, used if this event sends a survey.
    pub survey_token: &'a str,
}

/// Records that planning asks the stage to write besides deliveries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub deliveries: Vec<Planned>,
    /// A survey to record: (survey number, dimensions).
    pub survey: Option<(String, Vec<String>)>,
    /// A follow-up visit to open: (key, reason, due).
    pub follow_up: Option<(String, String, DateTime<Utc>)>,
}

/// Which customer messages an event calls for.
pub fn customer_purposes(e: &EventFacts, n: &NotifyPolicy) -> Vec<&'static str> {
    // A task (`core::groups`) is internal work: the parent's owner speaks to the customer.
    if !n.customer_messages || e.ticket_str("channel") == Some(crate::core::groups::TASK_CHANNEL) {
        return Vec::new();
    }
    let data = e.data();
    match e.name.as_str() {
        "ticket.assigned" | "ticket.queued" => vec!["acknowledgement"],
        "ticket.responded"
            if data
                .get("message")
                .and_then(Value::as_str)
                .is_some_and(|m| !m.trim().is_empty()) =>
        {
            vec!["reply"]
        }
        "sla.breached"
            if data.get("target").and_then(Value::as_str) == Some("next_update")
                || e.details.get("target").and_then(Value::as_str) == Some("next_update") =>
        {
            vec!["progress_update"]
        }
        "ticket.resolved" => {
            let mut p = vec!["resolution"];
            if n.survey.enabled {
                p.push("survey");
            }
            p
        }
        _ => Vec::new(),
    }
}

/// Does this event need the customer's route looked up?
pub fn needs_customer(e: &EventFacts, n: &NotifyPolicy) -> bool {
    !customer_purposes(e, n).is_empty() || follow_up_reason(e, n).is_some()
}

/// Does this event notify staff (whose deliveries are ordered by the ticket's id)?
pub fn needs_ticket(e: &EventFacts, n: &NotifyPolicy) -> bool {
    !staff_roles(e, n).is_empty()
}

/// Does this event notify the assignee personally?
pub fn needs_assignee(e: &EventFacts, n: &NotifyPolicy) -> bool {
    staff_roles(e, n).iter().any(|r| r == ASSIGNEE)
}

fn follow_up_reason(e: &EventFacts, n: &NotifyPolicy) -> Option<&'static str> {
    if e.ticket_str("channel") == Some(crate::core::groups::TASK_CHANNEL) {
        return None;
    }
    match e.name.as_str() {
        "ticket.resolved" => e
            .ticket_str("category")
            .filter(|c| n.follow_up.categories.iter().any(|x| x == c))
            .map(|_| "complaint"),
        "ticket.rated" => {
            let score = e.data().get("score").and_then(Value::as_u64)?;
            (n.follow_up.rating_at_or_below > 0 && score <= u64::from(n.follow_up.rating_at_or_below))
                .then_some("low_rating")
        }
        _ => None,
    }
}

/// The roles an event notifies (before quiet hours narrow them).
fn staff_roles(e: &EventFacts, n: &NotifyPolicy) -> Vec<String> {
    let data = e.data();
    match e.name.as_str() {
        // A ladder's step names the role it notifies; an escalation by hand, whom it reached.
        "ticket.escalated" => data
            .get("notify")
            .or_else(|| data.get("notified"))
            .and_then(Value::as_str)
            .map(|r| vec![r.to_owned()])
            .unwrap_or_default(),
        "ticket.assigned" => {
            let urgent = e
                .ticket_str("priority")
                .is_some_and(|p| n.urgent_priorities.iter().any(|u| u == p));
            if urgent {
                vec![ASSIGNEE.into(), SUPERVISOR.into()]
            } else {
                Vec::new()
            }
        }
        "ticket.reopened" if data.get("rating").is_some() => vec![SUPERVISOR.into()],
        "sla.breached" => {
            if e.ticket_str("assignee").is_some() {
                vec![ASSIGNEE.into()]
            } else {
                vec![SUPERVISOR.into()]
            }
        }
        _ => Vec::new(),
    }
}

fn staff_purpose(e: &EventFacts) -> &'static str {
    match e.name.as_str() {
        "ticket.escalated" => "staff_escalation",
        "ticket.assigned" => "staff_urgent",
        "ticket.reopened" => "staff_low_rating",
        _ => "staff_breach",
    }
}

/// The people a role names for this ticket: `supervisor` is the ticket's team's supervisor
/// role, a team id is that team's supervisor role, anything else a role under `[notify.roles]`.
fn resolve_role<'p>(role: &str, team: Option<&str>, rules: &'p Rules<'_>) -> Vec<(&'p str, &'p Person)> {
    let named = if role == SUPERVISOR {
        team.and_then(|t| rules.supervisors.get(t).copied())
    } else if let Some(s) = rules.supervisors.get(role) {
        Some(*s)
    } else {
        Some(role)
    };
    named.map(|r| rules.notify.people_in(r)).unwrap_or_default()
}

/// Plans every delivery `e` calls for. Pure: the stage looked up `inputs`.
pub fn plan(e: &EventFacts, inputs: &Inputs<'_>) -> Plan {
    let mut out = Plan::default();
    let rules = inputs.rules;
    let n = rules.notify;
    let ticket_id_lane = |lane: &str| lane.to_owned();

    // Downstream subscribers: the event itself, once per endpoint.
    for s in inputs.subscriptions {
        if s.events.iter().any(|p| pattern_matches(p, &e.name)) {
            out.deliveries.push(Planned {
                key: format!("wh:{}:{}", s.id, e.id),
                msg_id: e.id.clone(),
                kind: Kind::Webhook,
                purpose: e.name.clone(),
                lane: ticket_id_lane(&s.id),
                endpoint_id: Some(s.id.clone()),
                key_id: None,
                transport: Transport::Webhook,
                target: s.url.clone(),
                payload: e.body.clone(),
                give_up_after_s: WEBHOOK_GIVE_UP_S,
                failed: None,
            });
        }
    }

    // Staff.
    let roles = staff_roles(e, n);
    if !roles.is_empty() {
        let team = e.ticket_str("team");
        let calendar = rules.calendar;
        // Outside service hours only the person on duty is told (and an urgent ticket's
        // assignee, who is at work since the ticket reached them).
        let quiet = !n.on_duty.is_empty() && !calendar.is_open(e.at);
        let mut people: Vec<(String, Vec<Medium>)> = Vec::new();
        if quiet {
            for (id, p) in n.on_duty_at(calendar, e.at) {
                people.push((id.to_owned(), p.media()));
            }
        }
        {
            for role in roles
                .iter()
                .filter(|r| !quiet || (*r == ASSIGNEE && e.name == "ticket.assigned"))
            {
                if role == ASSIGNEE {
                    if let Some(a) = e.ticket_str("assignee")
                        && !inputs.assignee.is_empty()
                    {
                        people.push((format!("agent:{a}"), inputs.assignee.to_vec()));
                    }
                    continue;
                }
                for (id, p) in resolve_role(role, team, rules) {
                    if !people.iter().any(|(x, _)| x == id) {
                        people.push((id.to_owned(), p.media()));
                    }
                }
            }
        }
        let purpose = staff_purpose(e);
        let context = staff_context(e, inputs, quiet);
        if let Ok(r) = n.templates.render(purpose, &n.staff_language, &context) {
            for (person, media) in people {
                for m in media {
                    if m.transport == Transport::Email && inputs.mail_domain.is_none() {
                        continue;
                    }
                    let key = format!("staff:{}:{}:{}", e.id, person, m.transport.as_str());
                    let msg_id = match inputs.mail_domain {
                        Some(d) if m.transport == Transport::Email => {
                            format!("sb.{}.{}.{}@{d}", e.id, sanitize(&person), purpose)
                        }
                        _ => key.clone(),
                    };
                    let payload = match m.transport {
                        Transport::Email => {
                            json!({ "to": m.target, "subject": r.subject, "text": r.body, "headers": [["X-Switchboard-Ticket", e.number]] })
                        }
                        Transport::Webhook => json!({
                            "type": format!("switchboard.notification.{purpose}.v1"),
                            "ticket": e.number, "event": e.id, "person": person,
                            "title": r.subject, "text": r.body, "link": context["link"],
                        }),
                        _ => json!({ "title": r.subject, "text": r.body }),
                    };
                    // The medium's secret is looked up by person when sending, never stored.
                    out.deliveries
                        .push(Planned::to_staff(&person, &m, purpose, key, msg_id, payload));
                }
            }
        }
    }

    // The customer.
    if let Some(route) = inputs.customer {
        let language = route
            .language
            .clone()
            .or_else(|| e.ticket_str("language").map(str::to_owned))
            .unwrap_or_else(|| "zh-Hans".into());
        for purpose in customer_purposes(e, n) {
            let mut context = customer_context(e, route, inputs);
            if purpose == "survey" {
                let number = format!("{}-S{}", e.number, e.seq.unwrap_or_default());
                context["survey"] = json!({
                    "number": number,
                    "url": format!("{}/v1/surveys/{}", inputs.public_url.trim_end_matches('/'), inputs.survey_token),
                    "dimensions": n.survey.dimensions,
                });
                out.survey = Some((number, n.survey.dimensions.clone()));
            }
            out.deliveries.push(customer_delivery(
                e,
                route,
                inputs,
                purpose,
                n.templates.render(purpose, &language, &context),
            ));
        }
        if let Some(reason) = follow_up_reason(e, n) {
            let due = rules
                .calendar
                .deadline(e.at, n.follow_up.within, crate::core::calendar::Clock::Business);
            out.follow_up = Some((
                format!("{}:{}:{}", e.number, reason, e.seq.unwrap_or_default()),
                reason.into(),
                due,
            ));
            if n.customer_messages {
                let mut context = customer_context(e, route, inputs);
                context["follow_up"] = json!({
                    "due": due.with_timezone(&rules.tz).format("%Y-%m-%d %H:%M").to_string(),
                    "reason": reason,
                });
                out.deliveries.push(customer_delivery(
                    e,
                    route,
                    inputs,
                    "follow_up",
                    n.templates.render("follow_up", &language, &context),
                ));
            }
        }
    }
    carry_trace(e, &mut out.deliveries);
    out
}

/// The event's W3C `traceparent` (its CloudEvents tracing attribute) in every HTTP and mail
/// delivery's payload, which `deliver` sends as the `traceparent` header (a `Traceparent` mail
/// header): a receiver's work joins the ticket's trace. Webhooks carry the event, and so the
/// attribute, already. Group-chat robots get none (their APIs take no trace). Only a value of
/// the header's shape is copied; `deliver` checks it again before sending.
fn carry_trace(e: &EventFacts, deliveries: &mut [Planned]) {
    let Some(tp) = e
        .body
        .get("traceparent")
        .and_then(Value::as_str)
        .filter(|t| t.len() == 55 && t.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
    else {
        return;
    };
    for d in deliveries.iter_mut() {
        if matches!(d.transport, Transport::Webhook | Transport::Callback | Transport::Email)
            && let Some(obj) = d.payload.as_object_mut()
        {
            obj.entry("traceparent").or_insert_with(|| json!(tp));
        }
    }
}

/// `s` with every character but ASCII letters, digits, `-` and `_` replaced by `_`: safe in a
/// Message-ID or a delivery key.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// How the customer is reached for this ticket, or why they cannot be: email tickets by
/// email (with an SMTP server), every other channel through the submitting integration's
/// callback URL. Customer-written text never goes to an address that did not write to us by
/// email: a web form's `email` field is not proof the address is theirs.
fn customer_delivery(
    e: &EventFacts,
    route: &CustomerRoute,
    inputs: &Inputs<'_>,
    purpose: &str,
    rendered: Result<Rendered, TemplateError>,
) -> Planned {
    // The acknowledgement is sent once per ticket, whatever reassignments follow.
    let key = if purpose == "acknowledgement" {
        format!("cust:{}:{purpose}", e.number)
    } else {
        format!("cust:{}:{purpose}:{}", e.number, e.seq.unwrap_or_default())
    };
    let by_email = route.channel == "email";
    let unreachable = |transport: Transport, why: String| Planned {
        key: key.clone(),
        msg_id: key.clone(),
        kind: Kind::Customer,
        purpose: purpose.into(),
        lane: "customer".into(),
        endpoint_id: None,
        key_id: None,
        transport,
        target: String::new(),
        payload: json!({}),
        give_up_after_s: 0,
        failed: Some(why),
    };
    let r = match rendered {
        Ok(r) => r,
        Err(err) => {
            let t = if by_email {
                Transport::Email
            } else {
                Transport::Callback
            };
            return unreachable(t, err.to_string());
        }
    };
    if by_email {
        let Some(to) = route.email.as_ref() else {
            return unreachable(Transport::Email, "the customer's email address is unknown".into());
        };
        let Some(domain) = inputs.mail_domain else {
            return unreachable(
                Transport::Email,
                "no SMTP server is configured (smtp_url): email customers get no messages".into(),
            );
        };
        let subject = if r.subject.contains(&e.number) {
            r.subject
        } else {
            format!("{} [#{}]", r.subject, e.number)
        };
        let msg_id = format!("sb.{}.{}.{}@{domain}", e.number, e.seq.unwrap_or_default(), purpose);
        return Planned {
            key,
            msg_id: msg_id.clone(),
            kind: Kind::Customer,
            purpose: purpose.into(),
            lane: "customer".into(),
            endpoint_id: None,
            key_id: None,
            transport: Transport::Email,
            target: to.clone(),
            payload: json!({
                "to": to,
                "to_name": route.name,
                "subject": subject,
                "text": r.body,
                "message_id": msg_id,
                "in_reply_to": route.message_ids.last(),
                "references": route.message_ids,
                "headers": [["X-Switchboard-Ticket", e.number], ["Auto-Submitted", "auto-replied"]],
            }),
            give_up_after_s: CUSTOMER_GIVE_UP_S,
            failed: None,
        };
    }
    let Some((key_id, url)) = route.callback.as_ref() else {
        return unreachable(
            Transport::Callback,
            format!(
                "no way to reach a {} customer: the integration that submitted the request has no callback URL (switchboard keys set-callback)",
                route.channel
            ),
        );
    };
    let msg_id = format!("{}.{}.{purpose}", e.number, e.seq.unwrap_or_default());
    Planned {
        key,
        msg_id: msg_id.clone(),
        kind: Kind::Customer,
        purpose: purpose.into(),
        lane: "customer".into(),
        endpoint_id: None,
        key_id: Some(key_id.clone()),
        transport: Transport::Callback,
        target: url.clone(),
        payload: json!({
            "type": format!("switchboard.customer_message.{purpose}.v1"),
            "id": msg_id,
            "ticket": e.number,
            "channel": route.channel,
            "thread_ref": route.thread_ref,
            "in_reply_to": route.message_ids,
            "to": { "name": route.name, "email": route.email },
            "subject": r.subject,
            "text": r.body,
            "time": e.at,
        }),
        give_up_after_s: CUSTOMER_GIVE_UP_S,
        failed: None,
    }
}

/// A delivery's target as people may see it (the ticket view): an address as it is; a URL
/// only as scheme and host, since robot and webhook URLs carry tokens in their path or query.
pub fn shown_target(transport: &str, target: &str) -> String {
    if transport == Transport::Email.as_str() || target.is_empty() {
        return target.to_owned();
    }
    match target.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}/…")
        }
        None => "…".into(),
    }
}

fn local(tz: chrono_tz::Tz, t: Option<&str>) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(t?).ok()?;
    Some(t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
}

fn staff_context(e: &EventFacts, inputs: &Inputs<'_>, quiet: bool) -> Value {
    let tz = inputs.rules.tz;
    let data = e.data();
    let due = e
        .ticket_str("resolution_due")
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
        .map(|d| d.with_timezone(&Utc));
    let minutes_left = due.map(|d| (d - e.at).num_minutes());
    json!({
        "ticket": {
            "number": e.number,
            "priority": e.ticket_str("priority"),
            "category": e.ticket_str("category"),
            "team": e.ticket_str("team"),
            "assignee": e.ticket_str("assignee"),
            "state": e.ticket_str("state"),
            "resolution_due": local(tz, e.ticket_str("resolution_due")),
        },
        "minutes_left": minutes_left,
        "event": e.name,
        "reason": e.reason,
        "target": data.get("target").or_else(|| e.details.get("target")),
        "step": data.get("step"),
        "repeat": data.get("repeat"),
        "role": data.get("notify"),
        "rating": data.get("rating"),
        "on_duty": quiet,
        "link": format!("{}/desk#{}", inputs.public_url.trim_end_matches('/'), e.number),
    })
}

fn customer_context(e: &EventFacts, route: &CustomerRoute, inputs: &Inputs<'_>) -> Value {
    let tz = inputs.rules.tz;
    let data = e.data();
    json!({
        "ticket": {
            "number": e.number,
            "subject": route.subject,
            "category": e.ticket_str("category"),
            "priority": e.ticket_str("priority"),
            "resolution_due": local(tz, e.ticket_str("resolution_due")),
            "first_response_due": local(tz, e.ticket_str("first_response_due")),
        },
        "customer": { "name": route.name },
        "message": data.get("message"),
        "result": data.get("result"),
        "root_cause": data.get("root_cause"),
        "survey": null,
        "follow_up": null,
    })
}

#[cfg(test)]
mod tests;
