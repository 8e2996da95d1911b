//! Apps and their envs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use uuid::Uuid;
use zeitwork_api_types::{App, AppHealth, AppList, AppSummary, Env, EnvList, NewName, PageQuery};
use zeitwork_core::platform_host::{self, PRIMARY_ENV, env_label};
use zeitwork_core::{EventData, Name};
use zeitwork_store::{log, read};

use crate::body::{Create, Params};
use crate::error::{ApiResult, field};
use crate::hostnames;
use crate::paging::{Order, Page};
use crate::scope::{Admin, InApp, InEnv, InOrg, Reader};
use crate::state::AppState;

pub async fn list(
    State(s): State<AppState>,
    InOrg { org, .. }: InOrg<Reader>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<AppList>> {
    let page = Page::of(&q)?;
    let after = page.after.as_deref();
    let rows = read::app_rows(s.store.pool(), org.id, PRIMARY_ENV, after, page.fetch()).await?;
    let (rows, next) = page.finish(rows, |r| r.name.clone());
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    let apps = rows
        .into_iter()
        .map(|r| {
            let (running, healthy) = (count(r.running), count(r.healthy));
            let deployed = r.release_number.is_some();
            let label = env_label(&r.name, PRIMARY_ENV, &org.name);
            AppSummary {
                state: AppHealth::of(deployed, running, healthy, count(r.failed)),
                url: deployed.then(|| {
                    format!(
                        "http://{}",
                        platform_host::host(&label, &s.config.base_domain)
                    )
                }),
                id: r.id,
                name: r.name,
                created_at: r.created_at,
                release: r.release_number,
                instances: running,
                healthy,
            }
        })
        .collect();
    Ok(Json(AppList { apps, next }))
}

pub async fn create(
    State(s): State<AppState>,
    InOrg { auth, org, .. }: InOrg<Admin>,
    req: Create<NewName>,
) -> ApiResult<Response> {
    let name = field("name", Name::parse(&req.body.name))?;
    let app_id = Uuid::now_v7();
    let mut tx = s.store.begin().await?;
    let label = env_label(name.as_str(), PRIMARY_ENV, &org.name);
    hostnames::ensure_free(&mut tx, &label, &s.config.base_domain, "name").await?;
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
        name: PRIMARY_ENV.into(),
        preview_of: None,
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

pub async fn show(InApp { app, .. }: InApp<Reader>) -> ApiResult<Json<App>> {
    Ok(Json(app))
}

pub async fn delete(
    State(s): State<AppState>,
    InApp { auth, org, app, .. }: InApp<Admin>,
) -> ApiResult<StatusCode> {
    s.record(
        &auth,
        Some(org.id),
        EventData::AppDeleted { app_id: app.id },
    )
    .await
}

pub async fn list_envs(
    State(s): State<AppState>,
    InApp { app, .. }: InApp<Reader>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<EnvList>> {
    let envs = read::envs(s.store.pool(), app.id).await?;
    let (envs, next) = Page::of(&q)?.cut(envs, Order::Ascending, |e| e.name.clone());
    Ok(Json(EnvList { envs, next }))
}

pub async fn create_env(
    State(s): State<AppState>,
    InApp { auth, org, app, .. }: InApp<Admin>,
    req: Create<NewName>,
) -> ApiResult<Response> {
    let name = field("name", Name::parse(&req.body.name))?;
    let env_id = Uuid::now_v7();
    let mut tx = s.store.begin().await?;
    let label = env_label(&app.name, name.as_str(), &org.name);
    hostnames::ensure_free(&mut tx, &label, &s.config.base_domain, "name").await?;
    let data = EventData::EnvCreated {
        env_id,
        app_id: app.id,
        name: name.to_string(),
        preview_of: None,
    };
    let created = log::append(&mut tx, Some(org.id), &auth.actor(), data).await?;
    let env = Env {
        id: env_id,
        app_id: app.id,
        name: name.to_string(),
        preview_of: None,
        created_at: created.at,
    };
    req.finish(tx, StatusCode::CREATED, env).await
}

pub async fn show_env(InEnv { scope, .. }: InEnv<Reader>) -> ApiResult<Json<Env>> {
    Ok(Json(scope.env))
}

pub async fn delete_env(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Admin>,
) -> ApiResult<StatusCode> {
    s.record(
        &auth,
        Some(scope.org.id),
        EventData::EnvDeleted {
            env_id: scope.env.id,
        },
    )
    .await
}
