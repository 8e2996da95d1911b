//! Image references, credentials, and how we reach a registry (HTTPS, or plain HTTP where that
//! is the norm) — plus turning `oci-client`'s errors into ours.

use std::net::IpAddr;
use std::time::Duration;

use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;

use crate::ImageError;
use crate::error::chain;

/// The environment variable listing registries (`host[:port]`, comma-separated) that are reached
/// over plain HTTP although they are not on loopback.
pub const INSECURE_REGISTRIES_ENV: &str = "ZEITWORK_INSECURE_REGISTRIES";

/// Credentials for a registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No credentials (public images, local registries). Registries that hand out anonymous
    /// bearer tokens (Docker Hub, GHCR) work with this too.
    #[default]
    Anonymous,
    /// HTTP basic credentials, also exchanged for a bearer token when the registry asks for one.
    Basic {
        /// The user name (or token name).
        username: String,
        /// The password (or token).
        password: String,
    },
    /// A bearer token the caller obtained itself.
    Bearer(String),
}

/// Secrets stay out of logs and error reports.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Anonymous => f.write_str("Anonymous"),
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Auth {
    pub(crate) fn to_oci(&self) -> RegistryAuth {
        match self {
            Auth::Anonymous => RegistryAuth::Anonymous,
            Auth::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Auth::Bearer(token) => RegistryAuth::Bearer(token.clone()),
        }
    }
}

/// Parses `[REGISTRY/]NAME[:TAG][@DIGEST]` (Docker's grammar; a bare name means Docker Hub and
/// tag `latest`).
pub(crate) fn parse(reference: &str) -> Result<Reference, ImageError> {
    let bad = |reason: String| ImageError::BadReference {
        reference: reference.to_owned(),
        reason,
    };
    if reference.trim() != reference {
        return Err(bad("it has leading or trailing white space".into()));
    }
    let parsed: Reference = reference.parse().map_err(|e| bad(format!("{e}")))?;
    if parsed.repository().bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("repository names must be lowercase".into()));
    }
    if let Some(digest) = parsed.digest()
        && !digest.starts_with("sha256:")
    {
        return Err(bad(format!(
            "digest {digest} is not sha256, the only algorithm supported"
        )));
    }
    Ok(parsed)
}

/// Which registries are spoken to over plain HTTP.
#[derive(Clone, Debug, Default)]
pub(crate) struct Transport {
    /// `host` or `host:port` entries; a bare host covers all its ports.
    insecure: Vec<String>,
}

impl Transport {
    /// Reads [`INSECURE_REGISTRIES_ENV`].
    pub(crate) fn from_env() -> Transport {
        let list = std::env::var(INSECURE_REGISTRIES_ENV).unwrap_or_default();
        Transport::new(list.split(',').map(str::to_owned))
    }

    /// Reads [`INSECURE_REGISTRIES_ENV`] and adds `extra`.
    pub(crate) fn from_env_and(extra: &[String]) -> Transport {
        let mut transport = Transport::from_env();
        transport
            .insecure
            .extend(Transport::new(extra.to_vec()).insecure);
        transport
    }

    pub(crate) fn new(insecure: impl IntoIterator<Item = String>) -> Transport {
        let insecure = insecure
            .into_iter()
            .map(|entry| entry.trim().to_ascii_lowercase())
            .filter(|entry| !entry.is_empty())
            .collect();
        Transport { insecure }
    }

    /// Whether `registry` (`host[:port]`) is reached over plain HTTP: loopback registries are,
    /// as Docker does (a test or a node-local registry has no certificate), and so are those
    /// listed in [`INSECURE_REGISTRIES_ENV`]. Everything else needs TLS.
    pub(crate) fn plain_http(&self, registry: &str) -> bool {
        let registry = registry.to_ascii_lowercase();
        let (host, _) = split_host_port(&registry);
        is_loopback(host)
            || self
                .insecure
                .iter()
                .any(|entry| *entry == registry || *entry == host)
    }

    /// An `oci-client` for the registry of `reference`.
    pub(crate) fn client(&self, reference: &Reference) -> oci_client::Client {
        let registry = reference.resolve_registry().to_owned();
        let protocol = if self.plain_http(&registry) {
            ClientProtocol::HttpsExcept(vec![registry])
        } else {
            ClientProtocol::Https
        };
        oci_client::Client::new(ClientConfig {
            protocol,
            // Index resolution is ours (we must know the index digest and report platforms).
            platform_resolver: None,
            // One request per blob: chunked uploads only add round trips for our sizes.
            use_monolithic_push: true,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        })
    }
}

