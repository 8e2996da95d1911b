//! A throwaway OCI registry (Debian's `docker-registry`, the CNCF "distribution" server) run as
//! a child process.
//!
//! No registry on the internet can be reached from CI, and there is no Docker daemon: tests that
//! pull or push images need a real registry on loopback. Its storage lives in a temporary
//! directory that tests may inspect (or damage on purpose, see [`Registry::storage_dir`]).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::ServiceError;
use crate::process::{find_binary, free_port, wait_for_port};

const SERVICE: &str = "docker-registry";
const BINARY: &str = "docker-registry";

/// A running `docker-registry` on 127.0.0.1 that speaks plain HTTP.
///
/// Dropping it kills the server and deletes its storage.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    port: u16,
    storage: PathBuf,
    /// Removed after the server is killed (fields drop in declaration order).
    _temp: TempDir,
}

impl Registry {
    /// Starts a registry with filesystem storage in a temporary directory, on a free port, with
    /// deletes enabled (so tests can exercise garbage collection on the registry side too).
    pub async fn throwaway() -> Result<Registry, ServiceError> {
        let binary = find_binary(BINARY, &["/usr/bin", "/usr/sbin", "/usr/local/bin"]).ok_or(
            ServiceError::NotInstalled {
                binary: BINARY,
                hint: "install Debian's docker-registry package (scripts/setup.sh does it)",
            },
        )?;
        let temp = tempfile::Builder::new()
            .prefix("zeitwork-registry-")
            .tempdir()
            .map_err(ServiceError::io("creating a temporary directory"))?;
        let storage = temp.path().join("storage");
        std::fs::create_dir(&storage)
            .map_err(ServiceError::io(format!("creating {}", storage.display())))?;
        let port = free_port();
        let config = temp.path().join("config.yml");
        std::fs::write(&config, config_yaml(&storage, port))
            .map_err(ServiceError::io(format!("writing {}", config.display())))?;

        // The registry logs to stderr only: keep it in a file so a failure can quote it.
        let log = temp.path().join("registry.log");
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(ServiceError::io(format!("opening {}", log.display())))?;
        let stderr = output
            .try_clone()
            .map_err(ServiceError::io(format!("opening {}", log.display())))?;
        let mut child = Command::new(&binary)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(ServiceError::io(format!("running {}", binary.display())))?;
        wait_for_port(SERVICE, port, &mut child, &log).await?;
        tracing::info!(port, storage = %storage.display(), "docker-registry started");
        Ok(Registry {
            child,
            port,
            storage,
            _temp: temp,
        })
    }

    /// `127.0.0.1:PORT`, the registry part of image references (`127.0.0.1:PORT/app:tag`).
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registry's storage root (`docker/registry/v2/blobs/sha256/AB/ABCD…/data` inside holds
    /// each blob), for tests that need to corrupt what the registry serves.
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// Kills the server and waits until it is gone, so that the port refuses connections when
    /// this returns (tests use it to prove that a cache answers without the network).
    pub async fn stop(mut self) -> Result<(), ServiceError> {
        self.child
            .kill()
            .await
            .map_err(ServiceError::io("stopping docker-registry"))?;
        tracing::info!(port = self.port, "docker-registry stopped");
        Ok(())
    }
}

/// The registry's configuration: loopback only, filesystem storage, deletes on, quiet logs.
fn config_yaml(storage: &Path, port: u16) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        storage = storage.display(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(addr: &str, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&response).into_owned()
    }

    #[test]
    fn config_names_storage_port_and_deletes() {
        let yaml = config_yaml(Path::new("/tmp/x"), 5123);
        assert!(yaml.starts_with("version: 0.1\n"), "{yaml}");
        assert!(yaml.contains("rootdirectory: /tmp/x\n"), "{yaml}");
        assert!(yaml.contains("delete:\n    enabled: true\n"), "{yaml}");
        assert!(yaml.contains("addr: 127.0.0.1:5123\n"), "{yaml}");
    }

    #[tokio::test]
    async fn throwaway_registry_answers_the_v2_api() {
        let registry = Registry::throwaway().await.unwrap();
        assert_eq!(registry.addr(), format!("127.0.0.1:{}", registry.port()));
        let response = get(&registry.addr(), "/v2/").await;
        let status = response.lines().next().unwrap_or_default();
        assert!(status.contains(" 200 "), "{response}");
        assert!(registry.storage_dir().is_dir());

        let addr = registry.addr();
        let storage = registry.storage_dir().to_path_buf();
        registry.stop().await.unwrap();
        assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
        assert!(!storage.exists(), "storage is deleted with the registry");
    }
}
