//! Which subjects hear about the node-agent events: the nodes that gain or lose an
//! instance, edges when backends change, and everyone watching the node inventory; and
//! edges (with the certificate issuer) when a custom domain is added or verified.

use uuid::Uuid;
use zeitwork_core::event::{InstancePlan, ProcessSpec, Replacement};
use zeitwork_core::node::{NodeState, ObservedState};
use zeitwork_core::{Event, EventData};
use zeitwork_services::Postgres;
use zeitwork_store::{Store, log};

async fn emit(store: &Store, org: Option<Uuid>, data: EventData) -> Event {
    let mut tx = store.begin().await.unwrap();
    let event = log::append(&mut tx, org, "test", data).await.unwrap();
    tx.commit().await.unwrap();
    event
}

fn on(node: Option<Uuid>) -> InstancePlan {
    InstancePlan {
        instance_id: Uuid::now_v7(),
        process: "web".into(),
        node_id: node,
        region: node.map(|_| "local".into()),
        reason: None,
    }
}

fn node(n: Uuid) -> String {
    format!("zw.v1.instances.node.{n}")
}

#[tokio::test]
async fn instance_moves_reach_the_nodes_concerned() {
    let pg = Postgres::throwaway().await.expect("throwaway postgres");
    let store = Store::connect(&pg.url()).await.unwrap();
    let (org, app, env, release, deployment) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let (n1, n2) = (Uuid::now_v7(), Uuid::now_v7());
    let (placed, waiting) = (on(Some(n1)), on(None));
    let o = Some(org);
    let setup = [
        (
            None,
            EventData::RegionCreated {
                region_id: Uuid::now_v7(),
                name: "local".into(),
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
            EventData::AppCreated {
                app_id: app,
                org_id: org,
                name: "web".into(),
            },
        ),
        (
            o,
            EventData::EnvCreated {
                env_id: env,
                app_id: app,
                name: "prod".into(),
                preview_of: None,
            },
        ),
        (
            o,
            EventData::ReleaseCreated {
                release_id: release,
                app_id: app,
                number: 1,
                image: "r/web@sha256:00".into(),
                digest: "sha256:00".into(),
                manifest: serde_json::json!({}),
                manifest_hash: "h".into(),
            },
        ),
    ];
    for (org, data) in setup {
        emit(&store, org, data).await;
    }
    let mut enrolled = Vec::new();
    for (id, name) in [(n1, "n1"), (n2, "n2")] {
        let token = Uuid::now_v7();
        let created = EventData::NodeJoinTokenCreated {
            token_id: token,
            hash: token.to_string(),
            expires_at: chrono::Utc::now(),
            replaces: None,
        };
        enrolled.push(emit(&store, None, created).await);
        let data = EventData::NodeEnrolled {
            node_id: id,
            name: name.into(),
            region: "local".into(),
            zone: None,
            millicpus: 1000,
            memory_mb: 1024,
            addresses: vec![],
            instance_prefix: None,
            join_token_id: token,
            credential_hash: format!("c{token}"),
            overlay: None,
        };
        enrolled.push(emit(&store, None, data).await);
    }
    let deployed = EventData::DeploymentCreated {
        deployment_id: deployment,
        env_id: env,
        release_id: release,
        slug: "abcdefg".into(),
        rollback_of: None,
        processes: vec![ProcessSpec {
            name: "web".into(),
            instances: 2,
            millicpus: 100,
            memory_mb: 128,
            port: Some(8080),
        }],
        instances: vec![placed.clone(), waiting.clone()],
        surge: false,
        standby: None,
    };
    emit(&store, o, deployed).await;

    let mut conn = store.pool().acquire().await.unwrap();
    let mut subjects = async |event: &Event| {
        let mut s = zeitwork_listener::subjects(&mut conn, event).await.unwrap();
        assert_eq!(
            s.remove(0),
            "zw.v1.events",
            "every event goes to the firehose"
        );
        s
    };
    assert!(
        subjects(&enrolled[0]).await.is_empty(),
        "join tokens concern no one"
    );
    assert_eq!(subjects(&enrolled[1]).await, ["zw.v1.nodes"]);

    let dead = EventData::NodeStateChanged {
        node_id: n1,
        state: NodeState::Dead,
    };
    assert_eq!(
        subjects(&emit(&store, None, dead).await).await,
        ["zw.v1.nodes"]
    );
    let replaced = EventData::InstancesReplaced {
        deployment_id: deployment,
        replacements: vec![Replacement {
            replaces: placed.instance_id,
            instance: on(Some(n2)),
        }],
        restart: false,
    };
    let replaced = emit(&store, o, replaced).await;
    assert_eq!(subjects(&replaced).await, [node(n2)], "n2 gains one");
    let stopped = EventData::InstancesStopped {
        deployment_id: deployment,
        instance_ids: vec![placed.instance_id],
        reason: "node n1 stopped sending heartbeats".into(),
    };
    let stopped = emit(&store, o, stopped).await;
    assert_eq!(
        subjects(&stopped).await,
        [node(n1), "zw.v1.routes".into()],
        "n1 loses one, edges lose a backend"
    );
    let placed_now = EventData::InstancesPlaced {
        deployment_id: deployment,
        instances: vec![InstancePlan {
            node_id: Some(n2),
            ..waiting.clone()
        }],
    };
    let placed_now = emit(&store, o, placed_now).await;
    assert_eq!(subjects(&placed_now).await, [node(n2)]);
    let observed = EventData::InstanceObserved {
        instance_id: waiting.instance_id,
        state: ObservedState::Healthy,
        reason: None,
        address: Some("10.0.0.2:8080".into()),
        restarts: 0,
    };
    let observed = emit(&store, o, observed).await;
    assert_eq!(subjects(&observed).await, ["zw.v1.routes"]);

    // A verified domain is served and gets a certificate: edges and the issuer follow
    // `routes`, as for every other domain change.
    let domain_id = Uuid::now_v7();
    let added = EventData::DomainAdded {
        domain_id,
        env_id: env,
        hostname: "shop.example.test".into(),
        verification_token: "t".into(),
    };
    let added = emit(&store, o, added).await;
    let verified = emit(&store, o, EventData::DomainVerified { domain_id }).await;
    assert_eq!(subjects(&added).await, ["zw.v1.routes"]);
    assert_eq!(subjects(&verified).await, ["zw.v1.routes"]);
}
