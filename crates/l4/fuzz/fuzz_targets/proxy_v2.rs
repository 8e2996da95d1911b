//! The PROXY v2 decoder on arbitrary bytes: it must never panic, and what it accepts
//! must survive a round trip through the encoder.

#![no_main]

use libfuzzer_sys::fuzz_target;
use zeitwork_l4::proxy_v2::{Decoded, FIXED_LEN, MAX_LEN, decode};

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(Decoded::Complete { header, len }) => {
            assert!((FIXED_LEN..=MAX_LEN).contains(&len) && len <= data.len());
            let encoded = header.encode();
            let again = decode(&encoded);
            assert!(
                matches!(again, Ok(Decoded::Complete { header: h, len: l }) if h == header && l == encoded.len()),
                "{header:?} does not round-trip: {again:?}"
            );
            let short = decode(&data[..len - 1]);
            assert!(matches!(short, Ok(Decoded::Incomplete { .. })), "{short:?}");
        }
        Ok(Decoded::Incomplete { needed }) => {
            assert!(needed >= 1 && data.len() + needed <= MAX_LEN);
        }
        Err(_) => {}
    }
});
