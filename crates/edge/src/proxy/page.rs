//! The edge's own answers (no app, no healthy instance, app unreachable, bad request):
//! a small branded page for people, `{"error": {"code", "message", "request_id"}}` for
//! programs, in the API's error shape, chosen by what the client's Accept prefers.

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::REQUEST_ID;

/// What went wrong, in the words the client sees.
#[derive(Debug)]
pub(crate) struct Problem {
    pub status: StatusCode,
    /// Stable, for programs: `not_found`, `unavailable`, …
    pub code: &'static str,
    /// For people: what happened and, where it helps, what to do.
    pub message: String,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            message: message.into(),
        }
    }
}

pub(crate) fn render(
    problem: &Problem,
    request_id: &HeaderValue,
    json: bool,
) -> Response<Full<Bytes>> {
    let (content_type, body) = body(problem, request_id, json);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = problem.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REQUEST_ID, request_id.clone());
    response
}

/// The page's content type and text.
pub(crate) fn body(
    problem: &Problem,
    request_id: &HeaderValue,
    json: bool,
) -> (&'static str, String) {
    let id = request_id.to_str().unwrap_or_default();
    if json {
        let body = serde_json::json!({ "error": {
            "code": problem.code, "message": problem.message, "request_id": id,
        }});
        ("application/json", body.to_string())
    } else {
        ("text/html; charset=utf-8", html(problem, id))
    }
}

fn html(problem: &Problem, request_id: &str) -> String {
    let status = problem.status.as_u16();
    let reason = problem.status.canonical_reason().unwrap_or("Error");
    let message = escape(&problem.message);
    let id = escape(request_id);
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{status} {reason} · Zeitwork</title><style>\
body{{margin:0;min-height:100vh;display:grid;place-items:center;background:#0c0e14;color:#e7e9f0;\
font:16px/1.5 system-ui,sans-serif}}main{{max-width:34rem;padding:2rem}}\
.brand{{letter-spacing:.08em;text-transform:uppercase;font-size:.75rem;color:#8b93a7}}\
h1{{font-size:1.4rem;margin:.25rem 0 .75rem}}small{{color:#8b93a7}}</style></head>\
<body><main><div class=\"brand\">Zeitwork</div><h1>{status} · {reason}</h1><p>{message}</p>\
<small>Request ID {id}</small></main></body></html>\n"
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether Accept ranks `application/json` above `text/html`. Ties go to HTML, so
/// browsers and `*/*` (curl) get the page.
pub(crate) fn prefers_json(headers: &HeaderMap) -> bool {
    let accept: Vec<&str> = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    accepts_json(&accept)
}

/// [`prefers_json`] from the values of the Accept headers.
pub(crate) fn accepts_json(accept: &[&str]) -> bool {
    quality(accept, "application", "json") > quality(accept, "text", "html")
}

/// The q-value the most specific matching media range gives `kind/sub` (0 if none).
fn quality(accept: &[&str], kind: &str, sub: &str) -> f32 {
    let mut best: Option<(u8, f32)> = None;
    for range in accept.iter().flat_map(|v| v.split(',')) {
        let mut params = range.split(';');
        let Some((k, s)) = params.next().and_then(|m| m.trim().split_once('/')) else {
            continue;
        };
        let specificity = match (k.trim(), s.trim()) {
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) => 2,
            (k, "*") if k.eq_ignore_ascii_case(kind) => 1,
            ("*", "*") => 0,
            _ => continue,
        };
        let q = params
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0.0, |(_, q)| q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn json_only_when_preferred_over_html() {
        assert!(prefers_json(&accept("application/json")));
        assert!(prefers_json(&accept("text/html;q=0.5, application/json")));
        assert!(prefers_json(&accept("application/*")));
        assert!(!prefers_json(&accept("*/*")));
        assert!(!prefers_json(&accept(
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )));
        assert!(!prefers_json(&accept("application/json;q=0.2, text/*")));
        assert!(!prefers_json(&HeaderMap::new()));
    }

    #[test]
    fn a_more_specific_range_overrides_a_wildcard() {
        assert!(!prefers_json(&accept("application/json;q=0, */*")));
    }

    #[test]
    fn pages_escape_what_they_quote() {
        let p = Problem::new(StatusCode::NOT_FOUND, "not_found", "no app at <x>");
        let page = html(&p, "id\"1");
        assert!(page.contains("no app at &lt;x&gt;"), "{page}");
        assert!(page.contains("id&quot;1"));
        assert!(page.contains("404 · Not Found"));
    }
}
