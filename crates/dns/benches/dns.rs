//! The GeoDNS server beside an established authoritative server on the same machine:
//! `zeitwork server dns`'s query path (zeitwork-dns on a throwaway Postgres holding two
//! regions) and Debian's Knot DNS serving the same names from a zone file (a wildcard with
//! the same two addresses). One load generator asks both, alternating rounds: CONCURRENCY
//! UDP clients, each with one query in flight, for SECONDS; answers per second and latency
//! percentiles. Then the region withdrawal time: how long after its only edge stops
//! answering a region's clients are sent elsewhere, REPEATS times.
//!
//! The edges the health checks probe are TLS listeners STANDING IN for edges (any HTTP
//! answer over TLS passes a probe; the e2e tests probe real edges): what is measured is the
//! DNS server. Printed as Markdown for BENCHMARKS.md. Run:
//! `cargo bench -p zeitwork-dns --bench dns` (installs knot with `scripts/setup.sh`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use uuid::Uuid;
use zeitwork_core::EventData;
use zeitwork_dns::handler::Name;
use zeitwork_dns::{Check, Config, Dns, Zone};
use zeitwork_services::{Postgres, free_port};
use zeitwork_store::{Store, log};

const ZONE: &str = "zeitwork.example";
const CONCURRENCY: usize = 32;
const SECONDS: u64 = 5;
const ROUNDS: usize = 3;
const REPEATS: usize = 5;
/// eu-1's edge and us-1's two, on loopback addresses of their own.
const EU: &str = "127.0.0.2";
const US: [&str; 2] = ["127.0.0.3", "127.0.0.4"];

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let setup = Command::new(root.join("scripts/setup.sh"))
        .arg("knot")
        .status()
        .expect("scripts/setup.sh runs");
    assert!(setup.success(), "scripts/setup.sh knot failed");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::throwaway().await.expect("throwaway postgres");
    let store = Store::connect(&pg.url()).await.unwrap();
    region(&store, "eu-1", &[EU], &["10.1.0.0/16"]).await;
    region(&store, "us-1", &US, &["10.2.0.0/16"]).await;
    let https = free_port();
    let (tls, roots) = edge_tls();
    let mut edges = Vec::new();
    for ip in [EU, US[0], US[1]] {
        edges.push(tokio::spawn(edge_stand_in(ip, https, tls.clone())));
    }
    let ours_port = free_port();
    // On a runtime (two threads) of its own, as in its own process: not sharing the load
    // generator's threads, like knotd.
    let server_store = store.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let dns = Dns::start(server_store, None, config(ours_port, https, roots))
                .await
                .expect("the DNS server starts");
            dns.serve(std::future::pending()).await.unwrap();
        });
    });
    let knot_port = free_port();
    let _knot = Knot::start(dir.path(), knot_port);
    let name = format!("web-acme.{ZONE}");
    for port in [ours_port, knot_port] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match ask(port, &name, None).await {
                Some(answer) if answer.addresses >= 1 => break,
                other if Instant::now() > deadline => panic!("port {port} answers {other:?}"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    let mut rows: Vec<(&str, Load)> = Vec::new();
    for _ in 0..ROUNDS {
        rows.push(("zeitwork server dns", load(ours_port).await));
        rows.push(("knotd (same names, zone file)", load(knot_port).await));
    }
    println!("| server | answers/s | p50 | p99 | max | lost |");
    println!("|---|---|---|---|---|---|");
    for (who, l) in &rows {
        println!(
            "| {who} | {:.0} | {} µs | {} µs | {} µs | {} |",
            l.per_second, l.p50, l.p99, l.max, l.lost
        );
    }

    // Withdrawal: eu-1's only edge stops; how long until 10.1.0.0/24 gets us-1.
    let mut times = Vec::new();
    for _ in 0..REPEATS {
        wait_for(ours_port, |a| a.first == Some(EU.parse().unwrap())).await;
        edges[0].abort();
        let stopped = Instant::now();
        wait_for(ours_port, |a| a.first != Some(EU.parse().unwrap())).await;
        times.push(stopped.elapsed());
        edges[0] = tokio::spawn(edge_stand_in(EU, https, tls.clone()));
    }
    times.sort();
    println!();
    println!(
        "region withdrawal (probe every 1 s, 2 s timeout, withdrawn after 2 failures), {REPEATS} times: \
         median {:.2} s, max {:.2} s",
        times[REPEATS / 2].as_secs_f64(),
        times[REPEATS - 1].as_secs_f64()
    );
}

fn config(port: u16, https: u16, roots: rustls::RootCertStore) -> Config {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Config {
        zone: Zone {
            origin: Name::from_ascii(format!("{ZONE}.")).unwrap(),
            nameservers: vec![Name::from_ascii(format!("ns1.{ZONE}.")).unwrap()],
            fixed: vec![(
                Name::from_ascii(format!("ns1.{ZONE}.")).unwrap(),
                IpAddr::from([127, 0, 0, 1]),
            )],
            ttl: 20,
        },
        check: Check {
            port: https,
            host: ServerName::try_from(format!("health.{ZONE}")).unwrap(),
            tls: Arc::new(tls),
            every: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            fall: 2,
            rise: 2,
        },
        default_region: Some("us-1".into()),
        fallback_order: Vec::new(),
        geo: None,
        listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))],
        resync_every: Duration::from_secs(5),
    }
}

