//! What happens on a new connection before HTTP: the PROXY v2 header of a trusted load
//! balancer in front, which says who the client is, and on HTTPS the ClientHello, whose
//! SNI decides between passing the connection through to an app and terminating TLS
//! here. The hello is read before any handshake (zeitwork-l4) and, when the edge
//! terminates, replayed into rustls through [`Rewind`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use zeitwork_l4::{ProxyError, ProxyHeader, peek_client_hello, proxy_v2};

use super::guard::{Guarded, Verdict};
use super::rewind::Rewind;
use super::serve::{Serving, run};
use super::{Conn, Proxy, Redirect, Shared, express, relay};
use crate::tls::{ACME_TLS_ALPN, HANDSHAKE_TIMEOUT};

/// A load balancer sends its header with the connection; one that has not by then is
/// not coming.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Who a connection is from, and to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Addrs {
    /// The TCP peer, or the source a trusted load balancer's header names.
    pub client: SocketAddr,
    /// Where the client connected to, when a load balancer's header said so (otherwise
    /// the socket's own address, asked for only when needed).
    pub destination: Option<SocketAddr>,
}

/// The addresses of a new connection: when `peer` is a trusted load balancer, its
/// PROXY header is read first (and must be there). `None`: close the connection.
pub(super) async fn addresses(
    stream: &mut TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<Addrs> {
    let own = Addrs {
        client: peer,
        destination: None,
    };
    if !shared.trusts(peer.ip()) {
        return Some(own);
    }
    match proxy_v2::read_header(stream, PROXY_HEADER_TIMEOUT).await {
        Ok(ProxyHeader::Proxy {
            source,
            destination,
        }) => Some(Addrs {
            client: source,
            destination: Some(destination),
        }),
        // A health check, or addresses that are not IP: the peer stands for itself.
        Ok(ProxyHeader::Local | ProxyHeader::Unknown) => Some(own),
        // A plain TCP check opens and closes without a byte.
        Err(ProxyError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "a trusted proxy's connection has no valid PROXY v2 header; closing it");
            None
        }
    }
}

/// Plain HTTP/1.1.
pub(super) async fn plain(
    mut stream: TcpStream,
    peer: SocketAddr,
    redirect: Option<Arc<Redirect>>,
    proxy: Arc<Proxy>,
    serving: Serving<'_>,
) {
    let Some(addrs) = addresses(&mut stream, peer, &proxy.shared).await else {
        return;
    };
    http1(stream, addrs.client, false, redirect, proxy, serving).await;
}

/// HTTP/1.1 in the express lane, then (from the first request it does not take) in
/// hyper behind the framing guard.
async fn http1<S>(
    stream: S,
    client: SocketAddr,
    secure: bool,
    redirect: Option<Arc<Redirect>>,
    proxy: Arc<Proxy>,
    serving: Serving<'_>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let lane = express::Client {
        addr: client,
        secure,
        redirect: redirect.as_deref(),
        draining: serving.draining,
    };
    let Some((read, stream)) = express::serve(stream, lane, &proxy).await else {
        return;
    };
    let verdict = Arc::new(Verdict::default());
    let conn = Conn::new(client, secure, Some(verdict.clone()), redirect);
    let io = Guarded::new(Rewind::new(read, stream), verdict);
    run(io, conn, proxy, &serving.builders.h1, serving.watcher).await;
}

/// A `tcp` route's port: the bytes are relayed to an instance as they come.
pub(super) async fn raw(
    mut stream: TcpStream,
    peer: SocketAddr,
    port: u16,
    proxy: Arc<Proxy>,
    watcher: Watcher,
) {
    let Some(addrs) = addresses(&mut stream, peer, &proxy.shared).await else {
        return;
    };
    let target = proxy.shared.table.load().lookup_tcp(port).cloned();
    let Some(target) = target else {
        tracing::debug!(port, "the port's tcp route is gone; closing");
        return;
    };
    // Held for the connection's life, as for passthrough connections.
    let _watcher = watcher;
    relay::to_instance(&proxy.shared, &target, stream, Vec::new(), addrs).await;
}

/// TLS: passed through to the app when the SNI names a `tls-passthrough` route,
/// terminated here otherwise (without SNI too: the certificate resolver decides).
pub(super) async fn secured(
    mut stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    proxy: Arc<Proxy>,
    serving: Serving<'_>,
) {
    let Some(addrs) = addresses(&mut stream, peer, &proxy.shared).await else {
        return;
    };
    let mut hello = Vec::new();
    let server_name = match peek_client_hello(&mut stream, &mut hello, HANDSHAKE_TIMEOUT).await {
        Ok(parsed) => parsed.server_name,
        Err(e) => {
            tracing::debug!(client = %addrs.client, error = %e, "no ClientHello; closing");
            return;
        }
    };
    let table = proxy.shared.table.load();
    let passed = server_name.and_then(|name| table.lookup_passthrough(&name).cloned());
    drop(table);
    if let Some(target) = passed {
        // Opaque bytes: the drain waits for the connection (up to its timeout) by
        // holding the watcher, since the edge cannot ask the client to finish.
        let _watcher = serving.watcher;
        relay::to_instance(&proxy.shared, &target, stream, hello, addrs).await;
        return;
    }
    let stream = Rewind::new(hello, stream);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(client = %addrs.client, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(client = %addrs.client, "TLS handshake timed out");
            return;
        }
    };
    match stream.get_ref().1.alpn_protocol() {
        // The validation server has seen the challenge certificate: nothing more to say.
        Some(ACME_TLS_ALPN) => {}
        Some(b"h2") => {
            let conn = Conn::new(addrs.client, true, None, None);
            run(stream, conn, proxy, &serving.builders.h2, serving.watcher).await;
        }
        _ => http1(stream, addrs.client, true, None, proxy, serving).await,
    }
}
