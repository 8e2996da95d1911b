//! How the owner of a custom domain proves it: a DNS TXT record at
//! `_zeitwork-challenge.<hostname>` holding `zeitwork-verification=<token>`, the token
//! the platform made when the domain was added. Until the operator has seen that record
//! (a `domain_verified` event), no edge serves the domain and no certificate is ordered
//! for it, so nobody can take over a hostname they do not control.
//!
//! The record's shape lives here, without I/O, because the API shows it to users and
//! the operator checks it: both must spell it the same way.

use serde::{Deserialize, Serialize};

/// The label put in front of the hostname. A dedicated one (rather than a TXT record at
/// the hostname itself) leaves the apex's SPF and other TXT records alone, and works for
/// names that are CNAMEs, which may hold no other record.
pub const CHALLENGE_LABEL: &str = "_zeitwork-challenge";

/// What the record's value starts with, so a shared name can hold other TXT records.
pub const VALUE_PREFIX: &str = "zeitwork-verification=";

/// The TXT record that proves ownership of one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TxtRecord {
    /// `_zeitwork-challenge.<hostname>`, without the trailing dot users do not type.
    pub name: String,
    /// Always `TXT`; spelled out so the API answer reads like a zone file line.
    #[serde(rename = "type")]
    pub kind: String,
    /// `zeitwork-verification=<token>`.
    pub value: String,
}

impl TxtRecord {
    /// The record for `hostname` (as stored: lowercase, no trailing dot) and its token.
    pub fn for_domain(hostname: &str, token: &str) -> TxtRecord {
        TxtRecord {
            name: format!("{CHALLENGE_LABEL}.{hostname}"),
            kind: "TXT".into(),
            value: format!("{VALUE_PREFIX}{token}"),
        }
    }

    /// The name to query: absolute (trailing dot), so a resolver's search domains are
    /// never appended to it.
    pub fn query_name(&self) -> String {
        format!("{}.", self.name)
    }

    /// Whether one of the TXT values published at [`Self::name`] is this record. Each
    /// value is the concatenation of one record's character-strings (as RFC 7208 §3.3
    /// reads SPF), so a provider that splits long values into 255-byte strings still
    /// matches; blanks around a value are forgiven, anything else is not.
    pub fn is_among(&self, published: &[String]) -> bool {
        published.iter().any(|v| v.trim() == self.value)
    }
}

impl std::fmt::Display for TxtRecord {
    /// `_zeitwork-challenge.shop.example.com TXT "zeitwork-verification=…"`: one zone
    /// file line, what a user copies into their DNS provider.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} \"{}\"", self.name, self.kind, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_names_the_challenge_label_and_the_token() {
        let r = TxtRecord::for_domain("shop.example.com", "abc123");
        assert_eq!(r.name, "_zeitwork-challenge.shop.example.com");
        assert_eq!(r.query_name(), "_zeitwork-challenge.shop.example.com.");
        assert_eq!(r.value, "zeitwork-verification=abc123");
        assert_eq!(
            r.to_string(),
            "_zeitwork-challenge.shop.example.com TXT \"zeitwork-verification=abc123\""
        );
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({
                "name": "_zeitwork-challenge.shop.example.com",
                "type": "TXT",
                "value": "zeitwork-verification=abc123",
            })
        );
    }

    #[test]
    fn only_the_exact_value_proves_ownership() {
        let r = TxtRecord::for_domain("shop.example.com", "abc123");
        let published = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(r.is_among(&published(&["v=spf1 -all", "zeitwork-verification=abc123"])));
        assert!(r.is_among(&published(&[" zeitwork-verification=abc123 "])));
        assert!(!r.is_among(&published(&[])));
        assert!(!r.is_among(&published(&["zeitwork-verification=abc1234"])));
        assert!(!r.is_among(&published(&["zeitwork-verification=ABC123"])));
        assert!(!r.is_among(&published(&["abc123"])));
    }
}
