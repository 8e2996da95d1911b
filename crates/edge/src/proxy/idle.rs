//! How busy one client connection is, so that one with nothing in flight for too long is
//! closed (an HTTP/2 client's pings, answered by hyper, keep a connection alive, not busy,
//! and an HTTP/1.1 client may keep a connection open between requests for ever), and so
//! is one whose client stopped taking its answers: hyper polls an answer's body for its
//! next frame only once the client has room for it, so a body that handed out a frame and
//! was not asked again is waiting for the client, not for the instance.

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
/// A client connection whose client took none of its answers' frames for this long is
/// closed (a reader that reads nothing holds instance connections and buffers).
pub(super) const SLOW_READER: Duration = Duration::from_secs(60);

/// Requests in flight on one connection, and when the last one ended.
pub(super) struct Activity {
    in_flight: AtomicU32,
    since: Instant,
    /// Milliseconds after `since` when a request last ended.
    last: AtomicU64,
    /// Bodies whose last poll handed out a frame: waiting for the client to take it.
    waiting: AtomicU32,
    /// Milliseconds after `since` when a body last handed out a frame.
    sent: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            in_flight: AtomicU32::new(0),
            since: Instant::now(),
            last: AtomicU64::new(0),
            waiting: AtomicU32::new(0),
            sent: AtomicU64::new(0),
        })
    }

    /// Counts a request in flight until the guard (moved into its answer's body) drops.
    pub(super) fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    fn now(&self) -> u64 {
        self.since.elapsed().as_millis() as u64
    }

    /// How long ago the time stored in `at` was.
    fn ago(&self, at: &AtomicU64) -> Duration {
        let then = Duration::from_millis(at.load(Ordering::Acquire));
        self.since.elapsed().saturating_sub(then)
    }

    /// Resolves once nothing was in flight for `idle`, or the client took no frame of
    /// an answer for `slow`: why, in words.
    pub(super) async fn idle_for(&self, idle: Duration, slow: Duration) -> &'static str {
        loop {
            let wait = if self.waiting.load(Ordering::Acquire) > 0 {
                match slow.checked_sub(self.ago(&self.sent)) {
                    Some(left) if !left.is_zero() => left,
                    _ => return "the client took none of its answers",
                }
            } else if self.in_flight.load(Ordering::Acquire) > 0 {
                slow.min(idle)
            } else {
                match idle.checked_sub(self.ago(&self.last)) {
                    Some(left) if !left.is_zero() => left,
                    _ => return "nothing was in flight",
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
        a.last.store(a.now(), Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its request counted in flight until it is done.
pub(super) struct Tracked<B> {
    body: B,
    /// Held until the body is dropped (sent, or the client went away).
    busy: Busy,
    /// Its last poll handed out a frame (counted in [`Activity::waiting`]).
    waiting: bool,
}

impl<B> Tracked<B> {
    pub(super) fn new(body: B, busy: Busy) -> Tracked<B> {
        Tracked {
            body,
            busy,
            waiting: false,
        }
    }

    fn set_waiting(&mut self, waiting: bool) {
        if waiting == self.waiting {
            return;
        }
        self.waiting = waiting;
        let a = &self.busy.0;
        if waiting {
            a.sent.store(a.now(), Ordering::Release);
            a.waiting.fetch_add(1, Ordering::AcqRel);
        } else {
            a.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.set_waiting(false);
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        // A frame handed out: the next poll comes when the client has room for more.
        self.set_waiting(matches!(polled, Poll::Ready(Some(Ok(_)))));
        polled
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

    const IDLE: Duration = Duration::from_secs(300);
    const SLOW: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_with_nothing_in_flight() {
        let activity = Activity::new();
        let busy = activity.begin();
        let idle = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_for(IDLE, SLOW).await }
        });
        tokio::time::sleep(Duration::from_secs(900)).await;
        assert!(
            !idle.is_finished(),
            "an answer in flight, waiting for its instance, is not idleness"
        );
        drop(busy);
        let ended = Instant::now();
        assert_eq!(idle.await.unwrap(), "nothing was in flight");
        assert_eq!(ended.elapsed(), IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_takes_no_frame_is_let_go() {
        use http_body_util::{BodyExt, Full};
        let activity = Activity::new();
        let answer = Full::new(bytes::Bytes::from_static(b"hello"));
        let mut body = Tracked::new(answer, activity.begin());
        assert!(body.frame().await.is_some(), "a frame handed out");
        let idle = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_for(IDLE, SLOW).await }
        });
        let stalled = Instant::now();
        assert_eq!(idle.await.unwrap(), "the client took none of its answers");
        assert_eq!(stalled.elapsed(), SLOW);
        // Asked again (the client took it): not waiting for the client any more.
        assert!(body.frame().await.is_none());
        assert_eq!(activity.waiting.load(Ordering::Acquire), 0);
    }
}
