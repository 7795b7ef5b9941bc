//! The agents' and supervisors' HTTP API: tickets and their lifecycle actions.
//! Served by the gateway process next to the channel endpoints.

use crate::app::App;
use axum::Router;

/// Routes under `/v1/tickets`. Merged into the gateway's router.
pub fn router(app: App) -> Router {
    let _ = app;
    Router::new()
}
