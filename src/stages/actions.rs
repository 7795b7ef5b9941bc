//! Applying lifecycle actions and SLA timer bookkeeping to the database: the shell around
//! `core::actions::plan`, shared by the lifecycle stage (AMQP) and the HTTP API.

use crate::contracts::Outgoing;
use crate::contracts::action::ActionMessage;
use crate::contracts::events;
use crate::contracts::work::DrainMessage;
use crate::core::actions::{Context as ActionContext, LoadChange, PauseChange, Refusal, plan};
use crate::core::escalation::Fired;
use crate::core::policy::Policy;
use crate::core::sla::{SlaFacts, Target};
use crate::core::state::TicketState;
use crate::core::ticket::{Ticket, Transition};
use crate::store::tickets::{self, insert_transitions};
use crate::store::{StoreError, agents, sla, timers};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no ticket {0}")]
    NotFound(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The caller may not take this action on this ticket (`core::access`).
    #[error(transparent)]
    Forbidden(#[from] crate::core::access::Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for ActionError {
    fn from(e: tokio_postgres::Error) -> Self {
        ActionError::Store(StoreError::Db(e))
    }
}

use crate::store::sla::{Pauses, escalated_targets, pauses_tx};

/// Breach timers a ticket needs now: one per running clock whose breach is not yet recorded.
/// The next update recurs: once a lapse is recorded, its timer watches the next one.
pub fn breach_timers(
    policy: &Policy,
    t: &Ticket,
    pauses: &Pauses,
    escalated: &[(String, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Vec<(i64, String, DateTime<Utc>, serde_json::Value)> {
    let facts = SlaFacts::of(t, pauses.clone());
    policy
        .doc
        .sla
        .pending_deadlines(policy.calendar(), &facts, now)
        .into_iter()
        .filter_map(|(target, due)| {
            let recorded = escalated.iter().find(|(e, _)| e == target.as_str()).map(|(_, at)| *at);
            match recorded {
                None => Some((target, due)),
                Some(at) if target == Target::NextUpdate => Some((target, next_lapse_to_watch(policy, due, at, now))),
                Some(_) => None,
            }
        })
        .map(|(target, due)| {
            (
                t.id,
                timers::breach_purpose(target.as_str()),
                due,
                json!({ "target": target }),
            )
        })
        .collect()
}

/// The next-update lapse a breach timer watches once a lapse at `recorded` is on record: the
/// current one if it is later (it fires at once and is recorded), else the one after the
/// recorded one.
pub fn next_lapse_to_watch(
    policy: &Policy,
    first_due: DateTime<Utc>,
    recorded: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let sla = &policy.doc.sla;
    let current = sla.next_update_lapse(policy.calendar(), first_due, now);
    if current > recorded {
        current
    } else {
        sla.next_update_after(policy.calendar(), recorded)
    }
}

/// Re-derives a ticket's breach timers from its facts: moves the ones whose due time changed,
/// cancels the ones that no longer apply.
pub async fn sync_breach_timers(
    tx: &Transaction<'_>,
    policy: &Policy,
    t: &Ticket,
    pauses: &Pauses,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let escalated = escalated_targets(tx, t.id).await?;
    let wanted = breach_timers(policy, t, pauses, &escalated, now);
    let keep: Vec<String> = wanted.iter().map(|w| w.1.clone()).collect();
    timers::cancel_except(tx, t.id, "breach:", &keep).await?;
    timers::set(tx, &wanted).await
}

/// Applies one action to a locked ticket: writes everything and returns what to publish.
pub async fn apply(
    tx: &Transaction<'_>,
    policy: &Policy,
    t: &Ticket,
    msg: &ActionMessage,
    now: DateTime<Utc>,
) -> Result<(Ticket, Vec<Outgoing>), ActionError> {
    use crate::core::actions::Action;
    let active = sla::active_escalations(tx, t.id).await?;
    let agent_exists = match &msg.action {
        Action::Reassign { agent, .. } => agents::agent_exists(tx, agent).await?,
        _ => false,
    };
    let helper_exists = match &msg.action {
        Action::UpdateRecord {
            set: crate::core::record::ServiceRecord { helper: Some(h), .. },
            ..
        } => agents::agent_exists(tx, h).await?,
        _ => false,
    };
    // A claim is made by the roster agent the actor names.
    let actor_agent = match (&msg.action, msg.actor.strip_prefix("agent:")) {
        (Action::Claim, Some(a)) if agents::agent_exists(tx, a).await? => Some(a.to_owned()),
        _ => None,
    };
    let other = match &msg.action {
        Action::Link { ticket, .. } => tickets::get_by_number(&**tx, ticket).await?,
        Action::Merge { into, .. } => tickets::get_by_number(&**tx, into).await?,
        _ => None,
    };
    let next_rung = match &msg.action {
        Action::Escalate { .. } => next_rung(tx, policy, t).await?,
        _ => None,
    };
    // A triage decision sends the ticket where the routing rules send its decided category.
    let triage_route = match &msg.action {
        Action::Reclassify { category, .. } if t.needs_triage => {
            let choice = crate::core::routing::choose_team(
                &policy.doc.routing,
                category,
                t.priority.as_deref().unwrap_or(""),
                &t.channel,
                false,
            );
            Some((choice.team, choice.reason))
        }
        _ => None,
    };
    // Group tickets (`core::groups`): a task's parent hears of its being done; a parent's open
    // tasks hold its resolution.
    let parent = crate::store::groups::parent_of_tx(tx, t.id).await?;
    let open_tasks = match &msg.action {
        Action::Resolve { .. } | Action::Merge { .. } => crate::store::groups::open_tasks(tx, t.id).await?,
        _ => Vec::new(),
    };
    let ctx = ActionContext {
        active_escalations: active as usize,
        priority_levels: policy.doc.priority.levels.clone(),
        supervisor: policy.supervisor_of(t.team.as_deref()),
        agent_exists,
        teams: policy.doc.teams.keys().cloned().collect(),
        categories: policy.doc.classification.category_ids(),
        actor_agent,
        next_rung: next_rung.as_ref().map(|(step, who, _)| (*step, who.clone())),
        other: other.as_ref().map(|o| (o.number.clone(), o.state)),
        triage_route,
        milestones: policy
            .doc
            .sla
            .rule_for(
                t.category.as_deref().unwrap_or(""),
                t.priority.as_deref().unwrap_or(""),
                &t.channel,
            )
            .map(|r| r.milestone_names())
            .unwrap_or_default(),
        open_tasks,
        parent: parent.as_ref().map(|(_, number, _)| number.clone()),
        record: policy.doc.record.clone(),
        helper_exists,
    };
    let mut p = plan(t, &msg.actor, &msg.action, &ctx, &policy.doc.lifecycle, now)?;

    let mut outputs = Vec::new();
    if let Some((team, summary)) = &p.task {
        let task = open_task(tx, policy, t, team, summary, &msg.actor, now).await?;
        if let Some(step) = p.steps.first_mut() {
            step.details["task"] = json!(task.number);
        }
        outputs.extend(task_opened_outputs(tx, policy, t, &task, summary, &msg.actor, now).await?);
        // The team's free agents are offered the task at once.
        outputs.push(drain_message(
            team,
            &format!("task {} of {} opened", task.number, t.number),
        ));
    }

    let assignee_team = match &p.assignee {
        Some(a) => agents::team_of(tx, a).await?,
        None => None,
    };
    let mut after = p.ticket_after(t, now, assignee_team, &policy.doc.sla, policy.calendar());

    // Transitions: one per step, each bumping the version (the event sequence).
    let mut transitions = Vec::new();
    let mut from = t.state;
    for step in &p.steps {
        after.version += 1;
        after.state = step.to;
        let tr = Transition {
            ticket_id: t.id,
            seq: after.version,
            from: Some(from),
            to: step.to,
            at: now,
            actor: msg.actor.clone(),
            reason: step.reason.clone(),
            policy_version: policy.version().to_owned(),
            details: step_details(msg.action.kind(), step),
        };
        outputs.push(events::ticket_event(&after, step.event, &tr));
        transitions.push(tr);
        from = step.to;
    }

    match &p.pause {
        PauseChange::Start => sla::start_pause(tx, t.id, now).await?,
        PauseChange::End => sla::end_pause(tx, t.id, now).await?,
        PauseChange::None => {}
    }

    let mut drain_teams: Vec<String> = Vec::new();
    // Taking a slot writes the agent's row, which lock_batch holds; freeing one only records it
    // (`agents::release_slot`), so resolves on other tickets of the same agent do not queue.
    let (take, free): (Option<&str>, Option<&str>) = match &p.load {
        LoadChange::None => (None, None),
        LoadChange::Free(a) => (None, Some(a)),
        LoadChange::Take(a) => (Some(a), None),
        // A queued ticket held no slot.
        LoadChange::Move { from, to } => (Some(to), from.as_deref().filter(|_| t.state != TicketState::Queued)),
    };
    if let Some(agent) = take {
        agents::take_slot(tx, agent, now).await?;
    }
    if let Some(agent) = free
        && let Some(load) = agents::release_slot(tx, agent).await?
        && load.online
        && load.open_tickets < load.max_open
    {
        drain_teams.push(load.team);
    }

    if p.acknowledge {
        sla::acknowledge(tx, t.id, now, &msg.actor).await?;
        timers::cancel_except(tx, t.id, "escalate:", &[]).await?;
    }

    if let Some((from, to, reason)) = &p.correction {
        tickets::record_correction(tx, t.id, now, from.as_deref(), to, &msg.actor, reason).await?;
    }
    if let (Some((_, kind)), Some(o)) = (&p.link, &other) {
        tickets::link(tx, t.id, o.id, kind, &msg.actor, now).await?;
    }
    if let (Some((step, who)), Some((_, _, Some(target)))) = (&p.escalated, &next_rung) {
        // The automatic ladder goes on from the rung climbed by hand.
        sla::record_step(tx, t.id, target, *step as i32, 0, now, who).await?;
    }
    // A ticket that lands in a queue (from an agent, or from another team's queue) is offered
    // to the team's free agents.
    if after.state == TicketState::Queued
        && (t.state != TicketState::Queued || t.team != after.team)
        && let Some(team) = &after.team
    {
        drain_teams.push(team.clone());
    }
    if let Some((target, _)) = &p.due_override {
        sla::forget_escalation(tx, t.id, target.as_str()).await?;
        timers::cancel_except(tx, t.id, &timers::escalate_purpose(target.as_str()), &[]).await?;
    }
    if after.state == TicketState::Closed {
        sla::stop_running(tx, t.id, now, "ticket closed").await?;
    }

    // Clocks, with the pauses as they now are: the stored due times become the effective ones
    // (a wait moves the resolution deadline, a reopening restarts it; none while waiting), so
    // the work list sorts and filters by what the clocks say.
    let paused = pauses_tx(tx, t.id).await?;
    let facts = SlaFacts::of(&after, paused.clone());
    let clocks = policy.doc.sla.clocks(policy.calendar(), &facts, now);
    for c in &clocks {
        match c.target {
            Target::FirstResponse => after.first_response_due = c.due.or(after.first_response_due),
            Target::Resolution => after.resolution_due = c.due,
            _ => {}
        }
    }

    let written = tickets::write_after_action(tx, t, &after).await?;
    if written != 1 {
        return Err(StoreError::Conflict(format!("ticket {} changed under the lock", t.number)).into());
    }
    let refs: Vec<&Transition> = transitions.iter().collect();
    insert_transitions(tx, &refs).await?;
    if let Some((parent_id, _, _)) = &parent
        && let Some(change) = crate::core::groups::task_change(t.state, after.state)
    {
        outputs.push(record_on_parent(tx, policy, *parent_id, &after, change, msg, now).await?);
    }

    // Clocks: targets met stop their escalations; the rest get their timers moved.
    let met: Vec<String> = clocks
        .into_iter()
        .filter(|c| c.met_at.is_some())
        .map(|c| c.target.as_str().to_owned())
        .collect();
    if !met.is_empty() {
        sla::stop_met(tx, t.id, now, &met).await?;
        let escalate_keep: Vec<String> = Target::ALL
            .iter()
            .filter(|x| !met.iter().any(|m| m == x.as_str()))
            .map(|x| timers::escalate_purpose(x.as_str()))
            .collect();
        timers::cancel_except(tx, t.id, "escalate:", &escalate_keep).await?;
    }
    sync_breach_timers(tx, policy, &after, &paused, now).await?;
    match after.state {
        TicketState::Resolved => {
            let due = policy.calendar().deadline(
                now,
                policy.doc.lifecycle.auto_close_after,
                crate::core::calendar::Clock::Wall,
            );
            timers::set(tx, &[(t.id, timers::AUTO_CLOSE.into(), due, json!({}))]).await?;
        }
        _ => {
            timers::cancel_except(tx, t.id, timers::AUTO_CLOSE, &[]).await?;
        }
    }
    if after.state == TicketState::Closed {
        timers::cancel_except(tx, t.id, "", &[]).await?;
    }

    // An action before assignment (a priority set by a supervisor while the ticket is still
    // being classified) moves the version on.
    outputs.extend(super::pending_step(&after));
    for team in drain_teams {
        outputs.push(drain_message(
            &team,
            &format!("{} finished ticket {}", msg.actor, t.number),
        ));
    }
    Ok((after, outputs))
}

/// Opens the task `add_task {team, summary}` asks for on `parent`: numbered from the month's
/// counter (held since before the ticket locks, `store::groups::hold_counter`), inserted queued
/// for `team` and linked both ways.
async fn open_task(
    tx: &Transaction<'_>,
    policy: &Policy,
    parent: &Ticket,
    team: &str,
    summary: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, ActionError> {
    use crate::core::numbering::{format_number, period};
    let period = period(now, policy.tz);
    let seq = crate::store::intake::reserve_numbers(tx, &period, 1).await?;
    let number = format_number(&policy.doc.ticket_number_prefix, &period, seq);
    let mut task =
        crate::core::groups::task_ticket(parent, &number, team, summary, now, &policy.doc.sla, policy.calendar());
    let customer_ref = crate::store::groups::customer_ref_of(&**tx, parent.id).await?;
    let Some(id) = crate::store::groups::insert_task(tx, &task, customer_ref).await? else {
        // The ledger (`stages::once`) answers a repeated action before it gets here; a second
        // task from one action would be a bug, so it is refused, not retried.
        return Err(Refusal {
            action: "add_task",
            ticket: parent.number.clone(),
            state: parent.state,
            why: format!("this action's task ({}) was already opened", task.channel_message_id),
        }
        .into());
    };
    task.id = id;
    tickets::link(tx, id, parent.id, "task_of", actor, now).await?;
    Ok(task)
}

/// The new task's first transition (opened, queued for its team), its SLA breach timers, and
/// the event that says so.
async fn task_opened_outputs(
    tx: &Transaction<'_>,
    policy: &Policy,
    parent: &Ticket,
    task: &Ticket,
    summary: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Outgoing>, StoreError> {
    let team = task.team.as_deref().unwrap_or_default();
    let tr = Transition {
        ticket_id: task.id,
        seq: task.version,
        from: None,
        to: task.state,
        at: now,
        actor: actor.to_owned(),
        reason: format!("task of {} for the {team} queue", parent.number),
        policy_version: policy.version().to_owned(),
        details: json!({ "action": "add_task", "event": "task_opened",
                         "data": { "parent": parent.number, "team": team, "summary": summary } }),
    };
    insert_transitions(tx, &[&tr]).await?;
    timers::set(tx, &breach_timers(policy, task, &Vec::new(), &[], now)).await?;
    Ok(vec![events::ticket_event(task, "task_opened", &tr)])
}

/// A lifecycle step's transition details, as its event shows them (less what
/// `contracts::events` keeps inside): the action, the event and what the step says.
pub fn step_details(action: &str, step: &crate::core::actions::Step) -> serde_json::Value {
    json!({ "action": action, "event": step.event, "data": step.details })
}

/// Records on the parent (locked with the task, `store::groups::parent_numbers`) that `task`
/// is now done or reopened: a same-state transition and its event. (A parent is past the
/// pipeline: only a working ticket takes tasks, and no state leads back.)
async fn record_on_parent(
    tx: &Transaction<'_>,
    policy: &Policy,
    parent_id: i64,
    task: &Ticket,
    change: crate::core::groups::TaskChange,
    msg: &ActionMessage,
    now: DateTime<Utc>,
) -> Result<Outgoing, StoreError> {
    let Some(parent) = crate::store::locks::lock_by_id(tx, parent_id).await? else {
        return Err(StoreError::Conflict(format!(
            "the parent of task {} is gone",
            task.number
        )));
    };
    let open = crate::store::groups::open_tasks(tx, parent_id).await?;
    let (event, reason, data) = crate::core::groups::parent_step(&task.number, task.team.as_deref(), change, &open);
    let mut after = parent.clone();
    after.version += 1;
    if tickets::bump_version(tx, parent.id, parent.version, after.version).await? != 1 {
        return Err(StoreError::Conflict(format!(
            "ticket {} changed under the lock",
            parent.number
        )));
    }
    let tr = Transition {
        ticket_id: parent.id,
        seq: after.version,
        from: Some(parent.state),
        to: parent.state,
        at: now,
        actor: msg.actor.clone(),
        reason,
        policy_version: policy.version().to_owned(),
        details: json!({ "action": msg.action.kind(), "event": event, "data": data }),
    };
    insert_transitions(tx, &[&tr]).await?;
    Ok(events::ticket_event(&after, event, &tr))
}

/// The next rung of `t`'s escalation ladder: (step index, who it notifies, the target whose
/// running escalation it continues, if any). The first rung when nothing has fired; the last
/// rung again when the ladder is climbed to the top.
async fn next_rung(
    tx: &Transaction<'_>,
    policy: &Policy,
    t: &Ticket,
) -> Result<Option<(usize, String, Option<String>)>, StoreError> {
    let running = sla::highest_running_step(tx, t.id).await?;
    // The escalation already climbing decides the ladder: a milestone may climb its own.
    let rule = policy.doc.sla.rule_for(
        t.category.as_deref().unwrap_or(""),
        t.priority.as_deref().unwrap_or(""),
        &t.channel,
    );
    let ladder_name = match running.as_ref().and_then(|(target, _)| Target::parse(target)) {
        Some(target) => rule.and_then(|r| r.ladder_for(target)),
        None => rule.and_then(|r| r.escalation.as_deref()),
    };
    let Some(ladder) = ladder_name
        .and_then(|name| policy.doc.escalation.ladders.get(name))
        .filter(|l| !l.steps.is_empty())
    else {
        return Ok(None);
    };
    let step = match &running {
        Some((_, last)) => usize::try_from(last + 1).unwrap_or(0).min(ladder.steps.len() - 1),
        None => 0,
    };
    let who = resolve_notify(policy, t, &ladder.steps[step].notify);
    Ok(Some((step, who, running.map(|(target, _)| target))))
}

pub fn drain_message(team: &str, reason: &str) -> Outgoing {
    DrainMessage::for_team(team, reason)
}

/// Who a ladder step's `notify` means for this ticket.
pub fn resolve_notify(policy: &Policy, t: &Ticket, notify: &str) -> String {
    match notify {
        "supervisor" => policy
            .supervisor_of(t.team.as_deref())
            .unwrap_or_else(|| "supervisor".into()),
        "assignee" => t.assignee.clone().unwrap_or_else(|| "assignee".into()),
        team if policy.doc.teams.contains_key(team) => {
            policy.supervisor_of(Some(team)).unwrap_or_else(|| team.to_owned())
        }
        other => other.to_owned(),
    }
}

/// The last fired step of an escalation, from its row.
pub fn fired_of(step: Option<i32>, repeat: Option<i32>, at: Option<DateTime<Utc>>) -> Option<Fired> {
    Some(Fired {
        step: usize::try_from(step?).ok()?,
        repeat: u32::try_from(repeat.unwrap_or(0)).ok()?,
        at: at?,
    })
}
