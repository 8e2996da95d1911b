//! What a guest can reach, for real (as root, which CI is: these tests fail rather than
//! skip without it). Each test builds its own network namespaces, named after the test and
//! this process, and deletes them however it ends:
//!
//! - `host`: where [`Firewall::install`] puts the table, as on a node. Its `zw3` is the
//!   host end of instance 3's link, addressed as the agent addresses it (the /31 and /127,
//!   the guest's neighbour entries pinned to its MAC).
//! - `guest`: a STAND-IN for the VM behind `zw3` (a veth, not a tap: no VM boots here),
//!   with the instance's addresses and MAC, routed through the host, listening on its app
//!   port and on one more port.
//! - `lan`: the host's LAN behind its `lan0`, with listeners at a private address
//!   (10.99.0.2:5432 and :5433, as a database would), at the cloud metadata address
//!   (169.254.169.254:80), at a ULA (`[fd99::2]:5432`) and at DNS (10.99.0.2:53).
//! - `wan`: "the internet" behind the host's `wan0`: 203.0.113.2 and 2001:db8:1::2
//!   (documentation ranges, which the firewall treats as public).
//!
//! Every refusal is checked against a control: the same probe succeeds once the table is
//! gone, so it was the firewall that said no, not a broken wire.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zeitwork_net::{
    AppPort, EdgeNetwork, EgressAllow, Firewall, InstanceAddrs, NodePrefix, link_name,
};

#[path = "support/lab.rs"]
mod lab;
use lab::{Namespaces, block_on, guest_link, in_netns, ip};

const PREFIX: &str = "fd7a:7a77:0:e9::/64";
const INDEX: u32 = 3;
/// The instance's app port, and a port it listens on that the host was not given.
const APP: u16 = 8080;
const OTHER: u16 = 9090;

const HOST_LAN: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const LAN: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const METADATA: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
const HOST_LAN6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1);
const LAN6: Ipv6Addr = Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 2);
/// The metadata address in NAT64's words (`64:ff9b::/96`, RFC 6052).
const METADATA64: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xa9fe, 0xa9fe);
const HOST_WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const HOST_WAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const WAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
/// Where datagrams are counted.
const SINK: u16 = 9999;

/// Long enough for a connection on veths; what the firewall drops times out after it.
const PROBE: Duration = Duration::from_secs(2);

/// The four namespaces of one test, wired up as the module docs say.
struct Lab {
    host: String,
    guest: String,
    lan: String,
    wan: String,
    addrs: InstanceAddrs,
    prefix: NodePrefix,
    _namespaces: Namespaces,
}

impl Lab {
    fn new(test: &str) -> Lab {
        assert!(
            rustix::process::geteuid().is_root(),
            "these tests build network namespaces and nftables tables: run them as root"
        );
        let name = |role: &str| format!("zweg-{}-{test}-{role}", std::process::id());
        let (host, guest, lan, wan) = (name("h"), name("g"), name("l"), name("w"));
        let namespaces = Namespaces(vec![host.clone(), guest.clone(), lan.clone(), wan.clone()]);
        let prefix = NodePrefix::parse(PREFIX).unwrap();
        let addrs = InstanceAddrs::for_index(prefix, INDEX).unwrap();
        for ns in [&host, &guest, &lan, &wan] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let (h, g) = (host.as_str(), guest.as_str());

        guest_link(h, g, addrs, INDEX);

        // The LAN and the internet; both route the instance pools back to the host, so
        // that only the firewall keeps them from a guest.
        let pool6 = prefix.to_cidr();
        for (ns, dev, (host4, far4), (host6, far6)) in [
            (&lan, "lan0", (HOST_LAN, LAN), (HOST_LAN6, LAN6)),
            (&wan, "wan0", (HOST_WAN, WAN), (HOST_WAN6, WAN6)),
        ] {
            ip(&[
                "-n", h, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ]);
            ip(&["-n", h, "addr", "add", &format!("{host4}/24"), "dev", dev]);
            let a6 = format!("{host6}/64");
            ip(&["-n", h, "-6", "addr", "add", &a6, "dev", dev, "nodad"]);
            ip(&["-n", h, "link", "set", dev, "up"]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{far4}/24"),
                "dev",
                "eth0",
            ]);
            let a6 = format!("{far6}/64");
            ip(&["-n", ns, "-6", "addr", "add", &a6, "dev", "eth0", "nodad"]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
            ip(&[
                "-n",
                ns,
                "route",
                "add",
                "172.31.0.0/16",
                "via",
                &host4.to_string(),
            ]);
            let via6 = host6.to_string();
            ip(&["-n", ns, "-6", "route", "add", &pool6, "via", &via6]);
        }
        // The metadata service sits on the LAN, as a cloud's does on the node's link.
        let md = format!("{METADATA}/32");
        ip(&["-n", &lan, "addr", "add", &md, "dev", "eth0"]);
        ip(&["-n", h, "route", "add", &md, "via", &LAN.to_string()]);
        // A NAT64 gateway on the internet side that would translate to it.
        let md64 = format!("{METADATA64}/128");
        ip(&[
            "-n",
            &wan,
            "-6",
            "addr",
            "add",
            &md64,
            "dev",
            "eth0",
            "nodad",
            "preferred_lft",
            "0",
        ]);
        let via6 = WAN6.to_string();
        ip(&["-n", h, "-6", "route", "add", "64:ff9b::/96", "via", &via6]);

        let lab = Lab {
            host,
            guest,
            lan,
            wan,
            addrs,
            prefix,
            _namespaces: namespaces,
        };
        for port in [5432, 5433, 53] {
            lab.listen(&lab.lan, (LAN, port).into());
        }
        lab.listen(&lab.lan, (LAN6, 5432).into());
        lab.listen(&lab.lan, (METADATA, 80).into());
        lab.listen(&lab.wan, (WAN, 80).into());
        lab.listen(&lab.wan, (WAN6, 80).into());
        lab.listen(&lab.wan, (METADATA64, 80).into());
        for port in [APP, OTHER] {
            lab.listen(&lab.guest, (addrs.guest4, port).into());
            lab.listen(&lab.guest, (addrs.guest6, port).into());
        }
        // The host's own ports: its end of the link and its LAN address.
        lab.listen(&lab.host, (addrs.host4, 7000).into());
        lab.listen(&lab.host, (HOST_LAN, 7000).into());
        lab
    }

