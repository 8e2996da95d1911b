//! Two orgs, two nodes, one edge: org `acme`'s app runs on node `a`, org `umbrella`'s on
//! node `b`, both listening on port 8080 of their node's first VM. Each node numbers its VMs'
//! IPv4 addresses from the same private pool (both VMs are `172.31.0.1` on their node),
//! which is why instances are reached at their IPv6 addresses: each node has its own /64,
//! allocated by the control plane, so the one edge (`zeitwork up`'s, on the host) sends
//! each hostname to its own org's instance on the right node, never the other one.
//!
//! The nodes run as [`zeitwork_e2e::nodes`] describes. The host routes each node's
//! instance /64 through that node (as the cluster's network or overlay would), and each
//! agent lets the host's edge in with `--edge-networks`.

use std::time::Duration;

use zeitwork_e2e::Up;
use zeitwork_e2e::nodes::{Netns, Node, NodeDir, until};

const NODES: [Node; 2] = [
    Node {
        name: "a",
        netns: "zw-e2e-ta",
        veth: ("e2eta-h", "e2eta-n"),
        ips: ("10.213.1.1", "10.213.1.2"),
        ips6: ("fd00:e2e:1:a::1", "fd00:e2e:1:a::2"),
    },
    Node {
        name: "b",
        netns: "zw-e2e-tb",
        veth: ("e2etb-h", "e2etb-n"),
        ips: ("10.213.1.5", "10.213.1.6"),
        ips6: ("fd00:e2e:1:b::1", "fd00:e2e:1:b::2"),
    },
];
const WITHIN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_orgs_on_two_nodes_on_the_same_port_each_get_their_own_instance() {
    assert!(
        rustix::process::geteuid().is_root(),
        "cannot run: microVMs and network namespaces need root"
    );
    // The edge runs on this host, where an earlier `zeitwork up` with a local node may
    // have left its firewall table (a killed agent does not remove it). That platform
    // numbered its node's instances from the same first /64 as this one will number
    // node a's, and its table refuses the host's connections to that /64 as leading to
    // no instance of its own: remove it, as a host that stopped being that node would.
    let _ = std::process::Command::new("nft")
        .args(["delete", "table", "inet", zeitwork_net::TABLE])
        .output();
    let mut _netns = Vec::new();
    for node in &NODES {
        _netns.push(Netns::create(node).await);
    }
    let data = tempfile::tempdir().unwrap();
    let dirs = [NodeDir::new(), NodeDir::new()];
    let up = Up::start_with(data.path(), "0.0.0.0", &["--no-agent", "--no-example"]).await;
    let port = up.api().rsplit(':').next().unwrap().to_owned();
    up.login_as_admin().await;
    let mut agents = Vec::new();
    for (node, dir) in NODES.iter().zip(&dirs) {
        let join = up.cli(&["nodes", "join-token", "--json"]).await.success();
        let token = join.json()["token"].as_str().unwrap().to_owned();
        // The host's edge connects from its end of the node's veth.
        let edge = node.ips6.0;
        let extra = ["--edge-networks", edge];
        agents.push(node.start_agent(&port, Some(&token), dir.path(), &extra));
    }
    let mut prefixes = Vec::new();
    for node in &NODES {
        let listed = until("the node ready", WITHIN, || async {
            let n = node.listed(&up).await;
            (n["state"] == "ready").then_some(n)
        })
        .await;
        let prefix = listed["instance_prefix"].as_str().unwrap().to_owned();
        node.route_to(&prefix).await;
        prefixes.push(prefix);
    }
    assert_ne!(prefixes[0], prefixes[1], "each node has its own /64");

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

    // acme's app goes to node a, b being drained; then umbrella's to node b, the one
    // with more free memory (draining a instead would move acme's instance).
    up.cli(&["nodes", "drain", "b"]).await.success();
    let mut served = Vec::new();
    for (i, org) in ["acme", "umbrella"].into_iter().enumerate() {
        up.cli(&["orgs", "create", org]).await.success();
        let app = ["--org", org, "--app", "hello"];
        up.cli(&["--org", org, "apps", "create", "hello"])
            .await
            .success();
        let deployed = up
            .cli(&[&app[..], &["deploy", "--image", &image, "--json"]].concat())
            .await
            .success()
            .json();
        let host = deployed["url"]
            .as_str()
            .and_then(|u| u.strip_prefix("http://"))
            .and_then(|u| u.split([':', '/']).next())
            .unwrap_or_else(|| panic!("no url in {deployed}"))
            .to_owned();
        let instance = until("a healthy instance", WITHIN, || async {
            let running = up.running_instances(&app).await?;
            (running.len() == 1 && running[0]["observed_state"] == "healthy")
                .then(|| running[0].clone())
        })
        .await;
        assert_eq!(
            instance["node_id"],
            NODES[i].listed(&up).await["id"],
            "{org} runs on node {}",
            NODES[i].name
        );
        served.push((org, host, instance));
        up.cli(&["nodes", "undrain", "b"]).await.success();
    }

    // Same port, distinct addresses, each inside its own node's /64.
    let addresses: Vec<std::net::SocketAddr> = served
        .iter()
        .map(|(_, _, i)| i["address"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(addresses[0].port(), addresses[1].port(), "{addresses:?}");
    assert_ne!(addresses[0].ip(), addresses[1].ip());
    for (address, prefix) in addresses.iter().zip(&prefixes) {
        let net = prefix.trim_end_matches("::/64");
        assert!(
            address.ip().to_string().starts_with(net),
            "{address} is in {prefix}"
        );
    }

    // Through the one edge, each hostname reaches its own org's instance, repeatedly.
    let edge = up.edge_addr();
    for _ in 0..5 {
        for (org, host, instance) in &served {
            let id = instance["id"].as_str().unwrap();
            let body = until("the edge serves it", WITHIN, || get_via(&edge, host)).await;
            assert!(
                body.contains(id),
                "{org}'s hostname {host} answered by its instance {id}: {body}"
            );
        }
    }
    for mut agent in agents {
        let _ = agent.kill().await;
    }
}

/// `GET /` from `addr` with `Host: host`: the body on a 200, else None.
async fn get_via(addr: &str, host: &str) -> Option<String> {
    let answer = zeitwork_e2e::nodes::http_get(addr, host, "/").await?;
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Some(body.to_owned()),
        _ => None,
    }
}
