//! What every benchmark shares: a private schema and queue prefix on the test servers, and
//! their removal afterwards.

use switchboard::app::App;
use switchboard::config::Settings;

/// Starts the application in a schema and topology of its own (`<name>_<random>`), on
/// SWITCHBOARD_TEST_DATABASE_URL / SWITCHBOARD_AMQP_URL.
pub async fn isolated_app(name: &str) -> anyhow::Result<App> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let tag = format!("{name}_{}", &id[..8]);
    let settings = Settings {
        amqp_url: std::env::var("SWITCHBOARD_AMQP_URL")
            .unwrap_or_else(|_| switchboard::config::DEFAULT_AMQP_URL.into()),
        database_url: std::env::var("SWITCHBOARD_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/switchboard_test".into()),
        database_schema: Some(tag.clone()),
        topology_prefix: tag,
        policy_path: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/policy.toml"),
        database_pool_size: 8,
        ..Settings::default()
    };
    let app = App::start(settings).await?;
    app.declare_topology().await?;
    Ok(app)
}

/// Deletes the benchmark's queues, exchanges and schema, whatever the run's outcome.
pub async fn remove(app: &App) -> anyhow::Result<()> {
    let conn = switchboard::bus::connect(&app.settings.amqp_urls(), "bench-cleanup").await?;
    let ch = conn.create_channel().await?;
    let _ = app.topo.delete(&ch).await;
    let _ = app.db.drop_schema().await;
    Ok(())
}
