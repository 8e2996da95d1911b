//! Instance logs over HTTP: node agents ship batches of console lines in, people read an
//! app's recent lines or follow them live (Server-Sent Events, as `zeitwork logs -f`).
//! Logs are bookkeeping, not events: see `zeitwork_store::logs`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event as Sse, KeepAlive, Sse as SseResponse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;
use zeitwork_api_types::LogTail;
use zeitwork_core::Name;
use zeitwork_core::node::LogBatch;
use zeitwork_store::logs::{self, Filter, Line, Retention};
use zeitwork_store::{Store, read};

use crate::body::Body;
use crate::error::{ApiError, ApiResult, field};
use crate::node_scope::{Agent, OnNode};
use crate::scope::{InApp, InEnv, Reader};
use crate::state::AppState;

/// Lines shown when the reader does not say how many.
const DEFAULT_TAIL: i64 = 100;
/// The most a reader may ask for at once (also what each instance keeps by default).
const MAX_TAIL: i64 = 10_000;
/// Lines a follower reads per query.
const PAGE: i64 = 1000;
/// Lines one batch may carry; a node with more sends several batches.
const MAX_BATCH: usize = 5000;
/// How often old lines are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The query of a log read, parsed strictly: an unknown or repeated parameter is an
/// error naming it, so a typo (`tial=5`) is not silently ignored.
#[derive(Debug, PartialEq, Eq)]
struct LogQuery {
    env: Option<String>,
    instance: Option<Uuid>,
    tail: i64,
    follow: bool,
    /// Resume after this line id (as `Last-Event-ID`).
    after: Option<i64>,
}

impl LogQuery {
    /// The request's query, parsed strictly.
    fn from_uri(uri: &Uri) -> ApiResult<LogQuery> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()).with_field("query")
        })?;
        LogQuery::parse(&pairs)
    }

    fn parse(pairs: &[(String, String)]) -> ApiResult<LogQuery> {
        let mut q = LogQuery {
            env: None,
            instance: None,
            tail: DEFAULT_TAIL,
            follow: false,
            after: None,
        };
        for (i, (key, value)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(k, _)| k == key) {
                return Err(ApiError::invalid(key, format!("{key} is given twice")));
            }
            match key.as_str() {
                "env" => q.env = Some(field("env", Name::parse(value))?.to_string()),
                "instance" => {
                    q.instance = Some(value.parse().map_err(|_| {
                        ApiError::invalid("instance", "instance must be an instance id (a UUID)")
                    })?);
                }
                "tail" => {
                    q.tail = value
                        .parse()
                        .ok()
                        .filter(|n| (0..=MAX_TAIL).contains(n))
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "tail",
                                format!("tail must be a whole number from 0 to {MAX_TAIL}"),
                            )
                        })?;
                }
                "follow" => {
                    q.follow = match value.as_str() {
                        "1" | "true" => true,
                        "0" | "false" => false,
                        _ => return Err(ApiError::invalid("follow", "follow must be 0 or 1")),
                    };
                }
                "after" => {
                    q.after = Some(value.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
                        ApiError::invalid("after", "after must be a log line id")
                    })?);
                }
                other => {
                    return Err(ApiError::invalid(
                        other,
                        format!(
                            "unknown query parameter `{other}`; expected env, instance, tail, follow or after"
                        ),
                    ));
                }
            }
        }
        Ok(q)
    }
}

/// `GET …/apps/{app}/logs`: the last `tail` lines, oldest first, or with `follow=1` those
/// and then every new line as it commits.
pub async fn list(
    State(s): State<AppState>,
    scope: InApp<Reader>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let q = LogQuery::from_uri(&uri)?;
    let filter = filter(&s, &scope, &q).await?;
    lines(s, filter, &q, &headers, None).await
}

