//! Builds from source: their states, what a node is told to build, and what it reports.
//! A build is queued on a node, fetches its source, builds it in a builder microVM,
//! pushes the image to the platform registry, and ends succeeded (the image then rolls
//! out), failed (with the reason and the build's last lines) or cancelled.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::manifest::Build;

/// How many of a failed build's last lines are kept with it.
pub const LOG_TAIL_LINES: usize = 40;
/// The longest line kept (longer ones are cut).
pub const LOG_LINE_MAX: usize = 500;

/// Where a build is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuildState {
    Queued,
    Fetching,
    Building,
    Pushing,
    Succeeded,
    Failed,
    Cancelled,
}

impl BuildState {
    pub const ALL: [BuildState; 7] = [
        BuildState::Queued,
        BuildState::Fetching,
        BuildState::Building,
        BuildState::Pushing,
        BuildState::Succeeded,
        BuildState::Failed,
        BuildState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BuildState::Queued => "queued",
            BuildState::Fetching => "fetching",
            BuildState::Building => "building",
            BuildState::Pushing => "pushing",
            BuildState::Succeeded => "succeeded",
            BuildState::Failed => "failed",
            BuildState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<BuildState> {
        BuildState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
    }

    /// Whether nothing happens to the build any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            BuildState::Succeeded | BuildState::Failed | BuildState::Cancelled
        )
    }
}

/// One build a node must run (part of its desired state).
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DesiredBuild {
    pub build_id: Uuid,
    /// The app it builds (whose layer cache the node keeps).
    pub app_id: Uuid,
    /// Where it is: a build past `queued` that this agent does not run was begun by an
    /// earlier agent, and is failed rather than silently begun again.
    pub state: BuildState,
    /// The source: an image in the platform registry whose one layer is the context, or,
    /// with `git`, the identity of the tree to fetch.
    pub source: String,
    /// The commit to fetch, for a build of a push.
    #[serde(default)]
    pub git: Option<crate::repository::GitSource>,
    /// What a private repository is fetched with (an HTTP token), opened for the node.
    #[serde(default)]
    pub git_token: Option<String>,
    /// Where the image goes: `<registry>/<org>/<app>` (the node adds the tag).
    pub repository: String,
    /// How to build it.
    pub build: Build,
}

crate::redacted_debug!(DesiredBuild { build_id, app_id, state, source, git, repository, build } hides { git_token });

/// `POST /api/v1/nodes/{name}/builds/{id}`: where the node's build is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildReport {
    pub state: BuildState,
    /// Why it failed.
    #[serde(default)]
    pub reason: Option<String>,
    /// The image built, `name@sha256:…`, with `succeeded`.
    #[serde(default)]
    pub image: Option<String>,
    /// The build's last lines, with `failed`.
    #[serde(default)]
    pub log: Vec<String>,
    /// The source's own `zeitwork.toml` (a build from git), with `succeeded`.
    #[serde(default)]
    pub manifest: Option<String>,
}

/// The last [`LOG_TAIL_LINES`] of `lines`, each cut to [`LOG_LINE_MAX`] bytes.
pub fn log_tail(lines: &[String]) -> Vec<String> {
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..]
        .iter()
        .map(|l| {
            let mut end = l.len().min(LOG_LINE_MAX);
            while !l.is_char_boundary(end) {
                end -= 1;
            }
            l[..end].to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_and_end() {
        for state in BuildState::ALL {
            assert_eq!(BuildState::parse(state.as_str()), Some(state));
        }
        assert!(BuildState::Failed.is_final() && !BuildState::Pushing.is_final());
        let lines: Vec<String> = (0..100)
            .map(|i| format!("{i} {}", "é".repeat(400)))
            .collect();
        let tail = log_tail(&lines);
        assert_eq!(tail.len(), LOG_TAIL_LINES);
        assert!(tail[0].starts_with("60 "));
        assert!(tail.iter().all(|l| l.len() <= LOG_LINE_MAX));
    }
}
