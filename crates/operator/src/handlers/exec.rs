//! Exec endpoints: they parse and answer; the rules and the splicing are in
//! [`crate::exec`].
//! - `POST …/envs/{env}/exec` (deployer): a single-use grant for one command;
//! - `GET /api/v1/exec/{grant}` (the grant's secret as bearer, `Upgrade: zeitwork-exec`):
//!   the client's end;
//! - `GET /api/v1/nodes/{name}/execs/{grant}` (node credential, upgrade): the node's end.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;
use zeitwork_api_types::{ExecGrant, ExecRequest};
use zeitwork_core::exec::UPGRADE_PROTOCOL as PROTOCOL;

use crate::auth::Bearer;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::exec;
use crate::node_scope::{Agent, OnNode};
use crate::scope::{Deployer, InEnv};
use crate::state::AppState;

pub async fn grant(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    Body(ask): Body<ExecRequest>,
) -> ApiResult<(StatusCode, Json<ExecGrant>)> {
    let mut tx = s.store.begin().await?;
    let issued = exec::grant(&mut tx, &scope, &auth.actor(), ask).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[derive(Deserialize)]
pub struct GrantPath {
    grant: String,
}

/// Whether the request asks to upgrade to exec frames.
fn wants_upgrade(request: &Request) -> ApiResult<()> {
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok());
    if upgrade.is_some_and(|u| u.eq_ignore_ascii_case(PROTOCOL)) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            format!("an exec connection needs `Connection: upgrade` and `Upgrade: {PROTOCOL}`"),
        ))
    }
}

fn switching() -> Response {
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, HeaderValue::from_static("upgrade")),
            (header::UPGRADE, HeaderValue::from_static(PROTOCOL)),
        ],
    )
        .into_response()
}

fn grant_id(raw: &str) -> ApiResult<Uuid> {
    raw.parse()
        .map_err(|_| ApiError::forbidden(format!("exec grant {raw:?}: no such grant")))
}

pub async fn attach(
    State(s): State<AppState>,
    Path(p): Path<GrantPath>,
    Bearer(token): Bearer,
    mut request: Request,
) -> ApiResult<Response> {
    wants_upgrade(&request)?;
    let id = grant_id(&p.grant)?;
    let mut tx = s.store.begin().await?;
    exec::redeem(&mut tx, id, &token).await?;
    // Redeemed (so a replay never reaches here), not yet committed (so the node cannot
    // dial back before the client waits).
    let node = s.execs.expect(id);
    if let Err(e) = tx.commit().await {
        s.execs.forget(id);
        return Err(e.into());
    }
    let upgrade = hyper::upgrade::on(&mut request);
    let execs = s.execs.clone();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(client) => execs.serve_client(id, client, node).await,
            Err(e) => {
                execs.forget(id);
                tracing::warn!(grant = %id, error = %e, "an exec client's upgrade failed");
            }
        }
    });
    Ok(switching())
}

#[derive(Deserialize)]
pub struct NodeGrantPath {
    grant: String,
}

pub async fn attach_node(
    State(s): State<AppState>,
    OnNode { node, .. }: OnNode<Agent>,
    Path(p): Path<NodeGrantPath>,
    mut request: Request,
) -> ApiResult<Response> {
    wants_upgrade(&request)?;
    let id: Uuid = p.grant.parse().map_err(|_| ApiError::not_found("exec"))?;
    let mut db = s
        .store
        .pool()
        .acquire()
        .await
        .map_err(zeitwork_store::StoreError::from)?;
    let grant = zeitwork_store::exec::grant(&mut db, id)
        .await?
        .filter(|g| g.node_id == node.id && g.started_at.is_some())
        .ok_or_else(|| ApiError::not_found("exec"))?;
    drop(db);
    let client = s.execs.take(grant.id).ok_or_else(|| {
        ApiError::new(
            StatusCode::GONE,
            "gone",
            "no client waits for this exec here (it left, or waits at another operator)",
        )
    })?;
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(io) => {
                let _ = client.send(io);
            }
            Err(e) => tracing::warn!(grant = %id, error = %e, "a node's exec upgrade failed"),
        }
    });
    Ok(switching())
}
