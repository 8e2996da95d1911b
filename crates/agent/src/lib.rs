//! The node agent. [`Runtime`] turns an [`InstanceSpec`] into a running microVM: the
//! image's root filesystem, a fresh writable disk, a config disk, a routed link with its
//! firewall entry (the guest's tap on the host, or in the VMM's own network namespace), and
//! a VMM under a memory cap, and takes all of it down again.
//! [`NodeAgent`] keeps the node's instances equal to the desired state it pulls from the
//! operator: supervising, health-checking, restarting, reporting and shipping logs.

mod adopt;
pub mod build;
mod control;
mod cpu;
mod disks;
mod exec;
mod health;
mod instance;
mod logs;
mod node;
mod orphans;
mod reconcile;
mod reporter;
mod runtime;
mod supervisor;

pub use adopt::InstanceRecord;
pub use control::{ControlError, ControlPlane, HttpControl};
pub use instance::{Instance, InstanceSpec};
pub use node::{LoopConfig, NodeAgent, join_overlay};
pub use orphans::{Cleaned, Keep};
pub use runtime::{RegistryLogin, Runtime, RuntimeConfig};

use zeitwork_vmm::VmmError;

/// Why an instance could not be started or stopped cleanly.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Image(#[from] zeitwork_image::ImageError),
    #[error(transparent)]
    Guest(#[from] zeitwork_guest::GuestError),
    #[error(transparent)]
    Net(#[from] zeitwork_net::NetError),
    #[error(transparent)]
    Vmm(#[from] VmmError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the image has no command to run: set one (manifest `command`, or `--cmd`)")]
    NoCommand,
    /// Every VM would panic with "No working init found" (its initramfs holds no loader).
    #[error(
        "guest init {path} is {reason}, so every VM would panic with \"No working init found\": build it static with `scripts/build-guest.sh` (or pass --init-bin)"
    )]
    InitNotStatic {
        path: std::path::PathBuf,
        reason: &'static str,
    },
}

impl AgentError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AgentError {
        let what = what.into();
        move |source| AgentError::Io { what, source }
    }
}
