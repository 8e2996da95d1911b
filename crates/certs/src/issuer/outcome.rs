//! What a round did, for the caller (tests, tools) and the log.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ChallengeKind, Issuer};
use crate::CertsError;

/// A certificate one round got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub hostname: String,
    pub certificate_id: Uuid,
    pub not_after: DateTime<Utc>,
    /// The challenge the CA validated; `None` when it still had a valid authorization.
    pub challenge: Option<ChallengeKind>,
    /// The certificates it replaced (a renewal).
    pub replaced: Vec<Uuid>,
}

/// What one round did.
#[derive(Debug, Default)]
pub struct Round {
    /// Whether this issuer acted (another held the cluster lock otherwise).
    pub led: bool,
    pub issued: Vec<Issued>,
    /// Hostnames whose order failed, with what to do about it.
    pub failed: Vec<(String, String)>,
    /// Hostnames waiting for their retry time.
    pub deferred: Vec<String>,
    pub removed: Vec<Uuid>,
}

impl Issuer {
    pub(super) fn report(&self, result: Result<Round, CertsError>) {
        match result {
            Ok(round) if round.led => tracing::debug!(
                issued = round.issued.len(),
                failed = round.failed.len(),
                deferred = round.deferred.len(),
                removed = round.removed.len(),
                "ACME round done"
            ),
            Ok(_) => tracing::debug!("another edge's issuer is acting"),
            Err(e) => tracing::warn!(error = %e, "ACME round failed; retrying later"),
        }
    }
}
