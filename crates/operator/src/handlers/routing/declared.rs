//! Routes declared in `zeitwork.toml` (`[[routes]]`), applied by every deploy and
//! rollback in the same transaction as the deployment: a declared route the release
//! still declares is kept (a `tcp` route keeps its port), one it no longer declares is
//! removed, a changed one is replaced, a new one is recorded under the same rules as
//! through the API. Routes made through the API are never touched, and a declared host
//! one of them already routes is a conflict naming the manifest's field.

use zeitwork_core::manifest::Route as Declared;
use zeitwork_core::{EventData, Manifest};
use zeitwork_store::model::Route;
use zeitwork_store::{Tx, log, read};

use super::{RouteSpec, record};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::scope::EnvScope;
use crate::state::AppState;

/// Makes the env's declared routes those `manifest` declares.
pub(crate) async fn apply_declared(
    tx: &mut Tx,
    s: &AppState,
    auth: &Auth,
    scope: &EnvScope,
    manifest: &Manifest,
) -> ApiResult<()> {
    let existing = read::routes(&mut **tx, scope.env.id).await?;
    let mut wanted: Vec<(usize, RouteSpec)> = manifest
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| (i, spec(manifest, r)))
        .collect();
    for route in existing.iter().filter(|r| r.declared) {
        match wanted.iter().position(|(_, w)| same(w, route)) {
            Some(kept) => {
                wanted.remove(kept);
            }
            None => {
                let gone = EventData::RouteDeleted { route_id: route.id };
                log::append(tx, Some(scope.org.id), &auth.actor(), gone).await?;
            }
        }
    }
    for (i, spec) in wanted {
        let at = format!("manifest.routes[{i}].");
        let taken = existing.iter().find(|r| {
            !r.declared
                && r.host
                    .as_deref()
                    .zip(spec.host.as_ref())
                    .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b.as_str()))
        });
        if let Some(taken) = taken {
            return Err(ApiError::conflict(
                &format!("{at}host"),
                format!(
                    "{} is already routed by route {} (made with `zeitwork routes add`); remove one of them",
                    spec.host.as_ref().map_or("", |h| h.as_str()),
                    taken.id
                ),
            ));
        }
        record(tx, s, auth, scope, &spec, &at).await?;
    }
    Ok(())
}

/// The route a manifest declares (its port defaults to the process's; the manifest was
/// checked, so there is one).
fn spec(manifest: &Manifest, r: &Declared) -> RouteSpec {
    let process_port = manifest.processes.get(&r.process).and_then(|p| p.port);
    RouteSpec {
        host: r.host.clone(),
        process: r.process.clone(),
        mode: r.mode,
        port: r.port.or(process_port).unwrap_or_default(),
        proxy_protocol: r.proxy_protocol,
        policy: r.policy.clone(),
        declared: true,
    }
}

/// Whether `route` is already what `spec` declares.
fn same(spec: &RouteSpec, route: &Route) -> bool {
    let host = match (&spec.host, &route.host) {
        (Some(a), Some(b)) => a.as_str().eq_ignore_ascii_case(b),
        (None, None) => true,
        _ => false,
    };
    host && spec.process.as_str() == route.process
        && spec.mode == route.mode
        && i32::from(spec.port) == route.port
        && spec.proxy_protocol == route.proxy_protocol
        && spec.policy == route.policy
}
