//! Children of the exec service: PID 1's reaper ([`crate::process::supervise`]) collects
//! every exited child, so the exec service cannot `wait` for its own. It starts them
//! through [`spawn`], which registers the pid before the reaper can see it exit, and
//! learns how they ended from [`wait`].

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::sync::{Condvar, Mutex, MutexGuard};

use zeitwork_core::guest::Exit;

/// Watched pids, with how they ended once the reaper saw it.
static WATCHED: Mutex<BTreeMap<i32, Option<Exit>>> = Mutex::new(BTreeMap::new());
static ENDED: Condvar = Condvar::new();

fn watched() -> MutexGuard<'static, BTreeMap<i32, Option<Exit>>> {
    WATCHED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts `command` and watches its pid (registered under the same lock the reaper
/// takes, so its exit cannot be missed).
pub fn spawn(command: &mut Command) -> std::io::Result<Child> {
    let mut watched = watched();
    let child = command.spawn()?;
    watched.insert(child.id() as i32, None);
    Ok(child)
}

/// The reaper saw `pid` end: whether it was watched.
pub fn ended(pid: i32, exit: Exit) -> bool {
    let mut watched = watched();
    match watched.get_mut(&pid) {
        Some(slot) => {
            *slot = Some(exit);
            ENDED.notify_all();
            true
        }
        None => false,
    }
}

/// Blocks until the watched `pid` ended; forgets it.
pub fn wait(pid: i32) -> Exit {
    let mut watched = watched();
    loop {
        if let Some(Some(exit)) = watched.get(&pid) {
            let exit = *exit;
            watched.remove(&pid);
            return exit;
        }
        watched = ENDED.wait(watched).unwrap_or_else(|e| e.into_inner());
    }
}

/// The exit code a shell would show: the code, or 128 + the signal.
pub fn code(exit: Exit) -> i32 {
    match exit {
        Exit::Code(c) => c,
        Exit::Signal(s) => 128 + s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_child_is_waited_for_through_the_reaper() {
        let mut command = Command::new("sh");
        command.args(["-c", "exit 3"]);
        let pid = spawn(&mut command).map(|c| c.id() as i32).unwrap();
        // The reaper's part, as PID 1's loop does it.
        let reaper = std::thread::spawn(move || {
            let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
            let nix::sys::wait::WaitStatus::Exited(_, code) = status else {
                panic!("{status:?}")
            };
            assert!(ended(pid, Exit::Code(code)));
        });
        assert_eq!(wait(pid), Exit::Code(3));
        reaper.join().unwrap();
        assert!(!ended(pid, Exit::Code(0)), "forgotten once waited for");
        assert_eq!(code(Exit::Signal(9)), 137);
    }
}
