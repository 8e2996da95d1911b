//! An agent that dies leaves its VMs running. [`Runtime::start`] saves what it takes to
//! take one over (`instance.json`, beside the VMM's own record) and [`Runtime::adopt`]
//! rebuilds the [`Instance`] from it: the VM, its link (and namespace) and its firewall
//! entry stay as they are, and ending it later removes everything as for an instance started here.

use std::path::Path;

use serde::{Deserialize, Serialize};
use zeitwork_net::{AppPort, InstanceAddrs, Link};
use zeitwork_vmm::{Cgroup, RunningVm, Vmm};

use crate::{AgentError, Instance, Keep, Runtime};

const FILE: &str = "instance.json";

/// What a node knows of one of its instances without its agent's memory: enough to adopt
/// it, and for the reconciler to keep it (see [`InstanceRecord::keep`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub id: String,
    pub image: String,
    /// Its slot in the node's address pool: names its link and gives its addresses.
    pub net_index: u32,
    pub port: Option<u16>,
}

impl InstanceRecord {
    /// What [`Runtime::clean_orphans`] needs to leave this instance alone.
    pub fn keep(&self) -> Keep {
        Keep {
            id: self.id.clone(),
            net_index: self.net_index,
            port: self.port,
        }
    }

    /// Writes the record whole or not at all (a reader never sees half of it).
    pub(crate) fn save(&self, dir: &Path) -> Result<(), AgentError> {
        let path = dir.join(FILE);
        let partial = dir.join(format!("{FILE}.partial"));
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other);
        json.and_then(|json| std::fs::write(&partial, json))
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(AgentError::io(format!("writing {}", path.display())))
    }

    /// The record in `dir`, or `None` when there is none.
    pub(crate) fn load(dir: &Path) -> Result<Option<InstanceRecord>, AgentError> {
        let path = dir.join(FILE);
        let what = || format!("reading {}", path.display());
        match std::fs::read(&path) {
            Ok(json) => serde_json::from_slice(&json).map(Some).map_err(|e| {
                AgentError::io(what())(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AgentError::io(what())(e)),
        }
    }

    /// Once the instance has ended: nothing is left to adopt.
    pub(crate) fn remove(dir: &Path) {
        let _ = std::fs::remove_file(dir.join(FILE));
    }
}

impl<V: Vmm> Runtime<V> {
    /// Takes over instance `id` as a previous agent left it, VM running. `None` when there
    /// is nothing alive to adopt (no record, its VMM or its link gone): what is left of it
    /// is then [`Runtime::clean_orphans`]' to remove.
    pub async fn adopt(&self, id: &str) -> Result<Option<Instance>, AgentError> {
        let dir = self.instance_dir(id);
        let Some(record) = InstanceRecord::load(&dir)? else {
            return Ok(None);
        };
        let addrs = InstanceAddrs::for_index(self.config.node_prefix, record.net_index)?;
        let Some(link) = Link::existing(record.net_index, addrs, id).await? else {
            return Ok(None);
        };
        let Some(vm) = RunningVm::adopt(&dir).await? else {
            return Ok(None);
        };
        // This agent's start-up installed the firewall without it.
        if let Some(port) = record.port {
            self.firewall.allow(AppPort { addrs, port }).await?;
        }
        tracing::info!(id, vmm_pid = vm.pid(), "adopted a running instance");
        Ok(Some(Instance::new(
            record,
            addrs,
            dir,
            vm,
            link,
            &self.firewall,
        )))
    }

    /// The instances of this node whose VM still runs, as their start saved them: what a
    /// restarted agent can [`adopt`](Runtime::adopt).
    pub fn live_instances(&self) -> Vec<InstanceRecord> {
        Cgroup::ours()
            .into_iter()
            .filter(|(_, cgroup)| !cgroup.pids().is_empty())
            .filter_map(|(id, _)| InstanceRecord::load(&self.instance_dir(&id)).ok()?)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_keeps_its_instance() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(InstanceRecord::load(dir.path()).unwrap(), None);
        let record = InstanceRecord {
            id: "i-1".into(),
            image: "r/hello@sha256:ab".into(),
            net_index: 7,
            port: Some(8080),
        };
        record.save(dir.path()).unwrap();
        assert_eq!(
            InstanceRecord::load(dir.path()).unwrap().as_ref(),
            Some(&record)
        );
        let keep = record.keep();
        assert_eq!(
            (keep.id.as_str(), keep.net_index, keep.port),
            ("i-1", 7, Some(8080))
        );
        InstanceRecord::remove(dir.path());
        assert_eq!(InstanceRecord::load(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(FILE), "{").unwrap();
        assert!(InstanceRecord::load(dir.path()).is_err());
    }
}
