//! Encoding and decoding, against hand-written headers from the specification.

use proptest::prelude::*;

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn complete(buf: &[u8]) -> (Header, usize) {
    match decode(buf) {
        Ok(Decoded::Complete { header, len }) => (header, len),
        other => panic!("expected a whole header, got {other:?}"),
    }
}

/// A header with the given version/command, family and block.
fn raw(version: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.extend([version, family]);
    out.extend((block.len() as u16).to_be_bytes());
    out.extend(block);
    out
}

#[test]
fn tcp4_matches_the_specification_bytes() {
    let bytes = encode(addr("192.0.2.1:56324"), addr("198.51.100.7:443"));
    let mut expected = SIGNATURE.to_vec();
    expected.extend([
        0x21, 0x11, 0, 12, 192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0x01, 0xbb,
    ]);
    assert_eq!(bytes, expected);
    assert_eq!(
        complete(&bytes),
        (
            Header::Proxy {
                source: addr("192.0.2.1:56324"),
                destination: addr("198.51.100.7:443")
            },
            28
        )
    );
}

#[test]
fn headers_round_trip() {
    for header in [
        Header::Local,
        Header::Unknown,
        Header::Proxy {
            source: addr("10.0.0.1:1"),
            destination: addr("10.0.0.2:65535"),
        },
        Header::Proxy {
            source: addr("[2001:db8::1]:50000"),
            destination: addr("[::1]:8443"),
        },
    ] {
        let bytes = header.encode();
        assert_eq!(complete(&bytes), (header, bytes.len()));
    }
}

#[test]
fn mixed_families_travel_as_ipv6() {
    let bytes = encode(addr("192.0.2.1:5"), addr("[2001:db8::2]:443"));
    assert_eq!(bytes[13], 0x21);
    let (header, _) = complete(&bytes);
    assert_eq!(header.source(), Some(addr("[::ffff:192.0.2.1]:5")));
}

#[test]
fn tlvs_are_skipped_and_unix_and_unspec_are_unknown() {
    let mut block = vec![127, 0, 0, 1, 127, 0, 0, 2, 0, 1, 0, 2];
    block.extend([0x04, 0, 0]); // PP2_TYPE_NOOP, empty
    block.extend([0x02, 0, 3, b'a', b'.', b't']); // PP2_TYPE_AUTHORITY
    let (header, _) = complete(&raw(0x21, 0x11, &block));
    assert_eq!(header.source(), Some(addr("127.0.0.1:1")));
    assert_eq!(complete(&raw(0x21, 0x31, &[0; 216])).0, Header::Unknown);
    assert_eq!(complete(&raw(0x21, 0x00, &[])).0, Header::Unknown);
    assert_eq!(complete(&raw(0x21, 0x00, &[0x04, 0])).0, Header::Unknown);
    // LOCAL ignores the family and discards the block.
    assert_eq!(complete(&raw(0x20, 0x11, &block)).0, Header::Local);
    assert_eq!(complete(&raw(0x20, 0x31, &[0xff; 3])).0, Header::Local);
}

#[test]
fn every_prefix_is_incomplete_and_data_after_is_ignored() {
    let bytes = encode(addr("[2001:db8::1]:1"), addr("[2001:db8::2]:2"));
    for cut in 0..bytes.len() {
        match decode(&bytes[..cut]) {
            Ok(Decoded::Incomplete { needed }) => assert!(cut + needed <= bytes.len()),
            other => panic!("{cut}: {other:?}"),
        }
    }
    let mut more = bytes.clone();
    more.extend(b"hello");
    assert_eq!(complete(&more).1, bytes.len());
}

#[test]
fn malformed_headers_are_refused() {
    let v4 = [0u8; 12];
    let check = |bytes: &[u8], ok: fn(&ProxyError) -> bool| {
        let got = decode(bytes);
        assert!(matches!(&got, Err(e) if ok(e)), "{bytes:?}: {got:?}");
    };
    check(b"PROXY TCP4 1.2.3.4", |e| {
        matches!(e, ProxyError::Signature)
    });
    check(b"\r\n\r\n\0\r\nQUIX", |e| {
        matches!(e, ProxyError::Signature)
    });
    check(&raw(0x11, 0x11, &v4), |e| {
        matches!(e, ProxyError::Version(1))
    });
    check(&raw(0x11, 0x11, &v4)[..13], |e| {
        matches!(e, ProxyError::Version(1))
    });
    check(&raw(0x22, 0x11, &v4), |e| {
        matches!(e, ProxyError::Command(2))
    });
    check(&raw(0x21, 0x41, &v4), |e| {
        matches!(e, ProxyError::Family(0x41))
    });
    check(&raw(0x21, 0x13, &v4), |e| {
        matches!(e, ProxyError::Family(0x13))
    });
    check(&raw(0x21, 0x12, &v4), |e| matches!(e, ProxyError::Datagram));
    check(&raw(0x21, 0x11, &v4[..11]), |e| {
        matches!(e, ProxyError::Length { len: 11, min: 12 })
    });
    check(&raw(0x21, 0x21, &v4), |e| {
        matches!(e, ProxyError::Length { len: 12, min: 36 })
    });
    check(&raw(0x21, 0x31, &[0; 100]), |e| {
        matches!(e, ProxyError::Length { .. })
    });
    // Lengths are checked from the fixed part alone, before the block arrives.
    check(&raw(0x21, 0x21, &v4)[..16], |e| {
        matches!(e, ProxyError::Length { .. })
    });
    let mut bad_tlv = v4.to_vec();
    bad_tlv.extend([0x04, 0, 5, 1]);
    check(&raw(0x21, 0x11, &bad_tlv), |e| matches!(e, ProxyError::Tlv));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn arbitrary_blocks_never_panic(
        command in 0u8..4,
        family in any::<u8>(),
        block in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let bytes = raw(0x20 | command, family, &block);
        if let Ok(Decoded::Complete { len, .. }) = decode(&bytes) {
            prop_assert_eq!(len, bytes.len());
        }
    }

    #[test]
    fn any_tcp_addresses_round_trip(
        a in any::<std::net::Ipv4Addr>(), b in any::<std::net::Ipv4Addr>(),
        c in any::<Ipv6Addr>(), d in any::<Ipv6Addr>(),
        p in any::<u16>(), q in any::<u16>(),
    ) {
        for (source, destination) in [
            (SocketAddr::new(a.into(), p), SocketAddr::new(b.into(), q)),
            (SocketAddr::new(c.into(), p), SocketAddr::new(d.into(), q)),
        ] {
            let header = Header::Proxy { source, destination };
            prop_assert_eq!(decode(&header.encode()).unwrap(), Decoded::Complete { header, len: header.encode().len() });
        }
    }
}
