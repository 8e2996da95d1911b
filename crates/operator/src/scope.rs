//! Resolving `{org}/{app}/{env}` path segments for a caller. A token of another org
//! gets 404 (we do not confirm that the org exists), a weak role gets 403.

use serde::Deserialize;
use zeitwork_core::Role;
use zeitwork_store::model::{App, Env, Org};
use zeitwork_store::read;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct OrgPath {
    pub org: String,
}

#[derive(Debug, Deserialize)]
pub struct AppPath {
    pub org: String,
    pub app: String,
}

#[derive(Debug, Deserialize)]
pub struct EnvPath {
    pub org: String,
    pub app: String,
    pub env: String,
}

/// An env with its app and org, all visible to the caller.
#[derive(Debug, Clone)]
pub struct EnvScope {
    pub org: Org,
    pub app: App,
    pub env: Env,
}

impl AppState {
    pub async fn org(&self, auth: &Auth, org: &str, need: Role) -> ApiResult<Org> {
        let org = read::org(self.store.pool(), org)
            .await?
            .filter(|o| auth.org_id.is_none_or(|mine| mine == o.id))
            .ok_or_else(|| ApiError::not_found("org"))?;
        auth.require(need)?;
        Ok(org)
    }

    pub async fn app(&self, auth: &Auth, p: &AppPath, need: Role) -> ApiResult<(Org, App)> {
        let org = self.org(auth, &p.org, need).await?;
        let app = read::app(self.store.pool(), org.id, &p.app)
            .await?
            .ok_or_else(|| ApiError::not_found("app"))?;
        Ok((org, app))
    }

    pub async fn env(&self, auth: &Auth, p: &EnvPath, need: Role) -> ApiResult<EnvScope> {
        let app_path = AppPath {
            org: p.org.clone(),
            app: p.app.clone(),
        };
        let (org, app) = self.app(auth, &app_path, need).await?;
        let env = read::env(self.store.pool(), app.id, &p.env)
            .await?
            .ok_or_else(|| ApiError::not_found("env"))?;
        Ok(EnvScope { org, app, env })
    }
}

/// Runs before every handler whose path has `{org}`: a caller that cannot see the org
/// gets 404 before its body is even read, so no answer depends on another org's data.
pub async fn org_guard(
    axum::extract::State(state): axum::extract::State<AppState>,
    params: axum::extract::RawPathParams,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;

    let Some(org) = params
        .iter()
        .find(|(k, _)| *k == "org")
        .map(|(_, v)| v.to_owned())
    else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let auth = match Auth::from_request_parts(&mut parts, &state).await {
        Ok(auth) => auth,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = state.org(&auth, &org, Role::Reader).await {
        return e.into_response();
    }
    parts.extensions.insert(auth);
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}
