//! One client connection: a backend is found, then bytes are copied both ways until
//! both sides have finished.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::Inner;
use super::backend::{Gauge, Source};
use super::pick;
use crate::proxy_v2;

pub(super) async fn relay(inner: Arc<Inner>, mut client: TcpStream, peer: SocketAddr) {
    inner.accepted.fetch_add(1, Ordering::Relaxed);
    let _active = Gauge::up(&inner.active);
    let _ = client.set_nodelay(true);
    let Some((index, mut upstream)) = connect(&inner, peer).await else {
        inner.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%peer, "no backend accepted the connection; closing it");
        return;
    };
    let backend = &inner.backends[index];
    let _backend_active = Gauge::up(&backend.active);
    if inner.config.proxy_protocol {
        // The address the client connected to; the listener's, when it is a wildcard.
        let destination = client.local_addr().unwrap_or(inner.config.listen);
        let header = proxy_v2::encode(peer, destination);
        if let Err(e) = upstream.write_all(&header).await {
            tracing::debug!(%peer, backend = %backend.addr, error = %e, "sending the PROXY header failed");
            return;
        }
    }
    // An EOF from one side is passed on as a shutdown of the other's write half, and the
    // other direction keeps flowing until it ends too: half-closed streams work.
    match crate::splice(&mut client, &mut upstream, crate::RELAY_IDLE).await {
        Ok((up, down)) => {
            tracing::trace!(%peer, backend = %backend.addr, up, down, "connection closed");
        }
        Err(e) => {
            tracing::debug!(%peer, backend = %backend.addr, error = %e, "connection ended with an error");
        }
    }
}

/// Tries backends in the algorithm's order until one accepts.
async fn connect(inner: &Inner, peer: SocketAddr) -> Option<(usize, TcpStream)> {
    let order = pick::order(
        inner.config.algorithm,
        &inner.backends,
        peer.ip(),
        &inner.next,
    );
    for index in order {
        let backend = &inner.backends[index];
        let attempt = tokio::time::timeout(
            inner.config.connect_timeout,
            TcpStream::connect(backend.addr),
        )
        .await;
        match attempt {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                backend.connected();
                return Some((index, stream));
            }
            Ok(Err(e)) => {
                tracing::debug!(backend = %backend.addr, error = %e, "backend refused a connection; trying the next");
            }
            Err(_elapsed) => {
                tracing::debug!(backend = %backend.addr, "backend did not accept in time; trying the next");
            }
        }
        backend.record(false, Source::Client, &inner.config.health);
    }
    None
}
