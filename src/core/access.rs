//! Who may do what: the principals behind API keys and the pure rules that decide, for each
//! request, whether the principal may submit, read or act. The HTTP layer asks; nothing here
//! does I/O. `docs/SECURITY.md` states the same table for people.
//!
//! - An **integration** (a channel's relay, IVR or chat platform) submits requests for its
//!   channel and reads the status of the requests it submitted. For the customer it may only
//!   report a reply (`customer_replied`), a rating (`rate`) or the customer's online
//!   confirmation of the result (`confirm`), and only on a ticket its own
//!   request opened. It never reads a ticket.
//! - An **agent** reads the tickets of their team, claims from their team's queue, notes on
//!   the team's tickets and works the tickets assigned to them; reassigning, acknowledging an
//!   escalation, changing the priority or a deadline is for a supervisor. A ticket waiting
//!   unassigned in their team's queue because the classifier was unsure (`needs_triage`: the
//!   triage team's queue) they may also reclassify: that is the triage decision.
//!   The ticket's **helper** (协助人, named in its service record) may read and work it as its
//!   assignee does; only the assignee or a supervisor chooses the helper (`core::actions`).
//! - A **supervisor** reads and acts on every ticket of their team (or of every team when the
//!   key names none).
//! - An **admin** may do everything.
//!
//! The actor written on a transition is always [`Principal::actor`], never what a body claims.

use crate::core::actions::Action;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Integration,
    Agent,
    Supervisor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Integration, Role::Agent, Role::Supervisor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Integration => "integration",
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The authenticated caller of one request, borrowed from its key (no copy per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal<'a> {
    /// The key's id (`key_…`): what the audit trail and request ownership refer to.
    pub key_id: &'a str,
    /// Who holds the key (a relay's name, a supervisor's name).
    pub name: &'a str,
    pub role: Role,
    /// An integration restricted to one channel.
    pub channel: Option<&'a str>,
    /// The agent an agent key acts as, and that agent's team now.
    pub agent: Option<&'a str>,
    pub agent_team: Option<&'a str>,
    /// A supervisor's team; `None`: every team.
    pub team: Option<&'a str>,
}

/// What the rules need to know about a ticket.
#[derive(Debug, Clone, Copy, Default)]
pub struct TicketFacts<'a> {
    pub team: Option<&'a str>,
    pub assignee: Option<&'a str>,
    /// The key that submitted the request that opened the ticket.
    pub opened_by_key: Option<&'a str>,
    /// The classifier was unsure: a person decides the category (`reclassify`).
    pub needs_triage: bool,
    /// The helper (协助人) named in the service record: an agent who works beside the assignee.
    pub helper: Option<&'a str>,
}

impl<'a> TicketFacts<'a> {
    /// The facts of `t`, opened by the request that `opened_by_key` submitted.
    pub fn of(t: &'a crate::core::ticket::Ticket, opened_by_key: Option<&'a str>) -> Self {
        TicketFacts {
            team: t.team.as_deref(),
            assignee: t.assignee.as_deref(),
            opened_by_key,
            needs_triage: t.needs_triage,
            helper: t.life.record.helper.as_deref(),
        }
    }
}

/// Why a principal may not do something: the 403's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

fn deny<T>(message: impl Into<String>) -> Result<T, Denied> {
    Err(Denied(message.into()))
}

