//! `zeitwork admin rebuild-projections`: throw the projections away and replay the log.

use std::collections::BTreeMap;

use sqlx::AssertSqlSafe;
use sqlx::PgConnection;

use crate::log::{self, Scope};
use crate::{Store, StoreError, project};

/// Every projection table; the log, cursors, idempotency records, instance logs
/// (`log_lines`), open ACME challenges (`acme_challenges`) and dashboard `sessions` are
/// not projections, so a rebuild leaves them alone.
pub const PROJECTIONS: &[&str] = &[
    "orgs",
    "org_quotas",
    "users",
    "tokens",
    "apps",
    "app_repositories",
    "webhook_deliveries",
    "envs",
    "regions",
    "nodes",
    "join_tokens",
    "releases",
    "deployments",
    "platform_labels",
    "process_types",
    "instances",
    "routes",
    "domains",
    "secrets",
    "secret_versions",
    "builds",
    "certificates",
    "acme_accounts",
    "exec_grants",
];

const PAGE: i64 = 1000;

/// Replays the whole log into empty projections in one transaction; returns the
/// number of events applied. Appenders wait (on the counter row) until it commits,
/// so the rebuilt tables match the log exactly. Rows are deleted rather than truncated:
/// TRUNCATE is not MVCC-safe, and a running edge whose snapshot predates the commit
/// would read empty tables (no routes, no certificates) instead of the old rows.
pub async fn rebuild(store: &Store) -> Result<i64, StoreError> {
    let mut tx = store.begin().await?;
    log::lock(&mut tx).await?;
    // Children before the tables they reference.
    for table in PROJECTIONS.iter().rev() {
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&mut *tx)
            .await?;
    }
    let mut after = 0;
    let mut applied = 0;
    loop {
        let page = log::read(&mut tx, Scope::All, after, PAGE).await?;
        let Some(through) = page.through else { break };
        after = through;
        for event in &page.events {
            project::apply(&mut tx, event).await?;
            applied += 1;
        }
    }
    tx.commit().await?;
    Ok(applied)
}

/// Every projection row as JSON, in a stable order: two snapshots are equal exactly
/// when the tables hold the same data.
pub async fn snapshot(
    db: &mut PgConnection,
) -> Result<BTreeMap<&'static str, serde_json::Value>, StoreError> {
    let mut out = BTreeMap::new();
    for table in PROJECTIONS {
        let (rows,): (serde_json::Value,) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT coalesce(json_agg(t ORDER BY t::text), '[]'::json) FROM {table} t"
        )))
        .fetch_one(&mut *db)
        .await?;
        out.insert(*table, rows);
    }
    Ok(out)
}
