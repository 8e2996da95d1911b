//! Nodes (the machines that run instances) and regions, as platform admins see them.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeitwork_core::node::NodeState;

use crate::list::page;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Node {
    pub id: Uuid,
    pub name: String,
    pub region: String,
    pub zone: Option<String>,
    /// Capacity: thousandths of a CPU, and MiB of memory.
    pub millicpus: i32,
    pub memory_mb: i64,
    /// What the instances placed on it reserve of that capacity (the figures placement
    /// goes by).
    pub allocated_millicpus: i64,
    pub allocated_memory_mb: i64,
    /// Host addresses other nodes and edges reach it at.
    #[cfg_attr(feature = "sqlx", sqlx(json))]
    pub addresses: Vec<String>,
    /// Its instances' IPv6 /64; `null` until a node enrolled by an earlier build enrolls
    /// again.
    pub instance_prefix: Option<String>,
    /// Its own address on the WireGuard overlay (the first of its /64); `null` while it is
    /// not on the overlay.
    #[cfg_attr(feature = "sqlx", sqlx(skip))]
    pub overlay_address: Option<String>,
    /// Its WireGuard public key and UDP port, from its enrollment.
    pub wireguard_key: Option<String>,
    pub wireguard_port: Option<i32>,
    /// Each overlay peer as its last heartbeat saw it.
    #[cfg_attr(feature = "sqlx", sqlx(skip))]
    #[serde(default)]
    pub overlay_peers: Vec<PeerStatus>,
    /// The heartbeat's own words, turned into `overlay_peers` by the store.
    #[cfg_attr(feature = "sqlx", sqlx(json))]
    #[serde(skip)]
    #[schemars(skip)]
    pub overlay_seen: Vec<zeitwork_core::overlay::PeerSeen>,
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub state: NodeState,
    /// Liveness, from the heartbeat bookkeeping; `null` until an agent reports.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// Instances the agent said it runs, in its last heartbeat.
    pub running: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// One overlay peer of a node: whether the path to it worked lately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PeerStatus {
    /// The peer's name; `null` when no node has that key any more.
    pub node: Option<String>,
    pub public_key: String,
    /// Seconds since the last handshake with it, now; `null`: never.
    pub handshake_age_seconds: Option<u64>,
    /// A handshake within the last 3 minutes (WireGuard's own limit for a live session).
    pub reachable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Region {
    pub id: Uuid,
    pub name: String,
    /// Where the region is reached from outside: its load balancers' or edges' public
    /// addresses, which `zeitwork server dns` answers with while they pass health checks.
    pub addresses: Vec<String>,
    /// Client networks (CIDRs) the region serves; DNS clients elsewhere get the nearest
    /// region by the DNS server's own table.
    pub client_networks: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A region's public addresses and client networks, set whole (`PUT /api/v1/regions/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionAddresses {
    /// IP literals (v4 or v6), each once.
    #[schemars(length(max = zeitwork_core::region::MAX_ADDRESSES))]
    pub addresses: Vec<String>,
    /// CIDRs with no host bits set (`10.1.0.0/16`, `2001:db8::/32`), each once.
    #[serde(default)]
    #[schemars(length(max = zeitwork_core::region::MAX_CLIENT_NETWORKS))]
    pub client_networks: Vec<String>,
}

/// The least memory a node registers with, in MiB.
pub const MIN_NODE_MEMORY_MB: u64 = 128;
/// The most: 16 TiB.
pub const MAX_NODE_MEMORY_MB: u64 = 16 * 1024 * 1024;

/// Registers a node by hand (enrollment with a join token is the usual way).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNode {
    #[schemars(length(min = 1, max = 27), regex(pattern = crate::NAME_PATTERN))]
    pub name: String,
    #[schemars(length(min = 1, max = 27), regex(pattern = crate::NAME_PATTERN))]
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 27), regex(pattern = crate::NAME_PATTERN))]
    pub zone: Option<String>,
    /// 0.001 to 4096.
    #[schemars(range(min = 0.001, max = 4096))]
    pub cpus: f64,
    #[schemars(range(min = 128, max = 16_777_216))]
    pub memory_mb: u64,
    /// Its IP addresses.
    #[serde(default)]
    #[schemars(length(max = 16), extend("items" = {
        "type": "string", "anyOf": [{ "format": "ipv4" }, { "format": "ipv6" }]
    }))]
    pub addresses: Vec<String>,
}

/// How long a join token lives unless asked otherwise: an hour.
pub const DEFAULT_JOIN_TTL: u64 = 3600;
/// The longest a join token lives: a week.
pub const MAX_JOIN_TTL: u64 = 7 * 24 * 3600;

/// Asks for a one-time token a node enrolls with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJoinToken {
    /// Seconds it stays usable (1 to 604800, default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 604_800))]
    pub ttl_seconds: Option<u64>,
    /// The node name this token may enroll again, replacing its credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 27), regex(pattern = crate::NAME_PATTERN))]
    pub replaces: Option<String>,
}

/// A node after a change of its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeChanged {
    pub node: Node,
    /// How many instances were started elsewhere in place of the node's (a drain).
    pub replacements: u32,
}

/// A node agent's report, taken or ignored as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Recorded {
    pub recorded: bool,
}

page!(
    /// `GET /api/v1/nodes`, by name.
    NodeList, nodes, Node
);
page!(
    /// `GET /api/v1/regions`, by name.
    RegionList, regions, Region
);
