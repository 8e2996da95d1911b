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
use zeitwork_registry::{RegistryConfig, Storage};

use crate::ServiceError;
use crate::process::{find_binary, free_port, live_pid, wait_for_port};

const SERVICE: &str = "docker-registry";
const BINARY: &str = "docker-registry";

/// A running `docker-registry` that speaks plain HTTP.
///
/// Dropping it kills the server (and deletes a throwaway one's storage).
#[derive(Debug)]
pub struct Registry {
    child: Child,
    port: u16,
    /// Filesystem storage's root; none for a bucket.
    storage: Option<PathBuf>,
    /// Its configuration file.
    config: PathBuf,
    /// The platform registry's pid file, removed when it stops.
    pid_file: Option<PathBuf>,
    /// Removed after the server is killed (fields drop in declaration order).
    _temp: Option<TempDir>,
}

impl Registry {
    /// Starts a registry with filesystem storage in a temporary directory, on a free port of
    /// 127.0.0.1, with deletes enabled (so tests can exercise garbage collection on the
    /// registry side too), open to anyone.
    pub async fn throwaway() -> Result<Registry, ServiceError> {
        let temp = tempfile::Builder::new()
            .prefix("zeitwork-registry-")
            .tempdir()
            .map_err(ServiceError::io("creating a temporary directory"))?;
        let storage = temp.path().join("storage");
        std::fs::create_dir(&storage)
            .map_err(ServiceError::io(format!("creating {}", storage.display())))?;
        let port = free_port();
        let mut registry =
            Registry::launch(&config_yaml(&storage, port), port, temp.path()).await?;
        registry.storage = Some(storage);
        registry._temp = Some(temp);
        Ok(registry)
    }

    /// Starts the platform's registry as `config` says (every request needs a token from
    /// the operator), its configuration file, log and pid file in `dir`.
    ///
    /// Fails with [`ServiceError::AlreadyRunning`] if the pid file names a live registry.
    pub async fn serve(config: &RegistryConfig, dir: &Path) -> Result<Registry, ServiceError> {
        std::fs::create_dir_all(dir)
            .map_err(ServiceError::io(format!("creating {}", dir.display())))?;
        let pid_file = dir.join("registry.pid");
        if let Some(pid) = live_pid(&pid_file, BINARY) {
            return Err(ServiceError::AlreadyRunning {
                service: SERVICE,
                dir: dir.to_path_buf(),
                pid,
            });
        }
        if let Storage::Filesystem(root) = &config.storage {
            std::fs::create_dir_all(root)
                .map_err(ServiceError::io(format!("creating {}", root.display())))?;
        }
        let mut registry = Registry::launch(&config.to_yaml(), config.listen.port(), dir).await?;
        if let Storage::Filesystem(root) = &config.storage {
            registry.storage = Some(root.clone());
        }
        if let Some(pid) = registry.child.id() {
            std::fs::write(&pid_file, format!("{pid}\n"))
                .map_err(ServiceError::io(format!("writing {}", pid_file.display())))?;
            registry.pid_file = Some(pid_file);
        }
        Ok(registry)
    }

