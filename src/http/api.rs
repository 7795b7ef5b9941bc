//! The agents' and supervisors' HTTP API: a ticket with its SLA clocks, transitions and
//! escalations, and lifecycle actions on it. Served by the gateway process next to the channel
//! endpoints (and by `switchboard api` on its own).
//!
//! Every request carries a principal (the gateway's key middleware puts its key in the
//! request): an integration key reads no ticket, an agent reads the team's tickets and acts on
//! their own, a supervisor acts on the team's (`core::access`). The transition's actor is the
//! principal, never the body.
//!
//! Actions are applied synchronously in one transaction (so the caller learns at once whether
//! the state machine allowed it: 200 or 409), with their events written to the outbox and
//! published right after the commit; the scheduler's relay publishes anything a crash left.

use crate::contracts::action::ActionMessage;
use crate::core::access::{Principal, TicketFacts};
use crate::core::actions::Action;
use crate::core::sla::SlaFacts;
use crate::http::auth::ApiKey;
use crate::runtime::Services;
use crate::stages::actions::{ActionError, apply};
use crate::stages::{Applied, once};
use crate::store::sla::pauses;
use crate::store::{outbox, tickets};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::Mutex;

#[derive(Clone)]
pub struct ApiState {
    pub app: Services,
    /// A confirm channel for publishing outbox rows right after a commit; rebuilt on failure.
    channel: Arc<Mutex<Option<(lapin::Connection, lapin::Channel)>>>,
}

impl ApiState {
    pub fn new(app: Services) -> ApiState {
        ApiState {
            app,
            channel: Arc::new(Mutex::new(None)),
        }
    }
}

/// The ticket routes: a ticket's view and actions on it (`http::router` adds the work API and
/// the stream beside them, behind the credential check).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/tickets/{number}", get(get_ticket))
        .route("/v1/tickets/{number}/actions", post(post_action))
}

pub(crate) fn error(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "API request failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("{e}; try again shortly"),
    )
}

/// The ticket view agents and supervisors work from.
pub async fn ticket_json(app: &Services, number: &str) -> Result<Option<Value>, crate::store::StoreError> {
    let client = app.db.pool.get().await?;
    let Some(t) = tickets::get_by_number(&**client, number).await? else {
        return Ok(None);
    };
    Ok(Some(view_of(app, &**client, &t).await?))
}

