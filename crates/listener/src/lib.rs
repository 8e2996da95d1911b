//! The active listener turns committed events into NATS notifications, in sequence order.
//! Several may run: the one holding a Postgres advisory lock publishes, the others poll for
//! the lock and take over within [`TAKEOVER_POLL`] of the leader's connection closing. The
//! leader's cursor lives in Postgres and advances only after the bus has the notifications,
//! so a restart or takeover neither skips an event nor replays the whole log.

mod subjects;

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, Postgres};
use zeitwork_bus::{Bus, BusError, Notification};
use zeitwork_store::log::{self, Scope};
use zeitwork_store::{Store, StoreError};

pub use subjects::subjects;

/// The advisory lock key only the leader holds ("zwlisten").
pub const LOCK_KEY: i64 = 0x7a77_6c69_7374_656e;
/// How often a standby tries the lock.
pub const TAKEOVER_POLL: Duration = Duration::from_millis(250);
/// The leader's longest wait between log reads when no NOTIFY arrives.
const IDLE_POLL: Duration = Duration::from_secs(1);
const PAGE: i64 = 500;
/// The row in `cursors` this role advances.
pub const CURSOR: &str = "listener";

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl From<sqlx::Error> for ListenerError {
    fn from(e: sqlx::Error) -> ListenerError {
        ListenerError::Store(e.into())
    }
}

/// Runs until `shutdown` resolves: waits to lead, leads until an error, and starts over.
pub async fn run(store: Store, bus: impl Bus, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            result = lead_when_elected(&store, &bus) => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "listener lost its footing; standing by again");
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(TAKEOVER_POLL) => {}
        }
    }
}

async fn lead_when_elected(store: &Store, bus: &impl Bus) -> Result<(), ListenerError> {
    // A connection of its own: the lock lives as long as this session.
    let mut conn = zeitwork_store::leader::elect(store, LOCK_KEY, TAKEOVER_POLL).await?;
    tracing::info!("listener elected: publishing notifications");
    let mut wake = PgListener::connect_with(store.pool()).await?;
    wake.listen(log::CHANNEL).await?;
    let mut cursor = load_cursor(&mut conn).await?;
    loop {
        let page = log::read(&mut conn, Scope::All, cursor, PAGE).await?;
        let Some(last) = page.through else {
            // Woken by a commit, or polling in case a NOTIFY was missed.
            let _ = tokio::time::timeout(IDLE_POLL, wake.recv()).await;
            continue;
        };
        for event in &page.events {
            let note = Notification {
                kind: event.data.kind().to_owned(),
                id: event.data.entity_id().to_string(),
                seq: event.seq,
            };
            for subject in subjects(&mut conn, event).await? {
                bus.publish(&subject, &note).await?;
            }
        }
        bus.flush().await?;
        save_cursor(&mut conn, last).await?;
        cursor = last;
    }
}

async fn load_cursor(conn: &mut PgConnection) -> Result<i64, ListenerError> {
    sqlx::query("INSERT INTO cursors (name, seq) VALUES ($1, 0) ON CONFLICT DO NOTHING")
        .bind(CURSOR)
        .execute(&mut *conn)
        .await?;
    let (seq,): (i64,) =
        sqlx::query_as::<Postgres, (i64,)>("SELECT seq FROM cursors WHERE name = $1")
            .bind(CURSOR)
            .fetch_one(conn)
            .await?;
    Ok(seq)
}

async fn save_cursor(conn: &mut PgConnection, seq: i64) -> Result<(), ListenerError> {
    sqlx::query("UPDATE cursors SET seq = $2 WHERE name = $1")
        .bind(CURSOR)
        .bind(seq)
        .execute(conn)
        .await?;
    Ok(())
}
