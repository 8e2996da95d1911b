//! An event this build cannot decode (the `"infs"` duration an old build wrote, a payload
//! of a newer build) is quarantined and skipped: readers of every kind go on past it.

use uuid::Uuid;
use zeitwork_core::EventData;
use zeitwork_services::Postgres;
use zeitwork_store::log::{self, Scope};
use zeitwork_store::{Store, rebuild};

async fn emit(store: &Store, org: Uuid, data: EventData) {
    let mut tx = store.begin().await.unwrap();
    log::append(&mut tx, Some(org), "test", data).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn undecodable_events_are_quarantined_and_skipped() {
    let pg = Postgres::throwaway().await.expect("throwaway postgres");
    let store = Store::connect(&pg.url()).await.unwrap();
    let org = Uuid::now_v7();
    emit(
        &store,
        org,
        EventData::OrgCreated {
            org_id: org,
            name: "acme".into(),
        },
    )
    .await;
    // What an earlier build wrote for `policy.cors.max_age = "1e308m"`, appended the way
    // `log::append` does (the log is append-only).
    let mut db = store.pool().acquire().await.unwrap();
    sqlx::query(
        "WITH next AS (UPDATE event_counter SET last_seq = last_seq + 1 WHERE id = 1 RETURNING last_seq)
         INSERT INTO events (seq, at, org_id, kind, version, actor, payload)
         SELECT last_seq, now(), $1, 'route_created', 1, 'test',
           jsonb_build_object('type', 'route_created', 'route_id', gen_random_uuid(),
             'env_id', gen_random_uuid(), 'host', 'a.example.com', 'process', 'web',
             'mode', 'http', 'port', 80, 'proxy_protocol', false,
             'policy', jsonb_build_object('cors', jsonb_build_object(
               'origins', jsonb_build_array('*'), 'max_age', 'infs')))
         FROM next",
    )
    .bind(org)
    .execute(&mut *db)
    .await
    .unwrap();
    emit(
        &store,
        org,
        EventData::AppCreated {
            app_id: Uuid::now_v7(),
            org_id: org,
            name: "blog".into(),
        },
    )
    .await;

    // A page that ends on the bad event still moves the cursor past it.
    let page = log::read(&mut db, Scope::All, 1, 1).await.unwrap();
    assert!(page.events.is_empty());
    assert_eq!(page.through, Some(2), "the reader is not stuck at seq 1");
    // The tenant's own reader and the platform's both get the events around it.
    for scope in [Scope::All, Scope::Org(org)] {
        let page = log::read(&mut db, scope, 0, 100).await.unwrap();
        let seqs: Vec<i64> = page.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(page.through, Some(3));
    }
    // Recorded once, however often it is met.
    let quarantined = log::quarantined(&mut db).await.unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let (seq, kind, error) = &quarantined[0];
    assert_eq!((*seq, kind.as_str()), (2, "route_created"));
    assert!(error.contains("infs"), "{error}");
    // Rebuilding the projections goes past it too.
    assert_eq!(rebuild::rebuild(&store).await.unwrap(), 2);
}
