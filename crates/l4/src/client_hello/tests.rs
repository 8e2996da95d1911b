//! The record layer and the whole parse, on real hellos written by rustls.

use proptest::prelude::*;

use super::testing::{fragment, rustls_hello, rustls_tls12_hello};
use super::*;

fn complete(buf: &[u8]) -> ClientHello {
    match parse(buf) {
        Ok(Parsed::Complete(hello)) => hello,
        other => panic!("expected a whole hello, got {other:?}"),
    }
}

#[test]
fn a_rustls_hello_yields_its_name_and_protocols() {
    let bytes = rustls_hello(Some("Shop.Example.com"), &[b"h2", b"http/1.1"]);
    let hello = complete(&bytes);
    assert_eq!(hello.server_name.as_deref(), Some("shop.example.com"));
    assert_eq!(hello.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(hello.legacy_version, 0x0303);
    assert!(hello.supported_versions.contains(&0x0304));
    assert_eq!(hello.len, bytes.len());
}

#[test]
fn no_sni_is_no_name_and_tls12_hellos_parse() {
    assert_eq!(complete(&rustls_hello(None, &[])).server_name, None);
    let hello = complete(&rustls_tls12_hello(Some("old.test")));
    assert_eq!(hello.server_name.as_deref(), Some("old.test"));
    assert!(!hello.supported_versions.contains(&0x0304));
}

#[test]
fn acme_validation_hellos_are_told_apart() {
    assert!(complete(&rustls_hello(Some("a.test"), &[ACME_TLS_ALPN])).is_acme_tls_alpn());
    assert!(!complete(&rustls_hello(Some("a.test"), &[b"h2", ACME_TLS_ALPN])).is_acme_tls_alpn());
    assert!(!complete(&rustls_hello(Some("a.test"), &[])).is_acme_tls_alpn());
}

#[test]
fn hellos_split_across_records_are_reassembled() {
    let bytes = rustls_hello(Some("split.test"), &[b"h2"]);
    for size in [1, 2, 3, 4, 5, 7, 100, 511] {
        let split = fragment(&bytes, size);
        let hello = complete(&split);
        assert_eq!(hello.server_name.as_deref(), Some("split.test"), "{size}");
        assert_eq!(hello.len, split.len());
    }
}

#[test]
fn a_hello_over_16_kib_comes_in_several_records_from_rustls_itself() {
    let names: Vec<Vec<u8>> = (0..100u8).map(|i| vec![b'a' + i % 26; 200]).collect();
    let alpn: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    let bytes = rustls_hello(Some("big.test"), &alpn);
    let first_record = 5 + usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
    assert!(first_record < bytes.len(), "rustls split the hello");
    let hello = complete(&bytes);
    assert_eq!((hello.alpn.len(), hello.len), (100, bytes.len()));
}

#[test]
fn every_prefix_of_a_hello_is_incomplete() {
    for bytes in [
        rustls_hello(Some("prefix.test"), &[b"h2"]),
        fragment(&rustls_hello(None, &[]), 3),
    ] {
        for cut in 0..bytes.len() {
            match parse(&bytes[..cut]) {
                Ok(Parsed::Incomplete {
                    needed_hint: Some(n),
                }) => assert!(n >= 1 && cut + n <= bytes.len(), "{cut}: {n}"),
                other => panic!("prefix of {cut} bytes: {other:?}"),
            }
        }
    }
}

#[test]
fn bytes_after_the_hello_are_ignored() {
    let bytes = rustls_hello(Some("a.test"), &[]);
    let mut more = bytes.clone();
    more.extend([23, 3, 3, 0, 1, 0]);
    assert_eq!(complete(&more).len, bytes.len());
}

#[test]
fn other_protocols_are_refused_from_the_first_bytes() {
    assert!(matches!(
        parse(b"G"),
        Err(HelloError::NotTls { first_byte: b'G' })
    ));
    assert!(matches!(
        parse(b"SSH-2.0-x"),
        Err(HelloError::NotTls { .. })
    ));
    // An SSLv2-compatible ClientHello: two-byte length with the high bit set, type 1.
    assert!(matches!(
        parse(&[0x80, 0x2e, 0x01, 0x03, 0x01]),
        Err(HelloError::SslV2)
    ));
    assert!(matches!(
        parse(&[21, 3, 3, 0, 2, 2, 40]),
        Err(HelloError::NotTls { first_byte: 21 })
    ));
    assert!(matches!(
        parse(&[22, 2]),
        Err(HelloError::BadRecordVersion { .. })
    ));
    assert!(matches!(
        parse(&[22, 3, 9]),
        Err(HelloError::BadRecordVersion { version: 0x0309 })
    ));
}

#[test]
fn bad_framing_is_refused() {
    assert!(matches!(
        parse(&[22, 3, 1, 0x48, 1]),
        Err(HelloError::RecordTooLarge { len: 0x4801, .. })
    ));
    assert!(matches!(
        parse(&[22, 3, 1, 0, 0]),
        Err(HelloError::EmptyRecord)
    ));
    assert!(matches!(
        parse(&[22, 3, 1, 0, 4, 2]),
        Err(HelloError::NotClientHello { msg_type: 2 })
    ));
    let bytes = fragment(&rustls_hello(Some("a.test"), &[]), 50);
    let mut interleaved = bytes[..55].to_vec();
    interleaved.extend([23, 3, 3, 0, 1, 0]);
    assert!(matches!(
        parse(&interleaved),
        Err(HelloError::UnexpectedRecord { content_type: 23 })
    ));
    // Records of one byte each cost six bytes per handshake byte: over the cap, refused
    // as soon as a record would end past it.
    let tiny = fragment(&[22, 3, 1, 0, 4, 1, 0, 0x2c, 0], 1);
    let mut flood = tiny.clone();
    flood.extend([22, 3, 1, 0, 1, 0].repeat(MAX_HELLO_BYTES / 6));
    assert!(matches!(parse(&flood), Err(HelloError::TooLarge { .. })));
}

#[test]
fn a_corrupted_hello_is_an_error_not_a_panic() {
    let bytes = rustls_hello(Some("a.test"), &[b"h2"]);
    // The handshake length one short of what the record carries.
    let len = u32::from_be_bytes([0, bytes[6], bytes[7], bytes[8]]) - 1;
    let mut wrong_len = bytes.clone();
    wrong_len[6..9].copy_from_slice(&len.to_be_bytes()[1..]);
    assert!(matches!(parse(&wrong_len), Err(HelloError::Malformed(_))));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn arbitrary_handshake_records_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        size in 1usize..64,
    ) {
        let mut message = vec![1, 0];
        message.extend((body.len() as u16).to_be_bytes());
        message.extend(&body);
        let mut record = vec![22, 3, 1];
        record.extend((message.len() as u16).to_be_bytes());
        record.extend(message);
        if let Ok(Parsed::Complete(hello)) = parse(&fragment(&record, size))
            && let Some(name) = hello.server_name
        {
            prop_assert!(sni::is_normalised_host_name(&name));
        }
    }

    #[test]
    fn corrupting_a_real_hello_never_panics(at in 0usize..400, byte in any::<u8>()) {
        let mut bytes = rustls_hello(Some("fuzz.test"), &[b"h2"]);
        let at = at % bytes.len();
        bytes[at] = byte;
        if let Ok(Parsed::Complete(hello)) = parse(&bytes)
            && let Some(name) = hello.server_name
        {
            prop_assert!(sni::is_normalised_host_name(&name));
        }
    }
}
