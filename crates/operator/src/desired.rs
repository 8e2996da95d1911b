//! What a node is told to run: each desired-running instance with its image pinned by
//! digest, its process's command, port and health check from the release manifest, its
//! env's secrets opened, and its size in the units the agent's VMM and cgroups take.

use std::collections::BTreeMap;

use uuid::Uuid;
use zeitwork_core::exec::{Open, Tty};
use zeitwork_core::manifest::{Process, Seconds};
use zeitwork_core::node::{DesiredExec, DesiredInstance, HealthCheck, Probe};
use zeitwork_core::{ImageRef, Manifest};
use zeitwork_store::agents::{DesiredRow, SealedSecret};

use crate::crypto::{SecretBox, repository_token_aad, secret_aad};

/// Why a node's desired state cannot be told; each is a platform fault, not the node's.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    #[error("the release of deployment {deployment} is unreadable: {reason}")]
    Release { deployment: Uuid, reason: String },
    #[error("secret {name} of env {env} cannot be opened with this operator's key")]
    Secret { env: Uuid, name: String },
}

/// An exec the node attaches.
pub fn exec(g: zeitwork_store::exec::Grant) -> DesiredExec {
    DesiredExec {
        grant_id: g.id,
        instance_id: g.instance_id,
        open: Open {
            argv: g.command.0,
            tty: g.tty.then_some(Tty { term: g.term }),
        },
    }
}

/// Builds the instances of a node's desired state from its rows and the sealed secrets
/// each instance runs with.
pub fn instances(
    rows: Vec<DesiredRow>,
    sealed: Vec<SealedSecret>,
    key: &SecretBox,
) -> Result<Vec<DesiredInstance>, DesiredError> {
    let mut secrets: BTreeMap<Uuid, BTreeMap<String, String>> = BTreeMap::new();
    for s in sealed {
        let value = key
            .open(&secret_aad(s.env_id, &s.name, s.version), &s.ciphertext)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| DesiredError::Secret {
                env: s.env_id,
                name: s.name.clone(),
            })?;
        secrets
            .entry(s.instance_id)
            .or_default()
            .insert(s.name, value);
    }
    rows.into_iter()
        .map(|row| {
            let own = secrets.remove(&row.instance_id).unwrap_or_default();
            instance(row, own)
        })
        .collect()
}

fn instance(
    row: DesiredRow,
    secrets: BTreeMap<String, String>,
) -> Result<DesiredInstance, DesiredError> {
    let unreadable = |reason: String| DesiredError::Release {
        deployment: row.deployment_id,
        reason,
    };
    let manifest = Manifest::from_json(&row.manifest).map_err(|e| unreadable(e.to_string()))?;
    let process = manifest
        .processes
        .iter()
        .find(|(name, _)| name.as_str() == row.process)
        .map(|(_, p)| p)
        .ok_or_else(|| unreadable(format!("its manifest has no process {:?}", row.process)))?;
    let image = ImageRef::parse(&row.image).map_err(|e| unreadable(e.to_string()))?;
    let served = manifest.served_process() == Some(row.process.as_str());
    let millicpus = u32::try_from(row.millicpus).unwrap_or(0);
    Ok(DesiredInstance {
        instance_id: row.instance_id,
        org: row.org,
        app: row.app,
        env: row.env,
        deployment_id: row.deployment_id,
        process: row.process,
        image: format!("{}@{}", image.name, row.digest),
        command: process.command.clone(),
        env_vars: manifest.env.clone(),
        secrets,
        port: row.port.and_then(|p| u16::try_from(p).ok()),
        vcpus: millicpus.div_ceil(1000).max(1),
        memory_mb: u64::try_from(row.memory_mb).unwrap_or(0),
        cpu_weight: (millicpus / 10).clamp(1, 10_000),
        health: health(process),
        served,
    })
}

/// The manifest's health check in the agent's terms; a port without one gets a TCP check
/// (as does a port the agent takes from the image).
fn health(process: &Process) -> Option<HealthCheck> {
    let Some(h) = &process.health else {
        return process.port.map(|_| HealthCheck::DEFAULT_TCP);
    };
    let probe = match (&h.path, h.tcp) {
        (Some(path), false) => Probe::Http { path: path.clone() },
        _ => Probe::Tcp,
    };
    Some(HealthCheck {
        probe,
        interval_ms: millis(h.interval),
        timeout_ms: millis(h.timeout),
        healthy_threshold: h.healthy_threshold,
        unhealthy_threshold: h.unhealthy_threshold,
    })
}

fn millis(s: Seconds) -> u64 {
    s.as_millis()
}

