//! An app's connected repository, and GitHub's webhook deliveries. The rules are
//! [`crate::repositories`]'s; this only parses.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use zeitwork_api_types::{ConnectRepository, RepositoryInfo};
use zeitwork_core::EventData;
use zeitwork_store::{log, read};

use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::repositories::{Connect, Delivery, webhook_path};
use crate::scope::{Admin, InApp, Reader};
use crate::state::AppState;

/// GitHub's payloads are at most 25 MB; pushes are far smaller. Larger is refused.
pub const WEBHOOK_LIMIT: usize = 4 << 20;

#[derive(Deserialize)]
pub struct HookQuery {
    hook: Option<String>,
}

pub async fn connect(
    State(s): State<AppState>,
    InApp { auth, org, app, .. }: InApp<Admin>,
    Body(body): Body<ConnectRepository>,
) -> ApiResult<Json<RepositoryInfo>> {
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    let connect = Connect {
        url: &body.url,
        branch: body.branch.as_deref(),
        token: body.token.as_deref(),
    };
    let (repository, secret) = s
        .connect_repository(&mut tx, &auth, org.id, app.id, connect)
        .await?;
    tx.commit()
        .await
        .map_err(zeitwork_store::StoreError::from)?;
    Ok(Json(RepositoryInfo {
        webhook_path: webhook_path(repository.hook_id),
        repository,
        secret: Some(secret),
    }))
}

pub async fn show(
    State(s): State<AppState>,
    InApp { app, .. }: InApp<Reader>,
) -> ApiResult<Json<RepositoryInfo>> {
    let repository = read::repository(s.store.pool(), app.id)
        .await?
        .ok_or_else(|| ApiError::not_found("repository"))?;
    Ok(Json(RepositoryInfo {
        webhook_path: webhook_path(repository.hook_id),
        repository: repository.public(),
        secret: None,
    }))
}

pub async fn disconnect(
    State(s): State<AppState>,
    InApp { auth, org, app, .. }: InApp<Admin>,
) -> ApiResult<StatusCode> {
    if read::repository(s.store.pool(), app.id).await?.is_none() {
        return Err(ApiError::not_found("repository"));
    }
    s.record(
        &auth,
        Some(org.id),
        EventData::RepositoryDisconnected { app_id: app.id },
    )
    .await
}

/// `POST /api/v1/webhooks/github?hook=ID`: 200 for what is acted on, 202 for what is
/// ignored (with why); 401 when the signature does not match.
pub async fn github(
    State(s): State<AppState>,
    Query(q): Query<HookQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let body = axum::body::to_bytes(body, WEBHOOK_LIMIT)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("webhook payloads are limited to {WEBHOOK_LIMIT} bytes"),
            )
        })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let delivery = Delivery {
        hook: q.hook.as_deref(),
        signature: header("x-hub-signature-256"),
        event: header("x-github-event"),
        id: header("x-github-delivery"),
        json: header("content-type").is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        }),
        body: &body,
    };
    let (id, outcome) = s.github_delivery(delivery).await?;
    let status = match outcome.accepted {
        true => StatusCode::OK,
        false => StatusCode::ACCEPTED,
    };
    Ok((status, Json(outcome.answer(&id))).into_response())
}
