//! The platform registry's endpoints: its token service (the realm the registry names in
//! its challenges, spoken to by docker, podman, buildah, skopeo and the nodes) and where
//! it is. The rules are [`crate::registry`]'s; this only parses.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use base64::Engine as _;
use serde::Serialize;
use zeitwork_registry::{SERVICE, Scope};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::registry::PlatformRegistry;
use crate::state::AppState;

/// The token service's answer, as Docker's token spec has it.
#[derive(Debug, Serialize)]
pub struct TokenAnswer {
    token: String,
    /// The same token, for OAuth-minded clients.
    access_token: String,
    expires_in: u64,
    issued_at: String,
}

/// Where the platform registry is.
#[derive(Debug, Serialize)]
pub struct RegistryInfo {
    /// `host:port`: the registry part of image references (`<address>/<org>/<app>:tag`).
    address: String,
}

fn platform_registry(s: &AppState) -> ApiResult<&PlatformRegistry> {
    s.config
        .registry
        .as_deref()
        .ok_or_else(|| ApiError::not_found("the platform registry (this operator runs none)"))
}

/// `GET /api/v1/registry`.
pub async fn info(State(s): State<AppState>, _auth: Auth) -> ApiResult<Json<RegistryInfo>> {
    Ok(Json(RegistryInfo {
        address: platform_registry(&s)?.address.clone(),
    }))
}

/// `GET /api/v1/registry/token?service=zeitwork-registry&scope=repository:acme/web:pull,push…`
/// with the caller's API token (or node credential) as the password of HTTP basic auth,
/// or as a bearer token.
pub async fn token(
    State(s): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Json<TokenAnswer>> {
    let registry = platform_registry(&s)?;
    let secret = credential(&headers)?;
    let auth = Auth::from_secret(&s, &secret).await?;
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map_err(|e| ApiError::invalid("query", format!("the query does not parse: {e}")))?;
    let mut scopes = Vec::new();
    for (key, value) in &pairs {
        match key.as_str() {
            "service" if value != SERVICE => {
                return Err(ApiError::invalid(
                    "service",
                    format!("this token service serves {SERVICE}, not {value:?}"),
                ));
            }
            "scope" => {
                // Some clients join several scopes with spaces in one parameter.
                for one in value.split(' ').filter(|s| !s.is_empty()) {
                    scopes.push(
                        Scope::parse(one).map_err(|e| ApiError::invalid("scope", e.to_string()))?,
                    );
                }
            }
            // Docker's login sends these; they change nothing here.
            "service" | "account" | "client_id" | "offline_token" => {}
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!(
                        "unknown query parameter `{other}`; expected service, scope, account, client_id or offline_token"
                    ),
                ));
            }
        }
    }
    const MAX_SCOPES: usize = 32;
    if scopes.len() > MAX_SCOPES {
        return Err(ApiError::invalid(
            "scope",
            format!("at most {MAX_SCOPES} scopes in one request"),
        ));
    }
    let mut db = s.store.pool().acquire().await?;
    let granted = registry
        .grant(&mut db, &auth, &scopes, s.config.quotas)
        .await?;
    let issued = registry.issue(auth.actor(), granted);
    Ok(Json(TokenAnswer {
        access_token: issued.token.clone(),
        token: issued.token,
        expires_in: issued.expires_in,
        issued_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
}

/// The secret of `Authorization: Basic base64(user:secret)` (any user name) or
/// `Authorization: Bearer secret`.
fn credential(headers: &HeaderMap) -> ApiResult<String> {
    let missing = || {
        ApiError::unauthenticated(
            "log in with an API token as the password (zeitwork registry login)",
        )
    };
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(missing)?;
    if let Some(token) = header.strip_prefix("Bearer ") {
        return Ok(token.trim().to_owned());
    }
    let encoded = header.strip_prefix("Basic ").ok_or_else(missing)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(missing)?;
    let (_, secret) = decoded.split_once(':').ok_or_else(missing)?;
    if secret.is_empty() {
        return Err(missing());
    }
    Ok(secret.to_owned())
}
