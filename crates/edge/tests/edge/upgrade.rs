//! Protocol upgrades (WebSockets) through the edge, and what happens when an app refuses one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{BASE, Running, World};

const NEVER: Duration = Duration::from_secs(3600);

/// An instance that switches to an echo protocol when asked (or, if `refuse`, answers
/// 200 instead), echoing every byte after the switch with its name in front.
async fn echo_server(name: &'static str, refuse: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service_fn(move |mut req: Request<hyper::body::Incoming>| async move {
                let asked = req.headers().get("upgrade").cloned();
                let response = match asked {
                    Some(protocol) if !refuse => {
                        let upgraded = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            let mut io = TokioIo::new(upgraded.await.unwrap());
                            let mut buf = [0u8; 1024];
                            loop {
                                let n = io.read(&mut buf).await.unwrap();
                                if n == 0 {
                                    return;
                                }
                                let mut out = name.as_bytes().to_vec();
                                out.extend_from_slice(b":");
                                out.extend_from_slice(&buf[..n]);
                                io.write_all(&out).await.unwrap();
                            }
                        });
                        Response::builder()
                            .status(StatusCode::SWITCHING_PROTOCOLS)
                            .header("connection", "upgrade")
                            .header("upgrade", protocol)
                            .body(Full::new(Bytes::new()))
                            .unwrap()
                    }
                    _ => Response::new(Full::new(Bytes::from_static(b"plain"))),
                };
                Ok::<_, Infallible>(response)
            });
            tokio::spawn(
                http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    addr
}

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: shop-acme.zeitwork.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Reads until `needle` has arrived.
async fn read_until(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf));
        let n = read.await.expect("more bytes in time").unwrap();
        assert!(
            n > 0,
            "closed before {:?}: {}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    seen
}

#[tokio::test]
async fn an_upgraded_connection_stays_with_its_instance_both_ways() {
    assert!(UPGRADE.contains(BASE));
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let ids = world.deploy(&app, "prod", "ws", 2).await;
    world
        .healthy(&app, ids[0], echo_server("a", false).await)
        .await;
    world
        .healthy(&app, ids[1], echo_server("b", false).await)
        .await;
    let edge = Running::start(&world, None, NEVER).await;

    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    stream.write_all(UPGRADE.as_bytes()).await.unwrap();
    let head = read_until(&mut stream, b"\r\n\r\n").await;
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");

    // Bytes that are not HTTP go through untouched, every time to the same instance.
    let mut first = None;
    for i in 0..5 {
        let frame = [0x81u8, 0x85, 0x37, 0xfa, 0x21, b'0' + i];
        stream.write_all(&frame).await.unwrap();
        let echoed = read_until(&mut stream, &frame).await;
        let who = echoed[0];
        assert_eq!(&echoed[1..2], b":");
        assert_eq!(
            *first.get_or_insert(who),
            who,
            "the connection moved instances"
        );
    }
    // Closing one side ends the tunnel.
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest);
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_refused_upgrade_is_answered_and_the_connection_closed() {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let ids = world.deploy(&app, "prod", "ws", 1).await;
    world
        .healthy(&app, ids[0], echo_server("a", true).await)
        .await;
    let edge = Running::start(&world, None, NEVER).await;

    // What follows a refused upgrade was never judged as HTTP: it must not be served.
    let smuggled = "GET /second HTTP/1.1\r\nHost: shop-acme.zeitwork.test\r\n\r\n";
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    stream
        .write_all(format!("{UPGRADE}{smuggled}").as_bytes())
        .await
        .unwrap();
    let mut all = Vec::new();
    let read = stream.read_to_end(&mut all);
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap()
        .unwrap();
    let all = String::from_utf8_lossy(&all).to_lowercase();
    assert!(all.starts_with("http/1.1 200"), "{all}");
    assert!(all.contains("connection: close"), "{all}");
    assert_eq!(all.matches("http/1.1 ").count(), 1, "{all}");
}
