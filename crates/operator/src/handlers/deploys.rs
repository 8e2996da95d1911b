//! Releases, deployments and rollbacks, and the instances they ask for: parsed here,
//! carried out by [`crate::rollout`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use zeitwork_api_types::{
    DeploymentList, EnvStatus, InstanceList, NewDeployment, PageQuery, ProcessScaling, Release,
    ReleaseList, ReleaseListing, Restart, Rollback,
};
use zeitwork_core::node::ObservedState;
use zeitwork_core::{DesiredState, ImageRef, platform_host};
use zeitwork_store::{log, read};

use crate::body::{Create, Params};
use crate::error::{ApiError, ApiResult, field};
use crate::paging::{Order, Page, number_key};
use crate::scope::{Deployer, EnvScope, InApp, InEnv, Reader};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct ReleasePath {
    number: String,
}

pub async fn releases(
    State(s): State<AppState>,
    InApp { app, .. }: InApp<Reader>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<ReleaseList>> {
    let page = Page::of(&q)?;
    let db = s.store.pool();
    let (releases, next) = page.cut(
        read::releases(db, app.id).await?,
        Order::Descending,
        |r: &Release| number_key(r.number),
    );
    let mut deployed = read::releases_deployed(db, app.id).await?;
    let releases = releases
        .into_iter()
        .map(|release| {
            let (of, rest) = deployed.drain(..).partition(|d| d.release_id == release.id);
            deployed = rest;
            ReleaseListing {
                release,
                deployed: of,
            }
        })
        .collect();
    Ok(Json(ReleaseList { releases, next }))
}

pub async fn release(
    State(s): State<AppState>,
    InApp { app, .. }: InApp<Reader>,
    Path(p): Path<ReleasePath>,
) -> ApiResult<Json<Release>> {
    let number: i32 = p
        .number
        .trim_start_matches('v')
        .parse()
        .map_err(|_| ApiError::not_found("release"))?;
    let release = read::release(s.store.pool(), app.id, number)
        .await?
        .ok_or_else(|| ApiError::not_found("release"))?;
    Ok(Json(release))
}

pub async fn deployments(
    State(s): State<AppState>,
    InEnv { scope, .. }: InEnv<Reader>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<DeploymentList>> {
    let all = read::deployments(s.store.pool(), scope.env.id).await?;
    let (deployments, next) = Page::of(&q)?.cut(all, Order::Descending, |d| d.id.to_string());
    Ok(Json(DeploymentList { deployments, next }))
}

pub async fn instances(
    State(s): State<AppState>,
    InEnv { scope, .. }: InEnv<Reader>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<InstanceList>> {
    let all = read::instances(s.store.pool(), scope.env.id).await?;
    let (instances, next) = Page::of(&q)?.cut(all, Order::Descending, |i| i.id.to_string());
    Ok(Json(InstanceList { instances, next }))
}

pub async fn status(
    State(s): State<AppState>,
    InEnv { scope, .. }: InEnv<Reader>,
) -> ApiResult<Json<EnvStatus>> {
    let db = s.store.pool();
    let deployment = read::active_deployment(db, scope.env.id).await?;
    let (release, processes, url) = match &deployment {
        Some(d) => (
            read::release_by_id(db, d.release_id).await?,
            read::process_types(db, d.id).await?,
            Some(s.url(&scope, &d.slug)),
        ),
        None => (None, Vec::new(), None),
    };
    let instances: Vec<_> = read::instances(db, scope.env.id)
        .await?
        .into_iter()
        .filter(|i| {
            i.desired_state != DesiredState::Stopped || i.observed_state != ObservedState::Stopped
        })
        .collect();
    let standby = read::standby_deployment(db, scope.env.id).await?;
    // Per process: its autoscale bounds (null: scaled by hand) and the last change of
    // its count, by whom and why.
    let last = match &deployment {
        Some(d) => zeitwork_store::load::last_scaled(db, d.id).await?,
        None => Vec::new(),
    };
    let scaling = processes
        .iter()
        .map(|p| ProcessScaling {
            process: p.name.clone(),
            autoscale: release
                .as_ref()
                .and_then(|r| crate::scaling::autoscale_of(&r.manifest, &p.name)),
            last: last.iter().find(|l| l.process == p.name).cloned(),
        })
        .collect();
    Ok(Json(EnvStatus {
        app: scope.app.name,
        env: scope.env.name,
        url,
        deployment,
        standby,
        release,
        processes,
        instances,
        scaling,
    }))
}

pub async fn deploy(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    req: Create<NewDeployment>,
) -> ApiResult<Response> {
    let image = field("image", ImageRef::parse(&req.body.image))?;
    let manifest = scope.manifest(req.body.manifest.as_deref())?;
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    let release = s
        .release_for(&mut tx, &auth, &scope, &image, &manifest)
        .await?;
    let answer = s
        .roll_out(&mut tx, &auth, &scope, release, &manifest, None)
        .await?;
    req.finish(tx, StatusCode::CREATED, answer).await
}

pub async fn rollback(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    req: Create<Rollback>,
) -> ApiResult<Response> {
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    let answer = s
        .roll_back(&mut tx, &auth, &scope, req.body.release)
        .await?;
    req.finish(tx, StatusCode::CREATED, answer).await
}

pub async fn restart(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    req: Create<Restart>,
) -> ApiResult<Response> {
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    let answer = s
        .restart(&mut tx, &auth, &scope, req.body.process.as_deref())
        .await?
        .ok_or_else(|| ApiError::conflict("env", "nothing is deployed to this env yet"))?;
    req.finish(tx, StatusCode::CREATED, answer).await
}

impl AppState {
    pub(crate) fn url(&self, scope: &EnvScope, slug: &str) -> String {
        let label = platform_host::deployment_label(&scope.app.name, slug, &scope.org.name);
        format!(
            "http://{}",
            platform_host::host(&label, &self.config.base_domain)
        )
    }
}
