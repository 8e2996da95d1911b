//! Choosing a certificate per ClientHello. Runs on every handshake: one atomic snapshot
//! load and one or two hash lookups, no allocation unless the SNI is not lowercase.

use std::borrow::Cow;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::Utc;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::alpn::ACME_TLS_ALPN;
use crate::snapshot::Snapshot;

pub(crate) struct Resolver {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("certificates", &self.snapshot.load().len())
            .finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Without SNI there is no name to choose by: no certificate, so the handshake fails
        // cleanly rather than showing some tenant's certificate to a client that asked
        // for an IP address.
        let sni = hello.server_name()?;
        let acme = hello.alpn().is_some_and(|mut protocols| {
            protocols.next() == Some(ACME_TLS_ALPN) && protocols.next().is_none()
        });
        choose(&self.snapshot.load(), sni, acme)
    }
}

/// The certificate for `sni`; with `acme_tls` (the client offered exactly `acme-tls/1`)
/// only the TLS-ALPN-01 challenge certificate for it, never a real one (RFC 8737 §3).
pub(crate) fn choose(snapshot: &Snapshot, sni: &str, acme_tls: bool) -> Option<Arc<CertifiedKey>> {
    let host = normalized(sni);
    if acme_tls {
        return snapshot.alpn(&host).map(|c| c.key.clone());
    }
    snapshot
        .for_host(&host, Utc::now())
        .map(|held| held.key.clone())
}

/// `sni` lowercase without a trailing dot, borrowed when it already is.
pub(crate) fn normalized(sni: &str) -> Cow<'_, str> {
    let trimmed = sni.strip_suffix('.').unwrap_or(sni);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

#[cfg(test)]
mod tests;
