//! Instance logs: console lines that node agents ship, kept for people to read and follow.
//!
//! Logs are bookkeeping, not state. They never enter the event log, rebuilding the
//! projections neither replays nor touches them, and [`prune`] drops them by age and
//! by count per instance.
//!
//! Ordering: followers tail `id > cursor`, which is the event log's trap again (see
//! [`crate::log`]): an identity value is taken at insert but becomes visible at commit,
//! so a batch that commits late could land behind a follower's cursor. Appenders hold a
//! transaction-scoped advisory lock from before they take ids until they commit, hence
//! id order is commit order. Rolled-back batches leave gaps, which no reader minds.

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;
use zeitwork_core::node::LogLine;

use crate::StoreError;

/// The Postgres channel that hears the highest id of every committed batch.
pub const CHANNEL: &str = "zw_logs";

/// Key of the advisory lock that queues appenders ("zwlogs" in ASCII). Advisory lock
/// keys share one namespace per database, so it must not be reused for anything else.
const APPEND_LOCK: i64 = 0x7a77_6c6f_6773;

/// What a build's lines give as their process.
pub const BUILD_PROCESS: &str = "build";

pub use zeitwork_api_types::LogLine as Line;

/// Which lines a reader wants: always within one app of one org (the tenant boundary
/// is part of every query), optionally one env or one instance of it; the instances'
/// lines, or with `build_id` that build's only.
#[derive(Debug, Clone, Copy)]
pub struct Filter {
    pub org_id: Uuid,
    pub app_id: Uuid,
    pub env_id: Option<Uuid>,
    pub instance_id: Option<Uuid>,
    pub build_id: Option<Uuid>,
}

/// How much log is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Lines kept per instance; older ones go first.
    pub per_instance: i64,
    /// Lines stamped earlier than this long ago go.
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            per_instance: 10_000,
            max_age: Duration::days(7),
        }
    }
}

/// Stores lines a node shipped, in order, inside the caller's transaction; returns how
/// many. Every line must be of an instance placed on `node_id` or of a build it runs,
/// else nothing is stored and the error names the first stray one (a line naming neither
/// is the caller's to refuse: [`LogLine::source`]). Commit right after: from the insert
/// until commit, other appenders queue.
pub async fn append(
    tx: &mut PgConnection,
    node_id: Uuid,
    lines: &[LogLine],
) -> Result<u64, StoreError> {
    if lines.is_empty() {
        return Ok(0);
    }
    let mut instances: Vec<Uuid> = lines.iter().filter_map(|l| l.instance_id).collect();
    instances.sort_unstable();
    instances.dedup();
    let mut builds: Vec<Uuid> = lines.iter().filter_map(|l| l.build_id).collect();
    builds.sort_unstable();
    builds.dedup();
    let placed: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM instances WHERE id = ANY($1) AND node_id = $2")
            .bind(&instances)
            .bind(node_id)
            .fetch_all(&mut *tx)
            .await?;
    if let Some(stray) = instances.iter().find(|id| !placed.contains(id)) {
        return Err(StoreError::NotOnNode(*stray));
    }
    let running: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM builds WHERE id = ANY($1) AND node_id = $2")
            .bind(&builds)
            .bind(node_id)
            .fetch_all(&mut *tx)
            .await?;
    if let Some(stray) = builds.iter().find(|id| !running.contains(id)) {
        return Err(StoreError::BuildNotOnNode(*stray));
    }
    let instance_ids: Vec<Option<Uuid>> = lines.iter().map(|l| l.instance_id).collect();
    let build_ids: Vec<Option<Uuid>> = lines.iter().map(|l| l.build_id).collect();
    let ats: Vec<DateTime<Utc>> = lines.iter().map(|l| l.at).collect();
    let texts: Vec<String> = lines.iter().map(|l| storable(&l.line)).collect();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut *tx)
        .await?;
    // Rows are numbered in the order the SELECT yields them, which ORDER BY fixes to
    // the batch's order. A line is an instance's or a build's (checked above).
    let (stored, last): (i64, Option<i64>) = sqlx::query_as(
        "WITH new AS (
             INSERT INTO log_lines (instance_id, build_id, org_id, app_id, env_id, process, at, line)
             SELECT l.instance_id, l.build_id, coalesce(i.org_id, b.org_id),
                    coalesce(e.app_id, b.app_id), coalesce(i.env_id, b.env_id),
                    coalesce(i.process, $5), l.at, l.line
             FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[])
                  WITH ORDINALITY AS l (instance_id, build_id, at, line, n)
             LEFT JOIN instances i ON i.id = l.instance_id
             LEFT JOIN envs e ON e.id = i.env_id
             LEFT JOIN builds b ON b.id = l.build_id
             WHERE i.id IS NOT NULL OR b.id IS NOT NULL
             ORDER BY l.n
             RETURNING id
         )
         SELECT count(*), max(id) FROM new",
    )
    .bind(&instance_ids)
    .bind(&build_ids)
    .bind(&ats)
    .bind(&texts)
    .bind(BUILD_PROCESS)
    .fetch_one(&mut *tx)
    .await?;
    if let Some(last) = last {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(last.to_string())
            .execute(&mut *tx)
            .await?;
    }
    Ok(u64::try_from(stored).unwrap_or_default())
}