    /// The firewall a node with these allowed destinations would have (DNS to no resolver
    /// unless `resolvers` says so, whatever this machine's `/etc/resolv.conf` holds).
    fn firewall(&self, allow: &[&str], resolvers: &[IpAddr]) -> Firewall {
        let allow = allow.iter().map(|e| e.parse::<EgressAllow>().unwrap());
        Firewall::new(self.prefix)
            .with_egress_allow(allow.collect())
            .with_resolvers(resolvers.to_vec())
    }

    /// Installs `firewall` in the host namespace, with the instance's app port open.
    fn install(&self, firewall: &Firewall) {
        let port = AppPort {
            addrs: self.addrs,
            port: APP,
        };
        in_netns(&self.host, || block_on(firewall.install(&[port]))).unwrap();
    }

    fn uninstall(&self, firewall: &Firewall) {
        in_netns(&self.host, || block_on(firewall.uninstall())).unwrap();
    }

    /// A TCP listener in `ns` that tells each peer which address it came from.
    fn listen(&self, ns: &str, at: SocketAddr) {
        let listener = in_netns(ns, || TcpListener::bind(at))
            .unwrap_or_else(|e| panic!("listening at {at} in {ns}: {e}"));
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                if let Ok(peer) = conn.peer_addr() {
                    let _ = conn.write_all(format!("{at} sees {}", peer.ip()).as_bytes());
                }
            }
        });
    }

    /// Connects from `ns` to `to` and returns the listener's greeting.
    fn connect(&self, ns: &str, to: SocketAddr) -> std::io::Result<String> {
        in_netns(ns, || {
            let mut conn = TcpStream::connect_timeout(&to, PROBE)?;
            conn.set_read_timeout(Some(PROBE))?;
            let mut answer = String::new();
            conn.read_to_string(&mut answer)?;
            Ok(answer)
        })
    }

    /// `to` answers a connection from `ns`, which it sees coming from `seen_from`.
    fn reaches(&self, ns: &str, to: SocketAddr, seen_from: IpAddr) {
        let who = self.who(ns);
        match self.connect(ns, to) {
            Ok(answer) => assert_eq!(answer, format!("{to} sees {seen_from}"), "{who} → {to}"),
            Err(e) => panic!("{who} must reach {to}: {e}"),
        }
    }

    /// A connection from `ns` to `to` fails: at once when the firewall rejects it, after
    /// [`PROBE`] when it drops it; never refused by `to` itself (it listens).
    fn cannot_reach(&self, ns: &str, to: SocketAddr) {
        use std::io::ErrorKind::{HostUnreachable, PermissionDenied, TimedOut};
        let who = self.who(ns);
        match self.connect(ns, to) {
            Ok(answer) => panic!("{who} must not reach {to}, yet it answered {answer:?}"),
            Err(e) => assert!(
                matches!(e.kind(), HostUnreachable | PermissionDenied | TimedOut),
                "{who} → {to}: {e} ({:?})",
                e.kind()
            ),
        }
    }

    fn who(&self, ns: &str) -> &'static str {
        match ns {
            n if n == self.host => "the host",
            n if n == self.guest => "the guest",
            n if n == self.lan => "the LAN",
            _ => "the internet",
        }
    }

    /// A UDP socket in `ns` at `at` that records each datagram's text.
    fn sink(&self, ns: &str, at: SocketAddr) -> Arc<Mutex<Vec<String>>> {
        let socket = in_netns(ns, || UdpSocket::bind(at)).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let record = got.clone();
        std::thread::spawn(move || {
            let mut buf = [0; 512];
            while let Ok((n, _)) = socket.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                record.lock().unwrap().push(text);
            }
        });
        got
    }

    /// Makes the guest able to send from any of `sources`, as a hostile guest kernel could:
    /// they become its own addresses, and since one of them may be the host's end of the
    /// link (its gateway), it sends to the LAN and the internet straight to the host's MAC
    /// instead of through the gateway.
    fn spoofing(&self, sources: &[IpAddr]) {
        let (h, g) = (self.host.as_str(), self.guest.as_str());
        let host_mac = "02:7a:77:ff:ff:fe";
        ip(&[
            "-n",
            h,
            "link",
            "set",
            &link_name(INDEX),
            "address",
            host_mac,
        ]);
        for from in sources {
            match from {
                IpAddr::V4(a) => ip(&["-n", g, "addr", "add", &format!("{a}/32"), "dev", "eth0"]),
                IpAddr::V6(a) => {
                    let a = format!("{a}/128");
                    ip(&["-n", g, "-6", "addr", "add", &a, "dev", "eth0", "nodad"]);
                }
            }
        }
        for family in ["-4", "-6"] {
            ip(&[
                "-n", g, family, "route", "replace", "default", "dev", "eth0",
            ]);
        }
        for to in [IpAddr::from(LAN), WAN.into(), LAN6.into(), WAN6.into()] {
            let to = to.to_string();
            ip(&[
                "-n",
                g,
                "neigh",
                "replace",
                &to,
                "lladdr",
                host_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ]);
        }
    }

    /// Sends one datagram from the guest with source address `from`, its text naming
    /// `from`.
    fn send_from(&self, from: IpAddr, to: SocketAddr) {
        in_netns(&self.guest, || {
            let socket = UdpSocket::bind((from, 0))
                .unwrap_or_else(|e| panic!("binding the guest's socket to {from}: {e}"));
            socket
                .send_to(from.to_string().as_bytes(), to)
                .unwrap_or_else(|e| panic!("sending from {from} to {to}: {e}"));
        });
    }
}

