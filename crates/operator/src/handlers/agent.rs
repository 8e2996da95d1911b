//! The node agent's side of the API, under `/api/v1/nodes/{name}/…`, reachable only
//! with that node's credential (see [`crate::node_scope`]): heartbeats, the desired
//! state, and reports of what its instances do.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;
use zeitwork_api_types::Recorded;
use zeitwork_core::node::{Heartbeat, HeartbeatAck, InstanceReport, NodeDesired, NodeState};
use zeitwork_core::overlay::{MAX_PEERS, public_key_bytes};
use zeitwork_core::{EventData, ipam};
use zeitwork_store::agents::{self, Observed};
use zeitwork_store::{StoreError, log, read};

use crate::body::Body;
use crate::desired;
use crate::error::{ApiError, ApiResult};
use crate::node_scope::{Agent, AgentOrPlatform, OnNode};
use crate::state::AppState;

/// Longest `reason` a report may carry; exit statuses and check failures fit.
const MAX_REASON: usize = 2000;

#[derive(Deserialize)]
pub struct InstancePath {
    id: String,
}

/// Records liveness without an event. A node that was declared dead is ready again
/// (an event: that is history); its old instances were replaced meanwhile.
pub async fn heartbeat(
    State(s): State<AppState>,
    OnNode { auth, node, .. }: OnNode<Agent>,
    Body(beat): Body<Heartbeat>,
) -> ApiResult<Json<HeartbeatAck>> {
    if beat.cpu.len() > Heartbeat::MAX_CPU_REPORTS {
        return Err(ApiError::invalid(
            "cpu",
            format!("at most {} reports", Heartbeat::MAX_CPU_REPORTS),
        ));
    }
    if let Some(i) = beat
        .cpu
        .iter()
        .position(|c| c.millicpus > Heartbeat::MAX_MILLICPUS)
    {
        return Err(ApiError::invalid(
            format!("cpu[{i}].millicpus"),
            format!("at most {}", Heartbeat::MAX_MILLICPUS),
        ));
    }
    if beat.overlay.len() > MAX_PEERS {
        return Err(ApiError::invalid(
            "overlay",
            format!("at most {MAX_PEERS} peers"),
        ));
    }
    if let Some(i) = beat
        .overlay
        .iter()
        .position(|p| public_key_bytes(&p.public_key).is_err())
    {
        return Err(ApiError::invalid(
            format!("overlay[{i}].public_key"),
            "a WireGuard public key: 32 bytes in base64",
        ));
    }
    agents::beat(s.store.pool(), node.id, beat.running, &beat.overlay).await?;
    let cpu: Vec<(uuid::Uuid, u32, bool)> = beat
        .cpu
        .iter()
        .map(|c| (c.instance_id, c.millicpus, c.busy))
        .collect();
    if !cpu.is_empty() {
        zeitwork_store::load::report_cpu(s.store.pool(), node.id, &cpu).await?;
    }
    // Read again: the monitor may have judged the node while this heartbeat waited.
    let mut state = current_state(&mut *s.store.pool().acquire().await?, &node.name).await?;
    if state == NodeState::Dead {
        let mut tx = s.store.begin().await?;
        log::lock(&mut tx).await?;
        state = current_state(&mut tx, &node.name).await?;
        if state == NodeState::Dead {
            revive(&mut tx, node.id, &auth.actor()).await?;
            state = NodeState::Ready;
        }
        tx.commit().await?;
    }
    Ok(Json(HeartbeatAck { state }))
}

async fn current_state(db: &mut PgConnection, name: &str) -> ApiResult<NodeState> {
    Ok(read::node(db, name)
        .await?
        .ok_or_else(|| ApiError::not_found("node"))?
        .state)
}

/// Marks a dead node ready again; the caller holds the append lock.
pub(super) async fn revive(
    tx: &mut PgConnection,
    node: Uuid,
    actor: &str,
) -> Result<(), StoreError> {
    let data = EventData::NodeStateChanged {
        node_id: node,
        state: NodeState::Ready,
    };
    log::append(tx, None, actor, data).await?;
    tracing::info!(%node, "a dead node is back: ready");
    Ok(())
}

