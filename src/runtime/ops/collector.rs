//! Gauges read from the servers on a timer, for what no message path can count: queue depths
//! and the dead-letter queue (passive `queue_declare`, no management plugin needed), open
//! tickets by state and team, and each team's load.
//!
//! Every process with metrics enabled runs one, so each scrape target stands alone; the same
//! value then comes from several targets, so aggregate these gauges with `max` across
//! instances, not `sum`. Queries are cheap (an indexed count over open tickets, the small agents
//! table) and run at most every [`INTERVAL`].

use crate::bus::{self, BusError, Topology};
use crate::contracts::StageName;
use crate::store::Db;
use crate::store::{StoreError, gauges};
use lapin::{Channel, Connection};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Time between two collections.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Runs the collector in the background until `shutdown`: once at start, then every
/// [`INTERVAL`].
pub fn spawn(
    amqp_urls: Vec<String>,
    topo: Topology,
    db: Db,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut c = Collector {
            amqp_urls,
            topo,
            db,
            link: None,
            seen_open: BTreeSet::new(),
            seen_teams: BTreeSet::new(),
        };
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            c.collect().await;
        }
        if let Some((conn, _)) = c.link.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "bye".into())).await;
        }
    })
}

struct Collector {
    amqp_urls: Vec<String>,
    topo: Topology,
    db: Db,
    link: Option<(Connection, Channel)>,
    /// Label sets reported before: a combination that disappears is set to 0, not left stale.
    seen_open: BTreeSet<(String, String)>,
    seen_teams: BTreeSet<String>,
}

impl Collector {
    async fn collect(&mut self) {
        let broker = self.queues().await;
        if let Err(e) = &broker {
            tracing::debug!(error = %e, "metrics collector cannot read queue depths");
            // A broken channel (or connection) is rebuilt on the next tick.
            self.link = None;
        }
        metrics::gauge!("switchboard_collector_up", "source" => "broker").set(if broker.is_ok() { 1.0 } else { 0.0 });
        let db = self.database().await;
        if let Err(e) = &db {
            tracing::debug!(error = %e, "metrics collector cannot read ticket and agent gauges");
        }
        metrics::gauge!("switchboard_collector_up", "source" => "postgres").set(if db.is_ok() { 1.0 } else { 0.0 });
    }

    async fn queues(&mut self) -> Result<(), BusError> {
        if self.link.is_none() {
            let conn = bus::connect(&self.amqp_urls, "switchboard-metrics").await?;
            let ch = conn.create_channel().await?;
            self.link = Some((conn, ch));
        }
        let Some((_, ch)) = &self.link else {
            return Ok(());
        };
        let topo = &self.topo;
        for q in StageName::consumers().map(StageName::as_str) {
            let depth = topo.depth(ch, &topo.queue(q)).await?;
            metrics::gauge!("switchboard_queue_messages_ready", "queue" => q).set(depth as f64);
        }
        let dead = topo.depth(ch, &topo.dead_queue()).await?;
        metrics::gauge!("switchboard_queue_messages_ready", "queue" => "dead").set(dead as f64);
        metrics::gauge!("switchboard_dead_letters").set(dead as f64);
        Ok(())
    }

    async fn database(&mut self) -> Result<(), StoreError> {
        let rows = gauges::open_tickets(&self.db).await?;
        let mut now_open = BTreeSet::new();
        for (state, team, n) in rows {
            let key = (state, team);
            metrics::gauge!("switchboard_open_tickets", "state" => key.0.clone(), "team" => key.1.clone())
                .set(n as f64);
            now_open.insert(key);
        }
        for (state, team) in self.seen_open.difference(&now_open) {
            metrics::gauge!("switchboard_open_tickets", "state" => state.clone(), "team" => team.clone()).set(0.0);
        }
        self.seen_open.extend(now_open);

        let rows = gauges::team_loads(&self.db).await?;
        let mut now_teams = BTreeSet::new();
        for (team, load, cap, online) in rows {
            set_team(&team, load, cap, online);
            now_teams.insert(team);
        }
        for team in self.seen_teams.difference(&now_teams) {
            set_team(team, 0, 0, 0);
        }
        self.seen_teams.extend(now_teams);
        Ok(())
    }
}

fn set_team(team: &str, load: i64, capacity: i64, online: i64) {
    metrics::gauge!("switchboard_team_load_ratio", "team" => team.to_owned()).set(load_ratio(load, capacity));
    metrics::gauge!("switchboard_team_open_assigned_tickets", "team" => team.to_owned()).set(load as f64);
    metrics::gauge!("switchboard_team_agents_online", "team" => team.to_owned()).set(online as f64);
}

/// Open tickets over capacity; a team with no capacity but some load counts as full (1.0), not
/// as a division by zero.
pub fn load_ratio(load: i64, capacity: i64) -> f64 {
    match (load, capacity) {
        (_, c) if c > 0 => load as f64 / c as f64,
        (l, _) if l > 0 => 1.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::load_ratio;

    #[test]
    fn load_ratio_never_divides_by_zero() {
        assert_eq!(load_ratio(3, 12), 0.25);
        assert_eq!(load_ratio(0, 0), 0.0);
        assert_eq!(load_ratio(2, 0), 1.0);
    }
}
