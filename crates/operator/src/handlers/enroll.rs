//! Bringing a node in: a platform admin creates a one-time join token, the node's agent
//! trades it for a node credential. Neither secret is ever stored, only its SHA-256, and
//! neither is kept for `Idempotency-Key` replays, which would store it in the clear.
//! Enrolling a name that is already enrolled replaces that node's credential (and so
//! who receives its tenants' secrets): only a token the platform admin made for that
//! name (`replaces`) may do it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use uuid::Uuid;
use zeitwork_api_types::{DEFAULT_JOIN_TTL, MAX_JOIN_TTL, NewJoinToken};
use zeitwork_core::EventData;
use zeitwork_core::Name;
use zeitwork_core::node::{
    Enrolled, Enrollment, JoinToken, MAX_MEMORY_MB, MAX_MILLICPUS, NodeState,
};
use zeitwork_core::overlay::OverlayError;
use zeitwork_store::agents::UsableJoinToken;
use zeitwork_store::{agents, log, read};

use super::agent::revive;
use super::nodes::{NodeIdentity, ensure_region};
use crate::auth::{self, Auth, Bearer};
use crate::body::Body;
use crate::error::{ApiError, ApiResult, field};
use crate::state::AppState;

pub async fn create_join_token(
    State(s): State<AppState>,
    auth: Auth,
    Body(b): Body<NewJoinToken>,
) -> ApiResult<(StatusCode, Json<JoinToken>)> {
    auth.require_platform()?;
    let ttl = b.ttl_seconds.unwrap_or(DEFAULT_JOIN_TTL);
    if !(1..=MAX_JOIN_TTL).contains(&ttl) {
        return Err(ApiError::invalid(
            "ttl_seconds",
            format!("ttl_seconds must be between 1 and {MAX_JOIN_TTL} (a week)"),
        ));
    }
    let replaces = match &b.replaces {
        Some(name) => Some(field("replaces", Name::parse(name))?.to_string()),
        None => None,
    };
    let token = auth::generate();
    let expires_at = Utc::now() + chrono::Duration::seconds(ttl as i64);
    let data = EventData::NodeJoinTokenCreated {
        token_id: Uuid::now_v7(),
        hash: auth::hash(&token),
        expires_at,
        replaces,
    };
    let mut tx = s.store.begin().await?;
    log::append(&mut tx, None, &auth.actor(), data).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(JoinToken { token, expires_at })))
}

/// `POST /api/v1/nodes/enroll` with the join token as the bearer. Uses the token up,
/// registers the node (or, for a known name, keeps its id and takes the new capacity
/// and addresses) and answers with its credential, shown this once.
pub async fn enroll(
    State(s): State<AppState>,
    Bearer(join_token): Bearer,
    Body(e): Body<Enrollment>,
) -> ApiResult<(StatusCode, Json<Enrolled>)> {
    let id = NodeIdentity::check(&e.name, &e.region, e.zone.as_deref(), &e.addresses)?;
    if !(1..=MAX_MILLICPUS).contains(&e.millicpus) {
        return Err(ApiError::invalid(
            "millicpus",
            format!("millicpus must be between 1 and {MAX_MILLICPUS}"),
        ));
    }
    if !(1..=MAX_MEMORY_MB).contains(&e.memory_mb) {
        return Err(ApiError::invalid(
            "memory_mb",
            format!("memory_mb must be between 1 and {MAX_MEMORY_MB}"),
        ));
    }
    if let Some(overlay) = &e.overlay {
        overlay.check().map_err(|err| {
            let name = match err {
                OverlayError::Key => "overlay.public_key",
                OverlayError::Port => "overlay.port",
            };
            ApiError::invalid(name, err.to_string())
        })?;
    }
    let mut tx = s.store.begin().await?;
    // Under the lock, so two enrollments cannot both use the same token.
    log::lock(&mut tx).await?;
    let join_token = agents::usable_join_token(&mut *tx, &auth::hash(&join_token))
        .await?
        .ok_or_else(|| ApiError::unauthenticated("unknown, used or expired join token"))?;
    let join_token_id = join_token.id;
    let actor = format!("join-token:{join_token_id}");
    let known = read::node(&mut *tx, &id.name).await?;
    consented(&join_token, &id.name, known.is_some())?;
    ensure_region(&mut tx, &actor, &id.region).await?;
    let node_id = known.as_ref().map_or_else(Uuid::now_v7, |n| n.id);
    // A key is one node's: a node presenting another's is refused (and never peered).
    if let Some(overlay) = &e.overlay
        && let Some(holder) = agents::key_holder(&mut *tx, &overlay.public_key).await?
        && holder != node_id
    {
        return Err(ApiError::conflict(
            "overlay.public_key",
            "another node already has this WireGuard key; each node makes its own",
        ));
    }
    // A node keeps its prefix (its running instances' addresses) when it enrolls again.
    let instance_prefix = match known.as_ref().and_then(|n| n.instance_prefix.clone()) {
        Some(kept) => kept,
        None => super::nodes::free_instance_prefix(&mut tx).await?,
    };
    let credential = auth::generate();
    let data = EventData::NodeEnrolled {
        node_id,
        name: id.name.clone(),
        region: id.region,
        zone: id.zone,
        millicpus: e.millicpus,
        memory_mb: e.memory_mb,
        addresses: e.addresses,
        instance_prefix: Some(instance_prefix.clone()),
        join_token_id,
        credential_hash: auth::hash(&credential),
        overlay: e.overlay,
    };
    log::append(&mut tx, None, &actor, data).await?;
    if known.is_some_and(|n| n.state == NodeState::Dead) {
        revive(&mut tx, node_id, &actor).await?;
    }
    // Enrolling counts as the first heartbeat: from now on the node is watched.
    agents::beat(&mut *tx, node_id, 0, &[]).await?;
    tx.commit().await?;
    tracing::info!(node = %id.name, %node_id, "node enrolled");
    Ok((
        StatusCode::CREATED,
        Json(Enrolled {
            node_id,
            name: id.name,
            credential,
            instance_prefix,
        }),
    ))
}

/// Whether this join token may enroll `name`: a new name with any token that names no
/// node; a known one only with a token made to replace it.
fn consented(token: &UsableJoinToken, name: &str, known: bool) -> ApiResult<()> {
    match (&token.replaces, known) {
        (Some(allowed), _) if allowed != name => Err(ApiError::forbidden(format!(
            "this join token may only enroll node {allowed}"
        ))
        .with_field("name")),
        (None, true) => Err(ApiError::conflict(
            "name",
            format!(
                "node {name} is already enrolled; enrolling it again replaces its credential, \
                 which needs a platform admin's join token made for it: \
                 `zeitwork nodes join-token --replace {name}`"
            ),
        )),
        _ => Ok(()),
    }
}
