//! What happens on one relayed connection: the PROXY header, half-closes, and graceful
//! shutdown.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use support::{Backend, PATIENCE, Running, connect, line, rest};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use zeitwork_l4::{LbError, ProxyHeader, proxy_v2};

#[tokio::test]
async fn the_backend_learns_the_client_address_from_a_proxy_header() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    // Answers each connection with what its PROXY header said; health checks send LOCAL.
    let task = tokio::spawn(support::serve(listener, |mut stream| async move {
        let header = proxy_v2::read_header(&mut stream, PATIENCE)
            .await
            .map_err(std::io::Error::other)?;
        let answer = match header {
            ProxyHeader::Proxy {
                source,
                destination,
            } => format!("{source} {destination}\n"),
            other => format!("{other:?}\n"),
        };
        stream.write_all(answer.as_bytes()).await
    }));
    let lb = Running::start(&[backend], |c| c.proxy_protocol = true).await;
    let client_ip: IpAddr = Ipv4Addr::new(127, 0, 0, 7).into();
    let mut stream = connect(lb.addr, Some(client_ip)).await.unwrap();
    let me = stream.local_addr().unwrap();
    assert_eq!(line(&mut stream).await, format!("{me} {}", lb.addr));
    lb.until("checks pass with LOCAL headers", |s| {
        s.backends[0].check_failures == 0 && s.accepted == 1
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn a_half_closed_client_still_gets_its_answer() {
    let backend = Backend::start("b").await;
    let lb = Running::start(&[backend.addr], |_| {}).await;
    let mut stream = connect(lb.addr, None).await.unwrap();
    stream.write_all(b"request").await.unwrap();
    stream.shutdown().await.unwrap();
    // The echo backend answers only after it saw our EOF, then closes.
    assert_eq!(rest(&mut stream).await, b"b\nrequest");
    lb.until("the relay ended", |s| s.active == 0).await;
}

#[tokio::test]
async fn shutdown_stops_accepting_but_lets_an_open_connection_finish() {
    let backend = Backend::start("b").await;
    let mut lb = Running::start(&[backend.addr], |_| {}).await;
    let mut open = connect(lb.addr, None).await.unwrap();
    assert_eq!(line(&mut open).await, "b");
    lb.stop();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while connect(lb.addr, None).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!lb.served.is_finished(), "waiting for the open connection");
    open.write_all(b"still here").await.unwrap();
    open.shutdown().await.unwrap();
    assert_eq!(rest(&mut open).await, b"still here");
    let served = tokio::time::timeout(PATIENCE, &mut lb.served)
        .await
        .unwrap()
        .unwrap();
    assert!(served.is_ok(), "{served:?}");
}

#[tokio::test]
async fn shutdown_cuts_connections_that_outlast_the_drain_timeout() {
    let backend = Backend::start("b").await;
    let mut lb = Running::start(&[backend.addr], |c| {
        c.drain_timeout = Duration::from_millis(200)
    })
    .await;
    let mut open = connect(lb.addr, None).await.unwrap();
    assert_eq!(line(&mut open).await, "b");
    lb.stop();
    let served = tokio::time::timeout(PATIENCE, &mut lb.served)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(served, Err(LbError::Drain(_))), "{served:?}");
    assert!(
        rest(&mut open).await.is_empty(),
        "the cut connection is closed"
    );
}