async fn region(store: &Store, name: &str, addresses: &[&str], networks: &[&str]) {
    let region_id = Uuid::now_v7();
    let mut tx = store.begin().await.unwrap();
    let created = EventData::RegionCreated {
        region_id,
        name: name.into(),
    };
    log::append(&mut tx, None, "bench", created).await.unwrap();
    let set = EventData::RegionAddressesSet {
        region_id,
        addresses: addresses.iter().map(|a| a.to_string()).collect(),
        client_networks: networks.iter().map(|n| n.to_string()).collect(),
    };
    log::append(&mut tx, None, "bench", set).await.unwrap();
    tx.commit().await.unwrap();
}

/// A certificate for `*.ZONE` and the root (a CA of the bench's own) that signed it.
fn edge_tls() -> (Arc<rustls::ServerConfig>, rustls::RootCertStore) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![format!("*.{ZONE}")])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let der = leaf.der().clone();
    let key = PrivateKeyDer::from_pem_slice(leaf_key.serialize_pem().as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .unwrap();
    (Arc::new(config), roots)
}

/// STANDS IN for an edge: TLS, then `HTTP/1.1 404` to anything.
async fn edge_stand_in(ip: &str, port: u16, tls: Arc<rustls::ServerConfig>) {
    let listener = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), port))
        .await
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut stream) = acceptor.accept(tcp).await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await;
            let _ = stream.shutdown().await;
        });
    }
}

struct Knot(Child);

impl Knot {
    fn start(dir: &std::path::Path, port: u16) -> Knot {
        let zone = format!(
            "$ORIGIN {ZONE}.\n$TTL 20\n@ SOA ns1 hostmaster 1 3600 600 86400 20\n@ NS ns1\n\
             ns1 A 127.0.0.1\n* A {}\n* A {}\n",
            US[0], US[1]
        );
        std::fs::write(dir.join(format!("{ZONE}.zone")), zone).unwrap();
        let conf = format!(
            "server:\n    listen: 127.0.0.1@{port}\n    rundir: {d}\n    background-workers: 1\n\
             database:\n    storage: {d}\n\
             template:\n  - id: default\n    storage: {d}\n\
             zone:\n  - domain: {ZONE}\n    file: {ZONE}.zone\n",
            d = dir.display()
        );
        let path = dir.join("knot.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("knotd")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("knotd (Debian's knot)");
        Knot(child)
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug)]
struct Answered {
    addresses: usize,
    first: Option<IpAddr>,
}

/// An A query for `name` (with a Client Subnet option when given), encoded by hand.
fn query(id: u16, name: &str, subnet: Option<[u8; 3]>) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(subnet.is_some())]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    if let Some(net) = subnet {
        // OPT: payload 1232, ECS family 1, /24.
        q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 11]);
        q.extend_from_slice(&[0, 8, 0, 7, 0, 1, 24, 0]);
        q.extend_from_slice(&net);
    }
    q
}

