//! A private PostgreSQL cluster driven with Debian's `initdb` / `pg_ctl`.
//!
//! Layout of the directory given to [`Postgres::start`], which belongs to the cluster alone:
//! `data/` (the cluster), `postgres.log`, the unix socket `.s.PGSQL.<port>`, and `password`
//! (0600): the role's password. Every connection, local ones included, must give it
//! (`scram-sha-256`): no other local user can reach the platform's state.

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::ServiceError;
use crate::process::{ensure_port_free, find_binary, free_port, run, start_failed};

const SERVICE: &str = "PostgreSQL";
const INSTALL_HINT: &str = "install Debian's postgresql package (scripts/setup.sh does it)";
/// The superuser role, and the database created with the cluster.
const ROLE: &str = "zeitwork";
const DATABASE: &str = "zeitwork";
/// PostgreSQL refuses to run as root: as root we run it as this system user, which Debian's
/// package creates (and which we create when it is missing).
const ACCOUNT: &str = "postgres";
/// The role's password, generated with the cluster, in the cluster's directory.
const PASSWORD_FILE: &str = "password";
/// Every connection authenticates; written by `initdb --auth`, and over the `trust` file
/// of a cluster an earlier build made.
const HBA: &str = "# Written by Zeitwork: every connection gives the role's password.
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
";

/// A running private PostgreSQL cluster, listening on 127.0.0.1 only; every connection
/// authenticates with the password kept in its directory.
///
/// Dropping it stops the server (`pg_ctl stop`), fast for a persistent cluster, immediately for a
/// throwaway one; [`Postgres::stop`] does the same and reports errors.
#[derive(Debug)]
pub struct Postgres {
    /// The PostgreSQL `bin` directory (initdb, pg_ctl, psql of one version).
    bin: PathBuf,
    /// `Some` when we are root and run the server as [`ACCOUNT`].
    account: Option<(u32, u32)>,
    dir: PathBuf,
    port: u16,
    /// The role's password (hex; safe in a URL).
    password: String,
    /// Throwaway clusters skip durability: fsync off, and an immediate stop on drop.
    throwaway: bool,
    running: bool,
    /// Removed after the server is stopped (fields drop after `Drop::drop`).
    temp: Option<TempDir>,
}

impl Postgres {
    /// Starts the cluster in `dir` (running `initdb` on first use), listening on
    /// 127.0.0.1:`port` and a unix socket inside `dir`; data survives restarts.
    ///
    /// `dir` must be dedicated to the cluster: as root it is handed to the `postgres` user.
    /// Fails with [`ServiceError::AlreadyRunning`] if a server already runs on `dir`.
    pub async fn start(dir: &Path, port: u16) -> Result<Postgres, ServiceError> {
        Self::launch(dir, port, false).await
    }

    /// A cluster for tests in a temporary directory on a free port; dropping it stops the server
    /// and deletes everything.
    pub async fn throwaway() -> Result<Postgres, ServiceError> {
        let temp = tempfile::Builder::new()
            .prefix("zeitwork-pg-")
            .tempdir()
            .map_err(ServiceError::io("creating a temporary directory"))?;
        let mut postgres = Self::launch(temp.path(), free_port(), true).await?;
        postgres.temp = Some(temp);
        Ok(postgres)
    }

    /// `postgres://zeitwork@127.0.0.1:PORT/zeitwork`.
    pub fn url(&self) -> String {
        self.url_for(DATABASE)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates database `name` (so tests can share one cluster yet stay isolated) and returns
    /// its URL.
    pub async fn create_database(&self, name: &str) -> Result<String, ServiceError> {
        let valid = (1..=63).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(ServiceError::InvalidName(name.to_owned()));
        }
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .await?;
        Ok(self.url_for(name))
    }

    /// Runs `sql` with `psql` in `database` and returns its unaligned, tuples-only output.
    pub async fn psql(&self, database: &str, sql: &str) -> Result<String, ServiceError> {
        let mut psql = Command::new(self.bin.join("psql"));
        let port = self.port.to_string();
        psql.args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .args(["-p", &port, "-U", ROLE, "-d", database, "-w", "-c", sql])
        .env("PGPASSWORD", &self.password);
        Ok(run(psql).await?.trim_end().to_owned())
    }

    /// Stops the server (`pg_ctl stop -m fast`), waiting until it is down.
    pub async fn stop(mut self) -> Result<(), ServiceError> {
        run(self.pg_ctl_stop("fast")).await?;
        self.running = false;
        tracing::info!(dir = %self.dir.display(), "PostgreSQL stopped");
        Ok(())
    }

