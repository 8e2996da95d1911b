//! What the Postgres and NATS supervisors share: ports, finding programs, running helper
//! commands, waiting for a server and quoting its log when it fails.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::ServiceError;

/// How long a server may take to accept connections before we give up on it.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How many log lines an error quotes.
const LOG_TAIL_LINES: usize = 20;

/// A TCP port on 127.0.0.1 that is free now.
///
/// The kernel picks it; this process never hands out the same port twice, so throwaway servers
/// started concurrently by one test binary cannot collide.
///
/// # Panics
/// If no socket can be bound on 127.0.0.1, which means the machine has no usable loopback.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("binding a socket on 127.0.0.1 must work")
            .port();
        if HANDED_OUT
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port)
        {
            return port;
        }
    }
}

/// Fails with [`ServiceError::PortInUse`] when something already listens on 127.0.0.1:`port`,
/// which would otherwise only show up as a line deep in the server's log.
pub(crate) fn ensure_port_free(service: &'static str, port: u16) -> Result<(), ServiceError> {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(ServiceError::PortInUse { service, port })
        }
        Err(e) => Err(ServiceError::io(format!(
            "binding 127.0.0.1:{port} for {service}"
        ))(e)),
    }
}

/// Finds an executable `name` on PATH, else in one of `fallback_dirs` (system directories such as
/// `/usr/sbin` are not on an unprivileged user's PATH).
/// The pid in `pid_file` if it names a live (not zombie) process of `binary` (its first
/// 15 characters, as the kernel keeps a command name): a server a killed `zeitwork up`
/// left running.
pub(crate) fn live_pid(pid_file: &Path, binary: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // /proc/PID/stat: "PID (COMM) STATE ..."
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, tail) = stat.rsplit_once(')')?;
    let comm: String = binary.chars().take(15).collect();
    let alive = head.ends_with(&format!("({comm}")) && !tail.trim_start().starts_with('Z');
    alive.then_some(pid)
}

