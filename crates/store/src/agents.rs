//! Queries of the node side: join tokens and credentials, liveness (bookkeeping, never
//! in the log), the desired state of a node, and what the operator's monitor looks for.

use std::time::Duration;

use serde_json::Value;
use sqlx::{AssertSqlSafe, PgExecutor};
use uuid::Uuid;

use crate::StoreError;
use crate::model::ProcessType;

type R<T> = Result<T, StoreError>;

/// A join token that may still be used: unused and, by the database clock, unexpired.
pub async fn usable_join_token<'c>(
    db: impl PgExecutor<'c>,
    hash: &str,
) -> R<Option<UsableJoinToken>> {
    Ok(sqlx::query_as(
        "SELECT id, replaces FROM join_tokens
         WHERE hash = $1 AND used_at IS NULL AND expires_at > now()",
    )
    .bind(hash)
    .fetch_optional(db)
    .await?)
}

/// A join token that has not been used and has not expired.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UsableJoinToken {
    pub id: Uuid,
    /// The node name it may enroll again (the platform admin's consent), if any.
    pub replaces: Option<String>,
}

/// The node whose current credential has this hash.
pub async fn node_by_credential<'c>(db: impl PgExecutor<'c>, hash: &str) -> R<Option<Uuid>> {
    let row: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM nodes WHERE credential_hash = $1")
        .bind(hash)
        .fetch_optional(db)
        .await?;
    Ok(row.map(|(id,)| id))
}

/// The instance prefixes nodes hold (to allocate a free one under the append lock).
pub async fn instance_prefixes<'c>(db: impl PgExecutor<'c>) -> R<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT instance_prefix FROM nodes WHERE instance_prefix IS NOT NULL")
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|(p,)| p).collect())
}

/// Records that the node's agent is alive now. Not an event: liveness is not history.
pub async fn beat<'c>(
    db: impl PgExecutor<'c>,
    node: Uuid,
    running: u32,
    overlay: &[zeitwork_core::overlay::PeerSeen],
) -> R<()> {
    sqlx::query(
        "INSERT INTO node_heartbeats (node_id, at, running, overlay)
         VALUES ($1, clock_timestamp(), $2, $3)
         ON CONFLICT (node_id) DO UPDATE SET at = excluded.at, running = excluded.running,
            overlay = excluded.overlay",
    )
    .bind(node)
    .bind(i32::try_from(running).unwrap_or(i32::MAX))
    .bind(sqlx::types::Json(overlay))
    .execute(db)
    .await?;
    Ok(())
}

/// The node that holds WireGuard key `key`, if one does.
pub async fn key_holder<'c>(db: impl PgExecutor<'c>, key: &str) -> R<Option<Uuid>> {
    let row: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM nodes WHERE wireguard_key = $1 LIMIT 1")
            .bind(key)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(id,)| id))
}

/// Names of ready or draining nodes whose agent has been silent for longer than `dead_after`.
/// With `lock`, their heartbeat rows stay locked until the transaction ends, so a
/// heartbeat arriving meanwhile waits for the verdict and then revives the node.
pub async fn silent_nodes<'c>(
    db: impl PgExecutor<'c>,
    dead_after: Duration,
    lock: bool,
) -> R<Vec<String>> {
    let lock = if lock { "FOR UPDATE OF h" } else { "" };
    let rows: Vec<(String,)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT n.name FROM nodes n JOIN node_heartbeats h ON h.node_id = n.id
         WHERE n.state IN ('ready', 'draining') AND h.at < now() - make_interval(secs => $1)
         ORDER BY n.name {lock}"
    )))
    .bind(dead_after.as_secs_f64())
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(name,)| name).collect())
}

/// An instance the platform has to find a node for, with the size of its process.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Movable {
    pub id: Uuid,
    pub org_id: Uuid,
    pub region: Option<String>,
    #[sqlx(flatten)]
    pub process: ProcessType,
}

const MOVABLE: &str = "SELECT i.id, i.org_id, i.region, p.deployment_id, p.name, p.instances,
        p.millicpus, p.memory_mb, p.port
    FROM instances i JOIN process_types p ON p.deployment_id = i.deployment_id AND p.name = i.process
    WHERE i.desired_state = 'running'";

