//! Read queries on the projections. Every org-owned lookup takes the org id, so a
//! handler cannot forget the tenant boundary.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection, PgExecutor};
use uuid::Uuid;
use zeitwork_api_types::nodes::PeerStatus;
use zeitwork_core::overlay::{OverlayPeer, PeerSeen};

use crate::StoreError;
use crate::model::*;

type R<T> = Result<T, StoreError>;

pub async fn principal<'c>(db: impl PgExecutor<'c>, hash: &str) -> R<Option<Principal>> {
    Ok(
        sqlx::query_as("SELECT id AS token_id, org_id, role FROM tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(db)
            .await?,
    )
}

pub async fn orgs<'c>(db: impl PgExecutor<'c>, only: Option<Uuid>) -> R<Vec<Org>> {
    Ok(sqlx::query_as(
        "SELECT id, name, created_at FROM orgs WHERE $1::uuid IS NULL OR id = $1 ORDER BY name",
    )
    .bind(only)
    .fetch_all(db)
    .await?)
}

pub async fn org<'c>(db: impl PgExecutor<'c>, name: &str) -> R<Option<Org>> {
    Ok(
        sqlx::query_as("SELECT id, name, created_at FROM orgs WHERE name = $1")
            .bind(name)
            .fetch_optional(db)
            .await?,
    )
}

pub async fn org_by_id<'c>(db: impl PgExecutor<'c>, id: Uuid) -> R<Option<Org>> {
    Ok(
        sqlx::query_as("SELECT id, name, created_at FROM orgs WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

pub async fn users<'c>(db: impl PgExecutor<'c>, org: Uuid) -> R<Vec<User>> {
    Ok(sqlx::query_as(
        "SELECT id, org_id, email, role, created_at FROM users WHERE org_id = $1 ORDER BY email",
    )
    .bind(org)
    .fetch_all(db)
    .await?)
}

pub async fn user<'c>(db: impl PgExecutor<'c>, org: Uuid, id: Uuid) -> R<Option<User>> {
    Ok(sqlx::query_as(
        "SELECT id, org_id, email, role, created_at FROM users WHERE org_id = $1 AND id = $2",
    )
    .bind(org)
    .bind(id)
    .fetch_optional(db)
    .await?)
}

pub async fn tokens<'c>(db: impl PgExecutor<'c>, org: Option<Uuid>) -> R<Vec<Token>> {
    Ok(sqlx::query_as(
        "SELECT id, org_id, name, role, created_at FROM tokens
         WHERE org_id IS NOT DISTINCT FROM $1 ORDER BY created_at",
    )
    .bind(org)
    .fetch_all(db)
    .await?)
}

pub async fn token<'c>(db: impl PgExecutor<'c>, org: Option<Uuid>, id: Uuid) -> R<Option<Token>> {
    Ok(sqlx::query_as(
        "SELECT id, org_id, name, role, created_at FROM tokens WHERE org_id IS NOT DISTINCT FROM $1 AND id = $2",
    )
    .bind(org)
    .bind(id)
    .fetch_optional(db)
    .await?)
}

pub async fn apps<'c>(db: impl PgExecutor<'c>, org: Uuid) -> R<Vec<App>> {
    Ok(sqlx::query_as(
        "SELECT id, org_id, name, created_at FROM apps WHERE org_id = $1 ORDER BY name",
    )
    .bind(org)
    .fetch_all(db)
    .await?)
}

/// An app with what its primary env runs, for the org's list.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AppRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// The primary env's active deployment's release, if any.
    pub release_number: Option<i32>,
    /// Its instances meant to run, the healthy and the failed among them.
    pub running: i64,
    pub healthy: i64,
    pub failed: i64,
}

