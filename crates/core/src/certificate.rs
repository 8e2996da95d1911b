//! TLS certificate vocabulary shared by the store (projections) and the edge's
//! certificate store (`zeitwork-certs`).

use serde::{Deserialize, Serialize};

/// Where a certificate came from: it decides who renews it. ACME certificates are
/// renewed (and dropped when no longer wanted) by the platform; operator certificates
/// (typically the base domain's wildcard) only by the operator importing a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertificateSource {
    Acme,
    Operator,
}

impl CertificateSource {
    /// The value of the `certificates.source` column.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateSource::Acme => "acme",
            CertificateSource::Operator => "operator",
        }
    }

    /// Reads the `certificates.source` column back.
    pub fn parse(s: &str) -> Option<CertificateSource> {
        match s {
            "acme" => Some(CertificateSource::Acme),
            "operator" => Some(CertificateSource::Operator),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_values_round_trip_and_match_serde() {
        for s in [CertificateSource::Acme, CertificateSource::Operator] {
            assert_eq!(CertificateSource::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(CertificateSource::parse("self-signed"), None);
    }
}
