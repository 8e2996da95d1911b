//! Tokens and users of an org (admin only).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use zeitwork_core::{EventData, Role};
use zeitwork_store::{log, read};

use crate::auth::{self};
use crate::body::Create;
use crate::error::{ApiError, ApiResult};
use crate::scope::{Admin, InOrg, Reader};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    email: String,
    role: String,
}

#[derive(Deserialize)]
pub struct ItemPath {
    id: String,
}

/// What a replayed token creation says instead of the secret.
pub const SECRET_SHOWN_ONCE: &str = "the secret was shown once, in the first answer to this request, and is not kept; \
     if it was lost, revoke this token and create another";

fn role(value: &str) -> ApiResult<Role> {
    Role::parse(value)
        .ok_or_else(|| ApiError::invalid("role", "role must be admin, deployer or reader"))
}

fn id(value: &str, what: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(value).map_err(|_| ApiError::not_found(what))
}

pub async fn list(
    State(s): State<AppState>,
    InOrg { org, .. }: InOrg<Admin>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "tokens": read::tokens(s.store.pool(), Some(org.id)).await? }),
    ))
}

pub async fn create(
    State(s): State<AppState>,
    InOrg { auth, org, .. }: InOrg<Admin>,
    req: Create<NewToken>,
) -> ApiResult<Response> {
    let name = req.body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::invalid(
            "name",
            "name must be 1 to 100 characters",
        ));
    }
    let role = role(&req.body.role)?;
    let secret = auth::generate();
    let token_id = Uuid::now_v7();
    let mut tx = s.store.begin().await?;
    let data = EventData::TokenCreated {
        token_id,
        org_id: Some(org.id),
        name: name.to_owned(),
        role: role.as_str().into(),
        hash: auth::hash(&secret),
    };
    log::append(&mut tx, Some(org.id), &auth.actor(), data).await?;
    let token = read::token(&mut *tx, Some(org.id), token_id).await?;
    // A replay (the first answer was lost) cannot show the secret again: replay
    // records are kept in the clear, so the secret never goes into one.
    req.finish_once(
        tx,
        StatusCode::CREATED,
        json!({ "token": token, "secret": secret }),
        json!({ "token": token, "secret": null, "secret_note": SECRET_SHOWN_ONCE }),
    )
    .await
}

pub async fn revoke(
    State(s): State<AppState>,
    InOrg { auth, org, .. }: InOrg<Admin>,
    Path(p): Path<ItemPath>,
) -> ApiResult<StatusCode> {
    let token = read::token(s.store.pool(), Some(org.id), id(&p.id, "token")?)
        .await?
        .ok_or_else(|| ApiError::not_found("token"))?;
    s.record(
        &auth,
        Some(org.id),
        EventData::TokenRevoked { token_id: token.id },
    )
    .await
}

pub async fn list_users(
    State(s): State<AppState>,
    InOrg { org, .. }: InOrg<Reader>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "users": read::users(s.store.pool(), org.id).await? }),
    ))
}

pub async fn add_user(
    State(s): State<AppState>,
    InOrg { auth, org, .. }: InOrg<Admin>,
    req: Create<NewUser>,
) -> ApiResult<Response> {
    let email = req.body.email.trim().to_ascii_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if !valid {
        return Err(ApiError::invalid(
            "email",
            "email must look like name@example.com",
        ));
    }
    let role = role(&req.body.role)?;
    let user_id = Uuid::now_v7();
    let mut tx = s.store.begin().await?;
    let data = EventData::UserAdded {
        user_id,
        org_id: org.id,
        email,
        role: role.as_str().into(),
    };
    log::append(&mut tx, Some(org.id), &auth.actor(), data).await?;
    let user = read::user(&mut *tx, org.id, user_id).await?;
    req.finish(tx, StatusCode::CREATED, user).await
}

pub async fn remove_user(
    State(s): State<AppState>,
    InOrg { auth, org, .. }: InOrg<Admin>,
    Path(p): Path<ItemPath>,
) -> ApiResult<StatusCode> {
    let user = read::user(s.store.pool(), org.id, id(&p.id, "user")?)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    s.record(
        &auth,
        Some(org.id),
        EventData::UserRemoved { user_id: user.id },
    )
    .await
}
