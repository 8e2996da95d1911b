//! A VMM process that runs a guest, whichever driver started it: waiting for it, stopping
//! it gracefully, telling how it ended and removing what was made for it.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Child;
use tokio::task::JoinHandle;

use crate::VmmError;
use crate::cgroup::Cgroup;
use crate::console::{ConsoleReport, VmExit};
use crate::firecracker::api::{self, Api};

/// How many lines of the VMM's own log a crash report quotes.
const VMM_LOG_TAIL: usize = 20;

/// How a driver asks its VMM to stop gracefully.
#[derive(Debug)]
pub(crate) enum GracefulStop {
    /// SIGTERM to the VMM (QEMU powers the guest off through ACPI).
    Sigterm,
    /// Ctrl-Alt-Del through Firecracker's API (init turns it into a SIGTERM for the app).
    CtrlAltDel(Api),
}

/// Files made for a jailed VMM: removed after it ended, its log kept.
#[derive(Debug)]
pub(crate) struct Jail {
    /// `<chroot base>/<exec name>/<id>`, removed as a whole.
    pub dir: PathBuf,
    /// The VMM's log inside the jail, appended to the run dir's `vmm.log` before removal.
    pub log: PathBuf,
}

impl Jail {
    fn remove(&self, keep_log_in: &std::path::Path) {
        if let Ok(log) = std::fs::read(&self.log) {
            use std::io::Write;
            if let Ok(mut out) = std::fs::OpenOptions::new().append(true).open(keep_log_in) {
                let _ = out.write_all(&log);
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "removing the VMM's jail");
        }
    }
}

/// A booted VM. Dropping it kills the VMM (and removes its jail); [`RunningVm::wait`] or
/// [`RunningVm::stop`] report how it ended and clean up.
#[derive(Debug)]
pub struct RunningVm {
    child: Child,
    console: JoinHandle<ConsoleReport>,
    cgroup: Option<Cgroup>,
    pid: u32,
    vmm_log: PathBuf,
    graceful: GracefulStop,
    jail: Option<Jail>,
}

impl RunningVm {
    pub(crate) fn new(
        child: Child,
        console: JoinHandle<ConsoleReport>,
        cgroup: Cgroup,
        vmm_log: PathBuf,
        graceful: GracefulStop,
        jail: Option<Jail>,
    ) -> RunningVm {
        RunningVm {
            pid: child.id().unwrap_or(0),
            child,
            console,
            cgroup: Some(cgroup),
            vmm_log,
            graceful,
            jail,
        }
    }

    pub(crate) fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The VMM process (for adoption after an agent restart and for tests).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits until the VM powers off or its VMM dies.
    pub async fn wait(self) -> Result<VmExit, VmmError> {
        self.wait_or_stop(std::future::pending(), Duration::ZERO)
            .await
    }

    /// Ends the VM: asks gracefully (QEMU: SIGTERM to the VMM; Firecracker: Ctrl-Alt-Del
    /// to the guest), then SIGKILL after `grace`.
    pub async fn stop(self, grace: Duration) -> Result<VmExit, VmmError> {
        self.wait_or_stop(std::future::ready(()), grace).await
    }

    /// Waits until the VM ends by itself, or until `stop` resolves and then stops it;
    /// either way reports how it ended and removes its cgroup (and jail).
    pub async fn wait_or_stop(
        mut self,
        stop: impl Future<Output = ()>,
        grace: Duration,
    ) -> Result<VmExit, VmmError> {
        let waited = tokio::select! {
            status = self.child.wait() => status,
            () = stop => {
                let (pid, graceful, child) = (self.pid, &self.graceful, &mut self.child);
                let ended = tokio::time::timeout(grace, async {
                    if ask_to_stop(pid, graceful).await {
                        Some(child.wait().await)
                    } else {
                        None
                    }
                })
                .await;
                match ended {
                    Ok(Some(status)) => status,
                    _ => {
                        let _ = self.child.start_kill();
                        self.child.wait().await
                    }
                }
            }
        };
        let status = waited.map_err(|source| VmmError::Io {
            path: "vmm".into(),
            source,
        })?;
        let report = (&mut self.console).await.unwrap_or_default();
        if let Some(jail) = self.jail.take() {
            jail.remove(&self.vmm_log);
        }
        let cgroup = self.cgroup.take();
        let capped = cgroup.as_ref().is_some_and(Cgroup::oom_killed);
        if let Some(cg) = cgroup {
            cg.remove();
        }
        Ok(match report.outcome() {
            VmExit::Crashed(_) if capped => VmExit::OutOfMemory,
            VmExit::Crashed(tail) => {
                let vmm = std::fs::read_to_string(&self.vmm_log).unwrap_or_default();
                let lines: Vec<&str> = vmm.trim().lines().collect();
                let vmm = lines[lines.len().saturating_sub(VMM_LOG_TAIL)..].join("\n");
                VmExit::Crashed(format!("VMM exited with {status}; {vmm}\n{tail}"))
            }
            other => other,
        })
    }
}

/// Asks the VMM to end the guest gracefully; false when it could not be asked.
async fn ask_to_stop(pid: u32, graceful: &GracefulStop) -> bool {
    match graceful {
        GracefulStop::Sigterm => {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            true
        }
        GracefulStop::CtrlAltDel(api) => match api.put(&api::action("SendCtrlAltDel")).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "graceful stop failed; killing the VMM");
                false
            }
        },
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        // Only when neither `wait` nor `stop` ran: the child is killed on drop.
        if let Some(jail) = self.jail.take() {
            let _ = self.child.start_kill();
            jail.remove(&self.vmm_log);
        }
    }
}