/// A guest reaches the internet, over IPv4 and IPv6, masqueraded behind the host; not the
/// host's LAN (a database's port, DNS there unless it is the host's resolver), a ULA, the
/// cloud metadata address, nor the host's own ports, which answer the LAN.
#[test]
fn a_guest_reaches_the_internet_and_nothing_private() {
    let lab = Lab::new("deny");
    let (g, h) = (lab.guest.as_str(), lab.host.as_str());
    let firewall = lab.firewall(&[], &[]);
    lab.install(&firewall);

    lab.reaches(g, (WAN, 80).into(), HOST_WAN.into());
    lab.reaches(g, (WAN6, 80).into(), HOST_WAN6.into());
    let private: [SocketAddr; 6] = [
        (LAN, 5432).into(),
        (LAN, 53).into(),
        (METADATA, 80).into(),
        (LAN6, 5432).into(),
        (lab.addrs.host4, 7000).into(),
        (HOST_LAN, 7000).into(),
    ];
    for to in private {
        lab.cannot_reach(g, to);
    }
    // The metadata service refuses in the firewall's words, at once.
    let e = lab.connect(g, (METADATA, 80).into()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::HostUnreachable, "{e}");
    // Nor through a NAT64 gateway.
    let e = lab.connect(g, (METADATA64, 80).into()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");

    // The host reaches all of them (its own table does not stand in its way)…
    for to in &private[..4] {
        let from = match to.ip() {
            IpAddr::V4(_) => IpAddr::from(HOST_LAN),
            IpAddr::V6(_) => HOST_LAN6.into(),
        };
        lab.reaches(h, *to, from);
    }
    // …and without the table, so does the guest: it was the firewall.
    lab.uninstall(&firewall);
    for to in &private[..4] {
        let from = match to.ip() {
            IpAddr::V4(_) => IpAddr::from(lab.addrs.guest4),
            IpAddr::V6(_) => lab.addrs.guest6.into(),
        };
        lab.reaches(g, *to, from);
    }
    lab.reaches(g, (HOST_LAN, 7000).into(), lab.addrs.guest4.into());
    lab.reaches(g, (METADATA64, 80).into(), lab.addrs.guest6.into());
}

/// A packet from the guest link must come from the guest's own address: one from another
/// instance's, the host's end of the link, a LAN or a public address never leaves the
/// node, not even to a destination the guest may reach (here an allowed LAN port and the
/// internet).
#[test]
fn spoofed_sources_never_leave_the_node() {
    let lab = Lab::new("spoof");
    let firewall = lab.firewall(&["10.99.0.2:9999", "[fd99::2]:9999"], &[]);
    lab.install(&firewall);
    let sinks = [
        (
            SocketAddr::from((LAN, SINK)),
            lab.sink(&lab.lan, (LAN, SINK).into()),
        ),
        ((LAN6, SINK).into(), lab.sink(&lab.lan, (LAN6, SINK).into())),
        ((WAN, SINK).into(), lab.sink(&lab.wan, (WAN, SINK).into())),
        ((WAN6, SINK).into(), lab.sink(&lab.wan, (WAN6, SINK).into())),
    ];
    let other = InstanceAddrs::for_index(lab.prefix, INDEX + 1).unwrap();
    let spoofed4: [IpAddr; 4] = [
        other.guest4.into(),
        lab.addrs.host4.into(),
        Ipv4Addr::new(10, 99, 0, 77).into(),
        Ipv4Addr::new(198, 51, 100, 7).into(),
    ];
    let spoofed6: [IpAddr; 4] = [
        other.guest6.into(),
        lab.addrs.host6.into(),
        Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0x77).into(),
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x99).into(),
    ];
    lab.spoofing(&[spoofed4, spoofed6].concat());
    let send_all = || {
        for (to, _) in &sinks {
            let own = match to.ip() {
                IpAddr::V4(_) => IpAddr::from(lab.addrs.guest4),
                IpAddr::V6(_) => lab.addrs.guest6.into(),
            };
            lab.send_from(own, *to);
            let family = if to.is_ipv4() { &spoofed4 } else { &spoofed6 };
            for from in family {
                lab.send_from(*from, *to);
            }
        }
    };
    let settle = || std::thread::sleep(Duration::from_millis(500));
    send_all();
    settle();
    for (to, got) in &sinks {
        let own = if to.is_ipv4() {
            lab.addrs.guest4.to_string()
        } else {
            lab.addrs.guest6.to_string()
        };
        assert_eq!(
            *got.lock().unwrap(),
            [own],
            "at {to}: only the guest's own address"
        );
        got.lock().unwrap().clear();
    }
    // The control: without the table, the same datagrams get through, all but the one
    // from the host's own end of the link, which the kernel drops itself (as a martian)
    // for IPv4 only. So it is the table that stops them.
    lab.uninstall(&firewall);
    send_all();
    settle();
    for (to, got) in &sinks {
        let (own, spoofed): (IpAddr, Vec<IpAddr>) = match to.ip() {
            IpAddr::V4(_) => {
                let passing = spoofed4
                    .iter()
                    .filter(|a| **a != IpAddr::from(lab.addrs.host4));
                (lab.addrs.guest4.into(), passing.copied().collect())
            }
            IpAddr::V6(_) => (lab.addrs.guest6.into(), spoofed6.to_vec()),
        };
        let mut expected: Vec<String> = [own]
            .iter()
            .chain(&spoofed)
            .map(IpAddr::to_string)
            .collect();
        let mut got = got.lock().unwrap().clone();
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "at {to}, without the table");
    }
}

