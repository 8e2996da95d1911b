//! Tokens and users of an org (admin only).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;
use zeitwork_api_types::{
    CreatedToken, NewToken, NewUser, PageQuery, TokenList, UserList, valid_email,
};
use zeitwork_core::EventData;
use zeitwork_store::{log, read};

use crate::auth::{self};
use crate::body::{Create, Params};
use crate::error::{ApiError, ApiResult};
use crate::paging::{Order, Page};
use crate::scope::{Admin, InOrg, Reader};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct ItemPath {
    id: String,
}

/// What a replayed token creation says instead of the secret.
pub const SECRET_SHOWN_ONCE: &str = "the secret was shown once, in the first answer to this request, and is not kept; \
     if it was lost, revoke this token and create another";

fn id(value: &str, what: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(value).map_err(|_| ApiError::not_found(what))
}

pub async fn list(
    State(s): State<AppState>,
    InOrg { org, .. }: InOrg<Admin>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<TokenList>> {
    let all = read::tokens(s.store.pool(), Some(org.id)).await?;
    let (tokens, next) = Page::of(&q)?.cut(all, Order::Descending, |t| t.id.to_string());
    Ok(Json(TokenList { tokens, next }))
}

pub async fn create(
    State(s): State<AppState>,
    InOrg { auth, org, .. }: InOrg<Admin>,
    req: Create<NewToken>,
) -> ApiResult<Response> {
    let name = req.body.name.trim();
    if name.is_empty() || req.body.name.chars().count() > 100 {
        return Err(ApiError::invalid(
            "name",
            "name must be 1 to 100 characters, not all blank",
        ));
    }
    let role = req.body.role;
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
    let token = read::token(&mut *tx, Some(org.id), token_id)
        .await?
        .expect("just created");
    // A replay (the first answer was lost) cannot show the secret again: replay
    // records are kept in the clear, so the secret never goes into one.
    req.finish_once(
        tx,
        StatusCode::CREATED,
        CreatedToken {
            token: token.clone(),
            secret: Some(secret),
            secret_note: None,
        },
        CreatedToken {
            token,
            secret: None,
            secret_note: Some(SECRET_SHOWN_ONCE.into()),
        },
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
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<UserList>> {
    let all = read::users(s.store.pool(), org.id).await?;
    let (users, next) = Page::of(&q)?.cut(all, Order::Ascending, |u| u.email.clone());
    Ok(Json(UserList { users, next }))
}

pub async fn add_user(
    State(s): State<AppState>,
    InOrg { auth, org, .. }: InOrg<Admin>,
    req: Create<NewUser>,
) -> ApiResult<Response> {
    let email = req.body.email.to_lowercase();
    if !valid_email(&req.body.email) {
        return Err(ApiError::invalid(
            "email",
            "email must look like name@example.com",
        ));
    }
    let role = req.body.role;
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
