//! The intake stage as its own process: `intake --concurrency N`. Run several to scale the stage.

use switchboard::app::{StageName, worker_main};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    worker_main(StageName::Intake).await?;
    Ok(())
}
