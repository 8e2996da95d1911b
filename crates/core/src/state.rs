//! States stored as text (in projection tables) and read back into their enums.

use serde::{Deserialize, Serialize};

/// Text that names none of an enum's states (a row written by a newer build, or a bug).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
}

/// `TryFrom<String>` through the enum's own `parse`, for rows that store the state as text.
macro_rules! from_text {
    ($($ty:ty => $kind:literal),* $(,)?) => {$(
        impl TryFrom<String> for $ty {
            type Error = UnknownState;

            fn try_from(value: String) -> Result<$ty, UnknownState> {
                <$ty>::parse(&value).ok_or(UnknownState { kind: $kind, value })
            }
        }
    )*};
}

from_text! {
    crate::DeploymentState => "deployment state",
    crate::node::NodeState => "node state",
    crate::node::ObservedState => "observed state",
    crate::build::BuildState => "build state",
    crate::Role => "role",
    crate::manifest::RouteMode => "route mode",
    DesiredState => "desired state",
    crate::CertificateSource => "certificate source",
}

/// What the control plane wants of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    Running,
    Stopped,
}

impl DesiredState {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredState::Running => "running",
            DesiredState::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<DesiredState> {
        [DesiredState::Running, DesiredState::Stopped]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ObservedState;

    #[test]
    fn text_round_trips_and_unknown_text_is_named() {
        for d in [DesiredState::Running, DesiredState::Stopped] {
            assert_eq!(DesiredState::try_from(d.as_str().to_owned()), Ok(d));
        }
        let err = ObservedState::try_from("sleepy".to_owned()).unwrap_err();
        assert_eq!(err.to_string(), "unknown observed state \"sleepy\"");
    }
}