/// A page of the org's apps by name, after `after`, with their primary env (`env`)'s
/// active deployment's counts, in one query however many apps there are.
pub async fn app_rows<'c>(
    db: impl PgExecutor<'c>,
    org: Uuid,
    env: &str,
    after: Option<&str>,
    limit: i64,
) -> R<Vec<AppRow>> {
    Ok(sqlx::query_as(
        "SELECT a.id, a.name, a.created_at, r.number AS release_number,
                count(i.id) FILTER (WHERE i.desired_state = 'running') AS running,
                count(i.id) FILTER (WHERE i.desired_state = 'running'
                                      AND i.observed_state = 'healthy') AS healthy,
                count(i.id) FILTER (WHERE i.desired_state = 'running'
                                      AND i.observed_state = 'failed') AS failed
         FROM apps a
         LEFT JOIN envs e ON e.app_id = a.id AND e.name = $2
         LEFT JOIN deployments d ON d.env_id = e.id AND d.state = 'active'
         LEFT JOIN releases r ON r.id = d.release_id
         LEFT JOIN instances i ON i.deployment_id = d.id
         WHERE a.org_id = $1 AND ($3::text IS NULL OR a.name > $3)
         GROUP BY a.id, r.number
         ORDER BY a.name
         LIMIT $4",
    )
    .bind(org)
    .bind(env)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

pub async fn app<'c>(db: impl PgExecutor<'c>, org: Uuid, name: &str) -> R<Option<App>> {
    Ok(sqlx::query_as(
        "SELECT id, org_id, name, created_at FROM apps WHERE org_id = $1 AND name = $2",
    )
    .bind(org)
    .bind(name)
    .fetch_optional(db)
    .await?)
}

pub async fn envs<'c>(db: impl PgExecutor<'c>, app: Uuid) -> R<Vec<Env>> {
    Ok(sqlx::query_as(
        "SELECT id, app_id, name, preview_of, created_at FROM envs WHERE app_id = $1 ORDER BY name",
    )
    .bind(app)
    .fetch_all(db)
    .await?)
}

pub async fn env<'c>(db: impl PgExecutor<'c>, app: Uuid, name: &str) -> R<Option<Env>> {
    Ok(sqlx::query_as(
        "SELECT id, app_id, name, preview_of, created_at FROM envs WHERE app_id = $1 AND name = $2",
    )
    .bind(app)
    .bind(name)
    .fetch_optional(db)
    .await?)
}

pub async fn routes<'c>(db: impl PgExecutor<'c>, env: Uuid) -> R<Vec<Route>> {
    Ok(sqlx::query_as(
        "SELECT id, env_id, host, process, mode, port, proxy_protocol, policy, listen_port, declared,
                created_at
         FROM routes WHERE env_id = $1 ORDER BY created_at",
    )
    .bind(env)
    .fetch_all(db)
    .await?)
}

/// Every port some `tcp` route holds, in any org (ports are shared by all edges).
pub async fn listen_ports<'c>(db: impl PgExecutor<'c>) -> R<Vec<u16>> {
    let ports: Vec<(i32,)> =
        sqlx::query_as("SELECT listen_port FROM routes WHERE listen_port IS NOT NULL")
            .fetch_all(db)
            .await?;
    Ok(ports
        .into_iter()
        .filter_map(|(p,)| u16::try_from(p).ok())
        .collect())
}

pub async fn domains<'c>(db: impl PgExecutor<'c>, env: Uuid) -> R<Vec<Domain>> {
    Ok(sqlx::query_as(
        "SELECT id, env_id, hostname, verification_token, verified_at, created_at FROM domains
         WHERE env_id = $1 ORDER BY hostname",
    )
    .bind(env)
    .fetch_all(db)
    .await?)
}

/// The env holding a platform hostname label, if any.
pub async fn label_holder<'c>(db: impl PgExecutor<'c>, label: &str) -> R<Option<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT env_id FROM platform_labels WHERE label = $1")
            .bind(label)
            .fetch_optional(db)
            .await?,
    )
}

/// The env that verified this custom domain, if one has.
pub async fn domain_verified_by<'c>(db: impl PgExecutor<'c>, hostname: &str) -> R<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT env_id FROM domains WHERE hostname = $1 AND verified_at IS NOT NULL",
    )
    .bind(hostname)
    .fetch_optional(db)
    .await?)
}

pub async fn secrets<'c>(db: impl PgExecutor<'c>, env: Uuid) -> R<Vec<Secret>> {
    Ok(sqlx::query_as(
        "SELECT name, version, updated_at FROM secrets WHERE env_id = $1 ORDER BY name",
    )
    .bind(env)
    .fetch_all(db)
    .await?)
}

/// The stored ciphertext of one secret, for the runtime that delivers it (never the API).
pub async fn secret_ciphertext<'c>(
    db: impl PgExecutor<'c>,
    env: Uuid,
    name: &str,
) -> R<Option<(i32, String)>> {
    Ok(
        sqlx::query_as("SELECT version, ciphertext FROM secrets WHERE env_id = $1 AND name = $2")
            .bind(env)
            .bind(name)
            .fetch_optional(db)
            .await?,
    )
}

