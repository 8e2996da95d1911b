use std::path::PathBuf;

use thiserror::Error;
use zeitwork_store::StoreError;

/// What went wrong with certificates, phrased so an operator knows what to do.
#[derive(Debug, Error)]
pub enum CertsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A PEM input (an operator's chain or key, or what a CA sent) is unusable.
    #[error("{what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error(
        "the private key does not belong to the certificate: pass the key the certificate was issued for"
    )]
    KeyMismatch,
    #[error("the certificate names no DNS hostname (subjectAltName): it cannot serve any host")]
    NoHostnames,
    #[error("the certificate expired at {0}: import a current one")]
    Expired(chrono::DateTime<chrono::Utc>),
    #[error("cannot read the ACME CA bundle {}: {reason} (check ZEITWORK_ACME_CA_BUNDLE)", path.display())]
    CaBundle { path: PathBuf, reason: String },
    #[error(
        "the ACME directory {url} did not answer: {reason} (check --acme-directory / ZEITWORK_ACME_DIRECTORY, \
         and ZEITWORK_ACME_CA_BUNDLE when the CA uses a private PKI)"
    )]
    Directory { url: String, reason: String },
    #[error(
        "the stored ACME account for {0} cannot be opened with this secret key: every edge must use the \
         platform's ZEITWORK_CERT_KEY"
    )]
    AccountSealed(String),
    #[error("generating a key or certificate failed: {0}")]
    Generate(String),
    /// One hostname's order failed; the message says what the CA saw.
    #[error("{0}")]
    Order(String),
    #[error("publishing a notification failed: {0}")]
    Bus(#[from] zeitwork_bus::BusError),
}

impl From<sqlx::Error> for CertsError {
    fn from(e: sqlx::Error) -> CertsError {
        CertsError::Store(e.into())
    }
}
