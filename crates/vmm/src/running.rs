//! A VMM process that runs a guest, whichever driver started it and whether this agent
//! launched it or adopted it from one that died: waiting for it, stopping it gracefully,
//! telling how it ended and removing what was made for it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use rustix::process::Signal;
use tokio::process::Child;

use crate::VmmError;
use crate::cgroup::Cgroup;
use crate::console::{self, VmExit};
use crate::firecracker::api;
use crate::process::VmmProcess;
use crate::qmp;
use crate::record::{GracefulStop, Jail, Record};

/// The guest's serial console, written by the VMM itself (its stdout).
/// The console log in a VM's run dir: the guest's output, init's verdict last.
pub const CONSOLE_LOG: &str = "console.log";
/// The VMM's own messages (its stderr, and a jailed Firecracker's log).
pub(crate) const VMM_LOG: &str = "vmm.log";

/// How many lines of the VMM's own log a crash report quotes.
const VMM_LOG_TAIL: usize = 20;

/// Creates `run_dir` with a fresh console log and VMM log, opened for the VMM's stdout
/// and stderr: files, not pipes to the agent, so the VMM outlives an agent that dies.
pub(crate) async fn run_files(run_dir: &Path) -> Result<(std::fs::File, std::fs::File), VmmError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| VmmError::Io { path, source }
    };
    tokio::fs::create_dir_all(run_dir)
        .await
        .map_err(io(run_dir))?;
    // Appending: the agent truncates a console log that outgrew its cap, and the VMM
    // then writes on at the new end instead of at its old offset.
    let create = |name: &str| {
        let path = run_dir.join(name);
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .and_then(|file| file.set_len(0).map(|()| file))
            .map_err(io(&path))
    };
    Ok((create(CONSOLE_LOG)?, create(VMM_LOG)?))
}

/// Whether a VMM launched in `run_dir` still runs (its record names a process that is
/// still in its cgroup), so nothing made for it may be removed or reused.
pub(crate) fn runs_in(run_dir: &Path) -> bool {
    Record::load(run_dir)
        .ok()
        .flatten()
        .is_some_and(|r| r.cgroup.pids().contains(&r.pid))
}

/// A booted VM. Dropping it kills the VMM (and removes its jail); [`RunningVm::wait`] or
/// [`RunningVm::stop`] report how it ended and clean up.
#[derive(Debug)]
pub struct RunningVm {
    process: VmmProcess,
    run_dir: PathBuf,
    /// What was made for the VMM; `None` once removed.
    made: Option<Record>,
}

impl RunningVm {
    /// Saves what adoption needs in the run dir; when that fails the VMM is killed.
    pub(crate) fn new(
        child: Child,
        run_dir: PathBuf,
        cgroup: Cgroup,
        graceful: GracefulStop,
        jail: Option<Jail>,
    ) -> Result<RunningVm, VmmError> {
        let process = VmmProcess::Child(child);
        let record = Record {
            pid: process.pid(),
            cgroup,
            graceful,
            jail,
        };
        let saved = record.save(&run_dir);
        let vm = RunningVm {
            process,
            run_dir,
            made: Some(record),
        };
        saved.map(|()| vm)
    }

    /// The VM launched in `run_dir` by an agent that is gone, if its VMM still runs: it is
    /// waited for, stopped and cleaned up after as if launched here, except that its exit
    /// status is unknown (it is not our child). `None` when nothing there runs any more.
    pub async fn adopt(run_dir: &Path) -> Result<Option<RunningVm>, VmmError> {
        let Some(record) = Record::load(run_dir)? else {
            return Ok(None);
        };
        let inside = |r: &Record| r.cgroup.pids().contains(&r.pid);
        if !inside(&record) {
            return Ok(None);
        }
        let process = VmmProcess::adopt(record.pid).map_err(|source| VmmError::Io {
            path: format!("pidfd of VMM {}", record.pid),
            source,
        })?;
        // Checked again now that the pidfd pins the process the pid names.
        match process {
            Some(process) if inside(&record) => Ok(Some(RunningVm {
                process,
                run_dir: run_dir.to_owned(),
                made: Some(record),
            })),
            _ => Ok(None),
        }
    }