const RELEASE: &str = "SELECT id, app_id, number, image, digest, manifest_hash, manifest, created_at, created_by FROM releases";

pub async fn releases<'c>(db: impl PgExecutor<'c>, app: Uuid) -> R<Vec<Release>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "{RELEASE} WHERE app_id = $1 ORDER BY number DESC"
    )))
    .bind(app)
    .fetch_all(db)
    .await?)
}

/// The app's active and standby deployments, by env name.
pub async fn releases_deployed<'c>(db: impl PgExecutor<'c>, app: Uuid) -> R<Vec<ReleaseDeployed>> {
    Ok(sqlx::query_as(
        "SELECT d.release_id, e.name AS env, d.id AS deployment_id, d.state, d.standby_until
         FROM deployments d JOIN envs e ON e.id = d.env_id
         WHERE d.app_id = $1 AND d.state IN ('active', 'standby')
         ORDER BY e.name, d.state",
    )
    .bind(app)
    .fetch_all(db)
    .await?)
}

pub async fn release<'c>(db: impl PgExecutor<'c>, app: Uuid, number: i32) -> R<Option<Release>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "{RELEASE} WHERE app_id = $1 AND number = $2"
    )))
    .bind(app)
    .bind(number)
    .fetch_optional(db)
    .await?)
}

pub async fn release_by_id<'c>(db: impl PgExecutor<'c>, id: Uuid) -> R<Option<Release>> {
    Ok(
        sqlx::query_as(AssertSqlSafe(format!("{RELEASE} WHERE id = $1")))
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

const DEPLOYMENT: &str =
    "SELECT d.id, d.env_id, d.release_id, r.number AS release_number, d.slug, d.state,
        d.rollback_of, d.created_at, d.activated_at, d.standby_until
    FROM deployments d JOIN releases r ON r.id = d.release_id";

pub async fn deployments<'c>(db: impl PgExecutor<'c>, env: Uuid) -> R<Vec<Deployment>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "{DEPLOYMENT} WHERE d.env_id = $1 ORDER BY d.created_at DESC, d.id DESC"
    )))
    .bind(env)
    .fetch_all(db)
    .await?)
}

pub async fn active_deployment<'c>(db: impl PgExecutor<'c>, env: Uuid) -> R<Option<Deployment>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "{DEPLOYMENT} WHERE d.env_id = $1 AND d.state = 'active'"
    )))
    .bind(env)
    .fetch_optional(db)
    .await?)
}

/// The env's standby deployment, if it has one.
pub async fn standby_deployment<'c>(db: impl PgExecutor<'c>, env: Uuid) -> R<Option<Deployment>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "{DEPLOYMENT} WHERE d.env_id = $1 AND d.state = 'standby'"
    )))
    .bind(env)
    .fetch_optional(db)
    .await?)
}

/// Whether the deployment could take its env's traffic now: every instance meant to run
/// reports healthy, and each process meant to have instances has one running.
pub async fn deployment_ready<'c>(db: impl PgExecutor<'c>, deployment: Uuid) -> R<bool> {
    Ok(sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM instances
                            WHERE deployment_id = $1 AND desired_state = 'running'
                              AND observed_state IS DISTINCT FROM 'healthy')
            AND NOT EXISTS (SELECT 1 FROM process_types p
                            WHERE p.deployment_id = $1 AND p.instances > 0
                              AND NOT EXISTS (SELECT 1 FROM instances i
                                              WHERE i.deployment_id = $1 AND i.process = p.name
                                                AND i.desired_state = 'running'))",
    )
    .bind(deployment)
    .fetch_one(db)
    .await?)
}

pub async fn process_types<'c>(db: impl PgExecutor<'c>, deployment: Uuid) -> R<Vec<ProcessType>> {
    Ok(sqlx::query_as(
        "SELECT deployment_id, name, instances, millicpus, memory_mb, port FROM process_types
         WHERE deployment_id = $1 ORDER BY name",
    )
    .bind(deployment)
    .fetch_all(db)
    .await?)
}

