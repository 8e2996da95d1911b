use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use uuid::Uuid;
use zeitwork_api_types::{NewName, Org, OrgList, OrgQuotas, PageQuery};
use zeitwork_core::{EventData, Name, QuotaOverrides, Quotas};
use zeitwork_store::{log, read};

use crate::auth::Auth;
use crate::body::{Body, Create, Params};
use crate::error::{ApiError, ApiResult, field};
use crate::paging::{Order, Page};
use crate::scope::{Admin, InOrg, Reader};
use crate::state::AppState;

pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<OrgList>> {
    let all = read::orgs(s.store.pool(), auth.readable_orgs()?).await?;
    let (orgs, next) = Page::of(&q)?.cut(all, Order::Ascending, |o| o.name.clone());
    Ok(Json(OrgList { orgs, next }))
}

pub async fn create(
    State(s): State<AppState>,
    auth: Auth,
    req: Create<NewName>,
) -> ApiResult<Response> {
    auth.require_platform()?;
    let name = field("name", Name::parse(&req.body.name))?;
    let mut tx = s.store.begin().await?;
    let org_id = Uuid::now_v7();
    let data = EventData::OrgCreated {
        org_id,
        name: name.to_string(),
    };
    let event = log::append(&mut tx, Some(org_id), &auth.actor(), data).await?;
    let org = Org {
        id: org_id,
        name: name.to_string(),
        created_at: event.at,
    };
    req.finish(tx, StatusCode::CREATED, org).await
}

pub async fn show(InOrg { org, .. }: InOrg<Reader>) -> ApiResult<Json<Org>> {
    Ok(Json(org))
}

pub async fn delete(
    State(s): State<AppState>,
    InOrg { auth, org, .. }: InOrg<Admin>,
) -> ApiResult<StatusCode> {
    auth.require_platform()?;
    s.record(
        &auth,
        Some(org.id),
        EventData::OrgDeleted { org_id: org.id },
    )
    .await
}

async fn quota_view(
    db: &mut sqlx::PgConnection,
    platform: Quotas,
    org: &Org,
) -> ApiResult<OrgQuotas> {
    let own = read::org_quota_overrides(&mut *db, org.id).await?;
    let usage = read::org_usage(&mut *db, org.id, None, None).await?;
    Ok(OrgQuotas {
        org: org.name.clone(),
        quotas: platform.with(&own),
        own,
        platform,
        usage,
    })
}

pub async fn quotas(
    State(s): State<AppState>,
    InOrg { org, .. }: InOrg<Reader>,
) -> ApiResult<Json<OrgQuotas>> {
    let mut db = s.store.pool().acquire().await?;
    Ok(Json(quota_view(&mut db, s.config.quotas, &org).await?))
}

/// Replaces the org's own quotas (platform token): each one given is the org's, each
/// one absent or `null` the platform's.
pub async fn set_quotas(
    State(s): State<AppState>,
    InOrg { auth, org, .. }: InOrg<Admin>,
    Body(own): Body<QuotaOverrides>,
) -> ApiResult<Json<OrgQuotas>> {
    auth.require_platform()?;
    own.check()
        .map_err(|e| ApiError::invalid(e.field, e.to_string()))?;
    let mut tx = s.store.begin().await?;
    let data = EventData::OrgQuotasSet {
        org_id: org.id,
        quotas: own,
    };
    log::append(&mut tx, Some(org.id), &auth.actor(), data).await?;
    let view = quota_view(&mut tx, s.config.quotas, &org).await?;
    tx.commit()
        .await
        .map_err(zeitwork_store::StoreError::from)?;
    Ok(Json(view))
}