/// [`ticket_json`] of a ticket already read.
async fn view_of<C: tokio_postgres::GenericClient>(
    app: &Services,
    client: &C,
    t: &crate::core::ticket::Ticket,
) -> Result<Value, crate::store::StoreError> {
    let now = chrono::Utc::now();
    let facts = SlaFacts::of(t, pauses(client, t.id).await?);
    let clocks = app.policy.doc.sla.clocks(app.policy.calendar(), &facts, now);
    let transitions = tickets::transitions_of(client, t.id).await?;
    let escalations: Vec<Value> = tickets::escalations_of(client, t.id)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "target": e.target, "ladder": e.ladder, "breached_at": e.breached_at,
                // Steps are counted from 1 for people.
                "last_step": e.last_step.map(|s| s + 1), "last_repeat": e.last_repeat,
                "last_fired_at": e.last_fired_at, "last_notified": e.last_notified,
                "acknowledged_at": e.acknowledged_at, "acknowledged_by": e.acknowledged_by,
                "stopped_at": e.stopped_at, "stop_reason": e.stop_reason,
            })
        })
        .collect();
    let messages: Vec<Value> = tickets::messages_of(client, t.id)
        .await?
        .into_iter()
        .map(|m| {
            json!({ "channel": m.channel, "channel_message_id": m.channel_message_id,
                    "received_at": m.received_at, "subject": m.subject,
                    "body": m.body, "attachments": m.attachments })
        })
        .collect();
    let earlier: Vec<Value> = tickets::customer_tickets_of(client, t.id, 20)
        .await?
        .into_iter()
        .map(|e| {
            json!({ "number": e.number, "state": e.state, "category": e.category,
                    "priority": e.priority, "received_at": e.received_at })
        })
        .collect();
    let mut view = crate::contracts::events::ticket_view(t);
    // The ticket record is the one place the full contact is shown (to the service team).
    view["customer"] = serde_json::to_value(&t.customer).unwrap_or_default();
    view["subject"] = json!(t.subject);
    view["body"] = json!(t.body);
    view["due_overrides"] = json!(t.life.due_overrides);
    view["milestones"] = json!(t.life.milestones);
    // The service record (售后服务记录) and the customer's confirmation, for the service team;
    // `record_columns` lists every field by its label (custom ones by the policy's).
    view["record"] = serde_json::to_value(&t.life.record).unwrap_or_default();
    view["confirmation"] = json!(t.life.confirmation);
    let links: Vec<Value> = tickets::links_of(client, t.id)
        .await?
        .into_iter()
        .map(|(number, kind, state)| json!({ "number": number, "kind": kind, "state": state }))
        .collect();
    // A group ticket lists its tasks with what each team is to do; a task names its parent
    // (`core::groups`). Reading either does not open the other: its team reads it.
    let tasks: Vec<Value> = crate::store::groups::tasks_of(client, t.id)
        .await?
        .into_iter()
        .map(|k| {
            json!({ "number": k.number, "state": k.state, "team": k.team,
                    "assignee": k.assignee, "summary": k.summary,
                    "done": crate::core::groups::done(k.state) })
        })
        .collect();
    let parent = crate::store::groups::parent_of(client, t.id)
        .await?
        .map(|(_, number, state)| json!({ "number": number, "state": state }));
    // Notes and attachments live in the transition log (one audit trail); shown apart too.
    let by_event = |event: &str| -> Vec<Value> {
        transitions
            .iter()
            .filter(|tr| tr.details.get("event").and_then(Value::as_str) == Some(event))
            .map(|tr| {
                let mut v = tr.details.get("data").cloned().unwrap_or(Value::Null);
                v["at"] = json!(tr.at);
                v["actor"] = json!(tr.actor);
                v
            })
            .collect()
    };
    let mut deliveries = crate::store::outbound::ticket_deliveries(client, t.id).await?;
    for d in &mut deliveries {
        d.target = crate::core::notify::shown_target(&d.transport, &d.target);
    }
    let notes = by_event("noted");
    let attachments = by_event("attached");
    let active_escalation = escalations
        .iter()
        .any(|e| e["acknowledged_at"].is_null() && e["stopped_at"].is_null());
    Ok(json!({
        "ticket": view,
        "sla": clocks,
        "transitions": transitions,
        "escalations": escalations,
        "messages": messages,
        "customer_tickets": earlier,
        "links": links,
        "tasks": tasks,
        "parent": parent,
        "notes": notes,
        "attachments": attachments,
        "record_columns": t.life.record.columns(&app.policy.doc.record).into_iter()
            .map(|(label, value)| json!({ "label": label, "value": value }))
            .collect::<Vec<_>>(),
        "active_escalation": active_escalation,
        // What was sent about the ticket (staff, the customer, webhooks) and whether it arrived.
        "deliveries": deliveries,
    }))
}

/// What `principal` may do to the ticket now: permitted and possible in its state.
fn allowed_actions(
    principal: &Principal<'_>,
    t: &crate::core::ticket::Ticket,
    facts: &TicketFacts<'_>,
    active_escalation: bool,
) -> Vec<&'static str> {
    principal.allowed_actions(facts, |kind| {
        crate::core::actions::kind_possible(kind, t.state, active_escalation)
            && (kind != "claim" || principal.agent.is_some())
    })
}

/// 401: the router only ever runs behind the gateway's key middleware, and a request that
/// somehow reached it without a key gets nothing.
pub(crate) fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing API key: send `Authorization: Bearer <key>`".into(),
    )
}

pub(crate) fn forbidden(d: crate::core::access::Denied) -> Response {
    error(StatusCode::FORBIDDEN, "forbidden", d.0)
}