pub async fn instances<'c>(db: impl PgExecutor<'c>, env: Uuid) -> R<Vec<Instance>> {
    Ok(sqlx::query_as(
        "SELECT i.id, i.deployment_id, i.process, i.node_id, n.name AS node, i.region,
                i.desired_state, i.observed_state, i.reason, i.address, i.restarts, i.replaces,
                i.created_at, i.updated_at
         FROM instances i LEFT JOIN nodes n ON n.id = i.node_id
         WHERE i.env_id = $1 ORDER BY i.created_at, i.id",
    )
    .bind(env)
    .fetch_all(db)
    .await?)
}

/// Every instance that still holds resources on a node, for placement.
pub async fn placed_instances<'c>(db: impl PgExecutor<'c>) -> R<Vec<PlacedInstance>> {
    Ok(sqlx::query_as(PLACED).fetch_all(db).await?)
}

/// What each instance placed on a node holds of it: the one rule placement and the nodes'
/// `allocated_*` figures share.
macro_rules! placed {
    () => {
        "SELECT i.node_id, i.deployment_id, p.millicpus, p.memory_mb FROM instances i
         JOIN process_types p ON p.deployment_id = i.deployment_id AND p.name = i.process
         WHERE i.node_id IS NOT NULL AND i.desired_state = 'running'"
    };
}
const PLACED: &str = placed!();

const NODE: &str = concat!(
    "SELECT n.id, n.name, n.region, n.zone, n.millicpus, n.memory_mb,
        COALESCE(a.millicpus, 0) AS allocated_millicpus,
        COALESCE(a.memory_mb, 0) AS allocated_memory_mb, n.addresses,
        n.instance_prefix, n.wireguard_key, n.wireguard_port,
        COALESCE(h.overlay, '[]') AS overlay_seen, n.state, h.at AS last_heartbeat, h.running,
        n.created_at
    FROM nodes n LEFT JOIN node_heartbeats h ON h.node_id = n.id
    LEFT JOIN (SELECT node_id, sum(millicpus)::bigint AS millicpus,
                      sum(memory_mb)::bigint AS memory_mb
               FROM (",
    placed!(),
    ") placed GROUP BY node_id) a ON a.node_id = n.id"
);

/// Every node, its overlay peers unnamed (see [`nodes_named`]).
pub async fn nodes<'c>(db: impl PgExecutor<'c>) -> R<Vec<Node>> {
    let mut nodes: Vec<Node> = sqlx::query_as(AssertSqlSafe(format!("{NODE} ORDER BY n.name")))
        .fetch_all(db)
        .await?;
    for n in &mut nodes {
        overlay_view(n);
    }
    Ok(nodes)
}

/// Node `name`, its overlay peers unnamed (see [`node_named`]): what the agent's
/// endpoints, placement and the monitor need, in one query.
pub async fn node<'c>(db: impl PgExecutor<'c>, name: &str) -> R<Option<Node>> {
    let node: Option<Node> = sqlx::query_as(AssertSqlSafe(format!("{NODE} WHERE n.name = $1")))
        .bind(name)
        .fetch_optional(db)
        .await?;
    Ok(node.map(|mut n| {
        overlay_view(&mut n);
        n
    }))
}

/// Every node as the API answers it: each overlay peer named (one more read).
pub async fn nodes_named(db: &mut PgConnection) -> R<Vec<Node>> {
    let mut nodes = nodes(&mut *db).await?;
    let names = key_names(db).await?;
    for n in &mut nodes {
        name_peers(n, &names);
    }
    Ok(nodes)
}

/// Node `name` as the API answers it: each overlay peer named (one more read).
pub async fn node_named(db: &mut PgConnection, name: &str) -> R<Option<Node>> {
    let Some(mut node) = node(&mut *db, name).await? else {
        return Ok(None);
    };
    name_peers(&mut node, &key_names(db).await?);
    Ok(Some(node))
}

/// Each WireGuard key and the node that holds it.
async fn key_names(db: &mut PgConnection) -> R<BTreeMap<String, String>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT wireguard_key, name FROM nodes WHERE wireguard_key IS NOT NULL")
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().collect())
}

/// The node's overlay address, and its heartbeat's peer reports aged to now.
fn overlay_view(node: &mut Node) {
    node.overlay_address = node
        .wireguard_key
        .as_ref()
        .and(node.instance_prefix.as_deref())
        .and_then(zeitwork_core::ipam::overlay_address)
        .map(|a| a.to_string());
    let since_beat = node.last_heartbeat.map_or(0, |at| {
        (chrono::Utc::now() - at).num_seconds().max(0) as u64
    });
    node.overlay_peers = std::mem::take(&mut node.overlay_seen)
        .into_iter()
        .map(|seen| {
            let now = PeerSeen {
                handshake_age_seconds: seen.handshake_age_seconds.map(|a| a + since_beat),
                ..seen
            };
            PeerStatus {
                node: None,
                reachable: now.reachable(),
                public_key: now.public_key,
                handshake_age_seconds: now.handshake_age_seconds,
            }
        })
        .collect();
}

