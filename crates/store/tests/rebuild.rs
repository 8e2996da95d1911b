//! `rebuild-projections` replays the log into tables equal to the live ones.

use uuid::Uuid;
use zeitwork_core::event::{InstancePlan, ProcessSpec, Replacement};
use zeitwork_core::node::{NodeState, ObservedState};
use zeitwork_core::{CertificateSource, EventData};
use zeitwork_services::Postgres;
use zeitwork_store::{Store, StoreError, log, rebuild};

async fn emit(store: &Store, org: Option<Uuid>, data: EventData) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    log::append(&mut tx, org, "test", data).await?;
    tx.commit().await?;
    Ok(())
}

fn plan(process: &str, node: Option<Uuid>) -> InstancePlan {
    InstancePlan {
        instance_id: Uuid::now_v7(),
        process: process.into(),
        node_id: node,
        region: node.map(|_| "local".into()),
        reason: node.is_none().then(|| "unscheduled: full".into()),
    }
}

#[tokio::test]
async fn rebuilt_projections_equal_the_live_ones() {
    let pg = Postgres::throwaway().await.expect("throwaway postgres");
    let store = Store::connect(&pg.url()).await.unwrap();
    let (org, app, prod, staging) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let (node, release, d1, d2) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let o = Some(org);
    let domain = Uuid::now_v7();
    let (n2, first_token, second_token) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let (moving, waiting) = (plan("web", Some(node)), plan("web", None));
    let enrolled = |node_id, name: &str, join_token_id, memory_mb, prefix: Option<u16>| {
        EventData::NodeEnrolled {
            node_id,
            name: name.into(),
            region: "local".into(),
            zone: None,
            millicpus: 4000,
            memory_mb,
            addresses: vec!["10.0.0.2".into()],
            // Enrolling again keeps the prefix (an event without one, from an older build,
            // leaves it as it was).
            instance_prefix: prefix.map(zeitwork_core::ipam::node_prefix),
            join_token_id,
            credential_hash: format!("{join_token_id}"),
            overlay: None,
        }
    };
    let join_token = |token_id: Uuid| EventData::NodeJoinTokenCreated {
        token_id,
        hash: token_id.simple().to_string(),
        expires_at: chrono::Utc::now(),
        replaces: Some("n1".into()),
    };
    let (wildcard, issued, renewed, dropped) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let cert = |certificate_id, host: &str, source, replaces| EventData::CertificateStored {
        certificate_id,
        hostnames: vec![host.into()],
        not_after: chrono::Utc::now(),
        chain_pem: format!("chain of {host}"),
        sealed_key: format!("sealed key of {host}"),
        source,
        replaces,
    };
    let account = |account_id| EventData::AcmeAccountStored {
        account_id,
        directory_url: "https://acme.test/directory".into(),
        sealed_credentials: format!("sealed {account_id}"),
    };
    let web = ProcessSpec {
        name: "web".into(),
        instances: 2,
        millicpus: 500,
        memory_mb: 128,
        port: Some(8080),
    };
    let built = Uuid::now_v7();
    let pushed = Uuid::now_v7();
    let preview = Uuid::now_v7();
    let events = vec![
        (
            None,
            EventData::RegionCreated {
                region_id: Uuid::now_v7(),
                name: "local".into(),
            },
        ),
        (
            None,
            EventData::NodeRegistered {
                node_id: node,
                name: "n1".into(),
                region: "local".into(),
                zone: Some("a".into()),
                millicpus: 2000,
                memory_mb: 4096,
                addresses: vec!["10.0.0.1".into()],
                instance_prefix: Some(zeitwork_core::ipam::node_prefix(1)),
            },
        ),
        (
            o,
            EventData::OrgCreated {
                org_id: org,
                name: "acme".into(),
            },
        ),
        (
            o,
            EventData::OrgQuotasSet {
                org_id: org,
                quotas: zeitwork_core::QuotaOverrides {
                    instances: Some(1),
                    ..Default::default()
                },
            },
        ),
        (
            o,
            EventData::OrgQuotasSet {
                org_id: org,
                quotas: zeitwork_core::QuotaOverrides {
                    instances: Some(500),
                    domains: Some(0),
                    ..Default::default()
                },
            },
        ),
        (
            o,
            EventData::UserAdded {
                user_id: Uuid::now_v7(),
                org_id: org,
                email: "a@acme.io".into(),
                role: "admin".into(),
            },
        ),
        (
            o,
            EventData::TokenCreated {
                token_id: Uuid::now_v7(),
                org_id: o,
                name: "ci".into(),
                role: "deployer".into(),
                hash: "ab".repeat(32),
            },
        ),
        (
            o,
            EventData::AppCreated {
                app_id: app,
                org_id: org,
                name: "web".into(),
            },
        ),
        (
            o,
            EventData::EnvCreated {
                env_id: prod,
                app_id: app,
                name: "prod".into(),
                preview_of: None,
            },
        ),
        (
            o,
            EventData::EnvCreated {
                env_id: staging,
                app_id: app,
                name: "staging".into(),
                preview_of: None,
            },
        ),
        (
            o,
            EventData::SecretSet {
                env_id: prod,
                name: "DB".into(),
                version: 1,
                ciphertext: "c1".into(),
            },
        ),
        (
            o,
            EventData::SecretSet {
                env_id: prod,
                name: "DB".into(),
                version: 2,
                ciphertext: "c2".into(),
            },
        ),
        (
            o,
            EventData::SecretSet {
                env_id: prod,
                name: "GONE".into(),
                version: 1,
                ciphertext: "c".into(),
            },
        ),
        (
            o,
            EventData::SecretUnset {
                env_id: prod,
                name: "GONE".into(),
            },
        ),
        (
            o,
            EventData::RouteCreated {
                route_id: Uuid::now_v7(),
                env_id: prod,
                host: Some("www.acme.io".into()),
                process: "web".into(),
                mode: "http".into(),
                port: 8080,
                proxy_protocol: false,
                policy: serde_json::from_value(serde_json::json!({"balance": "least-connections"}))
                    .unwrap(),
                listen_port: None,
                declared: true,
            },
        ),
        (
            o,
            EventData::DomainAdded {
                domain_id: domain,
                env_id: prod,
                hostname: "acme.io".into(),
                verification_token: "t".into(),
            },
        ),
        // Verified twice (two verifies racing): the first time stays.
        (o, EventData::DomainVerified { domain_id: domain }),
        (o, EventData::DomainVerified { domain_id: domain }),
        (
            o,
            EventData::ReleaseCreated {
                release_id: release,
                app_id: app,
                number: 1,
                image: "r/web@sha256:00".into(),
                digest: "sha256:00".into(),
                manifest: serde_json::json!({"version": 1}),
                manifest_hash: "sha256:11".into(),
            },
        ),
        (
            o,
            EventData::DeploymentCreated {
                deployment_id: d1,
                env_id: prod,
                release_id: release,
                slug: "abc1234".into(),
                rollback_of: None,
                processes: vec![web.clone()],
                instances: vec![plan("web", Some(node)), plan("web", None)],
                surge: false,
                standby: None,
            },
        ),
        (
            o,
            EventData::DeploymentCreated {
                deployment_id: d2,
                env_id: prod,
                release_id: release,
                slug: "def5678".into(),
                rollback_of: Some(d1),
                processes: vec![web],
                instances: vec![plan("web", Some(node))],
                // d1's placed instance keeps running, its waiting one stops.
                surge: true,
                standby: None,
            },
        ),
        (
            o,
            EventData::ProcessScaled {
                deployment_id: d2,
                process: "web".into(),
                instances: 2,
                started: vec![plan("web", Some(node))],
                stopped: vec![],
                reason: None,
            },
        ),
        (o, EventData::EnvDeleted { env_id: staging }),
        // Node agents: enrollment, a node dying and coming back, instances moving.
        (
            o,
            EventData::ProcessScaled {
                deployment_id: d2,
                process: "web".into(),
                instances: 4,
                started: vec![moving.clone(), waiting.clone()],
                stopped: vec![],
                reason: Some("27.0 requests in flight over 2 instance(s), target 10 each".into()),
            },
        ),
        (None, join_token(first_token)),
        (None, enrolled(n2, "n2", first_token, 2048, Some(2))),
        (
            o,
            EventData::InstancesPlaced {
                deployment_id: d2,
                instances: vec![InstancePlan {
                    node_id: Some(n2),
                    region: Some("local".into()),
                    reason: None,
                    ..waiting.clone()
                }],
            },
        ),
        (
            None,
            EventData::NodeStateChanged {
                node_id: node,
                state: NodeState::Dead,
            },
        ),
        (
            o,
            EventData::InstancesReplaced {
                deployment_id: d2,
                replacements: vec![Replacement {
                    replaces: moving.instance_id,
                    instance: plan("web", Some(n2)),
                }],
                restart: false,
            },
        ),
        (
            o,
            EventData::InstancesStopped {
                deployment_id: d2,
                instance_ids: vec![moving.instance_id],
                reason: "node n1 stopped sending heartbeats".into(),
            },
        ),
        (
            o,
            EventData::InstanceObserved {
                instance_id: waiting.instance_id,
                state: ObservedState::Healthy,
                reason: None,
                address: Some("10.0.0.2:8080".into()),
                restarts: 1,
            },
        ),
        (None, join_token(second_token)),
        (None, enrolled(node, "n1", second_token, 8192, None)),
        (
            None,
            EventData::NodeStateChanged {
                node_id: node,
                state: NodeState::Ready,
            },
        ),
        // Certificates: an import, an issue and its renewal, a removal; the ACME account
        // of one directory stored twice (the second replaces the first).
        (
            None,
            cert(
                wildcard,
                "*.zeitwork.test",
                CertificateSource::Operator,
                vec![],
            ),
        ),
        (
            None,
            cert(issued, "acme.io", CertificateSource::Acme, vec![]),
        ),
        (
            None,
            cert(renewed, "acme.io", CertificateSource::Acme, vec![issued]),
        ),
        (
            None,
            cert(dropped, "gone.io", CertificateSource::Acme, vec![]),
        ),
        (
            None,
            EventData::CertificateRemoved {
                certificate_id: dropped,
                reason: "no longer served".into(),
            },
        ),
        (None, account(Uuid::now_v7())),
        (None, account(Uuid::now_v7())),
        (
            o,
            EventData::BuildQueued {
                build_id: built,
                env_id: prod,
                source: "127.0.0.1:5000/acme/web/source@sha256:ab".into(),
                manifest: serde_json::json!({"version": 1, "app": "web"}),
                node_id: node,
                git: None,
            },
        ),
        (
            o,
            EventData::BuildStateChanged {
                build_id: built,
                state: zeitwork_core::build::BuildState::Failed,
                reason: Some("the build exited with code 1".into()),
                image: None,
                log: vec!["STEP 2/2: RUN false".into()],
                manifest: None,
            },
        ),
        (
            o,
            EventData::RepositoryConnected {
                app_id: app,
                hook_id: Uuid::now_v7(),
                url: "https://github.com/acme/web.git".into(),
                branch: "main".into(),
                sealed_secret: "s".into(),
                sealed_token: Some("t".into()),
            },
        ),
        (
            o,
            EventData::EnvCreated {
                env_id: preview,
                app_id: app,
                name: "feature-x".into(),
                preview_of: Some("feature/x".into()),
            },
        ),
        (
            o,
            EventData::BuildQueued {
                build_id: pushed,
                env_id: preview,
                source: "git-tree:".to_owned() + &"b".repeat(40),
                manifest: serde_json::json!({"version": 1, "app": "web"}),
                node_id: node,
                git: Some(zeitwork_core::repository::GitSource {
                    url: "https://github.com/acme/web.git".into(),
                    branch: "feature/x".into(),
                    commit: "a".repeat(40),
                    tree: "b".repeat(40),
                }),
            },
        ),
        (
            o,
            EventData::BuildStateChanged {
                build_id: pushed,
                state: zeitwork_core::build::BuildState::Succeeded,
                reason: None,
                image: Some("127.0.0.1:5000/acme/web@sha256:cd".into()),
                log: Vec::new(),
                manifest: Some(serde_json::json!({"version": 1, "app": "web", "env": {"A": "1"}})),
            },
        ),
        (
            o,
            EventData::WebhookDelivered {
                app_id: app,
                delivery: "d-1".into(),
                event: "push".into(),
                outcome: "build of feature/x".into(),
            },
        ),
    ];
    for (org, data) in events {
        emit(&store, org, data).await.unwrap();
    }

    let mut db = store.pool().acquire().await.unwrap();
    let live = rebuild::snapshot(&mut db).await.unwrap();
    let instances = live["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 7);
    let row = |id: Uuid| {
        instances
            .iter()
            .find(|i| i["id"] == id.to_string())
            .unwrap()
    };
    assert_eq!(row(moving.instance_id)["desired_state"], "stopped");
    assert_eq!(
        (
            &row(waiting.instance_id)["node_id"],
            &row(waiting.instance_id)["address"]
        ),
        (&serde_json::json!(n2), &serde_json::json!("10.0.0.2:8080"))
    );
    assert!(
        instances
            .iter()
            .any(|i| i["replaces"] == moving.instance_id.to_string()),
        "the replacement points at the instance it replaces"
    );
    let nodes = live["nodes"].as_array().unwrap();
    let n1 = nodes.iter().find(|n| n["id"] == node.to_string()).unwrap();
    assert_eq!(
        (&n1["memory_mb"], &n1["state"]),
        (&serde_json::json!(8192), &serde_json::json!("ready")),
        "enrolling again keeps the id and takes the new capacity"
    );
    assert!(
        live["join_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["used_at"].is_string()),
        "{:#}",
        live["join_tokens"]
    );
    assert_eq!(
        live["envs"].as_array().unwrap().len(),
        2,
        "staging was deleted; prod and the preview are left"
    );
    assert_eq!(live["app_repositories"][0]["branch"], "main");
    assert_eq!(live["webhook_deliveries"][0]["delivery"], "d-1");
    let pushed_build = live["builds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == pushed.to_string())
        .unwrap();
    assert_eq!(pushed_build["git"]["tree"], "b".repeat(40));
    assert_eq!(
        pushed_build["manifest"]["env"]["A"], "1",
        "a succeeded build of a commit keeps the commit's manifest"
    );
    assert_eq!(live["secrets"][0]["version"], 2);
    let certs: Vec<&str> = live["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let mut expected = [wildcard.to_string(), renewed.to_string()];
    expected.sort();
    assert_eq!(
        certs, expected,
        "the renewal replaced its predecessor, the removal dropped its certificate"
    );
    assert_eq!(live["acme_accounts"].as_array().unwrap().len(), 1);
    assert_eq!(live["builds"][0]["state"], "failed", "{:#}", live["builds"]);
    let quotas = &live["org_quotas"][0];
    assert_eq!(
        (&quotas["instances"], &quotas["domains"], &quotas["routes"]),
        (&500.into(), &0.into(), &serde_json::Value::Null),
        "the later setting replaced the earlier one: {quotas:#}"
    );
    let verified_at = &live["domains"][0]["verified_at"];
    assert!(verified_at.is_string(), "{:#}", live["domains"]);
    let first: (chrono::DateTime<chrono::Utc>,) =
        sqlx::query_as("SELECT at FROM events WHERE kind = 'domain_verified' ORDER BY seq LIMIT 1")
            .fetch_one(&mut *db)
            .await
            .unwrap();
    assert_eq!(
        verified_at
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap(),
        first.0,
        "the first verification's time"
    );
    let applied = rebuild::rebuild(&store).await.unwrap();
    assert_eq!(applied, 48);
    let rebuilt = rebuild::snapshot(&mut db).await.unwrap();
    assert_eq!(rebuilt, live);
}

#[tokio::test]
async fn a_conflicting_event_writes_nothing() {
    let pg = Postgres::throwaway().await.expect("throwaway postgres");
    let store = Store::connect(&pg.url()).await.unwrap();
    emit(
        &store,
        None,
        EventData::OrgCreated {
            org_id: Uuid::now_v7(),
            name: "acme".into(),
        },
    )
    .await
    .unwrap();
    let err = emit(
        &store,
        None,
        EventData::OrgCreated {
            org_id: Uuid::now_v7(),
            name: "acme".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { field: "name", .. }),
        "{err:?}"
    );
    let mut db = store.pool().acquire().await.unwrap();
    assert_eq!(
        log::head(&mut db).await.unwrap(),
        1,
        "the failed append left no event"
    );
}

#[tokio::test]
async fn a_reader_that_began_before_a_rebuild_still_sees_the_rows() {
    let pg = Postgres::throwaway().await.expect("throwaway postgres");
    let store = Store::connect(&pg.url()).await.unwrap();
    let org = Uuid::now_v7();
    let created = EventData::OrgCreated {
        org_id: org,
        name: "acme".into(),
    };
    emit(&store, Some(org), created).await.unwrap();
    // An edge's table read: one REPEATABLE READ snapshot, taken before the rebuild.
    let mut reader = store.begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *reader)
        .await
        .unwrap();
    log::head(&mut reader).await.unwrap();
    rebuild::rebuild(&store).await.unwrap();
    let (orgs,): (i64,) = sqlx::query_as("SELECT count(*) FROM orgs")
        .fetch_one(&mut *reader)
        .await
        .unwrap();
    assert_eq!(
        orgs, 1,
        "the rebuild emptied a table under a running reader"
    );
}
