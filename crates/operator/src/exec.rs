//! Exec (see `docs/architecture.md`, "Exec"): a deployer asks for a single-use grant to
//! run a command in one running instance ([`grant`], event `exec_granted`); the client
//! redeems it within 60 s on a connection upgraded to exec frames ([`redeem`], event
//! `exec_started`), which waits here; the instance's node hears of it, dials back with
//! its credential, and the two connections are spliced ([`Rendezvous`]). The operator
//! never reads the frames: it only joins the two ends. Agents have no listener.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use sqlx::PgConnection;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use uuid::Uuid;
use zeitwork_core::exec::{self as wire, Frame};
use zeitwork_core::node::ObservedState;
use zeitwork_core::{DesiredState, EventData};
use zeitwork_store::model::Instance;
use zeitwork_store::{exec as grants, log, read};

use zeitwork_api_types::{ExecGrant, ExecRequest};

use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::scope::EnvScope;

/// How long a grant may wait for its client.
pub const GRANT_TTL: Duration = Duration::from_secs(60);
/// How long a redeemed exec waits for its node to dial back.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

/// Issues a grant for `ask` in the env of `scope`, recorded with `actor`.
pub async fn grant(
    tx: &mut PgConnection,
    scope: &EnvScope,
    actor: &str,
    ask: ExecRequest,
) -> ApiResult<ExecGrant> {
    wire::check_command(&ask.command).map_err(|m| ApiError::invalid("command", m))?;
    if let Some(term) = &ask.term {
        if !ask.tty {
            return Err(ApiError::invalid(
                "term",
                "a TERM needs a terminal (tty: true)",
            ));
        }
        wire::check_term(term).map_err(|m| ApiError::invalid("term", m))?;
    }
    log::lock(tx).await?;
    let instance = pick(tx, scope, &ask).await?;
    let node_id = instance.node_id.ok_or_else(|| {
        ApiError::conflict(
            "instance",
            format!("instance {} is not placed on a node", instance.id),
        )
    })?;
    let token = auth::generate();
    let grant_id = Uuid::new_v4();
    let expires_at = Utc::now() + GRANT_TTL;
    log::append(
        tx,
        Some(scope.org.id),
        actor,
        EventData::ExecGranted {
            grant_id,
            instance_id: instance.id,
            node_id,
            command: ask.command,
            tty: ask.tty,
            term: ask.term,
            hash: auth::hash(&token),
            expires_at,
        },
    )
    .await?;
    Ok(ExecGrant {
        grant_id,
        token,
        instance_id: instance.id,
        process: instance.process,
        expires_at,
    })
}

/// Whether an instance runs a guest one can exec into.
fn runs(i: &Instance) -> bool {
    i.desired_state == DesiredState::Running
        && matches!(
            i.observed_state,
            ObservedState::Healthy | ObservedState::Unhealthy
        )
}

/// The instance `ask` names, or the healthiest one of the process it names.
async fn pick(tx: &mut PgConnection, scope: &EnvScope, ask: &ExecRequest) -> ApiResult<Instance> {
    let instances = read::instances(&mut *tx, scope.env.id).await?;
    if let Some(id) = ask.instance {
        let instance = instances
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| ApiError::not_found("instance").with_field("instance"))?;
        if let Some(process) = &ask.process
            && *process != instance.process
        {
            return Err(ApiError::invalid(
                "process",
                format!(
                    "instance {id} runs process {}, not {process}",
                    instance.process
                ),
            ));
        }
        if !runs(&instance) {
            return Err(missing(
                "instance",
                format!(
                    "instance {id} is not running (it is {})",
                    instance.observed_state.as_str()
                ),
            ));
        }
        return Ok(instance);
    }
    let deployment = read::active_deployment(&mut *tx, scope.env.id)
        .await?
        .ok_or_else(|| ApiError::conflict("instance", "nothing is deployed to this env yet"))?;
    let process = match &ask.process {
        Some(p) => p.clone(),
        None => {
            let release = read::release_by_id(&mut *tx, deployment.release_id)
                .await?
                .expect("deployments reference releases");
            zeitwork_core::Manifest::from_json(&release.manifest)
                .ok()
                .and_then(|m| m.served_process().map(str::to_owned))
                .ok_or_else(|| {
                    ApiError::invalid("process", "the release serves no process: name one")
                })?
        }
    };
    let mut candidates: Vec<Instance> = instances
        .into_iter()
        .filter(|i| i.deployment_id == deployment.id && i.process == process && runs(i))
        .collect();
    candidates.sort_by_key(|i| (i.observed_state != ObservedState::Healthy, i.created_at));
    candidates.into_iter().next().ok_or_else(|| {
        missing(
            "process",
            format!("no running instance of process {process} in this env"),
        )
    })
}

/// 404 naming the field, with the reason.
fn missing(field: &str, message: String) -> ApiError {
    ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", message).with_field(field)
}

/// Redeems grant `id` with its secret `token`: the exec's instance and node. Refused
/// (403) when unknown, wrong, used or expired.
pub async fn redeem(tx: &mut PgConnection, id: Uuid, token: &str) -> ApiResult<grants::Grant> {
    let refused = |why: &str| ApiError::forbidden(format!("exec grant {id}: {why}"));
    log::lock(tx).await?;
    let grant = grants::grant(&mut *tx, id)
        .await?
        .filter(|g| g.hash == auth::hash(token))
        .ok_or_else(|| refused("no such grant, or not this token"))?;
    if grant.started_at.is_some() {
        return Err(refused("already used; ask for a new one"));
    }
    if grant.expires_at <= Utc::now() {
        return Err(refused("expired; ask for a new one"));
    }
    log::append(
        tx,
        grant.org_id,
        &format!("grant:{id}"),
        EventData::ExecStarted {
            grant_id: id,
            instance_id: grant.instance_id,
            node_id: grant.node_id,
        },
    )
    .await?;
    Ok(grant)
}

/// The exec connections of clients waiting for their node, by grant.
#[derive(Debug, Clone, Default)]
pub struct Rendezvous {
    waiting: Arc<Mutex<HashMap<Uuid, oneshot::Sender<Upgraded>>>>,
}

impl Rendezvous {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, oneshot::Sender<Upgraded>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the client of grant `id` (before its `exec_started` commits, so the
    /// node never dials back too early): where the node's connection will arrive.
    pub fn expect(&self, id: Uuid) -> oneshot::Receiver<Upgraded> {
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(id, tx);
        rx
    }

    /// Forgets the client of grant `id` (it failed to start, or it ended).
    pub fn forget(&self, id: Uuid) {
        self.waiting().remove(&id);
    }

    /// The waiting client of grant `id`, for its node's connection; taken once.
    pub fn take(&self, id: Uuid) -> Option<oneshot::Sender<Upgraded>> {
        self.waiting().remove(&id)
    }

    /// Serves the client's connection: waits for the node's, then splices the two.
    pub async fn serve_client(self, id: Uuid, client: Upgraded, node: oneshot::Receiver<Upgraded>) {
        let mut client = TokioIo::new(client);
        match tokio::time::timeout(ATTACH_TIMEOUT, node).await {
            Ok(Ok(node)) => {
                let mut node = TokioIo::new(node);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut node).await;
            }
            _ => {
                self.forget(id);
                let reason = format!(
                    "the instance's node did not attach the exec within {}s",
                    ATTACH_TIMEOUT.as_secs()
                );
                tracing::warn!(grant = %id, "{reason}");
                let _ = client.write_all(&Frame::error(0, &reason).encode()).await;
                let _ = client.shutdown().await;
            }
        }
    }
}
