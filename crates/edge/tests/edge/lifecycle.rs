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

/// A worker-thread edge on `addr` until the returned sender fires.
fn run_edge(
    world: &World,
    addr: std::net::SocketAddr,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), EdgeError>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let store = world.store.clone();
    let served = tokio::spawn(async move {
        let config = Config {
            resync_every: Duration::from_secs(3600),
            drain_timeout: Duration::from_secs(5),
            ..Config::new(BASE)
        };
        let edge = zeitwork_edge::Edge::start_with(store, None, config).await?;
        let on = zeitwork_edge::ListenOn {
            http: addr,
            https: None,
            tcp: None,
        };
        edge.run(on.bind()?, 2, async {
            let _ = stopped.await;
        })
        .await
    });
    (stop, served)
}

#[tokio::test]
async fn a_new_edge_takes_over_the_port_while_the_old_one_drains_and_no_connection_is_refused() {
    let knob = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").unwrap_or_default();
    if knob.trim() != "1" && std::fs::write("/proc/sys/net/ipv4/tcp_migrate_req", "1").is_err() {
        panic!(
            "cannot run: needs net.ipv4.tcp_migrate_req=1 (root), or connections queued on the old edge are reset"
        );
    }
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let backend = Backend::start("one").await;
    let ids = world.deploy(&app, "prod", "one", 1).await;
    world.healthy(&app, ids[0], backend.addr).await;
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let (stop_old, old) = run_edge(&world, addr);
    eventually("the old edge accepts", || async {
        TcpStream::connect(addr).await.is_ok()
    })
    .await;

    // Clients opening a new connection for every request, all through the handover.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let done = done.clone();
        clients.push(tokio::spawn(async move {
            let raw =
                format!("GET / HTTP/1.1\r\nHost: shop-acme.{BASE}\r\nConnection: close\r\n\r\n");
            let (mut ok, mut failed) = (0, Vec::new());
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                match try_exchange(addr, raw.as_bytes()).await {
                    Ok(200) => ok += 1,
                    other => failed.push(other),
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stop_new, new) = run_edge(&world, addr);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_old.send(());
    assert!(old.await.unwrap().is_ok());
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for client in clients {
        let (o, f) = client.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests made it");
    let _ = stop_new.send(());
    assert!(new.await.unwrap().is_ok());
}

/// The status of one request on a new connection, or what went wrong.
async fn try_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(raw)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    text.get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("answer: {text:?}"))
}
