//! Heads on the wire: the request as the instance gets it and the answer as the client
//! gets it, each written straight from httparse's slices into a reused buffer, with the
//! same header rules as the hyper path (`forward.rs`, `policy.rs`).

use std::io::Write as _;
use std::net::IpAddr;

use zeitwork_core::RoutePolicy;

use super::super::guard::content_length;
use super::super::hop::{CLIENT_CLAIMS, removable};
use super::super::page::{self, Problem};
use super::super::policy::security_header_values;

/// Headers that describe one connection, not the message (RFC 9110, 7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
/// Most header names one Connection header may list before the hyper path takes over.
const MAX_NAMED: usize = 8;

/// What a message's Connection headers say.
#[derive(Default)]
pub(super) struct Connection<'a> {
    named: [&'a [u8]; MAX_NAMED],
    count: usize,
    pub close: bool,
}

impl<'a> Connection<'a> {
    /// `None` when the headers name more than [`MAX_NAMED`] tokens. Tokens naming a
    /// header that frames or routes the message are not kept: those headers stay.
    pub(super) fn of(headers: &[httparse::Header<'a>]) -> Option<Connection<'a>> {
        let mut connection = Connection::default();
        for h in headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        {
            for token in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    connection.close = true;
                } else if !token.is_empty() && removable(token) {
                    *connection.named.get_mut(connection.count)? = token;
                    connection.count += 1;
                }
            }
        }
        Some(connection)
    }

    pub(super) fn names(&self, name: &str) -> bool {
        let named = &self.named[..self.count];
        named
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }
}

fn is_any(name: &str, list: &[&str]) -> bool {
    list.iter().any(|l| l.eq_ignore_ascii_case(name))
}

/// What the edge adds to a request about its client.
pub(super) struct Stated<'a> {
    pub client: IpAddr,
    pub secure: bool,
    /// The Host header as the client sent it.
    pub host: &'a [u8],
    pub request_id: &'a [u8],
    /// The body's length, when the client sent a Content-Length: the instance gets it
    /// as one number, however the client wrote it (`05`, or twice).
    pub length: Option<u64>,
}

/// The request line and headers for the instance: hop-by-hop headers and the client's
/// own claims (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`, request id, …) dropped, the
/// edge's added, the body's length stated once by the edge.
pub(super) fn request_head(
    out: &mut Vec<u8>,
    req: &httparse::Request<'_, '_>,
    connection: &Connection<'_>,
    stated: &Stated<'_>,
) {
    out.clear();
    let (method, path) = (req.method.unwrap_or("GET"), req.path.unwrap_or("/"));
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers.iter() {
        let hop = is_any(h.name, &HOP_BY_HOP) || connection.names(h.name);
        if hop || is_any(h.name, &CLIENT_CLAIMS) || h.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        header(out, h.name.as_bytes(), h.value);
    }
    if let Some(length) = stated.length {
        let _ = write!(out, "content-length: {length}\r\n");
    }
    let _ = write!(out, "x-forwarded-for: {}\r\n", stated.client);
    let proto: &[u8] = if stated.secure { b"https" } else { b"http" };
    header(out, b"x-forwarded-proto", proto);
    header(out, b"x-forwarded-host", stated.host);
    header(out, b"x-request-id", stated.request_id);
    out.extend_from_slice(b"\r\n");
}

/// How an answer's body is framed (RFC 9112, 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    /// Passed through chunk by chunk, trailers included.
    Chunked,
    /// Until the instance closes the connection.
    UntilClose,
}

/// The framing of an answer to a request (`head`: the request was HEAD); `None` when
/// its Content-Length is not a number.
pub(super) fn framing(res: &httparse::Response<'_, '_>, head: bool) -> Option<Framing> {
    let status = res.code.unwrap_or(0);
    if head || status == 204 || status == 304 || (100..200).contains(&status) {
        return Some(Framing::Empty);
    }
    let mut length = None;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h.value.rsplit(|b| *b == b',').next().unwrap_or_default();
            return Some(match last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                true => Framing::Chunked,
                false => Framing::UntilClose,
            });
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = content_length(h.value)?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    Some(length.map_or(Framing::UntilClose, Framing::Length))
}

/// The Content-Length the edge states for an answer of `framing`: the length it
/// passes, or for a bodiless answer (HEAD, 304) the app's own when it is a number and
/// no Transfer-Encoding overrides it; never one beside a Transfer-Encoding (RFC 9112,
/// 6.3: an intermediary removes it).
pub(super) fn answer_length(res: &httparse::Response<'_, '_>, framing: Framing) -> Option<u64> {
    match framing {
        Framing::Length(n) => Some(n),
        Framing::Chunked | Framing::UntilClose => None,
        Framing::Empty => {
            let headers = res.headers.iter();
            if headers
                .clone()
                .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
            {
                return None;
            }
            headers
                .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
                .find_map(|h| content_length(h.value))
        }
    }
}

