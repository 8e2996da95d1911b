//! The platform registry (Debian's `docker-registry`, CNCF distribution) and its token
//! service, which the operator runs.
//!
//! docker, podman, buildah, skopeo and our own nodes speak the Docker token-auth flow:
//! the registry answers 401 naming a realm (the operator's `/api/v1/registry/token`) and
//! the scope it wants (`repository:acme/web:pull,push`); the client asks the realm with
//! its credentials and comes back with a short-lived JWT the registry verifies against
//! the certificate it trusts ([`TokenKey::certificate_pem`]). This crate holds the pieces
//! both sides share: the signing key ([`TokenKey`]), the scopes asked for and granted
//! ([`Scope`], [`Access`]), the signed token ([`issue`]) and the registry's configuration
//! ([`RegistryConfig`]). Who may have what is the operator's rule (one org's repositories
//! are `<org>/...`); this crate only writes down what was granted.

mod config;
mod key;
mod scope;
mod token;

pub use config::{RegistryConfig, Storage};
pub use key::{KeyError, TokenKey};
pub use scope::{Access, Action, Scope, ScopeError};
pub use token::{Issued, TokenRequest, issue};

/// The `service` the registry names in its challenges and the tokens are for.
pub const SERVICE: &str = "zeitwork-registry";
/// The tokens' issuer, which the registry checks.
pub const ISSUER: &str = "zeitwork";