async fn get_ticket(
    State(s): State<ApiState>,
    key: Option<Extension<Arc<ApiKey>>>,
    Path(number): Path<String>,
) -> Response {
    let Some(Extension(key)) = key else {
        return unauthorized();
    };
    let view = async {
        let client = s.app.db.pool.get().await?;
        let Some(t) = tickets::get_by_number(&**client, &number).await? else {
            return Ok(None);
        };
        let opened_by = tickets::opening_key(&**client, &t).await?;
        let principal = key.principal();
        let facts = TicketFacts::of(&t, opened_by.as_deref());
        if let Err(d) = principal.may_read(&facts) {
            return Ok(Some(Err(d)));
        }
        let mut v = view_of(&s.app, &**client, &t).await?;
        let active = v["active_escalation"].as_bool().unwrap_or(false);
        let mut allowed = allowed_actions(&principal, &t, &facts, active);
        // `milestone` is offered only where the ticket's SLA rule has one it records.
        let recordable = s
            .app
            .policy
            .doc
            .sla
            .rule_for(
                t.category.as_deref().unwrap_or(""),
                t.priority.as_deref().unwrap_or(""),
                &t.channel,
            )
            .is_some_and(|r| {
                r.milestones
                    .iter()
                    .any(|m| m.name != crate::core::sla::Target::Workaround)
            });
        allowed.retain(|k| *k != "milestone" || recordable);
        // A task takes no tasks of its own (`core::groups`).
        if !v["parent"].is_null() {
            allowed.retain(|k| *k != "add_task");
        }
        v["allowed_actions"] = json!(allowed);
        Ok::<_, crate::store::StoreError>(Some(Ok(v)))
    }
    .await;
    match view {
        Ok(Some(Ok(v))) => Json(v).into_response(),
        Ok(Some(Err(d))) => forbidden(d),
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", format!("no ticket {number:?}")),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// Accepted for older clients and ignored: the actor is the authenticated principal.
    #[serde(default)]
    #[allow(dead_code)]
    actor: Option<String>,
    action: Action,
}

/// Longest `Idempotency-Key` accepted (a UUID is 36).
const MAX_IDEMPOTENCY_KEY: usize = 200;

async fn post_action(
    State(s): State<ApiState>,
    key: Option<Extension<Arc<ApiKey>>>,
    Path(number): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(Extension(key)) = key else {
        return unauthorized();
    };
    let principal = key.principal();
    let parsed: ActionBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) if e.is_syntax() || e.is_eof() => {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not JSON: {e}"),
            );
        }
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_action",
                format!("not an action: {e}"),
            );
        }
    };
    let idempotency_key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => uuid::Uuid::new_v4().to_string(),
        Some(Ok(k)) if !k.trim().is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY => k.trim().to_owned(),
        Some(_) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_idempotency_key",
                format!("header `Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
            );
        }
    };
    let msg = ActionMessage {
        ticket: number.clone(),
        actor: principal.actor(),
        action: parsed.action,
    };
    match apply_http(&s, &principal, &msg, &idempotency_key).await {
        Ok((duplicate, published)) => {
            let view = match ticket_json(&s.app, &number).await {
                Ok(v) => v.unwrap_or(Value::Null),
                Err(e) => return internal(e),
            };

            (StatusCode::OK, Json(json!({ "applied": !duplicate, "duplicate": duplicate, "events_published": published, "ticket": view["ticket"], "sla": view["sla"] })))
                .into_response()
        }
        Err(ActionError::NotFound(n)) => error(StatusCode::NOT_FOUND, "not_found", format!("no ticket {n:?}")),
        Err(ActionError::Forbidden(d)) => forbidden(d),
        Err(ActionError::Refused(r)) => error(StatusCode::CONFLICT, "refused", r.to_string()),
        Err(ActionError::Store(e)) => internal(e),
    }
}

/// Applies an action in one transaction with its outputs in the outbox; then tries to publish
/// them at once. Returns (was a duplicate, published now).
///
/// The idempotency key is the caller's own: it is scoped by the principal's key and the
/// ticket, so one caller's key can neither replay nor block another caller's action, a
/// timer's or a queued action's (`action:…` in the same ledger).
pub(crate) async fn apply_http(
    s: &ApiState,
    principal: &Principal<'_>,
    msg: &ActionMessage,
    idempotency_key: &str,
) -> Result<(bool, bool), ActionError> {
    apply_http_if(s, principal, msg, idempotency_key, None).await
}

/// What must still hold for a ticket, checked under its lock, and why the action is refused
/// when it does not.
pub(crate) type Precondition<'a> = (&'a str, fn(&crate::core::ticket::Ticket) -> bool);

