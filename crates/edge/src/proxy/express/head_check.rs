//! The property the express lane's fuzz target (`crates/edge/fuzz`, `express_head`) and
//! its unit test check on any bytes: whatever request head the lane takes, the head it
//! sends the instance parses as exactly one request, frames the body exactly as the
//! guard framed the client's (no smuggled second request, no body read as a head), names
//! one Host (the client's), and carries no hop-by-hop header.

use std::net::{IpAddr, Ipv4Addr};

use super::super::guard::{MAX_HEADERS, fixed_length, head_end};
use super::Admitted;
use super::wire::{self, Stated};

/// Panics when the lane would send `data`'s head on in a form that breaks the property.
pub(crate) fn check(data: &[u8]) {
    let Some(end) = head_end(&[], data) else {
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(&data[..end]), Ok(httparse::Status::Complete(n)) if n == end) {
        return;
    }
    // The guard refuses what it cannot frame; the lane never sees it.
    let Ok(framed) = fixed_length(&req) else {
        return;
    };
    let Some(admitted) = Admitted::of(&req) else {
        return; // the hyper path takes it
    };
    let framed = framed.expect("the lane takes only heads framed by a length, or none");
    let mut up = Vec::new();
    let stated = Stated {
        client: IpAddr::V4(Ipv4Addr::LOCALHOST),
        secure: false,
        host: admitted.raw_host,
        request_id: b"fuzz",
        length: admitted.length,
    };
    wire::request_head(&mut up, &req, &admitted.connection, &stated);

    let mut sent_headers = [httparse::EMPTY_HEADER; MAX_HEADERS + 8];
    let mut sent = httparse::Request::new(&mut sent_headers);
    let parsed = sent.parse(&up);
    assert!(
        matches!(parsed, Ok(httparse::Status::Complete(n)) if n == up.len()),
        "the instance's head is not one complete request: {parsed:?} {:?}",
        String::from_utf8_lossy(&up)
    );
    assert_eq!(
        fixed_length(&sent).ok().flatten(),
        Some(framed),
        "framed differently for the instance: {:?}",
        String::from_utf8_lossy(&up)
    );
    let named = |name: &str| {
        sent.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    assert_eq!(named("host"), 1, "{:?}", String::from_utf8_lossy(&up));
    let host = sent
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"));
    assert_eq!(host.map(|h| h.value), Some(admitted.raw_host));
    assert!(named("content-length") <= 1);
    for hop in [
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
    ] {
        assert_eq!(named(hop), 0, "{hop} reached the instance");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smuggling_shapes_keep_their_framing() {
        for head in [
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 05\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nConnection: host, close\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-a\r\nX-A: 1\r\nTE: trailers\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        ] {
            check(head.as_bytes());
        }
    }
}
