//! Instance logs on real Postgres: order and filters, the node boundary, tailing under
//! concurrent appenders, retention, and independence from rebuild-projections.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use uuid::Uuid;
use zeitwork_core::node::{LogLine, LogSource};
use zeitwork_services::Postgres;
use zeitwork_store::logs::{self, Filter, Retention};
use zeitwork_store::{Store, StoreError, rebuild};

/// One org with app `web` (envs prod and staging) and two nodes. Rows go straight into
/// the projections: these tests are about logs, not about how instances get placed.
struct World {
    org: Uuid,
    app: Uuid,
    prod: Uuid,
    staging: Uuid,
    node_a: Uuid,
    node_b: Uuid,
}

impl World {
    async fn new(store: &Store) -> World {
        let w = World {
            org: Uuid::now_v7(),
            app: Uuid::now_v7(),
            prod: Uuid::now_v7(),
            staging: Uuid::now_v7(),
            node_a: Uuid::now_v7(),
            node_b: Uuid::now_v7(),
        };
        let db = store.pool();
        sqlx::query("INSERT INTO regions (id, name, created_at) VALUES ($1, 'local', now())")
            .bind(Uuid::now_v7())
            .execute(db)
            .await
            .unwrap();
        for (id, name) in [(w.node_a, "a"), (w.node_b, "b")] {
            sqlx::query(
                "INSERT INTO nodes (id, name, region, millicpus, memory_mb, addresses, state, created_at)
                 VALUES ($1, $2, 'local', 1000, 1024, '[]', 'ready', now())",
            )
            .bind(id)
            .bind(name)
            .execute(db)
            .await
            .unwrap();
        }
        sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, 'acme', now())")
            .bind(w.org)
            .execute(db)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO apps (id, org_id, name, created_at) VALUES ($1, $2, 'web', now())",
        )
        .bind(w.app)
        .bind(w.org)
        .execute(db)
        .await
        .unwrap();
        for (id, name) in [(w.prod, "prod"), (w.staging, "staging")] {
            sqlx::query(
                "INSERT INTO envs (id, org_id, app_id, name, created_at) VALUES ($1, $2, $3, $4, now())",
            )
            .bind(id)
            .bind(w.org)
            .bind(w.app)
            .bind(name)
            .execute(db)
            .await
            .unwrap();
        }
        w
    }

    /// A running instance of process `process` in `env`, placed on `node`.
    async fn instance(&self, store: &Store, env: Uuid, node: Uuid, process: &str) -> Uuid {
        let db = store.pool();
        let release = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO releases (id, org_id, app_id, number, image, digest, manifest, manifest_hash, created_at, created_by)
             VALUES ($1, $2, $3, (SELECT count(*) + 1 FROM releases), 'i', 'd', '{}', 'h', now(), 'system')",
        )
        .bind(release)
        .bind(self.org)
        .bind(self.app)
        .execute(db)
        .await
        .unwrap();
        let deployment = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO deployments (id, org_id, app_id, env_id, release_id, slug, state, created_at, activated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'superseded', now(), now())",
        )
        .bind(deployment)
        .bind(self.org)
        .bind(self.app)
        .bind(env)
        .bind(release)
        .bind(deployment.simple().to_string())
        .execute(db)
        .await
        .unwrap();
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO instances (id, org_id, env_id, deployment_id, process, node_id, region,
                                    desired_state, observed_state, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'local', 'running', 'healthy', now(), now())",
        )
        .bind(id)
        .bind(self.org)
        .bind(env)
        .bind(deployment)
        .bind(process)
        .bind(node)
        .execute(db)
        .await
        .unwrap();
        id
    }

    fn app(&self) -> Filter {
        Filter {
            org_id: self.org,
            app_id: self.app,
            env_id: None,
            instance_id: None,
            build_id: None,
        }
    }
}

fn line(instance: Uuid, text: &str) -> LogLine {
    LogLine::new(LogSource::Instance(instance), Utc::now(), text.into())
}

async fn append(store: &Store, node: Uuid, lines: &[LogLine]) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    let n = logs::append(&mut tx, node, lines).await?;
    tx.commit().await?;
    Ok(n)
}

