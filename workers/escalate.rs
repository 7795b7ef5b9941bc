//! The escalate stage as its own process: `switchboard-escalate --concurrency N`. Run several to scale it.

use switchboard::app::{StageName, worker_main};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    worker_main(StageName::Escalate).await?;
    Ok(())
}
