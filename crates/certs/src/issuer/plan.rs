//! Which hostnames need an order, which stored certificates go. The rules are a pure
//! function of what Postgres says, so they are tested without a CA:
//! - wanted: verified custom domains, then the platform's env names, then deployment
//!   names (newest first); only names a public CA can validate ([`names::issuable`]);
//! - a wanted name is served when a certificate for it lasts beyond the renewal window,
//!   an operator's certificate for it has not expired (renewing those is the operator's
//!   job), or an unexpired wildcard covers it (the platform names, once the base
//!   domain's wildcard is imported); otherwise it is ordered, replacing the platform's
//!   older certificate for it;
//! - a platform (ACME) certificate goes when none of its names is wanted any more, or
//!   when it expired and another certificate now serves its name.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use zeitwork_core::{CertificateSource, platform_host};
use zeitwork_store::Store;

use crate::{CertsError, names, pem};

/// A stored certificate, without its key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct Stored {
    pub id: Uuid,
    pub hostnames: Vec<String>,
    pub not_after: DateTime<Utc>,
    pub source: String,
}

impl Stored {
    fn is_acme(&self) -> bool {
        CertificateSource::parse(&self.source) == Some(CertificateSource::Acme)
    }

    fn names(&self, host: &str) -> bool {
        self.hostnames.iter().any(|n| n == host)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Need {
    pub hostname: String,
    pub replaces: Vec<Uuid>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    pub issue: Vec<Need>,
    pub remove: Vec<(Uuid, &'static str)>,
    /// Operator certificates inside the renewal window: only the operator can renew them.
    pub expiring: Vec<Uuid>,
}

/// Every hostname the platform wants a certificate for, in order of precedence.
pub(super) async fn wanted(store: &Store, base_domain: &str) -> Result<Vec<String>, CertsError> {
    let mut tx = store.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let domains: Vec<(String,)> = sqlx::query_as(
        "SELECT hostname FROM domains WHERE verified_at IS NOT NULL ORDER BY created_at, id",
    )
    .fetch_all(&mut *tx)
    .await?;
    // The names the edge serves: both build them with zeitwork_core::platform_host.
    let envs: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT a.name, e.name, o.name FROM envs e
         JOIN apps a ON a.id = e.app_id JOIN orgs o ON o.id = e.org_id
         ORDER BY e.created_at, e.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let deployments: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT a.name, d.slug, o.name FROM deployments d
         JOIN apps a ON a.id = d.app_id JOIN orgs o ON o.id = d.org_id
         ORDER BY d.created_at DESC, d.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.rollback().await?;
    let mut out: Vec<String> = domains.into_iter().map(|(h,)| pem::normalize(&h)).collect();
    out.extend(envs.into_iter().map(|(app, env, org)| {
        platform_host::host(&platform_host::env_label(&app, &env, &org), base_domain)
    }));
    out.extend(deployments.into_iter().map(|(app, slug, org)| {
        platform_host::host(
            &platform_host::deployment_label(&app, &slug, &org),
            base_domain,
        )
    }));
    let mut seen = std::collections::HashSet::new();
    out.retain(|h| names::issuable(h) && seen.insert(h.clone()));
    Ok(out)
}

pub(super) async fn stored(store: &Store) -> Result<Vec<Stored>, CertsError> {
    Ok(
        sqlx::query_as("SELECT id, hostnames, not_after, source FROM certificates ORDER BY id")
            .fetch_all(store.pool())
            .await?,
    )
}

pub(super) fn plan(
    wanted: &[String],
    stored: &[Stored],
    now: DateTime<Utc>,
    renew_before: Duration,
) -> Plan {
    let mut plan = Plan::default();
    for host in wanted {
        let own: Vec<&Stored> = stored.iter().filter(|c| c.names(host)).collect();
        let lasting = own.iter().any(|c| c.not_after > now + renew_before);
        let operators = own.iter().any(|c| !c.is_acme() && c.not_after > now);
        if lasting || operators || covered_by_wildcard(stored, host, now) {
            continue;
        }
        let replaces = own
            .iter()
            .filter(|c| c.is_acme() && c.hostnames.len() == 1)
            .map(|c| c.id)
            .collect();
        plan.issue.push(Need {
            hostname: host.clone(),
            replaces,
        });
    }
    for cert in stored {
        let renewing = plan.issue.iter().any(|n| n.replaces.contains(&cert.id));
        if !cert.is_acme() {
            if cert.not_after <= now + renew_before {
                plan.expiring.push(cert.id);
            }
        } else if !cert.hostnames.iter().any(|h| wanted.contains(h)) {
            plan.remove
                .push((cert.id, "none of its hostnames is served any more"));
        } else if cert.not_after <= now && !renewing {
            plan.remove.push((
                cert.id,
                "it expired and another certificate serves its hostnames",
            ));
        }
    }
    plan
}

fn covered_by_wildcard(stored: &[Stored], host: &str, now: DateTime<Utc>) -> bool {
    let Some(parent) = names::parent(host) else {
        return false;
    };
    stored.iter().any(|c| {
        c.not_after > now
            && c.hostnames
                .iter()
                .any(|n| names::wildcard_base(n) == Some(parent))
    })
}

#[cfg(test)]
mod tests;