/// Names each overlay peer of `node` by its key.
fn name_peers(node: &mut Node, names: &BTreeMap<String, String>) {
    for peer in &mut node.overlay_peers {
        peer.node = names.get(&peer.public_key).cloned();
    }
}

/// The nodes `node` peers with on the overlay: every other node with a key, each
/// allowed its own /64. A key two nodes claim is nobody's (enrollment refuses a second
/// claim; this holds even for a log that has one).
pub async fn overlay_peers<'c>(db: impl PgExecutor<'c>, node: Uuid) -> R<Vec<OverlayPeer>> {
    /// One peer as the nodes table holds it.
    #[derive(sqlx::FromRow)]
    struct Row {
        id: Uuid,
        name: String,
        wireguard_key: String,
        wireguard_port: i32,
        addresses: Json<Vec<String>>,
        instance_prefix: String,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT n.id, n.name, n.wireguard_key, n.wireguard_port, n.addresses, n.instance_prefix
         FROM nodes n
         WHERE n.id <> $1 AND n.wireguard_key IS NOT NULL AND n.wireguard_port IS NOT NULL
           AND n.instance_prefix IS NOT NULL
           AND (SELECT count(*) FROM nodes o WHERE o.wireguard_key = n.wireguard_key) = 1
         ORDER BY n.name",
    )
    .bind(node)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let port = u16::try_from(row.wireguard_port).unwrap_or_default();
            let mut ips: Vec<std::net::IpAddr> = row
                .addresses
                .0
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect();
            ips.sort_by_key(|ip| !ip.is_ipv6());
            OverlayPeer {
                node_id: row.id,
                name: row.name,
                public_key: row.wireguard_key,
                endpoints: ips
                    .into_iter()
                    .map(|ip| std::net::SocketAddr::new(ip, port).to_string())
                    .collect(),
                allowed_ips: vec![row.instance_prefix],
            }
        })
        .collect())
}

pub async fn regions<'c>(db: impl PgExecutor<'c>) -> R<Vec<Region>> {
    Ok(sqlx::query_as(
        "SELECT id, name, addresses, client_networks, created_at FROM regions ORDER BY name",
    )
    .fetch_all(db)
    .await?)
}

pub use zeitwork_api_types::OrgUsage;

/// What `org` holds, leaving out the running instances of env `except_env` (of its
/// process `except_process` only, when given): those a deploy or a scale replaces.
pub async fn org_usage<'c>(
    db: impl PgExecutor<'c>,
    org: Uuid,
    except_env: Option<Uuid>,
    except_process: Option<&str>,
) -> R<OrgUsage> {
    let row: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT
            (SELECT count(*) FROM instances i
             WHERE i.org_id = $1 AND i.desired_state = 'running'
               AND NOT (i.env_id IS NOT DISTINCT FROM $2 AND ($3::text IS NULL OR i.process = $3))),
            (SELECT COALESCE(sum(p.memory_mb), 0)::bigint FROM instances i
             JOIN process_types p ON p.deployment_id = i.deployment_id AND p.name = i.process
             WHERE i.org_id = $1 AND i.desired_state = 'running'
               AND NOT (i.env_id IS NOT DISTINCT FROM $2 AND ($3::text IS NULL OR i.process = $3))),
            (SELECT count(*) FROM routes WHERE org_id = $1),
            (SELECT count(*) FROM routes WHERE org_id = $1 AND mode = 'tcp'),
            (SELECT count(*) FROM domains WHERE org_id = $1),
            (SELECT COALESCE(max(bytes), 0) FROM registry_usage WHERE org_id = $1) / (1024 * 1024)",
    )
    .bind(org)
    .bind(except_env)
    .bind(except_process)
    .fetch_one(db)
    .await?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(OrgUsage {
        instances: n(row.0),
        memory_mb: n(row.1),
        routes: n(row.2),
        tcp_routes: n(row.3),
        domains: n(row.4),
        registry_mb: n(row.5),
    })
}

