//! The address block after the fixed 16 bytes: addresses by family, then TLVs.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::{
    AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC, CMD_LOCAL, Header, INET_LEN, INET6_LEN, ProxyError,
    TRANSPORT_DGRAM, TRANSPORT_UNSPEC, UNIX_LEN,
};
use crate::wire::Reader;

/// How the address block after the fixed part is to be read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Block {
    /// LOCAL: the block, whatever its family says, is discarded unread, as the
    /// protocol demands.
    Local,
    Inet4,
    Inet6,
    /// UNSPEC or UNIX addresses, or an unspecified transport: nothing to use, so the
    /// block is discarded unread too.
    Unknown,
}

/// Checks family and length from the fixed part, so a bad header is refused before its
/// block arrives.
pub(super) fn check_family(command: u8, family: u8, len: usize) -> Result<Block, ProxyError> {
    let (af, transport) = (family >> 4, family & 0x0f);
    if af > AF_UNIX || transport > TRANSPORT_DGRAM {
        return Err(ProxyError::Family(family));
    }
    if command == CMD_LOCAL {
        return Ok(Block::Local);
    }
    if transport == TRANSPORT_DGRAM {
        return Err(ProxyError::Datagram);
    }
    // Each family's addresses must fit, whatever the transport.
    let (block, min) = match af {
        AF_UNSPEC => (Block::Unknown, 0),
        AF_INET => (Block::Inet4, INET_LEN),
        AF_INET6 => (Block::Inet6, INET6_LEN),
        _ => (Block::Unknown, UNIX_LEN),
    };
    let block = if transport == TRANSPORT_UNSPEC {
        Block::Unknown
    } else {
        block
    };
    if len < min {
        return Err(ProxyError::Length { len, min });
    }
    Ok(block)
}

impl Block {
    pub(super) fn parse(self, block: &[u8]) -> Result<Header, ProxyError> {
        match self {
            Block::Local => Ok(Header::Local),
            Block::Unknown => Ok(Header::Unknown),
            Block::Inet4 => inet(block, 4),
            Block::Inet6 => inet(block, 16),
        }
    }
}

/// Two addresses of `width` bytes, two ports, then TLVs.
fn inet(block: &[u8], width: usize) -> Result<Header, ProxyError> {
    let short = |_| ProxyError::Length {
        len: block.len(),
        min: 2 * width + 4,
    };
    let mut r = Reader::new(block);
    let source = ip(r.take(width).map_err(short)?);
    let destination = ip(r.take(width).map_err(short)?);
    let (source_port, destination_port) = (r.u16().map_err(short)?, r.u16().map_err(short)?);
    tlvs(r.remaining())?;
    Ok(Header::Proxy {
        source: SocketAddr::new(source, source_port),
        destination: SocketAddr::new(destination, destination_port),
    })
}

/// An address of 4 or 16 bytes.
fn ip(bytes: &[u8]) -> IpAddr {
    match <[u8; 4]>::try_from(bytes) {
        Ok(v4) => v4.into(),
        Err(_) => {
            <[u8; 16]>::try_from(bytes).map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), IpAddr::from)
        }
    }
}

/// TLVs (type, 16-bit length, value) are skipped, but must tile the rest of the block
/// exactly: a sender that gets them wrong may have got the addresses wrong too.
fn tlvs(rest: &[u8]) -> Result<(), ProxyError> {
    let mut r = Reader::new(rest);
    while !r.is_empty() {
        r.u8()
            .and_then(|_| r.vec16())
            .map_err(|_| ProxyError::Tlv)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_and_length_are_judged_from_the_fixed_part() {
        assert!(matches!(check_family(1, 0x11, 12), Ok(Block::Inet4)));
        assert!(matches!(check_family(1, 0x21, 36), Ok(Block::Inet6)));
        assert!(matches!(check_family(1, 0x10, 12), Ok(Block::Unknown)));
        assert!(matches!(check_family(1, 0x31, 216), Ok(Block::Unknown)));
        assert!(matches!(check_family(0, 0x12, 0), Ok(Block::Local)));
        assert!(matches!(
            check_family(1, 0x10, 11),
            Err(ProxyError::Length { .. })
        ));
        assert!(matches!(
            check_family(0, 0x51, 0),
            Err(ProxyError::Family(0x51))
        ));
    }

    #[test]
    fn tlvs_must_tile_the_rest() {
        assert!(tlvs(&[]).is_ok());
        assert!(tlvs(&[1, 0, 1, 9, 2, 0, 0]).is_ok());
        assert!(matches!(tlvs(&[1, 0, 2, 9]), Err(ProxyError::Tlv)));
        assert!(matches!(tlvs(&[1]), Err(ProxyError::Tlv)));
    }
}
