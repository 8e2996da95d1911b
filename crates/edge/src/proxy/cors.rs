//! CORS on the app's behalf, from the route's policy: preflights are answered by the
//! edge (the app never sees them) and allowed origins get the response headers that let
//! a browser read the answer. Origins not allowed get no CORS headers, which browsers
//! treat as a refusal.

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use zeitwork_core::route_policy::Cors;

/// The edge's answer to a preflight request.
pub(crate) fn preflight<B>(req: &Request<B>, cors: &Cors) -> Option<Response<Full<Bytes>>> {
    let headers = req.headers();
    if req.method() != Method::OPTIONS || !headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
        return None;
    }
    let origin = headers.get(ORIGIN)?;
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let out = response.headers_mut();
    out.insert(VARY, HeaderValue::from_static("origin"));
    if let Some(allowed) = allowed(origin, cors) {
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        insert_list(out, ACCESS_CONTROL_ALLOW_METHODS, &cors.methods);
        insert_list(out, ACCESS_CONTROL_ALLOW_HEADERS, &cors.headers);
        if let Some(max_age) = cors.max_age {
            out.insert(
                ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(max_age.as_duration().as_secs()),
            );
        }
        if cors.credentials {
            out.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
    Some(response)
}

/// CORS headers for the answer to a request from `origin`.
pub(crate) fn decorate(origin: Option<&HeaderValue>, cors: &Cors, headers: &mut HeaderMap) {
    headers.append(VARY, HeaderValue::from_static("origin"));
    let Some(allowed) = origin.and_then(|o| allowed(o, cors)) else {
        return;
    };
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    insert_list(headers, ACCESS_CONTROL_EXPOSE_HEADERS, &cors.expose);
    if cors.credentials {
        headers.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// The Access-Control-Allow-Origin value for `origin`, when it is allowed.
fn allowed(origin: &HeaderValue, cors: &Cors) -> Option<HeaderValue> {
    if cors
        .origins
        .iter()
        .any(|o| o.as_bytes() == origin.as_bytes())
    {
        return Some(origin.clone());
    }
    // The policy check refuses "*" with credentials.
    cors.origins
        .iter()
        .any(|o| o == "*")
        .then(|| HeaderValue::from_static("*"))
}

fn insert_list(headers: &mut HeaderMap, name: http::HeaderName, items: &[String]) {
    if let Ok(value) = HeaderValue::from_str(&items.join(", "))
        && !items.is_empty()
    {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(json: serde_json::Value) -> Cors {
        serde_json::from_value(json).unwrap()
    }

    fn preflight_from(origin: &str) -> Request<()> {
        Request::builder()
            .method(Method::OPTIONS)
            .header(ORIGIN, origin)
            .header(ACCESS_CONTROL_REQUEST_METHOD, "PUT")
            .body(())
            .unwrap()
    }

    #[test]
    fn preflights_from_allowed_origins_get_the_policy() {
        let c = cors(
            serde_json::json!({"origins": ["https://a.example"], "methods": ["GET", "PUT"],
            "headers": ["x-token"], "credentials": true, "max_age": "10m"}),
        );
        let r = preflight(&preflight_from("https://a.example"), &c).unwrap();
        assert_eq!(r.status(), 204);
        let h = r.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://a.example");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET, PUT");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "x-token");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");

        let r = preflight(&preflight_from("https://evil.example"), &c).unwrap();
        assert!(!r.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        let plain = Request::builder().method(Method::OPTIONS).body(()).unwrap();
        assert!(
            preflight(&plain, &c).is_none(),
            "a plain OPTIONS goes to the app"
        );
    }

    #[test]
    fn answers_carry_cors_headers_only_for_allowed_origins() {
        let any = cors(serde_json::json!({"origins": ["*"], "expose": ["x-total"]}));
        let mut headers = HeaderMap::new();
        decorate(
            Some(&HeaderValue::from_static("https://b.example")),
            &any,
            &mut headers,
        );
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(headers[ACCESS_CONTROL_EXPOSE_HEADERS], "x-total");
        let one = cors(serde_json::json!({"origins": ["https://a.example"]}));
        let mut headers = HeaderMap::new();
        decorate(
            Some(&HeaderValue::from_static("https://b.example")),
            &one,
            &mut headers,
        );
        assert!(!headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        assert_eq!(headers[VARY], "origin");
    }
}
