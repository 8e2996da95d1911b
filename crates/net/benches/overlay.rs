//! The overlay's cost, measured beside the same path without it: two network namespaces
//! play two nodes joined by a veth; `iperf3` (Debian's) measures TCP throughput from one to
//! the other at the other's wire address and at its overlay address (WireGuard: the kernel's
//! where the host has it, `wireguard-go` here), and a 1-byte ping-pong measures round trips
//! both ways; both rounds alternate. Also the time from setting the peers to the first
//! handshake, and to the first TCP answer through the tunnel. Printed as Markdown for
//! BENCHMARKS.md. Run as root: `cargo bench -p zeitwork-net --bench overlay` (installs
//! iperf3 with `scripts/setup.sh` when it is missing).

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use zeitwork_net::{Overlay, Peer, keeps_alive};

#[path = "../tests/support/lab.rs"]
mod lab;
use lab::{block_on, in_netns, wired_pair};

const A_WIRE: Ipv6Addr = Ipv6Addr::new(0xfd99, 0x78, 0, 0, 0, 0, 0, 0xa);
const B_WIRE: Ipv6Addr = Ipv6Addr::new(0xfd99, 0x78, 0, 0, 0, 0, 0, 0xb);
const A_OVERLAY: Ipv6Addr = Ipv6Addr::new(0xfd7a, 0x7a77, 0, 0xa2, 0, 0, 0, 1);
const B_OVERLAY: Ipv6Addr = Ipv6Addr::new(0xfd7a, 0x7a77, 0, 0xb2, 0, 0, 0, 1);
const PORT: u16 = 51820;
const ROUNDS: usize = 3;
const SECONDS: &str = "5";
const PINGS: usize = 2000;

fn main() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this bench builds network namespaces: run it as root"
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let setup = Command::new(root.join("scripts/setup.sh"))
        .arg("iperf3")
        .status()
        .expect("scripts/setup.sh runs");
    assert!(setup.success(), "scripts/setup.sh iperf3 failed");

    let tag = std::process::id() % 100_000;
    let (a_ns, b_ns) = (format!("zwbencha{tag}"), format!("zwbenchb{tag}"));
    let (a_veth, b_veth) = (format!("wba{tag}"), format!("wbb{tag}"));
    let (a_wire, b_wire) = (A_WIRE.to_string(), B_WIRE.to_string());
    let _namespaces = wired_pair((&a_ns, &a_veth, &a_wire), (&b_ns, &b_veth, &b_wire));
    let dir = tempfile::tempdir().unwrap();
    let node = |ns: &str, address| {
        let overlay = Overlay::new(dir.path().join(format!("{ns}.key")), PORT, address)
            .named(&ns.replacen("zw", "wg", 1))
            .in_netns(ns);
        let key = block_on(overlay.public_key()).expect("wg makes a key");
        block_on(overlay.up()).expect("the overlay comes up");
        (overlay, key)
    };
    let (a, a_key) = node(&a_ns, A_OVERLAY);
    let (b, b_key) = node(&b_ns, B_OVERLAY);
    let _down = Down(vec![a.clone(), b.clone()]);

    // Ping-pong and iperf3 servers in B, at both of its addresses.
    for at in [B_WIRE, B_OVERLAY] {
        let listener = in_netns(&b_ns, || TcpListener::bind((at, 7))).expect("echo listens");
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || echo(conn));
            }
        });
    }
    let mut iperf = Command::new("ip")
        .args([
            "netns", "exec", &b_ns, "iperf3", "--server", "--port", "5201",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 runs");

    // Peering to the first answer through the tunnel.
    let peered = Instant::now();
    block_on(a.set_peers(&[Peer {
        public_key: b_key.clone(),
        endpoint: Some(SocketAddr::from((B_WIRE, PORT)).to_string()),
        allowed_ips: vec!["fd7a:7a77:0:b2::/64".into()],
        keepalive: keeps_alive(&a_key, &b_key),
    }]))
    .unwrap();
    block_on(b.set_peers(&[Peer {
        public_key: a_key.clone(),
        endpoint: Some(SocketAddr::from((A_WIRE, PORT)).to_string()),
        allowed_ips: vec!["fd7a:7a77:0:a2::/64".into()],
        keepalive: keeps_alive(&b_key, &a_key),
    }]))
    .unwrap();
    let shaken = loop {
        let seen = block_on(a.handshakes()).unwrap();
        if seen.iter().all(|h| h.age_seconds.is_some()) && !seen.is_empty() {
            break peered.elapsed();
        }
        assert!(peered.elapsed() < Duration::from_secs(30), "no handshake");
        std::thread::sleep(Duration::from_millis(5));
    };
    let reachable = loop {
        if in_netns(&a_ns, || {
            TcpStream::connect_timeout(&SocketAddr::from((B_OVERLAY, 7)), Duration::from_secs(1))
        })
        .is_ok()
        {
            break peered.elapsed();
        }
        assert!(
            peered.elapsed() < Duration::from_secs(30),
            "never reachable"
        );
        std::thread::sleep(Duration::from_millis(10));
    };

    let mut throughput: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut rtts: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (i, to) in [B_WIRE, B_OVERLAY].into_iter().enumerate() {
            throughput[i].push(iperf3(&a_ns, to));
            rtts[i].extend(ping_pong(&a_ns, to));
        }
    }
    let _ = iperf.kill();
    let _ = iperf.wait();

    println!(
        "| path | TCP throughput (iperf3, median of {ROUNDS} × {SECONDS} s) | round trip p50 | p99 |"
    );
    println!("|---|---|---|---|");
    for (i, path) in ["veth, no overlay", "the same veth through WireGuard"]
        .iter()
        .enumerate()
    {
        rtts[i].sort();
        let at = |q: f64| rtts[i][((rtts[i].len() as f64 * q) as usize).min(rtts[i].len() - 1)];
        println!(
            "| {path} | {:.2} Gbit/s | {} µs | {} µs |",
            median(&mut throughput[i]),
            at(0.5).as_micros(),
            at(0.99).as_micros()
        );
    }
    println!();
    println!(
        "Peers set → handshake complete: {} ms; → first TCP answer through the tunnel: {} ms",
        shaken.as_millis(),
        reachable.as_millis()
    );
}

/// Takes the interfaces down however the bench ends.
struct Down(Vec<Overlay>);

impl Drop for Down {
    fn drop(&mut self) {
        for overlay in &self.0 {
            let _ = block_on(overlay.down());
        }
    }
}

fn echo(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut byte = [0u8; 1];
    while conn.read_exact(&mut byte).is_ok() {
        if conn.write_all(&byte).is_err() {
            break;
        }
    }
}

/// Bits per second received, from `iperf3 --json`, in Gbit/s.
fn iperf3(ns: &str, to: Ipv6Addr) -> f64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "iperf3", "--client"])
        .arg(to.to_string())
        .args(["--port", "5201", "--time", SECONDS, "--json"])
        .output()
        .expect("iperf3 runs");
    assert!(
        out.status.success(),
        "iperf3 to {to}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("bits_per_second")
        / 1e9
}

/// Round trips of one byte over one connection.
fn ping_pong(ns: &str, to: Ipv6Addr) -> Vec<Duration> {
    in_netns(ns, || {
        let mut conn = TcpStream::connect((to, 7)).expect("echo answers");
        conn.set_nodelay(true).unwrap();
        let mut byte = [7u8; 1];
        (0..PINGS)
            .map(|_| {
                let sent = Instant::now();
                conn.write_all(&byte).unwrap();
                conn.read_exact(&mut byte).unwrap();
                sent.elapsed()
            })
            .collect()
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
