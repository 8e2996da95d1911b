//! The harness of the whole-platform tests: it runs the real `zeitwork` binary the way a
//! user does (`zeitwork up` in one process, the CLI in others) and nothing else, so what
//! the tests check is what a user would see.
//!
//! - [`zeitwork_bin`] finds the binary: `ZEITWORK_BIN`, else one `cargo build` per test
//!   process (a test package cannot use another package's `CARGO_BIN_EXE_*`).
//! - [`Up`] is one `zeitwork up` on free ports with its own CLI config; it can be killed,
//!   interrupted and restarted on the same data and ports, and never leaks a server when
//!   a test panics.
//! - [`nodes`] runs more nodes on this host, each agent in a network namespace of its own.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub mod load;
pub mod nodes;

/// How long `zeitwork up` may take to print "Press Ctrl-C to stop.".
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `zeitwork up` may take to exit after SIGINT.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// A CLI command that runs longer than this is hung.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// The last line `zeitwork up` prints once it serves.
const READY_LINE: &str = "Press Ctrl-C to stop.";
/// Environment that would point the CLI or `up` somewhere other than this test's platform.
const FOREIGN_ENV: &[&str] = &[
    "ZEITWORK_API",
    "ZEITWORK_TOKEN",
    "ZEITWORK_ORG",
    "ZEITWORK_APP",
    "ZEITWORK_ENV",
    "ZEITWORK_DATA_DIR",
    "DATABASE_URL",
    "NATS_URL",
    "ZEITWORK_SECRET_KEY",
    "ZEITWORK_CERT_KEY",
    "ZEITWORK_ACME_DIRECTORY",
    "ZEITWORK_DNS_SERVER",
];

/// The `zeitwork` binary under test: `$ZEITWORK_BIN` if set, else built once per test
/// process with the cargo that runs the tests.
///
/// # Panics
/// If the build fails (its diagnostics are in the message) or yields no executable.
pub fn zeitwork_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("ZEITWORK_BIN") {
        Some(path) => PathBuf::from(path),
        None => build("zeitwork", "zeitwork", false),
    })
}

/// The guest's static PID 1: `$ZEITWORK_INIT_BIN`, else built once per test process.
pub fn init_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("ZEITWORK_INIT_BIN") {
        Some(path) => PathBuf::from(path),
        None => build("zeitwork-init", "zeitwork-init", true),
    })
}

/// The example app as a static binary, for images built in tests.
pub fn hello_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build("zeitwork-example-hello", "hello", true))
}

/// Builds one binary of the workspace; `static_` links it statically (release), as
/// binaries that run inside a microVM's image or initramfs must be.
fn build(package: &str, bin: &str, static_: bool) -> PathBuf {
    zeitwork_services::workspace::build_bin(package, bin, static_)
}

/// What one CLI command did.
#[derive(Debug, Clone)]
pub struct Output {
    /// The arguments it ran with.
    pub args: Vec<String>,
    /// Its exit code (-1 when a signal ended it).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts the command succeeded and hands it back.
    #[track_caller]
    pub fn success(self) -> Output {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }

    /// Asserts the exit code and hands the output back.
    #[track_caller]
    pub fn exit(self, code: i32) -> Output {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }

