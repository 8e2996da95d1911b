//! Running the app as PID 1's child: start it through the launcher (see
//! [`crate::launch`]), learn whether its `execve` worked, then forward signals to it
//! and reap every zombie until it exits.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd, siginfo};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use zeitwork_core::guest::Exit;

use crate::console;
use crate::error::{Context, Error, Result};
use crate::user::Identity;
use crate::{children, launch, power};

/// Signals init passes on to the app.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// How long the launcher may take to reach the app's `execve`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything needed to start the app.
#[derive(Debug, Clone)]
pub struct App {
    /// The resolved file to execute.
    pub program: PathBuf,
    /// The config's argv (`argv[0]` as given).
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub identity: Identity,
}

/// Blocks the forwarded signals and `SIGCHLD` and returns a signalfd that receives them
/// (before the app starts, so no `SIGCHLD` is missed). Children inherit the mask; the
/// launcher clears it before the app's `execve`.
pub fn block_signals() -> Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in FORWARDED.into_iter().chain([Signal::SIGCHLD]) {
        set.add(s);
    }
    set.thread_block().context("blocking signals")?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).context("creating a signalfd")
}

/// The launcher's argv after [`launch::ARG`]: `uid gid groups program argv…`.
pub fn launcher_args(app: &App) -> Vec<String> {
    let id = &app.identity;
    let groups: Vec<String> = id.groups.iter().map(u32::to_string).collect();
    let mut args = vec![
        launch::ARG.to_owned(),
        id.uid.to_string(),
        id.gid.to_string(),
        groups.join(","),
        app.program.to_string_lossy().into_owned(),
    ];
    args.extend(app.argv.iter().cloned());
    args
}

/// Starts the app and returns its pid once its `execve` succeeded. The launcher reports
/// a failure on a pipe that `execve` closes (close-on-exec): EOF without a message means
/// the app runs.
///
/// `launcher` is init's own binary: `/proc/self/exe` (a magic link that still works after
/// the switch to the app's root; the binary is static, so it needs nothing from that root).
pub fn start(launcher: &Path, app: &App) -> Result<Pid> {
    let (status_read, status_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).context("creating a pipe")?;
    let mut command = Command::new(launcher);
    command
        .arg0("zeitwork-init")
        .args(launcher_args(app))
        .env_clear()
        .envs(&app.env)
        .stdin(Stdio::from(status_write));
    console::debug(|| format!("starting {:?} as {:?}", app.argv, app.identity));
    let child = command.spawn().context("starting the launcher")?;
    drop(command); // closes our copy of the pipe's write end
    let pid = Pid::from_raw(child.id() as i32);

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(status_read.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => {
                let _ = kill(pid, Signal::SIGKILL);
                return Err(Error::invalid(
                    "starting the app",
                    format!(
                        "the launcher did not reach execve within {}s",
                        START_TIMEOUT.as_secs()
                    ),
                ));
            }
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waiting for the app to start"),
        }
    }
    let mut report = String::new();
    File::from(status_read)
        .read_to_string(&mut report)
        .context("reading the launcher's report")?;
    if report.trim().is_empty() {
        Ok(pid)
    } else {
        Err(Error::invalid("starting the app", report.trim()))
    }
}

/// The signal to pass on: a `SIGINT` from the kernel itself is Ctrl-Alt-Del (the VMM's
/// graceful stop; init disabled the immediate reboot), which the app gets as `SIGTERM`.
pub fn forwarded_signal(signo: i32, code: i32) -> Option<Signal> {
    let signal = Signal::try_from(signo).ok()?;
    if !FORWARDED.contains(&signal) {
        return None;
    }
    if signal == Signal::SIGINT && code == nix::libc::SI_KERNEL {
        return Some(Signal::SIGTERM);
    }
    Some(signal)
}

