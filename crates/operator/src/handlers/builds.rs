//! Builds from source: queue one (its source already pushed to the platform registry),
//! list and show them, and the node's reports on the builds it runs. The rules are
//! [`crate::builds`]'s; this only parses.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;
use zeitwork_api_types::{Build, BuildList, BuildReported, NewBuild, PageQuery};
use zeitwork_core::build::BuildReport;
use zeitwork_store::{log, read};

use crate::body::{Body, Create, Params};
use crate::builds::BuildSource;
use crate::error::{ApiError, ApiResult};
use crate::node_scope::{Agent, OnNode};
use crate::paging::{Order, Page};
use crate::scope::{Deployer, InEnv, Reader};
use crate::state::AppState;

/// Reasons and lines are bounded like instance reports'.
const MAX_REASON: usize = 2000;

#[derive(Deserialize)]
pub struct BuildPath {
    id: String,
}

pub(super) fn build_id(p: &BuildPath) -> ApiResult<Uuid> {
    p.id.parse().map_err(|_| ApiError::not_found("build"))
}

pub async fn create(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    req: Create<NewBuild>,
) -> ApiResult<Response> {
    let manifest = scope.manifest(req.body.manifest.as_deref())?;
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    let build = s
        .queue_build(
            &mut tx,
            &auth,
            &scope,
            BuildSource::Uploaded(&req.body.source),
            &manifest,
        )
        .await?;
    req.finish(tx, StatusCode::CREATED, build).await
}

pub async fn list(
    State(s): State<AppState>,
    InEnv { scope, .. }: InEnv<Reader>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<BuildList>> {
    let all = read::builds(s.store.pool(), scope.env.id).await?;
    let (builds, next) = Page::of(&q)?.cut(all, Order::Descending, |b| b.id.to_string());
    Ok(Json(BuildList { builds, next }))
}

pub async fn show(
    State(s): State<AppState>,
    InEnv { scope, .. }: InEnv<Reader>,
    Path(p): Path<BuildPath>,
) -> ApiResult<Json<Build>> {
    let id = build_id(&p)?;
    read::build(s.store.pool(), id)
        .await?
        .filter(|b| b.env_id == scope.env.id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("build"))
}

/// Cancels a build that has not ended.
pub async fn cancel(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    Path(p): Path<BuildPath>,
) -> ApiResult<Json<Build>> {
    let id = build_id(&p)?;
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    let build = s.cancel_build(&mut tx, &auth, &scope, id).await?;
    tx.commit()
        .await
        .map_err(zeitwork_store::StoreError::from)?;
    Ok(Json(build))
}

/// A node's report on one of its builds; repeating a report changes nothing.
pub async fn report(
    State(s): State<AppState>,
    OnNode { auth, node, .. }: OnNode<Agent>,
    Path(p): Path<BuildPath>,
    Body(r): Body<BuildReport>,
) -> ApiResult<Json<BuildReported>> {
    let id = build_id(&p)?;
    if r.reason.as_ref().is_some_and(|m| m.len() > MAX_REASON) {
        return Err(ApiError::invalid(
            "reason",
            format!("reason is limited to {MAX_REASON} bytes"),
        ));
    }
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    let answer = s.report_build(&mut tx, &auth, node.id, id, &r).await?;
    tx.commit()
        .await
        .map_err(zeitwork_store::StoreError::from)?;
    Ok(Json(answer))
}