/// The answer's head for the client: the instance's headers minus hop-by-hop ones
/// (Transfer-Encoding stays, since the body passes as it came; Content-Length is the
/// edge's, [`answer_length`]), the route's security headers the app did not set, the
/// request id, and `Connection: close` when the connection ends after it.
pub(super) fn response_head(
    out: &mut Vec<u8>,
    res: &httparse::Response<'_, '_>,
    framing: Framing,
    policy: &RoutePolicy,
    secure: bool,
    request_id: &[u8],
    close: bool,
) {
    let connection = Connection::of(res.headers).unwrap_or_default();
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        res.code.unwrap_or(502),
        res.reason.unwrap_or("")
    );
    let kept = ["transfer-encoding", "trailer"];
    for h in res.headers.iter() {
        let hop = is_any(h.name, &HOP_BY_HOP) && !is_any(h.name, &kept);
        let edges = is_any(h.name, &["x-request-id", "content-length"]);
        if hop || edges || connection.names(h.name) {
            continue;
        }
        header(out, h.name.as_bytes(), h.value);
    }
    if let Some(length) = answer_length(res, framing) {
        let _ = write!(out, "content-length: {length}\r\n");
    }
    for (name, value) in security_header_values(policy, secure) {
        if !res
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
        {
            header(out, name.as_bytes(), value.as_str().as_bytes());
        }
    }
    finish(out, request_id, close);
}

/// One of the edge's own pages, whole.
pub(super) fn problem(
    out: &mut Vec<u8>,
    problem: &Problem,
    request_id: &http::HeaderValue,
    json: bool,
    policy: &RoutePolicy,
    secure: bool,
    close: bool,
) {
    let (content_type, body) = page::body(problem, request_id, json);
    let status = problem.status;
    let reason = status.canonical_reason().unwrap_or("");
    let _ = write!(out, "HTTP/1.1 {} {reason}\r\n", status.as_u16());
    header(out, b"content-type", content_type.as_bytes());
    header(out, b"cache-control", b"no-store");
    let _ = write!(out, "content-length: {}\r\n", body.len());
    for (name, value) in security_header_values(policy, secure) {
        header(out, name.as_bytes(), value.as_str().as_bytes());
    }
    finish(out, request_id.as_bytes(), close);
    out.extend_from_slice(body.as_bytes());
}

