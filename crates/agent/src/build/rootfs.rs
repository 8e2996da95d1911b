//! The builder guest's root filesystem: Debian with buildah, made by `mmdebstrap` from
//! Debian's packages and cached by its recipe's hash, as the kernel is by its package's.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tokio::process::Command;

use crate::AgentError;

/// The Debian release the builder is made from.
pub const SUITE: &str = "bookworm";
/// What the builder holds besides Debian's essential packages.
pub const PACKAGES: &[&str] = &["buildah", "ca-certificates", "git"];
/// Image signature policy for the builder's buildah: the builder pulls base images as the
/// Dockerfile names them, like `docker build` does (the platform checks what it deploys by
/// digest, not by signature).
const POLICY: &str = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;

/// A prepared builder root filesystem (read-only ext4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderRootfs {
    pub path: PathBuf,
}

/// The recipe, whose hash names the cached file: a change to it makes a new one.
fn recipe() -> String {
    format!(
        "mmdebstrap --variant=essential --include={} {SUITE}\npolicy {POLICY}\n",
        PACKAGES.join(",")
    )
}

impl BuilderRootfs {
    /// The builder under `cache_dir` (`builder-<hash>.ext4`), made first when missing
    /// (needs root, `mmdebstrap` and Debian's package mirror; about a minute).
    pub async fn prepare(cache_dir: &Path) -> Result<BuilderRootfs, AgentError> {
        let key = hex::encode(&Sha256::digest(recipe())[..8]);
        let path = cache_dir.join(format!("builder-{key}.ext4"));
        if path.is_file() {
            return Ok(BuilderRootfs { path });
        }
        std::fs::create_dir_all(cache_dir)
            .map_err(AgentError::io(format!("creating {}", cache_dir.display())))?;
        let staging = tempfile::Builder::new()
            .prefix("builder-")
            .tempdir_in(cache_dir)
            .map_err(AgentError::io("creating a staging directory"))?;
        let tree = staging.path().join("tree");
        let out = Command::new("mmdebstrap")
            .arg("--variant=essential")
            .arg(format!("--include={}", PACKAGES.join(",")))
            .arg("--quiet")
            .arg(SUITE)
            .arg(&tree)
            .output()
            .await
            .map_err(AgentError::io(
                "running mmdebstrap (install Debian's mmdebstrap package; scripts/setup.sh does it)",
            ))?;
        if !out.status.success() {
            return Err(AgentError::Io {
                what: format!("mmdebstrap {SUITE} with {}", PACKAGES.join(",")),
                source: std::io::Error::other(
                    String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                ),
            });
        }
        let containers = tree.join("etc/containers");
        std::fs::create_dir_all(&containers)
            .and_then(|()| std::fs::write(containers.join("policy.json"), POLICY))
            .map_err(AgentError::io("writing the builder's image policy"))?;
        let image = staging.path().join("builder.ext4");
        let built = tokio::task::spawn_blocking({
            let (tree, image) = (tree.clone(), image.clone());
            move || zeitwork_image::ext4_from_tree(&tree, &image)
        })
        .await
        .map_err(|e| AgentError::Io {
            what: "making the builder's file system".into(),
            source: std::io::Error::other(e),
        })?;
        built?;
        std::fs::rename(&image, &path).map_err(AgentError::io(format!(
            "moving the builder to {}",
            path.display()
        )))?;
        tracing::info!(path = %path.display(), "builder root filesystem ready");
        Ok(BuilderRootfs { path })
    }
}
