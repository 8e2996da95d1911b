//! A throwaway Postgres whose state is made of real events (so the projections are the
//! real ones), plain HTTP servers on 127.0.0.1 standing in for instances, an edge on a
//! random port, and a raw HTTP/1.1 client so tests control every byte they send.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use uuid::Uuid;
use zeitwork_bus::NatsBus;
use zeitwork_core::EventData;
use zeitwork_core::event::{InstancePlan, ProcessSpec};
use zeitwork_core::node::ObservedState;
use zeitwork_edge::{Config, Edge, EdgeError, Listeners};
use zeitwork_services::Postgres;
use zeitwork_store::{Store, log};

pub const BASE: &str = "zeitwork.test";

pub struct World {
    /// `None` once a test has stopped it.
    pub pg: Option<Postgres>,
    pub store: Store,
}

/// An app `shop` of org `acme` with its envs and one release.
pub struct App {
    pub org: Uuid,
    envs: Vec<(String, Uuid)>,
    release: Uuid,
}

impl App {
    pub fn env(&self, name: &str) -> Uuid {
        self.envs
            .iter()
            .find(|(n, _)| n == name)
            .expect("env exists")
            .1
    }
}

impl World {
    pub async fn new() -> World {
        let pg = Postgres::throwaway().await.expect("throwaway postgres");
        let store = Store::connect(&pg.url()).await.unwrap();
        World {
            pg: Some(pg),
            store,
        }
    }

    pub async fn emit(&self, org: Uuid, data: EventData) {
        let mut tx = self.store.begin().await.unwrap();
        log::append(&mut tx, Some(org), "test", data).await.unwrap();
        tx.commit().await.unwrap();
    }

    pub async fn app(&self, envs: &[&str]) -> App {
        self.app_with(envs, serde_json::json!({})).await
    }

    /// [`World::app`] whose release has this manifest (as JSON).
    pub async fn app_with(&self, envs: &[&str], manifest: serde_json::Value) -> App {
        let (org, app, release) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let name = |s: &str| s.to_owned();
        self.emit(
            org,
            EventData::OrgCreated {
                org_id: org,
                name: name("acme"),
            },
        )
        .await;
        let created = EventData::AppCreated {
            app_id: app,
            org_id: org,
            name: name("shop"),
        };
        self.emit(org, created).await;
        let mut ids = Vec::new();
        for env in envs {
            let env_id = Uuid::now_v7();
            let created = EventData::EnvCreated {
                env_id,
                app_id: app,
                name: name(env),
                preview_of: None,
            };
            self.emit(org, created).await;
            ids.push((name(env), env_id));
        }
        let created = EventData::ReleaseCreated {
            release_id: release,
            app_id: app,
            number: 1,
            image: name("127.0.0.1:5000/shop@sha256:00"),
            digest: name("sha256:00"),
            manifest,
            manifest_hash: name("sha256:11"),
        };
        self.emit(org, created).await;
        App {
            org,
            envs: ids,
            release,
        }
    }

    /// A deployment of `instances` `web` instances (pending, on no node) to `env`.
    pub async fn deploy(&self, app: &App, env: &str, slug: &str, instances: usize) -> Vec<Uuid> {
        let env_id = app.env(env);
        let plans: Vec<InstancePlan> = (0..instances)
            .map(|_| InstancePlan {
                instance_id: Uuid::now_v7(),
                process: "web".into(),
                node_id: None,
                region: None,
                reason: None,
            })
            .collect();
        let ids = plans.iter().map(|p| p.instance_id).collect();
        let created = EventData::DeploymentCreated {
            deployment_id: Uuid::now_v7(),
            env_id,
            release_id: app.release,
            slug: slug.into(),
            rollback_of: None,
            processes: vec![ProcessSpec {
                name: "web".into(),
                instances: instances as u32,
                millicpus: 100,
                memory_mb: 64,
                port: Some(8080),
            }],
            instances: plans,
            surge: false,
            standby: None,
        };
        self.emit(app.org, created).await;
        ids
    }

    /// What a node agent reports: `instance` is in `state` and answers at `address`.
    pub async fn observe(
        &self,
        app: &App,
        instance: Uuid,
        state: ObservedState,
        address: SocketAddr,
    ) {
        let observed = EventData::InstanceObserved {
            instance_id: instance,
            state,
            reason: None,
            address: Some(address.to_string()),
            restarts: 0,
        };
        self.emit(app.org, observed).await;
    }

    /// The committed head of the event log.
    pub async fn head(&self) -> i64 {
        let mut db = self.store.pool().acquire().await.unwrap();
        log::head(&mut db).await.unwrap()
    }

    /// `host` as a verified domain of `app`'s `env`: what a route's host must be.
    pub async fn verified_domain(&self, app: &App, env: &str, host: &str) {
        let domain_id = Uuid::now_v7();
        let added = EventData::DomainAdded {
            domain_id,
            env_id: app.env(env),
            hostname: host.into(),
            verification_token: "t".into(),
        };
        self.emit(app.org, added).await;
        self.emit(app.org, EventData::DomainVerified { domain_id })
            .await;
    }

