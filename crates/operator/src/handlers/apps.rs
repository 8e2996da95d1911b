//! Apps and their envs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use zeitwork_core::{EventData, Name, Role};
use zeitwork_store::model::{App, Env};
use zeitwork_store::{log, read};

use crate::auth::Auth;
use crate::body::Create;
use crate::error::{ApiResult, field};
use crate::scope::{AppPath, EnvPath, OrgPath};
use crate::state::AppState;

/// The env every new app starts with.
pub const DEFAULT_ENV: &str = "prod";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNamed {
    name: String,
}

pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Path(p): Path<OrgPath>,
) -> ApiResult<Json<Value>> {
    let org = s.org(&auth, &p.org, Role::Reader).await?;
    Ok(Json(
        json!({ "apps": read::apps(s.store.pool(), org.id).await? }),
    ))
}

pub async fn create(
    State(s): State<AppState>,
    auth: Auth,
    Path(p): Path<OrgPath>,
    req: Create<NewNamed>,
) -> ApiResult<Response> {
    let org = s.org(&auth, &p.org, Role::Admin).await?;
    let name = field("name", Name::parse(&req.body.name))?;
    let app_id = Uuid::now_v7();
    let mut tx = s.store.begin().await?;
    let actor = auth.actor();
    let created = log::append(
        &mut tx,
        Some(org.id),
        &actor,
        EventData::AppCreated {
            app_id,
            org_id: org.id,
            name: name.to_string(),
        },
    )
    .await?;
    let env = EventData::EnvCreated {
        env_id: Uuid::now_v7(),
        app_id,
        name: DEFAULT_ENV.into(),
    };
    log::append(&mut tx, Some(org.id), &actor, env).await?;
    let app = App {
        id: app_id,
        org_id: org.id,
        name: name.to_string(),
        created_at: created.at,
    };
    req.finish(tx, StatusCode::CREATED, app).await
}

pub async fn show(
    State(s): State<AppState>,
    auth: Auth,
    Path(p): Path<AppPath>,
) -> ApiResult<Json<App>> {
    Ok(Json(s.app(&auth, &p, Role::Reader).await?.1))
}

pub async fn delete(
    State(s): State<AppState>,
    auth: Auth,
    Path(p): Path<AppPath>,
) -> ApiResult<StatusCode> {
    let (org, app) = s.app(&auth, &p, Role::Admin).await?;
    s.record(
        &auth,
        Some(org.id),
        EventData::AppDeleted { app_id: app.id },
    )
    .await
}

pub async fn list_envs(
    State(s): State<AppState>,
    auth: Auth,
    Path(p): Path<AppPath>,
) -> ApiResult<Json<Value>> {
    let (_, app) = s.app(&auth, &p, Role::Reader).await?;
    Ok(Json(
        json!({ "envs": read::envs(s.store.pool(), app.id).await? }),
    ))
}

pub async fn create_env(
    State(s): State<AppState>,
    auth: Auth,
    Path(p): Path<AppPath>,
    req: Create<NewNamed>,
) -> ApiResult<Response> {
    let (org, app) = s.app(&auth, &p, Role::Admin).await?;
    let name = field("name", Name::parse(&req.body.name))?;
    let env_id = Uuid::now_v7();
    let mut tx = s.store.begin().await?;
    let data = EventData::EnvCreated {
        env_id,
        app_id: app.id,
        name: name.to_string(),
    };
    let created = log::append(&mut tx, Some(org.id), &auth.actor(), data).await?;
    let env = Env {
        id: env_id,
        app_id: app.id,
        name: name.to_string(),
        created_at: created.at,
    };
    req.finish(tx, StatusCode::CREATED, env).await
}

pub async fn show_env(
    State(s): State<AppState>,
    auth: Auth,
    Path(p): Path<EnvPath>,
) -> ApiResult<Json<Env>> {
    Ok(Json(s.env(&auth, &p, Role::Reader).await?.env))
}

pub async fn delete_env(
    State(s): State<AppState>,
    auth: Auth,
    Path(p): Path<EnvPath>,
) -> ApiResult<StatusCode> {
    let scope = s.env(&auth, &p, Role::Admin).await?;
    s.record(
        &auth,
        Some(scope.org.id),
        EventData::EnvDeleted {
            env_id: scope.env.id,
        },
    )
    .await
}
