//! Group tickets for complex problems (seed 001 §5.2 复杂问题处理流程: "组建专项小组" — the
//! departments concerned work one problem together; seed 003 §一.3 多角色协同: each role's part
//! and hand-over made explicit). Pure: what a task ticket is, when a child's change is news for
//! its parent, and whether a parent may be resolved.
//!
//! The model (compare Zendesk child tickets, Zammad parent/child links, Freshdesk parent-child
//! tickets):
//! - `add_task {team, summary}` on a parent opens one **task** (a child ticket) in `team`'s queue:
//!   its own number, the parent's customer, category, priority and language, channel
//!   [`TASK_CHANNEL`] (nothing is ever sent to the customer about a task: the parent's owner
//!   speaks to the customer), linked `task_of` the parent (`task` from the parent).
//! - A task has its own SLA clocks, from its SLA rule (the parent's category and priority),
//!   running from the task's creation: the team's first answer on the task (`respond`) and its
//!   resolution. The parent's clocks keep running: the customer waits for the whole problem.
//! - A task being done (resolved or closed) or undone (reopened) is recorded on the parent as a
//!   same-state transition and event (`task_done`, `task_reopened`); the last one done says so
//!   (`all_done`).
//! - The parent is **not** resolved by itself when the last task is done: seed 001 §5.2 has the
//!   result checked (结果验收) before it is fed back to the customer. So the parent may be resolved
//!   (or merged away) only when every task is done; its owner resolves it with the result.
//! - Tasks do not nest: a task's own sub-problems are further tasks of the parent.

use super::calendar::Calendars;
use super::sla::SlaPolicy;
use super::state::TicketState;
use super::ticket::{Progress, Ticket};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The channel of every task ticket: internal work, never a conversation with the customer.
pub const TASK_CHANNEL: &str = "task";

/// Whether a task in `state` counts as done for its parent.
pub fn done(state: TicketState) -> bool {
    matches!(state, TicketState::Resolved | TicketState::Closed)
}

/// What a child's state change means for its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskChange {
    Done,
    Reopened,
}

/// The news for the parent when a task goes from `before` to `after`; `None`: none.
pub fn task_change(before: TicketState, after: TicketState) -> Option<TaskChange> {
    match (done(before), done(after)) {
        (false, true) => Some(TaskChange::Done),
        (true, false) => Some(TaskChange::Reopened),
        _ => None,
    }
}

/// The parent's same-state step for `change` of task `task` (of `team`), with `open` the
/// parent's tasks still open after it: (event, reason, details).
pub fn parent_step(
    task: &str,
    team: Option<&str>,
    change: TaskChange,
    open: &[String],
) -> (&'static str, String, Value) {
    let team = team.unwrap_or("no team");
    match change {
        TaskChange::Done if open.is_empty() => (
            "task_done",
            format!("task {task} ({team}) done; every task is done: check the result and resolve"),
            json!({ "task": task, "team": team, "open_tasks": open, "all_done": true }),
        ),
        TaskChange::Done => (
            "task_done",
            format!("task {task} ({team}) done; still open: {}", open.join(", ")),
            json!({ "task": task, "team": team, "open_tasks": open, "all_done": false }),
        ),
        TaskChange::Reopened => (
            "task_reopened",
            format!("task {task} ({team}) reopened"),
            json!({ "task": task, "team": team, "open_tasks": open, "all_done": false }),
        ),
    }
}

/// Why a parent with `open` tasks may not be resolved or merged; `None`: it may.
pub fn open_tasks_block(open: &[String]) -> Option<String> {
    (!open.is_empty()).then(|| {
        format!(
            "its tasks {} are still open: they must be resolved first (or the parent stays open)",
            open.join(", ")
        )
    })
}

/// The task-channel message id of the task `add_task` opens on `parent` at its current
/// version: one per action on the parent, so a task row can be inserted at most once.
pub fn task_message_id(parent: &Ticket) -> String {
    format!("{}:task:{}", parent.number, parent.version + 1)
}