/// The quotas a platform admin set for `org` alone (none set: all the platform's).
pub async fn org_quota_overrides<'c>(
    db: impl PgExecutor<'c>,
    org: Uuid,
) -> R<zeitwork_core::QuotaOverrides> {
    type Row = (
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT instances, memory_mb, routes, tcp_routes, domains, registry_mb FROM org_quotas WHERE org_id = $1",
    )
    .bind(org)
    .fetch_optional(db)
    .await?;
    let n = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Ok(row
        .map(|r| zeitwork_core::QuotaOverrides {
            instances: n(r.0),
            memory_mb: n(r.1),
            routes: n(r.2),
            tcp_routes: n(r.3),
            domains: n(r.4),
            registry_mb: n(r.5),
        })
        .unwrap_or_default())
}

/// The image references of the instances placed on `node` that are meant to run: what
/// the node may pull.
pub async fn node_images<'c>(db: impl PgExecutor<'c>, node: Uuid) -> R<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT r.image FROM instances i
         JOIN deployments d ON d.id = i.deployment_id
         JOIN releases r ON r.id = d.release_id
         WHERE i.node_id = $1 AND i.desired_state = 'running'",
    )
    .bind(node)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(image,)| image).collect())
}

const BUILD_COLUMNS: &str =
    "id, env_id, node_id, state, source, git, image, reason, log, created_at, updated_at";

/// The env's builds, newest first (at most 50).
pub async fn builds<'c>(db: impl PgExecutor<'c>, env: Uuid) -> R<Vec<crate::model::Build>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {BUILD_COLUMNS} FROM builds WHERE env_id = $1 ORDER BY created_at DESC, id DESC LIMIT 50"
    )))
    .bind(env)
    .fetch_all(db)
    .await?)
}

pub async fn build<'c>(db: impl PgExecutor<'c>, id: Uuid) -> R<Option<crate::model::Build>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {BUILD_COLUMNS} FROM builds WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// A build a node runs, with what it needs to run it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeBuild {
    pub id: Uuid,
    pub state: String,
    pub source: String,
    pub manifest: serde_json::Value,
    pub org: String,
    pub org_id: Uuid,
    pub app: String,
    pub app_id: Uuid,
    /// The commit, for a build of a push.
    pub git: Option<sqlx::types::Json<zeitwork_core::repository::GitSource>>,
    /// The app's repository token (sealed), for a build of a push.
    pub sealed_token: Option<String>,
}

/// The builds placed on `node` that have not ended.
pub async fn node_builds<'c>(db: impl PgExecutor<'c>, node: Uuid) -> R<Vec<NodeBuild>> {
    Ok(sqlx::query_as(
        "SELECT b.id, b.state, b.source, b.manifest, o.name AS org, o.id AS org_id, a.name AS app, a.id AS app_id,
                b.git, CASE WHEN b.git IS NOT NULL THEN r.sealed_token END AS sealed_token
         FROM builds b JOIN apps a ON a.id = b.app_id JOIN orgs o ON o.id = b.org_id
         LEFT JOIN app_repositories r ON r.app_id = b.app_id
         WHERE b.node_id = $1 AND b.state NOT IN ('succeeded', 'failed', 'cancelled')
         ORDER BY b.created_at",
    )
    .bind(node)
    .fetch_all(db)
    .await?)
}

/// The org and app of app `id`.
pub async fn app_path(db: &mut sqlx::PgConnection, id: Uuid) -> R<Option<(Org, App)>> {
    let Some(app): Option<App> =
        sqlx::query_as("SELECT id, org_id, name, created_at FROM apps WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *db)
            .await?
    else {
        return Ok(None);
    };
    let org: Org = sqlx::query_as("SELECT id, name, created_at FROM orgs WHERE id = $1")
        .bind(app.org_id)
        .fetch_one(&mut *db)
        .await?;
    Ok(Some((org, app)))
}

/// The org, app and env of env `id`.
pub async fn env_path(db: &mut sqlx::PgConnection, id: Uuid) -> R<Option<(Org, App, Env)>> {
    let Some(env): Option<Env> =
        sqlx::query_as("SELECT id, app_id, name, preview_of, created_at FROM envs WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *db)
            .await?
    else {
        return Ok(None);
    };
    let (org, app) = app_path(db, env.app_id)
        .await?
        .expect("an env's app exists (foreign key)");
    Ok(Some((org, app, env)))
}

/// Every build that has not ended: its id, node and the manifest it was queued with
/// (whose `[build]` says the room it holds).
pub async fn open_builds<'c>(db: impl PgExecutor<'c>) -> R<Vec<(Uuid, Uuid, serde_json::Value)>> {
    Ok(sqlx::query_as(
        "SELECT id, node_id, manifest FROM builds
         WHERE state NOT IN ('succeeded', 'failed', 'cancelled')",
    )
    .fetch_all(db)
    .await?)
}

/// The node of the app's last build that ran (its layer cache is there).
pub async fn last_build_node<'c>(db: impl PgExecutor<'c>, app: Uuid) -> R<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT node_id FROM builds WHERE app_id = $1 AND state = 'succeeded'
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(app)
    .fetch_optional(db)
    .await?)
}

