//! What a node needs once, for all its instances: the guest kernel and initramfs, the
//! image cache, and the firewall table.

use std::path::PathBuf;

use zeitwork_guest::GuestArtifacts;
use zeitwork_image::ImageStore;
use zeitwork_net::{EdgeNetwork, EgressAllow, Firewall, NodePrefix, Topology};
use zeitwork_vmm::Vmm;

use crate::AgentError;

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Holds `images/` (rootfs cache) and `instances/<id>/`.
    pub state_dir: PathBuf,
    /// Kernel package, vmlinux and initramfs cache (shared by runtimes on one host).
    pub guest_dir: PathBuf,
    /// The static `zeitwork-init` binary that becomes the guest's PID 1.
    pub init_binary: PathBuf,
    /// This node's IPv6 ULA /64 for instances.
    pub node_prefix: NodePrefix,
    /// Private destinations guests may reach anyway (e.g. a managed database), past the
    /// firewall's deny list (see `docs/security.md`).
    pub egress_allow: Vec<EgressAllow>,
    /// The networks edges on other hosts connect from: they may reach the instances' app
    /// ports through this node (see `docs/security.md`).
    pub edge_networks: Vec<EdgeNetwork>,
    /// The platform registry, whose images this node pulls with its own credential (the
    /// operator's token service grants it the images placed on it); others anonymously.
    pub registry: Option<RegistryLogin>,
}

/// Where the platform registry is and how this node logs in to it.
#[derive(Clone, Debug)]
pub struct RegistryLogin {
    /// `host:port`, the registry part of its image references.
    pub address: String,
    /// The node's name and credential.
    pub auth: zeitwork_image::Auth,
}

impl RuntimeConfig {
    /// The credentials to pull `image` with: the node's own for the platform registry,
    /// none for any other (a node's credential never leaves for another registry).
    pub(crate) fn pull_auth(&self, image: &str) -> zeitwork_image::Auth {
        match &self.registry {
            Some(r) if image.starts_with(&format!("{}/", r.address)) => r.auth.clone(),
            _ => zeitwork_image::Auth::Anonymous,
        }
    }
}

pub struct Runtime<V> {
    pub(crate) vmm: V,
    pub(crate) guest: GuestArtifacts,
    pub(crate) images: ImageStore,
    pub(crate) firewall: Firewall,
    pub(crate) config: RuntimeConfig,
}

impl<V: Vmm> Runtime<V> {
    /// Prepares the guest artifacts (downloading the kernel on first use) and installs
    /// the firewall table.
    pub async fn new(vmm: V, config: RuntimeConfig) -> Result<Runtime<V>, AgentError> {
        let guest_dir = config.guest_dir.clone();
        let init = config.init_binary.clone();
        refuse_dynamic_init(&init)?;
        let guest = tokio::task::spawn_blocking(move || zeitwork_guest::prepare(&guest_dir, &init))
            .await
            .map_err(|e| AgentError::Io {
                what: "preparing the guest".into(),
                source: std::io::Error::other(e),
            })??;
        let images = ImageStore::new(config.state_dir.join("images"))?;
        let firewall = Firewall::new(config.node_prefix)
            .with_egress_allow(config.egress_allow.clone())
            .with_edge_networks(config.edge_networks.clone());
        firewall.install(&[]).await?;
        Ok(Runtime {
            vmm,
            guest,
            images,
            firewall,
            config,
        })
    }

    /// `instances/<id>/`: the instance's disks, console log and records.
    pub(crate) fn instance_dir(&self, id: &str) -> PathBuf {
        self.config.state_dir.join("instances").join(id)
    }

    /// Where a guest's tap must be, as the VMM wants it.
    pub(crate) fn topology(&self) -> Topology {
        if self.vmm.wants_own_netns() {
            Topology::OwnNetns
        } else {
            Topology::HostTap
        }
    }

    pub fn vmm(&self) -> &V {
        &self.vmm
    }

    pub fn guest(&self) -> &GuestArtifacts {
        &self.guest
    }

    pub fn images(&self) -> &ImageStore {
        &self.images
    }
}

/// A dynamically linked init cannot run as PID 1 of the guest (nothing in the initramfs
/// resolves its libraries): refused before any VM boots with it.
fn refuse_dynamic_init(path: &std::path::Path) -> Result<(), AgentError> {
    let bytes =
        std::fs::read(path).map_err(AgentError::io(format!("reading {}", path.display())))?;
    match zeitwork_guest::elf::not_static(&bytes) {
        Some(reason) => Err(AgentError::InitNotStatic {
            path: path.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamically_linked_init_is_refused_with_one_line() {
        // This test binary is linked dynamically, like a plain build's zeitwork-init.
        let me = std::env::current_exe().unwrap();
        let e = refuse_dynamic_init(&me).unwrap_err();
        let line = e.to_string();
        assert!(line.contains("dynamically linked"), "{line}");
        assert!(line.contains("No working init found"), "{line}");
        assert!(line.contains("scripts/build-guest.sh"), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }
}
