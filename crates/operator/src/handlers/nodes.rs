//! Nodes and regions: platform inventory. Everyone may read it (org tokens see where
//! their instances run); only platform tokens change it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;
use zeitwork_api_types::{
    MAX_NODE_MEMORY_MB, MIN_NODE_MEMORY_MB, NewName, NewNode, Node, NodeChanged, NodeList,
    PageQuery, Region, RegionAddresses, RegionList,
};
use zeitwork_core::node::NodeState;
use zeitwork_core::{EventData, Name, ipam, region};
use zeitwork_store::{Tx, agents, log, read};

use crate::auth::Auth;
use crate::body::{Body, Create, Params};
use crate::error::{ApiError, ApiResult, field};
use crate::paging::{Order, Page};
use crate::relocate;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct NodePath {
    name: String,
}

/// Node details (host addresses, capacity, load) are for platform tokens only; tenants
/// may list regions.
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<NodeList>> {
    auth.require_platform()?;
    let all = read::nodes_named(&mut *s.store.pool().acquire().await?).await?;
    let (nodes, next) = Page::of(&q)?.cut(all, Order::Ascending, |n| n.name.clone());
    Ok(Json(NodeList { nodes, next }))
}

pub async fn show(
    State(s): State<AppState>,
    auth: Auth,
    Path(p): Path<NodePath>,
) -> ApiResult<Json<Node>> {
    auth.require_platform()?;
    let node = read::node_named(&mut *s.store.pool().acquire().await?, &p.name)
        .await?
        .ok_or_else(|| ApiError::not_found("node"))?;
    Ok(Json(node))
}

pub async fn register(
    State(s): State<AppState>,
    auth: Auth,
    req: Create<NewNode>,
) -> ApiResult<Response> {
    auth.require_platform()?;
    let b = &req.body;
    let node = NodeIdentity::check(&b.name, &b.region, b.zone.as_deref(), &b.addresses)?;
    if !(0.001..=4096.0).contains(&b.cpus) {
        return Err(ApiError::invalid(
            "cpus",
            "cpus must be between 0.001 and 4096",
        ));
    }
    if !(MIN_NODE_MEMORY_MB..=MAX_NODE_MEMORY_MB).contains(&b.memory_mb) {
        return Err(ApiError::invalid(
            "memory_mb",
            format!("memory_mb must be between {MIN_NODE_MEMORY_MB} and {MAX_NODE_MEMORY_MB}"),
        ));
    }
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    ensure_region(&mut tx, &auth.actor(), &node.region).await?;
    let data = EventData::NodeRegistered {
        node_id: Uuid::now_v7(),
        name: node.name.clone(),
        region: node.region,
        zone: node.zone,
        millicpus: (b.cpus * 1000.0).round() as u32,
        memory_mb: b.memory_mb,
        addresses: b.addresses.clone(),
        instance_prefix: Some(free_instance_prefix(&mut tx).await?),
    };
    log::append(&mut tx, None, &auth.actor(), data).await?;
    let node = read::node_named(&mut tx, &node.name).await?;
    req.finish(tx, StatusCode::CREATED, node).await
}

/// For a platform admin's change to a node: the append lock taken, then the node read
/// under it (404 when there is none).
async fn locked_node(s: &AppState, auth: &Auth, name: &str) -> ApiResult<(Tx, Node)> {
    auth.require_platform()?;
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    let node = read::node(&mut *tx, name)
        .await?
        .ok_or_else(|| ApiError::not_found("node"))?;
    Ok((tx, node))
}

/// `POST /api/v1/nodes/{name}/drain`: the node takes no new instances, and each of its
/// instances gets a replacement elsewhere; the old ones stop once their replacements
/// report healthy (the monitor sees to it), so nothing is down in between.
pub async fn drain(
    State(s): State<AppState>,
    auth: Auth,
    Path(p): Path<NodePath>,
) -> ApiResult<Json<NodeChanged>> {
    let (mut tx, node) = locked_node(&s, &auth, &p.name).await?;
    let cpu = s.config.cpu_oversubscription;
    let replacements =
        relocate::evacuate(&mut tx, cpu, &node, NodeState::Draining, &auth.actor()).await?;
    let node = read::node_named(&mut tx, &p.name).await?;
    tx.commit().await?;
    let node = node.ok_or_else(|| ApiError::not_found("node"))?;
    Ok(Json(NodeChanged {
        node,
        replacements: u32::try_from(replacements).unwrap_or(u32::MAX),
    }))
}

/// `POST /api/v1/nodes/{name}/undrain`: a draining node takes new instances again (the
/// instances already moved stay where they are). A dead node comes back by heartbeating.
pub async fn undrain(
    State(s): State<AppState>,
    auth: Auth,
    Path(p): Path<NodePath>,
) -> ApiResult<Json<NodeChanged>> {
    let (mut tx, node) = locked_node(&s, &auth, &p.name).await?;
    match node.state {
        NodeState::Draining => {
            let data = EventData::NodeStateChanged {
                node_id: node.id,
                state: NodeState::Ready,
            };
            log::append(&mut tx, None, &auth.actor(), data).await?;
        }
        NodeState::Dead => {
            return Err(ApiError::conflict(
                "state",
                "the node is dead: it becomes ready again when its agent heartbeats",
            ));
        }
        NodeState::Ready => {}
    }
    let node = read::node_named(&mut tx, &p.name)
        .await?
        .ok_or_else(|| ApiError::not_found("node"))?;
    tx.commit().await?;
    Ok(Json(NodeChanged {
        node,
        replacements: 0,
    }))
}

