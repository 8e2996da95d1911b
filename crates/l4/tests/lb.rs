//! The load balancer's choices over real TCP: how each algorithm spreads connections,
//! and how traffic moves when a backend dies or refuses.

mod support;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use support::{Backend, Running, dead_addr, who};
use zeitwork_l4::Algorithm;

async fn backends(n: usize) -> Vec<Backend> {
    let mut all = Vec::new();
    for i in 0..n {
        all.push(Backend::start(&format!("b{i}")).await);
    }
    all
}

fn loopback(i: u8) -> Option<IpAddr> {
    Some(Ipv4Addr::new(127, 0, 0, i).into())
}

async fn tally(lb: &Running, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        *counts.entry(who(lb.addr, None).await).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn round_robin_takes_turns() {
    let b = backends(3).await;
    let lb = Running::start(&b.iter().map(|b| b.addr).collect::<Vec<_>>(), |_| {}).await;
    let counts = tally(&lb, 30).await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&n| n == 10), "{counts:?}");
    lb.until("all closed", |s| s.active == 0).await;
    let stats = lb.lb.stats();
    assert_eq!((stats.accepted, stats.failed), (30, 0));
    assert!(
        stats
            .backends
            .iter()
            .all(|b| b.connections == 10 && b.healthy)
    );
}

#[tokio::test]
async fn least_connections_fills_the_idlest_backend() {
    let b = backends(3).await;
    let lb = Running::start(&b.iter().map(|b| b.addr).collect::<Vec<_>>(), |c| {
        c.algorithm = Algorithm::LeastConnections;
    })
    .await;
    // Three held connections land on three different backends.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = support::connect(lb.addr, None).await.unwrap();
        let name = support::line(&mut stream).await;
        held.push((name, stream));
    }
    let mut names: Vec<&str> = held.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(names, ["b0", "b1", "b2"]);
    // Free one: the next connections go there, and then spread again.
    let (freed, stream) = held.remove(1);
    drop(stream);
    lb.until("the freed backend is idle", |s| s.active == 2)
        .await;
    let mut next = support::connect(lb.addr, None).await.unwrap();
    assert_eq!(support::line(&mut next).await, freed);
}

#[tokio::test]
async fn ip_hash_keeps_a_client_on_one_backend_and_spreads_clients() {
    let b = backends(3).await;
    let lb = Running::start(&b.iter().map(|b| b.addr).collect::<Vec<_>>(), |c| {
        c.algorithm = Algorithm::IpHash;
    })
    .await;
    let mut seen = HashMap::new();
    for client in 2..32 {
        let first = who(lb.addr, loopback(client)).await;
        for _ in 0..3 {
            assert_eq!(
                who(lb.addr, loopback(client)).await,
                first,
                "client 127.0.0.{client}"
            );
        }
        *seen.entry(first).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "30 clients reach every backend: {seen:?}");
}

#[tokio::test]
async fn a_killed_backend_is_taken_out_without_failing_a_client() {
    let b = [
        Backend::start("b0").await,
        Backend::revivable("b1").await,
        Backend::start("b2").await,
    ];
    let addrs: Vec<_> = b.iter().map(|b| b.addr).collect();
    let lb = Running::start(&addrs, |_| {}).await;
    assert_eq!(tally(&lb, 6).await.len(), 3);

    b[1].kill();
    // No traffic meanwhile: the checks alone take it out after `fall` failures.
    lb.until("b1 is down", |s| !s.backends[1].healthy).await;
    let stats = lb.lb.stats();
    assert!(stats.backends[1].check_failures >= 2, "{stats:#?}");
    assert_eq!(stats.backends[1].connect_failures, 0);
    let before = lb.lb.stats().backends[1].clone();
    let counts = tally(&lb, 20).await;
    assert_eq!((counts["b0"], counts["b2"]), (10, 10), "{counts:?}");
    let after = lb.lb.stats();
    assert_eq!(after.failed, 0, "no client connection failed");
    assert_eq!(
        after.backends[1].connect_failures, before.connect_failures,
        "down: not tried"
    );

    // Back on the same port: the checks bring it back.
    let _revived = Backend::revive("b1", addrs[1]).await;
    lb.until("b1 is up", |s| s.backends[1].healthy).await;
    assert!(tally(&lb, 6).await.contains_key("b1"));
}

#[tokio::test]
async fn a_refused_connect_is_retried_on_the_next_backend() {
    let live = Backend::start("live").await;
    let dead = dead_addr().await;
    let lb = Running::start(&[dead, live.addr], |c| {
        // The checks would take it out at once; this is about the data path alone.
        c.health.interval = Duration::from_secs(3600);
        c.health.fall = 1000;
    })
    .await;
    for _ in 0..10 {
        assert_eq!(who(lb.addr, None).await, "live");
    }
    let stats = lb.lb.stats();
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.backends[0].connections, 0);
    assert!(stats.backends[0].connect_failures >= 4, "{stats:#?}");
    assert_eq!(stats.backends[1].connections, 10);
}

#[tokio::test]
async fn refused_connects_take_a_backend_down_before_the_checks_do() {
    let live = Backend::start("live").await;
    let lb = Running::start(&[dead_addr().await, live.addr], |c| {
        c.health.interval = Duration::from_secs(3600);
        c.health.fall = 3;
    })
    .await;
    for _ in 0..10 {
        assert_eq!(who(lb.addr, None).await, "live");
    }
    let stats = lb.lb.stats();
    assert!(!stats.backends[0].healthy);
    assert!(stats.backends[0].connect_failures <= 3, "{stats:#?}");
}

#[tokio::test]
async fn with_no_backend_answering_the_client_is_closed_and_counted() {
    let lb = Running::start(&[dead_addr().await, dead_addr().await], |_| {}).await;
    let mut stream = support::connect(lb.addr, None).await.unwrap();
    assert!(support::rest(&mut stream).await.is_empty());
    lb.until("the failure is counted", |s| s.failed == 1 && s.active == 0)
        .await;
}
