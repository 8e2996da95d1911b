//! Appending to and reading from the event log.
//!
//! Ordering: appenders increment the single `event_counter` row. Its row lock is held
//! until the appending transaction commits, so a second appender reads the counter only
//! after the first one's events are visible. Sequence order therefore equals commit
//! order with no gaps, and a reader tailing `seq > cursor` can never skip an event
//! that commits late (the `bigserial` trap described in ARCHITECTURE.md).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;
use zeitwork_core::{Event, EventData};

use crate::{StoreError, project};

/// The Postgres channel that hears the highest committed seq after every append.
pub const CHANNEL: &str = "zw_events";

/// Appends one event and applies it to the projections, inside the caller's
/// transaction. Call it last in a transaction: from here to commit, appenders queue.
pub async fn append(
    tx: &mut PgConnection,
    org_id: Option<Uuid>,
    actor: &str,
    data: EventData,
) -> Result<Event, StoreError> {
    let (seq,): (i64,) = sqlx::query_as(
        "UPDATE event_counter SET last_seq = last_seq + 1 WHERE id = 1 RETURNING last_seq",
    )
    .fetch_one(&mut *tx)
    .await?;
    let payload = serde_json::to_value(&data).expect("event payloads serialize");
    let (at,): (DateTime<Utc>,) = sqlx::query_as(
        "INSERT INTO events (seq, at, org_id, kind, version, actor, payload)
         VALUES ($1, clock_timestamp(), $2, $3, 1, $4, $5) RETURNING at",
    )
    .bind(seq)
    .bind(org_id)
    .bind(data.kind())
    .bind(actor)
    .bind(&payload)
    .fetch_one(&mut *tx)
    .await?;
    let event = Event {
        seq,
        at,
        org_id,
        actor: actor.to_owned(),
        data,
    };
    project::apply(tx, &event).await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(seq.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(event)
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    at: DateTime<Utc>,
    org_id: Option<Uuid>,
    kind: String,
    actor: String,
    payload: serde_json::Value,
}

impl Row {
    fn into_event(self) -> Result<Event, (i64, String, serde_json::Error)> {
        match serde_json::from_value(self.payload) {
            Ok(data) => Ok(Event {
                seq: self.seq,
                at: self.at,
                org_id: self.org_id,
                actor: self.actor,
                data,
            }),
            Err(e) => Err((self.seq, self.kind, e)),
        }
    }
}

/// Which part of the log a reader may see.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// Every event (platform operators, internal consumers).
    All,
    /// Only the events of one org.
    Org(Uuid),
}

/// One page of the log: the events this build can read, and how far the page went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// Readable events, oldest first.
    pub events: Vec<Event>,
    /// The last seq the page covered, quarantined events included: the next page
    /// starts after it. `None` when there was nothing after the cursor.
    pub through: Option<i64>,
}

/// Events with `seq > after`, oldest first, at most `limit` rows. An event this build
/// cannot decode is quarantined (recorded once in `quarantined_events`, logged as an
/// error, counted in `zeitwork_events_quarantined_total`) and skipped: one bad payload
/// never stops the readers behind it.
pub async fn read(
    db: &mut PgConnection,
    scope: Scope,
    after: i64,
    limit: i64,
) -> Result<Page, StoreError> {
    let rows: Vec<Row> = match scope {
        Scope::All => {
            sqlx::query_as(
                "SELECT seq, at, org_id, kind, actor, payload FROM events
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *db)
            .await?
        }
        Scope::Org(org) => {
            sqlx::query_as(
                "SELECT seq, at, org_id, kind, actor, payload FROM events
                 WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(org)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *db)
            .await?
        }
    };
    let mut page = Page {
        events: Vec::with_capacity(rows.len()),
        through: rows.last().map(|r| r.seq),
    };
    for row in rows {
        match row.into_event() {
            Ok(event) => page.events.push(event),
            Err((seq, kind, e)) => quarantine(db, seq, &kind, &e).await?,
        }
    }
    Ok(page)
}

/// Records an undecodable event, alerting the first time it is met.
async fn quarantine(
    db: &mut PgConnection,
    seq: i64,
    kind: &str,
    error: &serde_json::Error,
) -> Result<(), StoreError> {
    let first = sqlx::query(
        "INSERT INTO quarantined_events (seq, kind, error) VALUES ($1, $2, $3)
         ON CONFLICT (seq) DO NOTHING",
    )
    .bind(seq)
    .bind(kind)
    .bind(error.to_string())
    .execute(&mut *db)
    .await?
    .rows_affected()
        == 1;
    if first {
        metrics::counter!("zeitwork_events_quarantined_total").increment(1);
        tracing::error!(
            seq, kind, %error,
            "event quarantined: this build cannot read it; readers skip it (see quarantined_events)"
        );
    }
    Ok(())
}

/// Every quarantined event: `(seq, kind, error)`, oldest first.
pub async fn quarantined(db: &mut PgConnection) -> Result<Vec<(i64, String, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT seq, kind, error FROM quarantined_events ORDER BY seq")
            .fetch_all(db)
            .await?,
    )
}

/// The highest committed sequence number.
pub async fn head(db: &mut PgConnection) -> Result<i64, StoreError> {
    let (seq,): (Option<i64>,) = sqlx::query_as("SELECT max(seq) FROM events")
        .fetch_one(db)
        .await?;
    Ok(seq.unwrap_or(0))
}

/// Takes the append lock now rather than at the first append, for commands that read
/// state and then decide what to append (placement, version numbers): no other change
/// can commit in between, so the decision is made on the latest state.
pub async fn lock(tx: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT last_seq FROM event_counter WHERE id = 1 FOR UPDATE")
        .execute(tx)
        .await?;
    Ok(())
}