/// The operator's allow list opens exactly its entries, TCP and UDP to the port given
/// (every port without one), and DNS reaches the resolvers; the rest stays closed.
#[test]
fn allowed_destinations_and_resolvers_are_reachable() {
    let lab = Lab::new("allow");
    let g = lab.guest.as_str();
    let (own4, own6) = (IpAddr::from(HOST_LAN), IpAddr::from(HOST_LAN6));
    let firewall = lab.firewall(&["10.99.0.2:5432", "[fd99::2]:5432"], &[LAN.into()]);
    lab.install(&firewall);
    lab.reaches(g, (LAN, 5432).into(), own4);
    lab.reaches(g, (LAN6, 5432).into(), own6);
    lab.reaches(g, (LAN, 53).into(), own4);
    lab.cannot_reach(g, (LAN, 5433).into());
    lab.cannot_reach(g, (METADATA, 80).into());
    lab.cannot_reach(g, (HOST_LAN, 7000).into());
    lab.reaches(g, (WAN, 80).into(), HOST_WAN.into());

    // A whole network, every port; the host's own address on it stays closed.
    let firewall = lab.firewall(&["10.99.0.0/24"], &[]);
    lab.install(&firewall);
    lab.reaches(g, (LAN, 5433).into(), own4);
    lab.reaches(g, (LAN, 53).into(), own4);
    lab.cannot_reach(g, (HOST_LAN, 7000).into());
    lab.cannot_reach(g, (LAN6, 5432).into());
    lab.cannot_reach(g, (METADATA, 80).into());
}

