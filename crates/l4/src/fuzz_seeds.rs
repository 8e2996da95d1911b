//! The seed corpus of the fuzz targets (fuzz/seeds/), written from real inputs. Run
//! `cargo test -p zeitwork-l4 -- --ignored write_fuzz_seeds` to write it again.

use std::net::SocketAddr;
use std::path::Path;

use crate::client_hello::testing::{fragment, rustls_hello, rustls_tls12_hello};
use crate::proxy_v2::{self, Header};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
#[ignore = "writes files into the source tree"]
fn write_fuzz_seeds() {
    let h2 = rustls_hello(Some("app.example.com"), &[b"h2", b"http/1.1"]);
    write("client_hello", "tls13-sni-alpn", &h2);
    write("client_hello", "tls13-no-sni", &rustls_hello(None, &[]));
    write(
        "client_hello",
        "tls12-sni",
        &rustls_tls12_hello(Some("old.example.com")),
    );
    write(
        "client_hello",
        "acme-tls-alpn",
        &rustls_hello(Some("a.test"), &[b"acme-tls/1"]),
    );
    write("client_hello", "fragmented-7", &fragment(&h2, 7));
    write("client_hello", "truncated", &h2[..h2.len() / 2]);

    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    let v4 = proxy_v2::encode(addr("192.0.2.1:56324"), addr("198.51.100.7:443"));
    write("proxy_v2", "tcp4", &v4);
    let v6 = proxy_v2::encode(addr("[2001:db8::1]:1"), addr("[2001:db8::2]:443"));
    write("proxy_v2", "tcp6", &v6);
    write("proxy_v2", "local", &Header::Local.encode());
    write("proxy_v2", "unspec", &Header::Unknown.encode());
    let mut with_tlvs = v4.clone();
    with_tlvs[15] += 9; // the block grows by a NOOP TLV and an AUTHORITY TLV
    with_tlvs.extend([0x04, 0, 0, 0x02, 0, 3, b'a', b'.', b't']);
    with_tlvs.extend(b"GET / HTTP/1.1\r\n");
    write("proxy_v2", "tcp4-tlvs-then-data", &with_tlvs);
}
