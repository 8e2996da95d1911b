//! A deployment's place in its env's history, and how long a superseded deployment is
//! kept warm for an instant rollback.

use serde::{Deserialize, Serialize};

use crate::manifest::Seconds;

/// Where a deployment is. An env has at most one `Active` deployment (its hostnames
/// serve it) and at most one `Standby`: the one it replaced, whose instances keep
/// running unrouted until its window ends, so a rollback to it boots nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    Active,
    Standby,
    Superseded,
}

impl DeploymentState {
    pub const ALL: [DeploymentState; 3] = [
        DeploymentState::Active,
        DeploymentState::Standby,
        DeploymentState::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Active => "active",
            DeploymentState::Standby => "standby",
            DeploymentState::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<DeploymentState> {
        DeploymentState::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// The standby window when neither the app's manifest (`[deploy] standby`) nor the
/// operator (`--standby-window`) says otherwise: the seeds' 30 minutes.
pub const DEFAULT_STANDBY: Seconds = match Seconds::from_secs(30 * 60) {
    Some(s) => s,
    None => panic!("30 minutes is a valid duration"),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_back_from_their_names_and_serde_agrees() {
        for state in DeploymentState::ALL {
            assert_eq!(DeploymentState::parse(state.as_str()), Some(state));
            let json = serde_json::to_value(state).unwrap();
            assert_eq!(json, state.as_str());
        }
        assert!(DeploymentState::try_from("retired".to_owned()).is_err());
    }
}
