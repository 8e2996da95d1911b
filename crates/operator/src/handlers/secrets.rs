//! Secrets: write-only values, sealed before they reach the log. Reads return names
//! and versions; values go only to the instances (delivered as a file by the runtime).
//! A change restarts the env's active deployment (`crate::rollout`), so its instances run
//! with it; instances that started before never get the newer value.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use zeitwork_core::EventData;
use zeitwork_core::manifest::check_env_name;
use zeitwork_store::model::Secret;
use zeitwork_store::{log, read};

use crate::body::Body;
use crate::crypto::secret_aad;
use crate::error::{ApiError, ApiResult};
use crate::scope::{Deployer, InEnv, Reader};
use crate::state::AppState;

/// Largest secret value; secrets are configuration, not blobs.
pub const MAX_VALUE: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewValue {
    value: String,
    /// Restart the env's instances so they run with it (the default); `false` batches
    /// several changes before one `restart`.
    #[serde(default = "yes")]
    restart: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsetQuery {
    #[serde(default = "yes")]
    restart: bool,
}

#[derive(Deserialize)]
pub struct SecretPath {
    name: String,
}

pub async fn list(
    State(s): State<AppState>,
    InEnv { scope, .. }: InEnv<Reader>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "secrets": read::secrets(s.store.pool(), scope.env.id).await? }),
    ))
}

pub async fn set(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    Path(p): Path<SecretPath>,
    Body(body): Body<NewValue>,
) -> ApiResult<Json<Value>> {
    check_env_name(&p.name).map_err(|m| ApiError::invalid("name", format!("secret name: {m}")))?;
    if body.value.len() > MAX_VALUE {
        return Err(ApiError::invalid(
            "value",
            format!("secret values are limited to {MAX_VALUE} bytes"),
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
    let mut answer = serde_json::to_value(secret).expect("secrets serialize");
    answer["restarted"] = restarted.map_or(0, |r| r.replacements.len()).into();
    Ok(Json(answer))
}

pub async fn unset(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    Path(p): Path<SecretPath>,
    Query(q): Query<UnsetQuery>,
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
