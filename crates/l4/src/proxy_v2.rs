//! PROXY protocol version 2 (haproxy.org/download/2.9/doc/proxy-protocol.txt): a binary
//! header in front of a relayed TCP stream that carries the real client's address, so
//! the hop through a TCP proxy (load balancer → edge, edge → app) does not hide it.
//!
//! Written here rather than taken from the `ppp` crate: the format is a fixed 16 bytes
//! plus one length-prefixed block, this keeps the dependency tree smaller, and it gives
//! the exact behaviour the edge needs: an incomplete header is told apart from an invalid
//! one, every limit is ours, and [`read_header`] never reads past the header.

mod block;
mod read;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

pub use read::read_header;

use block::check_family;

/// The 12 bytes every v2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version and command, family and transport, and the block's length.
pub const FIXED_LEN: usize = 16;
/// The longest header: the length field is 16 bits.
pub const MAX_LEN: usize = FIXED_LEN + u16::MAX as usize;

const VERSION: u8 = 0x20;
const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;
const AF_UNSPEC: u8 = 0x0;
const AF_INET: u8 = 0x1;
const AF_INET6: u8 = 0x2;
const AF_UNIX: u8 = 0x3;
const TRANSPORT_UNSPEC: u8 = 0x0;
const TRANSPORT_STREAM: u8 = 0x1;
const TRANSPORT_DGRAM: u8 = 0x2;
const INET_LEN: usize = 12;
const INET6_LEN: usize = 36;
const UNIX_LEN: usize = 216;

/// What a PROXY v2 header says about the connection it precedes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The proxy's own connection (a health check): use the real peer address.
    Local,
    /// A relayed TCP connection from `source` to `destination`.
    Proxy {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// A relayed connection whose addresses are unknown or not IP (family UNSPEC or
    /// UNIX): the protocol says to use the real peer address.
    Unknown,
}

impl Header {
    /// The client address to believe, when the header gives one.
    pub fn source(&self) -> Option<SocketAddr> {
        match self {
            Header::Proxy { source, .. } => Some(*source),
            Header::Local | Header::Unknown => None,
        }
    }

    /// The header's bytes. Mixed families are sent as IPv6, IPv4 mapped into it.
    pub fn encode(&self) -> Vec<u8> {
        let (command, family, block) = match *self {
            Header::Local => (CMD_LOCAL, AF_UNSPEC << 4 | TRANSPORT_UNSPEC, Vec::new()),
            Header::Unknown => (CMD_PROXY, AF_UNSPEC << 4 | TRANSPORT_UNSPEC, Vec::new()),
            Header::Proxy {
                source,
                destination,
            } => addresses(source, destination),
        };
        let mut out = Vec::with_capacity(FIXED_LEN + block.len());
        out.extend(SIGNATURE);
        out.push(VERSION | command);
        out.push(family);
        out.extend((block.len() as u16).to_be_bytes());
        out.extend(block);
        out
    }
}

/// Encodes the header a proxy sends in front of a TCP connection it relays.
pub fn encode(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    Header::Proxy {
        source,
        destination,
    }
    .encode()
}

fn addresses(source: SocketAddr, destination: SocketAddr) -> (u8, u8, Vec<u8>) {
    let mut block = Vec::with_capacity(INET6_LEN);
    let family = match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            block.extend(s.octets());
            block.extend(d.octets());
            AF_INET
        }
        (s, d) => {
            block.extend(v6(s).octets());
            block.extend(v6(d).octets());
            AF_INET6
        }
    };
    block.extend(source.port().to_be_bytes());
    block.extend(destination.port().to_be_bytes());
    (CMD_PROXY, family << 4 | TRANSPORT_STREAM, block)
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// What [`decode`] made of the bytes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Valid so far; at least `needed` more bytes complete the header.
    Incomplete { needed: usize },
    /// The header, and how many bytes it took: the stream's data starts after them.
    Complete { header: Header, len: usize },
}

/// Why the start of a stream is not a PROXY v2 header the edge accepts.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "the connection does not start with a PROXY v2 header; only enable PROXY protocol \
         on a listener whose every client (the load balancer in front) sends one"
    )]
    Signature,
    #[error("the PROXY header has version {0}, not 2; configure the sender for version 2")]
    Version(u8),
    #[error("the PROXY header has unknown command {0:#x}")]
    Command(u8),
    #[error("the PROXY header has unknown address family or transport {0:#04x}")]
    Family(u8),
    #[error("the PROXY header relays a datagram stream, which a TCP listener cannot carry")]
    Datagram,
    #[error("the PROXY header's {len}-byte address block is shorter than its family's {min}")]
    Length { len: usize, min: usize },
    #[error("the PROXY header's TLVs do not fit its length")]
    Tlv,
    #[error("no whole PROXY header arrived within {0:?}")]
    Timeout(std::time::Duration),
    #[error("reading the PROXY header failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Decodes the header at the start of `buf`; bytes after it are not looked at.
pub fn decode(buf: &[u8]) -> Result<Decoded, ProxyError> {
    let seen = buf.len().min(SIGNATURE.len());
    if buf[..seen] != SIGNATURE[..seen] {
        return Err(ProxyError::Signature);
    }
    if buf.len() < FIXED_LEN {
        if let Some(&byte) = buf.get(12) {
            check_version(byte)?;
        }
        return Ok(Decoded::Incomplete {
            needed: FIXED_LEN - buf.len(),
        });
    }
    let (version, family) = (buf[12], buf[13]);
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let command = check_version(version)?;
    let total = FIXED_LEN + len;
    let block = check_family(command, family, len)?;
    if buf.len() < total {
        return Ok(Decoded::Incomplete {
            needed: total - buf.len(),
        });
    }
    let header = block.parse(&buf[FIXED_LEN..total])?;
    Ok(Decoded::Complete { header, len: total })
}

fn check_version(byte: u8) -> Result<u8, ProxyError> {
    match (byte >> 4, byte & 0x0f) {
        (2, command @ (CMD_LOCAL | CMD_PROXY)) => Ok(command),
        (2, command) => Err(ProxyError::Command(command)),
        (version, _) => Err(ProxyError::Version(version)),
    }
}

#[cfg(test)]
mod tests;
