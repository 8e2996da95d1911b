//! How busy one client connection is, so that one with nothing in flight for too long is
//! closed: an HTTP/2 client's pings (answered by hyper) keep a connection alive, not busy,
//! and an HTTP/1.1 client may keep a connection open between requests for ever.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// A client connection with no request in flight (its answers' bodies included) for this
/// long is closed.
pub(super) const IDLE_CONNECTION: Duration = Duration::from_secs(5 * 60);

/// Requests in flight on one connection, and when the last one ended.
pub(super) struct Activity {
    in_flight: AtomicU32,
    since: Instant,
    /// Milliseconds after `since` when a request last ended.
    last: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            in_flight: AtomicU32::new(0),
            since: Instant::now(),
            last: AtomicU64::new(0),
        })
    }

    /// Counts a request in flight until the guard (moved into its answer's body) drops.
    pub(super) fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// Resolves once nothing was in flight for `idle`.
    pub(super) async fn idle_for(&self, idle: Duration) {
        loop {
            let wait = if self.in_flight.load(Ordering::Acquire) > 0 {
                idle
            } else {
                let last = Duration::from_millis(self.last.load(Ordering::Acquire));
                let quiet = self.since.elapsed().saturating_sub(last);
                match idle.checked_sub(quiet) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request in flight (see [`Activity::begin`]).
pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        a.last
            .store(a.since.elapsed().as_millis() as u64, Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its request counted in flight until it is done.
pub(super) struct Tracked<B> {
    pub body: B,
    /// Held until the body is dropped (sent, or the client went away).
    pub _busy: Busy,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_with_nothing_in_flight() {
        let activity = Activity::new();
        let busy = activity.begin();
        let idle = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_for(Duration::from_secs(60)).await }
        });
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(
            !idle.is_finished(),
            "a long answer in flight is not idleness"
        );
        drop(busy);
        let ended = Instant::now();
        idle.await.unwrap();
        assert_eq!(ended.elapsed(), Duration::from_secs(60));
    }
}
