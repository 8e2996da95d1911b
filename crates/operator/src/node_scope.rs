//! Resolving the `{name}` of `/api/v1/nodes/{name}/…` for a node agent. Only that very
//! node's credential gets through (another node's gets 403); a platform token only
//! where the handler's [`NodeAccess`] allows it, such as reading the desired state.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::Deserialize;
use zeitwork_store::model::Node;
use zeitwork_store::read;

use crate::auth::{Auth, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
struct NodePath {
    name: String,
}

/// Who besides the node itself may call a node endpoint, as a type for [`OnNode`].
pub trait NodeAccess: Send + Sync {
    const PLATFORM: bool;
}

/// The node's own credential only (heartbeats, reports: things only the agent knows).
pub enum Agent {}
/// The node's own credential, or a platform token (to look at what a node is told).
pub enum AgentOrPlatform {}

impl NodeAccess for Agent {
    const PLATFORM: bool = false;
}
impl NodeAccess for AgentOrPlatform {
    const PLATFORM: bool = true;
}

/// The caller and the `{name}` node of the path, which the caller may act for.
pub struct OnNode<A> {
    pub auth: Auth,
    pub node: Node,
    _access: PhantomData<fn() -> A>,
}

impl<A: NodeAccess> FromRequestParts<AppState> for OnNode<A> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let auth = Auth::from_request_parts(parts, state).await?;
        match auth.caller {
            Caller::Node(_) => {}
            Caller::Platform if A::PLATFORM => {}
            Caller::Platform | Caller::Org(_) | Caller::Webhook { .. } => {
                return Err(ApiError::forbidden(
                    "this needs the node's own credential (from `zeitwork server agent` enrollment)",
                ));
            }
        }
        let Path(p) = Path::<NodePath>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("route"))?;
        let node = read::node(state.store.pool(), &p.name)
            .await?
            .ok_or_else(|| ApiError::not_found("node"))?;
        if matches!(auth.caller, Caller::Node(id) if id != node.id) {
            return Err(ApiError::forbidden(
                "this credential belongs to another node",
            ));
        }
        Ok(OnNode {
            auth,
            node,
            _access: PhantomData,
        })
    }
}
