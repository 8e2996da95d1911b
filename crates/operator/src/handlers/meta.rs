use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use zeitwork_store::read;

use crate::auth::{Auth, Caller};
use crate::error::ApiResult;
use crate::state::AppState;

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
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

pub async fn whoami(State(s): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    let (org, node) = match auth.caller {
        Caller::Org(id) => {
            let org = read::orgs(s.store.pool(), Some(id))
                .await?
                .into_iter()
                .next();
            (org.map(|o| o.name), None)
        }
        Caller::Node(id) => (None, Some(id)),
        Caller::Platform | Caller::Webhook { .. } => (None, None),
    };
    Ok(Json(
        json!({ "token_id": auth.token_id, "org": org, "role": auth.role, "node_id": node }),
    ))
}