/// The manifest build `id` was queued with.
pub async fn build_manifest<'c>(db: impl PgExecutor<'c>, id: Uuid) -> R<Option<serde_json::Value>> {
    let row: Option<(serde_json::Value,)> =
        sqlx::query_as("SELECT manifest FROM builds WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(m,)| m))
}

/// An earlier build that succeeded: reused for the same source.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BuiltBefore {
    pub id: Uuid,
    pub node_id: Uuid,
    pub image: String,
    /// What its image rolled out with.
    pub manifest: serde_json::Value,
}

/// An earlier build of the app that succeeded from the same source (and, when `build` is
/// given, with the same `[build]` section).
pub async fn built_before<'c>(
    db: impl PgExecutor<'c>,
    env: Uuid,
    source: &str,
    build: Option<&serde_json::Value>,
) -> R<Option<BuiltBefore>> {
    Ok(sqlx::query_as(
        "SELECT b.id, b.node_id, b.image, b.manifest FROM builds b
         WHERE b.app_id = (SELECT app_id FROM envs WHERE id = $1)
           AND b.source = $2 AND b.state = 'succeeded' AND b.image IS NOT NULL
           AND ($4 OR b.manifest -> 'build' IS NOT DISTINCT FROM $3)
         ORDER BY b.created_at DESC LIMIT 1",
    )
    .bind(env)
    .bind(source)
    .bind(build)
    .bind(build.is_none())
    .fetch_optional(db)
    .await?)
}

const REPOSITORY_COLUMNS: &str =
    "app_id, hook_id, url, branch, sealed_secret, sealed_token, connected_at";

/// The repository app `app` is connected to.
pub async fn repository<'c>(db: impl PgExecutor<'c>, app: Uuid) -> R<Option<RepositoryRecord>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REPOSITORY_COLUMNS} FROM app_repositories WHERE app_id = $1"
    )))
    .bind(app)
    .fetch_optional(db)
    .await?)
}

/// The repository connection webhook hook `hook` delivers to.
pub async fn repository_by_hook<'c>(
    db: impl PgExecutor<'c>,
    hook: Uuid,
) -> R<Option<RepositoryRecord>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {REPOSITORY_COLUMNS} FROM app_repositories WHERE hook_id = $1"
    )))
    .bind(hook)
    .fetch_optional(db)
    .await?)
}

/// What came of webhook delivery `delivery`, when it was handled.
pub async fn delivery<'c>(db: impl PgExecutor<'c>, delivery: &str) -> R<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT outcome FROM webhook_deliveries WHERE delivery = $1")
            .bind(delivery)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(o,)| o))
}

/// The app's preview env of `branch`.
pub async fn preview_env<'c>(db: impl PgExecutor<'c>, app: Uuid, branch: &str) -> R<Option<Env>> {
    Ok(sqlx::query_as(
        "SELECT id, app_id, name, preview_of, created_at FROM envs WHERE app_id = $1 AND preview_of = $2",
    )
    .bind(app)
    .bind(branch)
    .fetch_optional(db)
    .await?)
}

/// The newest certificate for each of `hostnames` (exact names; a wildcard is not
/// counted), for the domains' answers.
pub async fn certificates_for<'c>(
    db: impl PgExecutor<'c>,
    hostnames: &[String],
) -> R<Vec<CertificateInfo>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (h.name) h.name AS hostname, c.source, c.not_after
         FROM certificates c, unnest(c.hostnames) AS h(name)
         WHERE h.name = ANY($1)
         ORDER BY h.name, c.not_after DESC",
    )
    .bind(hostnames)
    .fetch_all(db)
    .await?)
}