    /// Stdout parsed as JSON (after asserting success).
    #[track_caller]
    pub fn json(&self) -> Value {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// `field` of every object in the list `key` of a list answer (`{"apps": [...]}`).
///
/// # Panics
/// If `answer` has no such list.
pub fn pluck<'a>(answer: &'a Value, key: &str, field: &str) -> Vec<&'a Value> {
    answer[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key:?} list in {answer:#}"))
        .iter()
        .map(|item| &item[field])
        .collect()
}

/// Where VM tests share the downloaded guest kernel and initramfs.
pub fn guest_cache() -> PathBuf {
    let cache = std::env::temp_dir().join("zeitwork-guest-test-cache");
    std::fs::create_dir_all(&cache).expect("creating the guest cache");
    cache
}

/// What a build in a microVM needs on this host: a node's runtime (QEMU, the guest
/// kernel and initramfs of the shared guest cache, its firewall table installed, which
/// confines the builders' links) and the builder guest.
pub struct Builder {
    pub runtime: zeitwork_agent::Runtime<zeitwork_vmm::Qemu>,
    pub rootfs: zeitwork_agent::build::BuilderRootfs,
    /// The runtime's state directory.
    _state: TempDir,
}

/// The IPv6 prefix of [`builder`]'s node.
pub const BUILDER_PREFIX: &str = "fd00:7a77:b1d::/64";

/// The node [`Builder`] of this host.
///
/// # Panics
/// If any of it cannot be made (no network to Debian's mirror, no QEMU, not root).
pub async fn builder() -> Builder {
    let cache = guest_cache();
    let state = tempfile::tempdir().expect("temp dir");
    let runtime = zeitwork_agent::Runtime::new(
        zeitwork_vmm::Qemu::detect().expect("QEMU is installed"),
        zeitwork_agent::RuntimeConfig {
            state_dir: state.path().to_path_buf(),
            guest_dir: cache.clone(),
            init_binary: init_bin().to_path_buf(),
            node_prefix: zeitwork_net::NodePrefix::parse(BUILDER_PREFIX).expect("a ULA /64"),
            egress_allow: Vec::new(),
            edge_networks: Vec::new(),
            registry: None,
        },
    )
    .await
    .expect("the node's runtime: the guest kernel and initramfs, the firewall");
    let rootfs = zeitwork_agent::build::BuilderRootfs::prepare(&cache)
        .await
        .expect("the builder guest (mmdebstrap from Debian's packages)");
    Builder {
        runtime,
        rootfs,
        _state: state,
    }
}

/// `zeitwork up` on `data` (without the example, the guest cache shared), the CLI logged
/// in as its admin, with org `org` and its app `app`. Needs root (microVMs).
pub async fn up_with_app(data: &Path, org: &str, app: &str) -> Up {
    assert!(
        rustix::process::geteuid().is_root(),
        "cannot run: microVMs need root"
    );
    share_guest_cache(&data.join("node"));
    let up = Up::start_with(data, "127.0.0.1", &["--no-example"]).await;
    up.login_as_admin().await;
    up.cli(&["orgs", "create", org]).await.success();
    up.cli(&["--org", org, "apps", "create", app])
        .await
        .success();
    up
}

/// The GitHub stand-in, with repository `<org>/<app>` connected to app `app` (`zeitwork
/// apps connect`): the stand-in and the webhook to deliver to.
pub async fn connected_repository(
    up: &Up,
    org: &str,
    app: &str,
) -> (zeitwork_services::GitHubStandIn, zeitwork_services::Hook) {
    let gh = zeitwork_services::GitHubStandIn::start().await.unwrap();
    let repo = gh.clone_url(&format!("{org}/{app}"));
    let connected = up
        .cli(&[
            "--org", org, "--app", app, "apps", "connect", "--repo", &repo, "--json",
        ])
        .await
        .success()
        .json();
    let hook = zeitwork_services::Hook {
        url: connected["webhook_url"].as_str().unwrap().to_owned(),
        secret: connected["secret"].as_str().unwrap().to_owned(),
    };
    (gh, hook)
}

/// A build context: the example's static binary as `hello` and `dockerfile`.
pub fn hello_context(dockerfile: &str) -> TempDir {
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(hello_bin(), context.path().join("hello")).unwrap();
    std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
    context
}

/// Makes `node_dir/guest` the shared guest cache, so a node under test downloads nothing.
pub fn share_guest_cache(node_dir: &Path) {
    std::fs::create_dir_all(node_dir).expect("creating the node directory");
    let _ = std::os::unix::fs::symlink(guest_cache(), node_dir.join("guest"));
}

/// Calls `check` every half second until it yields a value; None after `within`.
pub async fn poll_until<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if start.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Command lines of live processes (other than this one) that mention `path`: what is
/// left of a platform whose data directory that is.
pub fn processes_mentioning(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy();
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|e| e.file_name() != me.as_str())
        .filter_map(|e| {
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            line.contains(needle.as_ref())
                .then(|| format!("{}: {}", e.file_name().to_string_lossy(), line.trim_end()))
        })
        .collect()
}

