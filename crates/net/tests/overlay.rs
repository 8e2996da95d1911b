//! The overlay between two nodes, for real (as root, which CI is): two network
//! namespaces play the nodes, joined only by a veth carrying their "public" IPv6
//! addresses; each brings up [`Overlay`] (kernel WireGuard where the host has it,
//! `wireguard-go` here) with a key it made itself, peers with the other, and a listener at
//! one node's overlay address answers the other. Then one node forgets the other: a
//! peer whose key a node does not know is never answered.

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use zeitwork_net::{AppPort, Firewall, InstanceAddrs, NodePrefix, Overlay, Peer, keeps_alive};

#[path = "support/lab.rs"]
mod lab;
use lab::{Namespaces, block_on, guest_link, in_netns, ip, wired_pair};

const A_WIRE: &str = "fd99:77::a";
const B_WIRE: &str = "fd99:77::b";
const A_PREFIX: &str = "fd7a:7a77:0:a1::/64";
const B_PREFIX: &str = "fd7a:7a77:0:b1::/64";
const A_OVERLAY: Ipv6Addr = Ipv6Addr::new(0xfd7a, 0x7a77, 0, 0xa1, 0, 0, 0, 1);
const B_OVERLAY: Ipv6Addr = Ipv6Addr::new(0xfd7a, 0x7a77, 0, 0xb1, 0, 0, 0, 1);
const PORT: u16 = 51820;

struct Node {
    ns: String,
    overlay: Overlay,
    key: String,
}

/// Takes the node's interface down however the test ends: a userspace implementation's
/// process would outlive the namespace otherwise.
impl Drop for Node {
    fn drop(&mut self) {
        let _ = block_on(self.overlay.down());
    }
}

fn node(ns: &str, dir: &std::path::Path, address: Ipv6Addr) -> Node {
    // One interface name per played node: userspace interfaces are found by name alone.
    // Not `zw…`, which the firewall takes for a guest's link.
    let link = ns.replacen("zwo", "wgo", 1);
    let overlay = Overlay::new(dir.join(format!("{ns}.key")), PORT, address)
        .named(&link)
        .in_netns(ns);
    let key = block_on(overlay.public_key()).expect("wg makes a key");
    block_on(overlay.up()).expect("the overlay comes up");
    Node {
        ns: ns.to_owned(),
        overlay,
        key,
    }
}

fn peer(me: &Node, of: &Node, wire: &str, prefix: &str) -> Peer {
    Peer {
        public_key: of.key.clone(),
        endpoint: Some(format!("[{wire}]:{PORT}")),
        allowed_ips: vec![prefix.to_owned()],
        keepalive: keeps_alive(&me.key, &of.key),
    }
}

/// Connects from `ns` to `to`; the listener answers with who it saw.
fn connect(ns: &str, to: SocketAddr) -> std::io::Result<String> {
    in_netns(ns, || {
        let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer)?;
        Ok(answer)
    })
}

/// Two nodes joined by a veth and nothing else, named after the test and this process.
struct Wire {
    a_ns: String,
    b_ns: String,
    tag: u32,
    _namespaces: Namespaces,
}

fn wire(test: &str) -> Wire {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test builds network namespaces: run it as root"
    );
    let tag = std::process::id() % 100_000;
    let (a_ns, b_ns) = (format!("zwo{test}a{tag}"), format!("zwo{test}b{tag}"));
    let (a_veth, b_veth) = (format!("wira{test}{tag}"), format!("wirb{test}{tag}"));
    let namespaces = wired_pair((&a_ns, &a_veth, A_WIRE), (&b_ns, &b_veth, B_WIRE));
    Wire {
        a_ns,
        b_ns,
        tag,
        _namespaces: namespaces,
    }
}

/// Peers the two nodes with each other.
fn peer_up(a: &Node, b: &Node) {
    block_on(a.overlay.set_peers(&[peer(a, b, B_WIRE, B_PREFIX)])).unwrap();
    block_on(b.overlay.set_peers(&[peer(b, a, A_WIRE, A_PREFIX)])).unwrap();
}

/// Connects from `ns` to `to` until it answers (the first handshake takes a moment).
fn connect_soon(ns: &str, to: SocketAddr) -> String {
    let started = Instant::now();
    loop {
        match connect(ns, to) {
            Ok(answer) => return answer,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{ns} must reach {to} over the overlay: {e}"),
        }
    }
}

/// Answers each connection at `at` (in `ns`) with who it saw.
fn listen(ns: &str, at: SocketAddr) {
    let listener = in_netns(ns, || TcpListener::bind(at))
        .unwrap_or_else(|e| panic!("listening at {at} in {ns}: {e}"));
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            if let Ok(peer) = conn.peer_addr() {
                let _ = conn.write_all(format!("seen {}", peer.ip()).as_bytes());
            }
        }
    });
}

