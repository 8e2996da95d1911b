//! Request bodies: size-limited, JSON only, parsed strictly (unknown fields are errors
//! that name the field), and for create calls, de-duplicated by `Idempotency-Key`.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use zeitwork_store::Tx;
use zeitwork_store::idempotency::{self, Recorded};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Largest request body accepted; manifests and secrets fit easily.
pub const BODY_LIMIT: usize = 1 << 20;

/// A JSON body for calls that need no de-duplication (PUT, action calls).
pub struct Body<T>(pub T);

/// The body of a create call plus its idempotency record, answered with [`Create::finish`].
pub struct Create<T> {
    pub body: T,
    idem: Option<Idem>,
}

struct Idem {
    scope: String,
    key: String,
    request_hash: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &AppState) -> ApiResult<Body<T>> {
        let (_, bytes) = read(req).await?;
        Ok(Body(parse(&bytes)?))
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for Create<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Create<T>, Response> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let (headers, bytes) = read(req).await.map_err(IntoResponse::into_response)?;
        let idem = match idempotency_key(&headers).map_err(IntoResponse::into_response)? {
            None => None,
            Some(key) => {
                let who = headers
                    .get(http::header::AUTHORIZATION)
                    .map(|v| v.as_bytes())
                    .unwrap_or_default();
                let scope = format!("{}:{method} {path}", hex::encode(Sha256::digest(who)));
                let request_hash = hex::encode(Sha256::digest(&bytes));
                if let Some(first) = idempotency::lookup(state.store.pool(), &scope, &key)
                    .await
                    .map_err(|e| ApiError::from(e).into_response())?
                {
                    return Err(replay(first, &request_hash));
                }
                Some(Idem {
                    scope,
                    key,
                    request_hash,
                })
            }
        };
        let body = parse(&bytes).map_err(IntoResponse::into_response)?;
        Ok(Create { body, idem })
    }
}

impl<T> Create<T> {
    /// Records the answer under the idempotency key (if any) in the same transaction
    /// as the change, commits, and answers.
    pub async fn finish(
        self,
        tx: Tx,
        status: StatusCode,
        body: impl Serialize,
    ) -> ApiResult<Response> {
        let value = serde_json::to_value(body).expect("answers serialize");
        self.finish_recording(tx, status, value.clone(), value)
            .await
    }

    /// Like [`Create::finish`] for an answer that carries a secret shown once: a replay
    /// gets `replayed` instead, which must not hold the secret, since replay records
    /// are kept in the clear.
    pub async fn finish_once(
        self,
        tx: Tx,
        status: StatusCode,
        body: impl Serialize,
        replayed: impl Serialize,
    ) -> ApiResult<Response> {
        let value = serde_json::to_value(body).expect("answers serialize");
        let replayed = serde_json::to_value(replayed).expect("answers serialize");
        self.finish_recording(tx, status, value, replayed).await
    }

    async fn finish_recording(
        self,
        mut tx: Tx,
        status: StatusCode,
        value: serde_json::Value,
        recorded: serde_json::Value,
    ) -> ApiResult<Response> {
        if let Some(idem) = self.idem {
            let answer = Recorded {
                request_hash: idem.request_hash,
                status: i32::from(status.as_u16()),
                body: recorded,
            };
            idempotency::record(&mut tx, &idem.scope, &idem.key, &answer).await?;
        }
        tx.commit().await?;
        Ok((status, Json(value)).into_response())
    }
}

/// How often expired idempotency records are pruned.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Prunes expired idempotency records for as long as the operator runs; a failed round
/// is logged and the next one catches up (lookups ignore expired records meanwhile).
pub async fn prune_forever(store: zeitwork_store::Store) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    loop {
        every.tick().await;
        match idempotency::prune(store.pool()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "pruned idempotency records"),
            Err(e) => tracing::warn!(error = %e, "pruning idempotency records failed; retrying"),
        }
    }
}

fn replay(first: Recorded, request_hash: &str) -> Response {
    if first.request_hash != request_hash {
        return ApiError::invalid(
            "Idempotency-Key",
            "this Idempotency-Key was used for a different request; use a new key",
        )
        .into_response();
    }
    let status = u16::try_from(first.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (status, Json(first.body)).into_response();
    response
        .headers_mut()
        .insert("idempotent-replay", http::HeaderValue::from_static("true"));
    response
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default().trim();
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

async fn read(req: Request) -> ApiResult<(HeaderMap, bytes::Bytes)> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {BODY_LIMIT} bytes"),
        )
    })?;
    if !bytes.is_empty() {
        let json = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
    }
    Ok((parts.headers, bytes))
}

/// A query string parsed strictly into `T`: an unknown or malformed parameter is a 422
/// naming it (`T` denies unknown fields), never silently ignored.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> ApiResult<Params<T>> {
        query(parts.uri.query().unwrap_or_default()).map(Params)
    }
}

fn query<T: DeserializeOwned>(raw: &str) -> ApiResult<T> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = match path.as_str() {
            "." => message
                .split('`')
                .nth(1)
                .filter(|_| message.starts_with("unknown field"))
                .unwrap_or("query")
                .to_owned(),
            _ => path,
        };
        ApiError::invalid(field, format!("query: {message}"))
    })
}

/// Numbers with no fraction (`1850826334.0`) as integers: JSON Schema counts them as
/// integers, so an integer field takes them.
fn whole_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                if f >= 0.0 && f <= u64::MAX as f64 {
                    *n = serde_json::Number::from(f as u64);
                } else if f < 0.0 && f >= i64::MIN as f64 {
                    *n = serde_json::Number::from(f as i64);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// An empty body reads as `{}`, so calls whose fields are all optional need none.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let bytes = if bytes.is_empty() {
        b"{}".as_slice()
    } else {
        bytes
    };
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid("body", "the body must be a JSON object"));
    }
    whole_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            ApiError::invalid(
                if path == "." { "body".into() } else { path },
                inner.to_string(),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {inner}"),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct New {
        name: String,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Q {
        limit: Option<u32>,
    }

    #[test]
    fn query_parameters_are_strict_and_named() {
        assert_eq!(query::<Q>("limit=5").unwrap().limit, Some(5));
        assert_eq!(query::<Q>("").unwrap().limit, None);
        let e = query::<Q>("limit=x").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"));
        let e = query::<Q>("limt=5").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limt"));
    }

    #[test]
    fn malformed_json_is_400_and_bad_fields_are_422_with_path() {
        assert_eq!(parse::<New>(b"{\"name\":\"a\"}").unwrap().name, "a");
        let e = parse::<New>(b"{\"name\":").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "malformed_json")
        );
        let e = parse::<New>(b"{\"name\":1}").unwrap_err();
        assert_eq!(
            (e.status, e.field.as_deref()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("name"))
        );
        let e = parse::<New>(b"{\"name\":\"a\",\"nmae\":1}").unwrap_err();
        assert!(e.message.contains("unknown field `nmae`"), "{}", e.message);
        let e = parse::<New>(b"").unwrap_err();
        assert!(e.message.contains("missing field `name`"), "{}", e.message);
    }
}
