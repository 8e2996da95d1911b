//! After an agent crash, the node may hold VMs, links, network namespaces, cgroups and
//! disks nobody tracks. They are found by our naming conventions (cgroups under
//! `zeitwork/` and namespaces `zwvm-<id>` named like a directory in our `instances/`,
//! links `zw<n>` in our network namespace, builder VMs `build-<id>` named like a directory
//! in our `builds/`) and removed unless the agent still wants them; adopting the ones it
//! wants is the reconciler's job.

use zeitwork_net::{AppPort, InstanceAddrs, Link, Netns, link_name};
use zeitwork_vmm::{Cgroup, Vmm};

use crate::{AgentError, Runtime};

/// An instance the agent still wants to keep running.
#[derive(Debug, Clone)]
pub struct Keep {
    pub id: String,
    pub net_index: u32,
    pub port: Option<u16>,
}

/// What [`Runtime::clean_orphans`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleaned {
    /// VMs whose VMM was killed, by instance id.
    pub vms: Vec<String>,
    pub links: Vec<String>,
    /// Network namespaces of VMMs that had one, by name.
    pub netns: Vec<String>,
    /// Instance directories whose disks were removed.
    pub disks: Vec<String>,
    /// Builds a previous agent ran (their builder VM killed, their directory removed),
    /// by VM name `build-<id>`; the operator hears of them as failed from the new agent.
    pub builds: Vec<String>,
}

impl<V: Vmm> Runtime<V> {
    /// Removes every VM resource on this node that `keep` does not name, and reinstalls
    /// the firewall with exactly the kept app ports.
    pub async fn clean_orphans(&self, keep: &[Keep]) -> Result<Cleaned, AgentError> {
        let mut cleaned = Cleaned::default();
        let instances = self.config.state_dir.join("instances");
        for (name, cgroup) in Cgroup::ours() {
            // VMs of another agent on this host (its own node directory and network
            // namespace) are not ours to judge: ours all have a directory here.
            let mine = instances.join(&name).is_dir();
            if mine && !keep.iter().any(|k| k.id == name) {
                if !cgroup.pids().is_empty() {
                    cleaned.vms.push(name);
                }
                cgroup.kill_all().await;
            }
        }
        let kept_links: Vec<String> = keep.iter().map(|k| link_name(k.net_index)).collect();
        cleaned.links = Link::remove_orphans(&kept_links).await?;
        if let Ok(mut dirs) = tokio::fs::read_dir(&instances).await {
            while let Ok(Some(dir)) = dirs.next_entry().await {
                let name = dir.file_name().to_string_lossy().into_owned();
                if keep.iter().any(|k| k.id == name) {
                    continue;
                }
                // Named host-wide, so only those of our instances are ours to remove.
                if let Ok(netns) = Netns::for_instance(&name)
                    && netns.remove().await?
                {
                    cleaned.netns.push(netns.name().to_owned());
                }
                let mut removed = false;
                for disk in ["scratch.ext4", "config.img"] {
                    removed |= tokio::fs::remove_file(dir.path().join(disk)).await.is_ok();
                }
                if removed {
                    cleaned.disks.push(name);
                }
            }
        }
        // Builds: none runs yet when this is called, so every one found is a leftover.
        let builds = self.config.state_dir.join("builds");
        if let Ok(mut dirs) = tokio::fs::read_dir(&builds).await {
            while let Ok(Some(dir)) = dirs.next_entry().await {
                let name = format!("build-{}", dir.file_name().to_string_lossy());
                if let Some((_, cgroup)) = Cgroup::ours().into_iter().find(|(n, _)| *n == name) {
                    cgroup.kill_all().await;
                }
                // Its link went with the others above; its VMM's namespace, if it had one:
                if let Ok(netns) = Netns::for_instance(&name)
                    && netns.remove().await?
                {
                    cleaned.netns.push(netns.name().to_owned());
                }
                let _ = tokio::fs::remove_dir_all(dir.path()).await;
                cleaned.builds.push(name);
            }
        }
        let mut ports = Vec::new();
        for k in keep {
            if let Some(port) = k.port {
                ports.push(AppPort {
                    addrs: InstanceAddrs::for_index(self.config.node_prefix, k.net_index)?,
                    port,
                });
            }
        }
        self.firewall.install(&ports).await?;
        if cleaned != Cleaned::default() {
            tracing::warn!(?cleaned, "removed what a previous agent left behind");
        }
        Ok(cleaned)
    }
}
