//! Logging and metrics set-up shared by every binary.

use tracing_subscriber::EnvFilter;

/// Structured logs to stderr; `RUST_LOG` filters (default `info`), `SWITCHBOARD_LOG_FORMAT=json`
/// for machine-readable lines.
pub fn init() {
    init_with_default("info,lapin=warn");
}

/// Like `init`, with another default filter (one-shot commands show only warnings).
pub fn init_with_default(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var("SWITCHBOARD_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr`, when configured, with no readiness
/// checks of its own (`/readyz` answers 200). A worker uses [`crate::runtime::ops::serve_early`]
/// instead, which adds its broker, consumer and Postgres checks and the gauge collector.
pub fn install_metrics(addr: Option<&str>) -> Result<(), String> {
    let Some(addr) = addr else { return Ok(()) };
    let state = crate::runtime::ops::OpsState::unchecked(crate::runtime::ops::recorder().map_err(|e| e.to_string())?);
    crate::runtime::ops::serve(addr, state, tokio_util::sync::CancellationToken::new()).map_err(|e| e.to_string())?;
    Ok(())
}
