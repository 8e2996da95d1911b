//! `tcp` routes: reached on the port the operator allocated them, relayed to an
//! instance as bytes (after a PROXY v2 header when the route asks), opened and closed
//! with their routes; and a draining edge that waits for relayed connections.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt as _};
use tokio::net::TcpStream;
use uuid::Uuid;
use zeitwork_core::EventData;
use zeitwork_l4::ProxyHeader;

use super::app::{TlsApp, echo};
use super::{PASSED, world};
use crate::support::{App, Backend, Running, World, eventually};
use crate::tls::{Secure, TestCerts};

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A connection to `port` once the edge listens there (it opens route ports as it
/// starts serving and when a new table arrives).
async fn connect(port: u16) -> TcpStream {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(stream) => return stream,
            Err(e) if tokio::time::Instant::now() > deadline => {
                panic!("the edge never listened on port {port}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// A `tcp` route reached on `listen_port`, to the prod env's `web` process on `port`.
fn tcp_route(app: &App, listen_port: u16, port: u16, proxy_protocol: bool) -> (Uuid, EventData) {
    let route_id = Uuid::now_v7();
    let route = EventData::RouteCreated {
        route_id,
        env_id: app.env("prod"),
        host: None,
        process: "web".into(),
        mode: "tcp".into(),
        port,
        proxy_protocol,
        policy: Default::default(),
        listen_port: Some(listen_port),
        declared: false,
    };
    (route_id, route)
}

/// An app with one `web` deployment, healthy unless told otherwise.
async fn deployed(healthy: bool) -> (World, App, Backend) {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let web = Backend::start("web").await;
    let ids = world.deploy(&app, "prod", "one", 1).await;
    if healthy {
        world.healthy(&app, ids[0], web.addr).await;
    }
    (world, app, web)
}

#[tokio::test]
async fn a_tcp_route_relays_bytes_on_its_port_after_the_client_address() {
    let tcp_app = TlsApp::plain("127.0.0.1:0", true).await;
    let (world, app, _web) = deployed(true).await;
    let listen = free_port();
    let (_, route) = tcp_route(&app, listen, tcp_app.addr.port(), true);
    world.emit(app.org, route).await;
    let _edge = Running::start(&world, None, Duration::from_secs(3600)).await;

    let mut client = connect(listen).await;
    echo(&mut client).await;
    echo(&mut client).await;
    let expected = ProxyHeader::Proxy {
        source: client.local_addr().unwrap(),
        destination: SocketAddr::from(([127, 0, 0, 1], listen)),
    };
    assert_eq!(*tcp_app.headers.lock().unwrap(), [expected]);
}

#[tokio::test]
async fn tcp_ports_open_with_their_routes_and_close_when_they_go() {
    let tcp_app = TlsApp::plain("127.0.0.1:0", false).await;
    let (world, app, _web) = deployed(true).await;
    let _edge = Running::start(&world, None, Duration::from_millis(100)).await;
    let listen = free_port();
    assert!(TcpStream::connect(("127.0.0.1", listen)).await.is_err());

    let (route_id, route) = tcp_route(&app, listen, tcp_app.addr.port(), false);
    world.emit(app.org, route).await;
    let mut held = connect(listen).await;
    echo(&mut held).await;
    assert!(
        tcp_app.headers.lock().unwrap().is_empty(),
        "no PROXY header"
    );

    world
        .emit(app.org, EventData::RouteDeleted { route_id })
        .await;
    eventually("the port is closed", || async {
        TcpStream::connect(("127.0.0.1", listen)).await.is_err()
    })
    .await;
    echo(&mut held).await;
}

#[tokio::test]
async fn a_tcp_route_without_a_healthy_instance_closes_connections() {
    let tcp_app = TlsApp::plain("127.0.0.1:0", false).await;
    let (world, app, _web) = deployed(false).await;
    let listen = free_port();
    world
        .emit(
            app.org,
            tcp_route(&app, listen, tcp_app.addr.port(), false).1,
        )
        .await;
    let _edge = Running::start(&world, None, Duration::from_secs(3600)).await;

    let mut client = connect(listen).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest)).await;
    assert!(read.expect("the edge closes").is_ok() && rest.is_empty());
    assert_eq!(
        tcp_app.accepted.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn a_draining_edge_waits_for_open_passthrough_connections() {
    let app = TlsApp::start("127.0.0.1:0", false, TestCerts::new(&[PASSED])).await;
    let (world, _web) = world(app.addr.port(), false).await;
    let mut edge = Secure::start(&world, TestCerts::new(&[])).await;
    let mut tls = app
        .handshake(TcpStream::connect(edge.https).await.unwrap())
        .await;
    echo(&mut tls).await;

    let https = edge.https;
    let served = edge.stop();
    // Longer than a draining edge waits for requests of connections it just accepted.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!served.is_finished(), "the drain waits for the connection");
    echo(&mut tls).await;
    assert!(
        TcpStream::connect(https).await.is_err(),
        "a draining edge accepts nothing new"
    );
    tls.shutdown().await.unwrap();
    drop(tls);
    let done = tokio::time::timeout(Duration::from_secs(5), served).await;
    let result = done.expect("the drain ends once the connection closes");
    assert!(result.unwrap().is_ok());
}
