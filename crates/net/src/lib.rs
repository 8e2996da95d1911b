//! Instance networking on a node. Each instance gets its own link `zw<n>`, routed point
//! to point (no shared L2 between tenants): a private IPv4 /31 and an IPv6 /127 out of
//! the node's ULA prefix. Behind the link is the guest's tap, on the host or in a network
//! namespace of the instance's own where its VMM runs ([`Topology`]). One nftables table of
//! ours ([`Firewall`]) lets a guest send only from its own addresses and reach only the
//! public internet (masqueraded), never the host, other instances, or private, link-local
//! (cloud metadata) and reserved ranges ([`GUEST_DENIED`]) unless the operator allows a
//! destination ([`EgressAllow`]); nothing reaches a guest but the host and the edges the
//! operator names ([`EdgeNetwork`]), on its app port.

mod addressing;
mod allow;
mod command;
mod firewall;
mod link;
mod netns;
mod overlay;

pub use addressing::{BUILDER_LINKS, INSTANCE_LINKS, InstanceAddrs, NodePrefix};
pub use allow::{EdgeNetwork, EgressAllow};
pub use firewall::{AppPort, DeniedRange, Firewall, GUEST_DENIED, TABLE};
pub use link::{LINK_PREFIX, Link, Topology, guest_mac, link_name};
pub use netns::{NETNS_DIR, NETNS_TAP, Netns};
pub use overlay::{OVERLAY_LINK, Overlay, Peer, PeerHandshake, keeps_alive};

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
    #[error("builder {0} is past the node's {max} builder links", max = BUILDER_LINKS)]
    BuildersExhausted(u32),
    #[error("invalid node IPv6 prefix {0:?}: give a ULA /64 like fd12:3456:789a:1::/64")]
    BadPrefix(String),
    #[error(
        "instance id {0:?} cannot name a network namespace: use 1-64 ASCII letters, digits, '-' and '_'"
    )]
    BadInstanceId(String),
    /// An operator's allowed destination ([`EgressAllow`]) that does not parse.
    #[error(
        "invalid egress allow entry {entry:?}: {reason} (give ADDR[/LEN][:PORT], an IPv6 network with a port in brackets: 10.1.2.3:5432, 10.20.0.0/16, [fd00:1::5]:5432)"
    )]
    BadEgressAllow { entry: String, reason: &'static str },
    /// An operator's edge network ([`EdgeNetwork`]) that does not parse.
    #[error(
        "invalid edge network {entry:?}: {reason} (give an IPv6 ADDR[/LEN], e.g. fd00:e0::/64 or 2001:db8::10)"
    )]
    BadEdgeNetwork { entry: String, reason: &'static str },
}