/// The node's desired-running instances that no running instance replaces yet.
pub async fn unreplaced_on<'c>(db: impl PgExecutor<'c>, node: Uuid) -> R<Vec<Movable>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "{MOVABLE} AND i.node_id = $1 AND NOT EXISTS (
            SELECT 1 FROM instances r WHERE r.replaces = i.id AND r.desired_state = 'running')
         ORDER BY i.created_at, i.id"
    )))
    .bind(node)
    .fetch_all(db)
    .await?)
}

/// The deployment's desired-running instances (of `process`, when given) that no
/// running instance replaces yet.
pub async fn unreplaced_of<'c>(
    db: impl PgExecutor<'c>,
    deployment: Uuid,
    process: Option<&str>,
) -> R<Vec<Movable>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "{MOVABLE} AND i.deployment_id = $1 AND ($2::text IS NULL OR i.process = $2)
           AND NOT EXISTS (
            SELECT 1 FROM instances r WHERE r.replaces = i.id AND r.desired_state = 'running')
         ORDER BY i.created_at, i.id"
    )))
    .bind(deployment)
    .bind(process)
    .fetch_all(db)
    .await?)
}

/// Desired-running instances waiting for a node (none had room, or none existed).
pub async fn waiting<'c>(db: impl PgExecutor<'c>) -> R<Vec<Movable>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "{MOVABLE} AND i.node_id IS NULL ORDER BY i.created_at, i.id"
    )))
    .fetch_all(db)
    .await?)
}

/// An instance, with what an event about it must name.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct InstanceRef {
    pub org_id: Uuid,
    pub deployment_id: Uuid,
    pub id: Uuid,
}

/// Every desired-running instance on the node.
pub async fn running_on<'c>(db: impl PgExecutor<'c>, node: Uuid) -> R<Vec<InstanceRef>> {
    Ok(sqlx::query_as(
        "SELECT org_id, deployment_id, id FROM instances
         WHERE node_id = $1 AND desired_state = 'running' ORDER BY created_at, id",
    )
    .bind(node)
    .fetch_all(db)
    .await?)
}

/// Instances of superseded deployments still running although the env's active
/// deployment is ready for all the traffic: every one of its instances meant to run
/// reports healthy (or it has none). Also when one of its instances waits for room: the
/// old ones then make room (the rollout rolls instead of surging).
pub async fn superseded_by_ready<'c>(db: impl PgExecutor<'c>) -> R<Vec<InstanceRef>> {
    Ok(sqlx::query_as(
        "SELECT o.org_id, o.deployment_id, o.id
         FROM instances o
         JOIN deployments old ON old.id = o.deployment_id AND old.state = 'superseded'
         JOIN deployments a ON a.env_id = o.env_id AND a.state = 'active'
         WHERE o.desired_state = 'running'
           AND (NOT EXISTS (SELECT 1 FROM instances n
                            WHERE n.deployment_id = a.id AND n.desired_state = 'running'
                              AND n.observed_state IS DISTINCT FROM 'healthy')
                OR EXISTS (SELECT 1 FROM instances n
                           WHERE n.deployment_id = a.id AND n.desired_state = 'running'
                             AND n.node_id IS NULL))
         ORDER BY o.created_at, o.id",
    )
    .fetch_all(db)
    .await?)
}

/// A standby deployment, with what an event about it must name.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StandbyRef {
    pub org_id: Uuid,
    pub env_id: Uuid,
    pub deployment_id: Uuid,
}

/// Standby deployments whose window has ended.
pub async fn standbys_ended<'c>(db: impl PgExecutor<'c>) -> R<Vec<StandbyRef>> {
    Ok(sqlx::query_as(
        "SELECT org_id, env_id, id AS deployment_id FROM deployments
         WHERE state = 'standby' AND standby_until <= now()
         ORDER BY standby_until, id",
    )
    .fetch_all(db)
    .await?)
}

