//! Assign stage: team by routing rule, agent by skill, presence and load.
//!
//! New tickets and the team's queued tickets are considered together in due-time order, so a
//! fresh ticket never jumps ahead of one that has waited with an earlier deadline. A drain
//! message (sent when an agent comes online, gets a higher cap or finishes a ticket) runs the
//! same code with no new tickets.

use super::{Because, Context, Decision, commit_decisions, decode_work, finish, settle_work};
use crate::contracts::StageName;
use crate::contracts::work::DrainMessage;
use crate::core::routing::{Agent, Need, choose_agent, choose_team};
use crate::core::state::TicketState;
use crate::core::ticket::Ticket;
use crate::runtime::runner::{Inbound, Outcome, Stage};
use crate::store::StoreError;
use crate::store::agents;
use crate::store::ledger;
use crate::store::tickets;
use chrono::Utc;
use deadpool_postgres::Transaction;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};

pub struct Assign {
    pub ctx: Context,
}

/// Most queued tickets one batch looks at per call; the rest wait for the next drain.
const QUEUE_SCAN_LIMIT: i64 = 500;

fn language_code(language: Option<&str>) -> String {
    match language {
        Some(l) if l.starts_with("zh") => "zh".into(),
        Some(l) => l.split('-').next().unwrap_or(l).to_owned(),
        None => String::new(),
    }
}

enum Candidate {
    New { index: usize, key: String, ticket: Ticket },
    Queued { ticket: Ticket },
}

impl Candidate {
    fn ticket(&self) -> &Ticket {
        match self {
            Candidate::New { ticket, .. } | Candidate::Queued { ticket } => ticket,
        }
    }
}

