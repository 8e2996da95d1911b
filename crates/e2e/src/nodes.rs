//! Several nodes on one host: each `zeitwork server agent` in a network namespace of its
//! own (taps and nftables are per namespace, so agents share this host without touching
//! each other's instances), reaching `zeitwork up`'s API over a veth pair, as separate
//! machines on one LAN would. Each namespace has a NATS server of its own that nobody
//! publishes to: every notification is lost, so only the agents' periodic resync (every
//! ~2 s here) converges them.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};
use zeitwork_vmm::Cgroup;

use crate::{Up, init_bin, poll_until, zeitwork_bin};

/// The NATS server inside each node's namespace that no listener publishes to.
const SILENT_NATS_PORT: u16 = 14222;

/// One node: its name, namespace, host-side and node-side veth names and their addresses
/// (an IPv4 /30 and an IPv6 /126 each).
pub struct Node {
    /// The agent's `--name`.
    pub name: &'static str,
    /// The network namespace the agent runs in.
    pub netns: &'static str,
    /// The veth pair: (host side, node side).
    pub veth: (&'static str, &'static str),
    /// IPv4 addresses: (host side, node side), in one /30.
    pub ips: (&'static str, &'static str),
    /// IPv6 addresses: (host side, node side), in one /126.
    pub ips6: (&'static str, &'static str),
}

