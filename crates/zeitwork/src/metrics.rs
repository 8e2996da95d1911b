//! `--metrics-addr` of the roles that serve no API of their own (agent, edge): the
//! process-wide Prometheus recorder (the operator's) served at `http://ADDR/metrics`.
//! Inside `zeitwork up` every role's metrics are on the operator's /metrics instead.

use anyhow::Context;

/// Installs the metrics recorder and serves it in the background.
pub async fn serve(addr: &str) -> anyhow::Result<()> {
    zeitwork_operator::metrics::handle();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr} for metrics"))?;
    tracing::info!(address = %listener.local_addr()?, "metrics at /metrics");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async { zeitwork_operator::metrics::render() }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "serving metrics");
        }
    });
    Ok(())
}