impl Principal<'_> {
    /// The transition actor: `agent:<id>`, `supervisor:<name>`, `admin:<name>`, or for an
    /// integration acting for the customer, `customer:<key id>`.
    pub fn actor(&self) -> String {
        match self.role {
            Role::Integration => format!("customer:{}", self.key_id),
            Role::Agent => format!("agent:{}", self.agent.unwrap_or(self.name)),
            Role::Supervisor => format!("supervisor:{}", self.name),
            Role::Admin => format!("admin:{}", self.name),
        }
    }

    /// Whether this principal may submit a request of `channel`.
    pub fn may_submit(&self, channel: &str) -> Result<(), Denied> {
        match self.role {
            Role::Integration => match self.channel {
                Some(allowed) if allowed != channel => {
                    deny(format!("this key may only submit {allowed} requests, not {channel}"))
                }
                _ => Ok(()),
            },
            Role::Admin => Ok(()),
            Role::Agent | Role::Supervisor => deny(format!(
                "a {} key cannot submit requests: use an integration key",
                self.role.as_str()
            )),
        }
    }

    /// Whether this principal may read the status of a request of `channel` that `submitted_by`
    /// (a key id; `None` when unknown or not yet stored) submitted.
    pub fn may_read_request(&self, channel: &str, submitted_by: Option<&str>) -> Result<(), Denied> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Integration => {
                self.may_submit(channel)?;
                match submitted_by {
                    Some(k) if k == self.key_id => Ok(()),
                    _ => deny("this key did not submit that request"),
                }
            }
            Role::Agent | Role::Supervisor => deny("request status is for the integration that submitted it"),
        }
    }

    fn covers_team(&self, ticket: &TicketFacts<'_>) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Supervisor => self.team.is_none() || self.team == ticket.team,
            Role::Agent => {
                self.agent.is_some() && (self.agent == ticket.assignee || self.agent == ticket.helper)
                    || self.agent_team.is_some() && self.agent_team == ticket.team
            }
            Role::Integration => false,
        }
    }

    /// Whether this principal may read the ticket (its contacts, messages and history).
    pub fn may_read(&self, ticket: &TicketFacts<'_>) -> Result<(), Denied> {
        match self.role {
            Role::Integration => deny("an integration key cannot read tickets"),
            _ if self.covers_team(ticket) => Ok(()),
            Role::Agent => deny("this ticket is neither yours nor your team's"),
            _ => deny("this ticket belongs to another team"),
        }
    }

    /// Whether this principal may take `action` on the ticket.
    pub fn may_act(&self, action: &Action, ticket: &TicketFacts<'_>) -> Result<(), Denied> {
        self.may_act_kind(action.kind(), ticket)
    }

    /// [`Principal::may_act`] by the action's kind (`respond`, `claim`, …).
    pub fn may_act_kind(&self, kind: &str, ticket: &TicketFacts<'_>) -> Result<(), Denied> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Integration => {
                if !CUSTOMER_ACTIONS.contains(&kind) {
                    return deny(format!(
                        "an integration key may only report the customer's reply, rating or confirmation, not {kind}"
                    ));
                }
                match ticket.opened_by_key {
                    Some(k) if k == self.key_id => Ok(()),
                    _ => deny("this key's requests did not open that ticket"),
                }
            }
            Role::Supervisor => {
                if kind == "claim" {
                    deny("claiming is for agents: reassign the ticket to one")
                } else if self.covers_team(ticket) {
                    Ok(())
                } else {
                    deny("this ticket belongs to another team")
                }
            }
            Role::Agent => {
                // The helper (协助人) works beside the assignee: they answer, record and attach,
                // but only the owner moves, merges, closes or splits the ticket.
                let owner = self.agent.is_some() && self.agent == ticket.assignee;
                let helping = self.agent.is_some() && self.agent == ticket.helper && HELPER_ACTIONS.contains(&kind);
                let mine = owner || helping;
                let my_team = self.agent_team.is_some() && self.agent_team == ticket.team;
                match kind {
                    _ if SUPERVISOR_ACTIONS.contains(&kind) => {
                        deny(format!("{kind} is for a supervisor of the ticket's team"))
                    }
                    "claim" if my_team => Ok(()),
                    "claim" => deny("an agent claims only from their own team's queue"),
                    // The triage decision on a ticket waiting in the team's queue.
                    "reclassify" if my_team && ticket.needs_triage && ticket.assignee.is_none() => Ok(()),
                    // A note helps whoever works the ticket: anyone who may read it may add one.
                    "note" if mine || my_team => Ok(()),
                    _ if mine => Ok(()),
                    _ => deny("only the ticket's assignee or a supervisor may act on it"),
                }
            }
        }
    }

    /// The action kinds this principal may take on the ticket, of those `possible` (by state).
    pub fn allowed_actions(&self, ticket: &TicketFacts<'_>, possible: impl Fn(&str) -> bool) -> Vec<&'static str> {
        Action::KINDS
            .into_iter()
            .filter(|k| possible(k) && self.may_act_kind(k, ticket).is_ok())
            .collect()
    }
}

