//! Dashboard sign-in and sign-out (see [`crate::session`]).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use zeitwork_api_types::{NewSession, Session};

use crate::auth::Auth;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::session;
use crate::state::AppState;

/// `POST /api/v1/session`: the token in the body (never in a URL), a cookie back.
pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    Body(b): Body<NewSession>,
) -> ApiResult<Response> {
    let auth = Auth::from_secret(&s, b.token.trim())
        .await
        .map_err(|e| e.with_field("token"))?;
    let opened = session::open(&s, &auth).await?;
    let answer = Session {
        csrf: opened.csrf,
        expires_at: opened.expires_at,
        whoami: super::meta::who(&s, &auth).await?,
    };
    let cookie = session::set_cookie(&headers, &opened.secret);
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(answer),
    )
        .into_response())
}

/// The session the cookie names.
async fn live(s: &AppState, request: Request) -> ApiResult<session::Live> {
    let (parts, _) = request.into_parts();
    let secret = session::secret(&parts.headers)
        .ok_or_else(|| ApiError::unauthenticated("not signed in"))?;
    session::authenticate(s, &parts, &secret).await
}

/// `GET /api/v1/session`: the signed-in session (a reloaded page finds its CSRF token).
pub async fn show(State(s): State<AppState>, request: Request) -> ApiResult<Json<Session>> {
    let live = live(&s, request).await?;
    Ok(Json(Session {
        whoami: super::meta::who(&s, &live.auth).await?,
        csrf: live.csrf,
        expires_at: live.expires_at,
    }))
}

/// `DELETE /api/v1/session`: sign out (with the CSRF token, like every change).
pub async fn delete(State(s): State<AppState>, request: Request) -> ApiResult<Response> {
    let headers = request.headers().clone();
    live(&s, request).await?;
    let secret = session::secret(&headers).expect("a live session has a cookie");
    zeitwork_store::sessions::close(s.store.pool(), &crate::auth::hash(&secret)).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session::clear_cookie(&headers))],
    )
        .into_response())
}
