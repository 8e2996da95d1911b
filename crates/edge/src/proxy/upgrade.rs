//! Protocol upgrades (WebSockets): the request goes to one instance like any other, and
//! once it answers 101 the two connections are joined byte for byte, so the client
//! stays with that instance for the life of the connection.

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderValue, Request, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// The protocol an HTTP/1.1 request asks to switch to (`Connection: upgrade` and an
/// `Upgrade` header).
pub(crate) fn requested<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let asks = req
        .headers()
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| req.headers().get(UPGRADE).cloned()).flatten()
}

/// Joins the client's and the instance's upgraded connections until either side ends.
pub(crate) fn tunnel(client: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "an upgrade did not complete");
                return;
            }
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        let idle = zeitwork_l4::RELAY_IDLE;
        if let Err(e) = zeitwork_l4::splice(&mut client, &mut upstream, idle).await {
            tracing::debug!(error = %e, "an upgraded connection ended with an error");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, headers: &[(&'static str, &str)]) -> Request<()> {
        let mut req = Request::new(());
        *req.version_mut() = version;
        for (name, value) in headers {
            req.headers_mut()
                .append(*name, HeaderValue::from_str(value).unwrap());
        }
        req
    }

    #[test]
    fn an_upgrade_needs_both_headers_on_http_1_1() {
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ];
        assert_eq!(requested(&req(Version::HTTP_11, &ws)).unwrap(), "websocket");
        assert!(requested(&req(Version::HTTP_10, &ws)).is_none());
        assert!(requested(&req(Version::HTTP_11, &ws[1..])).is_none());
        assert!(requested(&req(Version::HTTP_11, &ws[..1])).is_none());
    }
}