async fn texts(store: &Store, filter: &Filter) -> Vec<String> {
    let mut db = store.pool().acquire().await.unwrap();
    let lines = logs::read(&mut db, filter, 0, 1000).await.unwrap();
    assert!(lines.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    lines.into_iter().map(|l| l.line).collect()
}

async fn start() -> (Postgres, Store, World) {
    let pg = Postgres::throwaway().await.expect("throwaway postgres");
    let store = Store::connect(&pg.url()).await.unwrap();
    let world = World::new(&store).await;
    (pg, store, world)
}

#[tokio::test]
async fn lines_read_back_in_order_by_app_env_and_instance() {
    let (_pg, store, w) = start().await;
    let web = w.instance(&store, w.prod, w.node_a, "web").await;
    let worker = w.instance(&store, w.prod, w.node_a, "worker").await;
    let staged = w.instance(&store, w.staging, w.node_b, "web").await;
    let batch: Vec<LogLine> = (0..300)
        .map(|i| line(if i % 3 == 0 { worker } else { web }, &format!("a{i:03}")))
        .collect();
    assert_eq!(append(&store, w.node_a, &batch).await.unwrap(), 300);
    append(&store, w.node_b, &[line(staged, "s\0x")])
        .await
        .unwrap();
    append(&store, w.node_a, &[line(web, "a300")])
        .await
        .unwrap();

    let all = texts(&store, &w.app()).await;
    let mut expected: Vec<String> = (0..300).map(|i| format!("a{i:03}")).collect();
    expected.push("s\u{fffd}x".into());
    expected.push("a300".into());
    assert_eq!(all, expected, "batch order, then commit order");

    let staging = Filter {
        env_id: Some(w.staging),
        ..w.app()
    };
    assert_eq!(texts(&store, &staging).await, ["s\u{fffd}x"]);
    let only_worker = Filter {
        instance_id: Some(worker),
        ..w.app()
    };
    let got = texts(&store, &only_worker).await;
    assert_eq!(got.len(), 100);
    assert!(got.iter().all(|t| t[1..].parse::<u32>().unwrap() % 3 == 0));
    let other_org = Filter {
        org_id: Uuid::now_v7(),
        ..w.app()
    };
    assert!(texts(&store, &other_org).await.is_empty(), "org boundary");

    let mut db = store.pool().acquire().await.unwrap();
    let head = logs::head(&mut db).await.unwrap();
    let last = logs::tail(&mut db, &w.app(), head, 3).await.unwrap();
    let last: Vec<_> = last
        .iter()
        .map(|l| (l.line.as_str(), l.process.as_str()))
        .collect();
    assert_eq!(
        last,
        [("a299", "web"), ("s\u{fffd}x", "web"), ("a300", "web")]
    );
    let earlier = logs::tail(&mut db, &w.app(), head - 1, 2).await.unwrap();
    assert_eq!(earlier[1].line, "s\u{fffd}x", "tail stops at `through`");
    let page = logs::read(&mut db, &w.app(), earlier[0].id, 2)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].id, earlier[1].id, "read starts after the cursor");
}

#[tokio::test]
async fn a_node_cannot_append_for_an_instance_placed_elsewhere() {
    let (_pg, store, w) = start().await;
    let mine = w.instance(&store, w.prod, w.node_a, "web").await;
    let theirs = w.instance(&store, w.prod, w.node_b, "web").await;
    let err = append(
        &store,
        w.node_a,
        &[line(mine, "ok"), line(theirs, "forged")],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StoreError::NotOnNode(id) if id == theirs),
        "{err}"
    );
    assert!(err.to_string().contains(&theirs.to_string()), "{err}");
    let unknown = Uuid::now_v7();
    let err = append(&store, w.node_a, &[line(unknown, "x")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotOnNode(id) if id == unknown),
        "{err}"
    );
    assert!(
        texts(&store, &w.app()).await.is_empty(),
        "a refused batch stores none of its lines"
    );
}

#[tokio::test]
async fn a_builds_lines_are_its_nodes_to_ship_and_kept_apart_from_the_instances() {
    let (_pg, store, w) = start().await;
    let web = w.instance(&store, w.prod, w.node_a, "web").await;
    let build = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO builds (id, org_id, app_id, env_id, node_id, state, source, manifest, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'building', 's', '{}', now(), now())",
    )
    .bind(build)
    .bind(w.org)
    .bind(w.app)
    .bind(w.prod)
    .bind(w.node_a)
    .execute(store.pool())
    .await
    .unwrap();
    let built = |text: &str| LogLine::new(LogSource::Build(build), Utc::now(), text.into());
    let err = append(&store, w.node_b, &[built("forged")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::BuildNotOnNode(id) if id == build),
        "{err}"
    );
    append(
        &store,
        w.node_a,
        &[
            built("STEP 1/2: FROM scratch"),
            line(web, "served"),
            built("STEP 2/2"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        texts(&store, &w.app()).await,
        ["served"],
        "app logs are the instances'"
    );
    let of_build = Filter {
        build_id: Some(build),
        ..w.app()
    };
    assert_eq!(
        texts(&store, &of_build).await,
        ["STEP 1/2: FROM scratch", "STEP 2/2"]
    );
    let mut db = store.pool().acquire().await.unwrap();
    let lines = logs::read(&mut db, &of_build, 0, 10).await.unwrap();
    assert_eq!(lines[0].process, logs::BUILD_PROCESS);
    assert_eq!(
        (lines[0].build_id, lines[0].instance_id),
        (Some(build), None)
    );
}

const WRITERS: usize = 8;
const BATCHES: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_never_let_a_tailing_reader_skip_a_line() {
    let (_pg, store, w) = start().await;
    let mut instances = Vec::new();
    for i in 0..WRITERS {
        let node = if i % 2 == 0 { w.node_a } else { w.node_b };
        instances.push((node, w.instance(&store, w.prod, node, "web").await));
    }
    let mut writers = Vec::new();
    for (n, (node, instance)) in instances.into_iter().enumerate() {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut committed = Vec::new();
            for b in 0..BATCHES {
                let batch: Vec<LogLine> = (0..3)
                    .map(|i| line(instance, &format!("w{n}-{b}-{i}")))
                    .collect();
                let mut tx = store.begin().await.unwrap();
                logs::append(&mut tx, node, &batch).await.unwrap();
                // Commit late and out of start order; roll some back (leaving id gaps).
                let (pause, rollback) = {
                    let mut rng = rand::thread_rng();
                    (rng.gen_range(0..4), rng.gen_bool(0.1))
                };
                tokio::time::sleep(Duration::from_millis(pause)).await;
                if rollback {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                    committed.extend(batch.into_iter().map(|l| l.line));
                }
            }
            committed
        }));
    }
    let last = w.instance(&store, w.prod, w.node_a, "web").await;

    let reader = {
        let store = store.clone();
        let filter = w.app();
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut seen = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let mut db = store.pool().acquire().await.unwrap();
                for l in logs::read(&mut db, &filter, cursor, 7).await.unwrap() {
                    assert!(l.id > cursor);
                    cursor = l.id;
                    seen.push(l.line);
                }
                if seen.iter().any(|l| l == "done") || tokio::time::Instant::now() > deadline {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };

    let mut committed = Vec::new();
    for writer in writers {
        committed.extend(writer.await.unwrap());
    }
    append(&store, w.node_a, &[line(last, "done")])
        .await
        .unwrap();
    let mut seen = reader.await.unwrap();
    assert_eq!(seen.pop().as_deref(), Some("done"));
    assert!(
        committed.len() > WRITERS * BATCHES * 3 / 2,
        "most batches commit"
    );
    let skipped: Vec<&String> = committed.iter().filter(|l| !seen.contains(l)).collect();
    assert!(
        skipped.is_empty(),
        "the tailing reader skipped {} committed lines, e.g. {:?}",
        skipped.len(),
        &skipped[..skipped.len().min(3)]
    );
    committed.sort();
    seen.sort();
    assert_eq!(seen, committed, "nothing else, nothing twice");
}