    /// The VMM's exit status if it has already exited (only a VMM launched here tells).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.process.try_wait()
    }

    pub(crate) fn kill(&mut self) {
        self.process.signal(Signal::KILL);
    }

    /// The VMM process.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Waits until the VM powers off or its VMM dies.
    pub async fn wait(self) -> Result<VmExit, VmmError> {
        self.wait_or_stop(std::future::pending(), Duration::ZERO)
            .await
    }

    /// Ends the VM: asks gracefully (QEMU: the ACPI power button; Firecracker:
    /// Ctrl-Alt-Del; init turns either into a SIGTERM for the app), then SIGKILL after
    /// `grace`.
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
        let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
        let console_log = self.run_dir.join(CONSOLE_LOG);
        let console = console::watch(&console_log, async {
            let _ = ended_rx.await;
        });
        let vmm = async {
            let ended = self.end(stop, grace).await;
            drop(ended_tx);
            ended
        };
        let (report, ended) = tokio::join!(console, vmm);
        let status = ended.map_err(|source| VmmError::Io {
            path: "vmm".into(),
            source,
        })?;
        let vmm_log = self.run_dir.join(VMM_LOG);
        let made = self.made.take().expect("removed only here and on drop");
        if let Some(jail) = &made.jail {
            jail.remove(&vmm_log);
        }
        let capped = made.cgroup.oom_killed();
        made.cgroup.remove();
        Record::remove(&self.run_dir);
        Ok(match report.outcome() {
            VmExit::Crashed(_) if capped => VmExit::OutOfMemory,
            VmExit::Crashed(tail) => {
                let how = match status {
                    Some(status) => format!("VMM exited with {status}"),
                    None => "the adopted VMM ended (its exit status is unknown)".into(),
                };
                let vmm = std::fs::read_to_string(&vmm_log).unwrap_or_default();
                let lines: Vec<&str> = vmm.trim().lines().collect();
                let vmm = lines[lines.len().saturating_sub(VMM_LOG_TAIL)..].join("\n");
                VmExit::Crashed(format!("{how}; {vmm}\n{tail}"))
            }
            other => other,
        })
    }

    /// Until the VMM has exited: by itself, or asked to once `stop` resolves and killed
    /// when it has not within `grace`.
    async fn end(
        &mut self,
        stop: impl Future<Output = ()>,
        grace: Duration,
    ) -> std::io::Result<Option<ExitStatus>> {
        let RunningVm { process, made, .. } = self;
        let graceful = &made.as_ref().expect("removed only after the end").graceful;
        tokio::select! {
            ended = process.wait() => ended,
            () = stop => {
                let asked = tokio::time::timeout(grace, async {
                    if ask_to_stop(graceful).await {
                        Some(process.wait().await)
                    } else {
                        None
                    }
                })
                .await;
                match asked {
                    Ok(Some(ended)) => ended,
                    _ => {
                        process.signal(Signal::KILL);
                        process.wait().await
                    }
                }
            }
        }
    }
}

/// Asks the VMM to end the guest gracefully; false when it could not be asked.
async fn ask_to_stop(graceful: &GracefulStop) -> bool {
    let asked = match graceful {
        GracefulStop::PowerButton { qmp } => qmp::system_powerdown(qmp).await,
        GracefulStop::CtrlAltDel(api) => api.put(&api::action("SendCtrlAltDel")).await,
    };
    if let Err(e) = &asked {
        tracing::warn!(error = %e, "graceful stop failed; killing the VMM");
    }
    asked.is_ok()
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        // Only when neither `wait` nor `stop` ran.
        if let Some(made) = self.made.take() {
            self.process.signal(Signal::KILL);
            if let Some(jail) = made.jail {
                jail.remove(&self.run_dir.join(VMM_LOG));
            }
        }
    }
}