/// Nothing reaches a guest but the host, and the host only on the app port: not the LAN,
/// not the internet, though both have a route to it.
#[test]
fn only_the_host_reaches_a_guest_and_only_on_its_app_port() {
    let lab = Lab::new("ingress");
    let (h, l, w) = (lab.host.as_str(), lab.lan.as_str(), lab.wan.as_str());
    let firewall = lab.firewall(&[], &[]);
    lab.install(&firewall);
    let (g4, g6) = (
        IpAddr::from(lab.addrs.guest4),
        IpAddr::from(lab.addrs.guest6),
    );
    lab.reaches(h, (g4, APP).into(), lab.addrs.host4.into());
    lab.reaches(h, (g6, APP).into(), lab.addrs.host6.into());
    lab.cannot_reach(h, (g4, OTHER).into());
    lab.cannot_reach(h, (g6, OTHER).into());
    for ns in [l, w] {
        for to in [g4, g6] {
            lab.cannot_reach(ns, (to, APP).into());
        }
    }
    // The control: without the table, the LAN and the internet get in.
    lab.uninstall(&firewall);
    lab.reaches(l, (g4, APP).into(), LAN.into());
    lab.reaches(w, (g6, APP).into(), WAN6.into());
}

/// An edge on another host, connecting from a network the operator named
/// ([`EdgeNetwork`]), reaches a guest at its IPv6 address on its app port only, and the
/// guest answers it; the internet, named by nobody, still does not get in.
#[test]
fn a_named_edge_network_reaches_app_ports_only() {
    let lab = Lab::new("edges");
    let (l, w) = (lab.lan.as_str(), lab.wan.as_str());
    let edges = vec![format!("{LAN6}").parse::<EdgeNetwork>().unwrap()];
    let firewall = lab.firewall(&[], &[]).with_edge_networks(edges);
    lab.install(&firewall);
    let (g4, g6) = (
        IpAddr::from(lab.addrs.guest4),
        IpAddr::from(lab.addrs.guest6),
    );
    lab.reaches(l, (g6, APP).into(), LAN6.into());
    lab.cannot_reach(l, (g6, OTHER).into());
    lab.cannot_reach(l, (g4, APP).into());
    lab.cannot_reach(w, (g6, APP).into());
}

/// A connection from the host to a pool address whose link is gone (a VM that died) is
/// refused at once, not left to leave by the default route into silence until a proxy's
/// connect timeout: the edge then tries another instance at once.
#[test]
fn the_host_is_refused_at_once_by_an_instance_that_is_gone() {
    let lab = Lab::new("gone");
    let h = lab.host.as_str();
    // The node's default route leads to the internet side, which drops what it gets.
    ip(&["-n", h, "route", "add", "default", "via", &WAN.to_string()]);
    let via6 = WAN6.to_string();
    ip(&["-n", h, "-6", "route", "add", "default", "via", &via6]);
    let gone = InstanceAddrs::for_index(lab.prefix, INDEX + 40).unwrap();
    let targets = [IpAddr::from(gone.guest4), IpAddr::from(gone.guest6)];
    // The control: without the table, the connection meets silence.
    for to in targets {
        let e = lab.connect(h, (to, APP).into()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{to}: {e}");
    }
    let firewall = lab.firewall(&[], &[]);
    lab.install(&firewall);
    for to in targets {
        let e = lab.connect(h, (to, APP).into()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{to}: {e}");
    }
    // The live instance is still reached on its app port.
    let g4 = IpAddr::from(lab.addrs.guest4);
    lab.reaches(h, (g4, APP).into(), lab.addrs.host4.into());
}