impl Node {
    /// Starts this node's agent against the API on the host side of its veth at
    /// `api_port`, enrolling with `join_token` the first time, its stderr appended to
    /// `<node_dir>/agent.stderr`; `extra` goes to the agent's command line. Unless `extra`
    /// names them, the region is `local` and NATS the namespace's silent server.
    pub fn start_agent(
        &self,
        api_port: &str,
        join_token: Option<&str>,
        node_dir: &Path,
        extra: &[&str],
    ) -> Child {
        let api = format!("http://{}:{api_port}", self.ips.0);
        // nsenter rather than `ip netns exec`, which remounts /sys and so hides the cgroups.
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .arg(zeitwork_bin())
            .args(["server", "agent", "--api", &api, "--name", self.name])
            .args(["--address", self.ips.1])
            .args(["--heartbeat-seconds", "1", "--resync-seconds", "2"])
            .args(extra)
            .arg("--node-dir")
            .arg(node_dir)
            .arg("--init-bin")
            .arg(init_bin())
            .env_remove("NATS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(agent_log(node_dir))
            .kill_on_drop(true);
        if !extra.contains(&"--region") {
            command.args(["--region", "local"]);
        }
        if !extra.contains(&"--nats-url") {
            command.args([
                "--nats-url",
                &format!("nats://127.0.0.1:{SILENT_NATS_PORT}"),
            ]);
        }
        if let Some(token) = join_token {
            command.args(["--join-token", token]);
        }
        command.spawn().expect("starting an agent")
    }

    /// This node as `zeitwork nodes --json` lists it; `Value::Null` until it enrolled.
    pub async fn listed(&self, up: &Up) -> Value {
        let nodes = up.cli(&["nodes", "--json"]).await.json();
        nodes["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["name"] == self.name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Routes `prefix` (the node's instance /64) from the host through this node, as a
    /// cluster's network (or its overlay) routes every node's instances to its edges.
    pub async fn route_to(&self, prefix: &str) {
        ip(&[
            "-6",
            "route",
            "replace",
            prefix,
            "via",
            self.ips6.1,
            "dev",
            self.veth.0,
        ])
        .await;
    }
}

/// The agent's stderr, appended across its starts, quoted when a test fails.
fn agent_log(node_dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(node_dir.join("agent.stderr"))
        .unwrap()
}

/// The node directories of this test process that exist now, whose agents' logs a
/// failure quotes.
static LIVE: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Waits up to `within` for `check`; on timeout fails quoting the log of every agent of
/// this test process (the `agent.stderr` of each live [`NodeDir`]).
pub async fn until<T, F, Fut>(what: &str, within: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    if let Some(value) = poll_until(within, check).await {
        return value;
    }
    let dirs = LIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let logs: Vec<String> = dirs
        .iter()
        .map(|d| d.join("agent.stderr"))
        .filter_map(|p| {
            let log = std::fs::read_to_string(&p).ok()?;
            Some(format!("--- {} ---\n{log}", p.display()))
        })
        .collect();
    panic!("{what}: not within {within:?}\n{}", logs.join("\n"));
}

/// VM cgroups of instances that have a directory in `node_dir`.
pub fn vms_of(node_dir: &Path) -> Vec<Cgroup> {
    Cgroup::ours()
        .into_iter()
        .filter(|(name, cg)| {
            node_dir.join("instances").join(name).is_dir() && !cg.pids().is_empty()
        })
        .map(|(_, cg)| cg)
        .collect()
}

/// A node's directory (a temporary one, sharing the guest cache); on drop, whatever ran
/// there is killed and its instances' network namespaces removed, so a failing test
/// leaves no VM behind.
pub struct NodeDir(tempfile::TempDir);

impl NodeDir {
    /// A fresh node directory.
    pub fn new() -> NodeDir {
        let dir = tempfile::tempdir().expect("a node directory");
        crate::share_guest_cache(dir.path());
        LIVE.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(dir.path().to_path_buf());
        NodeDir(dir)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Default for NodeDir {
    fn default() -> NodeDir {
        NodeDir::new()
    }
}

impl Drop for NodeDir {
    fn drop(&mut self) {
        LIVE.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|d| d != self.path());
        kill_vms_of(self.path());
        let instances = std::fs::read_dir(self.path().join("instances"));
        for entry in instances.into_iter().flatten().flatten() {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del"])
                .arg(format!("zwvm-{}", entry.file_name().to_string_lossy()))
                .output();
        }
    }
}

/// Kills the VMs of the instances in `node_dir`, as a power cut would.
pub fn kill_vms_of(node_dir: &Path) {
    for cg in vms_of(node_dir) {
        for pid in cg.pids() {
            crate::signal(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Runs `ip ARGS`, failing the test when it fails.
pub async fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().await.unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A node's network namespace with its veth pair to the host and its silent NATS server;
/// removed on drop.
pub struct Netns(&'static Node, std::process::Child);

impl Netns {
    /// Creates `node`'s namespace (replacing a leftover one).
    pub async fn create(node: &'static Node) -> Netns {
        Netns::remove(node);
        let (host_ip, node_ip) = (format!("{}/30", node.ips.0), format!("{}/30", node.ips.1));
        let (host_ip6, node_ip6) = (
            format!("{}/126", node.ips6.0),
            format!("{}/126", node.ips6.1),
        );
        let (host, inside) = node.veth;
        let n = node.netns;
        let steps: [&[&str]; 9] = [
            &["netns", "add", n],
            &[
                "link", "add", host, "type", "veth", "peer", "name", inside, "netns", n,
            ],
            &["addr", "add", &host_ip, "dev", host],
            &["addr", "add", &host_ip6, "dev", host, "nodad"],
            &["link", "set", host, "up"],
            &["-n", n, "addr", "add", &node_ip, "dev", inside],
            &["-n", n, "addr", "add", &node_ip6, "dev", inside, "nodad"],
            &["-n", n, "link", "set", inside, "up"],
            &["-n", n, "link", "set", "lo", "up"],
        ];
        for args in steps {
            ip(args).await;
        }
        let nats = std::process::Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{n}"))
            .arg(
                ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
                    .into_iter()
                    .find(|p| Path::new(p).exists())
                    .unwrap_or("nats-server"),
            )
            .args(["-a", "127.0.0.1", "-p", &SILENT_NATS_PORT.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting a silent nats-server");
        Netns(node, nats)
    }

    fn remove(node: &Node) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", node.veth.0])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", node.netns])
            .output();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.1.kill();
        let _ = self.1.wait();
        Netns::remove(self.0);
    }
}

/// `GET path` on `addr` with `Host: host` (HTTP/1.1, one request): the whole answer, or
/// None when `addr` does not answer within 10 s.
pub async fn http_get(addr: &str, host: &str, path: &str) -> Option<String> {
    crate::load::exchange(addr, host, path, Duration::from_secs(10))
        .await
        .ok()
}
