//! Load balancing across instances, retries, and what reaches the instance.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::{BASE, Backend, Running, World, exchange, refusing};

const NEVER: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_refused_connection_is_retried_on_another_instance() {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let alive = Backend::start("alive").await;
    let ids = world.deploy(&app, "prod", "two", 2).await;
    world.healthy(&app, ids[0], refusing()).await;
    world.healthy(&app, ids[1], alive.addr).await;
    let edge = Running::start(&world, None, NEVER).await;
    assert_eq!(
        edge.edge
            .table()
            .lookup(&format!("shop-acme.{BASE}"))
            .unwrap()
            .backends()
            .len(),
        2
    );

    for i in 0..20 {
        let reply = edge.get(&format!("shop-acme.{BASE}")).await;
        assert_eq!(
            (reply.status, reply.backend()),
            (200, Some("alive")),
            "request {i}: {reply:?}"
        );
    }
    assert_eq!(alive.hits.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn instances_take_turns() {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let ids = world.deploy(&app, "prod", "two", 2).await;
    world.healthy(&app, ids[0], a.addr).await;
    world.healthy(&app, ids[1], b.addr).await;
    let edge = Running::start(&world, None, NEVER).await;

    for _ in 0..10 {
        assert_eq!(edge.get(&format!("shop-acme.{BASE}")).await.status, 200);
    }
    assert_eq!(
        (a.hits.load(Ordering::SeqCst), b.hits.load(Ordering::SeqCst)),
        (5, 5)
    );
}

#[tokio::test]
async fn when_no_instance_answers_the_client_gets_502() {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let ids = world.deploy(&app, "prod", "dead", 2).await;
    world.healthy(&app, ids[0], refusing()).await;
    world.healthy(&app, ids[1], refusing()).await;
    let edge = Running::start(&world, None, NEVER).await;

    let reply = edge
        .get_with(&format!("shop-acme.{BASE}"), "Accept: application/json\r\n")
        .await;
    assert_eq!(reply.status, 502, "{reply:?}");
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["error"]["code"], "bad_gateway");
    assert!(
        !reply.body.contains("127.0.0.1"),
        "internal addresses leak: {}",
        reply.body
    );
    let page = edge.get(&format!("shop-acme.{BASE}")).await;
    assert_eq!(page.status, 502);
    assert!(
        page.body.contains("<h1>502 · Bad Gateway</h1>"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn forwarded_headers_request_ids_and_bodies_reach_the_instance() {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let a = Backend::start("a").await;
    let ids = world.deploy(&app, "prod", "one", 1).await;
    world.healthy(&app, ids[0], a.addr).await;
    let edge = Running::start(&world, None, NEVER).await;
    let host = "Shop-Acme.zeitwork.test:8080";

    let spoofed = "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nConnection: x-drop\r\nX-Drop: 1\r\n";
    let reply = edge.get_with(host, spoofed).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.seen("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(reply.seen("x-forwarded-proto"), Some("http"));
    assert_eq!(reply.seen("x-forwarded-host"), Some(host));
    assert_eq!(reply.seen("host"), Some(host));
    assert_eq!(
        reply.seen("x-drop"),
        None,
        "a hop-by-hop header was forwarded"
    );
    let id = reply
        .seen("x-request-id")
        .expect("the instance got a request id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(reply.header("x-request-id"), Some(id));

    let reply = edge.get_with(host, "X-Request-Id: trace-42\r\n").await;
    assert_eq!(reply.seen("x-request-id"), Some("trace-42"));
    assert_eq!(reply.header("x-request-id"), Some("trace-42"));

    let post = format!(
        "POST /upload HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
    );
    let replies = exchange(edge.addr, post.as_bytes()).await;
    assert_eq!(replies[0].status, 200, "{:?}", replies[0]);
    assert!(
        replies[0].body.ends_with("body=hello world"),
        "{}",
        replies[0].body
    );
}

#[tokio::test]
async fn an_app_too_slow_to_answer_gets_the_client_a_504() {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let slow = Backend::slow("slow", Duration::from_secs(5)).await;
    let ids = world.deploy(&app, "prod", "slow", 1).await;
    world.healthy(&app, ids[0], slow.addr).await;
    let config = zeitwork_edge::Config {
        resync_every: NEVER,
        upstream_timeout: Duration::from_millis(300),
        ..zeitwork_edge::Config::new(BASE)
    };
    let edge = Running::with(&world, None, config).await;
    let started = std::time::Instant::now();
    let reply = edge
        .get_with(&format!("shop-acme.{BASE}"), "Accept: application/json\r\n")
        .await;
    assert_eq!(reply.status, 504, "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["error"]["code"], "gateway_timeout", "{body}");
}
