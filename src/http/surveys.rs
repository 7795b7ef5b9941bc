//! Satisfaction surveys answered by customers (seed 000 §(四), SPEC §5): `GET
//! /v1/surveys/{token}` shows the form, `POST` records the answer once and rates the ticket.
//!
//! The link's token (32 random bytes, sent only in the survey message) is the customer's one
//! credential: it reads one survey and answers it once, nothing else. Only its SHA-256 is
//! stored. The answer becomes the `rate` action through the actions queue (via the outbox, in
//! the transaction that records the answer), so a low score reopens the ticket exactly as an
//! integration's rating does.

use crate::contracts::action::ActionMessage;
use crate::contracts::{Exchange, Outgoing};
use crate::core::actions::Action;
use crate::core::privacy::secret_digest;
use crate::runtime::Services;
use crate::store::{outbound, outbox};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Longest comment kept.
pub const MAX_COMMENT_CHARS: usize = 2000;
const MAX_BODY: usize = 16 * 1024;

pub fn router(app: Services) -> Router {
    Router::new()
        .route("/v1/surveys/{token}", get(show).post(answer))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

fn plausible(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
        || headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"))
}

fn reply(json_wanted: bool, status: StatusCode, code: &str, message: &str) -> Response {
    if json_wanted {
        let body = if status.is_success() {
            json!({ "status": code, "message": message })
        } else {
            json!({ "error": { "code": code, "message": message } })
        };
        (status, axum::Json(body)).into_response()
    } else {
        (status, Html(page(&format!("<p>{}</p>", escape(message))))).into_response()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(inner: &str) -> String {
    format!(
        "<!doctype html><html lang=\"zh\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>满意度调查 Survey</title><style>body{{font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em}}\
         fieldset{{border:0;padding:0;margin:1em 0}}label{{margin-right:1em}}textarea{{width:100%;height:6em}}</style></head>\
         <body><h1>满意度调查 · How did we do?</h1>{inner}</body></html>"
    )
}

fn dimension_label(d: &str) -> &str {
    match d {
        "overall" => "总体满意度 Overall",
        "speed" => "处理速度 Speed",
        "attitude" => "服务态度 Attitude",
        "quality" => "解决质量 Quality",
        other => other,
    }
}

/// The survey a link's token opens; a token of the wrong shape is refused before the database
/// is asked.
async fn find(app: &Services, token: &str, json_wanted: bool) -> Result<outbound::Survey, Response> {
    let not_found = || {
        reply(
            json_wanted,
            StatusCode::NOT_FOUND,
            "not_found",
            "no such survey: check the link",
        )
    };
    if !plausible(token) {
        return Err(not_found());
    }
    match outbound::survey_by_token(&app.db, &secret_digest(token)).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(not_found()),
        Err(e) => Err(crate::http::api::internal(e)),
    }
}

async fn show(State(app): State<Services>, Path(token): Path<String>, headers: HeaderMap) -> Response {
    let json_wanted = wants_json(&headers);
    let survey = match find(&app, &token, json_wanted).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    if json_wanted {
        return axum::Json(json!({
            "survey": survey.number,
            "ticket": survey.ticket_number,
            "dimensions": survey.dimensions,
            "answered_at": survey.answered_at,
            "score": survey.score,
        }))
        .into_response();
    }
    if survey.answered_at.is_some() {
        return Html(page(
            "<p>感谢您的评价！您已提交过本次调查。Thank you: this survey is answered.</p>",
        ))
        .into_response();
    }
    let mut form = format!(
        "<p>工单 Ticket {}</p><form method=\"post\">",
        escape(&survey.ticket_number)
    );
    for d in &survey.dimensions {
        form.push_str(&format!("<fieldset><legend>{}</legend>", escape(dimension_label(d))));
        for n in 1..=5 {
            form.push_str(&format!(
                "<label><input type=\"radio\" name=\"{}\" value=\"{n}\" required> {n}</label>",
                escape(d)
            ));
        }
        form.push_str("</fieldset>");
    }
    form.push_str(
        "<p><label for=\"comment\">意见 Comment</label><br><textarea id=\"comment\" name=\"comment\" maxlength=\"2000\"></textarea></p>\
         <button type=\"submit\">提交 Submit</button></form><p>1 = 非常不满意 very dissatisfied · 5 = 非常满意 very satisfied</p>",
    );
    Html(page(&form)).into_response()
}

/// The answer as posted: `score` (the overall score) and/or one field per dimension, and a
/// comment; JSON or a form.
/// The answer's fields: a JSON object (its `scores` merged in) or a form.
fn fields_of(headers: &HeaderMap, body: &[u8]) -> Result<BTreeMap<String, Value>, String> {
    Ok(if wants_json(headers) {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        let Value::Object(m) = v else {
            return Err("the body must be a JSON object".into());
        };
        let mut out: BTreeMap<String, Value> = m.into_iter().collect();
        if let Some(Value::Object(scores)) = out.remove("scores") {
            out.extend(scores);
        }
        out
    } else {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(body).map_err(|e| format!("the form does not decode: {e}"))?;
        pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect()
    })
}

/// The optional `reason` of an answer: a code of `[lifecycle] unsatisfied_reasons`.
fn reason_of(
    headers: &HeaderMap,
    body: &[u8],
    declared: &std::collections::BTreeMap<String, String>,
) -> Result<Option<String>, String> {
    match fields_of(headers, body)?.get("reason") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(r)) if r.trim().is_empty() => Ok(None),
        Some(Value::String(r)) if declared.contains_key(r.trim()) => Ok(Some(r.trim().to_owned())),
        Some(_) => Err(format!(
            "`reason` must be one of: {}",
            declared.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
        )),
    }
}

