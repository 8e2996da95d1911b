//! Load reports for the autoscaler (docs/architecture.md, "Autoscaling"): requests in
//! flight per instance from every edge, CPU use per instance from every agent. They are
//! measurements, not history, so they live in UNLOGGED tables outside the event log
//! (migration 0023) and only fresh ones count: a reporter that falls silent is ignored
//! rather than read as "no load".

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use crate::StoreError;

type R<T> = Result<T, StoreError>;

/// What one edge saw of one instance since its previous report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct EdgeLoad {
    /// Mean requests in flight.
    pub in_flight: f64,
    /// Requests sent.
    pub requests: u64,
}

/// Records what one edge measured since its previous report, by instance `ip:port`.
/// Replaces the edge's last report.
pub async fn report_edge<'c>(
    db: impl PgExecutor<'c>,
    edge: &str,
    load: &BTreeMap<String, EdgeLoad>,
) -> R<()> {
    sqlx::query(
        "INSERT INTO edge_load (edge, reported_at, load) VALUES ($1, now(), $2)
         ON CONFLICT (edge) DO UPDATE SET reported_at = now(), load = $2",
    )
    .bind(edge)
    .bind(Json(load))
    .execute(db)
    .await?;
    Ok(())
}

/// Asks for an instance of `process` of `deployment`, scaled to zero, to serve held
/// requests, and wakes the autoscaler ([`WAKE_CHANNEL`]).
pub async fn request_wake<'c>(db: impl PgExecutor<'c>, deployment: Uuid, process: &str) -> R<()> {
    sqlx::query(
        "WITH w AS (
             INSERT INTO wake_requests (deployment_id, process, requested_at) VALUES ($1, $2, now())
             ON CONFLICT (deployment_id, process) DO UPDATE SET requested_at = now())
         SELECT pg_notify($3, '')",
    )
    .bind(deployment)
    .bind(process)
    .bind(WAKE_CHANNEL)
    .execute(db)
    .await?;
    Ok(())
}

/// The Postgres channel [`request_wake`] notifies.
pub const WAKE_CHANNEL: &str = "zeitwork_wake";

/// Whether requests wait for `process` of `deployment` (asked for within `fresh`);
/// taking the request away.
pub async fn take_wake<'c>(
    db: impl PgExecutor<'c>,
    deployment: Uuid,
    process: &str,
    fresh: Duration,
) -> R<bool> {
    let taken: Option<(bool,)> = sqlx::query_as(
        "DELETE FROM wake_requests WHERE deployment_id = $1 AND process = $2
         RETURNING requested_at > now() - make_interval(secs => $3)",
    )
    .bind(deployment)
    .bind(process)
    .bind(fresh.as_secs_f64())
    .fetch_optional(db)
    .await?;
    Ok(taken.is_some_and(|(fresh,)| fresh))
}

/// Records the CPU use (thousandths of a core) and busy flag of instances of `node`.
/// Reports for instances placed elsewhere are dropped: a node speaks only for its own.
pub async fn report_cpu<'c>(
    db: impl PgExecutor<'c>,
    node: Uuid,
    used: &[(Uuid, u32, bool)],
) -> R<()> {
    let ids: Vec<Uuid> = used.iter().map(|(id, _, _)| *id).collect();
    let millicpus: Vec<i32> = used
        .iter()
        .map(|(_, m, _)| i32::try_from(*m).unwrap_or(i32::MAX))
        .collect();
    let busy: Vec<bool> = used.iter().map(|(_, _, b)| *b).collect();
    sqlx::query(
        "INSERT INTO instance_cpu (instance_id, reported_at, millicpus, busy)
         SELECT r.id, now(), r.millicpus, r.busy
         FROM unnest($2::uuid[], $3::int[], $4::bool[]) AS r(id, millicpus, busy)
         JOIN instances i ON i.id = r.id AND i.node_id = $1
         ON CONFLICT (instance_id) DO UPDATE
         SET reported_at = now(), millicpus = EXCLUDED.millicpus, busy = EXCLUDED.busy",
    )
    .bind(node)
    .bind(&ids)
    .bind(&millicpus)
    .bind(&busy)
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets reports older than `age` (edges that went away, stopped instances).
pub async fn prune(db: &mut sqlx::PgConnection, age: Duration) -> R<()> {
    for (table, column) in [
        ("edge_load", "reported_at"),
        ("instance_cpu", "reported_at"),
        ("wake_requests", "requested_at"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE {column} < now() - make_interval(secs => $1)"
        )))
        .bind(age.as_secs_f64())
        .execute(&mut *db)
        .await?;
    }
    Ok(())
}

