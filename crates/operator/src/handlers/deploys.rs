//! Releases, deployments and rollbacks, and the instances they ask for: parsed here,
//! carried out by [`crate::rollout`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeitwork_core::{ImageRef, platform_host};
use zeitwork_store::model::{Release, ReleaseDeployed};
use zeitwork_store::{log, read};

use crate::body::Create;
use crate::error::{ApiError, ApiResult, field};
use crate::scope::{Deployer, EnvScope, InApp, InEnv, Reader};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    image: String,
    /// The text of `zeitwork.toml`; absent means one `web` process with defaults.
    manifest: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackTo {
    release: Option<i32>,
}

#[derive(Deserialize)]
pub struct ReleasePath {
    number: String,
}

/// A release, with the envs whose active or standby deployment runs it.
#[derive(Serialize)]
struct ReleaseListing {
    #[serde(flatten)]
    release: Release,
    deployed: Vec<ReleaseDeployed>,
}

pub async fn releases(
    State(s): State<AppState>,
    InApp { app, .. }: InApp<Reader>,
) -> ApiResult<Json<Value>> {
    let db = s.store.pool();
    let mut deployed = read::releases_deployed(db, app.id).await?;
    let releases: Vec<ReleaseListing> = read::releases(db, app.id)
        .await?
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
    Ok(Json(json!({ "releases": releases })))
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
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "deployments": read::deployments(s.store.pool(), scope.env.id).await? }),
    ))
}

pub async fn instances(
    State(s): State<AppState>,
    InEnv { scope, .. }: InEnv<Reader>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "instances": read::instances(s.store.pool(), scope.env.id).await? }),
    ))
}

pub async fn status(
    State(s): State<AppState>,
    InEnv { scope, .. }: InEnv<Reader>,
) -> ApiResult<Json<Value>> {
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
        .filter(|i| i.desired_state != "stopped" || i.observed_state != "stopped")
        .collect();
    let standby = read::standby_deployment(db, scope.env.id).await?;
    // Per process: its autoscale bounds (null: scaled by hand) and the last change of
    // its count, by whom and why.
    let last = match &deployment {
        Some(d) => zeitwork_store::load::last_scaled(db, d.id).await?,
        None => Vec::new(),
    };
    let scaling: Vec<Value> = processes
        .iter()
        .map(|p| {
            let autoscale = release
                .as_ref()
                .and_then(|r| crate::scaling::autoscale_of(&r.manifest, &p.name));
            let last = last.iter().find(|l| l.process == p.name);
            json!({ "process": p.name, "autoscale": autoscale, "last": last })
        })
        .collect();
    Ok(Json(json!({
        "app": scope.app.name, "env": scope.env.name, "url": url, "deployment": deployment,
        "standby": standby, "release": release, "processes": processes, "instances": instances,
        "scaling": scaling,
    })))
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
    req: Create<RollbackTo>,
) -> ApiResult<Response> {
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    let answer = s
        .roll_back(&mut tx, &auth, &scope, req.body.release)
        .await?;
    req.finish(tx, StatusCode::CREATED, answer).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// Only this process's instances; absent: every process's.
    process: Option<String>,
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
    let answer = serde_json::to_value(answer).expect("restarts serialize");
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
