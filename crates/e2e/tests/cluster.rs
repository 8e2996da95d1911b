//! A cluster of two regions on one machine: three nodes, each `zeitwork server agent` in
//! a network namespace of its own ([`zeitwork_e2e::nodes`]), joined by the WireGuard
//! overlay they set up themselves; an edge per region; `zeitwork server dns` answering
//! per client subnet. The control plane is a `zeitwork up` on the host; the nodes reach
//! its API, and their edges its Postgres and NATS, through `zeitwork server lb` relays on
//! the host (its Postgres and NATS listen on loopback only).
//!
//! - eu-1: node `eu-1a` (drained: it hosts eu-1's edge, no instances) and `eu-1b` (the
//!   instance); us-1: node `us-1a` (its edge and its instance).
//! - The host forwards nothing between nodes but WireGuard's UDP: a node reaches another
//!   only through the overlay (checked both ways), and eu-1's edge reaches eu-1b's
//!   instance through it.
//! - The app runs in both regions; each region's edge serves its own region's instance;
//!   `dig` with a client subnet of each region gets that region's edge.
//! - us-1 dies (its agent, VM, WireGuard and edge killed at once): DNS withdraws it, its
//!   clients get eu-1, which serves them; then us-1 comes back and gets its clients back.

mod tls {
    pub mod client;
}

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tls::client::TestCa;
use tokio::process::{Child, Command};
use zeitwork_e2e::nodes::{Netns, Node, NodeDir, ip, kill_vms_of, vms_of};
use zeitwork_e2e::{Up, zeitwork_bin};
use zeitwork_services::free_port;

