//! The people's work API: the ticket list with filters and a cursor (`GET /v1/tickets`), who am
//! I (`GET /v1/me`), presence (`PUT /v1/me/presence`) and a team's board
//! (`GET /v1/teams/{team}/board`). Every answer is cut to what the principal may see
//! (`core::access`); integration keys get 403 on all of it.

use super::api::{ApiState, apply_http_if, error, forbidden, internal, unauthorized};
use crate::contracts::action::ActionMessage;
use crate::core::access::{Denied, Principal, Role};
use crate::core::actions::Action;
use crate::core::policy::OnOffline;
use crate::http::auth::ApiKey;
use crate::store::worklist::{self, Assignee, Cursor, Query, Scope, Sort, Summary};
use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/tickets", get(list_tickets))
        .route("/v1/me", get(me))
        .route("/v1/me/presence", axum::routing::put(set_presence))
        .route("/v1/teams/{team}/board", get(board))
}

const MAX_LIMIT: i64 = 200;
const DEFAULT_LIMIT: i64 = 50;
const LIST_PARAMS: [&str; 15] = [
    "assignee",
    "team",
    "state",
    "priority",
    "category",
    "channel",
    "at_risk",
    "within",
    "breached",
    "needs_triage",
    "customer",
    "q",
    "sort",
    "limit",
    "cursor",
];

/// Which tickets a principal may list; integrations list none.
pub(crate) fn scope_of(p: &Principal<'_>) -> Result<Scope, Denied> {
    match p.role {
        Role::Integration => Err(Denied(
            "an integration key cannot list tickets: use a person's token or key".into(),
        )),
        Role::Admin => Ok(Scope::Everything),
        Role::Supervisor => Ok(p.team.map_or(Scope::Everything, |t| Scope::Team(t.to_owned()))),
        Role::Agent => Ok(Scope::Agent {
            agent: p.agent.unwrap_or_default().to_owned(),
            team: p.agent_team.map(str::to_owned),
        }),
    }
}

/// A refusal, boxed: a `Response` is large to carry through `Result`s.
type Refusal = Box<Response>;

fn bad(message: String) -> Refusal {
    Box::new(error(StatusCode::BAD_REQUEST, "invalid_query", message))
}

/// Query parameters, each at most once, none unknown.
fn parse_params(raw: Option<&str>) -> Result<HashMap<String, String>, Refusal> {
    let mut out = HashMap::new();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|e| bad(format!("the query string does not parse: {e}")))?;
    for (k, v) in pairs {
        if !LIST_PARAMS.contains(&k.as_str()) {
            return Err(bad(format!(
                "unknown parameter {k:?}; known: {}",
                LIST_PARAMS.join(", ")
            )));
        }
        if out.insert(k.clone(), v).is_some() {
            return Err(bad(format!(
                "parameter {k:?} given twice; give a comma-separated list instead"
            )));
        }
    }
    Ok(out)
}

fn list(v: Option<&String>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

fn flag(params: &HashMap<String, String>, name: &str) -> Result<bool, Refusal> {
    match params.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(bad(format!("{name} must be true or false, not {other:?}"))),
    }
}

fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode_cursor(s: &str) -> Option<Cursor> {
    if s.len() > 512 {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()
}

/// A list row as the API shows it: the summary with its next deadline and whether it passed.
pub(crate) fn summary_json(s: &Summary, now: chrono::DateTime<Utc>) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["next_due"] = match (s.next_target(), s.next_due) {
        (Some(target), Some(due)) => {
            json!({ "target": target, "due_at": due, "seconds_left": (due - now).num_seconds() })
        }
        _ => Value::Null,
    };
    v["breached"] = json!(s.next_due.is_some_and(|d| d <= now));
    v
}

