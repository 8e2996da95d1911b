//! Commands that never call the API: `manifest check`.

use std::path::PathBuf;

use serde_json::json;
use zeitwork_core::Manifest;

use crate::Global;
use crate::context::MANIFEST;
use crate::error::{CliError, Result};
use crate::output;

#[derive(Debug, clap::Subcommand)]
pub enum ManifestAction {
    /// Validate a manifest locally, with the same strict rules as the API
    Check {
        /// Manifest file [default: ./zeitwork.toml]
        path: Option<PathBuf>,
    },
}

pub fn manifest(global: &Global, action: ManifestAction) -> Result<()> {
    let ManifestAction::Check { path } = action;
    let path = path.unwrap_or_else(|| PathBuf::from(MANIFEST));
    let text = std::fs::read_to_string(&path)
        .map_err(CliError::io(format!("reading {}", path.display())))?;
    let manifest = Manifest::from_toml(&text).map_err(|source| CliError::Manifest {
        path: path.clone(),
        source,
    })?;
    let count = manifest.processes.len();
    if global.json {
        let processes: Vec<&str> = manifest.processes.keys().map(|n| n.as_str()).collect();
        return output::emit_json(&json!({
            "ok": true, "path": path, "app": manifest.app, "processes": processes,
        }));
    }
    let noun = if count == 1 { "process" } else { "processes" };
    output::emit(&format!(
        "ok: {} (app {}, {count} {noun})\n",
        path.display(),
        manifest.app
    ))
}