const NODES: [Node; 3] = [
    Node {
        name: "eu-1a",
        netns: "zw-e2e-c1",
        veth: ("e2ec1-h", "e2ec1-n"),
        ips: ("10.214.0.1", "10.214.0.2"),
        ips6: ("fd00:e2f:0:1::1", "fd00:e2f:0:1::2"),
    },
    Node {
        name: "eu-1b",
        netns: "zw-e2e-c2",
        veth: ("e2ec2-h", "e2ec2-n"),
        ips: ("10.214.0.5", "10.214.0.6"),
        ips6: ("fd00:e2f:0:2::1", "fd00:e2f:0:2::2"),
    },
    Node {
        name: "us-1a",
        netns: "zw-e2e-c3",
        veth: ("e2ec3-h", "e2ec3-n"),
        ips: ("10.214.0.9", "10.214.0.10"),
        ips6: ("fd00:e2f:0:3::1", "fd00:e2f:0:3::2"),
    },
];
const REGIONS: [&str; 3] = ["eu-1", "eu-1", "us-1"];
const ZONES: [&str; 3] = ["a", "b", "a"];
const OVERLAY_PORT: &str = "51820";
/// Each agent's metrics, on every address of its node (the overlay's too).
const METRICS_PORT: u16 = 19102;
const EDGE_HTTP: u16 = 18081;
const EDGE_HTTPS: u16 = 18443;
const BASE: &str = "zeitwork.localhost";
const HOST: &str = "hello-acme.zeitwork.localhost";
const WITHIN: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_regions_over_the_overlay_with_geodns_survive_losing_one() {
    assert!(
        rustix::process::geteuid().is_root(),
        "cannot run: microVMs, network namespaces and nftables need root"
    );
    let _ = std::process::Command::new("nft")
        .args(["delete", "table", "inet", zeitwork_net::TABLE])
        .output();
    let mut _netns = Vec::new();
    for node in &NODES {
        _netns.push(Netns::create(node).await);
    }
    let _underlay = Underlay::only_wireguard().await;
    let data = tempfile::tempdir().unwrap();
    let dirs = [NodeDir::new(), NodeDir::new(), NodeDir::new()];
    let up = Up::start_with(data.path(), "0.0.0.0", &["--no-agent", "--no-example"]).await;
    let api_port = up.api().rsplit(':').next().unwrap().to_owned();
    up.login_as_admin().await;
    let relays = Relays::start(&up).await;

    // Enrollment: every node peers with the others over the overlay.
    let mut agents = Vec::new();
    let mut enrolled_last = Instant::now();
    for (i, dir) in dirs.iter().enumerate() {
        let join = up.cli(&["nodes", "join-token", "--json"]).await.success();
        let token = join.json()["token"].as_str().unwrap().to_owned();
        enrolled_last = Instant::now();
        agents.push(start_agent(i, &api_port, Some(&token), dir, &relays));
    }
    until(
        "every node's WireGuard handshaking with its two peers",
        || async {
            for i in 1..=3 {
                let out = Command::new("wg")
                    .args(["show", &format!("wg-e2e-c{i}"), "latest-handshakes"])
                    .output()
                    .await
                    .ok()?;
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let done = text.lines().filter(|l| !l.ends_with("\t0")).count();
                if done != 2 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    eprintln!(
        "last node enrolled → every pair of nodes handshaken: {:?}",
        enrolled_last.elapsed()
    );
    until(
        "every node ready and reporting its two peers reachable",
        || async {
            let nodes = up.cli(&["nodes", "--json"]).await.json();
            let all = nodes["nodes"].as_array()?;
            let meshed = all.iter().filter(|n| {
                n["state"] == "ready"
                    && n["overlay_peers"]
                        .as_array()
                        .is_some_and(|p| p.len() == 2 && p.iter().all(|p| p["reachable"] == true))
            });
            (meshed.count() == 3).then_some(())
        },
    )
    .await;
    eprintln!(
        "last node enrolled → every node reports every peer reachable: {:?} \
         (heartbeats every 1 s)",
        enrolled_last.elapsed()
    );
    // What an operator sees: each node's overlay address and its peers answering.
    let table = up.cli(&["nodes"]).await.success();
    assert_eq!(
        table.stdout.matches(" 2/2 peers").count(),
        3,
        "{}",
        table.stdout
    );
    let shown = up.cli(&["nodes", "show", NODES[2].name]).await.success();
    for peer in &NODES[..2] {
        assert!(
            shown.stdout.contains(&format!("{} (handshake", peer.name)),
            "{}",
            shown.stdout
        );
    }
    if std::env::var_os("ZW_CLUSTER_TRACE").is_some() {
        for dir in &dirs {
            let log = std::fs::read_to_string(dir.path().join("agent.stderr")).unwrap_or_default();
            for line in log.lines().filter(|l| {
                l.contains("enrolled") || l.contains("overlay") || l.contains("running")
            }) {
                eprintln!("{line}");
            }
        }
    }
    let overlay: Vec<String> = {
        let nodes = up.cli(&["nodes", "--json"]).await.json();
        NODES
            .iter()
            .map(|n| {
                let listed = nodes["nodes"].as_array().unwrap().iter();
                let node = listed.clone().find(|l| l["name"] == n.name).unwrap();
                node["overlay_address"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    only_through_the_overlay(&overlay).await;

    // The app, in both regions; eu-1a hosts eu-1's edge and no instance.
    up.cli(&["nodes", "drain", NODES[0].name]).await.success();
    deploy(&up, &dirs).await;
    let instances = until("an instance healthy in each region", || async {
        let running = up.running_instances(&APP).await?;
        let healthy: Vec<Value> = running
            .into_iter()
            .filter(|i| i["observed_state"] == "healthy")
            .collect();
        (healthy.len() == 2).then_some(healthy)
    })
    .await;
    let on = |node: &str| -> String {
        let i = instances.iter().find(|i| i["node"] == node);
        let i = i.unwrap_or_else(|| panic!("no instance on {node}: {instances:#?}"));
        i["id"].as_str().unwrap().to_owned()
    };
    let (eu_instance, us_instance) = (on(NODES[1].name), on(NODES[2].name));

    // An edge per region, on the nodes' namespaces (eu-1's crosses the overlay).
    let ca = TestCa::new();
    let root = import_wildcard(&up, &ca, data.path()).await;
    let root_pem = ca.pem();
    let eu_edge = start_edge(&up, 0, &relays, data.path());
    let mut us_edge = start_edge(&up, 2, &relays, data.path());
    served_by(0, Some(&eu_instance), &root_pem, data.path()).await;
    served_by(2, Some(&us_instance), &root_pem, data.path()).await;

    // DNS per client subnet.
    for (region, node) in [("eu-1", 0), ("us-1", 2)] {
        up.admin_cli(&[
            "regions",
            "set",
            region,
            "--address",
            NODES[node].ips.1,
            "--client-network",
            client_network(region),
        ])
        .await
        .success();
    }
    let dns_port = free_port();
    let _dns = start_dns(&up, dns_port, &root, data.path());
    answers(dns_port, "us-1", NODES[2].ips.1).await;
    answers(dns_port, "eu-1", NODES[0].ips.1).await;

    // us-1 dies at once: agent, VM, WireGuard, edge.
    agents[2].kill().await.unwrap();
    us_edge.kill().await.unwrap();
    kill_vms_of(dirs[2].path());
    kill_namespace(NODES[2].netns).await;
    let lost = Instant::now();
    until("us-1's VM dead", || async {
        vms_of(dirs[2].path()).is_empty().then_some(())
    })
    .await;
    answers(dns_port, "us-1", NODES[0].ips.1).await;
    eprintln!("us-1 withdrawn from DNS {:?} after it died", lost.elapsed());
    // Its clients now reach eu-1's edge, which serves them from eu-1's instance.
    served_by(0, Some(&eu_instance), &root_pem, data.path()).await;

    // us-1 comes back: its agent restarts the instance, its edge returns, DNS follows.
    let back = Instant::now();
    agents[2] = start_agent(2, &api_port, None, &dirs[2], &relays);
    us_edge = start_edge(&up, 2, &relays, data.path());
    until("us-1's instance running again", || async {
        (!vms_of(dirs[2].path()).is_empty()).then_some(())
    })
    .await;
    answers(dns_port, "us-1", NODES[2].ips.1).await;
    // Its edge serves its own instance again (restarted, the same one).
    served_by(2, Some(&us_instance), &root_pem, data.path()).await;
    eprintln!(
        "us-1 serving again {:?} after its agent restarted",
        back.elapsed()
    );

    for mut child in agents.into_iter().chain([eu_edge, us_edge]) {
        let _ = child.kill().await;
    }
}

const APP: [&str; 4] = ["--org", "acme", "--app", "hello"];

fn client_network(region: &str) -> &'static str {
    if region == "eu-1" {
        "10.1.0.0/16"
    } else {
        "10.2.0.0/16"
    }
}

/// The host forwards between the nodes' veths only WireGuard's UDP.
struct Underlay;

impl Underlay {
    async fn only_wireguard() -> Underlay {
        for (key, value) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
        ] {
            let _ = std::fs::write(format!("/proc/sys/{}", key.replace('.', "/")), value);
        }
        let rules = format!(
            "table inet zw_e2e_cluster {{
  chain forward {{
    type filter hook forward priority -10; policy accept;
    iifname \"e2ec*\" oifname \"e2ec*\" udp dport {OVERLAY_PORT} accept
    iifname \"e2ec*\" oifname \"e2ec*\" drop
  }}
}}
"
        );
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", "zw_e2e_cluster"])
            .output();
        let mut nft = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        nft.stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(
            nft.wait().unwrap().success(),
            "nft refused the underlay rules"
        );
        // Each node routes the other nodes' wire addresses through the host.
        for node in &NODES {
            ip(&[
                "-n",
                node.netns,
                "route",
                "add",
                "10.214.0.0/24",
                "via",
                node.ips.0,
            ])
            .await;
        }
        Underlay
    }
}

impl Drop for Underlay {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", "zw_e2e_cluster"])
            .output();
    }
}

/// `zeitwork server lb`s on the host relaying the nodes to `up`'s Postgres and NATS.
struct Relays {
    postgres: u16,
    nats: u16,
    _children: Vec<Child>,
    database_url: String,
}

impl Relays {
    async fn start(up: &Up) -> Relays {
        let url = up.database_url();
        let pg_port: u16 = url
            .rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let nats_port: u16 = up.nats_url().rsplit(':').next().unwrap().parse().unwrap();
        let (postgres, nats) = (free_port(), free_port());
        let relay = |listen: u16, backend: u16| {
            Command::new(zeitwork_bin())
                .args(["server", "lb", "--listen", &format!("0.0.0.0:{listen}")])
                .args(["--backend", &format!("127.0.0.1:{backend}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("starting `zeitwork server lb`")
        };
        let children = vec![relay(postgres, pg_port), relay(nats, nats_port)];
        let password_and_host = url.split('@').next().unwrap().to_owned();
        Relays {
            postgres,
            nats,
            _children: children,
            database_url: password_and_host,
        }
    }

    /// Postgres as node `i` reaches it (through its host side).
    fn database_url(&self, i: usize) -> String {
        format!(
            "{}@{}:{}/zeitwork",
            self.database_url, NODES[i].ips.0, self.postgres
        )
    }

    fn nats_url(&self, i: usize) -> String {
        format!("nats://{}:{}", NODES[i].ips.0, self.nats)
    }
}

fn start_agent(
    i: usize,
    api_port: &str,
    token: Option<&str>,
    dir: &NodeDir,
    relays: &Relays,
) -> Child {
    let metrics = format!("[::]:{METRICS_PORT}");
    let nats = relays.nats_url(i);
    // One name per node: wireguard-go's control socket (/var/run/wireguard/NAME.sock) is
    // shared by every namespace of this machine.
    let interface = format!("wg-e2e-c{}", i + 1);
    NODES[i].start_agent(
        api_port,
        token,
        dir.path(),
        &[
            "--region",
            REGIONS[i],
            "--zone",
            ZONES[i],
            "--nats-url",
            &nats,
            "--overlay-port",
            OVERLAY_PORT,
            "--overlay-interface",
            &interface,
            "--metrics-addr",
            &metrics,
        ],
    )
}

/// From each node, every other node answers at its overlay address and not at its wire
/// address (the agent's metrics port listens on both).
async fn only_through_the_overlay(overlay: &[String]) {
    for (i, from) in NODES.iter().enumerate() {
        for (j, to) in NODES.iter().enumerate() {
            if i == j {
                continue;
            }
            let via_overlay = format!("[{}]:{METRICS_PORT}", overlay[j]);
            let answer = in_netns_get(from.netns, &via_overlay).await;
            assert!(
                answer == "200",
                "{} reaches {} over the overlay at {via_overlay}: {answer:?}",
                from.name,
                to.name
            );
            let direct = format!("{}:{METRICS_PORT}", to.ips.1);
            let answer = in_netns_get(from.netns, &direct).await;
            assert!(
                answer == "000",
                "{} must not reach {} at its wire address: {answer:?}",
                from.name,
                to.name
            );
        }
    }
}

/// `GET /metrics` from inside `netns` (curl, 3 s at most): the HTTP status, `000` when
/// nothing answered.
async fn in_netns_get(netns: &str, addr: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{netns}"))
        .args([
            "curl",
            "-s",
            "-g",
            "-m",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn deploy(up: &Up, dirs: &[NodeDir; 3]) {
    up.cli(&["orgs", "create", "acme"]).await.success();
    up.cli(&["--org", "acme", "apps", "create", "hello"])
        .await
        .success();
    let registry = zeitwork_services::Registry::throwaway().await.unwrap();
    let image = zeitwork_e2e::push_example(&registry).await;
    // The registry listens on the host's loopback: the image is put in the workers'
    // caches beforehand, as if they had run it before.
    for dir in &dirs[1..] {
        zeitwork_image::ImageStore::new(dir.path().join("images"))
            .unwrap()
            .rootfs(&image, &zeitwork_image::Auth::Anonymous)
            .await
            .unwrap();
    }
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello/zeitwork.toml"),
    )
    .unwrap();
    let manifest = example.replacen(
        "instances = 1\n",
        "instances = 1\nregions = [\"eu-1\", \"us-1\"]\n",
        1,
    );
    let path = dirs[0].path().join("zeitwork.toml");
    std::fs::write(&path, manifest).unwrap();
    let path = path.to_str().unwrap();
    up.cli(&[&APP[..], &["deploy", "--image", &image, "--manifest", path]].concat())
        .await
        .success();
}

/// Imports a wildcard for the base domain (what the edges serve and DNS checks); the
/// CA's PEM file.
async fn import_wildcard(up: &Up, ca: &TestCa, dir: &std::path::Path) -> String {
    let cert = ca.issue(&[&format!("*.{BASE}")]);
    let write = |name: &str, text: &str| {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let (chain, key) = (
        write("chain.pem", &cert.chain_pem),
        write("key.pem", &cert.key_pem),
    );
    up.admin_cli(&["certs", "import", "--cert", &chain, "--key", &key])
        .await
        .success();
    write("ca.pem", &ca.pem())
}

/// Node `i`'s region's edge, in its namespace, on its wire address.
fn start_edge(up: &Up, i: usize, relays: &Relays, dir: &std::path::Path) -> Child {
    let node = &NODES[i];
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("edge-{}.stderr", node.name)))
        .unwrap();
    Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{}", node.netns))
        .arg(zeitwork_bin())
        .args(["server", "edge", "--no-acme", "--region", REGIONS[i]])
        .args(["--listen", &format!("{}:{EDGE_HTTP}", node.ips.1)])
        .args(["--https-listen", &format!("{}:{EDGE_HTTPS}", node.ips.1)])
        .env("DATABASE_URL", relays.database_url(i))
        .env("NATS_URL", relays.nats_url(i))
        .env("ZEITWORK_CERT_KEY", up.key("cert.key"))
        .env("ZEITWORK_BASE_DOMAIN", BASE)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("starting `zeitwork server edge`")
}

/// Node `i`'s edge answers the app's hostname over HTTPS (the imported wildcard, `root`
/// trusted) from `instance` (any, when `None`); on timeout the edge's log is quoted.
async fn served_by(i: usize, instance: Option<&str>, root: &str, dir: &std::path::Path) {
    let addr = format!("{}:{EDGE_HTTPS}", NODES[i].ips.1);
    let expected = match instance {
        Some(id) => format!("(instance {id})"),
        None => "Hello from Zeitwork!".to_owned(),
    };
    let get = || tls::client::https_get(&addr, HOST, "/", root, &[b"http/1.1"]);
    let served = zeitwork_e2e::poll_until(WITHIN, || async {
        let answer = get().await.ok()?;
        answer.body.contains(&expected).then_some(())
    })
    .await;
    if served.is_none() {
        let log = dir.join(format!("edge-{}.stderr", NODES[i].name));
        let last = get().await;
        panic!(
            "{addr} never answered with {expected:?}; last: {last:?}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

fn start_dns(up: &Up, port: u16, root: &str, dir: &std::path::Path) -> Child {
    Command::new(zeitwork_bin())
        .args(["server", "dns", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--base-domain", BASE, "--default-region", "eu-1"])
        .args([
            "--check-port",
            &EDGE_HTTPS.to_string(),
            "--check-ca-bundle",
            root,
        ])
        .env("DATABASE_URL", up.database_url())
        .env("NATS_URL", up.nats_url())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dns.stderr")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("starting `zeitwork server dns`")
}

/// Waits until `dig` with a client subnet of `region` gets exactly `address`.
async fn answers(port: u16, region: &str, address: &str) {
    let subnet = client_network(region).replace("0.0/16", "7.0/24");
    until(
        &format!("DNS sending {region}'s clients to {address}"),
        || async {
            let out = Command::new("dig")
                .args(["@127.0.0.1", "-p", &port.to_string(), HOST, "A", "+short"])
                .args(["+tries=1", "+time=2", &format!("+subnet={subnet}")])
                .output()
                .await
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            (text.trim() == address).then_some(())
        },
    )
    .await;
}

/// Kills every process left in `netns` (its WireGuard), as a power cut would.
async fn kill_namespace(netns: &str) {
    let out = Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .await
        .unwrap();
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<u32>() {
            zeitwork_e2e::signal(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Waits for `check`; on timeout fails quoting every agent's log.
async fn until<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    zeitwork_e2e::nodes::until(what, WITHIN, check).await
}