/// An env's active deployment whose release's manifest autoscales some process.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Autoscaled {
    pub deployment_id: Uuid,
    pub env_id: Uuid,
    pub org_id: Uuid,
    /// The release's manifest (`zeitwork_core::Manifest` as JSON).
    pub manifest: serde_json::Value,
}

/// Every active deployment with an autoscaled process.
pub async fn autoscaled<'c>(db: impl PgExecutor<'c>) -> R<Vec<Autoscaled>> {
    Ok(sqlx::query_as(
        "SELECT d.id AS deployment_id, d.env_id, a.org_id, r.manifest
         FROM deployments d JOIN releases r ON r.id = d.release_id JOIN apps a ON a.id = r.app_id
         WHERE d.state = 'active' AND jsonb_path_exists(r.manifest, '$.processes.*.autoscale')
         ORDER BY d.id",
    )
    .fetch_all(db)
    .await?)
}

/// What the reports say of one process of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessLoad {
    /// Its instances meant to run (placed or waiting for room), in every region.
    pub instances: u32,
    /// The regions they are in (at least 1).
    pub regions: u32,
    /// Requests in flight over all its instances, summed over the edges that reported
    /// within the freshness bound; `None` when no edge did.
    pub in_flight: Option<f64>,
    /// Requests sent to its instances in those reports (0 when no edge reported).
    pub requests: u64,
    /// CPU use (thousandths of a core) summed over its healthy instances with a fresh
    /// report; `None` when none has one.
    pub cpu_millicpus: Option<f64>,
    /// Whether one of its instances said, in a fresh report, that it is busy.
    pub busy: bool,
}

/// The load of `process` of `deployment`, counting reports younger than `fresh`.
pub async fn process_load<'c>(
    db: impl PgExecutor<'c>,
    deployment: Uuid,
    process: &str,
    fresh: Duration,
) -> R<ProcessLoad> {
    type Row = (i64, i64, i64, Option<f64>, Option<f64>, Option<f64>, bool);
    let (instances, regions, edges, in_flight, requests, cpu, busy): Row =
        sqlx::query_as(
            "WITH mine AS (
                 SELECT id, region, address, observed_state FROM instances
                 WHERE deployment_id = $1 AND process = $2 AND desired_state = 'running'),
             edges AS (
                 SELECT load FROM edge_load
                 WHERE reported_at > now() - make_interval(secs => $3))
             SELECT (SELECT count(*) FROM mine),
                    (SELECT count(DISTINCT region) FROM mine),
                    (SELECT count(*) FROM edges),
                    (SELECT sum((e.load -> m.address ->> 'in_flight')::float8)
                     FROM edges e JOIN mine m ON e.load ? m.address),
                    (SELECT sum((e.load -> m.address ->> 'requests')::float8)
                     FROM edges e JOIN mine m ON e.load ? m.address),
                    (SELECT sum(c.millicpus)::float8 FROM instance_cpu c JOIN mine m ON m.id = c.instance_id
                     WHERE m.observed_state = 'healthy'
                       AND c.reported_at > now() - make_interval(secs => $4)),
                    EXISTS (SELECT 1 FROM instance_cpu c JOIN mine m ON m.id = c.instance_id
                     WHERE c.busy AND c.reported_at > now() - make_interval(secs => $4))",
        )
        .bind(deployment)
        .bind(process)
        .bind(fresh.as_secs_f64())
        .bind((fresh * 4).as_secs_f64())
        .fetch_one(db)
        .await?;
    Ok(ProcessLoad {
        instances: u32::try_from(instances).unwrap_or(u32::MAX),
        regions: u32::try_from(regions).unwrap_or(u32::MAX).max(1),
        in_flight: (edges > 0).then(|| in_flight.unwrap_or(0.0)),
        requests: requests.unwrap_or(0.0) as u64,
        cpu_millicpus: cpu,
        busy,
    })
}

pub use zeitwork_api_types::LastScaled;

/// The last `scale` or autoscaler decision of each process of `deployment`.
pub async fn last_scaled<'c>(db: impl PgExecutor<'c>, deployment: Uuid) -> R<Vec<LastScaled>> {
    Ok(sqlx::query_as(
        "SELECT name AS process, instances, scaled_at AS at, scaled_by AS actor,
                scaled_reason AS reason
         FROM process_types WHERE deployment_id = $1 AND scaled_at IS NOT NULL ORDER BY name",
    )
    .bind(deployment)
    .fetch_all(db)
    .await?)
}