/// Sends `signal` to `pid`; false when there is no such process.
pub fn signal(pid: u32, signal: Signal) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .is_some_and(|pid| kill_process(pid, signal).is_ok())
}

/// One `zeitwork up` with its data directory, fixed ports and a private CLI config.
pub struct Up {
    data_dir: PathBuf,
    /// The CLI config, the CLI's working directory and `up`'s stderr logs.
    home: TempDir,
    listen_ip: String,
    api_port: u16,
    edge_port: u16,
    edge_https_port: u16,
    postgres_port: u16,
    nats_port: u16,
    registry_port: u16,
    child: Option<Child>,
    starts: u32,
    api: String,
    admin_token: Option<String>,
    banner: String,
    /// Arguments after the fixed ones (`--no-agent --no-example` unless [`Up::with_node`]).
    extra: Vec<String>,
    /// Everything `up` printed on stdout so far, banner included.
    stdout: Arc<Mutex<String>>,
    /// Every CLI command's stdout and stderr, so a test can check what a user ever saw.
    transcript: Mutex<String>,
}

impl Up {
    /// Starts `zeitwork up` on `data_dir` (created if missing) and waits until it serves.
    ///
    /// # Panics
    /// If it exits or stays silent for [`START_TIMEOUT`]; the message quotes its output.
    pub async fn start(data_dir: impl Into<PathBuf>) -> Up {
        Up::start_with(data_dir, "127.0.0.1", &["--no-agent", "--no-example"]).await
    }

    /// Starts `zeitwork up` as a user would: with this machine as a node running an agent
    /// (it must be root) and the example app deployed; the example's image is packed from
    /// the test build of `hello`.
    pub async fn with_node(data_dir: impl Into<PathBuf>) -> Up {
        Up::start_with(data_dir, "127.0.0.1", &[]).await
    }

    /// Starts `zeitwork up` with its API on `listen_ip` and `extra` arguments.
    pub async fn start_with(data_dir: impl Into<PathBuf>, listen_ip: &str, extra: &[&str]) -> Up {
        let ports = (
            zeitwork_services::free_port(),
            zeitwork_services::free_port(),
        );
        Up::start_with_edge(data_dir, listen_ip, extra, ports).await
    }

    /// [`Up::start_with`] with the edge's HTTP and HTTPS on the given ports, for a test
    /// that must name them to another server (an ACME CA) before `up` starts.
    pub async fn start_with_edge(
        data_dir: impl Into<PathBuf>,
        listen_ip: &str,
        extra: &[&str],
        (edge_port, edge_https_port): (u16, u16),
    ) -> Up {
        let home = tempfile::Builder::new()
            .prefix("zeitwork-e2e-")
            .tempdir()
            .expect("creating a temporary directory");
        std::fs::create_dir(home.path().join("work")).expect("creating the CLI's directory");
        // Absolute and canonical, as `up` passes it to its servers: that is how their
        // command lines are recognised.
        let data_dir = data_dir.into();
        let _ = std::fs::create_dir_all(&data_dir);
        let data_dir = data_dir.canonicalize().unwrap_or(data_dir);
        let mut up = Up {
            data_dir,
            home,
            listen_ip: listen_ip.to_owned(),
            api_port: zeitwork_services::free_port(),
            edge_port,
            edge_https_port,
            postgres_port: zeitwork_services::free_port(),
            nats_port: zeitwork_services::free_port(),
            registry_port: zeitwork_services::free_port(),
            child: None,
            starts: 0,
            api: String::new(),
            admin_token: None,
            banner: String::new(),
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
            stdout: Arc::default(),
            transcript: Mutex::new(String::new()),
        };
        up.launch().await;
        up
    }

