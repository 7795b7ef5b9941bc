//! Logging, tracing and metrics set-up shared by every binary.

use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The variable that turns span export on: the OTLP/HTTP collector's base URL
/// (`http://collector:4318`; `/v1/traces` is appended unless it is there already).
pub const OTLP_ENDPOINT_VAR: &str = "SWITCHBOARD_OTLP_ENDPOINT";

/// The tracer provider of a process that exports, kept to flush its last spans on the way out.
static PROVIDER: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();

/// Structured logs to stderr; `RUST_LOG` filters (default `info`), `SWITCHBOARD_LOG_FORMAT=json`
/// for machine-readable lines. Spans are exported as service `switchboard` when
/// `SWITCHBOARD_OTLP_ENDPOINT` is set.
pub fn init() {
    init_with_default("info,lapin=warn");
}

/// Like `init`, for a process that runs one part of the service: its spans are exported as
/// service `service` (`switchboard-classify`, `switchboard-gateway`).
pub fn init_service(service: &str) {
    setup("info,lapin=warn", service);
}

/// Like `init`, with another default filter (one-shot commands show only warnings).
pub fn init_with_default(default: &str) {
    setup(default, "switchboard");
}

fn setup(default: &str, service: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var("SWITCHBOARD_LOG_FORMAT").is_ok_and(|v| v == "json");
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let fmt = if json { fmt.json().boxed() } else { fmt.boxed() };
    let endpoint = std::env::var(OTLP_ENDPOINT_VAR).ok().filter(|v| !v.trim().is_empty());
    let (tracer, problem) = match endpoint.as_deref().map(|e| tracer(e, service)) {
        None => (None, None),
        Some(Ok(t)) => (Some(t), None),
        Some(Err(e)) => (None, Some(e)),
    };
    // The exporter sees the service's own spans at info and above, whatever `RUST_LOG` says
    // for the log lines (and never the HTTP client's spans, which would export themselves).
    let otel = tracer.map(|t| {
        tracing_opentelemetry::layer()
            .with_tracer(t)
            .with_filter(tracing_subscriber::filter::Targets::new().with_target("switchboard", tracing::Level::INFO))
    });
    let installed = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init()
        .is_ok();
    if installed && PROVIDER.get().is_some() {
        crate::runtime::trace::set_exporting();
        tracing::info!(
            endpoint = endpoint.as_deref().unwrap_or(""),
            service,
            "exporting spans over OTLP"
        );
    }
    if let Some(e) = problem {
        tracing::warn!(error = %e, "span export disabled");
    }
}

/// The OTLP/HTTP (protobuf) pipeline: spans batched in the background and posted to
/// `<endpoint>/v1/traces`.
fn tracer(endpoint: &str, service: &str) -> Result<opentelemetry_sdk::trace::SdkTracer, String> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| format!("{OTLP_ENDPOINT_VAR} is set but the process has no async runtime to post spans from"))?;
    let base = endpoint.trim().trim_end_matches('/');
    let url = if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    };
    if !url.starts_with("http://") {
        return Err(format!(
            "{OTLP_ENDPOINT_VAR}={endpoint:?}: give the collector's plain http:// address (a collector beside the process; TLS is not supported)"
        ));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OnRuntime {
            client: opentelemetry_http::hyper::HyperClient::with_default_connector(
                std::time::Duration::from_secs(10),
                None,
            ),
            runtime,
        })
        .with_endpoint(url)
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter for {endpoint:?}: {e}"))?;
    let stage = service.strip_prefix("switchboard-").unwrap_or("all");
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .with_attribute(opentelemetry::KeyValue::new("switchboard.stage", stage.to_owned()))
        .build();
    // The sampler is the SDK's: parent-based, always on, or as `OTEL_TRACES_SAMPLER` says.
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("switchboard");
    let _ = PROVIDER.set(provider);
    Ok(tracer)
}

/// The exporter's HTTP client. The SDK's batch processor exports from a thread of its own, and
/// hyper needs the tokio runtime: each post runs as a task on the process's runtime.
#[derive(Debug)]
struct OnRuntime {
    client: opentelemetry_http::hyper::HyperClient,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<opentelemetry_http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}

/// Exports the spans still buffered and stops the exporter (a no-op when not exporting). Call
/// once, at the end of a process, from its async runtime.
pub async fn shutdown() {
    let Some(provider) = PROVIDER.get().cloned() else {
        return;
    };
    // The provider blocks while its exporter posts on this runtime: wait off its workers.
    let done =
        tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(std::time::Duration::from_secs(5))).await;
    if let Ok(Err(e)) = done {
        tracing::warn!(error = %e, "the last spans may not have been exported");
    }
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
