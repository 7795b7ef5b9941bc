//! The HTTP intake gateway as its own process: `switchboard-gateway [--listen 0.0.0.0:8080]`.
//! Stateless: run as many copies as the traffic needs behind a load balancer.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchboard::app::gateway_main().await
}