pub(crate) fn find_binary(name: &str, fallback_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(fallback_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Runs a helper command to completion and returns its stdout; a failure carries its stderr.
pub(crate) async fn run(command: std::process::Command) -> Result<String, ServiceError> {
    let line = format!("{command:?}");
    let output = tokio::process::Command::from(command)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(ServiceError::io(format!("running {line}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(ServiceError::Command {
            command: line,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// A throwaway server's own temporary directory (`zeitwork-<name>-…`) and its log file
/// `<name>.log` in it, opened twice: for the server's stdout and its stderr.
pub(crate) fn logged(
    name: &str,
) -> Result<
    (
        tempfile::TempDir,
        std::path::PathBuf,
        std::fs::File,
        std::fs::File,
    ),
    ServiceError,
> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("zeitwork-{name}-"))
        .tempdir()
        .map_err(ServiceError::io("creating a temporary directory"))?;
    let log = dir.path().join(format!("{name}.log"));
    let stdout = std::fs::File::create(&log)
        .map_err(ServiceError::io(format!("creating {}", log.display())))?;
    let stderr = stdout
        .try_clone()
        .map_err(ServiceError::io(format!("opening {}", log.display())))?;
    Ok((dir, log, stdout, stderr))
}

/// Spawns a throwaway server with `command`, its output to `logs` (see [`logged`]), and
/// waits until it listens on `port`; `missing` is the error when it cannot be run.
pub(crate) async fn spawn_listening(
    service: &'static str,
    command: &mut Command,
    (log, stdout, stderr): (&Path, std::fs::File, std::fs::File),
    port: u16,
    missing: ServiceError,
) -> Result<Child, ServiceError> {
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .map_err(|_| missing)?;
    wait_for_port(service, port, &mut child, log).await?;
    Ok(child)
}

/// Waits until 127.0.0.1:`port` accepts TCP connections from the server `child`; fails early
/// when it exits, and after [`START_TIMEOUT`].
pub(crate) async fn wait_for_port(
    service: &'static str,
    port: u16,
    child: &mut Child,
    log: &Path,
) -> Result<(), ServiceError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let accepted = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_ok();
        let reason = match child.try_wait() {
            Ok(Some(status)) => format!("it exited ({status})"),
            Err(e) => format!("it could not be watched: {e}"),
            Ok(None) if accepted => return Ok(()),
            Ok(None) if Instant::now() >= deadline => format!(
                "it did not accept connections on 127.0.0.1:{port} within {} s",
                START_TIMEOUT.as_secs()
            ),
            Ok(None) => {
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue;
            }
        };
        return Err(start_failed(service, reason, log));
    }
}

/// A [`ServiceError::StartFailed`] quoting the end of the server's `log`.
pub(crate) fn start_failed(service: &'static str, reason: String, log: &Path) -> ServiceError {
    ServiceError::StartFailed {
        service,
        reason,
        log: log.to_path_buf(),
        log_tail: log_tail(log),
    }
}

/// The last lines of a log file, where a server says why it stopped.
fn log_tail(log: &Path) -> String {
    match std::fs::read(log) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(e) => format!("(log unreadable: {e})"),
    }
}

/// Ends a server left running by a `zeitwork up` that was killed outright (the pid
/// [`ServiceError::AlreadyRunning`] named): SIGTERM (a clean shutdown for both Postgres,
/// whose clients died with that process, and NATS), then SIGKILL if it is still there
/// after the start timeout. Not SIGINT: shells start background jobs with it ignored.
pub async fn stop_orphan(pid: u32) -> Result<(), ServiceError> {
    let context = format!("stopping the orphaned server with pid {pid}");
    let Some(process) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Ok(());
    };
    let alive = || Path::new(&format!("/proc/{pid}")).exists();
    if rustix::process::kill_process(process, rustix::process::Signal::TERM).is_err() {
        return Ok(()); // already gone
    }
    let deadline = Instant::now() + START_TIMEOUT;
    while alive() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if alive() {
        rustix::process::kill_process(process, rustix::process::Signal::KILL)
            .map_err(|e| ServiceError::io(context)(e.into()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports: BTreeSet<u16> = (0..50).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 50);
        for port in ports.iter().take(5) {
            ensure_port_free("test", *port).unwrap();
        }
    }

    #[test]
    fn a_port_with_a_listener_is_reported_in_use() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = ensure_port_free("NATS", port).unwrap_err();
        assert!(matches!(err, ServiceError::PortInUse { port: p, .. } if p == port));
        assert!(err.to_string().contains("already in use"), "{err}");
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, text).unwrap();
        let tail = log_tail(&log);
        assert!(tail.starts_with("line 11\n"), "{tail}");
        assert!(tail.ends_with("line 30"), "{tail}");
        assert!(log_tail(&dir.path().join("missing")).contains("unreadable"));
    }

    #[test]
    fn find_binary_uses_path_and_fallbacks() {
        assert!(find_binary("sh", &[]).is_some());
        assert!(find_binary("sh", &["/bin"]).is_some());
        assert!(find_binary("zeitwork-no-such-program", &["/bin"]).is_none());
    }

    #[tokio::test]
    async fn a_server_that_exits_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        std::fs::write(&log, "listening failed: no such thing\n").unwrap();
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let err = wait_for_port("test", free_port(), &mut child, &log)
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("exited"), "{message}");
        assert!(message.contains("no such thing"), "{message}");
    }

    #[tokio::test]
    async fn run_reports_stderr_of_a_failing_command() {
        let mut ok = std::process::Command::new("sh");
        ok.args(["-c", "echo out"]);
        assert_eq!(run(ok).await.unwrap(), "out\n");
        let mut failing = std::process::Command::new("sh");
        failing.args(["-c", "echo boom >&2; exit 3"]);
        let err = run(failing).await.unwrap_err();
        assert!(
            matches!(&err, ServiceError::Command { stderr, .. } if stderr == "boom"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_orphan_is_stopped() {
        let mut child = tokio::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let waiter = tokio::spawn(async move { child.wait().await });
        let started = std::time::Instant::now();
        stop_orphan(pid).await.unwrap();
        let status = waiter.await.unwrap().unwrap();
        assert!(
            !status.success(),
            "the orphan was interrupted, not left to finish"
        );
        assert!(started.elapsed() < START_TIMEOUT, "SIGTERM sufficed");
        stop_orphan(pid).await.unwrap();
    }
}