/// Reaps every exited child; returns how `main` ended if it is among them. The exec
/// service's children are handed to [`children`].
fn reap(main: Pid) -> Option<Exit> {
    let mut main_exit = None;
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == main => main_exit = Some(Exit::Code(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == main => {
                main_exit = Some(Exit::Signal(sig as i32));
            }
            Ok(WaitStatus::Exited(pid, code)) => {
                children::ended(pid.as_raw(), Exit::Code(code));
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                children::ended(pid.as_raw(), Exit::Signal(sig as i32));
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return main_exit,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return main_exit,
        }
    }
}

/// Forwards signals to the app and reaps zombies (orphans are reparented to PID 1)
/// until the app exits. A press of the power `button` reaches the app as `SIGTERM`.
pub fn supervise(signals: &SignalFd, mut button: Option<File>, main: Pid) -> Exit {
    loop {
        if let Some(exit) = reap(main) {
            return exit;
        }
        let (signal, pressed) = wait_for_input(signals, button.as_ref());
        if pressed && let Some(b) = &mut button {
            let mut events = [0; power::EVENT_SIZE * 16];
            match b.read(&mut events) {
                // The device went away: stop watching it.
                Ok(0) | Err(_) => button = None,
                Ok(n) => {
                    if power::pressed(&events[..n]) {
                        console::debug(|| format!("power button: SIGTERM to {main}"));
                        let _ = kill(main, Signal::SIGTERM);
                    }
                }
            }
        }
        if signal {
            match signals.read_signal() {
                Ok(Some(info)) => forward(&info, main),
                Ok(None) | Err(Errno::EINTR) => {}
                // Should not happen; keep reaping by polling rather than spinning.
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// Blocks until a signal arrives or the button has events: which of them are ready.
fn wait_for_input(signals: &SignalFd, button: Option<&File>) -> (bool, bool) {
    let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
    fds.extend(button.map(|b| PollFd::new(b.as_fd(), PollFlags::POLLIN)));
    if poll(&mut fds, PollTimeout::NONE).is_err() {
        // EINTR; or a failure that reading the signalfd will show.
        return (true, false);
    }
    let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
    (ready(&fds[0]), fds.get(1).is_some_and(ready))
}

fn forward(info: &siginfo, main: Pid) {
    if let Some(signal) = forwarded_signal(info.ssi_signo as i32, info.ssi_code) {
        console::debug(|| format!("forwarding {signal} to {main}"));
        match kill(main, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => console::say(&format!("zeitwork-init: forwarding {signal}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_arguments_carry_the_identity_and_argv() {
        let app = App {
            program: "/usr/bin/node".into(),
            argv: vec!["node".into(), "server.js".into()],
            env: BTreeMap::new(),
            identity: Identity {
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 29],
                home: "/home/app".into(),
            },
        };
        assert_eq!(
            launcher_args(&app),
            [
                launch::ARG,
                "1000",
                "1000",
                "1000,29",
                "/usr/bin/node",
                "node",
                "server.js"
            ]
        );
        let parsed = launch::Request::parse(&launcher_args(&app)).unwrap();
        assert_eq!(parsed.uid, 1000);
        assert_eq!(parsed.groups, [1000, 29]);
        assert_eq!(parsed.argv, ["node", "server.js"]);
    }

    #[test]
    fn kernel_sigint_means_stop_and_other_signals_pass_through() {
        let (int, term) = (Signal::SIGINT as i32, Signal::SIGTERM as i32);
        assert_eq!(
            forwarded_signal(int, nix::libc::SI_KERNEL),
            Some(Signal::SIGTERM)
        );
        assert_eq!(
            forwarded_signal(int, nix::libc::SI_USER),
            Some(Signal::SIGINT)
        );
        assert_eq!(forwarded_signal(term, 0), Some(Signal::SIGTERM));
        assert_eq!(
            forwarded_signal(Signal::SIGHUP as i32, 0),
            Some(Signal::SIGHUP)
        );
        assert_eq!(forwarded_signal(Signal::SIGCHLD as i32, 0), None);
        assert_eq!(forwarded_signal(0, 0), None);
    }
}
