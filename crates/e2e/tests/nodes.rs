//! Two nodes, one dies: its instance is placed on the other and goes healthy there; when
//! the dead node's agent comes back, it stops what is no longer its own.
//!
//! Nodes `a` and `b` run as [`zeitwork_e2e::nodes`] describes: each agent in a network
//! namespace of its own with a NATS server nobody publishes to, so every notification is
//! lost and only the periodic resync (every ~2 s here) converges them, and it must say so.

use std::time::Duration;

use serde_json::Value;
use zeitwork_e2e::Up;
use zeitwork_e2e::nodes::{Netns, Node, NodeDir, http_get, kill_vms_of, vms_of};

const NODES: [Node; 2] = [
    Node {
        name: "a",
        netns: "zw-e2e-a",
        veth: ("e2ea-h", "e2ea-n"),
        ips: ("10.213.0.1", "10.213.0.2"),
        ips6: ("fd00:e2e:0:a::1", "fd00:e2e:0:a::2"),
    },
    Node {
        name: "b",
        netns: "zw-e2e-b",
        veth: ("e2eb-h", "e2eb-n"),
        ips: ("10.213.0.5", "10.213.0.6"),
        ips6: ("fd00:e2e:0:b::1", "fd00:e2e:0:b::2"),
    },
];
/// Each agent's Prometheus endpoint, on its node address.
const METRICS_PORT: u16 = 19101;
const WITHIN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_instance_moves_to_the_other_node_and_goes_healthy() {
    if !rustix::process::geteuid().is_root() {
        panic!("cannot run: microVMs and network namespaces need root");
    }
    let mut _netns = Vec::new();
    for node in &NODES {
        _netns.push(Netns::create(node).await);
    }
    let data = tempfile::tempdir().unwrap();
    let dirs = [NodeDir::new(), NodeDir::new()];
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
        if n.listed(&up).await["id"] == first["node_id"] {
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
    let metrics_addr = format!("{}:{METRICS_PORT}", NODES[1 - holder].ips.1);
    let metrics = http_get(&metrics_addr, &metrics_addr, "/metrics")
        .await
        .expect("the survivor's metrics answer");
    let repairs: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("zeitwork_agent_drift_repairs_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no drift counter in:\n{metrics}"));
    assert!(repairs >= 1.0, "{metrics}");
    assert_eq!(dead.listed(&up).await["state"], "dead");

    // The dead node returns; nothing of the moved instance may run there.
    let mut back = start_agent(dead, &port, None, dead_dir);
    until("the dead node ready again", || async {
        (dead.listed(&up).await["state"] == "ready").then_some(())
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
    zeitwork_e2e::nodes::until(what, WITHIN, check).await
}

fn start_agent(
    node: &Node,
    port: &str,
    join_token: Option<&str>,
    dir: &std::path::Path,
) -> tokio::process::Child {
    let metrics = format!("{}:{METRICS_PORT}", node.ips.1);
    node.start_agent(port, join_token, dir, &["--metrics-addr", &metrics])
}