    async fn launch(dir: &Path, port: u16, throwaway: bool) -> Result<Postgres, ServiceError> {
        let bin = find_bindir().await?;
        let account = if rustix::process::geteuid().is_root() {
            Some(service_account().await?)
        } else {
            None
        };
        let dir = prepare_dir(dir, account)?;
        let password = password(&dir, account)?;
        let mut postgres = Postgres {
            bin,
            account,
            dir,
            port,
            password,
            throwaway,
            running: false,
            temp: None,
        };
        postgres.refuse_if_running().await?;
        ensure_port_free(SERVICE, port)?;
        let fresh = postgres.init_if_needed().await?;
        let log = postgres.dir.join("postgres.log");
        let mut pg_ctl = postgres.server_command("pg_ctl");
        pg_ctl
            .args(["start", "-w", "-t", "30", "-D", "data", "-l"])
            .arg(&log)
            .arg("-o")
            .arg(postgres.server_options());
        if let Err(e) = run(pg_ctl).await {
            let reason = match e {
                ServiceError::Command { stderr, .. } => format!("pg_ctl start failed: {stderr}"),
                other => other.to_string(),
            };
            return Err(start_failed(SERVICE, reason, &log));
        }
        postgres.running = true;
        postgres.require_passwords().await?;
        if fresh {
            postgres
                .psql("postgres", &format!("CREATE DATABASE {DATABASE}"))
                .await?;
        }
        tracing::info!(dir = %postgres.dir.display(), port, "PostgreSQL started");
        Ok(postgres)
    }

    /// Runs `initdb` unless `data/` holds a complete cluster; returns whether it ran. An
    /// interrupted earlier `initdb` (no `PG_VERSION` yet) is wiped and redone.
    async fn init_if_needed(&self) -> Result<bool, ServiceError> {
        let data = self.dir.join("data");
        if data.join("PG_VERSION").exists() {
            return Ok(false);
        }
        if data.exists() {
            std::fs::remove_dir_all(&data)
                .map_err(ServiceError::io(format!("removing {}", data.display())))?;
        }
        let mut initdb = self.server_command("initdb");
        initdb.args([
            "-D",
            "data",
            "-U",
            ROLE,
            "--auth=scram-sha-256",
            "--pwfile",
            PASSWORD_FILE,
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        if self.throwaway {
            initdb.arg("--no-sync");
        }
        run(initdb).await?;
        let hba = data.join("pg_hba.conf");
        std::fs::write(&hba, HBA)
            .map_err(ServiceError::io(format!("writing {}", hba.display())))?;
        Ok(true)
    }

    /// A second server on the same data would fail in confusing ways: say so plainly.
    async fn refuse_if_running(&self) -> Result<(), ServiceError> {
        let pid_file = self.dir.join("data/postmaster.pid");
        let Ok(contents) = std::fs::read_to_string(&pid_file) else {
            return Ok(());
        };
        let mut status = self.server_command("pg_ctl");
        status.args(["status", "-D", "data"]);
        if run(status).await.is_err() {
            return Ok(()); // stale pid file from a crash: the server cleans it up on start
        }
        Err(ServiceError::AlreadyRunning {
            service: SERVICE,
            dir: self.dir.clone(),
            pid: contents
                .lines()
                .next()
                .and_then(|l| l.parse().ok())
                .unwrap_or(0),
        })
    }

    /// The `postgres` options given through `pg_ctl -o` (a shell word list).
    fn server_options(&self) -> String {
        let socket_dir = self.dir.to_string_lossy().replace('\'', r"'\''");
        let mut options = format!("-p {} -h 127.0.0.1 -k '{socket_dir}'", self.port);
        if self.throwaway {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        options
    }

    /// `pg_ctl`/`initdb` run as the cluster's owner, in `dir`.
    fn server_command(&self, program: &str) -> Command {
        let mut command = match self.account {
            Some(_) => {
                let mut runuser = Command::new("runuser");
                runuser
                    .args(["-u", ACCOUNT, "--"])
                    .arg(self.bin.join(program));
                runuser
            }
            None => Command::new(self.bin.join(program)),
        };
        command.current_dir(&self.dir).env("LC_ALL", "C");
        command
    }

    fn pg_ctl_stop(&self, mode: &str) -> Command {
        let mut pg_ctl = self.server_command("pg_ctl");
        pg_ctl.args(["stop", "-w", "-D", "data", "-m", mode]);
        pg_ctl
    }

    fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{ROLE}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// A cluster an earlier build initialized with `trust` gets the password and the
    /// authenticating `pg_hba.conf` now (reloaded at once).
    async fn require_passwords(&self) -> Result<(), ServiceError> {
        let hba = self.dir.join("data/pg_hba.conf");
        let current = std::fs::read_to_string(&hba)
            .map_err(ServiceError::io(format!("reading {}", hba.display())))?;
        if current == HBA {
            return Ok(());
        }
        // Over trust, psql gets in without the password to set it.
        self.psql(
            "postgres",
            &format!("ALTER ROLE {ROLE} PASSWORD '{}'", self.password),
        )
        .await?;
        std::fs::write(&hba, HBA)
            .map_err(ServiceError::io(format!("writing {}", hba.display())))?;
        let mut reload = self.server_command("pg_ctl");
        reload.args(["reload", "-D", "data"]);
        run(reload).await?;
        tracing::info!(dir = %self.dir.display(), "PostgreSQL now requires the password");
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        let mode = if self.throwaway { "immediate" } else { "fast" };
        match self.pg_ctl_stop(mode).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => tracing::warn!(
                dir = %self.dir.display(),
                stderr = %String::from_utf8_lossy(&out.stderr),
                "could not stop PostgreSQL"
            ),
            Err(e) => tracing::warn!(dir = %self.dir.display(), "could not run pg_ctl: {e}"),
        }
    }
}

/// The `bin` directory of the newest installed PostgreSQL: `pg_config --bindir`, else the highest
/// `/usr/lib/postgresql/N/bin` (Debian keeps initdb off PATH), else wherever PATH has `initdb`.
async fn find_bindir() -> Result<PathBuf, ServiceError> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file();
    if let Ok(out) = tokio::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .await
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_initdb(&dir) {
            return Ok(dir);
        }
    }
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten();
    let newest = debian
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_initdb(&bin).then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    find_binary("initdb", &[])
        .and_then(|initdb| Some(initdb.canonicalize().ok()?.parent()?.to_path_buf()))
        .ok_or(ServiceError::NotInstalled {
            binary: "initdb",
            hint: INSTALL_HINT,
        })
}

