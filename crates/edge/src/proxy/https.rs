//! What plain HTTP gets when the edge serves HTTPS too: ACME HTTP-01 challenges are
//! answered here (whichever edge the validation server reaches), and requests to hosts
//! that have a certificate are sent to HTTPS.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;

use crate::tls::CertSource;

const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

pub(crate) struct Redirect {
    pub certs: Arc<dyn CertSource>,
    /// The HTTPS port clients use.
    pub port: u16,
}

impl Redirect {
    /// Whether the edge answers a plain-HTTP request for `path` on `host` itself.
    pub(crate) fn intercepts(&self, path: &str, host: &str) -> bool {
        path.starts_with(CHALLENGE_PATH) || self.certs.covers(host)
    }

    /// The edge's own answer to a plain-HTTP request for `host`, when it has one.
    pub(crate) fn answer<B>(&self, req: &Request<B>, host: &str) -> Option<Response<Full<Bytes>>> {
        if let Some(token) = req.uri().path().strip_prefix(CHALLENGE_PATH) {
            let (status, body) = match self.certs.http01(token) {
                Some(key_authorization) => (StatusCode::OK, key_authorization),
                None => (StatusCode::NOT_FOUND, "no such ACME challenge\n".to_owned()),
            };
            return Some(plain(status, body, None));
        }
        if !self.certs.covers(host) {
            return None;
        }
        let port = match self.port {
            443 => String::new(),
            port => format!(":{port}"),
        };
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let location = format!("https://{host}{port}{path}");
        let body = format!("moved to {location}\n");
        // 308 keeps the method and body, unlike 301.
        Some(plain(StatusCode::PERMANENT_REDIRECT, body, Some(location)))
    }
}

fn plain(status: StatusCode, body: String, location: Option<String>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(LOCATION, location);
    }
    response
}
