//! The express lane's own ways (see `proxy/express.rs`): instances that close kept
//! connections, answers framed by chunks or by closing, informational answers, and a
//! connection that moves to the full path at the first request the lane does not take.
//! Every other test of this suite goes through the lane too, wherever it applies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{BASE, Backend, Running, World, exchange};

/// An instance that answers the n-th request it gets (counted over all connections)
/// with `answer(n)`, closing the connection after it when the answer says so.
struct Scripted {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Scripted {
    async fn start(answer: fn(usize) -> (&'static str, bool)) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (connections, requests) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let accepted = connections.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                accepted.fetch_add(1, Ordering::SeqCst);
                let requests = requests.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        // Requests without bodies: a head ends at the blank line.
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        buf.drain(..end);
                        let (text, close) = answer(requests.fetch_add(1, Ordering::SeqCst));
                        if stream.write_all(text.as_bytes()).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        Scripted { addr, connections }
    }
}

async fn edge_before(backend: SocketAddr) -> (World, Running) {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let ids = world.deploy(&app, "prod", "one", 1).await;
    world.healthy(&app, ids[0], backend).await;
    let edge = Running::start(&world, None, Duration::from_secs(3600)).await;
    (world, edge)
}

/// GET / over a connection of its own: the raw answer.
async fn raw_get(edge: SocketAddr) -> String {
    let mut stream = TcpStream::connect(edge).await.unwrap();
    let raw = format!("GET / HTTP/1.1\r\nHost: shop-acme.{BASE}\r\nConnection: close\r\n\r\n");
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the edge closes")
        .unwrap();
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn a_kept_connection_the_instance_closed_is_replaced_without_an_error() {
    // Says nothing of closing, and closes: every kept connection goes stale.
    let app = Scripted::start(|_| ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true)).await;
    let (_world, edge) = edge_before(app.addr).await;
    for _ in 0..5 {
        let answer = raw_get(edge.addr).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
        // The instance's close reaches the edge before the next request does.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.connections.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn chunked_and_close_delimited_answers_pass_and_informational_ones_do_not() {
    let app = Scripted::start(|n| match n {
        0 => (
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            false,
        ),
        1 => (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n",
            false,
        ),
        _ => ("HTTP/1.1 200 OK\r\nX-App: 1\r\n\r\nuntil the end", true),
    })
    .await;
    let (_world, edge) = edge_before(app.addr).await;

    let first = raw_get(edge.addr).await;
    assert!(
        first.starts_with("HTTP/1.1 200 OK\r\n") && first.ends_with("\r\n\r\nok"),
        "{first}"
    );
    assert!(
        !first.contains("103") && !first.contains("a.css"),
        "{first}"
    );
    let chunked = raw_get(edge.addr).await;
    assert!(
        chunked.contains("Transfer-Encoding: chunked\r\n"),
        "{chunked}"
    );
    assert!(
        chunked.ends_with("\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"),
        "{chunked}"
    );
    let until_close = raw_get(edge.addr).await;
    assert!(until_close.contains("X-App: 1\r\n"), "{until_close}");
    assert!(
        until_close.contains("connection: close\r\n"),
        "{until_close}"
    );
    assert!(
        until_close.ends_with("\r\n\r\nuntil the end"),
        "{until_close}"
    );
}

#[tokio::test]
async fn a_connection_moves_to_the_full_path_at_the_first_request_the_lane_does_not_take() {
    let app = Backend::start("a").await;
    let (_world, edge) = edge_before(app.addr).await;
    let host = format!("shop-acme.{BASE}");
    // Pipelined: a plain GET (the lane), a chunked POST (hyper), a GET (hyper from then on).
    let raw = format!(
        "GET /one HTTP/1.1\r\nHost: {host}\r\n\r\n\
         POST /two HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
         GET /three HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let replies = exchange(edge.addr, raw.as_bytes()).await;
    assert_eq!(replies.len(), 3, "{replies:?}");
    for reply in &replies {
        assert_eq!(
            (reply.status, reply.backend()),
            (200, Some("a")),
            "{reply:?}"
        );
        assert!(reply.header("x-request-id").is_some(), "{reply:?}");
        assert_eq!(
            reply.seen("x-forwarded-for"),
            Some("127.0.0.1"),
            "{reply:?}"
        );
    }
    assert!(replies[1].body.ends_with("body=hello"), "{:?}", replies[1]);
    assert_eq!(app.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn over_http2_answers_of_every_framing_arrive_whole_on_kept_connections() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let app = Scripted::start(|n| match n % 4 {
        0 => (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            false,
        ),
        1 => ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
        2 => ("HTTP/1.1 204 No Content\r\n\r\n", false),
        _ => ("HTTP/1.1 200 OK\r\n\r\nuntil the end", true),
    })
    .await;
    let world = World::new().await;
    let shop = world.app(&["prod"]).await;
    let ids = world.deploy(&shop, "prod", "one", 1).await;
    world.healthy(&shop, ids[0], app.addr).await;
    let host = format!("shop-acme.{BASE}");
    let edge = crate::tls::Secure::start(&world, crate::tls::TestCerts::new(&[&host])).await;
    let tls = edge.connect(&host, &[b"h2"]).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    for round in 0..2 {
        for (status, body) in [
            (200, "hello world"),
            (200, "ok"),
            (204, ""),
            (200, "until the end"),
        ] {
            let req = http::Request::get(format!("https://{host}/"))
                .body(Empty::<bytes::Bytes>::new())
                .unwrap();
            let response = sender.send_request(req).await.unwrap();
            assert_eq!(response.status(), status, "round {round}");
            assert!(response.headers().get("x-request-id").is_some());
            assert!(response.headers().get("transfer-encoding").is_none());
            let got = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(got, body.as_bytes(), "round {round}");
        }
    }
    // Kept connections were reused: one per round for the first three answers (the
    // fourth closes its own), not one per request.
    assert_eq!(app.connections.load(Ordering::SeqCst), 2);
}
