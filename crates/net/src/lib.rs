//! Instance networking on a node. Each instance gets its own link `zw<n>`, routed point
//! to point (no shared L2 between tenants): a private IPv4 /31 and an IPv6 /127 out of
//! the node's ULA prefix. Behind the link is the guest's tap, on the host or in a network
//! namespace of the instance's own where its VMM runs ([`Topology`]). One nftables table of
//! ours keeps instances from reaching each other or the host's other ports, lets the host
//! reach each instance on its app port, and masquerades egress.

mod addressing;
mod command;
mod firewall;
mod link;
mod netns;

pub use addressing::{InstanceAddrs, NodePrefix};
pub use firewall::{AppPort, Firewall, TABLE};
pub use link::{LINK_PREFIX, Link, Topology, guest_mac, link_name};
pub use netns::{NETNS_DIR, NETNS_TAP, Netns};

/// Why a network change failed; the message includes the failing command's stderr.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{program} not found: install Debian's {package} package (scripts/setup.sh does it)")]
    NotInstalled {
        program: &'static str,
        package: &'static str,
    },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("instance index {0} is outside the node's address pool")]
    PoolExhausted(u32),
    #[error("invalid node IPv6 prefix {0:?}: give a ULA /64 like fd12:3456:789a:1::/64")]
    BadPrefix(String),
    #[error(
        "instance id {0:?} cannot name a network namespace: use 1-64 ASCII letters, digits, '-' and '_'"
    )]
    BadInstanceId(String),
}
