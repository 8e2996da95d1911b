//! How the edge treats one route's traffic: load balancing, time and size limits, rate
//! limits, security headers and CORS. Every field has a default, so an empty policy is
//! the platform's behaviour, and a route states only where it differs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest::Seconds;

/// Security headers the edge adds to every answer that lacks them; a route may change
/// their values or turn one off with an empty string.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    // Sent over HTTPS only (RFC 6797, 7.2). No includeSubDomains: a custom domain's
    // other names may not be served here.
    ("strict-transport-security", "max-age=31536000"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
];

/// The highest rate (requests per second) or burst a route's rate limit takes.
pub const MAX_RATE: u32 = 1_000_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutePolicy {
    #[serde(default)]
    pub balance: Balance,
    /// What identifies a client for `consistent-hash`: `client-ip` (the default),
    /// `header:<name>` or `cookie:<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<String>,
    /// How long the app may take to begin its answer (default 60 s) before a 504.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Seconds>,
    /// Largest request body in MiB (default 100) before a 413.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Security header name (lowercase, one of [`SECURITY_HEADERS`]) → value; "" = off.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConnections,
    /// The same client goes to the same instance while the set of instances holds.
    ConsistentHash,
}

/// Requests per second; above it the client gets 429 with Retry-After.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Per client IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_client: Option<u32>,
    /// For the whole route, all clients together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_route: Option<u32>,
    /// Requests allowed at once above the rate (default: one second's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// Cross-origin requests the edge allows on the app's behalf (preflights are answered
/// by the edge; the app never sees them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// `https://example.com` origins, or `*`.
    pub origins: Vec<String>,
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub expose: Vec<String>,
    #[serde(default)]
    pub credentials: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Seconds>,
}

fn default_methods() -> Vec<String> {
    ["GET", "HEAD", "POST"].map(String::from).to_vec()
}

/// A policy field that cannot work: `(field path, what to do about it)`.
pub type PolicyError = (String, String);

impl RoutePolicy {
    /// Everything serde cannot check; the field path is relative to the policy.
    pub fn check(&self) -> Result<(), PolicyError> {
        let bad = |field: &str, message: &str| Err((field.to_owned(), message.to_owned()));
        if let Some(on) = &self.hash_on {
            let named = |prefix| on.strip_prefix(prefix).is_some_and(token);
            if on != "client-ip" && !named("header:") && !named("cookie:") {
                return bad("hash_on", "use client-ip, header:<name> or cookie:<name>");
            }
            if self.balance != Balance::ConsistentHash {
                return bad("hash_on", "hash_on needs balance = \"consistent-hash\"");
            }
        }
        if self
            .timeout
            .is_some_and(|t| t.as_millis() == 0 || t > Seconds::HOUR)
        {
            return bad("timeout", "a timeout is between 1 ms and 1 hour");
        }
        if self.max_body_mb.is_some_and(|m| m == 0 || m > 10_240) {
            return bad("max_body_mb", "max_body_mb is between 1 and 10240");
        }
        if let Some(limit) = &self.rate_limit {
            let out_of_range = |v: Option<u32>| v.is_some_and(|v| v == 0 || v > MAX_RATE);
            if [limit.per_client, limit.per_route, limit.burst]
                .into_iter()
                .any(out_of_range)
            {
                return bad(
                    "rate_limit",
                    &format!("rates and burst are between 1 and {MAX_RATE}"),
                );
            }
            if limit.per_client.is_none() && limit.per_route.is_none() {
                return bad("rate_limit", "set per_client, per_route or both");
            }
        }
        for (name, value) in &self.headers {
            if !SECURITY_HEADERS.iter().any(|(known, _)| known == name) {
                let known: Vec<&str> = SECURITY_HEADERS.iter().map(|(n, _)| *n).collect();
                return bad(
                    &format!("headers.{name}"),
                    &format!("only these headers can be set: {}", known.join(", ")),
                );
            }
            if http_value(value).is_none() {
                return bad(&format!("headers.{name}"), "not a valid header value");
            }
        }
        if let Some(cors) = &self.cors {
            cors.check()?;
        }
        Ok(())
    }
}

