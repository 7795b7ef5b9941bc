//! The web desk: `GET /desk`, one self-contained HTML page (inline CSS and JavaScript, nothing
//! fetched from anywhere else) from which agents work their tickets and supervisors watch their
//! team.
//!
//! The page itself holds no data and needs no key: it asks for a token, keeps it in
//! `sessionStorage`, and sends it as `Authorization: Bearer` on every call to the ticket API
//! (`/v1/me`, `/v1/tickets`, `/v1/tickets/{number}/actions`, `/v1/teams/{team}/board`) and to
//! the live stream (`/v1/stream`, read with `fetch` so the token never goes into a URL).
//!
//! It is served with a Content-Security-Policy that allows its one inline script by hash and
//! connections to its own origin only, so text from the server (always inserted as text, never
//! as markup) cannot run script even if the page had a bug.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The page.
pub const PAGE: &str = include_str!("desk.html");

/// The policy the page is served with: its inline script allowed by hash, its inline styles,
/// requests to its own origin only, no framing, no forms posted anywhere.
pub static CONTENT_SECURITY_POLICY: LazyLock<String> = LazyLock::new(|| {
    let script = match script_hash(PAGE) {
        Some(hash) => format!("'sha256-{hash}'"),
        // Unreachable with the page as shipped (a unit test checks it has its script).
        None => "'none'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src {script}; style-src 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
});

/// The base64 SHA-256 of the page's one inline `<script>`, as CSP's `'sha256-…'` wants it.
fn script_hash(page: &str) -> Option<String> {
    let (_, rest) = page.split_once("<script>")?;
    let (script, _) = rest.split_once("</script>")?;
    Some(STANDARD.encode(Sha256::digest(script.as_bytes())))
}

/// `/desk`, unauthenticated (the page asks for a token itself).
pub fn router() -> Router {
    Router::new().route("/desk", get(page))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY.as_str()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        PAGE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_allowed_by_its_hash() {
        assert_eq!(PAGE.matches("<script>").count(), 1, "exactly one inline script");
        assert!(!PAGE.contains("<script "), "no script with attributes (src=…)");
        let hash = script_hash(PAGE).expect("the page has its script");
        assert!(CONTENT_SECURITY_POLICY.contains(&format!("'sha256-{hash}'")));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
        assert_eq!(
            script_hash("<p><script>x</script>"),
            Some(STANDARD.encode(Sha256::digest(b"x")))
        );
    }

    #[test]
    fn page_is_self_contained() {
        assert!(
            !PAGE.contains("http://") && !PAGE.contains("https://"),
            "no external resources"
        );
        for call in ["/v1/me", "/v1/tickets", "/v1/stream", "/v1/teams/"] {
            assert!(PAGE.contains(call), "{call}");
        }
        // Server text goes in as text only.
        assert!(!PAGE.contains("innerHTML") && !PAGE.contains("outerHTML") && !PAGE.contains("insertAdjacentHTML"));
        assert!(!PAGE.contains("eval(") && !PAGE.contains("new Function"));
    }
}
