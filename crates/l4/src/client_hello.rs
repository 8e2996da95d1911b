//! The TLS ClientHello a client sends first, read without terminating TLS.
//!
//! The edge peeks at it to route `tls-passthrough` routes by SNI (the bytes are then
//! replayed to the app, which does the handshake itself) and to tell ACME TLS-ALPN-01
//! validation handshakes apart. Everything here is untrusted input read before any
//! authentication, so every length is checked and the bytes the edge will buffer are
//! capped at [`MAX_HELLO_BYTES`].

mod body;
mod peek;
mod sni;
#[cfg(test)]
pub(crate) mod testing;

use std::time::Duration;

pub use peek::peek_client_hello;
pub use sni::is_normalised_host_name;

/// The most bytes the edge buffers while waiting for a whole ClientHello, record headers
/// included. Real hellos are well under 2 KiB (a few KiB with post-quantum key shares).
pub const MAX_HELLO_BYTES: usize = 64 * 1024;
/// The longest record accepted: 2^14 bytes of plaintext, plus the 2 KiB TLS allows for
/// a protected record's overhead, so nothing a conforming peer sends is refused.
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;
/// The ALPN protocol of ACME TLS-ALPN-01 validation handshakes (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

const RECORD_HEADER: usize = 5;
const HANDSHAKE_HEADER: usize = 4;
const CONTENT_HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;

/// What [`parse`] made of the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Nothing wrong yet, but the hello is not complete: read more and parse again.
    Incomplete {
        /// At least this many more bytes are needed, when the framing says so.
        needed_hint: Option<usize>,
    },
    /// The whole ClientHello.
    Complete(ClientHello),
}

/// The parts of a ClientHello the edge routes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The SNI host name: ASCII, lowercase, without a trailing dot, a valid hostname.
    /// `None` when the client sent none, or sent an IP literal (which RFC 6066 forbids;
    /// rustls ignores it the same way, so the edge and the app agree).
    pub server_name: Option<String>,
    /// The ALPN protocols offered, in the client's order of preference.
    pub alpn: Vec<Vec<u8>>,
    /// `legacy_version` of the hello (0x0303 for TLS 1.2 and 1.3).
    pub legacy_version: u16,
    /// The `supported_versions` extension (0x0304 is TLS 1.3); empty when absent.
    pub supported_versions: Vec<u16>,
    /// How many bytes from the start of the input the records carrying the hello take.
    pub len: usize,
}

impl ClientHello {
    /// Whether the client offers `protocol` by ALPN.
    pub fn offers_alpn(&self, protocol: &[u8]) -> bool {
        self.alpn.iter().any(|p| p == protocol)
    }

    /// Whether this is an ACME TLS-ALPN-01 validation handshake, which offers exactly
    /// `acme-tls/1` (RFC 8737, 3) and must be answered by the edge, not the app.
    pub fn is_acme_tls_alpn(&self) -> bool {
        matches!(self.alpn.as_slice(), [only] if only == ACME_TLS_ALPN)
    }
}

