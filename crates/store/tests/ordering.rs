//! The ordering trap: with concurrent writers, a reader tailing `seq > cursor` must
//! never skip an event that commits late. Real Postgres, real concurrency.

use std::time::Duration;

use rand::Rng;
use uuid::Uuid;
use zeitwork_core::EventData;
use zeitwork_services::Postgres;
use zeitwork_store::Store;
use zeitwork_store::log::{self, Scope};

const WRITERS: usize = 8;
const PER_WRITER: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_let_a_tailing_reader_skip_an_event() {
    let pg = Postgres::throwaway().await.expect("throwaway postgres");
    let store = Store::connect(&pg.url()).await.unwrap();

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut committed = Vec::new();
            for i in 0..PER_WRITER {
                let mut tx = store.begin().await.unwrap();
                let name = format!("w{w}-{i}");
                let data = EventData::OrgCreated {
                    org_id: Uuid::now_v7(),
                    name: name.clone(),
                };
                log::append(&mut tx, None, "test", data).await.unwrap();
                // Hold the transaction open for a while so commits land late and out of
                // start order; roll some back to prove the sequence stays gap-free.
                let (pause, rollback) = {
                    let mut rng = rand::thread_rng();
                    (rng.gen_range(0..4), rng.gen_bool(0.1))
                };
                tokio::time::sleep(Duration::from_millis(pause)).await;
                if rollback {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                    committed.push(name);
                }
            }
            committed
        }));
    }

    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut seen = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let mut db = store.pool().acquire().await.unwrap();
                let page = log::read(&mut db, Scope::All, cursor, 7).await.unwrap();
                for e in page.events {
                    assert_eq!(
                        e.seq,
                        cursor + 1,
                        "the tailing reader skipped from {cursor} to {}",
                        e.seq
                    );
                    cursor = e.seq;
                    if let EventData::OrgCreated { name, .. } = e.data {
                        seen.push(name);
                    }
                }
                if seen.iter().any(|n| n == "done") || tokio::time::Instant::now() > deadline {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };

    let mut committed = Vec::new();
    for w in writers {
        committed.extend(w.await.unwrap());
    }
    let mut tx = store.begin().await.unwrap();
    log::append(
        &mut tx,
        None,
        "test",
        EventData::OrgCreated {
            org_id: Uuid::now_v7(),
            name: "done".into(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut seen = reader.await.unwrap();
    assert_eq!(seen.pop().as_deref(), Some("done"));
    assert!(
        committed.len() > WRITERS * PER_WRITER / 2,
        "most writes commit"
    );
    let mut expected = committed.clone();
    expected.sort();
    seen.sort();
    assert_eq!(
        seen, expected,
        "the reader saw exactly the committed events"
    );
    let mut db = store.pool().acquire().await.unwrap();
    assert_eq!(
        log::head(&mut db).await.unwrap(),
        committed.len() as i64 + 1,
        "no gaps from rollbacks"
    );
}

#[tokio::test]
async fn the_log_refuses_updates_and_deletes() {
    let pg = Postgres::throwaway().await.expect("throwaway postgres");
    let store = Store::connect(&pg.url()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    log::append(
        &mut tx,
        None,
        "test",
        EventData::OrgCreated {
            org_id: Uuid::now_v7(),
            name: "a".into(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for sql in [
        "UPDATE events SET actor = 'x'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let err = sqlx::query(sql).execute(store.pool()).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}