fn parse_answer(
    headers: &HeaderMap,
    body: &[u8],
    dimensions: &[String],
) -> Result<(i16, Value, Option<String>), String> {
    let fields = fields_of(headers, body)?;
    let score_of = |name: &str, v: &Value| -> Result<i16, String> {
        let n = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        match n {
            Some(n @ 1..=5) => Ok(n as i16),
            _ => Err(format!("`{name}` must be a whole number from 1 to 5")),
        }
    };
    let mut scores = serde_json::Map::new();
    for d in dimensions {
        if let Some(v) = fields.get(d) {
            scores.insert(d.clone(), json!(score_of(d, v)?));
        }
    }
    let overall = match (fields.get("score"), dimensions.first().and_then(|d| scores.get(d))) {
        (Some(v), _) => score_of("score", v)?,
        (None, Some(v)) => v.as_i64().unwrap_or(0) as i16,
        (None, None) => {
            return Err(format!(
                "give `score` (1–5) or a score for {}",
                dimensions.first().map(String::as_str).unwrap_or("overall")
            ));
        }
    };
    if let Some(first) = dimensions.first() {
        scores.entry(first.clone()).or_insert(json!(overall));
    }
    let comment = match fields.get("comment") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if c.trim().is_empty() => None,
        Some(Value::String(c)) => Some(c.trim().chars().take(MAX_COMMENT_CHARS).collect()),
        Some(_) => return Err("`comment` must be text".into()),
    };
    Ok((overall, Value::Object(scores), comment))
}