    /// Starts `zeitwork up` again on the same data directory and ports.
    ///
    /// # Panics
    /// If it is still running ([`Up::kill`] or [`Up::interrupt`] it first), or as [`Up::start`].
    pub async fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "stop `zeitwork up` before restarting it"
        );
        self.launch().await;
    }

    async fn launch(&mut self) {
        self.starts += 1;
        let stderr_path = self.stderr_log();
        let stderr = std::fs::File::create(&stderr_path).expect("creating the stderr log");
        let mut command = Command::new(zeitwork_bin());
        command
            .arg("up")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(format!("{}:{}", self.listen_ip, self.api_port))
            .arg("--edge-listen")
            .arg(format!("127.0.0.1:{}", self.edge_port))
            .arg("--edge-https-listen")
            .arg(format!("127.0.0.1:{}", self.edge_https_port))
            .arg("--postgres-port")
            .arg(self.postgres_port.to_string())
            .arg("--nats-port")
            .arg(self.nats_port.to_string())
            .arg("--registry-listen")
            .arg(format!("127.0.0.1:{}", self.registry_port))
            .args(&self.extra)
            .env("ZEITWORK_HELLO_BIN", hello_bin())
            .env("ZEITWORK_INIT_BIN", init_bin())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for name in FOREIGN_ENV {
            command.env_remove(name);
        }
        let mut child = command.spawn().expect("spawning `zeitwork up`");
        let stdout = child.stdout.take().expect("stdout is piped");
        self.child = Some(child);

        // Drained to the end, so `up` never blocks on a full pipe once we stop listening.
        let (lines_tx, mut lines) = mpsc::unbounded_channel();
        let all = self.stdout.clone();
        all.lock().unwrap_or_else(PoisonError::into_inner).clear();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let mut all = all.lock().unwrap_or_else(PoisonError::into_inner);
                all.push_str(&line);
                all.push('\n');
                let _ = lines_tx.send(line);
            }
        });
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let mut banner = String::new();
        loop {
            match tokio::time::timeout_at(deadline, lines.recv()).await {
                Ok(Some(line)) => {
                    banner.push_str(&line);
                    banner.push('\n');
                    if line.trim() == READY_LINE {
                        break;
                    }
                }
                Ok(None) => self.start_failed("exited before it was ready", &banner),
                Err(_) => self.start_failed(
                    &format!("was not ready within {} s", START_TIMEOUT.as_secs()),
                    &banner,
                ),
            }
        }
        self.api = banner_value(&banner, "API:")
            .unwrap_or_else(|| self.start_failed("printed no API URL", &banner));
        self.admin_token = banner
            .lines()
            .skip_while(|l| !l.contains("Admin token (shown once"))
            .nth(1)
            .map(|l| l.trim().to_owned());
        self.banner = banner;
    }

    fn start_failed(&self, what: &str, banner: &str) -> ! {
        let stderr = std::fs::read_to_string(self.stderr_log()).unwrap_or_default();
        panic!(
            "`zeitwork up` (start {}) {what}\n--- stdout ---\n{banner}\n--- stderr ---\n{stderr}",
            self.starts,
        );
    }

    fn stderr_log(&self) -> PathBuf {
        self.home.path().join(format!("up-{}.stderr", self.starts))
    }

    /// What the latest start logged on stderr so far, for failure messages.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_log()).unwrap_or_default()
    }

    /// Where the platform registry listens, `127.0.0.1:PORT`.
    pub fn registry(&self) -> String {
        format!("127.0.0.1:{}", self.registry_port)
    }

    /// The API base URL, `http://127.0.0.1:PORT`.
    pub fn api(&self) -> &str {
        &self.api
    }

    /// Where the edge proxy listens, `127.0.0.1:PORT`.
    pub fn edge_addr(&self) -> String {
        format!("127.0.0.1:{}", self.edge_port)
    }

    /// Where the edge serves HTTPS, `127.0.0.1:PORT`.
    pub fn edge_https_addr(&self) -> String {
        format!("127.0.0.1:{}", self.edge_https_port)
    }

    /// The admin token printed by the latest start (`None` when it printed none).
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// `zeitwork login` with the admin token the first start printed, as a new user does
    /// next.
    pub async fn login_as_admin(&self) {
        let admin = self
            .admin_token()
            .expect("the first start prints the admin token");
        self.cli(&["login", "--api", self.api(), "--token", admin])
            .await
            .success();
    }

    /// All the latest start printed on stdout, up to "Press Ctrl-C to stop.".
    pub fn banner(&self) -> &str {
        &self.banner
    }

    /// Waits until `up` prints a stdout line containing `needle`; returns that line.
    ///
    /// # Panics
    /// After `within`, quoting stdout and stderr.
    pub async fn wait_for_line(&self, needle: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let found = self
                .stdout
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned);
            if let Some(line) = found {
                return line;
            }
            if tokio::time::Instant::now() > deadline {
                let stdout = self
                    .stdout
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let stderr = std::fs::read_to_string(self.stderr_log()).unwrap_or_default();
                panic!(
                    "`zeitwork up` printed no {needle:?} within {within:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The data directory, canonical.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The private Postgres, with the password `zeitwork up` made for it.
    pub fn database_url(&self) -> String {
        let password = std::fs::read_to_string(self.data_dir.join("postgres/password"))
            .expect("the private Postgres keeps its password");
        format!(
            "postgres://zeitwork:{}@127.0.0.1:{}/zeitwork",
            password.trim(),
            self.postgres_port
        )
    }

    /// The private NATS server.
    pub fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.nats_port)
    }

    /// `zeitwork ARGS` as the user of this platform: the test's own config file, an empty
    /// working directory (no stray ./zeitwork.toml) and none of the caller's ZEITWORK_*
    /// variables. Killed when dropped.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(zeitwork_bin());
        command
            .args(args)
            .env("ZEITWORK_CONFIG", self.home.path().join("config.toml"))
            .current_dir(self.home.path().join("work"))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for name in FOREIGN_ENV {
            command.env_remove(name);
        }
        command
    }

    /// Runs `zeitwork ARGS` to completion (see [`Up::cli_command`]) and records its output
    /// in the transcript.
    ///
    /// # Panics
    /// If it cannot be run or takes longer than a minute.
    pub async fn cli(&self, args: &[&str]) -> Output {
        self.run(args, self.cli_command(args)).await
    }

    /// [`Up::cli`] with these environment variables set as well.
    pub async fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.cli_command(args);
        command.envs(env.iter().copied());
        self.run(args, command).await
    }

    /// `zeitwork ARGS` as the operator on this machine runs the commands that talk to
    /// Postgres directly (`zeitwork certs …`, `zeitwork admin …`): [`Up::cli`] with
    /// `DATABASE_URL` and `ZEITWORK_CERT_KEY` (read from the data directory) set.
    pub async fn admin_cli(&self, args: &[&str]) -> Output {
        let mut command = self.cli_command(args);
        command
            .env("DATABASE_URL", self.database_url())
            .env("ZEITWORK_CERT_KEY", self.key("cert.key"));
        self.run(args, command).await
    }

    /// One of the keys `zeitwork up` keeps in its data directory (`secret.key`,
    /// `cert.key`), as hex.
    pub fn key(&self, file: &str) -> String {
        std::fs::read_to_string(self.data_dir.join(file))
            .unwrap_or_else(|e| panic!("reading {file} of `zeitwork up`: {e}"))
            .trim()
            .to_owned()
    }

    async fn run(&self, args: &[&str], mut command: Command) -> Output {
        let out = tokio::time::timeout(CLI_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("`zeitwork {}` hung", args.join(" ")))
            .expect("running the zeitwork CLI");
        let output = Output {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let mut transcript = self
            .transcript
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        transcript.push_str(&output.stdout);
        transcript.push_str(&output.stderr);
        output
    }

    /// The instances `zeitwork ARGS status --json` lists as wanted (desired `running`),
    /// `app` being `--org O --app A`; None when the command fails.
    pub async fn running_instances(&self, app: &[&str]) -> Option<Vec<Value>> {
        let out = self.cli(&[app, &["status", "--json"]].concat()).await;
        let status: Value = serde_json::from_str(&out.stdout).ok()?;
        Some(
            status["instances"]
                .as_array()?
                .iter()
                .filter(|i| i["desired_state"] == "running")
                .cloned()
                .collect(),
        )
    }

    /// Everything every CLI command run through [`Up::cli`] printed.
    pub fn transcript(&self) -> String {
        self.transcript
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// SIGKILLs `zeitwork up` and reaps it. Its Postgres and NATS keep running, as after a
    /// crash: the next start must adopt them.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("`zeitwork up` is running");
        child.kill().await.expect("killing `zeitwork up`");
    }

    /// Sends SIGINT (Ctrl-C) and returns how `zeitwork up` exited.
    ///
    /// # Panics
    /// If it is still running after [`STOP_TIMEOUT`].
    pub async fn interrupt(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("`zeitwork up` is running");
        let pid = child.id().expect("`zeitwork up` has not been reaped");
        assert!(signal(pid, Signal::INT), "sending SIGINT to `zeitwork up`");
        let Ok(status) = tokio::time::timeout(STOP_TIMEOUT, child.wait()).await else {
            let stderr = std::fs::read_to_string(self.stderr_log()).unwrap_or_default();
            let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "`zeitwork up` still runs {STOP_TIMEOUT:?} after SIGINT; its last words:\n{}",
                tail.join("\n")
            );
        };
        let status = status.expect("waiting for `zeitwork up`");
        self.child = None;
        status
    }

    /// SIGKILLs the servers named by the pid files under the data directory if they still
    /// run, which happens when `up` itself was killed.
    fn kill_leftover_servers(&self) {
        let pid_files = [
            self.data_dir.join("nats/nats.pid"),
            self.data_dir.join("postgres/data/postmaster.pid"),
        ];
        let data_dir = self.data_dir.to_string_lossy();
        for file in pid_files {
            let Some(pid) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|text| text.lines().next()?.trim().parse::<u32>().ok())
            else {
                continue;
            };
            // A pid file outlives its process: only kill a process that is still ours.
            let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(data_dir.as_ref()));
            if ours {
                signal(pid, Signal::KILL);
            }
        }
    }
}

