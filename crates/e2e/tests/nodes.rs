//! Two nodes, one dies: its instance is placed on the other and goes healthy there; when
//! the dead node's agent comes back, it stops what is no longer its own.
//!
//! Nodes `a` and `b` are `zeitwork server agent`s, each in a network namespace of its own
//! (taps and nftables are per namespace, so two agents share this host without touching
//! each other's instances), reaching `zeitwork up`'s API over a veth pair. Each is
//! connected to a NATS server of its own that nobody publishes to: every notification is
//! lost, so only the periodic resync (every ~2 s here) converges them, and it must say so.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};
use zeitwork_e2e::{Up, init_bin, poll_until, share_guest_cache, zeitwork_bin};
use zeitwork_vmm::Cgroup;

/// Per node: name, namespace, host-side and node-side veth names and addresses (/30).
const NODES: [Node; 2] = [
    Node {
        name: "a",
        netns: "zw-e2e-a",
        veth: ("e2ea-h", "e2ea-n"),
        ips: ("10.213.0.1", "10.213.0.2"),
    },
    Node {
        name: "b",
        netns: "zw-e2e-b",
        veth: ("e2eb-h", "e2eb-n"),
        ips: ("10.213.0.5", "10.213.0.6"),
    },
];

struct Node {
    name: &'static str,
    netns: &'static str,
    veth: (&'static str, &'static str),
    ips: (&'static str, &'static str),
}
/// A NATS server inside each node's namespace that no listener publishes to.
const SILENT_NATS_PORT: u16 = 14222;
/// Each agent's Prometheus endpoint, on its node address.
const METRICS_PORT: u16 = 19101;
const WITHIN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_instance_moves_to_the_other_node_and_goes_healthy() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: microVMs and network namespaces need root");
        return;
    }
    let mut _netns = Vec::new();
    for node in &NODES {
        _netns.push(Netns::create(node).await);
    }
    let data = tempfile::tempdir().unwrap();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for dir in &dirs {
        share_guest_cache(dir.path());
    }
    let up = Up::start_with(
        data.path(),
        "0.0.0.0",
        &["--no-agent", "--no-example", "--node-dead-after", "4"],
    )
    .await;
    let port = up.api().rsplit(':').next().unwrap().to_owned();
    up.login_as_admin().await;
    let mut agents = Vec::new();
    for (node, dir) in NODES.iter().zip(&dirs) {
        let join = up.cli(&["nodes", "join-token", "--json"]).await.success();
        let token = join.json()["token"].as_str().unwrap().to_owned();
        agents.push(start_agent(node, &port, Some(&token), dir.path()));
    }
    until("both nodes ready", || async {
        let nodes = up.cli(&["nodes", "--json"]).await.json();
        let ready = nodes["nodes"]
            .as_array()?
            .iter()
            .filter(|n| n["state"] == "ready")
            .count();
        (ready == 2).then_some(())
    })
    .await;

    up.cli(&["orgs", "create", "acme"]).await.success();
    up.cli(&["--org", "acme", "apps", "create", "hello"])
        .await
        .success();
    let registry = zeitwork_services::Registry::throwaway().await.unwrap();
    let image = zeitwork_e2e::push_example(&registry).await;
    // The registry listens on the host's loopback, out of the nodes' namespaces: the image
    // is put in each node's cache beforehand, as if both had run it before.
    for dir in &dirs {
        zeitwork_image::ImageStore::new(dir.path().join("images"))
            .unwrap()
            .rootfs(&image, &zeitwork_image::Auth::Anonymous)
            .await
            .unwrap();
    }
    let app = ["--org", "acme", "--app", "hello"];
    up.cli(&[&app[..], &["deploy", "--image", &image]].concat())
        .await
        .success();
    let first = healthy_instance(&up, &app).await;

    // The node holding it dies: its agent and VMs killed at once, as a power cut would.
    let mut holder = None;
    for (i, n) in NODES.iter().enumerate() {
        if node(&up, n.name).await["id"] == first["node_id"] {
            holder = Some(i);
        }
    }
    let holder = holder.expect("placed on one of the two nodes");
    let (dead, dead_dir) = (&NODES[holder], dirs[holder].path());
    agents[holder].kill().await.unwrap();
    kill_vms_of(dead_dir);
    let second = until("a healthy replacement", || async {
        let i = healthy_instance_now(&up, &app).await?;
        (i["id"] != first["id"]).then_some(i)
    })
    .await;
    assert_ne!(
        second["node_id"], first["node_id"],
        "moved to the other node"
    );
    // Only a resync could have brought the replacement: the survivor says so, and counts it.
    let survivor = dirs[1 - holder].path().join("agent.stderr");
    let log = std::fs::read_to_string(&survivor).unwrap();
    assert!(
        log.contains("resync found drift"),
        "the lost notification is reported:\n{log}"
    );
    let metrics = http_get(
        &format!("{}:{METRICS_PORT}", NODES[1 - holder].ips.1),
        "/metrics",
    )
    .await;
    let repairs: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("zeitwork_agent_drift_repairs_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no drift counter in:\n{metrics}"));
    assert!(repairs >= 1.0, "{metrics}");
    assert_eq!(node(&up, dead.name).await["state"], "dead");

    // The dead node returns; nothing of the moved instance may run there.
    let mut back = start_agent(dead, &port, None, dead_dir);
    until("the dead node ready again", || async {
        (node(&up, dead.name).await["state"] == "ready").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        vms_of(dead_dir).is_empty(),
        "the returned node runs nothing"
    );
    back.kill().await.unwrap();
    for mut agent in agents {
        let _ = agent.kill().await;
    }
    for dir in &dirs {
        kill_vms_of(dir.path());
    }
}

