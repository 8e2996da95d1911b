//! The registry's configuration file (distribution's YAML): where it listens, where it
//! keeps blobs, and that every request needs a token from the operator.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::{ISSUER, SERVICE};

/// Where the registry keeps images.
#[derive(Clone, PartialEq, Eq)]
pub enum Storage {
    /// A directory (one machine: `zeitwork up`).
    Filesystem(PathBuf),
    /// An S3-compatible bucket (a cluster: every registry replica shares it).
    S3 {
        bucket: String,
        region: String,
        /// The endpoint of an S3-compatible service (path-style requests); none: AWS.
        endpoint: Option<String>,
        access_key: String,
        secret_key: String,
    },
}

/// Secrets stay out of logs.
impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Filesystem(dir) => f.debug_tuple("Filesystem").field(dir).finish(),
            Storage::S3 {
                bucket,
                region,
                endpoint,
                ..
            } => f
                .debug_struct("S3")
                .field("bucket", bucket)
                .field("region", region)
                .field("endpoint", endpoint)
                .finish_non_exhaustive(),
        }
    }
}

/// One registry's configuration.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Where it listens (plain HTTP; put TLS in front of a public one).
    pub listen: SocketAddr,
    /// The token service's URL: `<operator API>/api/v1/registry/token`.
    pub realm: String,
    /// The certificate of the token key ([`crate::TokenKey::certificate_pem`]).
    pub certificate: PathBuf,
    pub storage: Storage,
    /// Shared by replicas behind one load balancer (upload state); random for one.
    pub http_secret: String,
}

impl RegistryConfig {
    /// The YAML `docker-registry serve` reads. Every string is written double-quoted the
    /// JSON way, which YAML reads as written.
    pub fn to_yaml(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).expect("strings serialize");
        let storage = match &self.storage {
            Storage::Filesystem(dir) => format!(
                "  filesystem:\n    rootdirectory: {}\n",
                q(&dir.display().to_string())
            ),
            Storage::S3 {
                bucket,
                region,
                endpoint,
                access_key,
                secret_key,
            } => {
                let mut s = format!(
                    "  s3:\n    bucket: {}\n    region: {}\n    accesskey: {}\n    secretkey: {}\n    v4auth: true\n",
                    q(bucket),
                    q(region),
                    q(access_key),
                    q(secret_key)
                );
                if let Some(endpoint) = endpoint {
                    s.push_str(&format!("    regionendpoint: {}\n", q(endpoint)));
                    let secure = endpoint.starts_with("https://");
                    s.push_str(&format!("    secure: {secure}\n"));
                }
                // Nodes fetch blobs through the registry, never from the bucket directly.
                s.push_str("  redirect:\n    disable: true\n");
                s
            }
        };
        // No blob descriptor cache: after a sweep deleted a blob, a cached descriptor would
        // let a later upload of that blob be skipped, leaving a manifest without it.
        format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n\
             storage:\n{storage}  delete:\n    enabled: true\n\
             http:\n  addr: {listen}\n  secret: {secret}\n\
             auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {cert}\n",
            listen = q(&self.listen.to_string()),
            secret = q(&self.http_secret),
            realm = q(&self.realm),
            service = q(SERVICE),
            issuer = q(ISSUER),
            cert = q(&self.certificate.display().to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_trusts_the_operators_tokens_only() {
        let config = RegistryConfig {
            listen: "127.0.0.1:5000".parse().unwrap(),
            realm: "http://127.0.0.1:8080/api/v1/registry/token".into(),
            certificate: "/data/registry/token.crt".into(),
            storage: Storage::Filesystem("/data/registry/storage".into()),
            http_secret: "s\"ecret".into(),
        };
        let yaml = config.to_yaml();
        for line in [
            "  addr: \"127.0.0.1:5000\"",
            "  secret: \"s\\\"ecret\"",
            "    realm: \"http://127.0.0.1:8080/api/v1/registry/token\"",
            "    service: \"zeitwork-registry\"",
            "    issuer: \"zeitwork\"",
            "    rootcertbundle: \"/data/registry/token.crt\"",
            "    rootdirectory: \"/data/registry/storage\"",
        ] {
            assert!(yaml.lines().any(|l| l == line), "{line} in:\n{yaml}");
        }
        let s3 = RegistryConfig {
            storage: Storage::S3 {
                bucket: "images".into(),
                region: "us-east-1".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                access_key: "AK".into(),
                secret_key: "SK".into(),
            },
            ..config
        };
        let yaml = s3.to_yaml();
        for line in [
            "    regionendpoint: \"http://127.0.0.1:9000\"",
            "    secure: false",
            "    disable: true",
            "    bucket: \"images\"",
        ] {
            assert!(yaml.lines().any(|l| l == line), "{line} in:\n{yaml}");
        }
        assert!(!format!("{:?}", s3.storage).contains("SK"));
    }
}
