//! The platform hostnames the operator hands out to envs and deployments (labels built
//! by `zeitwork_core::platform_host`, held in the store's `platform_labels`): one that
//! DNS cannot carry, or that another env or deployment already holds, is refused.

use sqlx::PgConnection;
use zeitwork_core::platform_host;
use zeitwork_store::{log, read};

use crate::error::{ApiError, ApiResult};

/// Refuses `label` (made from the names the caller sent as `field`) when DNS cannot
/// carry it under `base_domain` or another env or deployment holds it. Takes the
/// event-log lock, so the answer holds until the caller's transaction commits.
pub(crate) async fn ensure_free(
    db: &mut PgConnection,
    label: &str,
    base_domain: &str,
    field: &str,
) -> ApiResult<()> {
    let host = platform_host::host(label, base_domain);
    platform_host::check(label, base_domain).map_err(|e| {
        ApiError::invalid(
            field,
            format!("the hostname {host} this makes {e}; choose a shorter name"),
        )
    })?;
    log::lock(db).await?;
    if read::label_holder(&mut *db, label).await?.is_some() {
        return Err(ApiError::conflict(
            field,
            format!("the hostname {host} is already taken by another app; choose another name"),
        ));
    }
    Ok(())
}

/// Whether `label` is free, under the event-log lock (for labels the operator picks
/// itself, such as deployment slugs, which it draws again when taken).
pub(crate) async fn is_free(db: &mut PgConnection, label: &str) -> ApiResult<bool> {
    log::lock(db).await?;
    Ok(read::label_holder(&mut *db, label).await?.is_none())
}