/// The text after `label` on the banner line that holds it.
fn banner_value(banner: &str, label: &str) -> Option<String> {
    banner
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .map(|rest| rest.trim().to_owned())
}

/// Polls until `child` has exited or `timeout` passes; true if it exited.
fn reaped_within(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Up {
    /// A test that panics must not leave a platform running: Ctrl-C, then SIGKILL, then
    /// whatever Postgres or NATS outlived `up`. Blocking, as Drop cannot await.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let interrupted = child.id().is_some_and(|pid| signal(pid, Signal::INT));
            if !(interrupted && reaped_within(&mut child, Duration::from_secs(10))) {
                let _ = child.start_kill();
                reaped_within(&mut child, Duration::from_secs(5));
            }
        }
        self.kill_leftover_servers();
    }
}

/// Packs the example app (the static `hello`) into an image, pushes it to `registry` as
/// `hello:test` with Zeitwork's own tooling, and returns the digest-pinned reference.
pub async fn push_example(registry: &zeitwork_services::Registry) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = format!("{}/hello", registry.addr());
    push_hello(dir.path(), &name, zeitwork_image::PushOptions::default()).await
}

/// The example app with a static busybox as `/bin/busybox`, `/bin/sh` and `/bin/true`, pushed to the
/// platform registry of `up` as `demo/hello-shell:test` (as its admin); its digest-pinned
/// reference (for `zeitwork exec` tests).
pub async fn push_example_with_shell(up: &Up) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("bin")).expect("making bin/");
    for name in ["busybox", "sh", "true"] {
        std::fs::copy("/bin/busybox", dir.path().join("bin").join(name))
            .expect("/bin/busybox (Debian's busybox-static, see scripts/setup.sh)");
    }
    let options = zeitwork_image::PushOptions {
        auth: zeitwork_image::Auth::Basic {
            username: "zeitwork".into(),
            password: up.admin_token().expect("an admin token").to_owned(),
        },
        ..zeitwork_image::PushOptions::default()
    };
    let name = format!("{}/demo/hello-shell", up.registry());
    push_hello(dir.path(), &name, options).await
}

