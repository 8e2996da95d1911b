//! Route policies: load balancing, passive ejection, rate limits, body limits, security
//! headers and CORS. Instances of one process share a port on different loopback
//! addresses, as they do on different microVMs.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use crate::support::{App, Backend, Running, World, exchange};

const NEVER: Duration = Duration::from_secs(3600);
const HOST: &str = "api.example.com";

/// A free port on 127.0.0.1 (the same port is then bound on other loopback addresses).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `web` instances at 127.0.0.2… on one port answering with `statuses`, and the route to them.
async fn world_with(
    statuses: &[(&'static str, u16, Duration)],
    policy: serde_json::Value,
) -> (World, App, Vec<Backend>) {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let port = free_port();
    let ids = world.deploy(&app, "prod", "pol", statuses.len()).await;
    let mut backends = Vec::new();
    for (i, (name, status, delay)) in statuses.iter().enumerate() {
        let addr = SocketAddr::from(([127, 0, 0, 2 + i as u8], port));
        let backend = Backend::serve(name, addr, *delay, *status).await;
        world.healthy(&app, ids[i], backend.addr).await;
        backends.push(backend);
    }
    world.route(&app, HOST, port, policy).await;
    (world, app, backends)
}

#[tokio::test]
async fn least_connections_sends_requests_past_a_busy_instance() {
    let slow = Duration::from_millis(1500);
    let (world, _app, backends) = world_with(
        &[("slow", 200, slow), ("quick", 200, Duration::ZERO)],
        json!({"balance": "least-connections"}),
    )
    .await;
    let edge = Running::start(&world, None, NEVER).await;
    // Occupy both with one slow request each... the slow one stays busy.
    let busy = tokio::spawn({
        let addr = edge.addr;
        async move {
            let raw = format!("GET /busy HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
            (
                exchange(addr, raw.as_bytes()).await,
                exchange(addr, raw.as_bytes()).await,
            )
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..6 {
        assert_eq!(edge.get(HOST).await.backend(), Some("quick"));
    }
    busy.await.unwrap();
    assert_eq!(backends[0].hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn consistent_hashing_keeps_each_client_on_one_instance() {
    let policy = json!({"balance": "consistent-hash", "hash_on": "header:x-user"});
    let quick = Duration::ZERO;
    let (world, _app, _backends) = world_with(
        &[("a", 200, quick), ("b", 200, quick), ("c", 200, quick)],
        policy,
    )
    .await;
    let edge = Running::start(&world, None, NEVER).await;
    let mut used = std::collections::HashSet::new();
    for user in 0..12 {
        let header = format!("X-User: user-{user}\r\n");
        let first = edge
            .get_with(HOST, &header)
            .await
            .backend()
            .unwrap()
            .to_owned();
        for _ in 0..3 {
            assert_eq!(
                edge.get_with(HOST, &header).await.backend(),
                Some(first.as_str())
            );
        }
        used.insert(first);
    }
    assert!(used.len() >= 2, "all clients on one instance: {used:?}");
}

#[tokio::test]
async fn an_instance_answering_503_is_ejected_after_three() {
    let quick = Duration::ZERO;
    let (world, _app, backends) =
        world_with(&[("sick", 503, quick), ("well", 200, quick)], json!({})).await;
    let edge = Running::start(&world, None, NEVER).await;
    let mut sick = 0;
    for _ in 0..20 {
        if edge.get(HOST).await.status == 503 {
            sick += 1;
        }
    }
    assert_eq!(sick, 3, "503s before the ejection");
    assert_eq!(backends[0].hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn over_the_rate_limit_a_client_gets_429_with_retry_after() {
    let policy = json!({"rate_limit": {"per_client": 1, "burst": 3}});
    let (world, _app, _backends) = world_with(&[("a", 200, Duration::ZERO)], policy).await;
    let edge = Running::start(&world, None, NEVER).await;
    let statuses: Vec<u16> = {
        let mut s = Vec::new();
        for _ in 0..5 {
            s.push(edge.get(HOST).await.status);
        }
        s
    };
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let limited = edge.get_with(HOST, "Accept: application/json\r\n").await;
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert!(limited.body.contains("rate_limited"), "{}", limited.body);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(edge.get(HOST).await.status, 200, "the bucket refills");
}

#[tokio::test]
async fn bodies_over_the_route_limit_get_413_however_they_are_sent() {
    let (world, _app, backends) =
        world_with(&[("a", 200, Duration::ZERO)], json!({"max_body_mb": 1})).await;
    let edge = Running::start(&world, None, NEVER).await;
    let big = 1024 * 1024 + 1;
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {big}\r\nConnection: close\r\n\r\n"
    );
    let reply = exchange(edge.addr, raw.as_bytes()).await.remove(0);
    assert_eq!(reply.status, 413);
    assert_eq!(
        backends[0].hits.load(Ordering::SeqCst),
        0,
        "refused before the app"
    );

    let chunk = "x".repeat(64 * 1024);
    let mut raw = format!(
        "POST / HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for _ in 0..20 {
        raw.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    raw.push_str("0\r\n\r\n");
    let reply = exchange(edge.addr, raw.as_bytes()).await.remove(0);
    assert_eq!(reply.status, 413, "{reply:?}");

    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    );
    let reply = exchange(edge.addr, raw.as_bytes()).await.remove(0);
    assert_eq!(
        (reply.status, reply.seen("content-length")),
        (200, Some("5"))
    );
}

#[tokio::test]
async fn security_headers_and_cors_follow_the_route() {
    let policy = json!({
        "headers": {"x-frame-options": "DENY", "referrer-policy": ""},
        "cors": {"origins": ["https://shop.example"], "methods": ["GET", "PUT"], "credentials": true}
    });
    let (world, _app, backends) = world_with(&[("a", 200, Duration::ZERO)], policy).await;
    let edge = Running::start(&world, None, NEVER).await;

    let reply = edge
        .get_with(HOST, "Origin: https://shop.example\r\n")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("referrer-policy"), None);
    assert_eq!(
        reply.header("strict-transport-security"),
        None,
        "plain HTTP"
    );
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );

    let raw = format!(
        "OPTIONS /x HTTP/1.1\r\nHost: {HOST}\r\nOrigin: https://shop.example\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n"
    );
    let hits = backends[0].hits.load(Ordering::SeqCst);
    let preflight = exchange(edge.addr, raw.as_bytes()).await.remove(0);
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("GET, PUT")
    );
    assert_eq!(
        backends[0].hits.load(Ordering::SeqCst),
        hits,
        "the app never sees a preflight"
    );

    let other = edge
        .get_with(HOST, "Origin: https://evil.example\r\n")
        .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    // Platform names get the default headers too.
    let unknown = edge.get("nothing.example.com").await;
    assert_eq!(unknown.header("x-frame-options"), Some("SAMEORIGIN"));
}

#[tokio::test]
async fn ipv6_clients_share_the_rate_limit_of_their_64() {
    let policy = json!({"rate_limit": {"per_client": 1, "burst": 2}});
    let (world, _app, _backends) = world_with(&[("a", 200, Duration::ZERO)], policy).await;
    // Clients named by a trusted load balancer's PROXY header (the tests come from loopback).
    let config = zeitwork_edge::Config {
        resync_every: NEVER,
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..zeitwork_edge::Config::new(crate::support::BASE)
    };
    let edge = Running::with(&world, None, config).await;
    let from = |client: &str| {
        let header = zeitwork_l4::proxy_v2::encode(
            client.parse().unwrap(),
            "[2001:db8::80]:80".parse().unwrap(),
        );
        let get = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
        [header, get.into_bytes()].concat()
    };
    let mut statuses = Vec::new();
    // A fresh address of one /64 for every request: one client all the same.
    for client in [
        "[2001:db8:1:2::1]:1",
        "[2001:db8:1:2::2]:1",
        "[2001:db8:1:2:ffff::3]:1",
    ] {
        statuses.push(exchange(edge.addr, &from(client)).await[0].status);
    }
    // Another /64, and IPv4 addresses, are clients of their own.
    for client in ["[2001:db8:1:3::1]:1", "198.51.100.1:1", "198.51.100.2:1"] {
        statuses.push(exchange(edge.addr, &from(client)).await[0].status);
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 200]);
}