/// Everything the node should run, read in one snapshot together with the log head,
/// so `seq` says exactly which changes the answer includes.
pub async fn desired(
    State(s): State<AppState>,
    OnNode { node, .. }: OnNode<AgentOrPlatform>,
) -> ApiResult<Json<NodeDesired>> {
    let mut tx = s.store.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows = agents::desired(&mut *tx, node.id).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.instance_id).collect();
    let sealed = agents::sealed_secrets(&mut *tx, &ids).await?;
    let open_builds = read::node_builds(&mut *tx, node.id).await?;
    let execs = zeitwork_store::exec::started_on(&mut tx, node.id).await?;
    // Off the overlay itself, a node has no one to peer with.
    let peers = match node.wireguard_key {
        Some(_) => read::overlay_peers(&mut *tx, node.id).await?,
        None => Vec::new(),
    };
    let seq = log::head(&mut tx).await?;
    tx.commit().await?;
    let instances = desired::instances(rows, sealed, &s.secrets).map_err(|e| {
        tracing::error!(node = %node.name, error = %e, "cannot tell a node its desired state");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )
    })?;
    let builds = match &s.config.registry {
        Some(registry) => desired::builds(open_builds, registry, &s.secrets),
        None => Vec::new(),
    };
    Ok(Json(NodeDesired {
        node_id: node.id,
        seq,
        instances,
        builds,
        execs: execs.into_iter().map(desired::exec).collect(),
        peers,
    }))
}

/// Records an instance's transition, once: a report equal to what is known writes nothing,
/// so agents may repeat reports freely.
pub async fn report(
    State(s): State<AppState>,
    OnNode { auth, node, .. }: OnNode<Agent>,
    Path(p): Path<InstancePath>,
    Body(r): Body<InstanceReport>,
) -> ApiResult<Json<Recorded>> {
    let id: Uuid = p.id.parse().map_err(|_| ApiError::not_found("instance"))?;
    if r.reason.as_ref().is_some_and(|m| m.len() > MAX_REASON) {
        return Err(ApiError::invalid(
            "reason",
            format!("reason is limited to {MAX_REASON} bytes"),
        ));
    }
    if let Some(a) = &r.address {
        let addr = a
            .parse::<std::net::SocketAddr>()
            .map_err(|_| ApiError::invalid("address", format!("{a:?} is not ip:port")))?;
        // Edges dial it verbatim: only an address of this node's own prefix, which no
        // other node's instances can have.
        let prefix = node.instance_prefix.as_deref().unwrap_or("none");
        if !ipam::contains(prefix, addr.ip()) {
            return Err(ApiError::invalid(
                "address",
                format!("{a} is outside this node's instance prefix ({prefix})"),
            ));
        }
    }
    let known = |o: Option<Observed>| o.ok_or_else(|| ApiError::not_found("instance"));
    if same(
        &known(agents::observed(s.store.pool(), node.id, id).await?)?,
        &r,
    ) {
        return Ok(Json(Recorded { recorded: false }));
    }
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    let current = known(agents::observed(&mut *tx, node.id, id).await?)?;
    if same(&current, &r) {
        return Ok(Json(Recorded { recorded: false }));
    }
    let data = EventData::InstanceObserved {
        instance_id: id,
        state: r.state,
        reason: r.reason,
        address: r.address,
        restarts: r.restarts,
    };
    log::append(&mut tx, Some(current.org_id), &auth.actor(), data).await?;
    tx.commit().await?;
    Ok(Json(Recorded { recorded: true }))
}

fn same(known: &Observed, r: &InstanceReport) -> bool {
    known.observed_state == r.state.as_str()
        && known.reason == r.reason
        && known.address == r.address
        && i64::from(known.restarts) == i64::from(r.restarts)
}