/// Adds the example app to `dir`, packs `dir` as an image running it and pushes it as
/// `name:test`; the digest-pinned reference.
async fn push_hello(dir: &Path, name: &str, options: zeitwork_image::PushOptions) -> String {
    use zeitwork_image::{ImageConfig, push_directory};
    std::fs::copy(hello_bin(), dir.join("hello")).expect("copying hello");
    let config = ImageConfig {
        entrypoint: vec!["/hello".into()],
        exposed_ports: vec!["8080/tcp".into()],
        ..Default::default()
    };
    let digest = push_directory(dir, &format!("{name}:test"), &config, &options)
        .await
        .expect("pushing the example image");
    format!("{name}@{digest}")
}

/// `zeitwork up` with this machine as its node, the example deployed (`demo/hello`) and
/// the CLI logged in as the admin; with the example's image (release 1's), pinned.
pub async fn up_with_example(data: &Path, within: Duration) -> (Up, String) {
    share_guest_cache(&data.join("node"));
    let up = Up::with_node(data).await;
    up.wait_for_line("Example app:", within).await;
    up.login_as_admin().await;
    let show = [&EXAMPLE_APP[..], &["releases", "show", "1", "--json"]].concat();
    let image = up.cli(&show).await.json()["image"]
        .as_str()
        .expect("release 1 names its image")
        .to_owned();
    (up, image)
}

