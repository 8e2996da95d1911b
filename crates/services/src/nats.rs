//! A private `nats-server` run as a child process.
//!
//! NATS only carries notifications (Postgres holds the state), so the server keeps nothing on
//! disk but its log `nats.log` and its pid file `nats.pid` in the directory it is given.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::ServiceError;
use crate::process::{
    START_TIMEOUT, ensure_port_free, find_binary, free_port, live_pid, wait_for_port,
};

const SERVICE: &str = "NATS";
const BINARY: &str = "nats-server";

/// A running private `nats-server` on 127.0.0.1.
///
/// Dropping it kills the server; [`Nats::stop`] lets it shut down gracefully.
#[derive(Debug)]
pub struct Nats {
    child: Child,
    port: u16,
    pid_file: PathBuf,
    /// Removed after the server is killed (fields drop after `Drop::drop`).
    temp: Option<TempDir>,
}

impl Nats {
    /// Starts `nats-server` on 127.0.0.1:`port`, with its log and pid file in `dir`.
    ///
    /// Fails with [`ServiceError::AlreadyRunning`] if the pid file names a live `nats-server`.
    pub async fn start(dir: &Path, port: u16) -> Result<Nats, ServiceError> {
        let binary = find_binary(BINARY, &["/usr/sbin", "/usr/bin", "/usr/local/bin"]).ok_or(
            ServiceError::NotInstalled {
                binary: BINARY,
                hint: "install Debian's nats-server package (scripts/setup.sh does it)",
            },
        )?;
        std::fs::create_dir_all(dir)
            .map_err(ServiceError::io(format!("creating {}", dir.display())))?;
        let pid_file = dir.join("nats.pid");
        if let Some(pid) = live_pid(&pid_file, BINARY) {
            return Err(ServiceError::AlreadyRunning {
                service: SERVICE,
                dir: dir.to_path_buf(),
                pid,
            });
        }
        ensure_port_free(SERVICE, port)?;

        let log = dir.join("nats.log");
        // Early errors (bad flags) go to stderr before the server opens its own log: keep both.
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(ServiceError::io(format!("opening {}", log.display())))?;
        let stderr = output
            .try_clone()
            .map_err(ServiceError::io(format!("opening {}", log.display())))?;
        let mut child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .arg("-l")
            .arg(&log)
            .arg("-P")
            .arg(&pid_file)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(ServiceError::io(format!("running {}", binary.display())))?;
        wait_for_port(SERVICE, port, &mut child, &log).await?;
        tracing::info!(dir = %dir.display(), port, "NATS started");
        Ok(Nats {
            child,
            port,
            pid_file,
            temp: None,
        })
    }

    /// A server for tests in a temporary directory on a free port; dropping it kills the server
    /// and deletes the directory.
    pub async fn throwaway() -> Result<Nats, ServiceError> {
        let temp = tempfile::Builder::new()
            .prefix("zeitwork-nats-")
            .tempdir()
            .map_err(ServiceError::io("creating a temporary directory"))?;
        let mut nats = Self::start(temp.path(), free_port()).await?;
        nats.temp = Some(temp);
        Ok(nats)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Asks the server to shut down (SIGTERM) and waits for it; kills it if it lingers.
    pub async fn stop(mut self) -> Result<(), ServiceError> {
        let context = "stopping nats-server";
        if let Some(pid) = self
            .child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32))
        {
            rustix::process::kill_process(pid, rustix::process::Signal::TERM)
                .map_err(|e| ServiceError::io(context)(e.into()))?;
        }
        let graceful = tokio::time::timeout(START_TIMEOUT, self.child.wait()).await;
        if graceful.is_err() {
            tracing::warn!("nats-server ignored SIGTERM; killing it");
            self.child.kill().await.map_err(ServiceError::io(context))?;
        }
        tracing::info!(port = self.port, "NATS stopped");
        Ok(())
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        // kill_on_drop kills the child; the pid file must not outlive it.
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    use super::*;

    async fn first_line(port: u16) -> String {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut buf = vec![0; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&buf[..read]).into_owned()
    }

    #[tokio::test]
    async fn throwaway_server_greets_with_info() {
        let nats = Nats::throwaway().await.unwrap();
        assert_eq!(nats.url(), format!("nats://127.0.0.1:{}", nats.port()));
        let greeting = first_line(nats.port()).await;
        assert!(greeting.starts_with("INFO {"), "{greeting}");
        nats.stop().await.unwrap();
    }

    #[tokio::test]
    async fn second_start_on_a_dir_is_refused_until_stopped() {
        let temp = tempfile::tempdir().unwrap();
        let first = Nats::start(temp.path(), free_port()).await.unwrap();
        let err = Nats::start(temp.path(), free_port()).await.unwrap_err();
        assert!(matches!(err, ServiceError::AlreadyRunning { .. }), "{err}");
        first.stop().await.unwrap();

        let again = Nats::start(temp.path(), free_port()).await.unwrap();
        assert!(first_line(again.port()).await.starts_with("INFO {"));
        drop(again);
        assert!(!temp.path().join("nats.pid").exists());
    }

    #[tokio::test]
    async fn a_stale_pid_file_is_ignored() {
        let temp = tempfile::tempdir().unwrap();
        // pid 1 is init, not nats-server.
        std::fs::write(temp.path().join("nats.pid"), "1").unwrap();
        Nats::start(temp.path(), free_port()).await.unwrap();
    }

    #[tokio::test]
    async fn a_taken_port_is_reported() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let temp = tempfile::tempdir().unwrap();
        let err = Nats::start(temp.path(), port).await.unwrap_err();
        assert!(matches!(err, ServiceError::PortInUse { .. }), "{err}");
    }
}