#[test]
fn two_nodes_reach_each_other_only_over_the_overlay_with_the_keys_they_made() {
    let w = wire("k");
    let (a_ns, b_ns) = (w.a_ns.clone(), w.b_ns.clone());
    let dir = tempfile::tempdir().unwrap();
    let a = node(&a_ns, dir.path(), A_OVERLAY);
    let b = node(&b_ns, dir.path(), B_OVERLAY);

    // The private key stays in a file only root reads; the public one is 32 bytes.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join(format!("{a_ns}.key")))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the private key's mode");
    assert_eq!(a.key.len(), 44, "{}", a.key);
    assert_ne!(a.key, b.key);
    // A key is made once: asking again reads the same file.
    assert_eq!(block_on(a.overlay.public_key()).unwrap(), a.key);

    // B listens at its overlay address.
    let at = SocketAddr::from((B_OVERLAY, 8080));
    listen(&b.ns, at);
    // Before peering there is no way there.
    assert!(connect(&a.ns, at).is_err(), "no route before peering");

    peer_up(&a, &b);
    let answer = connect_soon(&a.ns, at);
    // Through the tunnel, from A's overlay address (not its wire address).
    assert_eq!(answer, format!("seen {A_OVERLAY}"));
    let seen = block_on(a.overlay.handshakes()).unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].public_key, b.key);
    assert!(
        seen[0].age_seconds.is_some_and(|age| age < 30),
        "a fresh handshake: {seen:?}"
    );

    // B forgets A: A's packets are no longer answered, and A's report shows it.
    block_on(b.overlay.set_peers(&[])).unwrap();
    assert!(block_on(b.overlay.handshakes()).unwrap().is_empty());
    assert!(
        connect(&a.ns, at).is_err(),
        "b must not answer a peer it does not know"
    );
}

#[test]
fn an_edge_on_one_node_reaches_an_instance_on_another_and_instances_reach_neither() {
    let w = wire("f");
    let (ga_ns, gb_ns) = (format!("zwogfa{}", w.tag), format!("zwogfb{}", w.tag));
    let _guests = Namespaces(vec![ga_ns.clone(), gb_ns.clone()]);
    for ns in [&ga_ns, &gb_ns] {
        ip(&["netns", "add", ns]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    // One instance behind each node, at index 0 of its node's /64, as the agent links it.
    let (a_prefix, b_prefix) = (
        NodePrefix::parse(A_PREFIX).unwrap(),
        NodePrefix::parse(B_PREFIX).unwrap(),
    );
    let (ga, gb) = (
        InstanceAddrs::for_index(a_prefix, 0).unwrap(),
        InstanceAddrs::for_index(b_prefix, 0).unwrap(),
    );
    guest_link(&w.a_ns, &ga_ns, ga, 0);
    guest_link(&w.b_ns, &gb_ns, gb, 0);
    // Each node's firewall, its instance's app port open, the other node as an edge.
    for (ns, prefix, addrs, other) in [
        (&w.a_ns, a_prefix, ga, B_OVERLAY),
        (&w.b_ns, b_prefix, gb, A_OVERLAY),
    ] {
        let firewall = Firewall::new(prefix).with_resolvers(vec![]);
        in_netns(ns, || {
            block_on(async {
                firewall.install(&[AppPort { addrs, port: 8080 }]).await?;
                firewall.set_overlay_edges(&[other]).await
            })
        })
        .unwrap_or_else(|e| panic!("the firewall in {ns}: {e}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let a = node(&w.a_ns, dir.path(), A_OVERLAY);
    let b = node(&w.b_ns, dir.path(), B_OVERLAY);
    peer_up(&a, &b);
    let (b_app, b_other) = (
        SocketAddr::from((gb.guest6, 8080)),
        SocketAddr::from((gb.guest6, 9090)),
    );
    listen(&gb_ns, b_app);
    listen(&gb_ns, b_other);
    listen(&b.ns, SocketAddr::from((B_OVERLAY, 7070)));

    // An edge on node A reaches B's instance on its app port, from A's overlay address
    // (the firewall lets it in only as one of the other nodes: without that, it fails).
    assert_eq!(connect_soon(&a.ns, b_app), format!("seen {A_OVERLAY}"));
    // Not on another port.
    assert!(connect(&a.ns, b_other).is_err(), "only the app port");
    // A's instance reaches neither B's instance nor B itself over the overlay.
    for to in [b_app, SocketAddr::from((B_OVERLAY, 7070))] {
        match connect(&ga_ns, to) {
            Ok(answer) => panic!("an instance on A reached {to}: {answer:?}"),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied
                        | std::io::ErrorKind::HostUnreachable
                        | std::io::ErrorKind::TimedOut
                ),
                "{to}: {e}"
            ),
        }
    }
    // The control: the same address still answers the edge, so the wire works and it was
    // the firewall that refused the instance.
    assert_eq!(connect(&a.ns, b_app).unwrap(), format!("seen {A_OVERLAY}"));
}
