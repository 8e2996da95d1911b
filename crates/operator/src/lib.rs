//! The operator: Zeitwork's control plane API. It validates commands, appends events
//! (which update the projections in the same transaction) and answers from the
//! projections. It never runs workloads itself.

pub mod api;
pub mod auth;
pub mod autoscale;
pub mod body;
mod builds;
pub mod crypto;
pub mod dashboard;
mod desired;
pub mod dns;
pub mod error;
pub mod exec;
mod handlers;
mod hostnames;
pub mod metrics;
pub mod monitor;
pub mod node_scope;
pub mod openapi;
mod paging;
mod placement;
pub mod quota;
pub mod registry;
pub mod registry_gc;
mod relocate;
mod repositories;
mod rollout;
mod scaling;
pub mod scope;
pub mod session;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use sqlx::postgres::PgListener;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use zeitwork_store::{Store, StoreError, log};

pub use api::Endpoint;
pub use crypto::SecretBox;
pub use error::ApiError;
pub use state::{AppState, Config};

/// Every documented endpoint, as mounted.
pub fn endpoints() -> Vec<Endpoint> {
    handlers::api().into_parts().1
}

/// Builds the HTTP application and starts the tasks that follow committed events and
/// log lines, that prune old log lines, and (with a platform registry) that collect its
/// garbage.
pub async fn app(store: Store, secrets: SecretBox, config: Config) -> Result<Router, StoreError> {
    let mut db = store.pool().acquire().await?;
    let (tx, head) = watch::channel(log::head(&mut db).await?);
    let (logs_tx, logs) = watch::channel(zeitwork_store::logs::head(&mut db).await?);
    drop(db);
    tokio::spawn(follow_head(store.clone(), tx, logs_tx));
    tokio::spawn(handlers::logs::prune_forever(store.clone()));
    tokio::spawn(body::prune_forever(store.clone()));
    if let Some(registry) = &config.registry {
        tokio::spawn(registry_gc::run(
            store.clone(),
            registry.clone(),
            config.registry_gc,
        ));
    }
    metrics::handle();
    let state = AppState {
        store,
        secrets,
        config: Arc::new(config),
        head,
        logs,
        execs: crate::exec::Rendezvous::default(),
    };
    let (router, _) = handlers::api().into_parts();
    let request_id = http::HeaderName::from_static("x-request-id");
    Ok(router
        .fallback(dashboard::fallback)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state))
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Publishes the committed head seq of the event log, and the highest committed log
/// line id (both from Postgres NOTIFY), to the streams that follow them; reconnects
/// with back-off when the database goes away.
async fn follow_head(store: Store, head: watch::Sender<i64>, logs: watch::Sender<i64>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match PgListener::connect_with(store.pool()).await {
            Ok(mut listener) => {
                let channels = [log::CHANNEL, zeitwork_store::logs::CHANNEL];
                if listener.listen_all(channels).await.is_ok() {
                    backoff = Duration::from_millis(200);
                    // Anything committed while we were away wakes the streams once.
                    head.send_modify(|h| *h += 0);
                    logs.send_modify(|h| *h += 0);
                    while let Ok(n) = listener.recv().await {
                        let head = if n.channel() == log::CHANNEL {
                            &head
                        } else {
                            &logs
                        };
                        if let Ok(seq) = n.payload().parse::<i64>() {
                            head.send_if_modified(|h| {
                                let newer = seq > *h;
                                *h = (*h).max(seq);
                                newer
                            });
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for events; retrying"),
        }
        if head.is_closed() && logs.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
