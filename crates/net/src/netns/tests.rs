//! The namespace plumbing for real (as root): links, namespaces, a firewall, TCP through
//! them. The "host" is itself a namespace of this test's, so the host's own firewall table
//! and links, which agents running beside the test use, stay untouched.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::{AppPort, Firewall, InstanceAddrs, Link, NodePrefix, Topology};

const PORT: u16 = 8080;

/// Named namespaces of this test, deleted however it ends.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.0.iter().rev() {
            if Path::new(NETNS_DIR).join(name).exists() {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "delete", name])
                    .status();
            }
        }
    }
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f` on a thread of its own in namespace `name`: the sockets it opens and the
/// processes it starts are there.
fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = Path::new(NETNS_DIR).join(name);
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsFd;
            let ns = std::fs::File::open(&path).unwrap();
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

/// A STAND-IN for the guest, since no guest boots under Firecracker on this host: the
/// namespace `guest`, whose `eth0` has the guest's MAC and addresses and is plugged into
/// the instance's bridge beside the tap (where the VMM would put the guest's NIC), with a
/// listener on the app port answering `hello from <guest>`.
fn stand_in_guest(link: &Link, guest: &str) {
    let ns = link.netns.as_ref().unwrap().name();
    ip(&["netns", "add", guest]);
    ip(&[
        "-n", ns, "link", "add", "gst0", "type", "veth", "peer", "name", "eth0", "address",
        &link.mac, "netns", guest,
    ]);
    ip(&["-n", ns, "link", "set", "gst0", "master", BRIDGE, "up"]);
    let (a4, a6) = (
        format!("{}/31", link.addrs.guest4),
        format!("{}/127", link.addrs.guest6),
    );
    ip(&["-n", guest, "addr", "add", &a4, "dev", "eth0"]);
    ip(&[
        "-n", guest, "-6", "addr", "add", &a6, "dev", "eth0", "nodad",
    ]);
    ip(&["-n", guest, "link", "set", "eth0", "up"]);
    let (h4, h6) = (link.addrs.host4.to_string(), link.addrs.host6.to_string());
    ip(&["-n", guest, "route", "add", "default", "via", &h4]);
    ip(&["-n", guest, "-6", "route", "add", "default", "via", &h6]);
    for addr in [IpAddr::from(link.addrs.guest4), link.addrs.guest6.into()] {
        let listener = in_netns(guest, || TcpListener::bind((addr, PORT)).unwrap());
        let hello = format!("hello from {guest}");
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let _ = conn.write_all(hello.as_bytes());
            }
        });
    }
}

/// Connects to `addr` on the app port from the calling thread's namespace and reads the
/// greeting.
fn get(addr: IpAddr, within: Duration) -> std::io::Result<String> {
    let mut conn = TcpStream::connect_timeout(&SocketAddr::new(addr, PORT), within)?;
    conn.set_read_timeout(Some(within))?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Two instances in namespaces of their own, each with a STAND-IN guest (see
/// [`stand_in_guest`]): the host reaches a guest at its /31 and /127 through its `zw<n>`
/// veth and the bridge; another instance's guest cannot (the firewall drops it: without
/// the table the same probe passes), nor can anything in another instance's namespace
/// (it has no address or route at all); removal, and the orphan clean-up after a crash,
/// leave no namespace and no link.
#[test]
fn stand_in_guest_in_its_netns_is_reached_by_the_host_and_by_no_other_instance() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: network namespaces, links and nftables need root");
        return;
    }
    let tag = std::process::id();
    let host = format!("zwtest-host-{tag}");
    let (guest_a, guest_b) = (format!("zwtest-ga-{tag}"), format!("zwtest-gb-{tag}"));
    let ids = [0, 1, 2].map(|i| format!("nstest-{tag}-{i}"));
    let netns = ids.clone().map(|id| Netns::for_instance(&id).unwrap());
    let mut names = vec![host.clone(), guest_a.clone(), guest_b.clone()];
    names.extend(netns.iter().map(|n| n.name().to_owned()));
    let _cleanup = Namespaces(names);
    ip(&["netns", "add", &host]);

    in_netns(&host, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let prefix = NodePrefix::parse("fd7a:7a77:0:9::/64").unwrap();
            let addrs = |i| InstanceAddrs::for_index(prefix, i).unwrap();
            let firewall = Firewall::new(prefix);
            let create = |i: u32| Link::create(i, addrs(i), Topology::OwnNetns, &ids[i as usize]);
            let (a, b) = (create(0).await.unwrap(), create(1).await.unwrap());
            assert_eq!(Link::list().await.unwrap(), ["zw0", "zw1"]);
            assert!(netns[0].exists() && netns[1].exists());
            stand_in_guest(&a, &guest_a);
            stand_in_guest(&b, &guest_b);
            let port = AppPort {
                addrs: a.addrs,
                port: PORT,
            };
            firewall.install(&[port]).await.unwrap();

            let hello = format!("hello from {guest_a}");
            let quick = Duration::from_secs(5);
            assert_eq!(get(a.addrs.guest4.into(), quick).unwrap(), hello);
            assert_eq!(get(a.addrs.guest6.into(), quick).unwrap(), hello);

            let probe = Duration::from_secs(1);
            let from_b = in_netns(&guest_b, || get(a.addrs.guest4.into(), probe));
            assert_eq!(
                from_b.as_ref().err().map(std::io::Error::kind),
                Some(std::io::ErrorKind::TimedOut),
                "b's guest must not reach a's: {from_b:?}"
            );
            let from_b_vmm = in_netns(b.netns.as_ref().unwrap().name(), || {
                get(a.addrs.guest4.into(), probe)
            });
            assert_eq!(
                from_b_vmm.as_ref().err().map(std::io::Error::kind),
                Some(std::io::ErrorKind::NetworkUnreachable),
                "b's namespace has no way out: {from_b_vmm:?}"
            );
            // The control: the same probe passes without the firewall, so it was the
            // firewall that stopped it, not a broken wire.
            firewall.uninstall().await.unwrap();
            let from_b = in_netns(&guest_b, || get(a.addrs.guest4.into(), quick));
            assert_eq!(from_b.unwrap(), hello);

            ip(&["netns", "delete", &guest_a]);
            ip(&["netns", "delete", &guest_b]);
            a.remove().await.unwrap();
            b.remove().await.unwrap();
            assert_eq!(Link::list().await.unwrap(), Vec::<String>::new());
            assert!(!netns[0].exists() && !netns[1].exists());

            // After a crash: created twice (the second time over the first's leftovers),
            // then found and removed as the agent's orphan clean-up does.
            create(2).await.unwrap();
            create(2).await.unwrap();
            assert_eq!(Link::remove_orphans(&[]).await.unwrap(), ["zw2"]);
            assert!(netns[2].remove().await.unwrap());
            assert!(!netns[2].remove().await.unwrap(), "already gone");
            assert_eq!(Link::list().await.unwrap(), Vec::<String>::new());
        });
    });
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(!netns.iter().any(|n| listed.contains(n.name())), "{listed}");
}
