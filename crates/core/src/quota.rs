//! Per-org quotas: what one org may hold at most, so no tenant takes every node's memory,
//! every `tcp` route port (each is opened on every edge), or grows routes and domains
//! without end. The platform's [`Quotas`] apply to every org (the operator's `--quota-*`
//! flags); a platform admin raises or lowers them for one org with [`QuotaOverrides`]
//! (the `org_quotas_set` event). Every number is bounded ([`Quotas::MAX`]), so what is
//! written to the log reads back and fits Postgres.

use serde::{Deserialize, Serialize};

/// What an org may hold at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
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
    /// MiB of images in the platform registry (the org's repositories, each layer once),
    /// as its garbage collection last measured them.
    pub registry_mb: u64,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            instances: 100,
            memory_mb: 64 * 1024,
            routes: 100,
            tcp_routes: 10,
            domains: 50,
            registry_mb: 20 * 1024,
        }
    }
}

/// A quota beyond its bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} may be at most {max}, not {value}")]
pub struct QuotaError {
    /// The quota's name (`instances`, `memory_mb`, `routes`, `tcp_routes`, `domains`).
    pub field: &'static str,
    pub value: u64,
    pub max: u64,
}

impl Quotas {
    /// The largest quota of each kind that can be set: more instances than a large
    /// cluster runs, a PiB of memory, more `tcp` routes than an edge has ports.
    pub const MAX: Quotas = Quotas {
        instances: 100_000,
        memory_mb: 1 << 30,
        routes: 100_000,
        tcp_routes: 60_000,
        domains: 100_000,
        registry_mb: 1 << 30,
    };

    /// Refuses a quota above [`Quotas::MAX`].
    pub fn check(&self) -> Result<(), QuotaError> {
        for (field, value, max) in self.fields(&Quotas::MAX) {
            if value > max {
                return Err(QuotaError { field, value, max });
            }
        }
        Ok(())
    }

    /// These quotas with `overrides` in place of the ones they set.
    pub fn with(self, overrides: &QuotaOverrides) -> Quotas {
        Quotas {
            instances: overrides.instances.unwrap_or(self.instances),
            memory_mb: overrides.memory_mb.unwrap_or(self.memory_mb),
            routes: overrides.routes.unwrap_or(self.routes),
            tcp_routes: overrides.tcp_routes.unwrap_or(self.tcp_routes),
            domains: overrides.domains.unwrap_or(self.domains),
            registry_mb: overrides.registry_mb.unwrap_or(self.registry_mb),
        }
    }

    /// `(name, self's value, other's value)` for every quota.
    fn fields(&self, other: &Quotas) -> [(&'static str, u64, u64); 6] {
        [
            ("instances", self.instances, other.instances),
            ("memory_mb", self.memory_mb, other.memory_mb),
            ("routes", self.routes, other.routes),
            ("tcp_routes", self.tcp_routes, other.tcp_routes),
            ("domains", self.domains, other.domains),
            ("registry_mb", self.registry_mb, other.registry_mb),
        ]
    }
}

/// One org's own quotas where they differ from the platform's: `None` (or absent) is
/// the platform's.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaOverrides {
    #[schemars(range(max = 100_000))]
    pub instances: Option<u64>,
    #[schemars(range(max = 1_073_741_824))]
    pub memory_mb: Option<u64>,
    #[schemars(range(max = 100_000))]
    pub routes: Option<u64>,
    #[schemars(range(max = 60_000))]
    pub tcp_routes: Option<u64>,
    #[schemars(range(max = 100_000))]
    pub domains: Option<u64>,
    #[schemars(range(max = 1_073_741_824))]
    pub registry_mb: Option<u64>,
}

impl QuotaOverrides {
    /// Refuses an override above [`Quotas::MAX`].
    pub fn check(&self) -> Result<(), QuotaError> {
        Quotas::MAX.with(self).check()
    }

    /// Whether it overrides nothing.
    pub fn is_empty(&self) -> bool {
        *self == QuotaOverrides::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_they_set_and_are_bounded() {
        let o = QuotaOverrides {
            instances: Some(500),
            domains: Some(0),
            ..QuotaOverrides::default()
        };
        let q = Quotas::default().with(&o);
        assert_eq!((q.instances, q.domains), (500, 0));
        assert_eq!(q.memory_mb, Quotas::default().memory_mb);
        assert!(o.check().is_ok() && !o.is_empty());
        assert!(QuotaOverrides::default().is_empty());
        let over = QuotaOverrides {
            tcp_routes: Some(60_001),
            ..QuotaOverrides::default()
        };
        assert_eq!(
            over.check().unwrap_err().to_string(),
            "tcp_routes may be at most 60000, not 60001"
        );
        assert!(Quotas::MAX.check().is_ok() && Quotas::default().check().is_ok());
        let huge = Quotas {
            memory_mb: u64::MAX,
            ..Quotas::default()
        };
        assert_eq!(huge.check().unwrap_err().field, "memory_mb");
    }

    #[test]
    fn overrides_read_strictly() {
        let o: QuotaOverrides = serde_json::from_str(r#"{"instances": 7}"#).unwrap();
        assert_eq!(o.instances, Some(7));
        assert!(serde_json::from_str::<QuotaOverrides>(r#"{"instance": 7}"#).is_err());
        assert!(serde_json::from_str::<QuotaOverrides>(r#"{"instances": -1}"#).is_err());
        assert!(serde_json::from_str::<QuotaOverrides>(r#"{"instances": 1.5}"#).is_err());
    }
}
