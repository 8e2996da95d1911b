//! Header rules both lanes share: which headers a `Connection` header may make
//! hop-by-hop, and which client claims the edge drops before stating its own.

/// Headers that frame or route a message: a `Connection` header naming one of them is
/// not obeyed (RFC 9110, 7.6.1: a sender must not list end-to-end fields there). Were
/// they removable, a request's body would reach the instance without its length, as
/// the start of a next request on a connection other clients share.
const FRAMING: [&str; 4] = ["content-length", "host", "transfer-encoding", "trailer"];

/// Headers in which a client claims who it is or how it came; the edge states the
/// truth in its own `X-Forwarded-*` and request id, and drops the rest.
pub(super) const CLIENT_CLAIMS: [&str; 7] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "x-real-ip",
    "true-client-ip",
];

/// Whether a `Connection` header's `token` may make the header it names hop-by-hop.
pub(super) fn removable(token: &[u8]) -> bool {
    !FRAMING
        .iter()
        .any(|f| f.as_bytes().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_routing_headers_cannot_be_named_away() {
        for token in ["Content-Length", "HOST", "transfer-encoding", "Trailer"] {
            assert!(!removable(token.as_bytes()), "{token}");
        }
        assert!(removable(b"x-secret"));
        assert!(removable(b"keep-alive"));
    }
}
