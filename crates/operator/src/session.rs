//! Dashboard sessions: an API token exchanged (`POST /api/v1/session`) for a random
//! session secret in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` behind HTTPS),
//! kept server-side as its SHA-256 with an expiry; sign-out deletes it. The token itself
//! is never stored by the browser. Every request made with the cookie that changes
//! something must carry the session's CSRF token in `X-CSRF-Token` (the cookie alone
//! proves nothing a cross-site form could not send). Bearer tokens work as before.

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use zeitwork_core::Role;
use zeitwork_store::sessions;

use crate::auth::{self, Auth, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The cookie's name.
pub const COOKIE: &str = "zw_session";
/// How long a session lasts from sign-in.
pub const LIFETIME: chrono::Duration = chrono::Duration::hours(12);

/// A session just opened: the cookie's secret (to set once) and what the client keeps.
pub struct Opened {
    pub secret: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// Opens a session for the caller of `auth` (an API token; node credentials and
/// webhooks cannot sign in).
pub async fn open(state: &AppState, auth: &Auth) -> ApiResult<Opened> {
    if matches!(auth.caller, Caller::Node(_) | Caller::Webhook { .. }) {
        return Err(ApiError::invalid(
            "token",
            "sign in with an API token, not a node credential",
        ));
    }
    let secret = auth::generate();
    let csrf = auth::generate();
    let expires_at = Utc::now() + LIFETIME;
    let db = state.store.pool();
    sessions::prune(db).await?;
    sessions::open(db, &auth::hash(&secret), auth.token_id, &csrf, expires_at).await?;
    Ok(Opened {
        secret,
        csrf,
        expires_at,
    })
}

/// The session secret of the request's cookie, if it has one.
pub fn secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// A live session as the API sees it.
pub struct Live {
    pub auth: Auth,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// The session the request's cookie names; unsafe methods must also prove the CSRF token.
pub async fn authenticate(state: &AppState, parts: &Parts, secret: &str) -> ApiResult<Live> {
    let found = sessions::find(state.store.pool(), &auth::hash(secret))
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the session ended; sign in again"))?;
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let sent = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !same(sent, &found.csrf) {
            return Err(ApiError::forbidden(
                "missing or wrong X-CSRF-Token header for this session",
            ));
        }
    }
    let role = Role::parse(&found.role)
        .ok_or_else(|| ApiError::unauthenticated("token has an unknown role"))?;
    Ok(Live {
        auth: Auth {
            token_id: found.token_id,
            caller: found.org_id.map_or(Caller::Platform, Caller::Org),
            role,
        },
        csrf: found.csrf,
        expires_at: found.expires_at,
    })
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// Whether the client reached us over HTTPS (directly or through a proxy that says so):
/// then the cookie is `Secure`.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` that gives the browser its session.
pub fn set_cookie(headers: &HeaderMap, secret: &str) -> HeaderValue {
    let secure = if over_https(headers) { "; Secure" } else { "" };
    let value = format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        LIFETIME.num_seconds()
    );
    HeaderValue::from_str(&value).expect("cookie values are ASCII")
}

/// The `Set-Cookie` that forgets it.
pub fn clear_cookie(headers: &HeaderMap) -> HeaderValue {
    let secure = if over_https(headers) { "; Secure" } else { "" };
    let value = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    HeaderValue::from_str(&value).expect("cookie values are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_flagged() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; zw_session=s3cret; b=2"),
        );
        assert_eq!(secret(&h).as_deref(), Some("s3cret"));
        let set = set_cookie(&h, "x");
        let set = set.to_str().unwrap();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(!set.contains("Secure"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(set_cookie(&h, "x").to_str().unwrap().ends_with("; Secure"));
        assert!(same("abc", "abc") && !same("abc", "abd"));
    }
}
