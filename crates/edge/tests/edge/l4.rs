//! Layer 4 at the edge: `tls-passthrough` routes handed to the app by SNI without
//! terminating TLS (after a PROXY v2 header when the route asks for one), other names
//! still terminated by the edge, and PROXY v2 from a trusted load balancer ([`trusted`]).

mod app;
mod tcp;
mod trusted;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;
use zeitwork_core::EventData;
use zeitwork_l4::ProxyHeader;

use crate::support::{App, BASE, Backend, World, eventually, exchange};
use crate::tls::{Secure, TestCerts};
use app::{TlsApp, echo, get};

/// The name the passthrough route serves.
const PASSED: &str = "db.example.com";

/// A `tls-passthrough` route from [`PASSED`] to the prod env's `web` process on `port`,
/// balanced by least connections.
pub async fn passthrough(world: &World, app: &App, port: u16, proxy_protocol: bool) {
    world.verified_domain(app, "prod", PASSED).await;
    let route = EventData::RouteCreated {
        route_id: Uuid::now_v7(),
        env_id: app.env("prod"),
        host: Some(PASSED.into()),
        process: "web".into(),
        mode: "tls-passthrough".into(),
        port,
        proxy_protocol,
        policy: serde_json::from_value(json!({"balance": "least-connections"})).unwrap(),
        listen_port: None,
        declared: false,
    };
    world.emit(app.org, route).await;
}

/// One healthy `web` instance on 127.0.0.1 (HTTP at `web`) whose TLS app listens on
/// `tls_port`, reached by a passthrough route.
pub async fn world(tls_port: u16, proxy_protocol: bool) -> (World, Backend) {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let web = Backend::start("web").await;
    let ids = world.deploy(&app, "prod", "one", 1).await;
    world.healthy(&app, ids[0], web.addr).await;
    passthrough(&world, &app, tls_port, proxy_protocol).await;
    (world, web)
}

#[tokio::test]
async fn passthrough_hands_the_handshake_to_the_app_and_other_names_end_at_the_edge() {
    let app = TlsApp::start("127.0.0.1:0", false, TestCerts::new(&[PASSED])).await;
    let (world, web) = world(app.addr.port(), false).await;
    let host = format!("shop-acme.{BASE}");
    // The edge has a certificate for the passthrough name too: it must not use it.
    let edge = Secure::start(&world, TestCerts::new(&[&host, PASSED])).await;

    let mut tls = app
        .handshake(TcpStream::connect(edge.https).await.unwrap())
        .await;
    echo(&mut tls).await;
    echo(&mut tls).await;

    let tls = edge.connect(&host, &[b"http/1.1"]).await.unwrap();
    let served = &tls.get_ref().1.peer_certificates().unwrap()[0];
    assert_eq!(
        *served,
        edge.certs.leaf(&host),
        "the edge's own certificate"
    );
    let answer = get(tls, &host).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("backend=web"), "{answer}");
    assert_eq!(web.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_proxy_protocol_route_gets_the_client_address_before_the_hello() {
    let app = TlsApp::start("127.0.0.1:0", true, TestCerts::new(&[PASSED])).await;
    let (world, _web) = world(app.addr.port(), true).await;
    let edge = Secure::start(&world, TestCerts::new(&[])).await;
    let tcp = TcpStream::connect(edge.https).await.unwrap();
    let client = tcp.local_addr().unwrap();
    let mut tls = app.handshake(tcp).await;
    echo(&mut tls).await;
    let headers = app.headers.lock().unwrap().clone();
    let expected = ProxyHeader::Proxy {
        source: client,
        destination: edge.https,
    };
    assert_eq!(headers, [expected]);

    let raw = format!("GET / HTTP/1.1\r\nHost: {PASSED}\r\nConnection: close\r\n\r\n");
    let reply = exchange(edge.http, raw.as_bytes()).await.remove(0);
    assert_eq!(
        reply.status, 404,
        "a passthrough name is not served over HTTP"
    );
}

#[tokio::test]
async fn garbage_instead_of_a_hello_is_closed_and_the_edge_serves_on() {
    let app = TlsApp::start("127.0.0.1:0", false, TestCerts::new(&[PASSED])).await;
    let (world, _web) = world(app.addr.port(), false).await;
    let edge = Secure::start(&world, TestCerts::new(&[])).await;
    let hello_start: &[u8] = &[22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3];
    for garbage in [&b"\x00\x01\x02 not TLS at all"[..], hello_start] {
        let mut stream = TcpStream::connect(edge.https).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        // Half a hello and no more: the client gives up, and so does the edge.
        stream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest);
        let read = tokio::time::timeout(Duration::from_secs(5), read).await;
        assert!(read.expect("the edge closes").is_ok());
        assert!(rest.is_empty(), "nothing is answered: {rest:?}");
    }
    echo(
        &mut app
            .handshake(TcpStream::connect(edge.https).await.unwrap())
            .await,
    )
    .await;
    assert_eq!(
        app.accepted.load(Ordering::SeqCst),
        1,
        "garbage reached no app"
    );
}

#[tokio::test]
async fn passthrough_connections_count_for_least_connections() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let certs = TestCerts::new(&[PASSED]);
    let apps = [
        TlsApp::start(&format!("127.0.0.2:{port}"), false, certs.clone()).await,
        TlsApp::start(&format!("127.0.0.3:{port}"), false, certs).await,
    ];
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let ids = world.deploy(&app, "prod", "two", 2).await;
    for (id, tls) in ids.iter().zip(&apps) {
        world.healthy(&app, *id, tls.addr).await;
    }
    passthrough(&world, &app, port, false).await;
    let edge = Secure::start(&world, TestCerts::new(&[])).await;

    let mut held = apps[0]
        .handshake(TcpStream::connect(edge.https).await.unwrap())
        .await;
    echo(&mut held).await;
    let busy = usize::from(apps[1].accepted.load(Ordering::SeqCst) == 1);
    let idle = &apps[1 - busy];
    // Round-robin would alternate; least-connections keeps away from the held one.
    for n in 1..=4 {
        let mut tls = idle
            .handshake(TcpStream::connect(edge.https).await.unwrap())
            .await;
        echo(&mut tls).await;
        drop(tls);
        eventually("the app saw the close", || async {
            idle.open.load(Ordering::SeqCst) == 0
        })
        .await;
        // The edge's side of the close follows the app's.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(idle.accepted.load(Ordering::SeqCst), n);
    }
    assert_eq!(apps[busy].accepted.load(Ordering::SeqCst), 1);
    echo(&mut held).await;
}
