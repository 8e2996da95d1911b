//! Request heads through the express lane: whatever it takes, the instance must get one
//! request framed exactly as the client's was, with one Host and no hop-by-hop header
//! (`zeitwork_edge::fuzzing::express_head`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    zeitwork_edge::fuzzing::express_head(data);
});
