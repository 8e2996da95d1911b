//! Malformed and hostile requests: each is refused on its own, and the edge keeps serving.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::{App, BASE, Backend, Running, World, exchange};

async fn serving() -> (World, App, Backend, Running) {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let a = Backend::start("a").await;
    let ids = world.deploy(&app, "prod", "one", 1).await;
    world.healthy(&app, ids[0], a.addr).await;
    let edge = Running::start(&world, None, Duration::from_secs(3600)).await;
    (world, app, a, edge)
}

#[tokio::test]
async fn length_with_transfer_encoding_is_refused_and_the_edge_keeps_serving() {
    let (_world, _app, a, edge) = serving().await;
    let host = format!("shop-acme.{BASE}");
    // A good request, then one whose body, read by length, would hide a second request.
    let wire = format!(
        "GET /first HTTP/1.1\r\nHost: {host}\r\n\r\n\
         POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {host}\r\n\r\n"
    );
    let replies = exchange(edge.addr, wire.as_bytes()).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 400], "{replies:?}");
    assert_eq!(replies[1].header("connection"), Some("close"));
    assert!(
        replies[1]
            .body
            .contains("Content-Length and Transfer-Encoding"),
        "{}",
        replies[1].body
    );
    assert_eq!(
        a.hits.load(Ordering::SeqCst),
        1,
        "the refused or smuggled request reached the app"
    );

    assert_eq!(edge.get(&host).await.status, 200);
}

#[tokio::test]
async fn malformed_hosts_are_refused_and_the_edge_keeps_serving() {
    let (_world, _app, a, edge) = serving().await;
    for host in [
        "shop acme.zeitwork.test",
        "shop..zeitwork.test",
        "shop-acme.zeitwork.test:99999",
        "user@shop-acme.zeitwork.test",
        "[::1",
    ] {
        let reply = edge.get_with(host, "Accept: application/json\r\n").await;
        assert_eq!(reply.status, 400, "{host}: {reply:?}");
        assert!(
            reply.body.contains("\"code\":\"bad_request\""),
            "{}",
            reply.body
        );
    }
    let shapes = [
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\n".to_owned(),
        format!(
            "GET / HTTP/1.1\r\nHost: shop-acme.{BASE}\r\nHost: evil.test\r\nConnection: close\r\n\r\n"
        ),
        format!(
            "GET http://evil.test/ HTTP/1.1\r\nHost: shop-acme.{BASE}\r\nConnection: close\r\n\r\n"
        ),
    ];
    for raw in shapes {
        let replies = exchange(edge.addr, raw.as_bytes()).await;
        assert_eq!(replies[0].status, 400, "{raw:?}: {:?}", replies[0]);
    }
    assert_eq!(a.hits.load(Ordering::SeqCst), 0);
    assert_eq!(edge.get(&format!("shop-acme.{BASE}")).await.status, 200);
}

#[tokio::test]
async fn oversized_heads_are_refused_with_431() {
    let (_world, _app, a, edge) = serving().await;
    let big = format!("X-Big: {}\r\n", "a".repeat(70 * 1024));
    let reply = edge.get_with(&format!("shop-acme.{BASE}"), &big).await;
    assert_eq!(reply.status, 431, "{reply:?}");
    assert_eq!(a.hits.load(Ordering::SeqCst), 0);
    assert_eq!(edge.get(&format!("shop-acme.{BASE}")).await.status, 200);
}