/// Why the first bytes of a connection are not a ClientHello the edge can route.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    #[error(
        "the client did not start a TLS handshake (first byte {first_byte:#04x}); it may be \
         speaking plain HTTP or another protocol to a TLS port"
    )]
    NotTls { first_byte: u8 },
    #[error("the client sent an SSLv2-style hello; only TLS 1.0 and later are served")]
    SslV2,
    #[error("the client's record version {version:#06x} is not TLS; it is not speaking TLS")]
    BadRecordVersion { version: u16 },
    #[error("the client sent a TLS record of {len} bytes, over the {max} bytes TLS allows")]
    RecordTooLarge { len: usize, max: usize },
    #[error("the client sent an empty handshake record, which TLS forbids")]
    EmptyRecord,
    #[error("the client interleaved a record of content type {content_type} into its ClientHello")]
    UnexpectedRecord { content_type: u8 },
    #[error("the client's first handshake message has type {msg_type}, not ClientHello (1)")]
    NotClientHello { msg_type: u8 },
    #[error("the ClientHello does not fit in the {limit} bytes the edge buffers before routing")]
    TooLarge { limit: usize },
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    #[error("the ClientHello repeats extension {0}, which TLS forbids")]
    DuplicateExtension(u16),
    #[error("the ClientHello's server name (SNI) is not a valid hostname: {0}")]
    BadServerName(&'static str),
    #[error("the client sent no complete ClientHello within {0:?}")]
    Timeout(Duration),
    #[error("the client closed the connection after {received} bytes, before a whole ClientHello")]
    Closed { received: usize },
    #[error("reading the ClientHello failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Parses the ClientHello at the start of `buf`, reassembling it from as many handshake
/// records as the client split it into. Every prefix of a valid hello is
/// [`Parsed::Incomplete`]; anything that cannot become a valid hello is an error as soon
/// as the bytes show it. Bytes after the hello's last record are ignored.
pub fn parse(buf: &[u8]) -> Result<Parsed, HelloError> {
    let mut offset = 0;
    // Where the handshake bytes lie in `buf`, record by record.
    let mut spans: Vec<std::ops::Range<usize>> = Vec::new();
    let mut gathered = 0;
    loop {
        // The hello goes on past the last record that fits.
        if offset + RECORD_HEADER > MAX_HELLO_BYTES {
            return Err(too_large());
        }
        let Some(header) = buf.get(offset..offset + RECORD_HEADER) else {
            check_record_start(&buf[offset..], offset == 0)?;
            return Ok(incomplete(offset + RECORD_HEADER - buf.len()));
        };
        check_record_start(header, offset == 0)?;
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len > MAX_RECORD_LEN {
            return Err(HelloError::RecordTooLarge {
                len,
                max: MAX_RECORD_LEN,
            });
        }
        if len == 0 {
            return Err(HelloError::EmptyRecord);
        }
        let start = offset + RECORD_HEADER;
        let end = start + len;
        if end > MAX_HELLO_BYTES {
            return Err(too_large());
        }
        spans.push(start..end.min(buf.len()));
        gathered += end.min(buf.len()) - start;
        let message_len = handshake_header(buf, &spans)?;
        if end > buf.len() {
            return Ok(incomplete(end - buf.len()));
        }
        offset = end;
        let Some(message_len) = message_len else {
            continue;
        };
        if gathered >= HANDSHAKE_HEADER + message_len {
            let message: Vec<u8> = spans
                .iter()
                .flat_map(|s| &buf[s.clone()])
                .copied()
                .collect();
            let hello = &message[HANDSHAKE_HEADER..HANDSHAKE_HEADER + message_len];
            return body::parse(hello, offset).map(Parsed::Complete);
        }
    }
}

fn incomplete(needed: usize) -> Parsed {
    Parsed::Incomplete {
        needed_hint: Some(needed),
    }
}

fn too_large() -> HelloError {
    HelloError::TooLarge {
        limit: MAX_HELLO_BYTES,
    }
}

/// Checks as much of a record header as has arrived, so garbage is refused at once.
fn check_record_start(header: &[u8], first: bool) -> Result<(), HelloError> {
    match (first, header.first().copied()) {
        (_, None | Some(CONTENT_HANDSHAKE)) => {}
        // SSLv2 record headers have the high bit set; no TLS content type does.
        (true, Some(t)) if t & 0x80 != 0 => return Err(HelloError::SslV2),
        (true, Some(t)) => return Err(HelloError::NotTls { first_byte: t }),
        (false, Some(t)) => return Err(HelloError::UnexpectedRecord { content_type: t }),
    }
    // Every TLS version so far is 3.x, and none past 3.4 (TLS 1.3) exists.
    let (major, minor) = (header.get(1).copied(), header.get(2).copied());
    match (major, minor) {
        (None, _) | (Some(3), None | Some(0..=4)) => Ok(()),
        (Some(major), minor) => Err(HelloError::BadRecordVersion {
            version: u16::from_be_bytes([major, minor.unwrap_or_default()]),
        }),
    }
}

/// The handshake message's length once its 4-byte header has arrived, after checking
/// that it is a ClientHello that can fit.
fn handshake_header(
    buf: &[u8],
    spans: &[std::ops::Range<usize>],
) -> Result<Option<usize>, HelloError> {
    let mut header = spans.iter().flat_map(|s| &buf[s.clone()]).copied();
    let Some(msg_type) = header.next() else {
        return Ok(None);
    };
    if msg_type != CLIENT_HELLO {
        return Err(HelloError::NotClientHello { msg_type });
    }
    let len: Vec<u8> = header.take(3).collect();
    let [a, b, c] = len[..] else {
        return Ok(None);
    };
    let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
    if RECORD_HEADER + HANDSHAKE_HEADER + len > MAX_HELLO_BYTES {
        return Err(too_large());
    }
    Ok(Some(len))
}

#[cfg(test)]
mod tests;