/// Splits `host:port`, `[v6]:port`, `host` and `[v6]` into the host (without brackets) and port.
fn split_host_port(registry: &str) -> (&str, Option<&str>) {
    if let Some(rest) = registry.strip_prefix('[')
        && let Some((host, tail)) = rest.split_once(']')
    {
        return (host, tail.strip_prefix(':'));
    }
    match registry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (registry, None),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// What a registry request was about, to name it in errors.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Subject<'a> {
    /// A manifest (or index) pulled for this reference.
    Manifest,
    /// A blob: the config or a layer, described.
    Blob(&'a str),
    /// Pushing something, described.
    Push(&'a str),
}

/// Maps an `oci-client` error to ours, naming the registry and what was asked.
pub(crate) fn registry_error(
    error: OciDistributionError,
    reference: &Reference,
    subject: Subject<'_>,
) -> ImageError {
    let registry = reference.resolve_registry().to_owned();
    let what = match subject {
        Subject::Manifest => format!("the manifest of {reference}"),
        Subject::Blob(what) | Subject::Push(what) => what.to_owned(),
    };
    let operation = match subject {
        Subject::Push(_) => "push to",
        _ => "pull from",
    };
    let unknown = || match subject {
        Subject::Manifest => ImageError::ManifestUnknown {
            reference: reference.whole(),
        },
        _ => ImageError::Registry {
            registry: registry.clone(),
            what: what.clone(),
            detail: format!("not found in repository {}", reference.repository()),
        },
    };
    let unauthorized = |detail: String| ImageError::Unauthorized {
        registry: registry.clone(),
        reference: reference.whole(),
        operation,
        detail,
    };
    match error {
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            let hint = if Transport::default().plain_http(&registry) {
                String::new()
            } else {
                format!(" (if {registry} serves plain HTTP, list it in {INSECURE_REGISTRIES_ENV})")
            };
            ImageError::Unreachable {
                registry,
                detail: chain(&e),
                hint,
            }
        }
        OciDistributionError::RequestError(e) => match e.status().map(|s| s.as_u16()) {
            Some(404) => unknown(),
            Some(401 | 403) => unauthorized(chain(&e)),
            _ => ImageError::Registry {
                registry,
                what,
                detail: chain(&e),
            },
        },
        OciDistributionError::ImageManifestNotFoundError(_) => unknown(),
        OciDistributionError::ServerError { code: 404, .. } => unknown(),
        OciDistributionError::UnauthorizedError { url } => unauthorized(format!("401 for {url}")),
        OciDistributionError::AuthenticationFailure(detail) => unauthorized(detail),
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let detail = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            if codes.iter().any(|code| {
                matches!(
                    code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                unknown()
            } else if codes
                .iter()
                .any(|code| matches!(code, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                unauthorized(detail)
            } else {
                ImageError::Registry {
                    registry,
                    what,
                    detail,
                }
            }
        }
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            expected,
            actual,
        }) => ImageError::DigestMismatch {
            what,
            expected,
            actual,
        },
        other => ImageError::Registry {
            registry,
            what,
            detail: chain(&other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_references() {
        let r = parse("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), Some("v1"));

        let digest = format!("sha256:{}", "ab".repeat(32));
        let r = parse(&format!("localhost:5000/app@{digest}")).unwrap();
        assert_eq!(r.digest(), Some(digest.as_str()));

        let r = parse("alpine").unwrap();
        assert_eq!(r.resolve_registry(), "index.docker.io");
        assert_eq!(r.repository(), "library/alpine");
        assert_eq!(r.tag(), Some("latest"));
    }

    #[test]
    fn bad_references_say_why() {
        for bad in [
            "",
            "UPPER/case",
            "app@sha256:1234",
            " app",
            "app:tag:more",
            &format!("app@sha512:{}", "a".repeat(128)),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                matches!(err, ImageError::BadReference { .. }),
                "{bad:?}: {err}"
            );
            assert!(
                err.to_string().contains("expected [REGISTRY/]NAME"),
                "{err}"
            );
        }
    }

    #[test]
    fn loopback_and_listed_registries_use_plain_http() {
        let transport = Transport::new(["Registry.lan:5000".to_owned(), "build.lan".to_owned()]);
        for plain in [
            "127.0.0.1:5000",
            "127.3.4.5",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "registry.lan:5000",
            "build.lan:443",
            "build.lan",
        ] {
            assert!(transport.plain_http(plain), "{plain}");
        }
        for tls in [
            "registry.lan:5001",
            "registry.lan",
            "index.docker.io",
            "10.0.0.1:5000",
            "[2001:db8::1]:5000",
            "localhost.example.com",
        ] {
            assert!(!transport.plain_http(tls), "{tls}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let basic = Auth::Basic {
            username: "ci".into(),
            password: "hunter2".into(),
        };
        let bearer = Auth::Bearer("tok3n".into());
        let text = format!("{basic:?} {bearer:?}");
        assert!(text.contains("ci"), "{text}");
        assert!(
            !text.contains("hunter2") && !text.contains("tok3n"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_insecure_list_covers_only_loopback() {
        let transport = Transport::new(" , ".split(',').map(str::to_owned));
        assert!(transport.insecure.is_empty());
        assert!(transport.plain_http("127.0.0.1:1"));
    }

    #[test]
    fn manifest_unknown_names_the_reference() {
        let reference = parse("127.0.0.1:5000/app:v1").unwrap();
        let envelope: oci_client::errors::OciEnvelope = serde_json::from_str(
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        )
        .unwrap();
        let err = registry_error(
            OciDistributionError::RegistryError {
                envelope,
                url: "http://x".into(),
            },
            &reference,
            Subject::Manifest,
        );
        assert!(matches!(err, ImageError::ManifestUnknown { .. }), "{err}");
        assert!(err.to_string().contains("127.0.0.1:5000/app:v1"), "{err}");
    }
}
