//! The deliver stage as its own process: `switchboard-deliver`. Run several to scale it: each
//! claims its own deliveries.

use switchboard::app::{StageName, worker_main};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    worker_main(StageName::Deliver).await?;
    Ok(())
}
