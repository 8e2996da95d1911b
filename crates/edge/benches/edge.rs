//! Edge benchmarks (issue 5), run by `bench/edge.sh`, which compares the edge with
//! HAProxy and nginx in front of the same backend. Modes:
//!
//! - `serve BACKEND HTTP HTTPS CERT KEY`: a throwaway Postgres holding one app whose
//!   healthy instance is BACKEND, and the edge on HTTP and HTTPS (the certificate from
//!   files, chosen by SNI like any other); prints `READY <host>` and serves until killed.
//! - `routes N`: the resident memory of an edge holding N routes, and how long the
//!   table took to read.
//! - `propagation ROUNDS`: commit of a new route → first 200 for it through the
//!   listener, NATS and the edge's refresh.
//! - `failover`: two instances under steady load, one killed: client-visible errors and
//!   latency while the edge finds out.
//! - `handshakes ADDR CERT SECONDS`: full TLS handshakes per second (no resumption) from
//!   8 concurrent clients, the same client for every proxy compared.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use uuid::Uuid;
use zeitwork_core::EventData;
use zeitwork_core::event::{InstancePlan, ProcessSpec};
use zeitwork_core::node::ObservedState;
use zeitwork_edge::{CertSource, Config, Edge, HttpsOn, ListenOn};
use zeitwork_services::{Nats, Postgres};
use zeitwork_store::{Store, log};

const BASE: &str = "zeitwork.test";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    runtime.unwrap().block_on(run(args));
}

async fn run(args: Vec<String>) {
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]).await,
        Some("routes") => routes(args[1].parse().unwrap()).await,
        Some("propagation") => propagation(args[1].parse().unwrap()).await,
        Some("failover") => failover().await,
        Some("handshakes") => handshakes(&args[1..]).await,
        _ => {
            eprintln!("usage: edge serve|routes N|propagation ROUNDS|failover (see bench/edge.sh)")
        }
    }
}

/// One org `acme` with app `shop` and env `prod`.
struct World {
    store: Store,
    org: Uuid,
    env: Uuid,
    release: Uuid,
}

impl World {
    async fn new(pg: &Postgres) -> World {
        let store = Store::connect(&pg.url()).await.unwrap();
        let (org, app, env, release) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let world = World {
            store,
            org,
            env,
            release,
        };
        let name = |s: &str| s.to_owned();
        world
            .emit(vec![
                EventData::OrgCreated {
                    org_id: org,
                    name: name("acme"),
                },
                EventData::AppCreated {
                    app_id: app,
                    org_id: org,
                    name: name("shop"),
                },
                EventData::EnvCreated {
                    env_id: env,
                    app_id: app,
                    name: name("prod"),
                    preview_of: None,
                },
                EventData::ReleaseCreated {
                    release_id: release,
                    app_id: app,
                    number: 1,
                    image: name("127.0.0.1:5000/shop@sha256:00"),
                    digest: name("sha256:00"),
                    manifest: serde_json::json!({}),
                    manifest_hash: name("sha256:11"),
                },
            ])
            .await;
        world
    }

