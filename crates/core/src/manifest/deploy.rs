//! `[deploy]`: how the app's rollouts treat the deployment they replace.

use serde::{Deserialize, Serialize};

use super::Seconds;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// How long the deployment a rollout replaces keeps its instances running, unrouted,
    /// so a rollback to it boots nothing (at most 24 hours; `"0s"` stops them as soon as
    /// the new deployment is healthy). Absent: the operator's window (30 minutes unless
    /// `--standby-window` says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby: Option<Seconds>,
}