/// Exactly one line on stderr, naming `needle`, and a failure exit code: how the CLI
/// refuses bad input.
#[track_caller]
pub fn refused(out: &Output, needle: &str) {
    assert_ne!(out.code, 0, "{out:#?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].contains(needle),
        "one readable line naming {needle:?}: {out:#?}"
    );
}

/// The bundled example's hostname under `zeitwork up` (app `hello` of org `demo`, `prod`).
pub const EXAMPLE_HOST: &str = "hello-demo.zeitwork.localhost";
/// The CLI flags that name the bundled example's app.
pub const EXAMPLE_APP: [&str; 4] = ["--org", "demo", "--app", "hello"];

/// A manifest of the bundled example (`examples/hello/zeitwork.toml`) whose env has
/// `RELEASE = release` (so each is a release of its own), with `extra` appended, written
/// to `dir/<release>.toml`; its path.
pub fn example_manifest(dir: &Path, release: &str, extra: &str) -> String {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello/zeitwork.toml"),
    )
    .expect("the example's manifest");
    let text = example.replacen(
        "app = \"hello\"\n",
        &format!("app = \"hello\"\nenv = {{ RELEASE = \"{release}\" }}\n"),
        1,
    ) + extra;
    let path = dir.join(format!("{release}.toml"));
    std::fs::write(&path, text).expect("writing a manifest");
    path.to_str().expect("a UTF-8 path").to_owned()
}
