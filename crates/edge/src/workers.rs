//! Thread-per-core serving: every worker is an OS thread with a single-threaded runtime
//! and listening sockets of its own, bound with SO_REUSEPORT so the kernel spreads new
//! connections across workers. A connection lives on one thread from accept to close:
//! no work stealing, no cross-thread wake-ups on the data path (measured in
//! BENCHMARKS.md). The same option lets a new edge process bind the ports while the old
//! one drains, so a restart refuses no connection.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};

use crate::tls::{CertSource, Https, Listeners};
use crate::{Edge, EdgeError};

/// Where an edge listens (the sockets are bound by each worker).
#[derive(Clone)]
pub struct ListenOn {
    pub http: SocketAddr,
    pub https: Option<HttpsOn>,
    /// Where the ports of `tcp` routes are opened.
    pub tcp: Option<IpAddr>,
}

#[derive(Clone)]
pub struct HttpsOn {
    pub addr: SocketAddr,
    pub certs: Arc<dyn CertSource>,
    /// The port clients reach HTTPS on (used in redirects).
    pub public_port: u16,
}

/// How many connections wait to be accepted per socket.
const BACKLOG: u32 = 4096;

/// A listening socket others (another worker, the next edge process) can bind too.
pub(crate) fn bind_shared(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// When one of several shared sockets closes, connections still waiting in its queue
/// are reset unless the kernel hands them to another socket of the group
/// (`net.ipv4.tcp_migrate_req`, Linux 5.14+). Turned on when the edge may (root);
/// otherwise a restart can drop the few connections queued at that instant.
fn migrate_queued_connections() {
    const KNOB: &str = "/proc/sys/net/ipv4/tcp_migrate_req";
    match std::fs::read_to_string(KNOB) {
        Ok(v) if v.trim() == "1" => {}
        Ok(_) => {
            if let Err(e) = std::fs::write(KNOB, "1") {
                tracing::warn!(error = %e, "cannot enable {KNOB}; a restart may reset connections queued at that instant");
            }
        }
        Err(_) => tracing::debug!("{KNOB} is missing (kernel before 5.14)"),
    }
}

impl ListenOn {
    /// Binds the first worker's sockets now (so a port in use fails the start, and port
    /// 0 becomes a real port the other workers then share).
    pub fn bind(self) -> Result<BoundOn, EdgeError> {
        let first = bind(&self)?;
        let mut on = self;
        on.http = first.http.local_addr().map_err(EdgeError::Bind)?;
        if let (Some(https), Some((listener, _, _))) = (&mut on.https, &first.https) {
            https.addr = listener.local_addr().map_err(EdgeError::Bind)?;
        }
        Ok(BoundOn { first, on })
    }
}

/// Sockets bound for the first worker, and the addresses the others bind.
pub struct BoundOn {
    first: Bound,
    on: ListenOn,
}

impl BoundOn {
    pub fn http_addr(&self) -> SocketAddr {
        self.on.http
    }

    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.on.https.as_ref().map(|h| h.addr)
    }

    /// The HTTPS port for redirects, once port 0 has become a real one.
    pub fn set_public_port(&mut self, port: u16) {
        if let Some(https) = &mut self.on.https {
            https.public_port = port;
        }
        if let Some((_, _, public_port)) = &mut self.first.https {
            *public_port = port;
        }
    }
}

impl Edge {
    /// Serves on `bound` with `workers` threads (at least one) until `shutdown`
    /// completes, then drains every worker.
    pub async fn run(
        &self,
        bound: BoundOn,
        workers: usize,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), EdgeError> {
        migrate_queued_connections();
        let BoundOn { first, on } = bound;
        let (stop, stopped) = watch::channel(false);
        let mut done = Vec::new();
        let mut sockets = Some(first);
        for n in 0..workers.max(1) {
            let listeners = match sockets.take() {
                Some(first) => first,
                None => bind(&on)?,
            };
            let (edge, mut stopped, (tx, rx)) = (self.clone(), stopped.clone(), oneshot::channel());
            std::thread::Builder::new()
                .name(format!("edge-{n}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for an edge worker");
                    let served = runtime.block_on(async move {
                        let listeners = listeners.into_tokio()?;
                        let shutdown = async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        };
                        edge.serve(listeners, shutdown).await
                    });
                    let _ = tx.send(served);
                })
                .map_err(EdgeError::Bind)?;
            done.push(rx);
        }
        shutdown.await;
        let _ = stop.send(true);
        let mut result = Ok(());
        for worker in done {
            // A worker that panicked has said nothing; the others' errors are reported.
            if let Ok(Err(e)) = worker.await {
                result = Err(e);
            }
        }
        result
    }
}

/// A worker's sockets, bound but not yet tied to its runtime.
struct Bound {
    http: std::net::TcpListener,
    https: Option<(std::net::TcpListener, Arc<dyn CertSource>, u16)>,
    tcp: Option<IpAddr>,
}

fn bind(on: &ListenOn) -> Result<Bound, EdgeError> {
    let std = |addr| {
        bind_shared(addr)
            .and_then(|l| l.into_std())
            .map_err(EdgeError::Bind)
    };
    Ok(Bound {
        http: std(on.http)?,
        https: match &on.https {
            Some(h) => Some((std(h.addr)?, h.certs.clone(), h.public_port)),
            None => None,
        },
        tcp: on.tcp,
    })
}

impl Bound {
    fn into_tokio(self) -> Result<Listeners, EdgeError> {
        Ok(Listeners {
            http: TcpListener::from_std(self.http).map_err(EdgeError::Bind)?,
            https: match self.https {
                Some((listener, certs, public_port)) => Some(Https {
                    listener: TcpListener::from_std(listener).map_err(EdgeError::Bind)?,
                    certs,
                    public_port,
                }),
                None => None,
            },
            tcp: self.tcp,
        })
    }
}
