//! How the ACME issuer behaves.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use instant_acme::ChallengeType;

/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Which validation the issuer asks the CA for (the other is used when the CA does not
/// offer the preferred one). HTTP-01 needs port 80 of the edges reachable from the CA,
/// TLS-ALPN-01 port 443.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChallengeKind {
    #[default]
    Http01,
    TlsAlpn01,
}

impl ChallengeKind {
    /// The RFC name (`http-01`, `tls-alpn-01`), also the `acme_challenges.kind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }

    pub(crate) fn acme(self) -> ChallengeType {
        match self {
            ChallengeKind::Http01 => ChallengeType::Http01,
            ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        }
    }

    pub(crate) fn other(self) -> ChallengeKind {
        match self {
            ChallengeKind::Http01 => ChallengeKind::TlsAlpn01,
            ChallengeKind::TlsAlpn01 => ChallengeKind::Http01,
        }
    }

    /// What must be true for the CA to reach the edges with this challenge.
    pub(crate) fn hint(self, host: &str) -> String {
        let port = match self {
            ChallengeKind::Http01 => 80,
            ChallengeKind::TlsAlpn01 => 443,
        };
        format!(
            "check that DNS for {host} points at the edges (or their load balancer) and that \
             port {port} there is reachable from the internet"
        )
    }
}

impl FromStr for ChallengeKind {
    type Err = String;

    fn from_str(s: &str) -> Result<ChallengeKind, String> {
        match s {
            "http-01" => Ok(ChallengeKind::Http01),
            "tls-alpn-01" => Ok(ChallengeKind::TlsAlpn01),
            other => Err(format!(
                "unknown ACME challenge {other:?}: use http-01 or tls-alpn-01"
            )),
        }
    }
}

/// The issuer's settings; [`AcmeConfig::new`] gives the production values.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The ACME directory (`--acme-directory` / `ZEITWORK_ACME_DIRECTORY`).
    pub directory_url: String,
    /// Extra PEM roots to trust for the directory's HTTPS (`ZEITWORK_ACME_CA_BUNDLE`), on
    /// top of the public web PKI: for a private ACME server.
    pub ca_bundle: Option<PathBuf>,
    /// Where the CA sends expiry and policy mail (`--acme-email`).
    pub contact_email: Option<String>,
    /// Certificates are renewed this long before they expire.
    pub renew_before: Duration,
    pub challenge: ChallengeKind,
    /// Platform hostnames are one label under it; none is ordered when a wildcard for
    /// it is stored, nor when it is under `localhost`.
    pub base_domain: String,
    /// How often a round runs without a notification (±25 %).
    pub check_every: Duration,
    /// How long a published challenge is given to reach every edge before the CA is told
    /// to validate; without NATS at least the edges' resync period is waited.
    pub propagation: Duration,
    /// How long one order may take from challenge to certificate.
    pub order_timeout: Duration,
    /// The wait after a hostname's first failure; it doubles with each further failure
    /// up to a day.
    pub first_retry: Duration,
    /// At most this many orders per round, so a backlog drains gently within CA limits.
    pub max_orders_per_round: usize,
}

impl AcmeConfig {
    pub fn new(base_domain: impl Into<String>) -> AcmeConfig {
        AcmeConfig {
            directory_url: LETS_ENCRYPT.into(),
            ca_bundle: None,
            contact_email: None,
            renew_before: Duration::from_secs(30 * 24 * 3600),
            challenge: ChallengeKind::Http01,
            base_domain: base_domain.into(),
            check_every: Duration::from_secs(600),
            propagation: Duration::from_secs(2),
            order_timeout: Duration::from_secs(180),
            first_retry: Duration::from_secs(300),
            max_orders_per_round: 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_names_parse_back() {
        for kind in [ChallengeKind::Http01, ChallengeKind::TlsAlpn01] {
            assert_eq!(kind.as_str().parse::<ChallengeKind>(), Ok(kind));
            assert_eq!(kind.other().other(), kind);
        }
        assert!("dns-01".parse::<ChallengeKind>().is_err());
    }
}