/// The answer count and the first A record's address.
fn parse(answer: &[u8]) -> Option<Answered> {
    let count = usize::from(u16::from_be_bytes([*answer.get(6)?, *answer.get(7)?]));
    // The question (name, type, class), then the first answer's name: labels ending in
    // a zero byte, or a 2-byte pointer (compression).
    let skip_name = |mut at: usize| -> Option<usize> {
        loop {
            let len = *answer.get(at)?;
            if len == 0 {
                return Some(at + 1);
            }
            if len & 0xc0 == 0xc0 {
                return Some(at + 2);
            }
            at += usize::from(len) + 1;
        }
    };
    let at = skip_name(12)? + 4;
    let first = if count > 0 {
        // Type, class, TTL, length, then the data.
        let data = skip_name(at)? + 10;
        answer
            .get(data..data + 4)
            .map(|b| IpAddr::from([b[0], b[1], b[2], b[3]]))
    } else {
        None
    };
    Some(Answered {
        addresses: count,
        first,
    })
}

async fn ask(port: u16, name: &str, subnet: Option<[u8; 3]>) -> Option<Answered> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    socket.connect(("127.0.0.1", port)).await.ok()?;
    socket.send(&query(7, name, subnet)).await.ok()?;
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    parse(&buf[..n])
}

async fn wait_for(port: u16, done: impl Fn(&Answered) -> bool) {
    let name = format!("web-acme.{ZONE}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ask(port, &name, Some([10, 1, 0]))
            .await
            .is_some_and(|a| done(&a))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = ask(port, &name, Some([10, 1, 0])).await;
    panic!("the answer never changed: {last:?}");
}

struct Load {
    per_second: f64,
    p50: u128,
    p99: u128,
    max: u128,
    lost: usize,
}

/// CONCURRENCY clients, one query in flight each, for SECONDS; a query unanswered within
/// 1 s is lost (and sent again).
async fn load(port: u16) -> Load {
    let started = Instant::now();
    let until = started + Duration::from_secs(SECONDS);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CONCURRENCY {
        clients.spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            socket.connect(("127.0.0.1", port)).await.unwrap();
            let mut latencies = Vec::new();
            let mut lost = 0;
            let mut buf = [0u8; 1500];
            let mut id: u16 = 0;
            while Instant::now() < until {
                id = id.wrapping_add(1);
                let name = format!("app{}-org{c}.{ZONE}", id % 500);
                let sent = Instant::now();
                socket
                    .send(&query(id, &name, Some([10, 2, 0])))
                    .await
                    .unwrap();
                loop {
                    match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await
                    {
                        Ok(Ok(n)) if n >= 2 && buf[..2] == id.to_be_bytes() => {
                            latencies.push(sent.elapsed().as_micros());
                            break;
                        }
                        Ok(_) => continue, // a late answer to an earlier query
                        Err(_) => {
                            lost += 1;
                            break;
                        }
                    }
                }
            }
            (latencies, lost)
        });
    }
    let mut all = Vec::new();
    let mut lost = 0;
    while let Some(done) = clients.join_next().await {
        let (latencies, l) = done.unwrap();
        all.extend(latencies);
        lost += l;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Load {
        per_second: all.len() as f64 / elapsed,
        p50: at(0.50),
        p99: at(0.99),
        max: *all.last().unwrap(),
        lost,
    }
}
