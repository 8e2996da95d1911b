//! The ClientHello parser on arbitrary bytes: it must never panic, and what it accepts
//! must be self-consistent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use zeitwork_l4::client_hello::{MAX_HELLO_BYTES, Parsed, is_normalised_host_name, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Parsed::Complete(hello)) => {
            assert!(hello.len <= data.len() && hello.len <= MAX_HELLO_BYTES);
            if let Some(name) = &hello.server_name {
                assert!(
                    is_normalised_host_name(name),
                    "SNI {name:?} is not normalised"
                );
            }
            assert!(hello.alpn.iter().all(|p| !p.is_empty() && p.len() < 256));
            // Only the hello's own records matter: without what follows it parses the
            // same, and one byte short it is still awaited, not refused.
            let alone = parse(&data[..hello.len]);
            assert!(
                matches!(&alone, Ok(Parsed::Complete(h)) if *h == hello),
                "{alone:?}"
            );
            let short = parse(&data[..hello.len - 1]);
            assert!(matches!(short, Ok(Parsed::Incomplete { .. })), "{short:?}");
        }
        Ok(Parsed::Incomplete { needed_hint }) => {
            // Waiting never goes past the cap.
            let needed = needed_hint.unwrap_or(1);
            assert!(needed >= 1 && data.len() + needed <= MAX_HELLO_BYTES);
        }
        Err(_) => {}
    }
});
