//! The VMM process, whether we spawned it or adopted it from an agent that died: the one
//! difference is how its end is noticed. A child is reaped (and tells its exit status);
//! an adopted VMM is somebody else's child, so we hold a pidfd, which becomes readable
//! when the process exits and, unlike a bare pid, can never name a recycled process.
//! (The pidfd is polled: registering it with tokio's reactor takes `unsafe` or a
//! deprecated call.)

use std::os::fd::OwnedFd;
use std::process::ExitStatus;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, PidfdFlags, Signal};
use tokio::process::Child;

/// How often an adopted VMM is checked for having exited.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub(crate) enum VmmProcess {
    Child(Child),
    Adopted { pid: u32, pidfd: OwnedFd },
}

impl VmmProcess {
    /// A pidfd for `pid`, or `None` when no such process exists (any more).
    pub fn adopt(pid: u32) -> std::io::Result<Option<VmmProcess>> {
        let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return Ok(None);
        };
        match rustix::process::pidfd_open(raw, PidfdFlags::empty()) {
            Ok(pidfd) => Ok(Some(VmmProcess::Adopted { pid, pidfd })),
            Err(rustix::io::Errno::SRCH) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn pid(&self) -> u32 {
        match self {
            VmmProcess::Child(child) => child.id().unwrap_or(0),
            VmmProcess::Adopted { pid, .. } => *pid,
        }
    }

    /// Waits until the process has exited: its status when it was our child.
    pub async fn wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        match self {
            VmmProcess::Child(child) => child.wait().await.map(Some),
            VmmProcess::Adopted { pidfd, .. } => loop {
                let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
                match rustix::event::poll(&mut fds, Some(&Timespec::default())) {
                    Ok(0) | Err(rustix::io::Errno::INTR) => tokio::time::sleep(POLL).await,
                    Ok(_) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            },
        }
    }

    /// The child's exit status if it has exited; an adopted VMM is never reported here.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        match self {
            VmmProcess::Child(child) => child.try_wait().ok().flatten(),
            VmmProcess::Adopted { .. } => None,
        }
    }

    /// Sends `signal` unless the process is gone (a reaped child's pid may be reused).
    pub fn signal(&mut self, signal: Signal) {
        match self {
            VmmProcess::Child(child) => {
                if let Some(pid) = child
                    .id()
                    .and_then(|pid| i32::try_from(pid).ok())
                    .and_then(Pid::from_raw)
                {
                    let _ = rustix::process::kill_process(pid, signal);
                }
            }
            VmmProcess::Adopted { pidfd, .. } => {
                let _ = rustix::process::pidfd_send_signal(pidfd, signal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that is not our child (the grandchild of a shell that exits at once)
    /// is waited for through its pidfd, and signalled through it.
    #[tokio::test]
    async fn an_adopted_process_is_waited_for_and_signalled() {
        let out = tokio::process::Command::new("sh")
            .args(["-c", "sleep 60 >/dev/null 2>&1 & echo $!"])
            .output()
            .await
            .unwrap();
        let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let mut process = VmmProcess::adopt(pid).unwrap().expect("sleep runs");
        assert_eq!(process.pid(), pid);
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(200), process.wait());
        assert!(waiting.await.is_err(), "still running");
        process.signal(Signal::KILL);
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), process.wait());
        assert_eq!(ended.await.expect("ends after SIGKILL").unwrap(), None);
        assert!(VmmProcess::adopt(u32::MAX).unwrap().is_none());
    }
}