impl Stage for Assign {
    fn name(&self) -> &'static str {
        StageName::Assign.as_str()
    }

    async fn process(&self, tx: &Transaction<'_>, batch: &[Inbound]) -> Result<Vec<Outcome>, StoreError> {
        {
            let policy = &self.ctx.policy;
            let routing = &policy.doc.routing;
            // The one lock order (`store::locks`): agents, then tickets. Which teams' agents a
            // batch needs depends on its tickets, so read them first without a lock, then lock
            // both in one call; a ticket that changed in between is superseded (or retried).
            let decoded = decode_work(batch, self.name(), true);
            let ids = decoded.ticket_ids();
            let route = |t: &crate::core::ticket::Ticket| {
                choose_team(
                    routing,
                    t.category.as_deref().unwrap_or(""),
                    t.priority.as_deref().unwrap_or(""),
                    &t.channel,
                    t.needs_triage,
                )
            };
            let mut wanted: BTreeSet<String> = decoded.drains.iter().map(|(_, d)| d.drain_team.clone()).collect();
            for t in tickets::read_tickets(tx, &ids)
                .await?
                .iter()
                .chain(&decoded.handed_tickets())
            {
                wanted.insert(route(t).team);
            }
            let wanted: Vec<String> = wanted.into_iter().collect();
            let locked = crate::store::locks::lock(
                tx,
                &crate::store::locks::LockSet {
                    teams: &wanted,
                    ticket_ids: &ids,
                    ..Default::default()
                },
            )
            .await?;
            let mut work = settle_work(tx, decoded, locked.tickets, self.name(), &[TicketState::Prioritized]).await?;

            let mut drains: Vec<(usize, String, DrainMessage)> = Vec::new();
            for (i, d) in std::mem::take(&mut work.drains) {
                let key = format!(
                    "drain:{}",
                    batch[i]
                        .message_id()
                        .map(str::to_owned)
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
                );
                drains.push((i, key, d));
            }
            let drain_keys: Vec<String> = drains.iter().map(|(_, k, _)| k.clone()).collect();
            let done = ledger::lookup(tx, &drain_keys).await?;
            drains.retain(|(i, k, _)| match done.get(k) {
                Some(out) => {
                    work.settled[*i] = Some(Outcome::Duplicate(out.clone()));
                    false
                }
                None => true,
            });

            let mut teams: BTreeSet<String> = drains.iter().map(|(_, _, d)| d.drain_team.clone()).collect();
            let mut candidates: Vec<Candidate> = Vec::new();
            let mut team_reason: HashMap<i64, String> = HashMap::new();
            for (i, msg, t) in work.pending {
                let choice = route(&t);
                if !wanted.contains(&choice.team) {
                    // Changed between the read and the lock: its team's agents are not held.
                    work.settled[i] = Some(Outcome::Retry(format!("ticket {} changed while locking", t.number)));
                    continue;
                }
                teams.insert(choice.team.clone());
                team_reason.insert(t.id, choice.reason);
                let mut ticket = t;
                ticket.team = Some(choice.team);
                candidates.push(Candidate::New {
                    index: i,
                    key: msg.message_id(),
                    ticket,
                });
            }
            if teams.is_empty() {
                return Ok(finish(work.settled, &work.copies));
            }
            let team_list: Vec<String> = teams.into_iter().collect();

            let mut agents_by_team: HashMap<String, Vec<Agent>> = HashMap::new();
            for a in locked.agents {
                if team_list.contains(&a.team) {
                    agents_by_team.entry(a.team.clone()).or_default().push(a);
                }
            }
            // Only teams with a free slot can take a queued ticket, and only as many as their free
            // slots (with slack for skills that do not match): scanning a long queue that
            // nobody can serve would cost every batch for nothing.
            let free_slots = |team: &String| -> i64 {
                agents_by_team.get(team).map_or(0, |agents| {
                    agents
                        .iter()
                        .filter(|a| a.presence == crate::core::routing::Presence::Online)
                        .map(|a| i64::from((a.max_open - a.open_tickets).max(0)))
                        .sum()
                })
            };
            let open_teams: Vec<String> = team_list.iter().filter(|t| free_slots(t) > 0).cloned().collect();
            let scan = open_teams
                .iter()
                .map(&free_slots)
                .sum::<i64>()
                .saturating_mul(2)
                .saturating_add(10)
                .min(QUEUE_SCAN_LIMIT);
            let queued = if open_teams.is_empty() {
                Vec::new()
            } else {
                tickets::lock_queued(tx, &open_teams, scan).await?
            };
            for ticket in queued {
                candidates.push(Candidate::Queued { ticket });
            }
            // Earliest deadline first; the received time breaks ties so the order is stable.
            candidates.sort_by(|a, b| {
                let (a, b) = (a.ticket(), b.ticket());
                a.resolution_due
                    .cmp(&b.resolution_due)
                    .then(a.received_at.cmp(&b.received_at))
                    .then(a.id.cmp(&b.id))
            });

            let now = Utc::now();
            let mut decisions = Vec::new();
            let mut extra = Vec::new();
            let mut touched_agents: BTreeSet<String> = BTreeSet::new();
            for cand in candidates {
                let t = cand.ticket();
                let team = t.team.clone().unwrap_or_default();
                let rule = choose_team(
                    routing,
                    t.category.as_deref().unwrap_or(""),
                    t.priority.as_deref().unwrap_or(""),
                    &t.channel,
                    t.needs_triage,
                );
                // A task of a group ticket is internal work for its team: no customer channel to
                // serve, and the parent's routing skills were asked of the parent's team.
                let task = t.channel == crate::core::groups::TASK_CHANNEL;
                let need = Need {
                    language: language_code(t.language.as_deref()),
                    channel: if task { String::new() } else { t.channel.clone() },
                    skills: if task { Vec::new() } else { rule.skills },
                };
                let pool = agents_by_team.entry(team.clone()).or_default();
                let chosen = choose_agent(pool, &need).map(|a| a.id.clone());
                let _span =
                    tracing::info_span!("message", stage = StageName::Assign.as_str(), ticket = %t.number).entered();
                match (cand, chosen) {
                    (Candidate::New { index, key, ticket }, Some(agent_id)) => {
                        let d = assign_to(
                            &ticket,
                            pool,
                            &agent_id,
                            now,
                            team_reason.remove(&ticket.id).unwrap_or_default(),
                            &need,
                            policy,
                        );
                        touched_agents.insert(agent_id);
                        decisions.push((index, key, d));
                    }
                    (Candidate::Queued { ticket }, Some(agent_id)) => {
                        let d = assign_to(
                            &ticket,
                            pool,
                            &agent_id,
                            now,
                            format!("capacity freed in team {team}"),
                            &need,
                            policy,
                        );
                        touched_agents.insert(agent_id);
                        extra.push(d);
                    }
                    (Candidate::New { index, key, ticket }, None) => {
                        let before = ticket.clone();
                        let mut after = ticket;
                        after.state = TicketState::Queued;
                        let why = team_reason.remove(&before.id).unwrap_or_default();
                        let online = pool
                            .iter()
                            .filter(|a| a.presence == crate::core::routing::Presence::Online)
                            .count();
                        let reason = format!(
                            "{why}; no qualified agent with capacity ({} agents, {online} online): waiting in the team queue",
                            pool.len()
                        );
                        let details =
                            json!({ "team": team, "need": need, "agents_in_team": pool.len(), "online": online });
                        let d = Decision::new(
                            &before,
                            after,
                            Because {
                                actor: StageName::Assign.as_str(),
                                reason,
                                details,
                            },
                            policy,
                            "queued",
                            None,
                        );
                        decisions.push((index, key, d));
                    }
                    (Candidate::Queued { .. }, None) => {}
                }
            }

            if !touched_agents.is_empty() {
                let mut ids = Vec::new();
                let mut loads = Vec::new();
                let mut idles = Vec::new();
                for a in agents_by_team
                    .values()
                    .flatten()
                    .filter(|a| touched_agents.contains(&a.id))
                {
                    ids.push(a.id.clone());
                    loads.push(a.open_tickets);
                    idles.push(a.idle_since);
                }
                agents::set_loads(tx, &ids, &loads, &idles).await?;
            }
            metrics::counter!("switchboard_assignments_total", "kind" => "queued_drained")
                .increment(extra.len() as u64);
            // Counted when decided: a batch rolled back and retried counts its tickets again,
            // which is rare (a lost race or a database outage) and only skews the histogram.
            for d in decisions.iter().map(|(_, _, d)| d).chain(&extra) {
                if d.ticket.state == TicketState::Assigned {
                    let waited = (now - d.ticket.received_at).num_milliseconds().max(0) as f64 / 1000.0;
                    metrics::histogram!("switchboard_intake_to_assigned_seconds").record(waited);
                }
            }

            // The first drain request owns the outputs of queued tickets assigned in this batch;
            // any further drains in the batch were served by the same pass.
            let extra_owner = drains.first().map(|(i, k, _)| (*i, k.clone()));
            let mut settled = work.settled;
            let other_drains: Vec<(String, Vec<crate::contracts::Outgoing>)> =
                drains.iter().skip(1).map(|(_, k, _)| (k.clone(), Vec::new())).collect();
            for (i, _, _) in drains.iter().skip(1) {
                settled[*i] = Some(Outcome::Done(Vec::new()));
            }
            ledger::record(tx, self.name(), &other_drains).await?;
            // SLA timers start with the assignment (or the queueing): written in this
            // transaction, so a ticket is never routed without its clocks being watched.
            let mut sla_timers = Vec::new();
            for (_, _, d) in &decisions {
                sla_timers.extend(crate::stages::actions::breach_timers(
                    policy,
                    &d.ticket,
                    &Vec::new(),
                    &[],
                    now,
                ));
            }
            crate::store::timers::set(tx, &sla_timers).await?;
            commit_decisions(
                tx,
                batch,
                self.name(),
                settled,
                decisions,
                extra,
                extra_owner,
                &work.copies,
            )
            .await
        }
    }
}

fn assign_to(
    ticket: &Ticket,
    pool: &mut [Agent],
    agent_id: &str,
    now: chrono::DateTime<Utc>,
    why: String,
    need: &Need,
    policy: &crate::core::policy::Policy,
) -> Decision {
    let mut load_before = 0;
    let mut cap = 0;
    if let Some(a) = pool.iter_mut().find(|a| a.id == agent_id) {
        load_before = a.open_tickets;
        cap = a.max_open;
        a.open_tickets += 1;
        a.idle_since = now;
    }
    let mut after = ticket.clone();
    after.state = TicketState::Assigned;
    after.assignee = Some(agent_id.to_owned());
    after.assigned_at = Some(now);
    let reason = format!("{why}; agent {agent_id} (load {load_before}/{cap}, least loaded qualified)");
    let details =
        json!({ "team": after.team, "assignee": agent_id, "load_before": load_before, "max_open": cap, "need": need });
    Decision::new(
        ticket,
        after,
        Because {
            actor: StageName::Assign.as_str(),
            reason,
            details,
        },
        policy,
        "assigned",
        None,
    )
}