pub async fn regions(
    State(s): State<AppState>,
    _auth: Auth,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<RegionList>> {
    let all = read::regions(s.store.pool()).await?;
    let (regions, next) = Page::of(&q)?.cut(all, Order::Ascending, |r| r.name.clone());
    Ok(Json(RegionList { regions, next }))
}

pub async fn create_region(
    State(s): State<AppState>,
    auth: Auth,
    req: Create<NewName>,
) -> ApiResult<Response> {
    auth.require_platform()?;
    let name = field("name", Name::parse(&req.body.name))?;
    let mut tx = s.store.begin().await?;
    let region_id = Uuid::now_v7();
    let data = EventData::RegionCreated {
        region_id,
        name: name.to_string(),
    };
    log::append(&mut tx, None, &auth.actor(), data).await?;
    let region = read::regions(&mut *tx)
        .await?
        .into_iter()
        .find(|r| r.id == region_id);
    req.finish(tx, StatusCode::CREATED, region).await
}

#[derive(Deserialize)]
pub struct RegionPath {
    name: String,
}

/// Sets a region's public addresses and client networks whole, creating the region when
/// it does not exist yet (platform token).
pub async fn set_region_addresses(
    State(s): State<AppState>,
    auth: Auth,
    Path(p): Path<RegionPath>,
    Body(body): Body<RegionAddresses>,
) -> ApiResult<Json<Region>> {
    auth.require_platform()?;
    let name = field("name", Name::parse(&p.name))?;
    let refused = |list: &str, e: region::Refused| match e.index {
        Some(i) => ApiError::invalid(format!("{list}[{i}]"), e.message),
        None => ApiError::invalid(list, e.message),
    };
    let addresses =
        region::parse_addresses(&body.addresses).map_err(|e| refused("addresses", e))?;
    let client_networks = region::parse_client_networks(&body.client_networks)
        .map_err(|e| refused("client_networks", e))?;
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    ensure_region(&mut tx, &auth.actor(), name.as_str()).await?;
    let existing = read::regions(&mut *tx)
        .await?
        .into_iter()
        .find(|r| r.name == name.as_str())
        .ok_or_else(|| ApiError::not_found("region"))?;
    let data = EventData::RegionAddressesSet {
        region_id: existing.id,
        addresses: addresses.iter().map(ToString::to_string).collect(),
        client_networks: client_networks.iter().map(ToString::to_string).collect(),
    };
    log::append(&mut tx, None, &auth.actor(), data).await?;
    let region = read::regions(&mut *tx)
        .await?
        .into_iter()
        .find(|r| r.id == existing.id)
        .ok_or_else(|| ApiError::not_found("region"))?;
    tx.commit().await?;
    Ok(Json(region))
}

/// Creates the region when it does not exist yet (a node may bring its own).
pub(super) async fn ensure_region(tx: &mut Tx, actor: &str, name: &str) -> ApiResult<()> {
    if !read::regions(&mut **tx)
        .await?
        .iter()
        .any(|r| r.name == name)
    {
        let data = EventData::RegionCreated {
            region_id: Uuid::now_v7(),
            name: name.to_owned(),
        };
        log::append(tx, None, actor, data).await?;
    }
    Ok(())
}

/// A node's name, place and addresses, validated: 422 naming the field otherwise.
pub(super) struct NodeIdentity {
    pub name: String,
    pub region: String,
    pub zone: Option<String>,
}

/// Node names that would shadow the node routes beside `/api/v1/nodes/{name}`.
const RESERVED: &[&str] = &["enroll", "join-tokens"];

impl NodeIdentity {
    pub fn check(
        name: &str,
        region: &str,
        zone: Option<&str>,
        addresses: &[String],
    ) -> ApiResult<NodeIdentity> {
        let name = field("name", Name::parse(name))?;
        if RESERVED.contains(&name.as_str()) {
            return Err(ApiError::conflict(
                "name",
                format!(
                    "{:?} is reserved for the API; choose another node name",
                    name.as_str()
                ),
            ));
        }
        let region = field("region", Name::parse(region))?;
        let zone = zone.map(|z| field("zone", Name::parse(z))).transpose()?;
        for (i, a) in addresses.iter().enumerate() {
            if a.parse::<std::net::IpAddr>().is_err() {
                return Err(ApiError::invalid(
                    format!("addresses[{i}]"),
                    format!("{a:?} is not an IP address"),
                ));
            }
        }
        Ok(NodeIdentity {
            name: name.to_string(),
            region: region.to_string(),
            zone: zone.map(|z| z.to_string()),
        })
    }
}

/// A node's instance /64 that no node holds (under the append lock, so two nodes never
/// get the same one).
pub(crate) async fn free_instance_prefix(tx: &mut Tx) -> ApiResult<String> {
    let taken = agents::instance_prefixes(&mut **tx).await?;
    ipam::free_prefix(taken.iter().map(String::as_str))
        .ok_or_else(|| ApiError::conflict("name", "every instance prefix of the platform is taken"))
}
