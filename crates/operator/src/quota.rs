//! Per-org quotas (see `zeitwork_core::quota`): the platform's for every org
//! (`--quota-*` flags of the operator and `zeitwork up`), unless a platform admin set the
//! org's own (`PUT /api/v1/orgs/{org}/quotas`, `zeitwork quotas set`). A change that would
//! go past one is refused with 403 `quota_exceeded`, naming the field and both numbers,
//! and changes nothing.

use axum::http::StatusCode;
use sqlx::PgExecutor;
use zeitwork_core::Quotas;
use zeitwork_store::model::Org;
use zeitwork_store::read::{self, OrgUsage};

use crate::error::{ApiError, ApiResult};

/// The quotas in force for one org.
#[derive(Debug, Clone)]
pub(crate) struct OrgQuotas {
    org: String,
    quotas: Quotas,
}

/// `org`'s quotas: the platform's, with the org's own where a platform admin set them.
pub(crate) async fn of<'c>(
    db: impl PgExecutor<'c>,
    platform: Quotas,
    org: &Org,
) -> ApiResult<OrgQuotas> {
    let overrides = read::org_quota_overrides(db, org.id).await?;
    Ok(OrgQuotas {
        org: org.name.clone(),
        quotas: platform.with(&overrides),
    })
}

impl OrgQuotas {
    /// Refuses running `instances` instances with `memory_mb` MiB in all (after a change).
    pub(crate) fn allow_instances(&self, instances: u64, memory_mb: u64) -> ApiResult<()> {
        let (org, q) = (&self.org, &self.quotas);
        within(org, "instances", "instances", instances, q.instances)?;
        within(org, "memory_mb", "MiB of memory", memory_mb, q.memory_mb)
    }

    /// Refuses one more route (a `tcp` one when `tcp`) beyond what `usage` holds.
    pub(crate) fn allow_route(&self, usage: &OrgUsage, tcp: bool) -> ApiResult<()> {
        let (org, q) = (&self.org, &self.quotas);
        within(org, "routes", "routes", usage.routes + 1, q.routes)?;
        if tcp {
            within(
                org,
                "mode",
                "tcp routes",
                usage.tcp_routes + 1,
                q.tcp_routes,
            )?;
        }
        Ok(())
    }

    /// Refuses writing to the registry (a push, a build) while `usage` is at or over the
    /// org's registry quota.
    pub(crate) fn allow_registry_writes(&self, usage: &OrgUsage) -> ApiResult<()> {
        match usage.registry_mb < self.quotas.registry_mb {
            true => Ok(()),
            false => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "quota_exceeded",
                format!(
                    "org {} holds {} MiB of images in the platform registry, its quota is {} MiB: delete images or wait for garbage collection (a platform admin can raise the quota: zeitwork quotas set --registry-mb)",
                    self.org, usage.registry_mb, self.quotas.registry_mb
                ),
            )
            .with_field("registry_mb")),
        }
    }

    /// Refuses one more domain beyond what `usage` holds.
    pub(crate) fn allow_domain(&self, usage: &OrgUsage) -> ApiResult<()> {
        within(
            &self.org,
            "hostname",
            "domains",
            usage.domains + 1,
            self.quotas.domains,
        )
    }
}

fn within(org: &str, field: &str, what: &str, after: u64, quota: u64) -> ApiResult<()> {
    if after <= quota {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "quota_exceeded",
        format!(
            "org {org} may hold at most {quota} {what}; this change would make it {after} (a platform admin can raise the org's quota: zeitwork quotas set)"
        ),
    )
    .with_field(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_names_its_field_and_both_numbers() {
        let q = OrgQuotas {
            org: "acme".into(),
            quotas: Quotas {
                instances: 2,
                memory_mb: 512,
                ..Quotas::default()
            },
        };
        q.allow_instances(2, 512).unwrap();
        let e = q.allow_instances(3, 384).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert_eq!(e.field.as_deref(), Some("instances"));
        assert!(
            e.message.contains("at most 2 instances") && e.message.contains("make it 3"),
            "{}",
            e.message
        );
        let e = q.allow_instances(2, 1024).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("memory_mb"));
    }
}
