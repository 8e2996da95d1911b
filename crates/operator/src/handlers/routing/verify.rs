//! Ownership checks of custom domains: the API shows each domain with the TXT record
//! that proves it (`zeitwork_core::ownership`), and `POST …/domains/{hostname}/verify`
//! looks that record up in DNS and, when it is there, records `domain_verified`, after
//! which edges serve the domain and certificates are ordered for it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use sqlx::PgConnection;
use uuid::Uuid;
use zeitwork_api_types::{ClaimState, Domain, DomainView};
use zeitwork_core::EventData;
use zeitwork_core::ownership::TxtRecord;
use zeitwork_core::platform_host::{self, env_label};
use zeitwork_store::{log, read};

use super::ItemPath;
use crate::dns;
use crate::error::{ApiError, ApiResult};
use crate::scope::{Deployer, EnvScope, InEnv};
use crate::state::AppState;

/// How long an unverified claim can still be verified. Claims never block anyone (any
/// number of envs may claim a hostname until one verifies it), so this only ends the
/// claims nobody finished.
pub const PENDING_FOR: chrono::Duration = chrono::Duration::days(7);

/// Where `domain`'s claim stands.
fn claim_state(domain: &Domain) -> ClaimState {
    match domain.verified_at {
        Some(_) => ClaimState::Verified,
        None if Utc::now() - domain.created_at > PENDING_FOR => ClaimState::Expired,
        None => ClaimState::Pending,
    }
}

/// Domains of the env of `scope` as the API answers them: each row, plus the records
/// its owner must publish (so nobody has to assemble them from the docs) and its
/// certificate.
pub async fn views(
    db: &mut PgConnection,
    s: &AppState,
    scope: &EnvScope,
    domains: Vec<Domain>,
) -> ApiResult<Vec<DomainView>> {
    let names: Vec<String> = domains.iter().map(|d| d.hostname.clone()).collect();
    let mut certificates = read::certificates_for(&mut *db, &names).await?;
    let label = env_label(&scope.app.name, &scope.env.name, &scope.org.name);
    let cname_target = platform_host::host(&label, &s.config.base_domain);
    Ok(domains
        .into_iter()
        .map(|domain| {
            let at = certificates
                .iter()
                .position(|c| c.hostname == domain.hostname);
            DomainView {
                txt_record: TxtRecord::for_domain(&domain.hostname, &domain.verification_token),
                state: claim_state(&domain),
                cname_target: cname_target.clone(),
                certificate: at.map(|i| certificates.swap_remove(i)),
                domain,
            }
        })
        .collect())
}

/// One domain as the API answers it (see [`views`]).
pub async fn view(
    db: &mut PgConnection,
    s: &AppState,
    scope: &EnvScope,
    domain: Domain,
) -> ApiResult<DomainView> {
    let mut views = views(db, s, scope, vec![domain]).await?;
    Ok(views.pop().expect("one domain, one view"))
}

/// Refuses a hostname another env has verified: a verified claim wins over every
/// unverified one. Call under the event-log lock.
pub(super) async fn not_verified_elsewhere(
    db: &mut PgConnection,
    hostname: &str,
    env_id: Uuid,
) -> ApiResult<()> {
    match read::domain_verified_by(db, hostname).await? {
        Some(holder) if holder != env_id => Err(ApiError::conflict(
            "hostname",
            format!("{hostname} is verified by another env; its owner must remove it first"),
        )),
        _ => Ok(()),
    }
}

/// Verifies a domain: 200 with the domain (now with `verified_at`) when the TXT record is
/// published, 422 `not_verified` saying what DNS holds when it is not. An already
/// verified domain answers 200 without asking DNS or recording anything again.
pub async fn verify_domain(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    Path(p): Path<ItemPath>,
) -> ApiResult<Json<DomainView>> {
    let mut db = s.store.pool().acquire().await?;
    let domain = find(read::domains(&mut *db, scope.env.id).await?, &p.id)?;
    if domain.verified_at.is_some() {
        return Ok(Json(view(&mut db, &s, &scope, domain).await?));
    }
    if claim_state(&domain) == ClaimState::Expired {
        return Err(ApiError::conflict(
            "hostname",
            format!(
                "this claim was not verified within {} days and expired; remove it and add it again",
                PENDING_FOR.num_days()
            ),
        ));
    }
    let record = TxtRecord::for_domain(&domain.hostname, &domain.verification_token);
    // Asked before any transaction: DNS may take seconds, and nothing is held meanwhile.
    let published = dns::txt_values(s.config.dns_server, &record.query_name())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, host = %domain.hostname, "ownership check failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "dns_unavailable",
                e.to_string(),
            )
        })?;
    if !record.is_among(&published) {
        return Err(not_verified(&record, &published));
    }
    let mut tx = s.store.begin().await?;
    // Decide on the latest state: the domain may have been removed, or verified by a
    // concurrent call, since it was read.
    log::lock(&mut tx).await?;
    let domain = find(read::domains(&mut *tx, scope.env.id).await?, &p.id)?;
    if domain.verified_at.is_some() {
        return Ok(Json(view(&mut tx, &s, &scope, domain).await?));
    }
    not_verified_elsewhere(&mut tx, &domain.hostname, scope.env.id).await?;
    let data = EventData::DomainVerified {
        domain_id: domain.id,
    };
    let verified = log::append(&mut tx, Some(scope.org.id), &auth.actor(), data).await?;
    let verified = Domain {
        verified_at: Some(verified.at),
        ..domain
    };
    let answer = view(&mut tx, &s, &scope, verified).await?;
    tx.commit().await?;
    Ok(Json(answer))
}

/// The domain named in the path, spelled as the API stores it (lowercase, no trailing
/// dot) or as a user may type it.
fn find(domains: Vec<Domain>, hostname: &str) -> ApiResult<Domain> {
    let hostname = hostname.trim_end_matches('.').to_ascii_lowercase();
    domains
        .into_iter()
        .find(|d| d.hostname == hostname)
        .ok_or_else(|| ApiError::not_found("domain"))
}

/// The 422 of a missing or wrong record: what to publish, and what DNS holds instead
/// (a stale token after removing and re-adding the domain is a common mistake).
fn not_verified(record: &TxtRecord, published: &[String]) -> ApiError {
    let found = if published.is_empty() {
        format!("no TXT record at {} was found", record.name)
    } else {
        let values: Vec<String> = published.iter().map(|v| format!("{v:?}")).collect();
        format!(
            "the TXT records at {} ({}) do not hold this domain's token",
            record.name,
            values.join(", ")
        )
    };
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_verified",
        format!("{found}; publish {record} and retry (DNS changes can take minutes)"),
    )
}