/// The node's open builds as it runs them: the source to fetch (with the repository's
/// token opened), the repository to push to, and the manifest's `[build]` (its defaults
/// when there is none).
pub(crate) fn builds(
    rows: Vec<zeitwork_store::read::NodeBuild>,
    registry: &crate::registry::PlatformRegistry,
    key: &SecretBox,
) -> Vec<zeitwork_core::build::DesiredBuild> {
    rows.into_iter()
        .map(|row| zeitwork_core::build::DesiredBuild {
            build_id: row.id,
            app_id: row.app_id,
            state: zeitwork_core::build::BuildState::parse(&row.state)
                .expect("stored states are valid"),
            git: row.git.map(|g| g.0),
            // A token that does not open (another operator key) fetches as without one.
            git_token: row.sealed_token.and_then(|sealed| {
                key.open(&repository_token_aad(row.app_id), &sealed)
                    .and_then(|t| String::from_utf8(t).ok())
            }),
            source: row.source,
            repository: format!("{}/{}/{}", registry.address, row.org, row.app),
            build: zeitwork_core::Manifest::from_json(&row.manifest)
                .ok()
                .and_then(|m| m.build)
                .unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn row(process: &str, millicpus: i32, manifest: &str) -> DesiredRow {
        DesiredRow {
            instance_id: Uuid::from_u128(1),
            org: "acme".into(),
            app: "web".into(),
            env: "prod".into(),
            env_id: Uuid::from_u128(2),
            deployment_id: Uuid::from_u128(3),
            process: process.into(),
            image: format!("127.0.0.1:5000/web:1@{DIGEST}"),
            digest: DIGEST.into(),
            manifest: serde_json::to_value(Manifest::from_toml(manifest).unwrap()).unwrap(),
            millicpus,
            memory_mb: 256,
            port: Some(8080),
        }
    }

    const MANIFEST: &str = r#"
version = 1
app = "web"
env = { MODE = "prod" }
[processes.web]
port = 8080
command = ["/bin/web", "--serve"]
health = { path = "/up", interval = "5s", timeout = "500ms", healthy_threshold = 2 }
[processes.worker]
port = 9000
[processes.cron]
"#;

    #[test]
    fn sizes_images_and_health_follow_the_release() {
        let key = SecretBox::from_hex(&SecretBox::generate_hex()).unwrap();
        let sealed = SealedSecret {
            instance_id: Uuid::from_u128(1),
            env_id: Uuid::from_u128(2),
            name: "DB_URL".into(),
            version: 3,
            ciphertext: key.seal(&secret_aad(Uuid::from_u128(2), "DB_URL", 3), b"pg://x"),
        };
        let rows = vec![
            row("web", 1500, MANIFEST),
            row("worker", 5, MANIFEST),
            row("cron", 200_000, MANIFEST),
        ];
        let [web, worker, cron]: [DesiredInstance; 3] = instances(rows, vec![sealed], &key)
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(web.image, format!("127.0.0.1:5000/web:1@{DIGEST}"));
        assert_eq!(
            web.command.as_deref(),
            Some(&["/bin/web".to_owned(), "--serve".to_owned()][..])
        );
        assert_eq!(web.env_vars["MODE"], "prod");
        assert_eq!(web.secrets["DB_URL"], "pg://x");
        assert_eq!((web.vcpus, web.cpu_weight), (2, 150));
        assert_eq!(
            web.health,
            Some(HealthCheck {
                probe: Probe::Http { path: "/up".into() },
                interval_ms: 5000,
                timeout_ms: 500,
                healthy_threshold: 2,
                unhealthy_threshold: 3,
            })
        );
        assert_eq!(
            (worker.vcpus, worker.cpu_weight),
            (1, 1),
            "at least one vCPU, weight 1"
        );
        assert_eq!(worker.health, Some(HealthCheck::DEFAULT_TCP));
        assert!(
            web.served && !worker.served && !cron.served,
            "web serves the URLs"
        );
        assert_eq!(
            (cron.vcpus, cron.cpu_weight),
            (200, 10_000),
            "weight is capped"
        );
        assert_eq!(cron.health, None, "nothing to check without a port");
    }

    #[test]
    fn a_secret_sealed_with_another_key_is_an_error_naming_it() {
        let key = SecretBox::from_hex(&SecretBox::generate_hex()).unwrap();
        let other = SecretBox::from_hex(&SecretBox::generate_hex()).unwrap();
        let sealed = SealedSecret {
            instance_id: Uuid::from_u128(1),
            env_id: Uuid::from_u128(2),
            name: "TOKEN".into(),
            version: 1,
            ciphertext: other.seal(&secret_aad(Uuid::from_u128(2), "TOKEN", 1), b"t"),
        };
        let e = instances(vec![row("web", 1000, MANIFEST)], vec![sealed], &key).unwrap_err();
        assert!(e.to_string().contains("TOKEN"), "{e}");
    }
}