    /// An `http` route from `host` (verified first) to the `web` process on `port`,
    /// with a policy.
    pub async fn route(&self, app: &App, host: &str, port: u16, policy: serde_json::Value) {
        self.verified_domain(app, "prod", host).await;
        let route = EventData::RouteCreated {
            route_id: Uuid::now_v7(),
            env_id: app.env("prod"),
            host: Some(host.into()),
            process: "web".into(),
            mode: "http".into(),
            port,
            proxy_protocol: false,
            policy: serde_json::from_value(policy).expect("a valid policy"),
            listen_port: None,
            declared: false,
        };
        self.emit(app.org, route).await;
    }

    pub async fn healthy(&self, app: &App, instance: Uuid, address: SocketAddr) {
        self.observe(app, instance, ObservedState::Healthy, address)
            .await;
    }
}

/// An edge serving on 127.0.0.1; dropping it stops nothing, [`Running::stop`] does.
pub struct Running {
    pub edge: Edge,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<Result<(), EdgeError>>,
}

impl Running {
    pub async fn start(world: &World, bus: Option<NatsBus>, resync_every: Duration) -> Running {
        let config = Config {
            resync_every,
            drain_timeout: Duration::from_secs(5),
            ..Config::new(BASE)
        };
        Running::with(world, bus, config).await
    }

    pub async fn with(world: &World, bus: Option<NatsBus>, config: Config) -> Running {
        let edge = Edge::start_with(world.store.clone(), bus, config)
            .await
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let listeners = Listeners {
            http: listener,
            https: None,
            // The ports of tcp routes (l4/tcp.rs).
            tcp: Some(addr.ip()),
        };
        let served = tokio::spawn(edge.serve(listeners, async {
            let _ = stopped.await;
        }));
        Running {
            edge,
            addr,
            stop: Some(stop),
            served,
        }
    }

    /// Begins a graceful shutdown; the handle resolves when it is done.
    pub fn stop(&mut self) -> &mut tokio::task::JoinHandle<Result<(), EdgeError>> {
        let _ = self.stop.take().expect("stopped once").send(());
        &mut self.served
    }

    pub async fn get(&self, host: &str) -> Reply {
        self.get_with(host, "").await
    }

    /// GET / with `host` and extra header lines (each ending in `\r\n`).
    pub async fn get_with(&self, host: &str, headers: &str) -> Reply {
        let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n");
        let mut replies = exchange(self.addr, raw.as_bytes()).await;
        assert_eq!(replies.len(), 1, "one request, one answer");
        replies.remove(0)
    }
}

/// An HTTP server standing in for an instance: answers 200 with its name, the request
/// headers it received (`name: value` lines) and the request body.
pub struct Backend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl Backend {
    pub async fn start(name: &'static str) -> Backend {
        Backend::slow(name, Duration::ZERO).await
    }

    /// One that takes `delay` to answer.
    pub async fn slow(name: &'static str, delay: Duration) -> Backend {
        Backend::serve(name, "127.0.0.1:0".parse().unwrap(), delay, 200).await
    }

    /// One on `addr` (instances of one process share a port on different addresses)
    /// answering every request with `status`.
    pub async fn serve(
        name: &'static str,
        addr: SocketAddr,
        delay: Duration,
        status: u16,
    ) -> Backend {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(delay).await;
                        let mut text = format!("backend={name}\n");
                        for (k, v) in req.headers() {
                            text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
                        }
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        text.push_str(&format!("body={}", String::from_utf8_lossy(&body)));
                        let mut response = Response::new(Full::new(Bytes::from(text)));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Backend { addr, hits }
    }
}

/// An address where nothing listens: connections to it are refused.
pub fn refusing() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// One answer, parsed.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let found = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name));
        found.map(|(_, v)| v.as_str())
    }

    /// Which stand-in instance answered.
    pub fn backend(&self) -> Option<&str> {
        self.body.lines().find_map(|l| l.strip_prefix("backend="))
    }

    /// A request header as the backend received it.
    pub fn seen(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.body
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }
}

/// Writes `raw`, reads until the edge closes the connection, and parses every answer.
pub async fn exchange(edge: SocketAddr, raw: &[u8]) -> Vec<Reply> {
    let mut stream = TcpStream::connect(edge).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut bytes = Vec::new();
    let read = stream.read_to_end(&mut bytes);
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the edge closes the connection")
        .unwrap();
    parse(&bytes)
}

fn parse(mut bytes: &[u8]) -> Vec<Reply> {
    let mut replies = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head) = response.parse(bytes).unwrap() else {
            panic!("incomplete answer: {}", String::from_utf8_lossy(bytes));
        };
        let headers: Vec<(String, String)> = response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .or((response.code == Some(204)).then_some(0))
            .expect("answers carry a content-length");
        replies.push(Reply {
            status: response.code.unwrap(),
            headers,
            body: String::from_utf8_lossy(&bytes[head..head + length]).into_owned(),
        });
        bytes = &bytes[head + length..];
    }
    replies
}

/// Polls `check` until it holds (or fails after 10 s, naming `what`).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The per-deployment hostname.
pub fn deployment_host(slug: &str) -> String {
    format!("shop-{slug}-acme.{BASE}")
}
