//! GeoDNS (docs/cluster.md, "DNS"): `zeitwork server dns` is authoritative for the base
//! domain (every app hostname, and so every custom domain's CNAME target, is under it) and
//! answers each client with the public addresses of its nearest healthy region.
//!
//! - [`regions`]: the region table (from Postgres, `zeitwork regions set`) and the rule
//!   that picks addresses for a client; [`geo`]: a MaxMind-format database, optionally;
//! - [`handler`]: the query path, on hickory's server (UDP and TCP);
//! - [`health`]: probes of every region address through TLS, withdrawing dead ones.
//!
//! The table follows Postgres like every snapshot-keeping consumer: a NATS notification on
//! `zw.v1.regions`, and a resync timer as the net.

pub mod geo;
pub mod handler;
pub mod health;
pub mod regions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use zeitwork_bus::{Follow, NatsBus};
use zeitwork_core::region;
use zeitwork_store::{Store, StoreError, read};

pub use geo::Geo;
pub use handler::{Current, Handler, Zone};
pub use health::Check;
pub use regions::{Region, Table};

/// How long a TCP client may stay silent before its connection is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("reading the regions: {0}")]
    Load(#[from] StoreError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving DNS: {0}")]
    Serve(String),
}

/// What a DNS server starts with.
pub struct Config {
    pub zone: Zone,
    pub check: Check,
    /// The region of clients no client network holds.
    pub default_region: Option<String>,
    /// Region names, nearest first: where a withdrawn region's clients go.
    pub fallback_order: Vec<String>,
    /// Places clients no client network holds, before the default region.
    pub geo: Option<Geo>,
    /// UDP and TCP on each.
    pub listen: Vec<SocketAddr>,
    /// The safety net for lost notifications.
    pub resync_every: Duration,
}

/// A DNS server with its table read and its sockets bound.
pub struct Dns {
    server: Server<Handler>,
    bound: Vec<SocketAddr>,
    current: Arc<Current>,
    tasks: Vec<JoinHandle<()>>,
}

/// Reads every region into a table. A stored list the parsers refuse (the API never
/// writes one) leaves that list out, with a warning.
pub async fn load(
    store: &Store,
    default_region: Option<String>,
    fallback_order: Vec<String>,
) -> Result<Table, StoreError> {
    let rows = read::regions(store.pool()).await?;
    let regions = rows
        .into_iter()
        .map(|r| {
            let addresses = region::parse_addresses(&r.addresses).unwrap_or_else(|e| {
                tracing::warn!(region = %r.name, error = %e.message, "unusable stored addresses");
                Vec::new()
            });
            let client_networks =
                region::parse_client_networks(&r.client_networks).unwrap_or_else(|e| {
                    tracing::warn!(region = %r.name, error = %e.message, "unusable stored client networks");
                    Vec::new()
                });
            Region {
                name: r.name,
                addresses,
                client_networks,
            }
        })
        .collect();
    Ok(Table::new(regions, default_region, fallback_order))
}

impl Dns {
    /// Reads the regions, binds every listener and starts the health checks.
    pub async fn start(
        store: Store,
        bus: Option<NatsBus>,
        config: Config,
    ) -> Result<Dns, DnsError> {
        let subject = format!("{}.regions", zeitwork_bus::PREFIX);
        let follow = Follow::subscribe(
            bus.as_ref(),
            &subject,
            config.resync_every,
            "the region table",
        )
        .await;
        let first = load(
            &store,
            config.default_region.clone(),
            config.fallback_order.clone(),
        )
        .await?;
        tracing::info!(regions = first.regions().len(), "region table read");
        let current = Arc::new(Current::default());
        current.table.store(Arc::new(first));
        current.serial.store(serial_now(0), Ordering::Relaxed);
        let handler = Handler::new(config.zone, current.clone()).with_geo(config.geo);
        let mut server = Server::new(handler);
        let mut bound = Vec::new();
        for addr in &config.listen {
            let bind = |source| DnsError::Bind {
                addr: *addr,
                source,
            };
            let udp = UdpSocket::bind(addr).await.map_err(bind)?;
            let at = udp.local_addr().map_err(bind)?;
            // TCP on the port UDP got (port 0 picks one for both).
            let tcp = TcpListener::bind(at).await.map_err(bind)?;
            server.register_socket(udp);
            server.register_listener(tcp, TCP_IDLE, 64);
            bound.push(at);
        }
        let refresher = tokio::spawn(refresh(
            store,
            follow,
            config.default_region,
            config.fallback_order,
            current.clone(),
        ));
        let checker = tokio::spawn(health::run(config.check, current.clone()));
        Ok(Dns {
            server,
            bound,
            current,
            tasks: vec![refresher, checker],
        })
    }

    /// The addresses served (UDP and TCP on each).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.bound
    }

    /// The table and health the answers come from.
    pub fn current(&self) -> Arc<Current> {
        self.current.clone()
    }

    /// Serves until `shutdown`.
    pub async fn serve(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DnsError> {
        shutdown.await;
        for task in &self.tasks {
            task.abort();
        }
        self.server
            .shutdown_gracefully()
            .await
            .map_err(|e| DnsError::Serve(e.to_string()))
    }
}

/// An SOA serial that grows with every table read that changed something.
fn serial_now(previous: u32) -> u32 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    now.max(previous.wrapping_add(1))
}

async fn refresh(
    store: Store,
    mut follow: Follow,
    default_region: Option<String>,
    fallback_order: Vec<String>,
    current: Arc<Current>,
) {
    let mut failing = false;
    loop {
        follow.next().await;
        match load(&store, default_region.clone(), fallback_order.clone()).await {
            Ok(table) => {
                if failing {
                    tracing::info!("region table read from Postgres again");
                }
                failing = false;
                if **current.table.load() != table {
                    tracing::info!(regions = table.regions().len(), "region table changed");
                    current.table.store(Arc::new(table));
                    let previous = current.serial.load(Ordering::Relaxed);
                    current
                        .serial
                        .store(serial_now(previous), Ordering::Relaxed);
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot refresh the region table; answering from the last one");
            }
            Err(_) => {}
        }
    }
}
