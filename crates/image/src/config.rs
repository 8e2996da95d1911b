//! The part of an OCI image config that says how to run the image, in both directions: read from
//! pulled images (the agent needs entrypoint, env, user, ports to start an instance) and written
//! for pushed ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ImageError;
use crate::digest::Digest;

/// How an image wants to be run (the `config` object of an OCI image config).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    /// The program and its first arguments.
    pub entrypoint: Vec<String>,
    /// Arguments after the entrypoint (or the program itself when there is none).
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    /// The working directory; `None` means `/`.
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`; `None` means root.
    pub user: Option<String>,
    /// Ports as `PORT/PROTO` (`8080/tcp`), sorted.
    pub exposed_ports: Vec<String>,
    /// Image labels.
    pub labels: BTreeMap<String, String>,
    /// The signal that asks the process to stop (`SIGTERM` when `None`).
    pub stop_signal: Option<String>,
}

impl ImageConfig {
    /// The TCP ports among [`ImageConfig::exposed_ports`] (`8080` and `8080/tcp` alike).
    pub fn tcp_ports(&self) -> Vec<u16> {
        self.exposed_ports
            .iter()
            .filter_map(|port| match port.split_once('/') {
                Some((number, proto)) if proto.eq_ignore_ascii_case("tcp") => number.parse().ok(),
                None => port.parse().ok(),
                Some(_) => None,
            })
            .collect()
    }
}

/// An OCI image config file (`application/vnd.oci.image.config.v1+json`, the same JSON as
/// Docker's `application/vnd.docker.container.image.v1+json`), reduced to what we use.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<RunConfig>,
    rootfs: RootFs,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stop_signal: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<String>,
}

/// A pulled image config: how to run it, and the digest of each uncompressed layer.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub config: ImageConfig,
    pub diff_ids: Vec<Digest>,
    /// `os/architecture`, checked by the caller against linux/amd64.
    pub platform: String,
}

/// Reads an image config blob.
pub(crate) fn parse(bytes: &[u8], what: &str) -> Result<Parsed, ImageError> {
    let invalid = |reason: String| ImageError::Invalid {
        what: what.to_owned(),
        reason,
    };
    let file: ConfigFile = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if file.rootfs.kind != "layers" {
        return Err(invalid(format!(
            "rootfs.type is {:?}, expected \"layers\"",
            file.rootfs.kind
        )));
    }
    let diff_ids = file
        .rootfs
        .diff_ids
        .iter()
        .map(|id| Digest::parse(id, &format!("rootfs.diff_ids of {what}")))
        .collect::<Result<_, _>>()?;
    let run = file.config.unwrap_or_default();
    let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
    let config = ImageConfig {
        entrypoint: run.entrypoint.unwrap_or_default(),
        cmd: run.cmd.unwrap_or_default(),
        env: run.env.unwrap_or_default(),
        working_dir: non_empty(run.working_dir),
        user: non_empty(run.user),
        exposed_ports: run.exposed_ports.unwrap_or_default().into_keys().collect(),
        labels: run.labels.unwrap_or_default(),
        stop_signal: non_empty(run.stop_signal),
    };
    Ok(Parsed {
        config,
        diff_ids,
        platform: format!("{}/{}", file.os, file.architecture),
    })
}

/// Writes the config blob of a linux/amd64 image with these layers (uncompressed digests).
///
/// Deterministic (no creation time, sorted maps), so the same inputs give the same image digest.
pub(crate) fn render(config: &ImageConfig, diff_ids: &[Digest]) -> Vec<u8> {
    let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let file = ConfigFile {
        architecture: "amd64".into(),
        os: "linux".into(),
        config: Some(RunConfig {
            entrypoint: some(&config.entrypoint),
            cmd: some(&config.cmd),
            env: some(&config.env),
            working_dir: config.working_dir.clone(),
            user: config.user.clone(),
            exposed_ports: (!config.exposed_ports.is_empty()).then(|| {
                config
                    .exposed_ports
                    .iter()
                    .map(|port| (port.clone(), serde_json::json!({})))
                    .collect()
            }),
            labels: (!config.labels.is_empty()).then(|| config.labels.clone()),
            stop_signal: config.stop_signal.clone(),
        }),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: diff_ids.iter().map(Digest::to_string).collect(),
        },
    };
    serde_json::to_vec(&file).expect("an image config always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_docker_style_config() {
        let json = br#"{
            "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {
                "Entrypoint": ["/bin/app"], "Cmd": null, "Env": ["PATH=/bin", "A=b"],
                "WorkingDir": "", "User": "1000:1000",
                "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
                "Labels": {"org.example": "x"}
            },
            "rootfs": {"type": "layers", "diff_ids": [
                "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},
            "history": [{"created_by": "x"}]
        }"#;
        let parsed = parse(json, "config").unwrap();
        assert_eq!(parsed.platform, "linux/amd64");
        assert_eq!(parsed.diff_ids.len(), 1);
        let config = parsed.config;
        assert_eq!(config.entrypoint, ["/bin/app"]);
        assert!(config.cmd.is_empty());
        assert_eq!(config.working_dir, None);
        assert_eq!(config.user.as_deref(), Some("1000:1000"));
        assert_eq!(config.exposed_ports, ["53/udp", "8080/tcp"]);
        assert_eq!(config.tcp_ports(), [8080]);
    }

    #[test]
    fn a_config_without_run_settings_is_fine() {
        let parsed = parse(
            br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
            "config",
        )
        .unwrap();
        assert_eq!(parsed.platform, "linux/arm64");
        assert_eq!(parsed.config, ImageConfig::default());
    }

    #[test]
    fn render_round_trips_and_is_deterministic() {
        let config = ImageConfig {
            entrypoint: vec!["/app".into()],
            cmd: vec!["--port".into(), "8080".into()],
            env: vec!["A=1".into()],
            working_dir: Some("/srv".into()),
            user: Some("app".into()),
            exposed_ports: vec!["8080/tcp".into()],
            labels: BTreeMap::from([("k".into(), "v".into())]),
            stop_signal: Some("SIGINT".into()),
        };
        let diff_ids = vec![Digest::of(b"layer")];
        let bytes = render(&config, &diff_ids);
        assert_eq!(bytes, render(&config, &diff_ids));
        let parsed = parse(&bytes, "config").unwrap();
        assert_eq!(parsed.config, config);
        assert_eq!(parsed.diff_ids, diff_ids);
        assert_eq!(parsed.platform, "linux/amd64");
    }

    #[test]
    fn garbage_is_invalid() {
        let err = parse(b"{}", "config of x").unwrap_err();
        assert!(err.to_string().contains("config of x"), "{err}");
        let err = parse(br#"{"rootfs":{"type":"x","diff_ids":[]}}"#, "c").unwrap_err();
        assert!(err.to_string().contains("rootfs.type"), "{err}");
    }
}
