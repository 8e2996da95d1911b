//! Network namespaces for the tests that play hosts, guests and networks in them.

// Included by several test and bench targets, each using a part of it.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;

use zeitwork_net::{InstanceAddrs, NETNS_DIR, guest_mac, link_name};

/// Named namespaces of one test, deleted however it ends (their veths go with them).
pub struct Namespaces(pub Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            if Path::new(NETNS_DIR).join(name).exists() {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "delete", name])
                    .status();
            }
        }
    }
}

pub fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f` on a thread of its own in namespace `name`: the sockets it opens, the
/// processes it starts and the `/proc/sys/net` it writes are that namespace's.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
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

pub fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Instance `index`'s link in namespace `host`, as `Link::commands` makes its host side,
/// and a STAND-IN for its VM in namespace `guest` (a veth, not a tap: no VM boots),
/// configured as the agent configures a VM: its addresses, MAC and default routes.
pub fn guest_link(h: &str, g: &str, addrs: InstanceAddrs, index: u32) {
    let (zw, mac) = (link_name(index), guest_mac(index));
    ip(&[
        "-n", h, "link", "add", &zw, "type", "veth", "peer", "name", "eth0", "netns", g,
    ]);
    ip(&[
        "-n",
        h,
        "addr",
        "add",
        &format!("{}/31", addrs.host4),
        "dev",
        &zw,
    ]);
    let host6 = format!("{}/127", addrs.host6);
    ip(&["-n", h, "-6", "addr", "add", &host6, "dev", &zw, "nodad"]);
    ip(&["-n", h, "link", "set", &zw, "up"]);
    for (family, addr) in [
        ("-4", addrs.guest4.to_string()),
        ("-6", addrs.guest6.to_string()),
    ] {
        ip(&[
            "-n",
            h,
            family,
            "neigh",
            "replace",
            &addr,
            "lladdr",
            &mac,
            "dev",
            &zw,
            "nud",
            "permanent",
        ]);
    }
    // The guest, configured as the agent configures a VM.
    ip(&["-n", g, "link", "set", "eth0", "address", &mac]);
    ip(&[
        "-n",
        g,
        "addr",
        "add",
        &format!("{}/31", addrs.guest4),
        "dev",
        "eth0",
    ]);
    let guest6 = format!("{}/127", addrs.guest6);
    ip(&[
        "-n", g, "-6", "addr", "add", &guest6, "dev", "eth0", "nodad",
    ]);
    ip(&["-n", g, "link", "set", "eth0", "up"]);
    ip(&[
        "-n",
        g,
        "route",
        "add",
        "default",
        "via",
        &addrs.host4.to_string(),
    ]);
    let via6 = addrs.host6.to_string();
    ip(&["-n", g, "-6", "route", "add", "default", "via", &via6]);
}

/// Two namespaces, `a` and `b` (made here, deleted with the answer), joined by a veth
/// (`a_veth` in `a`, `b_veth` in `b`: at most 15 characters, and not `zw…`, which the
/// firewall takes for a guest's link) carrying `a_addr`/64 and `b_addr`/64.
pub fn wired_pair(
    (a, a_veth, a_addr): (&str, &str, &str),
    (b, b_veth, b_addr): (&str, &str, &str),
) -> Namespaces {
    let namespaces = Namespaces(vec![a.to_owned(), b.to_owned()]);
    for ns in [a, b] {
        ip(&["netns", "add", ns]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    ip(&[
        "link", "add", a_veth, "netns", a, "type", "veth", "peer", "name", b_veth, "netns", b,
    ]);
    for (ns, dev, addr) in [(a, a_veth, a_addr), (b, b_veth, b_addr)] {
        let cidr = format!("{addr}/64");
        ip(&["-n", ns, "addr", "add", &cidr, "dev", dev, "nodad"]);
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }
    namespaces
}
