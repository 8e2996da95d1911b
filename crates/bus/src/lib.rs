//! Notifications say "kind X, id Y changed, up to seq N" and nothing more: whoever hears
//! one pulls the change from Postgres. So a lost notification costs latency, never
//! correctness (the periodic resync catches it), and NATS never holds tenant state.

mod follow;
mod memory;
mod nats;

use std::future::Future;

use serde::{Deserialize, Serialize};

pub use follow::{Follow, Wake, jittered};
pub use memory::MemoryBus;
pub use nats::NatsBus;

/// Subjects start with this, versioned so the format can change.
pub const PREFIX: &str = "zw.v1";

/// The body of every notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The event kind (`deployment_created`, …).
    pub kind: String,
    /// The entity the event is about.
    pub id: String,
    /// The event's position in the log; consumers pull everything after their cursor.
    pub seq: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}: {reason} (check NATS_URL)")]
    Connect { url: String, reason: String },
    #[error("publishing to NATS failed: {0}")]
    Publish(String),
    #[error("subscribing to {subject} failed: {reason}")]
    Subscribe { subject: String, reason: String },
}

/// Where notifications go. Publishing is at-least-once from the listener's point of view:
/// it returns only once the bus has accepted the message.
pub trait Bus: Send + Sync {
    fn publish(
        &self,
        subject: &str,
        note: &Notification,
    ) -> impl Future<Output = Result<(), BusError>> + Send;
    /// Waits until everything published so far has reached the bus.
    fn flush(&self) -> impl Future<Output = Result<(), BusError>> + Send;
}

fn encode(note: &Notification) -> bytes::Bytes {
    serde_json::to_vec(note)
        .expect("notifications serialize")
        .into()
}

/// Decodes a received notification body.
pub fn decode(body: &[u8]) -> Option<Notification> {
    serde_json::from_slice(body).ok()
}
