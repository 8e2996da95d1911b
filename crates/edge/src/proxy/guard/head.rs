//! Reading a request head the way hyper does: where it ends, and how its body is framed.

use super::chunk::Chunk;
use super::{Refusal, State};

/// Where in `input` the head being collected in `head` ends (just past its blank line).
pub(in crate::proxy) fn head_end(head: &[u8], input: &[u8]) -> Option<usize> {
    let at = |i: usize, back: usize| match i.checked_sub(back) {
        Some(j) => input.get(j).copied(),
        None => head.len().checked_sub(back - i).map(|j| head[j]),
    };
    (0..input.len())
        .find(|&i| {
            input[i] == b'\n'
                && (at(i, 1) == Some(b'\n') || (at(i, 1) == Some(b'\r') && at(i, 2) == Some(b'\n')))
        })
        .map(|i| i + 1)
}

/// How the body of a parsed head is framed, as hyper decides it (RFC 9112, 6.3).
pub(super) fn framing(request: &httparse::Request<'_, '_>) -> Result<State, Refusal> {
    let mut length = None;
    let mut chunked = None;
    let mut upgrade = false;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let n = content_length(header.value).ok_or(Refusal::Malformed)?;
            if length.is_some_and(|l| l != n) {
                return Err(Refusal::Malformed);
            }
            length = Some(n);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header
                .value
                .rsplit(|b| *b == b',')
                .next()
                .unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    match (length, chunked) {
        (Some(_), Some(_)) => Err(Refusal::Conflicting),
        (None, Some(true)) if request.version == Some(1) => Ok(State::Chunked(Chunk::default())),
        (None, Some(_)) => Err(Refusal::Malformed),
        // What follows an upgrade request may be another protocol (a WebSocket): it
        // passes untouched, and the proxy closes the connection if the upgrade is refused.
        (Some(0) | None, None) if upgrade && request.version == Some(1) => Ok(State::Opaque),
        (Some(0) | None, None) => Ok(State::Head),
        (Some(n), None) => Ok(State::Fixed(n)),
    }
}

/// `5`: digits only, as hyper reads it (a list such as `5, 5` is refused by hyper, so
/// the express lane must not take it either: the two lanes frame alike).
pub(in crate::proxy) fn content_length(value: &[u8]) -> Option<u64> {
    let p = value.trim_ascii();
    let digits = !p.is_empty() && p.len() <= 19 && p.iter().all(u8::is_ascii_digit);
    digits.then(|| std::str::from_utf8(p).ok()?.parse::<u64>().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_parse_like_hyper() {
        assert_eq!(content_length(b"42"), Some(42));
        assert_eq!(content_length(b"007"), Some(7));
        assert_eq!(content_length(b"7, 7"), None, "hyper refuses lists");
        assert_eq!(content_length(b"+7"), None);
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"99999999999999999999"), None);
    }

    #[test]
    fn heads_end_at_the_first_blank_line_even_across_pieces() {
        assert_eq!(head_end(b"", b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r", b"\nbody"), Some(1));
        assert_eq!(head_end(b"GET / HTTP/1.1\n", b"\n"), Some(1));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r", b"\nC: d"), None);
    }
}