/// The task ticket `add_task {team, summary}` opens on `parent`, numbered `number`, at `now`:
/// queued for `team`, unassigned, version 1, with the deadlines of the SLA rule of the parent's
/// category and priority from `now`.
pub fn task_ticket(
    parent: &Ticket,
    number: &str,
    team: &str,
    summary: &str,
    now: DateTime<Utc>,
    sla: &SlaPolicy,
    calendar: &Calendars,
) -> Ticket {
    let category = parent.category.clone();
    let priority = parent.priority.clone();
    let due = sla.due(
        calendar,
        category.as_deref().unwrap_or(""),
        priority.as_deref().unwrap_or(""),
        TASK_CHANNEL,
        now,
    );
    Ticket {
        id: 0,
        number: number.to_owned(),
        channel: TASK_CHANNEL.to_owned(),
        channel_message_id: task_message_id(parent),
        customer: parent.customer.clone(),
        subject: Some(summary.to_owned()),
        body: format!("{summary}\n\n(task of {})", parent.number),
        language: parent.language.clone(),
        category,
        category_confidence: None,
        category_candidates: Vec::new(),
        needs_triage: false,
        priority,
        state: TicketState::Queued,
        team: Some(team.to_owned()),
        assignee: None,
        sla_rule: due.as_ref().map(|d| d.rule.clone()),
        first_response_due: due.as_ref().map(|d| d.first_response_due),
        resolution_due: due.as_ref().map(|d| d.resolution_due),
        received_at: now,
        assigned_at: None,
        version: 1,
        life: Progress::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parent() -> Ticket {
        Ticket {
            id: 7,
            number: "202612-00007".into(),
            channel: "phone".into(),
            channel_message_id: "call-1".into(),
            customer: crate::core::customer::Customer {
                name: Some("张先生".into()),
                ..Default::default()
            },
            subject: Some("设备无法开机".into()),
            body: "b".into(),
            language: Some("zh".into()),
            category: Some("fault".into()),
            category_confidence: Some(0.9),
            category_candidates: Vec::new(),
            needs_triage: false,
            priority: Some("urgent".into()),
            state: TicketState::InProgress,
            team: Some("front_line".into()),
            assignee: Some("fl-1".into()),
            sla_rule: Some("urgent".into()),
            first_response_due: None,
            resolution_due: None,
            received_at: Utc::now() - chrono::Duration::hours(1),
            assigned_at: None,
            version: 5,
            life: Progress::default(),
        }
    }

    fn policy() -> crate::core::policy::Policy {
        crate::core::policy::Policy::load(
            &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/policy.toml"),
        )
        .unwrap()
    }

    #[test]
    fn a_task_inherits_the_customer_category_and_priority_and_gets_its_own_clocks_from_now() {
        let p = policy();
        let now = Utc::now();
        let parent = parent();
        let t = task_ticket(
            &parent,
            "202612-00009",
            "technical_support",
            "诊断主板",
            now,
            &p.doc.sla,
            p.calendar(),
        );
        assert_eq!(t.channel, TASK_CHANNEL);
        assert_eq!(t.channel_message_id, "202612-00007:task:6");
        assert_eq!(t.customer, parent.customer);
        assert_eq!(
            (t.category.as_deref(), t.priority.as_deref()),
            (Some("fault"), Some("urgent"))
        );
        assert_eq!(t.team.as_deref(), Some("technical_support"));
        assert_eq!(
            (t.state, t.assignee.as_deref(), t.version),
            (TicketState::Queued, None, 1)
        );
        assert_eq!(t.received_at, now);
        let due = p
            .doc
            .sla
            .due(p.calendar(), "fault", "urgent", TASK_CHANNEL, now)
            .unwrap();
        assert_eq!(t.resolution_due, Some(due.resolution_due));
        assert_eq!(t.first_response_due, Some(due.first_response_due));
        assert_eq!(t.sla_rule, Some(due.rule));
        assert!(t.resolution_due.unwrap() > now);
        assert!(t.body.contains("202612-00007"));
    }

    #[test]
    fn the_last_task_done_says_every_task_is_done() {
        let (event, reason, d) = parent_step("202612-00009", Some("technical_support"), TaskChange::Done, &[]);
        assert_eq!(event, "task_done");
        assert_eq!(d["all_done"], true);
        assert!(reason.contains("resolve"), "{reason}");
        let (_, reason, d) = parent_step("202612-00009", None, TaskChange::Done, &["202612-00010".into()]);
        assert_eq!(d["all_done"], false);
        assert!(reason.contains("202612-00010"), "{reason}");
        let (event, _, d) = parent_step("202612-00009", None, TaskChange::Reopened, &["202612-00009".into()]);
        assert_eq!((event, d["all_done"].as_bool()), ("task_reopened", Some(false)));
    }

    #[test]
    fn open_tasks_block_the_parent_and_none_do_not() {
        assert!(open_tasks_block(&[]).is_none());
        let why = open_tasks_block(&["202612-00009".into()]).unwrap();
        assert!(why.contains("202612-00009"), "{why}");
    }

    proptest! {
        /// A change is news exactly when done-ness flips, and the news says which way.
        #[test]
        fn task_changes_follow_doneness(a in 0usize..9, b in 0usize..9) {
            let (before, after) = (TicketState::ALL[a], TicketState::ALL[b]);
            let change = task_change(before, after);
            prop_assert_eq!(change.is_some(), done(before) != done(after));
            if let Some(c) = change {
                prop_assert_eq!(c == TaskChange::Done, done(after));
            }
        }
    }
}
