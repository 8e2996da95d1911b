//! Active checks: every backend is connected to on a timer, each on its own task so one
//! slow backend does not delay the others' verdicts.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::Inner;
use super::backend::Source;
use crate::proxy_v2::Header;

/// Checks every backend until dropped (aborting it stops every check).
pub(super) async fn run(inner: Arc<Inner>) {
    let mut checks = JoinSet::new();
    for index in 0..inner.backends.len() {
        checks.spawn(check_loop(inner.clone(), index));
    }
    while checks.join_next().await.is_some() {}
}

async fn check_loop(inner: Arc<Inner>, index: usize) {
    let health = inner.config.health;
    let backend = &inner.backends[index];
    let mut ticker = tokio::time::interval(health.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let ok = tokio::time::timeout(health.timeout, check(&inner, backend.addr))
            .await
            .is_ok_and(|r| r.is_ok());
        backend.record(ok, Source::Check, &health);
    }
}

/// A TCP connect; backends that expect a PROXY header get a LOCAL one, which the
/// protocol provides for exactly this, so checks do not show up as bad clients.
async fn check(inner: &Inner, addr: std::net::SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    if inner.config.proxy_protocol {
        stream.write_all(&Header::Local.encode()).await?;
    }
    stream.shutdown().await
}
