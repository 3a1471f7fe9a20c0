//! `preheat`: where the Dragonfly manager is, how the plugin proves who it
//! is there, and which peers a preheat warms by default.

use serde::{Deserialize, Serialize};

use crate::secret::{MaskedUrl, Secret};

/// The environment variable a manager token may come from instead of the
/// file.
pub const MANAGER_TOKEN_ENV: &str = "DRAGONFLY_MANAGER_TOKEN";

/// Which peers a preheat job warms (the manager's `scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreheatScope {
    /// Every peer the scheduler knows (or `count` / `percentage` / `ips`
    /// of them).
    AllPeers,
    /// Every seed peer.
    AllSeedPeers,
    /// One seed peer (the manager's default).
    SingleSeedPeer,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreheatConfig {
    /// The manager's REST address, e.g. `http://dragonfly-manager:8080`.
    #[serde(default)]
    pub manager: Option<MaskedUrl>,
    /// A personal access token of the manager with the `job` scope (else
    /// `DRAGONFLY_MANAGER_TOKEN`).
    #[serde(default)]
    pub token: Option<Secret<String>>,
    #[serde(default = "default_scope")]
    pub scope: PreheatScope,
    /// With `all_peers`: this many peers, or this percentage of them.
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub percentage: Option<u32>,
    /// With `all_peers`: only the peers announcing these addresses.
    #[serde(default)]
    pub ips: Vec<String>,
    /// Scheduler clusters to preheat in (empty: every active one).
    #[serde(default)]
    pub scheduler_cluster_ids: Vec<u64>,
    /// How long the peers may take; the presigned URL lives as long.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl Default for PreheatConfig {
    fn default() -> Self {
        PreheatConfig {
            manager: None,
            token: None,
            scope: default_scope(),
            count: None,
            percentage: None,
            ips: Vec::new(),
            scheduler_cluster_ids: Vec::new(),
            timeout_secs: default_timeout_secs(),
        }
    }
}

fn default_scope() -> PreheatScope {
    PreheatScope::AllPeers
}
fn default_timeout_secs() -> u64 {
    3600
}
