//! QEMU's machine protocol (QMP) on a Unix socket in the run dir, for one command:
//! `system_powerdown` presses the guest's ACPI power button, the graceful stop of
//! QEMU's microvm (a SIGTERM makes QEMU exit at once, a hard power-off for the guest).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::VmmError;

/// `sun_path` holds 108 bytes including the terminating NUL.
const SUN_PATH_MAX: usize = 107;

/// How long QEMU may take to answer (it answers at once, whatever the guest does).
const TIMEOUT: Duration = Duration::from_secs(10);

/// The socket QEMU listens on for `run_dir` (absolute: a record of it must work from
/// any working directory).
pub(crate) fn socket(run_dir: &Path) -> PathBuf {
    let socket = run_dir.join("qmp.sock");
    std::path::absolute(&socket).unwrap_or(socket)
}

/// QEMU binds the socket itself, so its path must fit a `sockaddr_un`.
pub(crate) fn check(socket: &Path) -> Result<(), VmmError> {
    if socket.as_os_str().len() <= SUN_PATH_MAX {
        return Ok(());
    }
    Err(VmmError::Io {
        path: socket.display().to_string(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("longer than a Unix socket path may be ({SUN_PATH_MAX} bytes)"),
        ),
    })
}

/// Presses the power button of the VM behind `socket`.
pub(crate) async fn system_powerdown(socket: &Path) -> Result<(), VmmError> {
    let failed = |reason: String| VmmError::Qmp {
        command: "system_powerdown".into(),
        reason: format!("{}: {reason}", socket.display()),
    };
    tokio::time::timeout(TIMEOUT, async {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|e| e.to_string())?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        // The greeting, then capabilities negotiation before any command.
        answer(&mut lines).await?;
        for command in ["qmp_capabilities", "system_powerdown"] {
            let line = json!({ "execute": command }).to_string() + "\n";
            write
                .write_all(line.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let reply = answer(&mut lines).await?;
            if let Some(error) = reply.get("error") {
                return Err(format!("{command}: {}", error["desc"]));
            }
        }
        Ok(())
    })
    .await
    .map_err(|_| failed(format!("no answer within {TIMEOUT:?}")))?
    .map_err(failed)
}

/// The next message that is not an asynchronous event.
async fn answer(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
) -> Result<Value, String> {
    loop {
        let line = lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("QEMU closed the connection")?;
        let message: Value = serde_json::from_str(&line).map_err(|e| format!("{e} in {line:?}"))?;
        if message.get("event").is_none() {
            return Ok(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::net::UnixListener;

    use super::*;

    /// A STAND-IN for QEMU's QMP server (framing as in QEMU's qmp-spec: a greeting, one
    /// JSON object per line, events interleaved with replies); answers `fail` with an
    /// error and records the commands it got.
    fn stand_in(socket: &Path, fail: &'static str) -> Arc<Mutex<Vec<String>>> {
        let listener = UnixListener::bind(socket).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            write
                .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}\r\n")
                .await
                .unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                let command = serde_json::from_str::<Value>(&line).unwrap()["execute"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                record.lock().unwrap().push(command.clone());
                let reply = if command == fail {
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\r\n"
                } else {
                    "{\"event\": \"POWERDOWN\", \"timestamp\": {}}\r\n{\"return\": {}}\r\n"
                };
                write.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        seen
    }

    #[tokio::test]
    async fn powerdown_negotiates_then_presses_the_button_past_events() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("qmp.sock");
        let seen = stand_in(&socket, "");
        system_powerdown(&socket).await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            ["qmp_capabilities", "system_powerdown"]
        );

        let socket = dir.path().join("refusing.sock");
        stand_in(&socket, "system_powerdown");
        let err = system_powerdown(&socket).await.unwrap_err().to_string();
        assert!(err.ends_with("system_powerdown: \"no\""), "{err}");
        let err = system_powerdown(&dir.path().join("none.sock")).await;
        assert!(err.is_err());
    }

    #[test]
    fn sockets_are_absolute_and_must_fit_a_sockaddr() {
        assert!(socket(Path::new("run")).is_absolute());
        assert!(check(Path::new("/var/lib/zeitwork/instances/i-1/qmp.sock")).is_ok());
        let deep = Path::new("/").join("d".repeat(120)).join("qmp.sock");
        assert!(check(&deep).is_err());
    }
}
