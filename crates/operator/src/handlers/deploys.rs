//! Releases, deployments and rollbacks, and the instances they ask for.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use zeitwork_core::event::ProcessSpec;
use zeitwork_core::{EventData, ImageRef, Manifest, platform_host};
use zeitwork_store::model::{Deployment, Release};
use zeitwork_store::{Tx, log, read};

use super::routing::apply_declared;
use crate::auth::Auth;
use crate::body::Create;
use crate::error::{ApiError, ApiResult, field};
use crate::hostnames;
use crate::placement::{self, Want};
use crate::quota;
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

pub async fn releases(
    State(s): State<AppState>,
    InApp { app, .. }: InApp<Reader>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "releases": read::releases(s.store.pool(), app.id).await? }),
    ))
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
    Ok(Json(json!({
        "app": scope.app.name, "env": scope.env.name, "url": url, "deployment": deployment,
        "release": release, "processes": processes, "instances": instances,
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
    let history = read::deployments(&mut *tx, scope.env.id).await?;
    let active = history.iter().find(|d| d.state == "active").cloned();
    let Some(active) = active else {
        return Err(ApiError::conflict(
            "release",
            "nothing is deployed to this env yet",
        ));
    };
    let release = match req.body.release {
        Some(number) => read::release(&mut *tx, scope.app.id, number)
            .await?
            .ok_or_else(|| ApiError::not_found("release").with_field("release"))?,
        None => {
            let previous = history
                .iter()
                .filter(|d| d.created_at < active.created_at && d.release_id != active.release_id)
                .max_by_key(|d| d.created_at)
                .ok_or_else(|| {
                    ApiError::conflict("release", "there is no earlier release to roll back to")
                })?;
            read::release_by_id(&mut *tx, previous.release_id)
                .await?
                .expect("deployments reference releases")
        }
    };
    let manifest = Manifest::from_json(&release.manifest).map_err(|e| {
        ApiError::invalid(
            "release",
            format!("release {} has an unreadable manifest: {e}", release.number),
        )
    })?;
    let answer = s
        .roll_out(&mut tx, &auth, &scope, release, &manifest, Some(active.id))
        .await?;
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

    /// The release for this image and manifest: reused when the same pair was released
    /// before (a release is an immutable tuple), created otherwise.
    pub(crate) async fn release_for(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        scope: &EnvScope,
        image: &ImageRef,
        manifest: &Manifest,
    ) -> ApiResult<Release> {
        let hash = manifest.hash();
        let existing = read::releases(&mut **tx, scope.app.id).await?;
        if let Some(r) = existing
            .iter()
            .find(|r| r.digest == image.digest && r.manifest_hash == hash)
        {
            return Ok(r.clone());
        }
        let number = existing.first().map_or(1, |r| r.number + 1);
        let release_id = Uuid::now_v7();
        let data = EventData::ReleaseCreated {
            release_id,
            app_id: scope.app.id,
            number,
            image: image.to_string(),
            digest: image.digest.clone(),
            manifest: serde_json::to_value(manifest).expect("manifests serialize"),
            manifest_hash: hash,
        };
        log::append(tx, Some(scope.org.id), &auth.actor(), data).await?;
        Ok(read::release_by_id(&mut **tx, release_id)
            .await?
            .expect("just created"))
    }

    /// Creates a deployment of `release` in the env, placing its instances. Instance
    /// counts set by `scale` carry over from the active deployment.
    pub(crate) async fn roll_out(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        scope: &EnvScope,
        release: Release,
        manifest: &Manifest,
        rollback_of: Option<Uuid>,
    ) -> ApiResult<Value> {
        let active = read::active_deployment(&mut **tx, scope.env.id).await?;
        let scaled = match &active {
            Some(d) => read::process_types(&mut **tx, d.id).await?,
            None => Vec::new(),
        };
        let processes: Vec<(ProcessSpec, Vec<String>)> = manifest
            .processes
            .iter()
            .map(|(name, p)| {
                let instances = scaled
                    .iter()
                    .find(|pt| pt.name == name.as_str())
                    .map_or(p.instances, |pt| u32::try_from(pt.instances).unwrap_or(0));
                let spec = ProcessSpec {
                    name: name.to_string(),
                    instances,
                    millicpus: (p.cpus * 1000.0).round() as u32,
                    memory_mb: p.memory_mb,
                    port: p.port,
                };
                (spec, p.regions.iter().map(ToString::to_string).collect())
            })
            .collect();
        let deployment_id = Uuid::now_v7();
        let wants: Vec<Want> = processes
            .iter()
            .map(|(spec, regions)| Want {
                spec,
                count: spec.instances,
                regions,
            })
            .collect();
        // The active deployment's instances keep their room until this one is healthy;
        // where there is not enough besides, new instances wait and the monitor stops
        // the old ones to make room (a rolling rather than a surging rollout).
        let plans =
            placement::plan(tx, self.config.cpu_oversubscription, deployment_id, &wants).await?;
        // The env's running instances are replaced by these once they are healthy.
        let usage = read::org_usage(&mut **tx, scope.org.id, Some(scope.env.id), None).await?;
        let memory: u64 = plans
            .iter()
            .filter_map(|plan| processes.iter().find(|(spec, _)| spec.name == plan.process))
            .map(|(spec, _)| spec.memory_mb)
            .sum();
        quota::of(&mut **tx, self.config.quotas, &scope.org)
            .await?
            .allow_instances(
                usage.instances + plans.len() as u64,
                usage.memory_mb + memory,
            )?;
        let slug = free_slug(tx, scope).await?;
        let data = EventData::DeploymentCreated {
            deployment_id,
            env_id: scope.env.id,
            release_id: release.id,
            slug: slug.clone(),
            rollback_of,
            processes: processes.into_iter().map(|(spec, _)| spec).collect(),
            instances: plans,
            surge: true,
        };
        log::append(tx, Some(scope.org.id), &auth.actor(), data).await?;
        apply_declared(tx, self, auth, scope, manifest).await?;
        let deployment: Deployment = read::active_deployment(&mut **tx, scope.env.id)
            .await?
            .expect("just created");
        let instances: Vec<_> = read::instances(&mut **tx, scope.env.id)
            .await?
            .into_iter()
            .filter(|i| i.deployment_id == deployment_id)
            .collect();
        Ok(
            json!({ "deployment": deployment, "release": release, "url": self.url(scope, &slug), "instances": instances, "warnings": manifest.reachability_warnings() }),
        )
    }
}

/// A slug whose deployment hostname no other env or deployment holds (an app of
/// another org can make the same label: `shop-<slug>-acme` is also app `shop-<slug>`
/// of org `acme`), drawn again while taken.
async fn free_slug(tx: &mut Tx, scope: &EnvScope) -> ApiResult<String> {
    for _ in 0..16 {
        let slug = nanoid::nanoid!(7, &SLUG_ALPHABET);
        let label = platform_host::deployment_label(&scope.app.name, &slug, &scope.org.name);
        if hostnames::is_free(tx, &label).await? {
            return Ok(slug);
        }
    }
    Err(ApiError::conflict(
        "id",
        "no free deployment hostname was found; retry",
    ))
}

/// Deployment slugs appear in hostnames: lowercase letters and digits only.
const SLUG_ALPHABET: [char; 36] = [
    'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's',
    't', 'u', 'v', 'w', 'x', 'y', 'z', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
];
