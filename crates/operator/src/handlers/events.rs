//! The event log over HTTP: pages for scripts, Server-Sent Events for `zeitwork events -f`.
//! Org tokens see only their org's events.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as Sse, KeepAlive, Sse as SseResponse};
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use zeitwork_api_types::{EventPage, EventQuery, PublicEvent};
use zeitwork_core::Event;
use zeitwork_store::log::{self, Scope};

use crate::auth::Auth;
use crate::body::Params;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

fn scope(auth: &Auth) -> ApiResult<Scope> {
    Ok(auth.readable_orgs()?.map_or(Scope::All, Scope::Org))
}

/// The event as readers see it (secret material withheld).
fn public(event: &Event) -> PublicEvent {
    serde_json::from_value(event.public()).expect("public events have the wire shape")
}

/// `after`, checked: a seq is never negative.
fn after(q: &EventQuery) -> ApiResult<i64> {
    match q.after {
        Some(a) if a < 0 => Err(ApiError::invalid(
            "after",
            "after must be a non-negative integer",
        )),
        a => Ok(a.unwrap_or(0)),
    }
}

pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Params(q): Params<EventQuery>,
) -> ApiResult<Json<EventPage>> {
    let after = after(&q)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let mut db = s.store.pool().acquire().await?;
    let page = log::read(&mut db, scope(&auth)?, after, limit).await?;
    let next = page.through.unwrap_or(after);
    let events = page.events.iter().map(public).collect();
    let head = log::head(&mut db).await?;
    Ok(Json(EventPage { events, next, head }))
}

struct Tail {
    state: AppState,
    scope: Scope,
    cursor: i64,
    buffer: VecDeque<Event>,
    head: watch::Receiver<i64>,
}

pub async fn stream(
    State(s): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Params(q): Params<EventQuery>,
) -> ApiResult<SseResponse<impl Stream<Item = Result<Sse, Infallible>>>> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let cursor = match resume {
        Some(seq) => seq,
        None => after(&q)?,
    };
    let follow_for = s.config.follow_for;
    let tail = Tail {
        head: s.head.clone(),
        state: s,
        scope: scope(&auth)?,
        cursor,
        buffer: VecDeque::new(),
    };
    let events = futures::stream::unfold(tail, |mut t| async move {
        loop {
            if let Some(event) = t.buffer.pop_front() {
                let sse = Sse::default()
                    .id(event.seq.to_string())
                    .event(event.data.kind())
                    .json_data(public(&event))
                    .expect("events serialize");
                return Some((Ok(sse), t));
            }
            if let Ok(mut db) = t.state.store.pool().acquire().await
                && let Ok(page) = log::read(&mut db, t.scope, t.cursor, MAX_LIMIT).await
                && let Some(through) = page.through
            {
                t.cursor = through;
                t.buffer.extend(page.events);
                continue;
            }
            // Woken by the next commit; the timeout covers a lost notification or a
            // database that was briefly unreachable.
            if let Ok(Err(_)) = tokio::time::timeout(Duration::from_secs(5), t.head.changed()).await
            {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    let events = events.take_until(tokio::time::sleep(follow_for));
    Ok(SseResponse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
