//! Every instance is a microVM. This crate launches one from shared guest artifacts
//! (kernel, initramfs, root/scratch/config disks, a tap) with a driver behind the
//! [`Vmm`] trait, caps its memory, captures its console and reports how it ended.
//!
//! Drivers: [`Firecracker`] (production: under its jailer, configured over its API) and
//! [`Qemu`] (`-M microvm`, KVM or TCG, so every Linux box boots real microVMs). [`auto`]
//! picks Firecracker where its binaries are installed and KVM can run Linux guests.
//!
//! Both confine their VMM alike: an unprivileged uid/gid of its own ([`VM_ID_BASE`] plus
//! the VM's [slot](VmSpec::slot)), a chroot holding only the guest's files (and, for QEMU, the host's
//! `/usr` read-only) in a mount namespace of its own, the instance's network namespace,
//! a cgroup capping memory, and a seccomp filter.

mod cgroup;
mod console;
mod driver;
mod firecracker;
mod jail;
mod kvm;
mod process;
mod qemu;
mod qmp;
mod record;
mod running;
#[cfg(test)]
mod testing;
mod tsc;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

pub use cgroup::Cgroup;
pub use console::{ConsoleReport, VmExit};
pub use driver::{Choice, Driver, FIRECRACKER_ENV, JAILER_ENV, auto, choose};
pub use firecracker::{CgroupVersion, Firecracker};
pub use jail::{VM_ID_BASE, VM_SLOTS};
pub use kvm::kvm_usable;
pub use qemu::Qemu;
pub use running::{CONSOLE_LOG, RunningVm};
pub use tsc::tcg_kernel_args;

/// What to boot. All paths are on the host.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Unique per running VM (the instance id): names the cgroup and run files.
    pub name: String,
    pub vcpus: u32,
    /// Guest RAM; also the base of the hard cap on the VMM process.
    pub memory_mb: u64,
    /// Relative CPU share under contention (cgroup weight, 1–10000; 100 is the default).
    pub cpu_weight: u32,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    /// Read-only ext4 of the image (`/dev/vda` in the guest).
    pub root_disk: PathBuf,
    /// Writable ext4 for the overlay's upper layer (`/dev/vdb`).
    pub scratch_disk: PathBuf,
    /// Raw config disk (`/dev/vdc`, see `zeitwork_core::guest`).
    pub config_disk: PathBuf,
    /// Writable ext4 kept between VMs (`/dev/vdd`): a builder's layer cache.
    pub cache_disk: Option<PathBuf>,
    pub net: Option<NetAttachment>,
    /// Where the console log and other per-VM files go.
    pub run_dir: PathBuf,
    /// This VM's number on its node, unique among the node's running VMs (the agent passes
    /// its network index), below [`VM_SLOTS`]: its VMM runs as uid and gid `base + slot`
    /// ([`VM_ID_BASE`] unless the driver was given another base), ids no other VMM has.
    pub slot: u32,
}

#[derive(Debug, Clone)]
pub struct NetAttachment {
    /// An existing tap device, in `netns` when given, else on the host.
    pub tap: String,
    pub mac: String,
    /// The network namespace (`/var/run/netns/<name>`) holding the tap, which the VMM
    /// joins: given exactly when the driver [wants one of its own](Vmm::wants_own_netns).
    pub netns: Option<PathBuf>,
}

impl VmSpec {
    /// Checks the NIC against where `driver` opens its tap: a VMM in a namespace of its
    /// own cannot open a tap on the host, nor one on the host a tap in a namespace.
    pub(crate) fn check_net(&self, driver: &impl Vmm) -> Result<(), VmmError> {
        match &self.net {
            Some(net) if net.netns.is_some() != driver.wants_own_netns() => {
                Err(VmmError::NetnsMismatch {
                    driver: driver.name(),
                    wants: driver.wants_own_netns(),
                })
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("{binary} not found: {hint}")]
    NotInstalled { binary: String, hint: String },
    #[error("starting {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("cgroup {path}: {source} (memory caps need root and a memory cgroup controller)")]
    Cgroup {
        path: String,
        source: std::io::Error,
    },
    #[error("the VM did not stop within {0:?}")]
    StopTimeout(Duration),
    #[error("VM name {0:?}: the jailer takes 1-64 ASCII letters, digits and hyphens")]
    InvalidName(String),
    #[error("jailer: {0}")]
    Jailer(String),
    /// Firecracker refused or did not answer a request; `reason` quotes its `fault_message`.
    #[error("Firecracker API {request}: {reason}")]
    Api { request: String, reason: String },
    /// QEMU refused or did not answer a QMP command.
    #[error("QEMU QMP {command}: {reason}")]
    Qmp { command: String, reason: String },
    #[error(
        "the {driver} driver {} (NetAttachment::netns; the agent follows Vmm::wants_own_netns)",
        if *wants { "runs each VM in a network namespace of its own: create the tap in one" }
        else { "opens taps on the host: create the tap there, not in a network namespace" }
    )]
    NetnsMismatch { driver: &'static str, wants: bool },
    /// A [`VmSpec::slot`] with no ids of its own.
    #[error("VM slot {0} is out of range: a node runs at most {VM_SLOTS} VMs, slots 0 to {max}", max = VM_SLOTS - 1)]
    InvalidSlot(u32),
}

/// A way to run microVMs. Drivers share every guest artifact; only the VMM differs.
pub trait Vmm: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether the VMM runs each VM in a network namespace of its own (both drivers do:
    /// Firecracker's jailer joins it, QEMU's launcher too), where the guest's tap must then
    /// be: the one place that decides the topology of an instance's network (see
    /// `zeitwork_net::Topology`).
    fn wants_own_netns(&self) -> bool;
    fn launch(&self, spec: &VmSpec) -> impl Future<Output = Result<RunningVm, VmmError>> + Send;
}
