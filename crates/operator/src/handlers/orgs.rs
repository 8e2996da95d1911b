use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use zeitwork_core::{EventData, Name};
use zeitwork_store::model::Org;
use zeitwork_store::{log, read};

use crate::auth::Auth;
use crate::body::Create;
use crate::error::{ApiResult, field};
use crate::scope::{Admin, InOrg, Reader};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    name: String,
}

pub async fn list(State(s): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "orgs": read::orgs(s.store.pool(), auth.readable_orgs()?).await? }),
    ))
}

pub async fn create(
    State(s): State<AppState>,
    auth: Auth,
    req: Create<NewOrg>,
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