async fn answer(
    State(app): State<Services>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let json_wanted = wants_json(&headers);
    let survey = match find(&app, &token, json_wanted).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    let (score, scores, comment) = match parse_answer(&headers, &body, &survey.dimensions) {
        Ok(a) => a,
        Err(m) => return reply(json_wanted, StatusCode::UNPROCESSABLE_ENTITY, "invalid_answer", &m),
    };
    let reason = match reason_of(&headers, &body, &app.policy.doc.lifecycle.unsatisfied_reasons) {
        Ok(r) => r,
        Err(m) => return reply(json_wanted, StatusCode::UNPROCESSABLE_ENTITY, "invalid_answer", &m),
    };
    let applied = async {
        let mut client = app.db.pool.get().await?;
        let tx = client.transaction().await?;
        if !outbound::answer_survey(&tx, &survey.number, score, &scores, comment.as_deref()).await? {
            return Ok::<bool, crate::store::StoreError>(false);
        }
        let msg = ActionMessage {
            ticket: survey.ticket_number.clone(),
            actor: "customer".into(),
            action: Action::Rate {
                score: score as u8,
                comment: comment.clone(),
                reason,
            },
        };
        let rate = Outgoing {
            exchange: Exchange::Actions,
            routing_key: "action.rate".into(),
            message_id: format!("survey:{}", survey.number),
            body: crate::contracts::Body::of(&msg),
            headers: vec![],
        };
        outbox::insert(&*tx, &[rate]).await?;
        tx.commit().await?;
        Ok(true)
    }
    .await;
    match applied {
        Ok(true) => {
            metrics::counter!("switchboard_surveys_answered_total").increment(1);
            reply(
                json_wanted,
                StatusCode::OK,
                "answered",
                "感谢您的评价！Thank you for your answer.",
            )
        }
        Ok(false) => reply(
            json_wanted,
            StatusCode::CONFLICT,
            "already_answered",
            "this survey is answered already; thank you",
        ),
        Err(e) => crate::http::api::internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims() -> Vec<String> {
        vec!["overall".into(), "speed".into()]
    }

    #[test]
    fn an_answer_takes_the_overall_score_from_score_or_the_first_dimension() {
        let mut json_headers = HeaderMap::new();
        json_headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let (s, scores, c) = parse_answer(&json_headers, br#"{"score": 4, "comment": " ok "}"#, &dims()).unwrap();
        assert_eq!((s, c.as_deref()), (4, Some("ok")));
        assert_eq!(scores, json!({"overall": 4}));
        let (s, scores, _) =
            parse_answer(&json_headers, br#"{"scores": {"overall": 2, "speed": 5}}"#, &dims()).unwrap();
        assert_eq!(s, 2);
        assert_eq!(scores, json!({"overall": 2, "speed": 5}));
        let form = HeaderMap::new();
        let (s, _, c) = parse_answer(&form, b"overall=5&speed=3&comment=%E5%BE%88%E5%A5%BD", &dims()).unwrap();
        assert_eq!((s, c.as_deref()), (5, Some("很好")));
    }

    #[test]
    fn a_bad_answer_is_named() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(
            parse_answer(&h, br#"{"score": 6}"#, &dims())
                .unwrap_err()
                .contains("1 to 5")
        );
        assert!(
            parse_answer(&h, br#"{"comment": "x"}"#, &dims())
                .unwrap_err()
                .contains("score")
        );
        assert!(parse_answer(&h, b"{", &dims()).unwrap_err().contains("JSON"));
        let declared: std::collections::BTreeMap<String, String> = [("slow".to_owned(), "慢 Slow".to_owned())].into();
        assert_eq!(
            reason_of(&h, br#"{"score": 1, "reason": "slow"}"#, &declared),
            Ok(Some("slow".into()))
        );
        assert_eq!(reason_of(&h, br#"{"score": 1}"#, &declared), Ok(None));
        assert!(
            reason_of(&h, br#"{"score": 1, "reason": "rude"}"#, &declared)
                .unwrap_err()
                .contains("slow")
        );
        assert!(reason_of(&h, br#"{"score": 1, "reason": 3}"#, &declared).is_err());
        assert!(
            parse_answer(&h, br#"{"score": 3, "comment": 7}"#, &dims())
                .unwrap_err()
                .contains("comment")
        );
        assert!(!plausible("short"));
        assert!(!plausible(&"a".repeat(42)));
        assert!(plausible(&"a".repeat(43)));
    }
}
