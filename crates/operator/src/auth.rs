//! Bearer tokens. Only their SHA-256 is stored; a token belongs to one org (or to the
//! platform) and carries a role. Node agents present a node credential instead, which
//! reaches nothing but its own node's endpoints (see [`crate::node_scope`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeitwork_core::{EventData, Role};
use zeitwork_store::{Store, StoreError, agents, log, read};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Who is calling, which decides what it may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A platform token: every org, and the platform's inventory.
    Platform,
    /// A token of one org.
    Org(Uuid),
    /// A node agent: only its own node's endpoints. It is neither a platform token nor
    /// a member of any org, so every org route answers 404 and platform routes 403.
    Node(Uuid),
    /// A signed webhook delivery to hook `id` of an org's app (see
    /// [`crate::repositories`]): never a bearer token, so it reaches no route.
    Webhook { org: Uuid, hook: Uuid },
}

/// The caller, as proven by its token.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The token's id; the node's id for a node credential.
    pub token_id: Uuid,
    pub caller: Caller,
    pub role: Role,
}

impl Auth {
    /// The event log's `actor` for changes this caller makes.
    pub fn actor(&self) -> String {
        match self.caller {
            Caller::Node(node) => format!("node:{node}"),
            Caller::Webhook { hook, .. } => format!("webhook:{hook}"),
            Caller::Platform | Caller::Org(_) => format!("token:{}", self.token_id),
        }
    }

    pub fn is_platform(&self) -> bool {
        self.caller == Caller::Platform
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

    /// Whether the caller may see this org at all.
    pub fn sees_org(&self, org: Uuid) -> bool {
        match self.caller {
            Caller::Platform => true,
            Caller::Org(mine) | Caller::Webhook { org: mine, .. } => mine == org,
            Caller::Node(_) => false,
        }
    }

    /// The orgs whose data the caller may read: `None` for all of them (platform), or
    /// one. Node credentials read no org data at all.
    pub fn readable_orgs(&self) -> ApiResult<Option<Uuid>> {
        match self.caller {
            Caller::Platform => Ok(None),
            Caller::Org(org) | Caller::Webhook { org, .. } => Ok(Some(org)),
            Caller::Node(_) => Err(ApiError::forbidden(
                "a node credential reaches only its node's endpoints",
            )),
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

/// The secret of an `Authorization: Bearer <secret>` header, whatever kind it is.
pub struct Bearer(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Bearer> {
        let header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthenticated("missing Authorization: Bearer <token> header")
            })?;
        header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Bearer(t.to_owned()))
            .ok_or_else(|| {
                ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")
            })
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    /// A bearer token, or (without one) a dashboard session's cookie.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Auth> {
        if !parts.headers.contains_key(http::header::AUTHORIZATION)
            && let Some(secret) = crate::session::secret(&parts.headers)
        {
            return Ok(crate::session::authenticate(state, parts, &secret)
                .await?
                .auth);
        }
        let Bearer(token) = Bearer::from_request_parts(parts, state).await?;
        Auth::from_secret(state, &token).await
    }
}

impl Auth {
    /// The caller a token or node credential proves, however it was presented.
    pub async fn from_secret(state: &AppState, token: &str) -> ApiResult<Auth> {
        let hash = hash(token);
        let db = state.store.pool();
        if let Some(principal) = read::principal(db, &hash).await? {
            let role = Role::parse(&principal.role)
                .ok_or_else(|| ApiError::unauthenticated("token has an unknown role"))?;
            return Ok(Auth {
                token_id: principal.token_id,
                caller: principal.org_id.map_or(Caller::Platform, Caller::Org),
                role,
            });
        }
        let node = agents::node_by_credential(db, &hash)
            .await?
            .ok_or_else(|| ApiError::unauthenticated("unknown or revoked token"))?;
        Ok(Auth {
            token_id: node,
            caller: Caller::Node(node),
            role: Role::Reader,
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