/// The query a request asks for, or a 400 naming the bad parameter.
fn build_query(state: &ApiState, p: &Principal<'_>, params: &HashMap<String, String>) -> Result<Query, Refusal> {
    let scope = scope_of(p).map_err(|d| Box::new(forbidden(d)))?;
    let policy = &state.app.policy.doc;
    let now = Utc::now();
    let assignee = match params.get("assignee").map(String::as_str) {
        None | Some("") => None,
        Some("me") => match p.agent {
            Some(a) => Some(Assignee::Agent(a.to_owned())),
            None => return Err(bad("assignee=me is for agents; give an agent id".into())),
        },
        Some("none") => Some(Assignee::Nobody),
        Some(id) => Some(Assignee::Agent(id.to_owned())),
    };
    let states = list(params.get("state"));
    if let Some(s) = states
        .iter()
        .find(|s| crate::core::state::TicketState::parse(s).is_none())
    {
        return Err(bad(format!("unknown state {s:?}")));
    }
    let priorities = list(params.get("priority"));
    if let Some(pr) = priorities.iter().find(|x| !policy.priority.levels.contains(x)) {
        return Err(bad(format!(
            "unknown priority {pr:?}; levels: {}",
            policy.priority.levels.join(", ")
        )));
    }
    let sort = match params.get("sort") {
        None => Sort::Due,
        Some(s) => Sort::parse(s).ok_or_else(|| bad(format!("sort must be due, received or priority, not {s:?}")))?,
    };
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| bad(format!("limit must be 1 to {MAX_LIMIT}, not {l:?}")))?,
    };
    let after = match params.get("cursor") {
        None => None,
        Some(c) => {
            let cur = decode_cursor(c).ok_or_else(|| bad("cursor is not one this API gave out".into()))?;
            if cur.sort != sort.as_str() {
                return Err(bad(format!(
                    "this cursor continues sort={}, not sort={}",
                    cur.sort,
                    sort.as_str()
                )));
            }
            Some(cur)
        }
    };
    let within = match params.get("within") {
        None => i64::from(state.app.policy.doc.desk.at_risk_minutes),
        Some(w) => w
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=7 * 24 * 60).contains(n))
            .ok_or_else(|| bad(format!("within is minutes, 1 to 10080, not {w:?}")))?,
    };
    let due_by = flag(params, "at_risk")?.then(|| now + chrono::Duration::minutes(within));
    let customer = match params.get("customer").map(|c| c.trim()).filter(|c| !c.is_empty()) {
        None => Vec::new(),
        Some(c) if c.len() > 254 => return Err(bad("customer is at most 254 bytes".into())),
        Some(c) => crate::core::search::customer_query_terms(c),
    };
    let terms = match params.get("q").map(|q| q.trim()).filter(|q| !q.is_empty()) {
        None => Vec::new(),
        Some(q) if q.len() > 200 => return Err(bad("q is at most 200 bytes".into())),
        Some(q) => {
            let t = crate::core::search::query_terms(q);
            if t.is_empty() {
                return Err(bad(format!(
                    "q {q:?} has no letters, digits or Chinese characters to search for"
                )));
            }
            t
        }
    };
    Ok(Query {
        scope,
        assignee,
        team: params.get("team").filter(|t| !t.is_empty()).cloned(),
        states,
        priorities,
        category: params.get("category").filter(|t| !t.is_empty()).cloned(),
        channel: params.get("channel").filter(|t| !t.is_empty()).cloned(),
        due_by,
        breached: flag(params, "breached")?,
        needs_triage: match params.get("needs_triage") {
            None => None,
            Some(_) => Some(flag(params, "needs_triage")?),
        },
        customer,
        terms,
        sort,
        levels: policy.priority.levels.clone(),
        limit,
        after,
        now,
    })
}

async fn list_tickets(
    State(s): State<ApiState>,
    key: Option<Extension<Arc<ApiKey>>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(Extension(key)) = key else {
        return unauthorized();
    };
    let principal = key.principal();
    if let Err(d) = scope_of(&principal) {
        return forbidden(d);
    }
    let params = match parse_params(raw.as_deref()) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let q = match build_query(&s, &principal, &params) {
        Ok(q) => q,
        Err(r) => return *r,
    };
    let started = std::time::Instant::now();
    match worklist::list(&s.app.db, &q).await {
        Ok((rows, more)) => {
            metrics::histogram!("switchboard_api_list_seconds").record(started.elapsed().as_secs_f64());
            let next = more
                .then(|| rows.last().map(|r| encode_cursor(&r.cursor(q.sort))))
                .flatten();
            let tickets: Vec<Value> = rows.iter().map(|r| summary_json(r, q.now)).collect();
            Json(json!({ "tickets": tickets, "next_cursor": next })).into_response()
        }
        Err(e) => internal(e),
    }
}

