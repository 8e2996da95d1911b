//! Reading what the routing table needs from the projections: keyset pages (never one
//! huge result, never OFFSET), all inside one read-only REPEATABLE READ transaction, so
//! the table is one consistent point of the event log however many pages it takes.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;
use zeitwork_store::{Store, StoreError, log};

use super::RoutingTable;
use super::build::build;

/// Rows per query; small enough to keep each round trip short, large enough that
/// 100,000 hostnames take a few hundred of them.
const PAGE: i64 = 1000;

/// Builds a complete table from Postgres (or fails: a partial table is never served).
/// `region`: the edge's own, whose healthy instances it prefers.
pub(crate) async fn load(
    store: &Store,
    base_domain: &str,
    region: Option<&str>,
) -> Result<RoutingTable, StoreError> {
    let mut tx = store.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows = Rows {
        seq: log::head(&mut tx).await?,
        envs: pages(&mut tx, ENVS).await?,
        deployments: pages(&mut tx, DEPLOYMENTS).await?,
        instances: pages(&mut tx, INSTANCES).await?,
        routes: pages(&mut tx, ROUTES).await?,
        domains: pages(&mut tx, DOMAINS).await?,
    };
    tx.rollback().await?;
    Ok(build(base_domain, rows, region))
}

/// Everything the table is made of, at log position `seq`.
pub(super) struct Rows {
    pub seq: i64,
    pub envs: Vec<EnvRow>,
    pub deployments: Vec<DeploymentRow>,
    pub instances: Vec<InstanceRow>,
    pub routes: Vec<RouteRow>,
    pub domains: Vec<DomainRow>,
}

/// Each query takes the last id seen (`$1`) and the page size (`$2`), ordered by id.
/// Ids are UUIDv7, never nil, so the nil UUID starts before every row.
const ENVS: &str = "SELECT e.id, e.name, a.name AS app, o.name AS org
    FROM envs e JOIN apps a ON a.id = e.app_id JOIN orgs o ON o.id = e.org_id
    WHERE e.id > $1 ORDER BY e.id LIMIT $2";

/// The process a deployment's URL serves (`Manifest::served_process`, the one rule): one
/// with a port, `web` first, then by name; else `web` without a port, whose instances
/// report the port they took from their image.
/// `sleeps`: the deployment is active and its release lets that process scale to zero
/// (`[processes.<name>.autoscale] min = 0`), so a request wakes it rather than failing.
const DEPLOYMENTS: &str =
    "SELECT d.id, d.env_id, d.slug, d.activated_at, p.name AS process, p.port,
        d.state = 'active' AND coalesce(
            r.manifest -> 'processes' -> p.name -> 'autoscale' ->> 'min' = '0', false) AS sleeps
    FROM deployments d
    JOIN releases r ON r.id = d.release_id
    LEFT JOIN LATERAL (
        SELECT name, port FROM process_types
        WHERE deployment_id = d.id AND (port IS NOT NULL OR name = 'web')
        ORDER BY port IS NULL, name <> 'web', name LIMIT 1
    ) p ON true
    WHERE d.id > $1 ORDER BY d.id LIMIT $2";

/// Only instances that may take traffic: meant to run, and last reported healthy.
const INSTANCES: &str = "SELECT id, deployment_id, process, address, region FROM instances
    WHERE desired_state = 'running' AND observed_state = 'healthy' AND address IS NOT NULL
      AND id > $1 ORDER BY id LIMIT $2";

/// Hostname routes, and `tcp` routes by their allocated port.
const ROUTES: &str =
    "SELECT id, env_id, host, process, mode, port, proxy_protocol, policy, listen_port
    FROM routes
    WHERE (CASE mode WHEN 'tcp' THEN listen_port IS NOT NULL ELSE host IS NOT NULL END)
      AND id > $1
    ORDER BY id LIMIT $2";

const DOMAINS: &str = "SELECT id, env_id, hostname FROM domains
    WHERE verified_at IS NOT NULL AND id > $1 ORDER BY id LIMIT $2";

#[derive(Debug, FromRow)]
pub(super) struct EnvRow {
    pub id: Uuid,
    pub name: String,
    pub app: String,
    pub org: String,
}

#[derive(Debug, FromRow)]
pub(super) struct DeploymentRow {
    pub id: Uuid,
    pub env_id: Uuid,
    pub slug: String,
    /// When it last became its env's active deployment (created, or rolled back to):
    /// the env's hostnames serve the newest activated one with healthy instances.
    pub activated_at: DateTime<Utc>,
    /// `None` when the deployment has no process at all.
    pub process: Option<String>,
    pub port: Option<i32>,
    /// Active, and its served process scales to zero: requests wait for it to wake.
    pub sleeps: bool,
}

#[derive(Debug, FromRow)]
pub(super) struct InstanceRow {
    pub id: Uuid,
    pub deployment_id: Uuid,
    pub process: String,
    /// `ip:port` as the node agent reported it.
    pub address: String,
    /// Its node's region.
    pub region: Option<String>,
}

#[derive(Debug, FromRow)]
pub(super) struct RouteRow {
    pub id: Uuid,
    pub env_id: Uuid,
    /// Set unless the route is `tcp`.
    pub host: Option<String>,
    pub process: String,
    /// `http`, `tls-passthrough` or `tcp`.
    pub mode: String,
    pub port: i32,
    pub proxy_protocol: bool,
    pub policy: sqlx::types::Json<zeitwork_core::RoutePolicy>,
    /// Set for `tcp` routes only.
    pub listen_port: Option<i32>,
}

#[derive(Debug, FromRow)]
pub(super) struct DomainRow {
    pub id: Uuid,
    pub env_id: Uuid,
    pub hostname: String,
}

/// The id a page continues after.
trait Keyed {
    fn key(&self) -> Uuid;
}

macro_rules! keyed {
    ($($row:ty),*) => {$(
        impl Keyed for $row {
            fn key(&self) -> Uuid {
                self.id
            }
        }
    )*};
}
keyed!(EnvRow, DeploymentRow, InstanceRow, RouteRow, DomainRow);

/// All rows of `sql`, one page at a time.
async fn pages<T>(db: &mut PgConnection, sql: &'static str) -> Result<Vec<T>, StoreError>
where
    T: for<'r> FromRow<'r, PgRow> + Keyed + Send + Unpin,
{
    let mut all = Vec::new();
    let mut after = Uuid::nil();
    loop {
        let page: Vec<T> = sqlx::query_as(sql)
            .bind(after)
            .bind(PAGE)
            .fetch_all(&mut *db)
            .await?;
        let full = page.len() as i64 == PAGE;
        if let Some(last) = page.last() {
            after = last.key();
        }
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}
