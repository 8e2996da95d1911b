//! A process scaled to zero (its release says `[processes.web.autoscale] min = 0`): a
//! request is held while it wakes, asks for the wake once (a row in `wake_requests`,
//! what the autoscaler acts on), and is served once an instance turns healthy; a wake
//! that misses the route's timeout is a 503 with Retry-After.

use std::time::Duration;

use uuid::Uuid;
use zeitwork_core::EventData;
use zeitwork_core::event::InstancePlan;

use crate::support::{BASE, Backend, Running, World, eventually};

async fn asleep(world: &World) -> (crate::support::App, Uuid) {
    let manifest = serde_json::json!({"processes": {"web": {"autoscale": {"min": 0, "max": 2}}}});
    let app = world.app_with(&["prod"], manifest).await;
    world.deploy(&app, "prod", "zzz", 0).await;
    let (deployment,): (Uuid,) = sqlx::query_as("SELECT id FROM deployments")
        .fetch_one(world.store.pool())
        .await
        .unwrap();
    (app, deployment)
}

async fn wake_requests(world: &World) -> Vec<(Uuid, String)> {
    sqlx::query_as("SELECT deployment_id, process FROM wake_requests")
        .fetch_all(world.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_wake_that_misses_the_timeout_is_a_503_with_retry_after() {
    let world = World::new().await;
    let (_app, deployment) = asleep(&world).await;
    let config = zeitwork_edge::Config {
        upstream_timeout: Duration::from_millis(800),
        ..zeitwork_edge::Config::new(BASE)
    };
    let edge = Running::with(&world, None, config).await;
    let started = std::time::Instant::now();
    let reply = edge
        .get_with(&format!("shop-acme.{BASE}"), "Accept: application/json\r\n")
        .await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "held first"
    );
    assert_eq!(reply.header("retry-after"), Some("5"));
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["error"]["code"], "waking", "{body}");
    assert_eq!(
        wake_requests(&world).await,
        [(deployment, "web".to_owned())]
    );
}

#[tokio::test]
async fn held_requests_are_served_once_an_instance_is_healthy() {
    let world = World::new().await;
    let (app, deployment) = asleep(&world).await;
    let edge = Running::start(&world, None, Duration::from_millis(200)).await;
    let host = format!("shop-acme.{BASE}");
    let held: Vec<_> = (0..5)
        .map(|_| {
            let (addr, host) = (edge.addr, host.clone());
            tokio::spawn(async move {
                crate::support::exchange(
                    addr,
                    format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
            })
        })
        .collect();
    eventually("the edge asks for a wake", || async {
        !wake_requests(&world).await.is_empty()
    })
    .await;
    // What the autoscaler and the node agent do: one instance, healthy.
    let backend = Backend::start("woken").await;
    let instance = Uuid::now_v7();
    let scaled = EventData::ProcessScaled {
        deployment_id: deployment,
        process: "web".into(),
        instances: 1,
        started: vec![InstancePlan {
            instance_id: instance,
            process: "web".into(),
            node_id: None,
            region: None,
            reason: None,
        }],
        stopped: vec![],
        reason: Some("a request arrived while scaled to zero".into()),
    };
    world.emit(app.org, scaled).await;
    world.healthy(&app, instance, backend.addr).await;
    for request in held {
        let replies = request.await.unwrap();
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].status, 200, "{:?}", replies[0]);
        assert_eq!(replies[0].backend(), Some("woken"));
    }
}
