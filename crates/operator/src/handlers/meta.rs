use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::Value;
use zeitwork_api_types::{CallerKind, Health, Whoami};
use zeitwork_store::read;

use crate::auth::{Auth, Caller};
use crate::error::ApiResult;
use crate::state::AppState;

pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

pub async fn metrics() -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}

pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document(
        &crate::handlers::api().into_parts().1,
    ))
}

pub async fn whoami(State(s): State<AppState>, auth: Auth) -> ApiResult<Json<Whoami>> {
    Ok(Json(who(&s, &auth).await?))
}

/// The calling credential, as `whoami` and dashboard sessions describe it.
pub(crate) async fn who(s: &AppState, auth: &Auth) -> ApiResult<Whoami> {
    let (caller, org, node) = match auth.caller {
        Caller::Org(id) => {
            let org = read::orgs(s.store.pool(), Some(id))
                .await?
                .into_iter()
                .next();
            (CallerKind::Org, org.map(|o| o.name), None)
        }
        Caller::Node(id) => (CallerKind::Node, None, Some(id)),
        Caller::Platform | Caller::Webhook { .. } => (CallerKind::Platform, None, None),
    };
    Ok(Whoami {
        token_id: auth.token_id,
        caller,
        org,
        role: auth.role,
        node_id: node,
    })
}
