//! PROXY v2 from a trusted load balancer in front of the edge: its source address is the
//! client, on plain HTTP, on terminated HTTPS and on to a passthrough app; a LOCAL header
//! (a health check) stands for the peer. From anyone else a header is never believed.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeitwork_edge::Config;
use zeitwork_l4::{ProxyHeader, proxy_v2};

use super::app::{TlsApp, echo, get};
use super::{PASSED, world};
use crate::support::{BASE, Running, exchange};
use crate::tls::{Secure, TestCerts};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Trusting every loopback peer: the tests connect from 127.0.0.1.
fn trusting(trusted: bool) -> Config {
    Config {
        resync_every: Duration::from_secs(3600),
        trusted_proxies: match trusted {
            true => vec!["127.0.0.0/8".parse().unwrap()],
            false => Vec::new(),
        },
        ..Config::new(BASE)
    }
}

/// What the edge at `edge` answers to `bytes` (then nothing more) before it closes the
/// connection.
async fn raw(edge: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(edge).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let read = tokio::time::timeout(Duration::from_secs(10), read).await;
    let _ = read.expect("the edge closes the connection");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_and_anyone_else_names_nobody() {
    // The world of the passthrough tests; only its plain `web` instance is used here.
    let (world, web) = world(1, false).await;
    let host = format!("shop-acme.{BASE}");
    let get = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let proxied = |header: Vec<u8>| [header, get.clone().into_bytes()].concat();
    let from_lb = proxied(proxy_v2::encode(
        addr("203.0.113.7:4711"),
        addr("198.51.100.1:80"),
    ));

    let trusted = Running::with(&world, None, trusting(true)).await;
    let reply = exchange(trusted.addr, &from_lb).await.remove(0);
    assert_eq!(reply.seen("x-forwarded-for"), Some("203.0.113.7"));
    let reply = exchange(trusted.addr, &proxied(ProxyHeader::Local.encode())).await;
    assert_eq!(reply[0].seen("x-forwarded-for"), Some("127.0.0.1"), "LOCAL");
    let answer = raw(trusted.addr, get.as_bytes()).await;
    assert_eq!(answer, "", "a trusted peer must send a header");
    // What `zeitwork server lb` checks do: a LOCAL header, then close.
    assert_eq!(raw(trusted.addr, &ProxyHeader::Local.encode()).await, "");
    assert_eq!(web.hits.load(Ordering::SeqCst), 2);

    let untrusted = Running::with(&world, None, trusting(false)).await;
    let answer = raw(untrusted.addr, &from_lb).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "refused as bad HTTP: {answer}"
    );
    assert!(!answer.contains("203.0.113.7"));
    assert_eq!(
        web.hits.load(Ordering::SeqCst),
        2,
        "nothing reached the app"
    );
}

#[tokio::test]
async fn over_tls_a_trusted_proxys_client_is_seen_and_passed_on() {
    let app = TlsApp::start("127.0.0.1:0", true, TestCerts::new(&[PASSED])).await;
    let (world, web) = world(app.addr.port(), true).await;
    let host = format!("shop-acme.{BASE}");
    let edge = Secure::with(&world, TestCerts::new(&[&host]), trusting(true)).await;
    let (source, destination) = (addr("203.0.113.7:4711"), addr("198.51.100.1:443"));

    // Passed through: the app's PROXY header carries the load balancer's client.
    let mut tcp = TcpStream::connect(edge.https).await.unwrap();
    tcp.write_all(&proxy_v2::encode(source, destination))
        .await
        .unwrap();
    echo(&mut app.handshake(tcp).await).await;
    let expected = ProxyHeader::Proxy {
        source,
        destination,
    };
    assert_eq!(*app.headers.lock().unwrap(), [expected]);

    // Terminated by the edge: the app behind it sees the same client.
    let mut tcp = TcpStream::connect(edge.https).await.unwrap();
    tcp.write_all(&proxy_v2::encode(source, destination))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from(host.clone()).unwrap();
    let tls = edge.certs.client(&[b"http/1.1"]).connect(name, tcp).await;
    let answer = get(tls.unwrap(), &host).await;
    assert!(answer.contains("x-forwarded-for: 203.0.113.7"), "{answer}");
    assert_eq!(web.hits.load(Ordering::SeqCst), 1);
}