/// `GET …/envs/{env}/builds/{id}/logs`: the build's last `tail` lines, or with `follow=1`
/// those and then every new one until the build ends (an `end` event with its state).
pub async fn build(
    State(s): State<AppState>,
    InEnv { scope, .. }: InEnv<Reader>,
    Path(p): Path<super::builds::BuildPath>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let q = LogQuery::from_uri(&uri)?;
    if let Some(key) = [("env", q.env.is_some()), ("instance", q.instance.is_some())]
        .into_iter()
        .find_map(|(key, given)| given.then_some(key))
    {
        return Err(ApiError::invalid(
            key,
            format!("a build's log takes tail and follow only, not {key}"),
        ));
    }
    let id = super::builds::build_id(&p)?;
    read::build(s.store.pool(), id)
        .await?
        .filter(|b| b.env_id == scope.env.id)
        .ok_or_else(|| ApiError::not_found("build"))?;
    let filter = Filter {
        org_id: scope.org.id,
        app_id: scope.app.id,
        env_id: Some(scope.env.id),
        instance_id: None,
        build_id: Some(id),
    };
    lines(s, filter, &q, &headers, Some(id)).await
}

/// The lines `filter` selects: the tail, or followed (until `build` ends, when given).
async fn lines(
    s: AppState,
    filter: Filter,
    q: &LogQuery,
    headers: &HeaderMap,
    build: Option<Uuid>,
) -> ApiResult<Response> {
    let mut db = s.store.pool().acquire().await?;
    if !q.follow {
        let lines = logs::tail(&mut db, &filter, i64::MAX, q.tail).await?;
        return Ok(Json(LogTail { lines }).into_response());
    }
    // A reconnecting client resumes after the last line it saw; a new one starts with
    // the tail up to the head, then follows from the head, so nothing falls in between.
    let resume = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID", "Last-Event-ID must be a log line id")
                })
        })
        .transpose()?
        .or(q.after);
    let (cursor, first) = match resume {
        Some(id) => (id, Vec::new()),
        None => {
            let head = logs::head(&mut db).await?;
            (head, logs::tail(&mut db, &filter, head, q.tail).await?)
        }
    };
    drop(db);
    let follow_for = s.config.follow_for;
    let follow = Follow {
        wake: s.logs.clone(),
        state: s,
        filter,
        cursor,
        buffer: first.into(),
        marked: false,
        build,
        ended: false,
    };
    let lines = follow.stream().take_until(tokio::time::sleep(follow_for));
    Ok(SseResponse::new(lines)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The reader's filter; a named env or instance must exist in the app (a typo answers
/// 404 instead of an empty stream that waits forever).
async fn filter(s: &AppState, scope: &InApp<Reader>, q: &LogQuery) -> ApiResult<Filter> {
    let env_id = match &q.env {
        None => None,
        Some(name) => Some(
            read::env(s.store.pool(), scope.app.id, name)
                .await?
                .ok_or_else(|| ApiError::not_found("env"))?
                .id,
        ),
    };
    let filter = Filter {
        org_id: scope.org.id,
        app_id: scope.app.id,
        env_id,
        instance_id: q.instance,
        build_id: None,
    };
    if q.instance.is_some() && !logs::has_instance(s.store.pool(), &filter).await? {
        return Err(ApiError::not_found("instance"));
    }
    Ok(filter)
}

struct Follow {
    state: AppState,
    filter: Filter,
    cursor: i64,
    buffer: VecDeque<Line>,
    /// Whether the id-only event that marks the start cursor was sent.
    marked: bool,
    wake: watch::Receiver<i64>,
    /// The build whose end ends the stream.
    build: Option<Uuid>,
    /// Whether the `end` event was sent.
    ended: bool,
}

impl Follow {
    fn stream(self) -> impl Stream<Item = Result<Sse, Infallible>> {
        futures::stream::unfold(self, |mut f| async move {
            loop {
                if let Some(line) = f.buffer.pop_front() {
                    let sse = Sse::default()
                        .id(line.id.to_string())
                        .event("log")
                        .json_data(&line)
                        .expect("log lines serialize");
                    return Some((Ok(sse), f));
                }
                if !f.marked {
                    // After the tail, an event with only an id: a client that reconnects
                    // before any new line resumes from here, not from a fresh tail.
                    f.marked = true;
                    return Some((Ok(Sse::default().id(f.cursor.to_string())), f));
                }
                if f.ended {
                    return None;
                }
                // A build's end is read before its lines: its node ships every line
                // before it reports the end, so an ended build with no line after the
                // cursor has none to come.
                let end = match f.build {
                    Some(id) => match read::build(f.state.store.pool(), id).await {
                        Ok(Some(b)) => b.state.is_final().then_some(b),
                        _ => None,
                    },
                    None => None,
                };
                if let Ok(mut db) = f.state.store.pool().acquire().await
                    && let Ok(page) = logs::read(&mut db, &f.filter, f.cursor, PAGE).await
                    && let Some(last) = page.last()
                {
                    f.cursor = last.id;
                    f.buffer.extend(page);
                    continue;
                }
                if let Some(b) = end {
                    f.ended = true;
                    let sse = Sse::default()
                        .event("end")
                        .json_data(
                            json!({ "state": b.state, "reason": b.reason, "image": b.image }),
                        )
                        .expect("JSON serializes");
                    return Some((Ok(sse), f));
                }
                // Woken by the next committed batch; the timeout covers a lost
                // notification or a database that was briefly unreachable.
                if let Ok(Err(_)) =
                    tokio::time::timeout(Duration::from_secs(5), f.wake.changed()).await
                {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        })
    }
}

/// `POST /api/v1/nodes/{name}/logs`: a node ships a batch of its instances' lines, with
/// its own credential (another node's, or any token, gets 403). Every line must be of
/// an instance placed on that node, else none is stored.
pub async fn ingest(
    State(s): State<AppState>,
    on: OnNode<Agent>,
    Body(batch): Body<LogBatch>,
) -> ApiResult<StatusCode> {
    if batch.lines.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "a batch may carry at most {MAX_BATCH} lines, this one has {}; send several",
                batch.lines.len()
            ),
        )
        .with_field("lines"));
    }
    if let Some(i) = batch.lines.iter().position(|l| l.source().is_none()) {
        return Err(ApiError::invalid(
            format!("lines[{i}]"),
            "a line names exactly one of instance_id and build_id",
        ));
    }
    let mut tx = s.store.begin().await?;
    logs::append(&mut tx, on.node.id, &batch.lines).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Prunes instance logs every minute for as long as the operator runs. A failed round
