//! Secrets: write-only values, sealed before they reach the log. Reads return names
//! and versions; values go only to the instances (delivered as a file by the runtime).
//! A change restarts the env's active deployment (`crate::rollout`), so its instances run
//! with it; instances that started before never get the newer value.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use zeitwork_api_types::{
    MAX_SECRET_VALUE, PageQuery, Secret, SecretList, SecretSet, SetSecret, UnsetQuery,
};
use zeitwork_core::EventData;
use zeitwork_core::manifest::check_env_name;
use zeitwork_store::{log, read};

use crate::body::{Body, Params};
use crate::crypto::secret_aad;
use crate::error::{ApiError, ApiResult};
use crate::paging::{Order, Page};
use crate::scope::{Deployer, InEnv, Reader};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct SecretPath {
    name: String,
}

pub async fn list(
    State(s): State<AppState>,
    InEnv { scope, .. }: InEnv<Reader>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<SecretList>> {
    let all = read::secrets(s.store.pool(), scope.env.id).await?;
    let (secrets, next) = Page::of(&q)?.cut(all, Order::Ascending, |s| s.name.clone());
    Ok(Json(SecretList { secrets, next }))
}

pub async fn set(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    Path(p): Path<SecretPath>,
    Body(body): Body<SetSecret>,
) -> ApiResult<Json<SecretSet>> {
    check_env_name(&p.name).map_err(|m| ApiError::invalid("name", format!("secret name: {m}")))?;
    if body.value.chars().count() > MAX_SECRET_VALUE {
        return Err(ApiError::invalid(
            "value",
            format!("secret values are limited to {MAX_SECRET_VALUE} characters"),
        ));
    }
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    let previous = read::secret_ciphertext(&mut *tx, scope.env.id, &p.name).await?;
    let version = previous.map_or(0, |(v, _)| v) + 1;
    let ciphertext = s.secrets.seal(
        &secret_aad(scope.env.id, &p.name, version),
        body.value.as_bytes(),
    );
    let data = EventData::SecretSet {
        env_id: scope.env.id,
        name: p.name.clone(),
        version,
        ciphertext,
    };
    let event = log::append(&mut tx, Some(scope.org.id), &auth.actor(), data).await?;
    let restarted = match body.restart {
        true => s.restart(&mut tx, &auth, &scope, None).await?,
        false => None,
    };
    tx.commit().await?;
    let secret = Secret {
        name: p.name,
        version,
        updated_at: event.at,
    };
    let restarted = restarted.map_or(0, |r| r.replacements.len());
    Ok(Json(SecretSet {
        secret,
        restarted: u32::try_from(restarted).unwrap_or(u32::MAX),
    }))
}

pub async fn unset(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    Path(p): Path<SecretPath>,
    Params(q): Params<UnsetQuery>,
) -> ApiResult<StatusCode> {
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    if read::secret_ciphertext(&mut *tx, scope.env.id, &p.name)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("secret"));
    }
    let data = EventData::SecretUnset {
        env_id: scope.env.id,
        name: p.name,
    };
    log::append(&mut tx, Some(scope.org.id), &auth.actor(), data).await?;
    if q.restart {
        s.restart(&mut tx, &auth, &scope, None).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
