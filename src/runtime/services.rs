//! The parts a running process is made of, handed as one value to the HTTP surface (which needs
//! nearly all of them). The runtime's own functions take only the parts they use.

use crate::bus::Topology;
use crate::config::Settings;
use crate::core::policy::Policy;
use crate::runtime::ops::health::Health;
use crate::store::Db;
use std::sync::Arc;

/// Settings, the validated policy, the database pool, the broker names and the health report.
#[derive(Clone)]
pub struct Services {
    pub settings: Settings,
    pub policy: Arc<Policy>,
    pub db: Db,
    pub topo: Topology,
    /// What `/readyz` reports: the runners' broker connections and consumers.
    pub health: Arc<Health>,
}
