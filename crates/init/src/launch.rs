//! The launcher: init's own binary re-executed as the app's first process
//! (`zeitwork-init --zeitwork-launch uid gid groups program argv…`). It becomes a session
//! leader, takes the app's identity (supplementary groups, gid, uid) and `execve`s the
//! app. This is what a `pre_exec` hook would do, without `unsafe` code in PID 1.
//!
//! Its stdin is the write end of init's status pipe: it moves that to a close-on-exec
//! descriptor (so a successful `execve` closes it: EOF tells init the app runs), puts
//! `/dev/null` on stdin, and on any failure writes the reason there and exits.
//!
//! With [`EXEC_ARG`] instead it starts a command of the exec service ([`crate::exec`]):
//! its stdin is the command's own, a terminal makes it the session's controlling terminal
//! (so Ctrl-C and job control work), and a failure is said on stderr (exit 127, as a shell).

use std::convert::Infallible;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::signal::SigSet;
use nix::unistd::{Gid, Uid};

/// The argument that selects launcher mode (`argv[1]`).
pub const ARG: &str = "--zeitwork-launch";

/// The argument that selects launcher mode for an exec's command.
pub const EXEC_ARG: &str = "--zeitwork-exec";

/// Exit status of a launcher that could not `execve` the app (init reads the reason
/// from the status pipe, not this code).
const FAILED: i32 = 127;

/// What the launcher was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// An exec's command ([`EXEC_ARG`]), not the app.
    pub exec: bool,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub program: String,
    pub argv: Vec<String>,
}

impl Request {
    /// Parses `[ARG, uid, gid, groups, program, argv0, …]`.
    pub fn parse(args: &[String]) -> Result<Request, String> {
        let [flag, uid, gid, groups, program, argv @ ..] = args else {
            return Err(format!(
                "launcher: expected {ARG} uid gid groups program argv…"
            ));
        };
        if (flag != ARG && flag != EXEC_ARG) || argv.is_empty() {
            return Err(format!(
                "launcher: expected {ARG} uid gid groups program argv…"
            ));
        }
        let id = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("launcher: bad id {s:?}"))
        };
        let groups = groups
            .split(',')
            .filter(|g| !g.is_empty())
            .map(id)
            .collect::<Result<_, _>>()?;
        Ok(Request {
            exec: flag == EXEC_ARG,
            uid: id(uid)?,
            gid: id(gid)?,
            groups,
            program: program.clone(),
            argv: argv.to_vec(),
        })
    }
}

/// Runs the launcher (`args` without `argv[0]`); returns only by exiting.
pub fn run(args: Vec<OsString>) -> ! {
    if args.first().is_some_and(|a| a == EXEC_ARG) {
        run_exec(args)
    }
    let mut status = match take_status_pipe() {
        Ok(fd) => File::from(fd),
        Err(reason) => {
            // stdin is still the status pipe: report there.
            let _ = nix::unistd::write(std::io::stdin(), reason.as_bytes());
            std::process::exit(FAILED)
        }
    };
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Err(reason) = Request::parse(&args).and_then(|r| launch(&r));
    let _ = status.write_all(reason.as_bytes());
    std::process::exit(FAILED)
}

/// The exec service's launcher: the reason of a failure goes to stderr.
fn run_exec(args: Vec<OsString>) -> ! {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Err(reason) = Request::parse(&args).and_then(|r| launch(&r));
    eprintln!("zeitwork exec: {reason}");
    std::process::exit(FAILED)
}

/// Moves the status pipe (our stdin) to a close-on-exec descriptor; stdin becomes
/// /dev/null. On failure stdin is still the pipe.
fn take_status_pipe() -> Result<OwnedFd, String> {
    let status = nix::unistd::dup(std::io::stdin()).map_err(|e| format!("dup stdin: {e}"))?;
    fcntl(&status, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| format!("marking the status pipe close-on-exec: {e}"))?;
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("opening /dev/null: {e}"))?;
    nix::unistd::dup2_stdin(&null).map_err(|e| format!("putting /dev/null on stdin: {e}"))?;
    Ok(status)
}

/// setsid, identity, signal mask, execve. Returns only the reason it failed.
fn launch(r: &Request) -> Result<Infallible, String> {
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    // A terminal on stdin becomes the new session's controlling terminal.
    if r.exec && nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        rustix::process::ioctl_tiocsctty(std::io::stdin())
            .map_err(|e| format!("taking the terminal: {e}"))?;
    }
    // Init blocks the signals it forwards, and children inherit the mask (std's `Command`
    // keeps it): the app must start with none blocked, or forwarded signals never land.
    SigSet::empty()
        .thread_set_mask()
        .map_err(|e| format!("clearing the signal mask: {e}"))?;
    let (uid, gid) = (Uid::from_raw(r.uid), Gid::from_raw(r.gid));
    // Unprivileged (only in tests on a host): nothing to change when the identity is ours.
    let unchanged = !Uid::current().is_root() && uid == Uid::current() && gid == Gid::current();
    if !unchanged {
        let groups: Vec<Gid> = r.groups.iter().copied().map(Gid::from_raw).collect();
        nix::unistd::setgroups(&groups)
            .map_err(|e| format!("setting groups {:?}: {e}", r.groups))?;
        nix::unistd::setgid(gid).map_err(|e| format!("setting gid {gid}: {e}"))?;
        nix::unistd::setuid(uid).map_err(|e| format!("setting uid {uid}: {e}"))?;
    }
    let error = Command::new(&r.program)
        .arg0(&r.argv[0])
        .args(&r.argv[1..])
        .exec();
    Err(format!("executing {}: {error}", r.program))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn requests_parse() {
        let r = Request::parse(&args(&[
            ARG, "1000", "1000", "1000,29", "/bin/app", "app", "-v",
        ]))
        .unwrap();
        assert_eq!(
            r,
            Request {
                exec: false,
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 29],
                program: "/bin/app".into(),
                argv: args(&["app", "-v"]),
            }
        );
        assert!(
            Request::parse(&args(&[ARG, "0", "0", "", "/a", "a"]))
                .unwrap()
                .groups
                .is_empty()
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert!(Request::parse(&args(&[ARG, "0", "0", "0", "/a"])).is_err());
        assert!(
            Request::parse(&args(&[EXEC_ARG, "0", "0", "0", "sh", "sh"]))
                .unwrap()
                .exec
        );
        assert!(Request::parse(&args(&["--other", "0", "0", "0", "/a", "a"])).is_err());
        assert!(Request::parse(&args(&[ARG, "x", "0", "0", "/a", "a"])).is_err());
        assert!(Request::parse(&args(&[ARG, "0", "0", "0,y", "/a", "a"])).is_err());
    }
}
