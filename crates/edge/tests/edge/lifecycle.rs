//! How the table stays current, what happens while Postgres is away, and shutdown.

use std::time::Duration;

use tokio::net::TcpStream;
use zeitwork_bus::NatsBus;
use zeitwork_edge::{Config, EdgeError};
use zeitwork_services::Nats;

use crate::support::{BASE, Backend, Running, World, eventually, exchange};

#[tokio::test]
async fn a_notification_brings_a_new_healthy_instance_into_the_table() {
    let world = World::new().await;
    let nats = Nats::throwaway().await.expect("throwaway nats");
    let bus = NatsBus::connect(&nats.url()).await.unwrap();
    tokio::spawn(zeitwork_listener::run(
        world.store.clone(),
        bus.clone(),
        std::future::pending(),
    ));
    let app = world.app(&["prod"]).await;
    let a = Backend::start("a").await;
    let ids = world.deploy(&app, "prod", "one", 1).await;
    // At least 45 minutes (with jitter): only the notification can refresh the table.
    let edge = Running::start(&world, Some(bus), Duration::from_secs(3600)).await;
    assert_eq!(edge.get(&format!("shop-acme.{BASE}")).await.status, 503);

    world.healthy(&app, ids[0], a.addr).await;
    eventually("the notified edge serves the instance", || async {
        edge.get(&format!("shop-acme.{BASE}")).await.backend() == Some("a")
    })
    .await;
}

#[tokio::test]
async fn without_a_bus_the_periodic_refresh_brings_it_in() {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let a = Backend::start("a").await;
    let ids = world.deploy(&app, "prod", "one", 1).await;
    let edge = Running::start(&world, None, Duration::from_millis(100)).await;
    assert_eq!(edge.get(&format!("shop-acme.{BASE}")).await.status, 503);

    world.healthy(&app, ids[0], a.addr).await;
    eventually("the polling edge serves the instance", || async {
        edge.get(&format!("shop-acme.{BASE}")).await.backend() == Some("a")
    })
    .await;
}

#[tokio::test]
async fn with_postgres_stopped_the_edge_keeps_serving_the_last_table() {
    let mut world = World::new().await;
    let app = world.app(&["prod"]).await;
    let a = Backend::start("a").await;
    let ids = world.deploy(&app, "prod", "one", 1).await;
    world.healthy(&app, ids[0], a.addr).await;
    let edge = Running::start(&world, None, Duration::from_millis(100)).await;
    let seq = edge.edge.table().seq();
    assert_eq!(
        edge.get(&format!("shop-acme.{BASE}")).await.backend(),
        Some("a")
    );

    world.pg.take().unwrap().stop().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await; // several failed refreshes
    for _ in 0..5 {
        let reply = edge.get(&format!("shop-acme.{BASE}")).await;
        assert_eq!(
            (reply.status, reply.backend()),
            (200, Some("a")),
            "{reply:?}"
        );
    }
    assert_eq!(edge.edge.table().seq(), seq);
    assert_eq!(edge.edge.table().len(), 2);
}

#[tokio::test]
async fn shutdown_drains_requests_in_flight_and_refuses_new_connections() {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let slow = Backend::slow("slow", Duration::from_millis(500)).await;
    let ids = world.deploy(&app, "prod", "one", 1).await;
    world.healthy(&app, ids[0], slow.addr).await;
    let mut edge = Running::start(&world, None, Duration::from_secs(3600)).await;
    let raw = format!("GET / HTTP/1.1\r\nHost: shop-acme.{BASE}\r\nConnection: close\r\n\r\n");
    let addr = edge.addr;
    let in_flight = tokio::spawn(async move { exchange(addr, raw.as_bytes()).await });
    eventually("the request reached the instance", || async {
        slow.hits.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;

    let served = edge.stop().await.unwrap();
    assert!(served.is_ok(), "{served:?}");
    let replies = in_flight.await.unwrap();
    assert_eq!(
        (replies[0].status, replies[0].backend()),
        (200, Some("slow"))
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the edge still accepts connections"
    );
}

#[tokio::test]
async fn a_shutdown_that_outlasts_the_drain_timeout_cuts_what_is_left() {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let stuck = Backend::slow("stuck", Duration::from_secs(30)).await;
    let ids = world.deploy(&app, "prod", "one", 1).await;
    world.healthy(&app, ids[0], stuck.addr).await;
    let config = Config {
        drain_timeout: Duration::from_millis(300),
        ..Config::new(BASE)
    };
    let mut edge = Running::with(&world, None, config).await;
    let raw = format!("GET / HTTP/1.1\r\nHost: shop-acme.{BASE}\r\nConnection: close\r\n\r\n");
    let addr = edge.addr;
    let in_flight = tokio::spawn(async move { exchange(addr, raw.as_bytes()).await });
    eventually("the request reached the instance", || async {
        stuck.hits.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;

    let served = edge.stop().await.unwrap();
    assert!(matches!(served, Err(EdgeError::Drain(_))), "{served:?}");
    let replies = tokio::time::timeout(Duration::from_secs(5), in_flight).await;
    assert!(
        replies
            .expect("the cut connection closed")
            .unwrap()
            .is_empty()
    );
}
