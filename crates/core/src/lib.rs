//! Domain vocabulary shared by every Zeitwork role: validated names, the strict
//! `zeitwork.toml` manifest, the event payloads of the append-only log and token roles.
//! Nothing here performs I/O, so every other crate can depend on it freely.

/// `Debug` for a type that carries a secret: the named fields print as `<redacted>`, so
/// a logged or panicking value never shows one.
#[macro_export]
macro_rules! redacted_debug {
    ($ty:ident { $($field:ident),* } hides { $($secret:ident),* }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    $(.field(stringify!($secret), &"<redacted>"))*
                    .finish()
            }
        }
    };
}

pub mod build;
pub mod certificate;
pub mod deployment;
pub mod event;
pub mod exec;
pub mod guest;
pub mod image;
pub mod ipam;
pub mod manifest;
pub mod name;
pub mod node;
pub mod overlay;
pub mod ownership;
pub mod platform_host;
pub mod port_range;
pub mod quota;
pub mod region;
pub mod repository;
pub mod role;
pub mod route_policy;
pub mod state;

pub use certificate::CertificateSource;
pub use deployment::DeploymentState;
pub use event::{Event, EventData, InstancePlan};
pub use image::ImageRef;
pub use manifest::{Manifest, ManifestError};
pub use name::{Hostname, Name, NameError};
pub use port_range::PortRange;
pub use quota::{QuotaOverrides, Quotas};
pub use role::Role;
pub use route_policy::RoutePolicy;
pub use state::{DesiredState, UnknownState};
