//! The dashboard (`web/`, a Vue single-page app) served from the binary at `/`: hashed
//! assets under `/assets/` cached for a year, every other path outside `/api/` answered
//! with `index.html` (the app routes on the client). Every answer carries a strict
//! Content-Security-Policy: scripts, styles and connections from this origin only, no
//! inline scripts, no framing.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// One embedded file: its URL path, its contents, and its contents gzipped (text files).
type Entry = (&'static str, &'static [u8], Option<&'static [u8]>);

mod files {
    include!(concat!(env!("OUT_DIR"), "/dashboard.rs"));
}

/// The policy every dashboard page is served with.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Shown when the binary was built without `web/dist`.
const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
    <title>Zeitwork</title><h1>The dashboard is not built into this binary</h1>\
    <p>Build it with <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code> \
    (<code>scripts/up.sh</code> does), then build <code>zeitwork</code> again. \
    The API is at <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>.</p></html>";

/// Whether the dashboard was built into this binary.
pub fn built() -> bool {
    file("/index.html").is_some()
}

/// A file's contents, and its gzipped contents if it has them.
type File = (&'static [u8], Option<&'static [u8]>);

fn file(path: &str) -> Option<File> {
    files::FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, body, gz)| (*body, *gz))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether the client takes gzip (`Accept-Encoding`, and not `gzip;q=0`).
fn takes_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"))
                && !parts.any(|p| p.replace(' ', "") == "q=0")
        })
}

/// What the router answers for a path no route takes: the API's JSON 404 under
/// `/api/`, the dashboard elsewhere.
pub async fn fallback(method: Method, uri: Uri, request: HeaderMap) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || !(method == Method::GET || method == Method::HEAD) {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
            .into_response();
    }
    let (status, (body, gz), kind, cache) = match (path.starts_with("/assets/"), file(path)) {
        (true, Some(file)) => (
            StatusCode::OK,
            file,
            content_type(path),
            "public, max-age=31536000, immutable",
        ),
        (true, None) => (
            StatusCode::NOT_FOUND,
            (b"no such asset".as_slice(), None),
            "text/plain; charset=utf-8",
            "no-store",
        ),
        (false, Some(file)) if path != "/index.html" => {
            (StatusCode::OK, file, content_type(path), "no-cache")
        }
        (false, _) => match file("/index.html") {
            Some(index) => (
                StatusCode::OK,
                index,
                "text/html; charset=utf-8",
                "no-cache",
            ),
            None => (
                StatusCode::OK,
                (NOT_BUILT.as_bytes(), None),
                "text/html; charset=utf-8",
                "no-cache",
            ),
        },
    };
    let gzip = gz.filter(|_| takes_gzip(&request));
    let mut response = (status, gzip.unwrap_or(body)).into_response();
    let headers = response.headers_mut();
    let set = |v: &'static str| HeaderValue::from_static(v);
    if gzip.is_some() {
        headers.insert(header::CONTENT_ENCODING, set("gzip"));
    }
    if gz.is_some() {
        headers.insert(header::VARY, set("accept-encoding"));
    }
    headers.insert(header::CONTENT_TYPE, set(kind));
    headers.insert(header::CACHE_CONTROL, set(cache));
    headers.insert(header::CONTENT_SECURITY_POLICY, set(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, set("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, set("DENY"));
    headers.insert(header::REFERRER_POLICY, set("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn api_paths_stay_json_and_pages_carry_the_policy() {
        let none = HeaderMap::new;
        let api = fallback(Method::GET, Uri::from_static("/api/v1/nope"), none()).await;
        assert_eq!(api.status(), StatusCode::NOT_FOUND);
        assert_eq!(api.headers()[header::CONTENT_TYPE], "application/json");
        let post = fallback(Method::POST, Uri::from_static("/orgs"), none()).await;
        assert_eq!(post.status(), StatusCode::NOT_FOUND);
        let page = fallback(Method::GET, Uri::from_static("/orgs/acme/apps"), none()).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
        let missing = fallback(Method::GET, Uri::from_static("/assets/nope.js"), none()).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn gzip_goes_only_to_who_takes_it() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            takes_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(!with("br, gzip;q=0"));
        assert!(!with("identity"));
        assert!(!takes_gzip(&HeaderMap::new()));
    }
}