impl Cors {
    fn check(&self) -> Result<(), PolicyError> {
        let bad = |field: &str, message: &str| Err((format!("cors.{field}"), message.to_owned()));
        if self.origins.is_empty() {
            return bad("origins", "name at least one origin, or \"*\"");
        }
        for origin in &self.origins {
            if origin == "*" {
                if self.credentials {
                    return bad("origins", "\"*\" cannot be used with credentials = true");
                }
                continue;
            }
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let valid = rest.is_some_and(|r| {
                !r.is_empty()
                    && r.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            });
            if !valid {
                return bad(
                    "origins",
                    &format!("{origin:?} is not an origin like https://example.com"),
                );
            }
        }
        for (field, list) in [
            ("methods", &self.methods),
            ("headers", &self.headers),
            ("expose", &self.expose),
        ] {
            if let Some(item) = list.iter().find(|m| !token(m)) {
                return bad(field, &format!("{item:?} is not a method or header name"));
            }
        }
        Ok(())
    }
}

/// An HTTP token (RFC 9110, 5.6.2): a method or header name.
fn token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn http_value(text: &str) -> Option<()> {
    text.bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        .then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: serde_json::Value) -> Result<RoutePolicy, String> {
        let policy: RoutePolicy = serde_json::from_value(json).map_err(|e| e.to_string())?;
        policy.check().map_err(|(f, m)| format!("{f}: {m}"))?;
        Ok(policy)
    }

    #[test]
    fn an_empty_policy_is_the_default() {
        assert_eq!(
            policy(serde_json::json!({})).unwrap(),
            RoutePolicy::default()
        );
        let text = serde_json::to_string(&RoutePolicy::default()).unwrap();
        assert_eq!(text, r#"{"balance":"round-robin"}"#);
    }

    #[test]
    fn a_full_policy_reads_back() {
        let p = policy(serde_json::json!({
            "balance": "consistent-hash", "hash_on": "cookie:session", "timeout": "30s",
            "max_body_mb": 5, "rate_limit": {"per_client": 10, "burst": 20},
            "headers": {"x-frame-options": "DENY", "strict-transport-security": ""},
            "cors": {"origins": ["https://shop.example.com"], "credentials": true, "max_age": "10m"}
        }))
        .unwrap();
        assert_eq!(p.balance, Balance::ConsistentHash);
        assert_eq!(p.cors.unwrap().methods, ["GET", "HEAD", "POST"]);
        assert_eq!(p.timeout, Seconds::from_secs(30));
    }

    #[test]
    fn bad_policies_name_their_field() {
        for (json, field) in [
            (serde_json::json!({"balance": "random"}), "unknown variant"),
            (serde_json::json!({"sticky": true}), "unknown field"),
            (serde_json::json!({"hash_on": "client-ip"}), "hash_on"),
            (
                serde_json::json!({"balance": "consistent-hash", "hash_on": "header:"}),
                "hash_on",
            ),
            (serde_json::json!({"max_body_mb": 0}), "max_body_mb"),
            (serde_json::json!({"rate_limit": {}}), "rate_limit"),
            (
                serde_json::json!({"rate_limit": {"per_client": 0}}),
                "rate_limit",
            ),
            (
                serde_json::json!({"headers": {"server": "x"}}),
                "headers.server",
            ),
            (
                serde_json::json!({"headers": {"x-frame-options": "a\nb"}}),
                "headers.x-frame-options",
            ),
            (serde_json::json!({"cors": {"origins": []}}), "cors.origins"),
            (
                serde_json::json!({"cors": {"origins": ["*"], "credentials": true}}),
                "cors.origins",
            ),
            (
                serde_json::json!({"cors": {"origins": ["example.com"]}}),
                "cors.origins",
            ),
            (
                serde_json::json!({"cors": {"origins": ["*"], "methods": ["GE T"]}}),
                "cors.methods",
            ),
        ] {
            let error = policy(json.clone()).unwrap_err();
            assert!(error.contains(field), "{json}: {error}");
        }
    }
}