fn finish(out: &mut Vec<u8>, request_id: &[u8], close: bool) {
    header(out, b"x-request-id", request_id);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_request<'h, 'b>(
        raw: &'b [u8],
        headers: &'h mut [httparse::Header<'b>],
    ) -> httparse::Request<'h, 'b> {
        let mut req = httparse::Request::new(headers);
        assert!(req.parse(raw).unwrap().is_complete());
        req
    }

    #[test]
    fn requests_lose_hop_by_hop_headers_and_the_clients_claims() {
        let raw = b"GET /a?b HTTP/1.1\r\nHost: Shop.Test:8080\r\nConnection: keep-alive, X-Secret\r\n\
            X-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n\
            X-Request-Id: theirs\r\nAccept: */*\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let req = parse_request(raw, &mut headers);
        let connection = Connection::of(req.headers).unwrap();
        assert!(!connection.close);
        let stated = Stated {
            client: IpAddr::from([192, 0, 2, 7]),
            secure: false,
            host: b"Shop.Test:8080",
            request_id: b"req-1",
            length: None,
        };
        let mut out = Vec::new();
        request_head(&mut out, &req, &connection, &stated);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /a?b HTTP/1.1\r\nHost: Shop.Test:8080\r\nAccept: */*\r\nx-forwarded-for: 192.0.2.7\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: Shop.Test:8080\r\nx-request-id: req-1\r\n\r\n"
        );
    }

    #[test]
    fn framing_and_routing_headers_stay_whatever_connection_names_and_lengths_are_the_edges() {
        let raw = b"POST /f HTTP/1.1\r\nHost: a.test\r\nConnection: Content-Length, host, X-Real-IP\r\n\
            Content-Length: 05\r\ncontent-length: 5\r\nX-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let req = parse_request(raw, &mut headers);
        let connection = Connection::of(req.headers).unwrap();
        let stated = Stated {
            client: IpAddr::from([192, 0, 2, 7]),
            secure: true,
            host: b"a.test",
            request_id: b"req-1",
            length: Some(5),
        };
        let mut out = Vec::new();
        request_head(&mut out, &req, &connection, &stated);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /f HTTP/1.1\r\nHost: a.test\r\ncontent-length: 5\r\nx-forwarded-for: 192.0.2.7\r\n\
             x-forwarded-proto: https\r\nx-forwarded-host: a.test\r\nx-request-id: req-1\r\n\r\n"
        );
    }

    /// The head the client gets for `raw` (answering a GET).
    fn client_head(raw: &[u8]) -> String {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut res = httparse::Response::new(&mut headers);
        assert!(res.parse(raw).unwrap().is_complete());
        let framing = framing(&res, false).unwrap();
        let mut out = Vec::new();
        let policy = RoutePolicy {
            headers: zeitwork_core::route_policy::SECURITY_HEADERS
                .iter()
                .map(|(name, _)| (name.to_string(), String::new()))
                .collect(),
            ..RoutePolicy::default()
        };
        response_head(&mut out, &res, framing, &policy, false, b"r", false);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn answers_keep_their_framing_whatever_connection_names() {
        let named = client_head(
            b"HTTP/1.1 200 OK\r\nConnection: content-length, transfer-encoding\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!(
            named,
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-request-id: r\r\n\r\n"
        );
        // Both: the chunks frame the body, and the length goes (RFC 9112, 6.3).
        let both = client_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n",
        );
        assert_eq!(
            both,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-request-id: r\r\n\r\n"
        );
        let twice =
            client_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 02\r\n\r\n");
        assert_eq!(
            twice,
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-request-id: r\r\n\r\n"
        );
    }

    #[test]
    fn connection_close_is_seen_and_too_many_named_headers_are_refused() {
        let raw = b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; 4];
        assert!(
            Connection::of(parse_request(raw, &mut headers).headers)
                .unwrap()
                .close
        );
        let raw = b"GET / HTTP/1.1\r\nConnection: a,b,c,d,e,f,g,h,i\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; 4];
        assert!(Connection::of(parse_request(raw, &mut headers).headers).is_none());
    }

    fn framing_of(raw: &[u8], head: bool) -> Option<Framing> {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut res = httparse::Response::new(&mut headers);
        assert!(res.parse(raw).unwrap().is_complete());
        framing(&res, head)
    }

    #[test]
    fn answers_are_framed_as_rfc_9112_says() {
        let ok = |h: &str| format!("HTTP/1.1 200 OK\r\n{h}\r\n");
        assert_eq!(
            framing_of(ok("Content-Length: 5\r\n").as_bytes(), false),
            Some(Framing::Length(5))
        );
        assert_eq!(
            framing_of(ok("Content-Length: 5\r\n").as_bytes(), true),
            Some(Framing::Empty)
        );
        let both = ok("Content-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n");
        assert_eq!(framing_of(both.as_bytes(), false), Some(Framing::Chunked));
        assert_eq!(
            framing_of(ok("Transfer-Encoding: gzip\r\n").as_bytes(), false),
            Some(Framing::UntilClose)
        );
        assert_eq!(
            framing_of(ok("").as_bytes(), false),
            Some(Framing::UntilClose)
        );
        assert_eq!(
            framing_of(
                ok("Content-Length: 5\r\nContent-Length: 6\r\n").as_bytes(),
                false
            ),
            None
        );
        assert_eq!(
            framing_of(ok("Content-Length: x\r\n").as_bytes(), false),
            None
        );
        assert_eq!(
            framing_of(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                false
            ),
            Some(Framing::Empty)
        );
    }

    #[test]
    fn answers_keep_framing_and_the_apps_security_headers_and_get_the_edges() {
        let raw =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-Hop\r\n\
            X-Hop: 1\r\nX-Frame-Options: DENY\r\nX-Request-Id: app\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut res = httparse::Response::new(&mut headers);
        assert!(res.parse(raw).unwrap().is_complete());
        let mut out = Vec::new();
        response_head(
            &mut out,
            &res,
            Framing::Chunked,
            &RoutePolicy::default(),
            true,
            b"req-1",
            true,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Frame-Options: DENY\r\n"
            ),
            "{text}"
        );
        assert!(
            !text.contains("X-Hop") && !text.contains("app") && !text.contains("keep-alive"),
            "{text}"
        );
        assert!(
            text.contains("strict-transport-security: max-age=31536000\r\n"),
            "{text}"
        );
        assert!(
            !text.contains("x-frame-options: SAMEORIGIN"),
            "the app's value wins: {text}"
        );
        assert!(
            text.ends_with("x-request-id: req-1\r\nconnection: close\r\n\r\n"),
            "{text}"
        );
    }
}