/// [`apply_http`], applied only if `still` holds for the ticket as locked (a decision made on
/// an earlier read, such as "not started yet", is checked again under the lock).
pub(crate) async fn apply_http_if(
    s: &ApiState,
    principal: &Principal<'_>,
    msg: &ActionMessage,
    idempotency_key: &str,
    still: Option<Precondition<'_>>,
) -> Result<(bool, bool), ActionError> {
    let mut client = s.app.db.pool.get().await.map_err(crate::store::StoreError::from)?;
    let tx = client.transaction().await?;
    // A retry of an action this caller already applied answers as a duplicate, before any lock
    // (a retry must not hold the ticket while the assign stage drains its queue) and even when
    // the action moved the ticket out of the caller's reach (a transfer to another team).
    let Some(id) = tickets::id_of(&*tx, &msg.ticket).await? else {
        return Err(ActionError::NotFound(msg.ticket.clone()));
    };
    // The caller's key, scoped by principal and ticket; the key id's length first, so no two
    // (principal, ticket, key) triples give one string whatever their characters.
    let ledger_key = format!(
        "api:{}:{}:{id}:{idempotency_key}",
        principal.key_id.len(),
        principal.key_id,
    );
    if crate::store::ledger::lookup(&tx, std::slice::from_ref(&ledger_key))
        .await?
        .contains_key(&ledger_key)
    {
        return Ok((true, false));
    }
    // The one lock order (`store::locks`): the ticket's assignee and any agent a reassignment
    // names, then the ticket.
    let named: Vec<&str> = msg.action.agent_named(&msg.actor).into_iter().collect();
    // A link or merge locks the other ticket too (in id order, with this one): its state is
    // read under the lock, and two merges of a pair into each other cannot deadlock.
    let mut numbers: Vec<&str> = std::iter::once(msg.ticket.as_str())
        .chain(msg.action.other_ticket())
        .collect();
    // A task's parent is locked with it (its being done is written there); opening a task
    // holds the month's counter first (`store::groups`).
    let parents = crate::store::groups::parent_numbers(&*tx, &numbers[..1]).await?;
    numbers.extend(parents.iter().map(String::as_str));
    if matches!(msg.action, Action::AddTask { .. }) {
        let period = crate::core::numbering::period(chrono::Utc::now(), s.app.policy.tz);
        crate::store::groups::hold_counter(&tx, &period).await?;
    }
    let set = crate::store::locks::LockSet {
        agents: &named,
        assignees_of: &numbers[..1],
        ticket_numbers: &numbers,
        ..Default::default()
    };
    let locked = crate::store::locks::lock(&tx, &set).await?.tickets;
    let Some(t) = locked.into_iter().find(|t| t.number == msg.ticket) else {
        return Err(ActionError::NotFound(msg.ticket.clone()));
    };
    if let Some((why, holds)) = still
        && !holds(&t)
    {
        return Err(ActionError::Refused(crate::core::actions::Refusal {
            action: msg.action.kind(),
            ticket: t.number.clone(),
            state: t.state,
            why: why.to_owned(),
        }));
    }
    let opened_by = tickets::opening_key(&*tx, &t).await?;
    principal.may_act(&msg.action, &TicketFacts::of(&t, opened_by.as_deref()))?;
    // A link or merge shows the other ticket's number on this one: the principal must be able
    // to read it (else linking would probe other teams' tickets).
    if let Some(number) = msg.action.other_ticket()
        && let Some(o) = tickets::get_by_number(&*tx, number).await?
    {
        let o_opened = tickets::opening_key(&*tx, &o).await?;
        principal.may_read(&TicketFacts::of(&o, o_opened.as_deref()))?;
    }
    let now = chrono::Utc::now();
    let applied = once(&tx, "api", &ledger_key, || async {
        match apply(&tx, &s.app.policy, &t, msg, now).await {
            Ok((_, outputs)) => Ok(Ok(outputs)),
            Err(ActionError::Store(e)) => Err(e),
            Err(refusal) => Ok(Err(refusal)),
        }
    })
    .await?;
    let outputs = match applied {
        Applied::Done(outputs) => outputs,
        Applied::Duplicate(_) => return Ok((true, false)),
        Applied::Refused(e) => return Err(e),
    };
    outbox::insert(&*tx, &outputs).await?;
    tx.commit().await?;
    // Return the connection before the relay takes one: holding two per request would let a
    // burst of requests starve the pool.
    drop(client);
    Ok((false, relay_now(s).await))
}

/// Asks the assign stage to hand `team`'s queued tickets to agents with capacity (through the
/// outbox, so a broker outage delays it instead of losing it).
pub(crate) async fn request_drain(s: &ApiState, team: &str, reason: &str) {
    let written = async {
        let client = s.app.db.pool.get().await?;
        outbox::insert(&**client, &[crate::stages::actions::drain_message(team, reason)]).await
    }
    .await;
    match written {
        Ok(()) => {
            relay_now(s).await;
        }
        Err(e) => tracing::warn!(error = %e, team, "could not ask for the team queue to be drained"),
    }
}

async fn relay_now(s: &ApiState) -> bool {
    let mut guard = s.channel.lock().await;
    if guard
        .as_ref()
        .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
    {
        *guard = match crate::bus::connect(&s.app.settings.amqp_urls(), "switchboard-api").await {
            Ok(conn) => match crate::bus::confirm_channel(&conn).await {
                Ok(ch) => Some((conn, ch)),
                Err(_) => None,
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot publish action events now; the outbox relay will");
                None
            }
        };
    }
    let Some((_, ch)) = guard.as_ref() else { return false };
    match crate::runtime::relay::relay(&s.app.db, ch, &s.app.topo, 1000).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "publishing action events failed; the outbox relay will retry");
            *guard = None;
            false
        }
    }
}
