//! Bearer tokens. Only their SHA-256 is stored; a token belongs to one org (or to the
//! platform) and carries a role.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeitwork_core::{EventData, Role};
use zeitwork_store::{Store, StoreError, log, read};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The caller, as proven by its token.
#[derive(Debug, Clone)]
pub struct Auth {
    pub token_id: Uuid,
    /// `None` for platform tokens.
    pub org_id: Option<Uuid>,
    pub role: Role,
}

impl Auth {
    /// The event log's `actor` for changes this caller makes.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token_id)
    }

    pub fn is_platform(&self) -> bool {
        self.org_id.is_none()
    }

    /// For platform-wide changes (orgs, nodes, regions).
    pub fn require_platform(&self) -> ApiResult<()> {
        if self.is_platform() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this needs a platform token (the one `zeitwork up` printed)",
            ))
        }
    }

    pub fn require(&self, needed: Role) -> ApiResult<()> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role; the token has {}",
                needed.as_str(),
                self.role.as_str()
            )))
        }
    }
}

/// A new random token: `zw_` and 40 alphanumerics (~238 bits).
pub fn generate() -> String {
    let body: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    format!("zw_{body}")
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Auth> {
        let header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthenticated("missing Authorization: Bearer <token> header")
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")
            })?;
        let principal = read::principal(state.store.pool(), &hash(token))
            .await?
            .ok_or_else(|| ApiError::unauthenticated("unknown or revoked token"))?;
        let role = Role::parse(&principal.role)
            .ok_or_else(|| ApiError::unauthenticated("token has an unknown role"))?;
        Ok(Auth {
            token_id: principal.token_id,
            org_id: principal.org_id,
            role,
        })
    }
}

/// Creates the first platform token when none exists, returning its secret (to be
/// shown once); `None` when the platform already has one.
pub async fn bootstrap_platform_token(store: &Store) -> Result<Option<String>, StoreError> {
    let mut tx = store.begin().await?;
    log::lock(&mut tx).await?;
    if !read::tokens(&mut *tx, None).await?.is_empty() {
        return Ok(None);
    }
    let secret = generate();
    let data = EventData::TokenCreated {
        token_id: Uuid::now_v7(),
        org_id: None,
        name: "bootstrap".into(),
        role: Role::Admin.as_str().into(),
        hash: hash(&secret),
    };
    log::append(&mut tx, None, "system", data).await?;
    tx.commit().await?;
    Ok(Some(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_is_stable() {
        let a = generate();
        assert!(a.starts_with("zw_") && a.len() == 43);
        assert_ne!(a, generate());
        assert_eq!(hash(&a), hash(&a));
        assert_eq!(hash(&a).len(), 64);
    }
}