/// The uid and gid of [`ACCOUNT`], creating it as a system user if needed.
async fn service_account() -> Result<(u32, u32), ServiceError> {
    if let Some(ids) = lookup_account(ACCOUNT) {
        return Ok(ids);
    }
    let mut useradd = Command::new("useradd");
    useradd
        .args(["--system", "--user-group", "--no-create-home"])
        .args([
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            ACCOUNT,
        ]);
    run(useradd).await?;
    lookup_account(ACCOUNT).ok_or(ServiceError::NotInstalled {
        binary: "the postgres system user",
        hint: "useradd ran but /etc/passwd has no postgres entry; create the user by hand",
    })
}

fn lookup_account(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        let mut ids = fields.skip(1).map(str::parse);
        Some((ids.next()?.ok()?, ids.next()?.ok()?))
    })
}

/// Creates `dir` with mode 0700; as root hands it to `account` and makes every parent searchable
/// (`o+x`, nothing more) so the unprivileged server can reach it.
/// The role's password from `dir`, made (16 random bytes, hex) on first use: owner-only,
/// and owned by the server's account, which `initdb --pwfile` reads it as.
fn password(dir: &Path, account: Option<(u32, u32)>) -> Result<String, ServiceError> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(PASSWORD_FILE);
    let context = |what: &str| format!("{what} {}", path.display());
    if let Ok(kept) = std::fs::read_to_string(&path) {
        let kept = kept.trim();
        if kept.len() == 32 && kept.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(kept.to_owned());
        }
    }
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(ServiceError::io("reading /dev/urandom"))?;
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(ServiceError::io(context("creating")))?;
    file.write_all(password.as_bytes())
        .map_err(ServiceError::io(context("writing")))?;
    if let Some((uid, gid)) = account {
        chown(&path, Some(uid), Some(gid)).map_err(ServiceError::io(context("handing over")))?;
    }
    Ok(password)
}

