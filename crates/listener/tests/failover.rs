//! The active listener against real Postgres and NATS: order, takeover, restart.

use std::time::{Duration, Instant};

use futures::StreamExt;
use uuid::Uuid;
use zeitwork_bus::{NatsBus, Notification};
use zeitwork_core::EventData;
use zeitwork_services::{Nats, Postgres};
use zeitwork_store::{Store, log};

async fn append(store: &Store, n: usize) {
    for _ in 0..n {
        let mut tx = store.begin().await.unwrap();
        let id = Uuid::now_v7();
        log::append(
            &mut tx,
            Some(id),
            "test",
            EventData::OrgCreated {
                org_id: id,
                name: format!("o{}", id.simple()),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

/// Receives notifications on `zw.v1.events` until `want` has been seen, or the timeout.
async fn until(
    sub: &mut (impl futures::Stream<Item = Notification> + Unpin),
    want: i64,
    seen: &mut Vec<i64>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(&want) {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(n)) => seen.push(n.seq),
            _ => panic!("seq {want} never published; saw {seen:?}"),
        }
    }
}

fn spawn_listener(store: &Store, bus: &NatsBus) -> tokio::task::JoinHandle<()> {
    tokio::spawn(zeitwork_listener::run(
        store.clone(),
        bus.clone(),
        std::future::pending(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_takes_over_within_2s_without_a_gap() {
    let pg = Postgres::throwaway().await.unwrap();
    let nats = Nats::throwaway().await.unwrap();
    let store = Store::connect(&pg.url()).await.unwrap();
    let bus = NatsBus::connect(&nats.url()).await.unwrap();
    let mut sub = Box::pin(bus.subscribe("zw.v1.events").await.unwrap());

    let leader = spawn_listener(&store, &bus);
    append(&store, 5).await;
    let mut seen = Vec::new();
    until(&mut sub, 5, &mut seen).await;
    let standby = spawn_listener(&store, &bus);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = seen.len();
    assert_eq!(before, 5, "only the leader publishes: {seen:?}");

    leader.abort();
    let _ = leader.await;
    let killed = Instant::now();
    append(&store, 5).await;
    until(&mut sub, 10, &mut seen).await;
    let takeover = killed.elapsed();
    assert!(takeover < Duration::from_secs(2), "took {takeover:?}");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique, (1..=10).collect::<Vec<_>>(), "no gap: {seen:?}");
    println!("takeover: {takeover:?}; notifications {seen:?}");
    standby.abort();
}

#[tokio::test]
async fn a_restarted_listener_continues_from_its_cursor() {
    let pg = Postgres::throwaway().await.unwrap();
    let nats = Nats::throwaway().await.unwrap();
    let store = Store::connect(&pg.url()).await.unwrap();
    let bus = NatsBus::connect(&nats.url()).await.unwrap();
    let mut sub = Box::pin(bus.subscribe("zw.v1.events").await.unwrap());
    let first = spawn_listener(&store, &bus);
    append(&store, 3).await;
    let mut seen = Vec::new();
    until(&mut sub, 3, &mut seen).await;
    // Let it store its cursor, then stop it and commit while nobody listens.
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.abort();
    let _ = first.await;
    append(&store, 2).await;
    let second = spawn_listener(&store, &bus);
    until(&mut sub, 5, &mut seen).await;
    assert_eq!(seen, vec![1, 2, 3, 4, 5], "neither skipped nor replayed");
    second.abort();
}