/// The standby deployment to give up for room, when an active deployment's instance
/// waits for a node: the one whose window ends first (the oldest, windows alike).
pub async fn standby_for_room<'c>(db: impl PgExecutor<'c>) -> R<Option<StandbyRef>> {
    Ok(sqlx::query_as(
        "SELECT s.org_id, s.env_id, s.id AS deployment_id FROM deployments s
         WHERE s.state = 'standby'
           AND EXISTS (SELECT 1 FROM instances s_i
                       WHERE s_i.deployment_id = s.id AND s_i.desired_state = 'running'
                         AND s_i.node_id IS NOT NULL)
           AND EXISTS (SELECT 1 FROM instances w
                       JOIN deployments a ON a.id = w.deployment_id AND a.state = 'active'
                       WHERE w.desired_state = 'running' AND w.node_id IS NULL)
         ORDER BY s.standby_until, s.id LIMIT 1",
    )
    .fetch_optional(db)
    .await?)
}

/// Instances still running although a running replacement of theirs reports healthy.
pub async fn replaced_by_healthy<'c>(db: impl PgExecutor<'c>) -> R<Vec<InstanceRef>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT o.org_id, o.deployment_id, o.id, o.created_at
         FROM instances n JOIN instances o ON o.id = n.replaces
         WHERE n.replaces IS NOT NULL AND n.desired_state = 'running'
           AND n.observed_state = 'healthy' AND o.desired_state = 'running'
         ORDER BY o.created_at, o.id",
    )
    .fetch_all(db)
    .await?)
}

/// An instance as its node last reported it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Observed {
    pub org_id: Uuid,
    pub observed_state: String,
    pub reason: Option<String>,
    pub address: Option<String>,
    pub restarts: i32,
}

/// The instance, if it is on this node.
pub async fn observed<'c>(db: impl PgExecutor<'c>, node: Uuid, id: Uuid) -> R<Option<Observed>> {
    Ok(sqlx::query_as(
        "SELECT org_id, observed_state, reason, address, restarts FROM instances
         WHERE id = $1 AND node_id = $2",
    )
    .bind(id)
    .bind(node)
    .fetch_optional(db)
    .await?)
}

/// One instance a node must run, with its release and names.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DesiredRow {
    pub instance_id: Uuid,
    pub org: String,
    pub app: String,
    pub env: String,
    pub env_id: Uuid,
    pub deployment_id: Uuid,
    pub process: String,
    pub image: String,
    pub digest: String,
    pub manifest: Value,
    pub millicpus: i32,
    pub memory_mb: i64,
    pub port: Option<i32>,
}

/// Every desired-running instance on the node.
pub async fn desired<'c>(db: impl PgExecutor<'c>, node: Uuid) -> R<Vec<DesiredRow>> {
    Ok(sqlx::query_as(
        "SELECT i.id AS instance_id, o.name AS org, a.name AS app, e.name AS env, e.id AS env_id,
                i.deployment_id, i.process, r.image, r.digest, r.manifest, p.millicpus,
                p.memory_mb, p.port
         FROM instances i
         JOIN orgs o ON o.id = i.org_id
         JOIN envs e ON e.id = i.env_id
         JOIN apps a ON a.id = e.app_id
         JOIN deployments d ON d.id = i.deployment_id
         JOIN releases r ON r.id = d.release_id
         JOIN process_types p ON p.deployment_id = i.deployment_id AND p.name = i.process
         WHERE i.node_id = $1 AND i.desired_state = 'running'
         ORDER BY i.created_at, i.id",
    )
    .bind(node)
    .fetch_all(db)
    .await?)
}

/// A secret as stored: sealed. Only the operator's key opens it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SealedSecret {
    /// The instance it is told to.
    pub instance_id: Uuid,
    pub env_id: Uuid,
    pub name: String,
    pub version: i32,
    pub ciphertext: String,
}

/// The sealed secrets each of these instances runs with: the versions current at its
/// `secrets_seq` (the env's current ones for instances from before it was kept).
pub async fn sealed_secrets<'c>(
    db: impl PgExecutor<'c>,
    instances: &[Uuid],
) -> R<Vec<SealedSecret>> {
    Ok(sqlx::query_as(
        "SELECT i.id AS instance_id, v.env_id, v.name, v.version, v.ciphertext
         FROM instances i
         JOIN secret_versions v ON v.env_id = i.env_id
         WHERE i.id = ANY($1)
           AND v.set_seq <= COALESCE(i.secrets_seq, 9223372036854775807)
           AND (v.unset_seq IS NULL OR v.unset_seq > COALESCE(i.secrets_seq, 9223372036854775807))
         ORDER BY i.id, v.name",
    )
    .bind(instances)
    .fetch_all(db)
    .await?)
}