    /// Runs `docker-registry serve` on `yaml` (written to `dir/config.yml`, which may hold
    /// storage credentials: owner-only), logging to `dir/registry.log`, until `port` answers.
    async fn launch(yaml: &str, port: u16, dir: &Path) -> Result<Registry, ServiceError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let binary = find_binary(BINARY, &["/usr/bin", "/usr/sbin", "/usr/local/bin"]).ok_or(
            ServiceError::NotInstalled {
                binary: BINARY,
                hint: "install Debian's docker-registry package (scripts/setup.sh does it)",
            },
        )?;
        let config = dir.join("config.yml");
        let _ = std::fs::remove_file(&config);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&config)
            .and_then(|mut f| std::io::Write::write_all(&mut f, yaml.as_bytes()))
            .map_err(ServiceError::io(format!("writing {}", config.display())))?;
        // The registry logs to stderr only: keep it in a file so a failure can quote it.
        let log = dir.join("registry.log");
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
            // distribution 2.8's S3 driver cannot take a custom CA bundle with its own HTTP
            // transport: it panics at start when this is set (as some hosts do for every
            // process). Storage credentials and endpoint come from the config file.
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(ServiceError::io(format!("running {}", binary.display())))?;
        wait_for_port(SERVICE, port, &mut child, &log).await?;
        tracing::info!(port, "docker-registry started");
        Ok(Registry {
            child,
            port,
            config,
            storage: None,
            pid_file: None,
            _temp: None,
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
    /// each blob), for tests that need to corrupt what the registry serves; none for a bucket.
    pub fn storage_dir(&self) -> Option<&Path> {
        self.storage.as_deref()
    }

    /// Runs `docker-registry garbage-collect` on its configuration while it serves:
    /// deletes the blobs no manifest refers to. Uploads must not run meanwhile (the
    /// platform's sweep refuses pushes first: `zeitwork_operator::registry_gc::sweep`).
    /// What it printed.
    pub async fn garbage_collect(&self) -> Result<String, ServiceError> {
        let binary = find_binary(BINARY, &["/usr/bin", "/usr/sbin", "/usr/local/bin"]).ok_or(
            ServiceError::NotInstalled {
                binary: BINARY,
                hint: "install Debian's docker-registry package (scripts/setup.sh does it)",
            },
        )?;
        let out = Command::new(&binary)
            .arg("garbage-collect")
            .arg(&self.config)
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(ServiceError::io(format!(
                "running {} garbage-collect",
                binary.display()
            )))?;
        let printed = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(ServiceError::io("docker-registry garbage-collect")(
                std::io::Error::other(printed.trim().to_owned()),
            ));
        }
        Ok(printed)
    }

    /// Kills the server and waits until it is gone, so that the port refuses connections when
    /// this returns (tests use it to prove that a cache answers without the network).
    pub async fn stop(mut self) -> Result<(), ServiceError> {
        self.child
            .kill()
            .await
            .map_err(ServiceError::io("stopping docker-registry"))?;
        if let Some(pid_file) = self.pid_file.take() {
            let _ = std::fs::remove_file(pid_file);
        }
        tracing::info!(port = self.port, "docker-registry stopped");
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // The child is killed on drop (after this); its pid file goes now.
        if let Some(pid_file) = self.pid_file.take() {
            let _ = self.child.start_kill();
            let _ = std::fs::remove_file(pid_file);
        }
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
        get_with(addr, path, "").await
    }

    /// `GET path` with extra header lines (each ending in CRLF).
    async fn get_with(addr: &str, path: &str, headers: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}\r\n");
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
        assert!(registry.storage_dir().unwrap().is_dir());

        let addr = registry.addr();
        let storage = registry.storage_dir().unwrap().to_path_buf();
        registry.stop().await.unwrap();
        assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
        assert!(!storage.exists(), "storage is deleted with the registry");
    }

    /// The real registry takes the operator's tokens: the key id it derives from the
    /// certificate is the one the token names, the signature verifies, and the `access`
    /// claim is what it enforces.
    #[tokio::test]
    async fn the_platform_registry_honours_the_operators_tokens_only() {
        use zeitwork_registry::{Access, Action, TokenKey, TokenRequest, issue};
        let dir = tempfile::tempdir().unwrap();
        let key = TokenKey::generate().unwrap();
        let cert = dir.path().join("token.crt");
        std::fs::write(&cert, key.certificate_pem().unwrap()).unwrap();
        let port = free_port();
        let config = RegistryConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            realm: "http://127.0.0.1:1/api/v1/registry/token".into(),
            certificate: cert,
            storage: Storage::Filesystem(dir.path().join("storage")),
            http_secret: "test".into(),
        };
        let registry = Registry::serve(&config, &dir.path().join("run"))
            .await
            .unwrap();
        let addr = registry.addr();
        let challenge = get(&addr, "/v2/").await;
        assert!(challenge.starts_with("HTTP/1.0 401"), "{challenge}");
        assert!(
            challenge.contains(
                "Bearer realm=\"http://127.0.0.1:1/api/v1/registry/token\",service=\"zeitwork-registry\""
            ),
            "{challenge}"
        );
        let token = |key: &TokenKey, repo: &str| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let request = TokenRequest {
                subject: "test".into(),
                granted: vec![Access::repository(repo, vec![Action::Pull])],
                now,
                ttl: 60,
                id: format!("{repo}-{now}"),
            };
            format!("Authorization: Bearer {}\r\n", issue(key, &request).token)
        };
        let tags = "/v2/acme/web/tags/list";
        let ok = get_with(&addr, tags, &token(&key, "acme/web")).await;
        assert!(
            ok.starts_with("HTTP/1.0 404") && ok.contains("NAME_UNKNOWN"),
            "granted, and the repository does not exist yet: {ok}"
        );
        let other = get_with(&addr, tags, &token(&key, "other/web")).await;
        assert!(
            other.starts_with("HTTP/1.0 401"),
            "another repository's grant: {other}"
        );
        let forged = get_with(
            &addr,
            tags,
            &token(&TokenKey::generate().unwrap(), "acme/web"),
        )
        .await;
        assert!(
            forged.starts_with("HTTP/1.0 401"),
            "a key the registry does not trust: {forged}"
        );
        let yaml = std::fs::read_to_string(dir.path().join("run/config.yml")).unwrap();
        assert!(yaml.contains("rootcertbundle"), "{yaml}");
    }
}