/// is logged and the next one catches up: pruning late only costs disk.
pub async fn prune_forever(store: Store) {
    let keep = Retention::default();
    let mut since = 0;
    let mut every = tokio::time::interval(PRUNE_EVERY);
    loop {
        every.tick().await;
        let pruned = match store.pool().acquire().await {
            Ok(mut db) => logs::prune(&mut db, &keep, since).await,
            Err(e) => Err(e.into()),
        };
        match pruned {
            Ok(p) => {
                since = p.through;
                if p.deleted > 0 {
                    tracing::debug!(deleted = p.deleted, "pruned instance logs");
                }
            }
            Err(e) => tracing::warn!(error = %e, "pruning instance logs failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &[(&str, &str)]) -> ApiResult<LogQuery> {
        let pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        LogQuery::parse(&pairs)
    }

    #[test]
    fn queries_default_and_parse() {
        assert_eq!(
            parse(&[]).unwrap(),
            LogQuery {
                env: None,
                instance: None,
                tail: 100,
                follow: false,
                after: None,
            }
        );
        let id = Uuid::now_v7();
        let q = parse(&[
            ("env", "staging"),
            ("instance", &id.to_string()),
            ("tail", "0"),
            ("follow", "1"),
        ])
        .unwrap();
        assert_eq!(
            (q.env.as_deref(), q.instance, q.tail, q.follow),
            (Some("staging"), Some(id), 0, true)
        );
    }

    #[test]
    fn bad_queries_name_the_parameter() {
        for (query, field) in [
            (&[("tial", "5")][..], "tial"),
            (&[("tail", "10001")], "tail"),
            (&[("tail", "-1")], "tail"),
            (&[("instance", "abc")], "instance"),
            (&[("follow", "yes")], "follow"),
            (&[("env", "Prod")], "env"),
            (&[("tail", "1"), ("tail", "2")], "tail"),
        ] {
            let e = parse(query).unwrap_err();
            assert_eq!(
                (e.status, e.field.as_deref()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
                "{query:?}: {}",
                e.message
            );
        }
    }
}