#[tokio::test]
async fn retention_keeps_the_newest_lines_per_instance_and_drops_old_ones() {
    let (_pg, store, w) = start().await;
    let busy = w.instance(&store, w.prod, w.node_a, "web").await;
    let quiet = w.instance(&store, w.prod, w.node_a, "web").await;
    let keep = Retention {
        per_instance: 5,
        max_age: chrono::Duration::days(7),
    };
    let old: DateTime<Utc> = Utc::now() - chrono::Duration::days(8);
    let mut batch = vec![LogLine::new(
        LogSource::Instance(quiet),
        old,
        "ancient".into(),
    )];
    batch.extend((0..8).map(|i| line(busy, &format!("b{i}"))));
    batch.extend((0..3).map(|i| line(quiet, &format!("q{i}"))));
    append(&store, w.node_a, &batch).await.unwrap();

    let mut db = store.pool().acquire().await.unwrap();
    let pruned = logs::prune(&mut db, &keep, 0).await.unwrap();
    assert_eq!(
        pruned.deleted,
        1 + 3,
        "the ancient line and busy's three oldest"
    );
    assert_eq!(pruned.through, logs::head(&mut db).await.unwrap());
    let only = |instance| Filter {
        instance_id: Some(instance),
        ..w.app()
    };
    assert_eq!(
        texts(&store, &only(busy)).await,
        ["b3", "b4", "b5", "b6", "b7"]
    );
    assert_eq!(texts(&store, &only(quiet)).await, ["q0", "q1", "q2"]);

    // Next round: only instances with new lines are counted again.
    let more: Vec<LogLine> = (3..6).map(|i| line(quiet, &format!("q{i}"))).collect();
    append(&store, w.node_a, &more).await.unwrap();
    let again = logs::prune(&mut db, &keep, pruned.through).await.unwrap();
    assert_eq!(again.deleted, 1);
    assert_eq!(
        texts(&store, &only(quiet)).await,
        ["q1", "q2", "q3", "q4", "q5"]
    );
    assert_eq!(texts(&store, &only(busy)).await.len(), 5);
    let idle = logs::prune(&mut db, &keep, again.through).await.unwrap();
    assert_eq!(idle.deleted, 0);
}

#[tokio::test]
async fn rebuilding_the_projections_leaves_logs_alone() {
    let (_pg, store, w) = start().await;
    let web = w.instance(&store, w.prod, w.node_a, "web").await;
    append(&store, w.node_a, &[line(web, "kept")])
        .await
        .unwrap();
    assert!(!rebuild::PROJECTIONS.contains(&"log_lines"));
    // This log is empty, so the rebuild empties every projection: logs must survive it.
    assert_eq!(rebuild::rebuild(&store).await.unwrap(), 0);
    let (instances,): (i64,) = sqlx::query_as("SELECT count(*) FROM instances")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(instances, 0, "the projections were rebuilt");
    assert_eq!(texts(&store, &w.app()).await, ["kept"]);
    let (events,): (i64,) = sqlx::query_as("SELECT count(*) FROM events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(events, 0, "log lines are not events");
}
