//! Follow-up visits (回访) for the people who make them: `GET /v1/follow-ups` lists the open
//! ones of the caller's team, earliest due first; `POST /v1/follow-ups/{id}/done` records the
//! outcome. Complaints and low ratings create them (`core::notify`, the notify stage).

use crate::core::notify::{follow_up_scope, in_scope};
use crate::http::api::{ApiState, error, forbidden, internal, unauthorized};
use crate::store::keys::ApiKey;
use crate::store::outbound;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

const MAX_OUTCOME_CHARS: usize = 2000;

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/follow-ups", get(list))
        .route("/v1/follow-ups/{id}/done", post(done))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

async fn list(
    State(s): State<ApiState>,
    key: Option<Extension<Arc<ApiKey>>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(Extension(key)) = key else {
        return unauthorized();
    };
    let Ok(Query(q)) = query else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            "the query takes `team` and `limit` (1-200)".into(),
        );
    };
    let principal = key.principal();
    let scope = match follow_up_scope(&principal) {
        Ok(s) => s,
        Err(m) => return forbidden(crate::core::access::Denied(m)),
    };
    let team = match (scope, q.team.as_deref()) {
        (Some(mine), Some(asked)) if mine != asked => {
            return forbidden(crate::core::access::Denied(format!(
                "you work team {mine}'s follow-up visits, not {asked}'s"
            )));
        }
        (Some(mine), _) => Some(mine),
        (None, asked) => asked,
    };
    match outbound::open_follow_ups(&s.app.db, team, q.limit.unwrap_or(50).clamp(1, 200)).await {
        Ok(rows) => Json(json!({ "follow_ups": rows })).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DoneBody {
    /// What the customer said (satisfied now, still unhappy, not reached, …).
    outcome: String,
}

async fn done(
    State(s): State<ApiState>,
    key: Option<Extension<Arc<ApiKey>>>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Response {
    let Some(Extension(key)) = key else {
        return unauthorized();
    };
    let principal = key.principal();
    let scope = match follow_up_scope(&principal) {
        Ok(s) => s,
        Err(m) => return forbidden(crate::core::access::Denied(m)),
    };
    let parsed: DoneBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("expected {{\"outcome\": \"…\"}}: {e}"),
            );
        }
    };
    let outcome: String = parsed.outcome.trim().chars().take(MAX_OUTCOME_CHARS).collect();
    if outcome.is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "`outcome` must say how the visit went".into(),
        );
    }
    let team = match outbound::follow_up_team(&s.app.db, id).await {
        Ok(Some(t)) => t,
        Ok(None) => return error(StatusCode::NOT_FOUND, "not_found", format!("no follow-up visit {id}")),
        Err(e) => return internal(e),
    };
    if !in_scope(scope, team.as_deref()) {
        // Not found rather than forbidden: another team's visits are not the caller's to know of.
        return error(StatusCode::NOT_FOUND, "not_found", format!("no follow-up visit {id}"));
    }
    match outbound::finish_follow_up(&s.app.db, id, &principal.actor(), &outcome).await {
        Ok(Some(_)) => Json(json!({ "id": id, "done": true })).into_response(),
        Ok(None) => error(
            StatusCode::CONFLICT,
            "already_done",
            format!("follow-up visit {id} is done already"),
        ),
        Err(e) => internal(e),
    }
}
