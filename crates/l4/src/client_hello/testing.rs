//! Real ClientHellos for tests, written by rustls (ring provider only, as everywhere in
//! the workspace).

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// The first bytes a rustls client sends to `sni` (none for `None`) offering `alpn`.
pub(crate) fn rustls_hello(sni: Option<&str>, alpn: &[&[u8]]) -> Vec<u8> {
    hello_with(sni, alpn, rustls::DEFAULT_VERSIONS)
}

/// Like [`rustls_hello`], from a client that speaks TLS 1.2 only.
pub(crate) fn rustls_tls12_hello(sni: Option<&str>) -> Vec<u8> {
    hello_with(sni, &[], &[&rustls::version::TLS12])
}

fn hello_with(
    sni: Option<&str>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("ring supports these versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // rustls sends no SNI to an IP address.
    let name = match sni {
        Some(name) => ServerName::try_from(name.to_owned()).expect("a valid test name"),
        None => ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    };
    let mut conn = ClientConnection::new(Arc::new(config), name).expect("a client connection");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("writing to a Vec");
    }
    out
}

/// The same handshake bytes re-split into records carrying at most `size` bytes each,
/// as a client (or a middlebox) may send them.
pub(crate) fn fragment(records: &[u8], size: usize) -> Vec<u8> {
    let mut handshake = Vec::new();
    let mut rest = records;
    while rest.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        assert_eq!(rest[0], 22, "only handshake records are re-split");
        handshake.extend(&rest[5..5 + len]);
        rest = &rest[5 + len..];
    }
    let mut out = Vec::new();
    for piece in handshake.chunks(size) {
        out.extend([22, 3, 1]);
        out.extend((piece.len() as u16).to_be_bytes());
        out.extend(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_carry_the_same_handshake_bytes() {
        let hello = rustls_hello(Some("a.test"), &[]);
        let pieces = fragment(&hello, 10);
        assert_eq!(fragment(&pieces, 1 << 14), hello);
        assert_eq!(
            pieces.len(),
            hello.len() - 5 + (hello.len() - 5).div_ceil(10) * 5
        );
    }
}
