//! Accepting clients: plain HTTP/1.1 (behind the framing guard), and TLS, where ALPN
//! picks HTTP/2 or HTTP/1.1 and ACME's TLS-ALPN-01 validations end at the handshake
//! (what comes before HTTP, [`super::accept`]). Every connection is watched for a
//! graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::accept::{plain, raw, secured};
use super::guard::Verdict;
use super::idle::{Activity, IDLE_CONNECTION, SLOW_READER, Tracked};
use super::ports::TcpPorts;
use super::{Conn, Proxy, Redirect};
use crate::EdgeError;
use crate::tls::{self, Listeners};

/// A client that has not sent a whole head by then is dropped (slowloris).
pub(super) const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept (out of file descriptors, …) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long a draining edge still reads the first request of connections it accepted
/// last.
const SETTLE: Duration = Duration::from_millis(300);
/// Streams one HTTP/2 client may have open at once.
const MAX_STREAMS: u32 = 256;

/// What a connection is served with, besides the proxy.
pub(super) struct Serving<'a> {
    pub builders: &'a Builders,
    /// Held until the connection ends: a graceful shutdown waits for it.
    pub watcher: Watcher,
    /// Turns true when the edge drains.
    pub draining: watch::Receiver<bool>,
}

/// The two ways a connection is spoken to: HTTP/1.1 only, or HTTP/2 only (chosen by ALPN).
pub(super) struct Builders {
    pub h1: auto::Builder<TokioExecutor>,
    pub h2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new() -> Builders {
        let mut h1 = auto::Builder::new(TokioExecutor::new()).http1_only();
        h1.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT);
        let mut h2 = auto::Builder::new(TokioExecutor::new()).http2_only();
        h2.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS)
            .keep_alive_interval(Duration::from_secs(30));
        Builders { h1, h2 }
    }
}

pub(crate) async fn serve(
    proxy: Arc<Proxy>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) -> Result<(), EdgeError> {
    let graceful = GracefulShutdown::new();
    // Tells the express lane's connections to finish (hyper's are told by `graceful`).
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    let builders = Arc::new(Builders::new());
    let Listeners { http, https, tcp } = listeners;
    let mut ports = TcpPorts::new(tcp);
    let mut swapped = proxy.shared.swapped.subscribe();
    ports.follow(&proxy.shared.table.load());
    let redirect = https.as_ref().map(|h| {
        Arc::new(Redirect {
            certs: h.certs.clone(),
            port: h.public_port,
        })
    });
    let https = https.map(|h| {
        let acceptor = TlsAcceptor::from(tls::server_config(h.certs.resolver()));
        (h.listener, acceptor)
    });
    tokio::pin!(shutdown);
    loop {
        let (accepted, on) = tokio::select! {
            accepted = http.accept() => (accepted, On::Http),
            accepted = accept(https.as_ref().map(|(l, _)| l)) => (accepted, On::Https),
            (port, accepted) = ports.accept() => (accepted, On::Tcp(port)),
            Ok(()) = swapped.changed() => {
                ports.follow(&proxy.shared.table.load());
                continue;
            }
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (proxy, builders, watcher) = (proxy.clone(), builders.clone(), graceful.watcher());
        let draining = draining.clone();
        match (&https, on) {
            (Some((_, acceptor)), On::Https) => {
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    let serving = Serving {
                        builders: &builders,
                        watcher,
                        draining,
                    };
                    secured(stream, peer, acceptor, proxy, serving).await;
                });
            }
            (_, On::Tcp(port)) => {
                connections.spawn(async move {
                    raw(stream, peer, port, proxy, watcher).await;
                });
            }
            _ => {
                let redirect = redirect.clone();
                connections.spawn(async move {
                    let serving = Serving {
                        builders: &builders,
                        watcher,
                        draining,
                    };
                    plain(stream, peer, redirect, proxy, serving).await;
                });
            }
        }
        while connections.try_join_next().is_some() {}
    }
    drop((http, https, ports));
    // A connection accepted just before the listeners closed has not sent its request
    // yet, and a graceful shutdown closes idle connections at once: its client would see
    // a reset. Those requests are let in first (and bounded by the same drain timeout).
    let settle = SETTLE.min(drain_timeout);
    tokio::time::sleep(settle).await;
    let drain_for = drain_timeout.saturating_sub(settle);
    drain.send_replace(true);
    if tokio::time::timeout(drain_for, graceful.shutdown())
        .await
        .is_err()
    {
        connections.shutdown().await;
        return Err(EdgeError::Drain(drain_timeout));
    }
    Ok(())
}

/// Which kind of socket a client came in on.
#[derive(Clone, Copy)]
enum On {
    Http,
    Https,
    /// A `tcp` route's port.
    Tcp(u16),
}

/// The next client of `listener`; never, without one.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Serves one client connection until it ends (or the drain cuts it).
pub(super) async fn run<I>(
    io: I,
    conn: Conn,
    proxy: Arc<Proxy>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = conn.client;
    let conn = Arc::new(conn);
    let activity = Activity::new();
    let service = service_fn({
        let activity = activity.clone();
        move |req| {
            let (proxy, conn, busy) = (proxy.clone(), conn.clone(), activity.begin());
            async move {
                let response = proxy.handle(req, &conn).await;
                Ok::<_, Infallible>(response.map(|body| Tracked::new(body, busy)))
            }
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let watched = watcher.watch(connection);
    tokio::pin!(watched);
    tokio::select! {
        ended = &mut watched => if let Err(e) = ended {
            tracing::debug!(%client, error = %e, "client connection ended with an error");
        },
        why = activity.idle_for(IDLE_CONNECTION, SLOW_READER) => {
            tracing::debug!(%client, why, "closing a client connection");
        }
    }
}

impl Conn {
    pub(super) fn new(
        client: SocketAddr,
        secure: bool,
        verdict: Option<Arc<Verdict>>,
        redirect: Option<Arc<Redirect>>,
    ) -> Conn {
        Conn {
            client,
            secure,
            verdict,
            redirect,
            requests: AtomicU64::new(0),
            client_header: HeaderValue::from_str(&client.ip().to_string())
                .expect("an IP is a header value"),
        }
    }
}
