//! `[build]`: how the app's image is built from source (`zeitwork deploy` from a
//! directory, `git push`): the Dockerfile, the context, build arguments and target, and
//! what one build may use. Every field has a default; every number a bound.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ManifestError, Seconds};

/// At most this many build arguments, each value at most this long.
const MAX_ARGS: usize = 64;
const MAX_ARG_VALUE: usize = 4096;
/// A path in the source tree: relative, at most this long.
const MAX_PATH: usize = 255;
const CPUS: (u32, u32) = (1, 16);
const MEMORY_MB: (u64, u64) = (512, 64 * 1024);
const DISK_MB: (u64, u64) = (1024, 500 * 1024);
const TIMEOUT_SECS: (u64, u64) = (60, 2 * 3600);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ManifestBuild")]
pub struct Build {
    /// The Dockerfile, relative to the context.
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    /// The build context, relative to the source tree's root.
    #[serde(default = "default_context")]
    pub context: String,
    /// The stage to build (`--target`); absent: the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `--build-arg NAME=VALUE`s.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// vCPUs of the builder microVM.
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    /// Its memory (a hard cap, counted against the node like an instance's).
    #[serde(default = "default_memory")]
    pub memory_mb: u64,
    /// Its disk: the context, the layers, the image.
    #[serde(default = "default_disk")]
    pub disk_mb: u64,
    /// Wall time, after which the build is stopped and fails.
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    /// Whether its `RUN` steps reach the internet (confined as an instance is: never the
    /// node, its networks or another VM); `false` builds with no network at all.
    #[serde(default = "default_network")]
    pub network: bool,
}

impl Default for Build {
    /// `Dockerfile` in `.`, 2 vCPUs, 2 GiB, 10 GiB of disk, 15 minutes, with network.
    fn default() -> Build {
        Build {
            dockerfile: default_dockerfile(),
            context: default_context(),
            target: None,
            args: BTreeMap::new(),
            cpus: default_cpus(),
            memory_mb: default_memory(),
            disk_mb: default_disk(),
            timeout: default_timeout(),
            network: default_network(),
        }
    }
}

fn default_dockerfile() -> String {
    "Dockerfile".into()
}
fn default_context() -> String {
    ".".into()
}
fn default_cpus() -> u32 {
    2
}
fn default_memory() -> u64 {
    2048
}
fn default_disk() -> u64 {
    10 * 1024
}
fn default_network() -> bool {
    true
}
fn default_timeout() -> Seconds {
    Seconds::from_secs(15 * 60).expect("within bounds")
}

impl Build {
    /// The largest context a build with `disk_mb` of disk takes, in bytes: half its disk,
    /// since the layers and the image need room too.
    pub fn context_limit(disk_mb: u64) -> u64 {
        (disk_mb << 20) / 2
    }

    pub(super) fn check(&self) -> Result<(), ManifestError> {
        let at = |field: &str, m: String| ManifestError::at(format!("build.{field}"), m);
        relative_path(&self.dockerfile).map_err(|m| at("dockerfile", m))?;
        relative_path(&self.context).map_err(|m| at("context", m))?;
        if let Some(target) = &self.target {
            let ok = (1..=128).contains(&target.len())
                && target.starts_with(|c: char| c.is_ascii_alphanumeric())
                && target
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(at(
                    "target",
                    "a stage name: 1-128 letters, digits, '_', '.', '-', starting with a letter or digit".into(),
                ));
            }
        }
        if self.args.len() > MAX_ARGS {
            return Err(at("args", format!("at most {MAX_ARGS} build arguments")));
        }
        for (name, value) in &self.args {
            let arg = |m: String| at(&format!("args.{name}"), m);
            let mut chars = name.chars();
            let named = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !named {
                return Err(arg(
                    "build argument names must match [A-Za-z_][A-Za-z0-9_]*".into(),
                ));
            }
            if value.len() > MAX_ARG_VALUE || value.contains('\0') {
                return Err(arg(format!(
                    "values are at most {MAX_ARG_VALUE} bytes, without NUL characters"
                )));
            }
        }
        within(
            "cpus",
            u64::from(self.cpus),
            (u64::from(CPUS.0), u64::from(CPUS.1)),
        )?;
        within("memory_mb", self.memory_mb, MEMORY_MB)?;
        within("disk_mb", self.disk_mb, DISK_MB)?;
        let secs = self.timeout.as_millis() / 1000;
        if !(TIMEOUT_SECS.0..=TIMEOUT_SECS.1).contains(&secs)
            || !self.timeout.as_millis().is_multiple_of(1000)
        {
            return Err(at(
                "timeout",
                format!(
                    "whole seconds from {}s to {}s",
                    TIMEOUT_SECS.0, TIMEOUT_SECS.1
                ),
            ));
        }
        Ok(())
    }
}

fn within(field: &str, value: u64, (min, max): (u64, u64)) -> Result<(), ManifestError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ManifestError::at(
            format!("build.{field}"),
            format!("must be between {min} and {max}"),
        ))
    }
}

/// A path inside the source tree: relative, no `..`, no empty or NUL parts.
fn relative_path(path: &str) -> Result<(), String> {
    let bad = || {
        format!("a path inside the source tree: relative, without '..', at most {MAX_PATH} bytes")
    };
    if path.is_empty() || path.len() > MAX_PATH || path.starts_with('/') || path.contains('\0') {
        return Err(bad());
    }
    if path
        .split('/')
        .any(|part| part == ".." || (part.is_empty() && path != "."))
    {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::manifest::Manifest;

    fn with(build: &str) -> Result<Manifest, String> {
        let text =
            format!("version = 1\napp = \"shop\"\n[processes.web]\nport = 8080\n[build]\n{build}");
        Manifest::from_toml(&text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_build_section_has_defaults_and_reads_back() {
        let m = with("").unwrap();
        let b = m.build.as_ref().unwrap();
        assert_eq!(
            (b.dockerfile.as_str(), b.context.as_str()),
            ("Dockerfile", ".")
        );
        assert_eq!((b.cpus, b.memory_mb, b.disk_mb), (2, 2048, 10240));
        assert_eq!(b.timeout.as_millis(), 15 * 60 * 1000);
        let m = with(
            "dockerfile = \"docker/web.Dockerfile\"\ncontext = \"services/web\"\ntarget = \"runtime\"\n\
             args = { RUST_VERSION = \"1.94\" }\ncpus = 4\nmemory_mb = 4096\ntimeout = \"30m\"\n",
        )
        .unwrap();
        let back = Manifest::from_json(&serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert!(
            Manifest::from_toml("version = 1\napp = \"a\"\n[processes.web]\n")
                .unwrap()
                .build
                .is_none()
        );
    }

    #[test]
    fn bad_build_fields_are_named() {
        for (build, path) in [
            ("dockerfile = \"../Dockerfile\"", "build.dockerfile"),
            ("context = \"/etc\"", "build.context"),
            ("context = \"a//b\"", "build.context"),
            ("target = \"-x\"", "build.target"),
            ("args = { \"1X\" = \"y\" }", "build.args.1X"),
            ("cpus = 0", "build.cpus"),
            ("cpus = 17", "build.cpus"),
            ("memory_mb = 100", "build.memory_mb"),
            ("disk_mb = 999999999", "build.disk_mb"),
            ("timeout = \"10s\"", "build.timeout"),
            ("timeout = \"3h\"", "build.timeout"),
            ("timeout = \"90.5s\"", "build.timeout"),
            ("dockerfiel = \"x\"", "build"),
        ] {
            let err = with(build).unwrap_err();
            assert!(err.starts_with(path), "{build}: {err}");
        }
    }
}
