//! Which hostnames lead where, and what the edge answers when they lead nowhere.

use std::time::Duration;

use uuid::Uuid;
use zeitwork_core::EventData;
use zeitwork_core::node::ObservedState;

use crate::support::{BASE, Backend, Running, World, deployment_host};

/// Long enough that only a notification (none here) could refresh the table.
const NEVER: Duration = Duration::from_secs(3600);
const FAST: Duration = Duration::from_millis(100);

#[tokio::test]
async fn a_deployment_host_reaches_its_instance_whatever_the_case_and_port() {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let a = Backend::start("a").await;
    let ids = world.deploy(&app, "prod", "k3x9", 1).await;
    world.healthy(&app, ids[0], a.addr).await;
    let edge = Running::start(&world, None, NEVER).await;

    let reply = edge.get(&deployment_host("k3x9")).await;
    assert_eq!(
        (reply.status, reply.backend()),
        (200, Some("a")),
        "{reply:?}"
    );
    let reply = edge.get("SHOP-K3X9-Acme.Zeitwork.Test.:8080").await;
    assert_eq!(
        (reply.status, reply.backend()),
        (200, Some("a")),
        "{reply:?}"
    );
    let table = edge.edge.table();
    let target = table.lookup(&deployment_host("k3x9")).unwrap();
    assert_eq!((target.process(), target.port()), ("web", Some(8080)));
    assert_eq!(target.backends(), [a.addr]);
}

#[tokio::test]
async fn the_env_host_follows_the_newest_deployment_once_it_is_healthy() {
    let world = World::new().await;
    let app = world.app(&["prod", "staging"]).await;
    let (a, b, s) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("s").await,
    );
    let first = world.deploy(&app, "prod", "one", 1).await;
    world.healthy(&app, first[0], a.addr).await;
    let staging = world.deploy(&app, "staging", "stg", 1).await;
    world.healthy(&app, staging[0], s.addr).await;
    let edge = Running::start(&world, None, FAST).await;
    let prod_host = format!("shop-acme.{BASE}");
    assert_eq!(edge.get(&prod_host).await.backend(), Some("a"));
    assert_eq!(
        edge.get(&format!("shop-staging-acme.{BASE}"))
            .await
            .backend(),
        Some("s")
    );

    // The new deployment's instance answers already but is not healthy yet.
    let second = world.deploy(&app, "prod", "two", 1).await;
    world
        .observe(&app, second[0], ObservedState::Booting, b.addr)
        .await;
    let head = world.head().await;
    crate::support::eventually("the table has read the report", || async {
        edge.edge.table().seq() >= head
    })
    .await;
    assert_ne!(edge.get(&prod_host).await.backend(), Some("b"));
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    world.healthy(&app, second[0], b.addr).await;
    crate::support::eventually("the env host serves the new deployment", || async {
        edge.get(&prod_host).await.backend() == Some("b")
    })
    .await;
    assert_eq!(edge.get(&deployment_host("two")).await.backend(), Some("b"));
    assert_eq!(
        edge.get(&format!("shop-staging-acme.{BASE}"))
            .await
            .backend(),
        Some("s")
    );
}

#[tokio::test]
async fn an_unknown_host_is_404_as_a_page_or_as_json() {
    let world = World::new().await;
    let edge = Running::start(&world, None, NEVER).await;

    let page = edge.get("nope.zeitwork.test").await;
    assert_eq!(page.status, 404);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.body.contains("Zeitwork")
            && page.body.contains("no app is served at nope.zeitwork.test"),
        "{}",
        page.body
    );
    let id = page.header("x-request-id").expect("a request id");
    assert!(page.body.contains(id));

    let json = edge
        .get_with("nope.zeitwork.test", "Accept: application/json\r\n")
        .await;
    assert_eq!(json.status, 404);
    assert_eq!(json.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nope.zeitwork.test")
    );
    assert_eq!(
        body["error"]["request_id"],
        json.header("x-request-id").unwrap()
    );
}

#[tokio::test]
async fn a_host_whose_only_instance_is_unhealthy_is_503() {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let a = Backend::start("a").await;
    let ids = world.deploy(&app, "prod", "sick", 1).await;
    world
        .observe(&app, ids[0], ObservedState::Unhealthy, a.addr)
        .await;
    let edge = Running::start(&world, None, NEVER).await;

    for host in [deployment_host("sick"), format!("shop-acme.{BASE}")] {
        let reply = edge.get_with(&host, "Accept: application/json\r\n").await;
        assert_eq!(reply.status, 503, "{host}: {reply:?}");
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["error"]["code"], "unavailable");
    }
    assert_eq!(
        a.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "an unhealthy instance got traffic"
    );
}

#[tokio::test]
async fn routes_and_verified_domains_reach_the_env() {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let (web, admin) = (Backend::start("web").await, Backend::start("admin").await);
    let ids = world.deploy(&app, "prod", "one", 1).await;
    world.healthy(&app, ids[0], web.addr).await;
    let env_id = app.env("prod");
    let route = |host: &str, mode: &str| EventData::RouteCreated {
        route_id: Uuid::now_v7(),
        env_id,
        host: Some(host.into()),
        process: "web".into(),
        mode: mode.into(),
        // The same instance on another port: the admin stand-in listens there.
        port: admin.addr.port(),
        proxy_protocol: false,
        policy: Default::default(),
        listen_port: None,
        declared: false,
    };
    for host in ["api.example.com", "tls.example.com"] {
        world.verified_domain(&app, "prod", host).await;
    }
    world.emit(app.org, route("api.example.com", "http")).await;
    world
        .emit(app.org, route("tls.example.com", "tls-passthrough"))
        .await;
    // A name the env has not verified is not routed.
    world
        .emit(app.org, route("nobody.example.com", "http"))
        .await;
    let domain = EventData::DomainAdded {
        domain_id: Uuid::now_v7(),
        env_id,
        hostname: "www.example.com".into(),
        verification_token: "t".into(),
    };
    world.emit(app.org, domain).await;
    let edge = Running::start(&world, None, FAST).await;

    assert_eq!(edge.get("API.example.com").await.backend(), Some("admin"));
    assert_eq!(
        edge.get("tls.example.com").await.status,
        404,
        "passthrough is not L7"
    );
    assert_eq!(
        edge.get("www.example.com").await.status,
        404,
        "unverified domains are not served"
    );
    assert_eq!(edge.get("nobody.example.com").await.status, 404);

    // No event verifies a domain yet; the edge reads the projection's column.
    let pg = world.pg.as_ref().unwrap();
    pg.psql("zeitwork", "UPDATE domains SET verified_at = now()")
        .await
        .unwrap();
    crate::support::eventually("the verified domain is served", || async {
        edge.get("www.example.com").await.backend() == Some("web")
    })
    .await;
}