fn prepare_dir(dir: &Path, account: Option<(u32, u32)>) -> Result<PathBuf, ServiceError> {
    let context = |what: &str, path: &Path| format!("{what} {}", path.display());
    std::fs::create_dir_all(dir).map_err(ServiceError::io(context("creating", dir)))?;
    let dir = dir
        .canonicalize()
        .map_err(ServiceError::io(context("resolving", dir)))?;
    std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o700))
        .map_err(ServiceError::io(context("restricting", &dir)))?;
    let Some((uid, gid)) = account else {
        return Ok(dir);
    };
    chown(&dir, Some(uid), Some(gid)).map_err(ServiceError::io(context(
        "handing to the postgres user",
        &dir,
    )))?;
    for parent in dir.ancestors().skip(1) {
        let meta = parent
            .metadata()
            .map_err(ServiceError::io(context("inspecting", parent)))?;
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            tracing::info!(dir = %parent.display(), "adding o+x so the postgres user can reach its data");
            std::fs::set_permissions(parent, PermissionsExt::from_mode(mode | 0o001))
                .map_err(ServiceError::io(context("making searchable", parent)))?;
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn throwaway_cluster_accepts_connections() {
        let postgres = Postgres::throwaway().await.unwrap();
        tokio::net::TcpStream::connect(("127.0.0.1", postgres.port()))
            .await
            .unwrap();
        assert_eq!(postgres.psql(DATABASE, "SELECT 1").await.unwrap(), "1");
        assert_eq!(
            postgres.url(),
            format!(
                "postgres://zeitwork:{}@127.0.0.1:{}/zeitwork",
                postgres.password,
                postgres.port()
            )
        );
        let dir = postgres.dir.clone();
        drop(postgres);
        assert!(!dir.exists(), "throwaway directory must be removed");
    }

    /// `zeitwork up`'s database must not trust every local user: a connection without
    /// the password is refused, over TCP and over the unix socket.
    #[tokio::test]
    async fn a_connection_without_the_password_is_refused() {
        let postgres = Postgres::throwaway().await.unwrap();
        let port = postgres.port().to_string();
        let socket_dir = postgres.dir.display().to_string();
        for host in ["127.0.0.1", socket_dir.as_str()] {
            let out = Command::new(postgres.bin.join("psql"))
                .args([
                    "-X", "-w", "-h", host, "-p", &port, "-U", ROLE, "-d", DATABASE,
                ])
                .args(["-c", "SELECT 1"])
                .env_remove("PGPASSWORD")
                .env("PGPASSFILE", "/nonexistent")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{host}: connected without a password"
            );
            assert!(stderr.contains("password"), "{host}: {stderr}");
        }
        let kept = std::fs::metadata(postgres.dir.join(PASSWORD_FILE)).unwrap();
        assert_eq!(kept.permissions().mode() & 0o777, 0o600);
        assert_eq!(postgres.psql(DATABASE, "SELECT 1").await.unwrap(), "1");
    }

    #[tokio::test]
    async fn two_throwaway_clusters_run_side_by_side() {
        let (a, b) = tokio::join!(Postgres::throwaway(), Postgres::throwaway());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(a.port(), b.port());
        let url = a.create_database("isolated_1").await.unwrap();
        assert!(url.ends_with("/isolated_1"), "{url}");
        a.psql("isolated_1", "CREATE TABLE t (x int)")
            .await
            .unwrap();
        assert!(matches!(
            a.create_database("bad-name").await,
            Err(ServiceError::InvalidName(_))
        ));
        assert_eq!(b.psql(DATABASE, "SELECT 2").await.unwrap(), "2");
        b.stop().await.unwrap();
    }

    #[tokio::test]
    async fn persistent_cluster_keeps_data_and_refuses_a_second_start() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("postgres");
        let first = Postgres::start(&dir, free_port()).await.unwrap();
        first
            .psql(
                DATABASE,
                "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('yes')",
            )
            .await
            .unwrap();

        let err = Postgres::start(&dir, free_port()).await.unwrap_err();
        assert!(matches!(err, ServiceError::AlreadyRunning { .. }), "{err}");
        first.stop().await.unwrap();

        let again = Postgres::start(&dir, free_port()).await.unwrap();
        assert_eq!(
            again.psql(DATABASE, "SELECT v FROM kept").await.unwrap(),
            "yes"
        );
        again.stop().await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_start_quotes_the_server_log() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("postgres");
        Postgres::start(&dir, free_port())
            .await
            .unwrap()
            .stop()
            .await
            .unwrap();
        let config = dir.join("data/postgresql.conf");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str("\nzeitwork_bogus_setting = 1\n");
        std::fs::write(&config, text).unwrap();

        let err = Postgres::start(&dir, free_port()).await.unwrap_err();
        let ServiceError::StartFailed { log_tail, .. } = &err else {
            panic!("expected StartFailed, got {err}");
        };
        assert!(log_tail.contains("zeitwork_bogus_setting"), "{err}");
    }

    #[tokio::test]
    async fn a_taken_port_is_reported() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let temp = tempfile::tempdir().unwrap();
        let err = Postgres::start(temp.path(), port).await.unwrap_err();
        assert!(matches!(err, ServiceError::PortInUse { .. }), "{err}");
    }

    #[test]
    fn accounts_are_read_from_passwd() {
        assert_eq!(lookup_account("root"), Some((0, 0)));
        assert_eq!(lookup_account("zeitwork-no-such-user"), None);
    }
}