/// The teams whose queue and board a principal may see.
fn teams_of(s: &ApiState, p: &Principal<'_>) -> Vec<String> {
    match (p.role, p.team, p.agent_team) {
        (Role::Agent, _, Some(t)) => vec![t.to_owned()],
        (Role::Supervisor, Some(t), _) => vec![t.to_owned()],
        (Role::Supervisor, None, _) | (Role::Admin, _, _) => s.app.policy.doc.teams.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

async fn me(State(s): State<ApiState>, key: Option<Extension<Arc<ApiKey>>>) -> Response {
    let Some(Extension(key)) = key else {
        return unauthorized();
    };
    let p = key.principal();
    if let Err(d) = scope_of(&p) {
        return forbidden(d);
    }
    let kind = if key.id.starts_with("usr_") {
        "user"
    } else if key.id.starts_with("oidc:") {
        "sso"
    } else {
        "key"
    };
    let principal = json!({
        "id": key.id, "kind": kind, "name": key.name, "role": key.role,
        "agent": key.agent, "team": key.team.as_deref().or(key.agent_team.as_deref()),
        "actor": p.actor(),
    });
    let now = Utc::now();
    let (agent, open) = match p.agent {
        Some(a) => {
            let agent = match worklist::agent_loads(&s.app.db, None, Some(a)).await {
                Ok(mut v) => v.pop(),
                Err(e) => return internal(e),
            };
            let q = Query {
                scope: scope_of(&p).unwrap_or(Scope::Everything),
                assignee: Some(Assignee::Agent(a.to_owned())),
                team: None,
                states: ["assigned", "in_progress", "waiting_for_customer"]
                    .map(str::to_owned)
                    .to_vec(),
                priorities: Vec::new(),
                category: None,
                channel: None,
                due_by: None,
                breached: false,
                needs_triage: None,
                customer: Vec::new(),
                terms: Vec::new(),
                sort: Sort::Due,
                levels: s.app.policy.doc.priority.levels.clone(),
                limit: MAX_LIMIT,
                after: None,
                now,
            };
            match worklist::list(&s.app.db, &q).await {
                Ok((rows, _)) => (
                    agent.map(|a| json!(a)).unwrap_or(Value::Null),
                    rows.iter().map(|r| summary_json(r, now)).collect::<Vec<_>>(),
                ),
                Err(e) => return internal(e),
            }
        }
        None => (Value::Null, Vec::new()),
    };
    Json(json!({
        "principal": principal,
        "agent": agent,
        "open_tickets": open,
        "teams": teams_of(&s, &p),
        "at_risk_minutes": s.app.policy.doc.desk.at_risk_minutes,
        // What a desk offers in its pickers (transfer, reclassify, set_priority).
        "policy": {
            "priorities": s.app.policy.doc.priority.levels,
            "categories": s.app.policy.doc.classification.category_ids(),
            "teams": s.app.policy.doc.teams.keys().collect::<Vec<_>>(),
        },
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceBody {
    presence: String,
}

async fn set_presence(
    State(s): State<ApiState>,
    key: Option<Extension<Arc<ApiKey>>>,
    body: axum::body::Bytes,
) -> Response {
    let Some(Extension(key)) = key else {
        return unauthorized();
    };
    let p = key.principal();
    let (Role::Agent, Some(agent)) = (p.role, p.agent) else {
        return forbidden(Denied(
            "presence is an agent's: this principal is not a roster agent".into(),
        ));
    };
    let presence = match serde_json::from_slice::<PresenceBody>(&body) {
        Ok(b) => match crate::core::routing::Presence::parse(&b.presence) {
            Some(pr) => pr,
            None => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_presence",
                    format!("presence must be online, away or offline, not {:?}", b.presence),
                );
            }
        },
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_presence",
                format!("expected {{\"presence\": \"online|away|offline\"}}: {e}"),
            );
        }
    };
    let free_team = match s.app.db.set_agent_status(agent, Some(presence), None).await {
        Ok(t) => t,
        Err(e) => return internal(e),
    };
    // Going offline hands back what the agent has not started, so it does not wait for them
    // (policy `[desk] on_offline`); each goes back through the action path, as if the agent
    // had transferred it to their own team's queue.
    let mut returned = Vec::new();
    if presence == crate::core::routing::Presence::Offline
        && s.app.policy.doc.desk.on_offline == OnOffline::ReturnUnstarted
    {
        let numbers = match worklist::unstarted_of(&s.app.db, agent).await {
            Ok(n) => n,
            Err(e) => return internal(e),
        };
        let idempotency = uuid::Uuid::new_v4().to_string();
        for number in numbers {
            let Some(team) = p.agent_team else { break };
            let msg = ActionMessage {
                ticket: number.clone(),
                actor: p.actor(),
                action: Action::Transfer {
                    team: team.to_owned(),
                    reason: Some("the agent went offline before starting it".into()),
                },
            };
            let unstarted: fn(&crate::core::ticket::Ticket) -> bool =
                |t| t.state == crate::core::state::TicketState::Assigned && t.life.first_responded_at.is_none();
            let still = Some(("it was started meanwhile", unstarted));
            match apply_http_if(&s, &p, &msg, &format!("offline:{idempotency}"), still).await {
                Ok(_) => returned.push(number),
                // Started or moved meanwhile: it stays where it is.
                Err(e) => tracing::info!(ticket = %number, error = %e, "not handed back on going offline"),
            }
        }
    }
    if let Some(team) = free_team {
        super::api::request_drain(&s, &team, &format!("agent {agent} is online with capacity")).await;
    }
    match worklist::agent_loads(&s.app.db, None, Some(agent)).await {
        Ok(mut a) => Json(json!({ "agent": a.pop(), "returned": returned })).into_response(),
        Err(e) => internal(e),
    }
}

async fn board(State(s): State<ApiState>, key: Option<Extension<Arc<ApiKey>>>, Path(team): Path<String>) -> Response {
    let Some(Extension(key)) = key else {
        return unauthorized();
    };
    let p = key.principal();
    let allowed = match p.role {
        Role::Admin => true,
        Role::Supervisor => p.team.is_none_or(|t| t == team),
        _ => false,
    };
    if !allowed {
        return forbidden(Denied(format!("the {team} board is for its supervisors")));
    }
    if !s.app.policy.doc.teams.contains_key(&team) {
        return error(StatusCode::NOT_FOUND, "not_found", format!("no team {team:?}"));
    }
    let now = Utc::now();
    let minutes = i64::from(s.app.policy.doc.desk.at_risk_minutes);
    let at_risk = Query {
        scope: Scope::Team(team.clone()),
        assignee: None,
        team: None,
        states: Vec::new(),
        priorities: Vec::new(),
        category: None,
        channel: None,
        due_by: None,
        breached: false,
        needs_triage: None,
        customer: Vec::new(),
        terms: Vec::new(),
        sort: Sort::Due,
        levels: s.app.policy.doc.priority.levels.clone(),
        limit: 50,
        after: None,
        now,
    };
    let result = async {
        let agents = worklist::agent_loads(&s.app.db, Some(&team), None).await?;
        let queued = worklist::queued(&s.app.db, &team).await?;
        // Breached first (the earliest deadlines), then those due within the window.
        let (rows, _) = worklist::list(&s.app.db, &at_risk).await?;
        let horizon = now + chrono::Duration::minutes(minutes);
        let at_risk: Vec<Value> = rows
            .iter()
            .filter(|r| r.next_due.is_some_and(|d| d <= horizon))
            .map(|r| summary_json(r, now))
            .collect();
        let escalations = worklist::open_escalations(&s.app.db, &team, 100).await?;
        Ok::<_, crate::store::StoreError>(json!({
            "team": team, "agents": agents, "queued": queued, "at_risk": at_risk,
            "at_risk_minutes": minutes, "escalations": escalations,
        }))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor {
            sort: "due".into(),
            rank: None,
            at: Some(Utc::now()),
            id: 42,
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        assert_eq!(decode_cursor("not-a-cursor"), None);
        assert_eq!(decode_cursor(&"A".repeat(600)), None);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        assert!(parse_params(Some("state=queued&team=billing")).is_ok());
        assert!(parse_params(Some("needs_triage=true&team=triage")).is_ok());
        assert!(parse_params(Some("stat=queued")).is_err());
        assert!(parse_params(Some("team=a&team=b")).is_err());
    }
}