/// Postgres text cannot hold NUL; a console may print one. It becomes U+FFFD, so the
/// line is kept and shows that something was there.
fn storable(line: &str) -> String {
    line.replace('\0', "\u{fffd}")
}

/// `SELECT … WHERE <filter>`, conditions only for what the filter names, so the planner
/// picks the index of the narrowest one.
fn select(filter: &Filter) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::new(
        "SELECT id, instance_id, build_id, process, at, line FROM log_lines WHERE org_id = ",
    );
    q.push_bind(filter.org_id)
        .push(" AND app_id = ")
        .push_bind(filter.app_id);
    match filter.build_id {
        Some(build) => q.push(" AND build_id = ").push_bind(build),
        None => q.push(" AND build_id IS NULL"),
    };
    if let Some(env) = filter.env_id {
        q.push(" AND env_id = ").push_bind(env);
    }
    if let Some(instance) = filter.instance_id {
        q.push(" AND instance_id = ").push_bind(instance);
    }
    q
}

/// Lines with `id > after`, oldest first, at most `limit`: what a follower reads next.
pub async fn read(
    db: &mut PgConnection,
    filter: &Filter,
    after: i64,
    limit: i64,
) -> Result<Vec<Line>, StoreError> {
    let mut q = select(filter);
    q.push(" AND id > ")
        .push_bind(after)
        .push(" ORDER BY id LIMIT ")
        .push_bind(limit);
    Ok(q.build_query_as().fetch_all(db).await?)
}

/// The last `n` lines with `id <= through`, oldest first: where a reader starts.
pub async fn tail(
    db: &mut PgConnection,
    filter: &Filter,
    through: i64,
    n: i64,
) -> Result<Vec<Line>, StoreError> {
    let mut q = select(filter);
    q.push(" AND id <= ")
        .push_bind(through)
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(n);
    let mut lines: Vec<Line> = q.build_query_as().fetch_all(db).await?;
    lines.reverse();
    Ok(lines)
}

/// Whether the filter's instance belongs to its app (and env, when it names one).
pub async fn has_instance<'c>(
    db: impl PgExecutor<'c>,
    filter: &Filter,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM instances i JOIN envs e ON e.id = i.env_id
                        WHERE i.id = $1 AND i.org_id = $2 AND e.app_id = $3
                          AND ($4::uuid IS NULL OR i.env_id = $4))",
    )
    .bind(filter.instance_id)
    .bind(filter.org_id)
    .bind(filter.app_id)
    .bind(filter.env_id)
    .fetch_one(db)
    .await?)
}

/// The highest committed line id (0 when there is none). Every line committed later
/// has a higher id, so it is a cursor that misses nothing to come.
pub async fn head(db: &mut PgConnection) -> Result<i64, StoreError> {
    let (id,): (Option<i64>,) = sqlx::query_as("SELECT max(id) FROM log_lines")
        .fetch_one(db)
        .await?;
    Ok(id.unwrap_or(0))
}

/// What one [`prune`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub deleted: u64,
    /// Every line up to this id has been considered; pass it as `since` next time.
    pub through: i64,
}

/// Drops lines older than the retention's age, and the oldest lines of each instance
/// beyond its count, a statement for each rule. Only instances with lines newer than
/// `since` can have grown past the count, so only they are looked at (0 looks at all).
pub async fn prune(
    db: &mut PgConnection,
    keep: &Retention,
    since: i64,
) -> Result<Pruned, StoreError> {
    let through = head(db).await?;
    let aged = sqlx::query("DELETE FROM log_lines WHERE at < $1")
        .bind(Utc::now() - keep.max_age)
        .execute(&mut *db)
        .await?
        .rows_affected();
    let counted = sqlx::query(
        "WITH busy AS (SELECT DISTINCT instance_id FROM log_lines WHERE id > $2),
              cut AS (
                  SELECT b.instance_id,
                         (SELECT l.id FROM log_lines l WHERE l.instance_id = b.instance_id
                          ORDER BY l.id DESC OFFSET $1 LIMIT 1) AS id
                  FROM busy b)
         DELETE FROM log_lines l USING cut
         WHERE l.instance_id = cut.instance_id AND l.id <= cut.id",
    )
    .bind(keep.per_instance)
    .bind(since)
    .execute(&mut *db)
    .await?
    .rows_affected();
    Ok(Pruned {
        deleted: aged + counted,
        through,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_bytes_become_replacement_characters() {
        assert_eq!(storable("a\0b"), "a\u{fffd}b");
        assert_eq!(storable("plain"), "plain");
    }

    #[test]
    fn filters_add_only_the_conditions_they_name() {
        let app = Filter {
            org_id: Uuid::nil(),
            app_id: Uuid::nil(),
            env_id: None,
            instance_id: None,
            build_id: None,
        };
        let sql = select(&app).sql().as_str().to_owned();
        assert!(
            sql.ends_with("org_id = $1 AND app_id = $2 AND build_id IS NULL"),
            "{sql}"
        );
        let build = Filter {
            build_id: Some(Uuid::nil()),
            ..app
        };
        let sql = select(&build).sql().as_str().to_owned();
        assert!(sql.ends_with("AND build_id = $3"), "{sql}");
        let one = Filter {
            instance_id: Some(Uuid::nil()),
            ..app
        };
        let sql = select(&one).sql().as_str().to_owned();
        assert!(sql.ends_with("AND instance_id = $3"), "{sql}");
    }
}
