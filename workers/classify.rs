//! The classify stage as its own process: `classify --concurrency N`. Run several to scale the stage.

use switchboard::app::{StageName, worker_main};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    worker_main(StageName::Classify).await?;
    Ok(())
}
