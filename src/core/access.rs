//! Who may do what: the principals behind API keys and the pure rules that decide, for each
//! request, whether the principal may submit, read or act. The HTTP layer asks; nothing here
//! does I/O. `docs/SECURITY.md` states the same table for people.
//!
//! - An **integration** (a channel's relay, IVR or chat platform) submits requests for its
//!   channel and reads the status of the requests it submitted. For the customer it may only
//!   report a reply (`customer_replied`) or a rating (`rate`), and only on a ticket its own
//!   request opened. It never reads a ticket.
//! - An **agent** reads the tickets of their team and works the tickets assigned to them; a
//!   priority change is for a supervisor.
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
}

impl<'a> TicketFacts<'a> {
    /// The facts of `t`, opened by the request that `opened_by_key` submitted.
    pub fn of(t: &'a crate::core::ticket::Ticket, opened_by_key: Option<&'a str>) -> Self {
        TicketFacts {
            team: t.team.as_deref(),
            assignee: t.assignee.as_deref(),
            opened_by_key,
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
                self.agent.is_some() && self.agent == ticket.assignee
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
        match self.role {
            Role::Admin => Ok(()),
            Role::Integration => {
                if !matches!(action, Action::CustomerReplied { .. } | Action::Rate { .. }) {
                    return deny(format!(
                        "an integration key may only report the customer's reply or rating, not {}",
                        action.kind()
                    ));
                }
                match ticket.opened_by_key {
                    Some(k) if k == self.key_id => Ok(()),
                    _ => deny("this key's requests did not open that ticket"),
                }
            }
            Role::Supervisor => {
                if self.covers_team(ticket) {
                    Ok(())
                } else {
                    deny("this ticket belongs to another team")
                }
            }
            Role::Agent => {
                if matches!(action, Action::SetPriority { .. }) {
                    return deny("changing a ticket's priority is for a supervisor");
                }
                if self.agent.is_some() && self.agent == ticket.assignee {
                    Ok(())
                } else {
                    deny("only the ticket's assignee or a supervisor may act on it")
                }
            }
        }
    }
}

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
            let allowed = !matches!(a, Action::SetPriority { .. });
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

    #[test]
    fn roles_round_trip_their_names() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
