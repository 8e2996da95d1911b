//! Which hostname a request is for. Anything ambiguous is refused rather than guessed,
//! because the answer decides which tenant's app receives the request.

use std::net::Ipv6Addr;

use http::header::HOST;
use http::{HeaderValue, Request};

/// The host a request names.
#[derive(Debug)]
pub(crate) struct Host {
    /// Lowercase, without port or trailing dot: the routing table's key.
    pub name: String,
    /// As the client sent it (for `X-Forwarded-Host`).
    pub raw: HeaderValue,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HostError {
    #[error("the request names no host: send a Host header")]
    Missing,
    #[error("the request has more than one Host header")]
    Repeated,
    #[error("the Host header is not a hostname with an optional port")]
    Malformed,
    #[error("the Host header and the request target name different hosts")]
    Mismatch,
}

pub(crate) fn of<B>(req: &Request<B>) -> Result<Host, HostError> {
    let mut headers = req.headers().get_all(HOST).iter();
    let header = headers.next();
    if headers.next().is_some() {
        return Err(HostError::Repeated);
    }
    match (req.uri().authority(), header) {
        // An absolute request target names the host itself (RFC 9112, 3.2.2).
        (Some(authority), header) => {
            let name = name(authority.as_str().as_bytes())?;
            if let Some(h) = header
                && self::name(h.as_bytes())? != name
            {
                return Err(HostError::Mismatch);
            }
            let raw =
                HeaderValue::from_str(authority.as_str()).map_err(|_| HostError::Malformed)?;
            Ok(Host { name, raw })
        }
        (None, Some(h)) => Ok(Host {
            name: name(h.as_bytes())?,
            raw: h.clone(),
        }),
        (None, None) => Err(HostError::Missing),
    }
}

/// `host[:port]` or `[ipv6][:port]` → the normalized host.
pub(super) fn name(value: &[u8]) -> Result<String, HostError> {
    let text = std::str::from_utf8(value).map_err(|_| HostError::Malformed)?;
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (ip, after) = rest.split_once(']').ok_or(HostError::Malformed)?;
            ip.parse::<Ipv6Addr>().map_err(|_| HostError::Malformed)?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or(HostError::Malformed)?),
            };
            (&text[..ip.len() + 2], port)
        }
        None => match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    if port.is_some_and(|p| !is_port(p)) {
        return Err(HostError::Malformed);
    }
    if !host.starts_with('[') && !is_hostname(host.strip_suffix('.').unwrap_or(host)) {
        return Err(HostError::Malformed);
    }
    Ok(host.trim_end_matches('.').to_ascii_lowercase())
}

/// Digits up to 65535; empty is allowed (RFC 3986 says `port = *DIGIT`).
fn is_port(port: &str) -> bool {
    port.is_empty()
        || (port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| p <= 65535))
}

/// Dot-separated labels of letters, digits, `-` and `_`, each 1 to 63 long, 253 in all.
fn is_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, hosts: &[&[u8]]) -> Request<()> {
        let mut builder = Request::get(target);
        for h in hosts {
            builder = builder.header(HOST, HeaderValue::from_bytes(h).unwrap());
        }
        builder.body(()).unwrap()
    }

    fn host(hosts: &[&[u8]]) -> Result<String, HostError> {
        of(&request("/", hosts)).map(|h| h.name)
    }

    #[test]
    fn hosts_are_lowercased_and_lose_port_and_trailing_dot() {
        assert_eq!(
            host(&[b"Shop-Acme.Zeitwork.Test:8080"]).unwrap(),
            "shop-acme.zeitwork.test"
        );
        assert_eq!(host(&[b"example.com."]).unwrap(), "example.com");
        assert_eq!(host(&[b"127.0.0.1:80"]).unwrap(), "127.0.0.1");
        assert_eq!(host(&[b"[::1]:8080"]).unwrap(), "[::1]");
        assert_eq!(host(&[b"example.com:"]).unwrap(), "example.com");
    }

    #[test]
    fn malformed_hosts_are_refused() {
        for bad in [
            &b""[..],
            b"exa mple.com",
            b"a..b",
            b"user@example.com",
            b"example.com:99999",
            b"example.com:80:80",
            b"example.com:http",
            b"[::1",
            b"[zz::1]:80",
            b"[::1]80",
            b"ex\xc3\xa4mple.com",
            b"example.com/path",
        ] {
            assert_eq!(
                host(&[bad]),
                Err(HostError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("{}.com", "a".repeat(64));
        assert_eq!(host(&[long.as_bytes()]), Err(HostError::Malformed));
    }

    #[test]
    fn missing_and_repeated_hosts_are_refused() {
        assert_eq!(host(&[]), Err(HostError::Missing));
        assert_eq!(host(&[b"a.test", b"b.test"]), Err(HostError::Repeated));
    }

    #[test]
    fn an_absolute_target_names_the_host_and_must_agree_with_host() {
        let req = request("http://Shop.Test:8080/x", &[]);
        let h = of(&req).unwrap();
        assert_eq!(
            (h.name.as_str(), h.raw.as_bytes()),
            ("shop.test", &b"Shop.Test:8080"[..])
        );
        assert_eq!(
            of(&request("http://shop.test/", &[b"shop.test:80"]))
                .unwrap()
                .name,
            "shop.test"
        );
        assert_eq!(
            of(&request("http://a.test/", &[b"b.test"])).unwrap_err(),
            HostError::Mismatch
        );
    }
}
