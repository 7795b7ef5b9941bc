//! The notify stage as its own process: `switchboard-notify --concurrency N`. Run several to scale it.

use switchboard::app::{StageName, worker_main};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    worker_main(StageName::Notify).await?;
    Ok(())
}
