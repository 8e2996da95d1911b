//! Relayed connections: `tls-passthrough` routes, where the app holds the certificate
//! and terminates TLS itself, and `tcp` routes, reached on their own port. For
//! passthrough the edge has routed by the SNI of the ClientHello it peeked; either way it
//! connects to an instance (chosen and ejected as for HTTP), sends a PROXY v2 header
//! when the route asks for one (inside TLS, or in a protocol it does not know, the app
//! has no other way to learn the client's address), then the bytes already read, and
//! copies bytes both ways until both sides finish. Every handshake for a passthrough
//! name goes to the app, ACME TLS-ALPN-01 ones included: the app owns its certificate.

use std::net::SocketAddr;

use http::HeaderMap;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use zeitwork_l4::proxy_v2;

use super::accept::Addrs;
use super::balance::{Backends, Candidate, InFlight};
use super::forward::CONNECT_TIMEOUT;
use super::{Shared, policy};
use crate::metrics::UpstreamError;
use crate::table::Target;

/// Relays `client`, whose first bytes (`hello`: a ClientHello, or nothing) were already
/// read, to an instance of `target`.
pub(super) async fn to_instance(
    shared: &Shared,
    target: &Target,
    mut client: TcpStream,
    hello: Vec<u8>,
    addrs: Addrs,
) {
    let ip = addrs.client.ip();
    if target.backends().is_empty() {
        tracing::debug!(client = %addrs.client, "a relayed route has no healthy instance; closing");
        return;
    }
    // Each connection counts as one request against the route's limits.
    if shared.limits.check(target, ip).is_err() {
        tracing::debug!(client = %addrs.client, "over a relayed route's rate limit; closing");
        return;
    }
    let key = policy::client_key(target.policy(), &HeaderMap::new(), ip);
    let plan = shared.backends.plan(target, key);
    // Held for the connection's life, so least-connections sees it.
    let Some((mut upstream, backend, _in_flight)) = connect(&shared.backends, plan).await else {
        target.metrics().upstream_error(UpstreamError::Unreachable);
        tracing::warn!(client = %addrs.client, "no instance of a relayed route accepted; closing");
        return;
    };
    let mut preface = Vec::new();
    if target.proxy_protocol() {
        let destination = match addrs.destination {
            Some(destination) => destination,
            None => match client.local_addr() {
                Ok(local) => local,
                Err(_) => return,
            },
        };
        preface = proxy_v2::encode(addrs.client, destination);
    }
    preface.extend(hello);
    if let Err(e) = upstream.write_all(&preface).await {
        tracing::debug!(%backend, error = %e, "sending the first bytes upstream failed");
        return;
    }
    drop(preface);
    // An EOF from one side shuts the other's write half; the other direction flows on.
    match zeitwork_l4::splice(&mut client, &mut upstream, zeitwork_l4::RELAY_IDLE).await {
        Ok((up, down)) => tracing::trace!(%backend, up, down, "relayed connection closed"),
        Err(e) => {
            tracing::debug!(%backend, error = %e, "relayed connection ended with an error")
        }
    }
}

/// The first instance of `plan` that accepts a connection; those that do not are
/// ejected, as refused connections are for HTTP.
async fn connect(
    backends: &Backends,
    plan: Vec<Candidate>,
) -> Option<(TcpStream, SocketAddr, InFlight)> {
    for candidate in plan {
        let in_flight = backends.begin(&candidate);
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(candidate.addr));
        match attempt.await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                backends.succeeded(&candidate);
                return Some((stream, candidate.addr, in_flight));
            }
            Ok(Err(e)) => {
                tracing::debug!(backend = %candidate.addr, error = %e, "relay connect failed; trying the next instance");
            }
            Err(_) => {
                tracing::debug!(backend = %candidate.addr, "relay connect timed out; trying the next instance");
            }
        }
        backends.failed(&candidate, true);
    }
    None
}
