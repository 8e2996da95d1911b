//! Following one kind of change the way every snapshot-keeping consumer does (the edge's
//! routing table, the certificate store): re-read Postgres when a notification on the
//! subject arrives (a burst debounced into one read) and on a randomized timer, the safety
//! net for lost notifications and the only source without NATS.

use std::pin::Pin;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use rand::Rng;

use crate::{NatsBus, Notification};

/// How long a notification waits for the rest of its burst (one deploy writes several
/// events) before the read starts.
const DEBOUNCE: Duration = Duration::from_millis(5);

type Notes = Pin<Box<dyn Stream<Item = Notification> + Send>>;

/// Why to read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Notifications arrived; the newest seq among them.
    Note(i64),
    /// The timer ran out.
    Timer,
}

pub struct Follow {
    notes: Notes,
    every: Duration,
    /// What is kept current, for the log (`the routing table`).
    what: &'static str,
}

impl Follow {
    /// Subscribed now, so nothing committed after a first read that follows goes unheard.
    /// Without a bus, or when subscribing fails, the timer alone keeps `what` current.
    pub async fn subscribe(
        bus: Option<&NatsBus>,
        subject: &str,
        every: Duration,
        what: &'static str,
    ) -> Follow {
        let notes: Notes = match bus.map(|b| b.subscribe(subject)) {
            None => Box::pin(futures::stream::pending()),
            Some(subscribing) => match subscribing.await {
                Ok(notes) => Box::pin(notes),
                Err(e) => {
                    tracing::warn!(error = %e, "{what} follows Postgres by polling only");
                    Box::pin(futures::stream::pending())
                }
            },
        };
        Follow { notes, every, what }
    }

    /// Waits for the next reason to read again.
    pub async fn next(&mut self) -> Wake {
        loop {
            tokio::select! {
                note = self.notes.next() => {
                    let Some(note) = note else {
                        let what = self.what;
                        tracing::warn!("the NATS subscription ended; {what} follows Postgres by polling only");
                        self.notes = Box::pin(futures::stream::pending());
                        continue;
                    };
                    tokio::time::sleep(DEBOUNCE).await;
                    let mut newest = note.seq;
                    while let Some(Some(note)) = self.notes.next().now_or_never() {
                        newest = newest.max(note.seq);
                    }
                    return Wake::Note(newest);
                }
                () = tokio::time::sleep(jittered(self.every)) => return Wake::Timer,
            }
        }
    }
}

/// ±25 %, so consumers started together do not all ask Postgres at the same moment.
pub fn jittered(every: Duration) -> Duration {
    every.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_vary_within_a_quarter() {
        let every = Duration::from_secs(4);
        let periods: Vec<Duration> = (0..100).map(|_| jittered(every)).collect();
        assert!(
            periods
                .iter()
                .all(|p| *p >= every.mul_f64(0.75) && *p < every.mul_f64(1.25))
        );
        assert!(periods.iter().any(|p| *p != periods[0]));
    }

    #[tokio::test]
    async fn without_a_bus_only_the_timer_wakes() {
        let every = Duration::from_millis(20);
        let mut follow = Follow::subscribe(None, "zw.v1.x", every, "x").await;
        assert_eq!(follow.next().await, Wake::Timer);
    }
}