    async fn emit(&self, events: Vec<EventData>) {
        let mut tx = self.store.begin().await.unwrap();
        for data in events {
            log::append(&mut tx, Some(self.org), "bench", data)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }

    /// A deployment whose `web` instances are healthy at `addresses`.
    async fn deploy(&self, addresses: &[SocketAddr]) {
        let plans: Vec<InstancePlan> = addresses
            .iter()
            .map(|_| InstancePlan {
                instance_id: Uuid::now_v7(),
                process: "web".into(),
                node_id: None,
                region: None,
                reason: None,
            })
            .collect();
        let mut events = vec![EventData::DeploymentCreated {
            deployment_id: Uuid::now_v7(),
            env_id: self.env,
            release_id: self.release,
            slug: "bench".into(),
            rollback_of: None,
            processes: vec![ProcessSpec {
                name: "web".into(),
                instances: addresses.len() as u32,
                millicpus: 100,
                memory_mb: 64,
                port: Some(addresses[0].port()),
            }],
            instances: plans.clone(),
            surge: false,
            standby: None,
        }];
        for (plan, address) in plans.iter().zip(addresses) {
            events.push(EventData::InstanceObserved {
                instance_id: plan.instance_id,
                state: ObservedState::Healthy,
                reason: None,
                address: Some(address.to_string()),
                restarts: 0,
            });
        }
        self.emit(events).await;
    }

    /// `host` verified as a domain of the env (what a route's host must be) and routed.
    fn route(&self, host: &str, port: u16) -> Vec<EventData> {
        let domain_id = Uuid::now_v7();
        vec![
            EventData::DomainAdded {
                domain_id,
                env_id: self.env,
                hostname: host.into(),
                verification_token: "t".into(),
            },
            EventData::DomainVerified { domain_id },
            EventData::RouteCreated {
                route_id: Uuid::now_v7(),
                env_id: self.env,
                host: Some(host.into()),
                process: "web".into(),
                mode: "http".into(),
                port,
                proxy_protocol: false,
                policy: Default::default(),
                listen_port: None,
                declared: false,
            },
        ]
    }
}

fn config(resync_every: Duration) -> Config {
    Config {
        resync_every,
        ..Config::new(BASE)
    }
}

/// One certificate (from files) for every name: enough to measure the TLS data path.
#[derive(Debug)]
struct FileCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FileCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl CertSource for FileCert {
    fn resolver(&self) -> Arc<dyn ResolvesServerCert> {
        Arc::new(FileCert(self.0.clone()))
    }
    fn http01(&self, _: &str) -> Option<String> {
        None
    }
    fn covers(&self, _: &str) -> bool {
        false
    }
}

async fn serve(args: &[String]) {
    // Measured with metrics recorded, as in production.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    metrics::set_global_recorder(recorder).expect("the only recorder");
    let backend: SocketAddr = args[0].parse().unwrap();
    let pg = Postgres::throwaway().await.unwrap();
    let world = World::new(&pg).await;
    world.deploy(&[backend]).await;
    let chain = CertificateDer::pem_file_iter(&args[3])
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&args[4]).unwrap();
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(key).unwrap();
    let certs = Arc::new(FileCert(Arc::new(CertifiedKey::new(chain, signing))));
    let edge = Edge::start_with(world.store.clone(), None, config(Duration::from_secs(3600)))
        .await
        .unwrap();
    let https: SocketAddr = args[2].parse().unwrap();
    let on = ListenOn {
        http: args[1].parse().unwrap(),
        https: Some(HttpsOn {
            addr: https,
            certs,
            public_port: https.port(),
        }),
        tcp: None,
    };
    // One worker per CPU the process may use (bench/edge.sh pins it to one).
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("READY shop-acme.{BASE}");
    let bound = on.bind().unwrap();
    edge.run(bound, workers, std::future::pending())
        .await
        .unwrap();
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

async fn routes(n: usize) {
    let pg = Postgres::throwaway().await.unwrap();
    let world = World::new(&pg).await;
    world.deploy(&["10.0.0.1:8080".parse().unwrap()]).await;
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let events = chunk
            .iter()
            .flat_map(|i| world.route(&format!("r{i}.example.com"), 8080))
            .collect();
        world.emit(events).await;
    }
    let before = rss_mib();
    let started = Instant::now();
    let edge = Edge::start_with(world.store.clone(), None, config(Duration::from_secs(3600)))
        .await
        .unwrap();
    let read = started.elapsed();
    let table = edge.table();
    assert_eq!(
        table.len(),
        n + 2,
        "every route plus the deployment and env names"
    );
    println!(
        "| routing table with {n} routes | read in {:.2} s | process RSS {:.0} MiB (before the edge: {:.0} MiB) |",
        read.as_secs_f64(),
        rss_mib(),
        before
    );
}

/// A plain HTTP server answering 200 "ok"; sending `true` on `kill` closes its listener
/// and cuts its open connections, like a killed instance. `late` counts the requests
/// that reached it once killed.
async fn backend(kill: tokio::sync::watch::Receiver<bool>, late: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut killed = kill.clone();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => accepted.unwrap().0,
                _ = killed.wait_for(|k| *k) => return,
            };
            let (late, seen) = (late.clone(), kill.clone());
            let service = hyper::service::service_fn(move |_req| {
                if *seen.borrow() {
                    late.fetch_add(1, Ordering::Relaxed);
                }
                async {
                    let ok = Full::new(Bytes::from_static(b"ok"));
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(ok))
                }
            });
            let mut killed = kill.clone();
            tokio::spawn(async move {
                let builder = hyper::server::conn::http1::Builder::new();
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    _ = connection => {}
                    _ = killed.wait_for(|k| *k) => {}
                }
            });
        }
    });
    addr
}

async fn start_edge(store: &Store, bus: Option<zeitwork_bus::NatsBus>) -> (Edge, SocketAddr) {
    let edge = Edge::start_with(store.clone(), bus, config(Duration::from_secs(3600)))
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(edge.serve(listener, std::future::pending()));
    (edge, addr)
}

