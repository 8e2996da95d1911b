//! What the edge holds: every certificate (decrypted and parsed, ready for rustls) and
//! the open ACME challenges, as one immutable snapshot swapped in whole, so a handshake
//! reads a consistent set without locks and never waits on Postgres.

mod load;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::sign::CertifiedKey;
use uuid::Uuid;

use crate::names;

pub(crate) use load::load;

/// One certificate as an edge holds it. Certificates never change once stored (a renewal
/// is a new one), so a parsed one is shared by every later snapshot that still has it.
#[derive(Debug)]
pub(crate) struct Held {
    pub id: Uuid,
    pub hostnames: Vec<String>,
    pub not_after: DateTime<Utc>,
    pub key: Arc<CertifiedKey>,
}

/// A TLS-ALPN-01 challenge certificate and the key authorization it was made for.
#[derive(Debug, Clone)]
pub(crate) struct AlpnCert {
    pub key_authorization: String,
    pub key: Arc<CertifiedKey>,
}

#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The head of the event log when it was read.
    pub seq: i64,
    held: HashMap<Uuid, Arc<Held>>,
    /// Certificates whose key this edge cannot open (said once, not retried every refresh).
    unusable: HashSet<Uuid>,
    exact: HashMap<String, Arc<Held>>,
    /// By the domain a `*.domain` name is for.
    wildcard: HashMap<String, Arc<Held>>,
    /// HTTP-01 token → key authorization.
    http01: HashMap<String, String>,
    /// TLS-ALPN-01 hostname → challenge certificate.
    alpn: HashMap<String, AlpnCert>,
}

impl Snapshot {
    pub(crate) fn new(
        seq: i64,
        certs: Vec<Arc<Held>>,
        unusable: HashSet<Uuid>,
        http01: HashMap<String, String>,
        alpn: HashMap<String, AlpnCert>,
    ) -> Snapshot {
        let mut exact: HashMap<String, Arc<Held>> = HashMap::new();
        let mut wildcard: HashMap<String, Arc<Held>> = HashMap::new();
        for held in &certs {
            for name in &held.hostnames {
                let (map, key) = match names::wildcard_base(name) {
                    Some(base) => (&mut wildcard, base),
                    None => (&mut exact, name.as_str()),
                };
                // Of two certificates for a name, the one that lasts longer serves it.
                let better = map
                    .get(key)
                    .is_none_or(|cur| (held.not_after, held.id) > (cur.not_after, cur.id));
                if better {
                    map.insert(key.to_owned(), held.clone());
                }
            }
        }
        Snapshot {
            seq,
            held: certs.into_iter().map(|h| (h.id, h)).collect(),
            unusable,
            exact,
            wildcard,
            http01,
            alpn,
        }
    }

    /// The certificate for `host` (lowercase) at `now`: its own, else a wildcard one
    /// label up; an unexpired one before an expired one (which still beats none: the
    /// client then says what is wrong instead of failing the handshake blindly).
    pub(crate) fn for_host(&self, host: &str, now: DateTime<Utc>) -> Option<&Arc<Held>> {
        let exact = self.exact.get(host);
        if let Some(own) = exact.filter(|c| c.not_after > now) {
            return Some(own);
        }
        let wildcard = names::parent(host).and_then(|p| self.wildcard.get(p));
        match wildcard {
            Some(w) if w.not_after > now => Some(w),
            _ => exact.or(wildcard),
        }
    }

    /// The TLS-ALPN-01 challenge certificate for `host`.
    pub(crate) fn alpn(&self, host: &str) -> Option<&AlpnCert> {
        self.alpn.get(host)
    }

    pub(crate) fn http01(&self, token: &str) -> Option<&str> {
        self.http01.get(token).map(String::as_str)
    }

    /// A certificate this snapshot already parsed.
    pub(crate) fn held(&self, id: &Uuid) -> Option<&Arc<Held>> {
        self.held.get(id)
    }

    pub(crate) fn is_unusable(&self, id: &Uuid) -> bool {
        self.unusable.contains(id)
    }

    /// How many certificates are held.
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::testing::held;

    fn snapshot(certs: Vec<Arc<Held>>) -> Snapshot {
        Snapshot::new(1, certs, HashSet::new(), HashMap::new(), HashMap::new())
    }

    #[test]
    fn an_exact_certificate_beats_the_wildcard() {
        let later = Utc::now() + Duration::days(90);
        let wild = held(&["*.example.com"], later + Duration::days(300));
        let own = held(&["www.example.com"], later);
        let s = snapshot(vec![wild.clone(), own.clone()]);
        let now = Utc::now();
        assert_eq!(s.for_host("www.example.com", now).unwrap().id, own.id);
        assert_eq!(s.for_host("api.example.com", now).unwrap().id, wild.id);
    }

    #[test]
    fn an_expired_certificate_yields_to_a_current_wildcard() {
        let now = Utc::now();
        let wild = held(&["*.example.com"], now + Duration::days(90));
        let stale = held(&["www.example.com"], now - Duration::days(1));
        let s = snapshot(vec![wild.clone(), stale.clone()]);
        assert_eq!(s.for_host("www.example.com", now).unwrap().id, wild.id);
        let alone = snapshot(vec![stale.clone()]);
        assert_eq!(alone.for_host("www.example.com", now).unwrap().id, stale.id);
    }

    #[test]
    fn a_wildcard_covers_one_label_only() {
        let wild = held(&["*.example.com"], Utc::now() + Duration::days(90));
        let s = snapshot(vec![wild]);
        let now = Utc::now();
        assert!(s.for_host("a.example.com", now).is_some());
        assert!(s.for_host("a.b.example.com", now).is_none());
        assert!(s.for_host("example.com", now).is_none());
        assert!(s.for_host("a.example.org", now).is_none());
    }

    #[test]
    fn of_two_certificates_for_a_name_the_longer_lived_serves() {
        let now = Utc::now();
        let old = held(&["a.example.com"], now + Duration::days(5));
        let new = held(
            &["a.example.com", "b.example.com"],
            now + Duration::days(90),
        );
        let s = snapshot(vec![new.clone(), old.clone()]);
        assert_eq!(s.for_host("a.example.com", now).unwrap().id, new.id);
        assert_eq!(s.len(), 2);
        assert!(s.held(&old.id).is_some());
    }
}
