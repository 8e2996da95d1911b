//! Per-org quotas: one tenant cannot take every node's memory, every `tcp` route port
//! (each is opened on every edge), or grow routes and domains without end. The platform
//! admin sets them for every org (`--quota-*` flags of the operator and `zeitwork up`);
//! a change that would go past one is refused with 403 `quota_exceeded`, naming the
//! field and both numbers, and changes nothing.

use axum::http::StatusCode;
use zeitwork_store::read::OrgUsage;

use crate::error::{ApiError, ApiResult};

/// What each org may hold at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Instances meant to run, over all its apps and envs.
    pub instances: u64,
    /// Memory of those instances, in MiB.
    pub memory_mb: u64,
    /// Routes of every mode.
    pub routes: u64,
    /// `tcp` routes (each takes a port on every edge).
    pub tcp_routes: u64,
    /// Custom domains, verified or not.
    pub domains: u64,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            instances: 100,
            memory_mb: 64 * 1024,
            routes: 100,
            tcp_routes: 10,
            domains: 50,
        }
    }
}

impl Quotas {
    /// Refuses running `instances` instances with `memory_mb` MiB in all (after a change).
    pub(crate) fn allow_instances(
        &self,
        org: &str,
        instances: u64,
        memory_mb: u64,
    ) -> ApiResult<()> {
        within(org, "instances", "instances", instances, self.instances)?;
        within(org, "memory_mb", "MiB of memory", memory_mb, self.memory_mb)
    }

    /// Refuses one more route (a `tcp` one when `tcp`) beyond what `usage` holds.
    pub(crate) fn allow_route(&self, org: &str, usage: &OrgUsage, tcp: bool) -> ApiResult<()> {
        within(org, "routes", "routes", usage.routes + 1, self.routes)?;
        if tcp {
            within(
                org,
                "mode",
                "tcp routes",
                usage.tcp_routes + 1,
                self.tcp_routes,
            )?;
        }
        Ok(())
    }

    /// Refuses one more domain beyond what `usage` holds.
    pub(crate) fn allow_domain(&self, org: &str, usage: &OrgUsage) -> ApiResult<()> {
        within(org, "hostname", "domains", usage.domains + 1, self.domains)
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
            "org {org} may hold at most {quota} {what}; this change would make it {after} (a platform admin can raise the quota)"
        ),
    )
    .with_field(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_names_its_field_and_both_numbers() {
        let q = Quotas {
            instances: 2,
            memory_mb: 512,
            ..Quotas::default()
        };
        q.allow_instances("acme", 2, 512).unwrap();
        let e = q.allow_instances("acme", 3, 384).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert_eq!(e.field.as_deref(), Some("instances"));
        assert!(
            e.message.contains("at most 2 instances") && e.message.contains("make it 3"),
            "{}",
            e.message
        );
        let e = q.allow_instances("acme", 2, 1024).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("memory_mb"));
    }
}
