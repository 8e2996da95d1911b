//! Resolving `{org}/{app}/{env}` path segments for a caller. A token of another org
//! gets 404 (we do not confirm that the org exists), a weak role gets 403.
//!
//! Handlers take [`InOrg`], [`InApp`] or [`InEnv`] with the role they need. These are
//! resolved from the request head, so a caller that may not see the org is answered
//! before its body is even read.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::Deserialize;
use zeitwork_core::{Manifest, Name, Role};
use zeitwork_store::model::{App, Env, Org};
use zeitwork_store::read;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
struct OrgPath {
    org: String,
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

impl EnvScope {
    /// The manifest a deploy or build sent (strictly checked, and for this app), or the
    /// default one.
    pub fn manifest(&self, text: Option<&str>) -> ApiResult<Manifest> {
        let manifest = match text {
            Some(text) => Manifest::from_toml(text).map_err(|e| {
                ApiError::invalid(format!("manifest.{}", e.path), format!("manifest: {e}"))
            })?,
            None => Manifest::default_for(
                Name::parse(&self.app.name).expect("stored names are valid"),
                None,
            ),
        };
        if manifest.app.as_str() != self.app.name {
            return Err(ApiError::invalid(
                "manifest.app",
                format!(
                    "the manifest is for app {:?}, but this targets {:?}",
                    manifest.app.as_str(),
                    self.app.name
                ),
            ));
        }
        Ok(manifest)
    }
}

impl AppState {
    pub async fn org(&self, auth: &Auth, org: &str, need: Role) -> ApiResult<Org> {
        let org = read::org(self.store.pool(), org)
            .await?
            .filter(|o| auth.sees_org(o.id))
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

/// The least role a handler needs, as a type so extractors can carry it.
pub trait Need: Send + Sync {
    const ROLE: Role;
}

pub enum Reader {}
pub enum Deployer {}
pub enum Admin {}

impl Need for Reader {
    const ROLE: Role = Role::Reader;
}
impl Need for Deployer {
    const ROLE: Role = Role::Deployer;
}
impl Need for Admin {
    const ROLE: Role = Role::Admin;
}

/// The caller and the `{org}` of the path, visible to it with role `R`.
pub struct InOrg<R> {
    pub auth: Auth,
    pub org: Org,
    _role: PhantomData<fn() -> R>,
}

/// As [`InOrg`], plus the `{app}` of the path.
pub struct InApp<R> {
    pub auth: Auth,
    pub org: Org,
    pub app: App,
    _role: PhantomData<fn() -> R>,
}

/// As [`InApp`], plus the `{env}` of the path.
pub struct InEnv<R> {
    pub auth: Auth,
    pub scope: EnvScope,
    _role: PhantomData<fn() -> R>,
}

async fn path<T: serde::de::DeserializeOwned + Send>(
    parts: &mut Parts,
    state: &AppState,
) -> ApiResult<T> {
    let Path(p) = Path::<T>::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::not_found("route"))?;
    Ok(p)
}

impl<R: Need> FromRequestParts<AppState> for InOrg<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let auth = Auth::from_request_parts(parts, state).await?;
        let p: OrgPath = path(parts, state).await?;
        let org = state.org(&auth, &p.org, R::ROLE).await?;
        Ok(InOrg {
            auth,
            org,
            _role: PhantomData,
        })
    }
}

impl<R: Need> FromRequestParts<AppState> for InApp<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let auth = Auth::from_request_parts(parts, state).await?;
        let p: AppPath = path(parts, state).await?;
        let (org, app) = state.app(&auth, &p, R::ROLE).await?;
        Ok(InApp {
            auth,
            org,
            app,
            _role: PhantomData,
        })
    }
}

impl<R: Need> FromRequestParts<AppState> for InEnv<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let auth = Auth::from_request_parts(parts, state).await?;
        let p: EnvPath = path(parts, state).await?;
        let scope = state.env(&auth, &p, R::ROLE).await?;
        Ok(InEnv {
            auth,
            scope,
            _role: PhantomData,
        })
    }
}
