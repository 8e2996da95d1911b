//! Desired instances in, supervisors out. `converge` is idempotent: calling it twice
//! with the same list changes nothing, and after an agent restart it adopts the VMs
//! still running instead of booting duplicates.
//!
//! Each wanted instance's spec is kept on disk (root-only, it holds secrets) so the node
//! can keep restarting its instances while the control plane is unreachable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use uuid::Uuid;
use zeitwork_core::node::DesiredInstance;
use zeitwork_vmm::Vmm;

use crate::control::ControlPlane;
use crate::supervisor::{Context, Supervised};
use crate::{AgentError, InstanceRecord, Keep};

/// What one `converge` changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub started: Vec<Uuid>,
    pub adopted: Vec<Uuid>,
    pub stopped: Vec<Uuid>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.started.is_empty() && self.adopted.is_empty() && self.stopped.is_empty()
    }
}

pub struct Reconciler<V, C> {
    ctx: Context<V, C>,
    specs_dir: PathBuf,
    running: BTreeMap<Uuid, (DesiredInstance, Supervised)>,
    /// Told to stop, not finished yet: their addresses stay taken.
    stopping: Vec<Supervised>,
}

impl<V: Vmm + 'static, C: ControlPlane> Reconciler<V, C> {
    pub fn new(ctx: Context<V, C>, specs_dir: PathBuf) -> Reconciler<V, C> {
        Reconciler {
            ctx,
            specs_dir,
            running: BTreeMap::new(),
            stopping: Vec::new(),
        }
    }

    /// The specs saved by the previous agent: what this node last knew it had to run.
    pub async fn saved(&self) -> Vec<DesiredInstance> {
        let mut out = Vec::new();
        let Ok(mut dir) = tokio::fs::read_dir(&self.specs_dir).await else {
            return out;
        };
        while let Ok(Some(entry)) = dir.next_entry().await {
            match tokio::fs::read(entry.path())
                .await
                .map(|b| serde_json::from_slice(&b))
            {
                Ok(Ok(spec)) => out.push(spec),
                _ => {
                    tracing::warn!(file = %entry.path().display(), "ignoring an unreadable saved spec")
                }
            }
        }
        out
    }

    /// Starts what `desired` has and this node does not (adopting live VMs), stops what
    /// it no longer has. Instances are immutable, so a known id never needs changing.
    pub async fn converge(&mut self, desired: &[DesiredInstance]) -> Result<Changes, AgentError> {
        self.apply(desired, true).await
    }

    /// Takes over the wanted instances whose VM still runs, booting nothing: the first
    /// step after a restart, so that cleaning orphans next cannot race a new boot.
    pub async fn adopt(&mut self, desired: &[DesiredInstance]) -> Result<Changes, AgentError> {
        self.apply(desired, false).await
    }

    async fn apply(
        &mut self,
        desired: &[DesiredInstance],
        boot: bool,
    ) -> Result<Changes, AgentError> {
        self.stopping.retain(|s| !s.is_finished());
        let mut changes = Changes::default();
        let wanted: BTreeSet<Uuid> = desired.iter().map(|d| d.instance_id).collect();
        let gone: Vec<Uuid> = self
            .running
            .keys()
            .filter(|id| !wanted.contains(id))
            .copied()
            .collect();
        for id in gone {
            let (_, supervised) = self.running.remove(&id).expect("listed above");
            supervised.stop();
            self.stopping.push(supervised);
            self.forget(id).await;
            changes.stopped.push(id);
        }
        // A supervisor that ended by itself (it never does unless told) is replaced.
        self.running.retain(|_, (_, s)| !s.is_finished());
        for spec in desired {
            let id = spec.instance_id;
            if self.running.contains_key(&id) {
                continue;
            }
            let adopted = self.ctx.runtime.adopt(&id.to_string()).await?;
            if adopted.is_none() && !boot {
                continue;
            }
            let net_index = match &adopted {
                Some(instance) => instance.net_index(),
                None => self.free_index(),
            };
            if adopted.is_some() {
                changes.adopted.push(id);
            } else {
                changes.started.push(id);
            }
            self.remember(spec).await?;
            let supervised = Supervised::spawn(self.ctx.clone(), spec.clone(), net_index, adopted);
            self.running.insert(id, (spec.clone(), supervised));
        }
        Ok(changes)
    }

    /// Removes VMs, links, namespaces and disks nobody supervises (a previous agent's leftovers).
    pub async fn clean_orphans(&self) -> Result<(), AgentError> {
        let keep: Vec<Keep> = self
            .running
            .values()
            .map(|(spec, s)| {
                let id = spec.instance_id.to_string();
                // The port it serves on: the manifest's, else the one its start took from
                // the image, which its record keeps.
                let port = spec.port.or_else(|| {
                    InstanceRecord::load(&self.ctx.runtime.instance_dir(&id))
                        .ok()
                        .flatten()
                        .and_then(|record| record.port)
                });
                Keep {
                    id,
                    net_index: s.net_index,
                    port,
                }
            })
            .collect();
        self.ctx.runtime.clean_orphans(&keep).await.map(drop)
    }

    /// Removes cached images no wanted instance uses (desired images are digest-pinned).
    pub async fn collect_images(&self) {
        let keep: Vec<&str> = self
            .running
            .values()
            .filter_map(|(spec, _)| spec.image.split_once('@').map(|(_, digest)| digest))
            .collect();
        if let Err(e) = self.ctx.runtime.images().gc(&keep).await {
            tracing::warn!(error = %e, "collecting unused images");
        }
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Stops every instance and waits for them (used when the node is shutting down).
    pub async fn stop_all(&mut self) {
        let _ = self.converge(&[]).await;
        for s in self.stopping.drain(..) {
            let _ = s.task.await;
        }
    }

    fn free_index(&self) -> u32 {
        let used: BTreeSet<u32> = self
            .running
            .values()
            .map(|(_, s)| s.net_index)
            .chain(self.stopping.iter().map(|s| s.net_index))
            .collect();
        // With every index taken, the first one past them: its start fails, saying so.
        (0..zeitwork_net::INSTANCE_LINKS)
            .find(|i| !used.contains(i))
            .unwrap_or(zeitwork_net::INSTANCE_LINKS)
    }

    async fn remember(&self, spec: &DesiredInstance) -> Result<(), AgentError> {
        let path = self.spec_path(spec.instance_id);
        let what = format!("saving {}", path.display());
        tokio::fs::create_dir_all(&self.specs_dir)
            .await
            .map_err(AgentError::io(what.clone()))?;
        let bytes = serde_json::to_vec(spec).expect("specs serialize");
        let tmp = path.with_extension("tmp");
        write_private(&tmp, &bytes)
            .await
            .map_err(AgentError::io(what.clone()))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(AgentError::io(what))
    }

    async fn forget(&self, id: Uuid) {
        let _ = tokio::fs::remove_file(self.spec_path(id)).await;
    }

    fn spec_path(&self, id: Uuid) -> PathBuf {
        self.specs_dir.join(format!("{id}.json"))
    }
}

/// Writes a file only its owner can read (it holds decrypted secrets).
async fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .await?;
    file.write_all(bytes).await?;
    file.sync_all().await
}