async fn get(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    edge: SocketAddr,
    host: &str,
) -> u16 {
    let req = hyper::Request::get(format!("http://{edge}/"))
        .header("host", host)
        .body(Empty::new())
        .unwrap();
    match client.request(req).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            status
        }
        Err(_) => 0,
    }
}

async fn propagation(rounds: usize) {
    let (pg, nats) = (
        Postgres::throwaway().await.unwrap(),
        Nats::throwaway().await.unwrap(),
    );
    let world = World::new(&pg).await;
    let (_never, never) = tokio::sync::watch::channel(false);
    let target = backend(never, Arc::default()).await;
    world.deploy(&[target]).await;
    let bus = zeitwork_bus::NatsBus::connect(&nats.url()).await.unwrap();
    tokio::spawn(zeitwork_listener::run(
        world.store.clone(),
        bus.clone(),
        std::future::pending(),
    ));
    let (_edge, addr) = start_edge(&world.store, Some(bus)).await;
    let client = Client::builder(TokioExecutor::new()).build_http();
    tokio::time::sleep(Duration::from_secs(2)).await; // the listener takes the lead
    let mut took = Vec::new();
    for i in 0..rounds {
        let host = format!("new{i}.example.com");
        world.emit(world.route(&host, target.port())).await;
        let committed = Instant::now();
        while get(&client, addr, &host).await != 200 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        took.push(committed.elapsed());
    }
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "| new route: commit → first 200 through the edge | p50 {:.1} ms | p99 {:.1} ms | max {:.1} ms | n {} |",
        at(0.5),
        at(0.99),
        at(1.0),
        took.len()
    );
}

async fn failover() {
    let pg = Postgres::throwaway().await.unwrap();
    let world = World::new(&pg).await;
    let (kill, killed_rx) = tokio::sync::watch::channel(false);
    let (_never, never) = tokio::sync::watch::channel(false);
    let late = Arc::new(AtomicUsize::new(0));
    let victim = backend(killed_rx, late.clone()).await;
    let survivor = backend(never, Arc::default()).await;
    world.deploy(&[victim, survivor]).await;
    let (_edge, addr) = start_edge(&world.store, None).await;
    let host = format!("shop-acme.{BASE}");
    let (errors, done) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let sent = Arc::new(AtomicUsize::new(0));
    let epoch = Instant::now();
    let mut load = Vec::new();
    for _ in 0..16 {
        let (errors, done, sent, host) = (errors.clone(), done.clone(), sent.clone(), host.clone());
        load.push(tokio::spawn(async move {
            let client = Client::builder(TokioExecutor::new()).build_http();
            let mut slowest = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                if get(&client, addr, &host).await != 200 {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                slowest.push((started - epoch, started.elapsed()));
                sent.fetch_add(1, Ordering::Relaxed);
            }
            slowest
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = epoch.elapsed();
    kill.send(true).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = late.load(Ordering::SeqCst);
    done.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in load {
        latencies.extend(task.await.unwrap());
    }
    // Requests that began in the 100 ms after the kill: what a client saw while the edge
    // found out.
    let mut window: Vec<Duration> = latencies
        .iter()
        .filter(|(at, _)| *at >= killed && *at < killed + Duration::from_millis(100))
        .map(|(_, took)| *took)
        .collect();
    window.sort();
    let mut steady: Vec<Duration> = latencies
        .iter()
        .filter(|(at, _)| *at < killed)
        .map(|(_, took)| *took)
        .collect();
    steady.sort();
    let p99 =
        |v: &[Duration]| v[((v.len() - 1) as f64 * 0.99).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "| instance killed under load (16 clients, {} requests over 5 s) | client-visible errors {} | answered by the dead instance after the kill {after} | p99 latency before the kill {:.2} ms, in the 100 ms after it {:.2} ms ({} requests) |",
        sent.load(Ordering::SeqCst),
        errors.load(Ordering::SeqCst),
        p99(&steady),
        p99(&window),
        window.len()
    );
}

async fn handshakes(args: &[String]) {
    let addr: SocketAddr = args[0].parse().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&args[1]).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let seconds: u64 = args[2].parse().unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from(format!("shop-acme.{BASE}")).unwrap();
    let (done, count) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (connector, name, done, count) =
            (connector.clone(), name.clone(), done.clone(), count.clone());
        clients.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .expect("a handshake");
                drop(tls);
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    done.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let rate = count.load(Ordering::SeqCst) as f64 / started.elapsed().as_secs_f64();
    println!("{rate:.0}");
}