/// What an integration may report for the customer.
const CUSTOMER_ACTIONS: [&str; 3] = ["customer_replied", "rate", "confirm"];
/// What the helper named in the service record may do beside the assignee: work with the
/// customer and record what was done, not move, close, merge, split or reclassify the ticket.
pub const HELPER_ACTIONS: [&str; 11] = [
    "start",
    "respond",
    "wait_for_customer",
    "customer_replied",
    "note",
    "attach",
    "link",
    "update_record",
    "workaround",
    "milestone",
    "confirm",
];
/// What only a supervisor (or an admin) may do: overrule the plan the pipeline made.
pub const SUPERVISOR_ACTIONS: [&str; 4] = ["reassign", "acknowledge_escalation", "set_priority", "set_due"];

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role) -> Principal<'static> {
        Principal {
            key_id: "key_1",
            name: "p",
            role,
            channel: None,
            agent: None,
            agent_team: None,
            team: None,
        }
    }

    fn agent(id: &'static str, team: &'static str) -> Principal<'static> {
        Principal {
            agent: Some(id),
            agent_team: Some(team),
            ..principal(Role::Agent)
        }
    }

    fn every_action() -> Vec<Action> {
        vec![
            Action::Respond { message: None },
            Action::Start,
            Action::WaitForCustomer { reason: None },
            Action::CustomerReplied { message: None },
            Action::Resolve {
                result: "r".into(),
                root_cause: None,
                notes: None,
            },
            Action::Rate {
                score: 5,
                comment: None,
                reason: None,
            },
            Action::Reopen { reason: "r".into() },
            Action::Close { reason: None },
            Action::Reassign {
                agent: "a".into(),
                reason: None,
            },
            Action::AcknowledgeEscalation { note: None },
            Action::SetPriority {
                priority: "P4".into(),
                reason: "r".into(),
            },
            Action::Workaround {
                done: "d".into(),
                note: None,
            },
            Action::Milestone {
                name: "plan".into(),
                note: None,
            },
        ]
    }

    #[test]
    fn an_integration_reads_no_ticket_and_speaks_only_for_the_customer_of_its_own_tickets() {
        let p = Principal {
            channel: Some("email"),
            ..principal(Role::Integration)
        };
        let own = TicketFacts {
            opened_by_key: Some("key_1"),
            ..Default::default()
        };
        let other = TicketFacts {
            opened_by_key: Some("key_2"),
            ..Default::default()
        };
        assert!(p.may_read(&own).is_err());
        for a in every_action() {
            let allowed = matches!(a, Action::CustomerReplied { .. } | Action::Rate { .. });
            assert_eq!(p.may_act(&a, &own).is_ok(), allowed, "{}", a.kind());
            assert!(p.may_act(&a, &other).is_err(), "{}", a.kind());
            assert!(p.may_act(&a, &TicketFacts::default()).is_err(), "{}", a.kind());
        }
        assert_eq!(p.actor(), "customer:key_1");
    }

    #[test]
    fn a_channel_key_submits_and_reads_only_its_channel_and_its_own_requests() {
        let p = Principal {
            channel: Some("email"),
            ..principal(Role::Integration)
        };
        assert!(p.may_submit("email").is_ok());
        assert!(p.may_submit("app").is_err());
        assert!(p.may_read_request("email", Some("key_1")).is_ok());
        assert!(p.may_read_request("email", Some("key_2")).is_err());
        assert!(p.may_read_request("email", None).is_err());
        assert!(p.may_read_request("app", Some("key_1")).is_err());
        assert!(principal(Role::Integration).may_submit("app").is_ok());
    }

    #[test]
    fn people_do_not_submit_requests_or_read_their_status() {
        for r in [Role::Agent, Role::Supervisor] {
            assert!(principal(r).may_submit("chat").is_err());
            assert!(principal(r).may_read_request("chat", Some("key_1")).is_err());
        }
        assert!(principal(Role::Admin).may_submit("chat").is_ok());
        assert!(principal(Role::Admin).may_read_request("chat", Some("key_9")).is_ok());
    }

    #[test]
    fn an_agent_reads_the_team_and_works_only_their_own_tickets() {
        let p = agent("a1", "billing");
        let mine = TicketFacts {
            team: Some("billing"),
            assignee: Some("a1"),
            ..Default::default()
        };
        let colleague = TicketFacts {
            team: Some("billing"),
            assignee: Some("a2"),
            ..Default::default()
        };
        let elsewhere = TicketFacts {
            team: Some("tech"),
            assignee: Some("a3"),
            ..Default::default()
        };
        assert!(p.may_read(&mine).is_ok());
        assert!(p.may_read(&colleague).is_ok());
        assert!(p.may_read(&elsewhere).is_err());
        for a in every_action() {
            let allowed = !SUPERVISOR_ACTIONS.contains(&a.kind());
            assert_eq!(p.may_act(&a, &mine).is_ok(), allowed, "{}", a.kind());
            assert!(p.may_act(&a, &colleague).is_err(), "{}", a.kind());
            assert!(p.may_act(&a, &elsewhere).is_err(), "{}", a.kind());
        }
        assert_eq!(p.actor(), "agent:a1");
    }

    #[test]
    fn a_supervisor_acts_on_their_team_or_on_every_team() {
        let all = Principal {
            name: "boss",
            ..principal(Role::Supervisor)
        };
        let billing = Principal {
            team: Some("billing"),
            ..all
        };
        let t = TicketFacts {
            team: Some("tech"),
            ..Default::default()
        };
        let unrouted = TicketFacts::default();
        let set = Action::SetPriority {
            priority: "P1".into(),
            reason: "r".into(),
        };
        assert!(all.may_read(&t).is_ok() && all.may_act(&set, &t).is_ok());
        assert!(all.may_act(&set, &unrouted).is_ok());
        assert!(billing.may_read(&t).is_err() && billing.may_act(&set, &t).is_err());
        assert!(billing.may_act(&set, &unrouted).is_err());
        assert_eq!(all.actor(), "supervisor:boss");
    }

    /// Every role × action × ticket relation, as a table a person can check: `Y` allowed,
    /// `.` refused. Columns: the principal's own ticket (assigned to the agent / opened by the
    /// integration), a team colleague's ticket, another team's ticket, a queued ticket of the
    /// principal's team (unassigned). The state is the plan's to decide (a claim of a ticket
    /// that is not queued is refused there, with 409).
    #[test]
    fn every_role_and_action_is_decided_as_the_table_says() {
        const TABLE: &[(&str, &str, &str, &str, &str)] = &[
            // kind                    integration  agent   team-sup  all-sup/admin
            ("claim", "....", "YY.Y", "....", "YYYY"),
            ("start", "....", "Y...", "YY.Y", "YYYY"),
            ("respond", "....", "Y...", "YY.Y", "YYYY"),
            ("note", "....", "YY.Y", "YY.Y", "YYYY"),
            ("wait_for_customer", "....", "Y...", "YY.Y", "YYYY"),
            ("customer_replied", "Y...", "Y...", "YY.Y", "YYYY"),
            ("resolve", "....", "Y...", "YY.Y", "YYYY"),
            ("reopen", "....", "Y...", "YY.Y", "YYYY"),
            ("close", "....", "Y...", "YY.Y", "YYYY"),
            ("rate", "Y...", "Y...", "YY.Y", "YYYY"),
            ("reassign", "....", "....", "YY.Y", "YYYY"),
            ("transfer", "....", "Y...", "YY.Y", "YYYY"),
            ("escalate", "....", "Y...", "YY.Y", "YYYY"),
            ("acknowledge_escalation", "....", "....", "YY.Y", "YYYY"),
            ("set_priority", "....", "....", "YY.Y", "YYYY"),
            ("reclassify", "....", "Y...", "YY.Y", "YYYY"),
            ("set_due", "....", "....", "YY.Y", "YYYY"),
            ("link", "....", "Y...", "YY.Y", "YYYY"),
            ("merge", "....", "Y...", "YY.Y", "YYYY"),
            ("attach", "....", "Y...", "YY.Y", "YYYY"),
            // Milestones: the assignee or a supervisor of the team; no colleague, no integration.
            ("workaround", "....", "Y...", "YY.Y", "YYYY"),
            ("milestone", "....", "Y...", "YY.Y", "YYYY"),
            ("add_task", "....", "Y...", "YY.Y", "YYYY"),
            ("update_record", "....", "Y...", "YY.Y", "YYYY"),
            ("confirm", "Y...", "Y...", "YY.Y", "YYYY"),
        ];
        assert_eq!(TABLE.len(), Action::KINDS.len());
        let own = TicketFacts {
            team: Some("billing"),
            assignee: Some("a1"),
            opened_by_key: Some("key_1"),
            needs_triage: false,
            helper: None,
        };
        let colleague = TicketFacts {
            team: Some("billing"),
            assignee: Some("a2"),
            opened_by_key: Some("key_2"),
            needs_triage: false,
            helper: None,
        };
        let elsewhere = TicketFacts {
            team: Some("tech"),
            assignee: Some("a3"),
            opened_by_key: Some("key_2"),
            needs_triage: false,
            helper: None,
        };
        let queued = TicketFacts {
            team: Some("billing"),
            assignee: None,
            opened_by_key: Some("key_2"),
            needs_triage: false,
            helper: None,
        };
        let relations = [own, colleague, elsewhere, queued];
        let team_sup = Principal {
            team: Some("billing"),
            ..principal(Role::Supervisor)
        };
        let all_sup = principal(Role::Supervisor);
        let admin = principal(Role::Admin);
        let integration = principal(Role::Integration);
        let agent = agent("a1", "billing");
        for (kind, integ, ag, sup, top) in TABLE {
            assert!(Action::KINDS.contains(kind), "{kind} is not an action");
            for (who, row) in [(&integration, integ), (&agent, ag), (&team_sup, sup), (&admin, top)] {
                for (i, facts) in relations.iter().enumerate() {
                    let want = row.as_bytes()[i] == b'Y';
                    let got = who.may_act_kind(kind, facts).is_ok();
                    assert_eq!(got, want, "{:?} {kind} on relation {i}", who.role);
                }
            }
            // A supervisor of every team may do what an admin may, except claim.
            for facts in &relations {
                assert_eq!(
                    all_sup.may_act_kind(kind, facts).is_ok(),
                    *kind != "claim",
                    "all-team supervisor {kind}"
                );
            }
        }
    }

    #[test]
    fn allowed_actions_are_the_permitted_ones_that_the_state_allows() {
        let a = agent("a1", "billing");
        let own = TicketFacts {
            team: Some("billing"),
            assignee: Some("a1"),
            opened_by_key: None,
            needs_triage: false,
            helper: None,
        };
        let allowed = a.allowed_actions(&own, |k| k != "close");
        assert!(allowed.contains(&"respond") && allowed.contains(&"note"));
        assert!(!allowed.contains(&"close") && !allowed.contains(&"set_priority"));
    }

    /// The triage queue: a triage agent decides the category of a flagged ticket waiting there,
    /// and nothing else changes. Nobody else reaches it: not an agent of another team, nor a
    /// colleague once another triage agent holds it, nor anyone by reclassifying a ticket
    /// nobody flagged.
    #[test]
    fn a_triage_agent_decides_flagged_tickets_of_their_queue_and_no_one_else_gains_anything() {
        let triage = agent("tg-1", "triage");
        let outsider = agent("cr-1", "customer_relations");
        let waiting = TicketFacts {
            team: Some("triage"),
            assignee: None,
            opened_by_key: None,
            needs_triage: true,
            helper: None,
        };
        let held = TicketFacts {
            assignee: Some("tg-2"),
            ..waiting
        };
        let decided = TicketFacts {
            needs_triage: false,
            ..waiting
        };
        assert!(triage.may_read(&waiting).is_ok());
        assert!(triage.may_act_kind("reclassify", &waiting).is_ok());
        // Only the decision: the rest of an unassigned ticket is still the assignee's to work.
        for kind in Action::KINDS {
            let allowed = matches!(kind, "reclassify" | "claim" | "note");
            assert_eq!(triage.may_act_kind(kind, &waiting).is_ok(), allowed, "{kind}");
        }
        assert!(
            triage.may_act_kind("reclassify", &held).is_err(),
            "a colleague's ticket"
        );
        assert!(
            triage.may_act_kind("reclassify", &decided).is_err(),
            "nothing to decide"
        );
        // Another team's agent neither sees nor decides a triage ticket.
        for facts in [&waiting, &held, &decided] {
            assert!(outsider.may_read(facts).is_err());
            assert!(outsider.may_act_kind("reclassify", facts).is_err());
        }
        let unteamed = Principal {
            agent: Some("x-1"),
            agent_team: None,
            ..principal(Role::Agent)
        };
        let nowhere = TicketFacts { team: None, ..waiting };
        assert!(
            unteamed.may_act_kind("reclassify", &nowhere).is_err(),
            "no team is no team"
        );
        // A team supervisor of another team neither; the triage team's supervisor may.
        let other_sup = Principal {
            team: Some("customer_relations"),
            ..principal(Role::Supervisor)
        };
        let triage_sup = Principal {
            team: Some("triage"),
            ..principal(Role::Supervisor)
        };
        assert!(other_sup.may_read(&waiting).is_err() && other_sup.may_act_kind("reclassify", &waiting).is_err());
        assert!(triage_sup.may_act_kind("reclassify", &waiting).is_ok());
    }

    /// The helper (协助人) of another team reads and works the ticket they help on, as its
    /// assignee does; no other agent gains anything, nor does the helper on other tickets.
    #[test]
    fn a_helper_works_the_ticket_and_no_other_agent_gains_anything() {
        let helped = TicketFacts {
            team: Some("billing"),
            assignee: Some("a1"),
            opened_by_key: None,
            needs_triage: false,
            helper: Some("t9"),
        };
        let helper = agent("t9", "tech");
        let stranger = agent("t8", "tech");
        let unnamed = Principal {
            agent: None,
            agent_team: Some("tech"),
            ..principal(Role::Agent)
        };
        assert!(helper.may_read(&helped).is_ok());
        for kind in [
            "respond",
            "note",
            "update_record",
            "confirm",
            "attach",
            "workaround",
            "milestone",
        ] {
            assert!(helper.may_act_kind(kind, &helped).is_ok(), "{kind}");
        }
        // Only the owner resolves, moves, merges, closes, splits or reclassifies the ticket.
        for kind in [
            "resolve",
            "transfer",
            "merge",
            "close",
            "add_task",
            "reclassify",
            "escalate",
            "reopen",
        ] {
            assert!(helper.may_act_kind(kind, &helped).is_err(), "{kind}");
        }
        for kind in SUPERVISOR_ACTIONS {
            assert!(helper.may_act_kind(kind, &helped).is_err(), "{kind}");
        }
        for who in [&stranger, &unnamed] {
            assert!(who.may_read(&helped).is_err());
            for kind in Action::KINDS {
                assert!(who.may_act_kind(kind, &helped).is_err(), "{kind}");
            }
        }
        let elsewhere = TicketFacts {
            helper: Some("t7"),
            ..helped
        };
        assert!(helper.may_read(&elsewhere).is_err() && helper.may_act_kind("update_record", &elsewhere).is_err());
        // A supervisor of the helper's team does not reach the ticket through the helper.
        let tech_sup = Principal {
            team: Some("tech"),
            ..principal(Role::Supervisor)
        };
        assert!(tech_sup.may_read(&helped).is_err() && tech_sup.may_act_kind("update_record", &helped).is_err());
        // An integration may confirm for the customer only on a ticket its request opened.
        let integration = principal(Role::Integration);
        assert!(integration.may_act_kind("confirm", &helped).is_err());
        assert!(
            integration
                .may_act_kind(
                    "update_record",
                    &TicketFacts {
                        opened_by_key: Some("key_1"),
                        ..helped
                    }
                )
                .is_err()
        );
        assert!(
            integration
                .may_act_kind(
                    "confirm",
                    &TicketFacts {
                        opened_by_key: Some("key_1"),
                        ..helped
                    }
                )
                .is_ok()
        );
    }

    #[test]
    fn roles_round_trip_their_names() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    /// A task is opened on a group ticket by whoever may work it: its assignee, a supervisor of
    /// its team, an admin; not a teammate who does not own it, another team, or an integration.
    #[test]
    fn tasks_are_added_by_the_owner_and_the_team_s_supervisor_only() {
        let parent = TicketFacts {
            team: Some("front_line"),
            assignee: Some("fl-1"),
            opened_by_key: Some("key_1"),
            needs_triage: false,
            helper: None,
        };
        let task = Action::AddTask {
            team: "billing".into(),
            summary: "refund".into(),
        };
        assert!(agent("fl-1", "front_line").may_act(&task, &parent).is_ok());
        assert!(agent("fl-2", "front_line").may_act(&task, &parent).is_err());
        assert!(agent("bl-1", "billing").may_act(&task, &parent).is_err());
        let sup = |team| Principal {
            team: Some(team),
            ..principal(Role::Supervisor)
        };
        assert!(sup("front_line").may_act(&task, &parent).is_ok());
        assert!(sup("billing").may_act(&task, &parent).is_err());
        assert!(principal(Role::Admin).may_act(&task, &parent).is_ok());
        assert!(principal(Role::Integration).may_act(&task, &parent).is_err());
    }
}
