//! Fan-out latency: one committed change, seen by 200 subscribed agents (separate
//! in-process NATS clients), through the real listener, Postgres and NATS. Measures
//! commit → notification received, per subscriber, over repeated changes.
//!
//! Run: `cargo bench -p zeitwork-listener --bench fanout`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use uuid::Uuid;
use zeitwork_bus::NatsBus;
use zeitwork_core::EventData;
use zeitwork_services::{Nats, Postgres};
use zeitwork_store::{Store, log};

const AGENTS: usize = 200;
const CHANGES: usize = 50;

#[tokio::main]
async fn main() {
    let pg = Postgres::throwaway().await.unwrap();
    let nats = Nats::throwaway().await.unwrap();
    let store = Store::connect(&pg.url()).await.unwrap();
    let bus = NatsBus::connect(&nats.url()).await.unwrap();
    tokio::spawn(zeitwork_listener::run(
        store.clone(),
        bus,
        std::future::pending(),
    ));

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i64, Instant)>();
    for _ in 0..AGENTS {
        let agent = NatsBus::connect(&nats.url()).await.unwrap();
        let mut sub = Box::pin(agent.subscribe("zw.v1.events").await.unwrap());
        let tx = tx.clone();
        tokio::spawn(async move {
            let _keep = agent;
            while let Some(n) = sub.next().await {
                let _ = tx.send((n.seq, Instant::now()));
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut latencies = Vec::with_capacity(AGENTS * CHANGES);
    for _ in 0..CHANGES {
        let id = Uuid::now_v7();
        let mut db = store.begin().await.unwrap();
        let event = log::append(
            &mut db,
            Some(id),
            "bench",
            EventData::OrgCreated {
                org_id: id,
                name: format!("o{}", id.simple()),
            },
        )
        .await
        .unwrap();
        db.commit().await.unwrap();
        let committed = Instant::now();
        let mut got = 0;
        while got < AGENTS {
            let (seq, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap();
            if seq == event.seq {
                latencies.push(at.duration_since(committed));
                got += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "| fan-out: commit → {AGENTS} agents notified ({CHANGES} changes) | p50 | p99 | max |"
    );
    println!("|---|---|---|---|");
    println!(
        "| latency | {:.1} ms | {:.1} ms | {:.1} ms |",
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(*latencies.last().unwrap())
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