fn start_agent(
    node: &Node,
    port: &str,
    join_token: Option<&str>,
    node_dir: &std::path::Path,
) -> Child {
    let api = format!("http://{}:{port}", node.ips.0);
    // nsenter rather than `ip netns exec`, which remounts /sys and so hides the cgroups.
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net=/var/run/netns/{}", node.netns))
        .arg(zeitwork_bin())
        .args(["server", "agent", "--api", &api, "--name", node.name])
        .args([
            "--address",
            node.ips.1,
            "--region",
            "local",
            "--heartbeat-seconds",
            "1",
        ])
        .args([
            "--nats-url",
            &format!("nats://127.0.0.1:{SILENT_NATS_PORT}"),
        ])
        .args(["--resync-seconds", "2"])
        .args(["--metrics-addr", &format!("{}:{METRICS_PORT}", node.ips.1)])
        .arg("--node-dir")
        .arg(node_dir)
        .arg("--init-bin")
        .arg(init_bin())
        .env_remove("NATS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(agent_log(node_dir))
        .kill_on_drop(true);
    if let Some(token) = join_token {
        command.args(["--join-token", token]);
    }
    command.spawn().expect("starting an agent")
}

/// The agent's stderr, appended across its starts, quoted when the test fails.
fn agent_log(node_dir: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(node_dir.join("agent.stderr"))
        .unwrap()
}

async fn node(up: &Up, name: &str) -> Value {
    let nodes = up.cli(&["nodes", "--json"]).await.json();
    nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
        .unwrap()
}

async fn healthy_instance(up: &Up, app: &[&str]) -> Value {
    until("a healthy instance", || healthy_instance_now(up, app)).await
}

/// The app's only running instance, when it is healthy.
async fn healthy_instance_now(up: &Up, app: &[&str]) -> Option<Value> {
    let running = up.running_instances(app).await?;
    (running.len() == 1 && running[0]["observed_state"] == "healthy").then(|| running[0].clone())
}

/// Waits for `check`; on timeout fails quoting every agent's log.
async fn until<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    if let Some(value) = poll_until(WITHIN, check).await {
        return value;
    }
    let logs: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("agent.stderr"))
        .filter_map(|p| {
            let log = std::fs::read_to_string(&p).ok()?;
            Some(format!("--- {} ---\n{log}", p.display()))
        })
        .collect();
    panic!("{what}: not within {WITHIN:?}\n{}", logs.join("\n"));
}

/// `GET path` on `addr`; the whole answer.
async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

/// VM cgroups of instances that have a directory in `node_dir`.
fn vms_of(node_dir: &std::path::Path) -> Vec<Cgroup> {
    Cgroup::ours()
        .into_iter()
        .filter(|(name, cg)| {
            node_dir.join("instances").join(name).is_dir() && !cg.pids().is_empty()
        })
        .map(|(_, cg)| cg)
        .collect()
}

fn kill_vms_of(node_dir: &std::path::Path) {
    for cg in vms_of(node_dir) {
        for pid in cg.pids() {
            zeitwork_e2e::signal(pid, rustix::process::Signal::KILL);
        }
    }
}

/// A network namespace with a veth pair to the host; removed on drop.
struct Netns(&'static Node, std::process::Child);

impl Netns {
    async fn create(node: &'static Node) -> Netns {
        Netns::remove(node);
        let (host_ip, node_ip) = (format!("{}/30", node.ips.0), format!("{}/30", node.ips.1));
        let steps: [&[&str]; 7] = [
            &["netns", "add", node.netns],
            &[
                "link",
                "add",
                node.veth.0,
                "type",
                "veth",
                "peer",
                "name",
                node.veth.1,
                "netns",
                node.netns,
            ],
            &["addr", "add", &host_ip, "dev", node.veth.0],
            &["link", "set", node.veth.0, "up"],
            &[
                "-n",
                node.netns,
                "addr",
                "add",
                &node_ip,
                "dev",
                node.veth.1,
            ],
            &["-n", node.netns, "link", "set", node.veth.1, "up"],
            &["-n", node.netns, "link", "set", "lo", "up"],
        ];
        for args in steps {
            let out = Command::new("ip").args(args).output().await.unwrap();
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let nats = std::process::Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", node.netns))
            .arg(
                ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
                    .into_iter()
                    .find(|p| std::path::Path::new(p).exists())
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
