//! What a node agent does through the API: heartbeats (no events), pulling its desired
//! state, and reporting its instances (recorded once per change).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Agent, Platform, assert_error, image};

const MANIFEST: &str = r#"
version = 1
app = "web"
env = { MODE = "production" }
[processes.web]
port = 8080
cpus = 0.5
memory_mb = 256
command = ["/bin/web", "--listen", ":8080"]
health = { path = "/up", interval = "5s", timeout = "500ms", healthy_threshold = 2 }
[processes.worker]
port = 9000
cpus = 2.5
memory_mb = 128
"#;

const SECRET: &str = "postgres://app:s3cr3t@db/app";

/// An org with app `web` deployed (MANIFEST) to prod with secret DB_URL, on node n1.
async fn deployed() -> (Platform, String, Agent) {
    let p = Platform::start().await;
    let admin = p.org("acme").await;
    let n1 = p.enroll("n1", 2048).await;
    p.post("/api/v1/orgs/acme/apps", &admin, json!({"name": "web"}))
        .await;
    let env = "/api/v1/orgs/acme/apps/web/envs/prod";
    let secret = p
        .send(
            Method::PUT,
            &format!("{env}/secrets/DB_URL"),
            Some(&admin),
            Some(&json!({"value": SECRET})),
        )
        .await;
    assert_eq!(secret.status, StatusCode::OK, "{:?}", secret.body);
    let d = p
        .post(
            &format!("{env}/deployments"),
            &admin,
            json!({"image": image(7), "manifest": MANIFEST}),
        )
        .await;
    assert_eq!(d.status, StatusCode::CREATED, "{:?}", d.body);
    (p, admin, n1)
}

fn by_process<'a>(desired: &'a Value, process: &str) -> &'a Value {
    desired["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["process"] == process)
        .unwrap_or_else(|| panic!("no {process} in {desired:#}"))
}

#[tokio::test]
async fn heartbeats_keep_liveness_without_events() {
    let p = Platform::start().await;
    let n1 = p.enroll("n1", 1024).await;
    let first = p.get("/api/v1/nodes/n1", &p.root).await.body["last_heartbeat"].clone();
    let head = p.head().await;
    let ack = p
        .post(&n1.path("heartbeat"), &n1.credential, json!({"running": 3}))
        .await;
    assert_eq!(ack.status, StatusCode::OK, "{:?}", ack.body);
    assert_eq!(ack.body, json!({"state": "ready"}));
    assert_eq!(p.head().await, head, "a heartbeat writes no event");
    let node = p.get("/api/v1/nodes/n1", &p.root).await.body;
    assert_eq!(node["running"], 3);
    let (first, now): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = (
        serde_json::from_value(first).unwrap(),
        serde_json::from_value(node["last_heartbeat"].clone()).unwrap(),
    );
    assert!(now > first, "last_heartbeat moved: {first} → {now}");
    let bad = p
        .post(
            &n1.path("heartbeat"),
            &n1.credential,
            json!({"running": -1}),
        )
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, Some("running"));

    // Liveness is bookkeeping: a rebuild neither needs nor loses it.
    p.assert_rebuild_is_exact().await;
    let after = p.get("/api/v1/nodes/n1", &p.root).await.body;
    assert_eq!(after["last_heartbeat"], node["last_heartbeat"]);
}

#[tokio::test]
async fn the_desired_state_has_everything_an_instance_boots_with() {
    let (p, _, n1) = deployed().await;
    let desired = p.get(&n1.path("desired"), &n1.credential).await;
    assert_eq!(desired.status, StatusCode::OK, "{:?}", desired.body);
    let d = desired.body;
    assert_eq!(d["node_id"], n1.id);
    assert_eq!(d["seq"], p.head().await, "as of the log head");
    assert_eq!(d["instances"].as_array().unwrap().len(), 2);

    let web = by_process(&d, "web");
    assert_eq!(web["image"], image(7), "pinned by digest");
    assert_eq!(
        (&web["org"], &web["app"], &web["env"]),
        (&json!("acme"), &json!("web"), &json!("prod"))
    );
    assert_eq!(web["command"], json!(["/bin/web", "--listen", ":8080"]));
    assert_eq!(web["env_vars"], json!({"MODE": "production"}));
    assert_eq!(web["secrets"], json!({"DB_URL": SECRET}), "secrets opened");
    assert_eq!(
        (&web["port"], &web["memory_mb"]),
        (&json!(8080), &json!(256))
    );
    assert_eq!((&web["vcpus"], &web["cpu_weight"]), (&json!(1), &json!(50)));
    assert_eq!(
        web["health"],
        json!({"probe": {"type": "http", "path": "/up"}, "interval_ms": 5000,
               "timeout_ms": 500, "healthy_threshold": 2, "unhealthy_threshold": 3})
    );
    let worker = by_process(&d, "worker");
    assert_eq!(
        (&worker["vcpus"], &worker["cpu_weight"]),
        (&json!(3), &json!(250))
    );
    assert_eq!(worker["command"], Value::Null, "the image's own");
    assert_eq!(
        worker["health"],
        json!({"probe": {"type": "tcp"}, "interval_ms": 1000, "timeout_ms": 1000,
               "healthy_threshold": 1, "unhealthy_threshold": 3}),
        "a port without a check gets a TCP check"
    );
    // Secrets are sealed at rest: the plaintext is nowhere in the database.
    let (hits,): (i64,) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM events WHERE payload::text LIKE $1)
              + (SELECT count(*) FROM secrets WHERE ciphertext LIKE $1)",
    )
    .bind(format!("%{SECRET}%"))
    .fetch_one(p.store.pool())
    .await
    .unwrap();
    assert_eq!(hits, 0);
}

#[tokio::test]
async fn reports_are_recorded_once_per_change() {
    let (p, admin, n1) = deployed().await;
    let n2 = p.enroll("n2", 1024).await;
    let d = p.get(&n1.path("desired"), &n1.credential).await.body;
    let id = by_process(&d, "web")["instance_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = n1.path(&format!("instances/{id}/state"));
    let here = n1.address(8080);
    assert_ne!(
        n1.instance_prefix, n2.instance_prefix,
        "every node its own prefix"
    );
    let healthy = json!({"state": "healthy", "address": here, "restarts": 1});

    let first = p.post(&state, &n1.credential, healthy.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.body["recorded"], true);
    let head = p.head().await;
    let again = p.post(&state, &n1.credential, healthy.clone()).await;
    assert_eq!(again.body["recorded"], false);
    assert_eq!(p.head().await, head, "a repeated report writes nothing");
    assert_eq!(p.count("instance_observed").await, 1);
    let restarted = json!({"state": "healthy", "address": here, "restarts": 2});
    let changed = p.post(&state, &n1.credential, restarted).await;
    assert_eq!(changed.body["recorded"], true);
    assert_eq!(p.count("instance_observed").await, 2);

    let instances = p
        .get("/api/v1/orgs/acme/apps/web/envs/prod/instances", &admin)
        .await
        .body;
    let web = instances["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.as_str())
        .unwrap();
    assert_eq!(
        (&web["observed_state"], &web["address"], &web["restarts"]),
        (&json!("healthy"), &json!(here), &json!(2))
    );

    // Only the node an instance is on may report it; bad reports are named.
    let elsewhere = p
        .post(
            &n2.path(&format!("instances/{id}/state")),
            &n2.credential,
            json!({"state": "healthy", "address": n2.address(8080), "restarts": 1}),
        )
        .await;
    assert_error(&elsewhere, StatusCode::NOT_FOUND, None);
    let unknown = n1.path("instances/00000000-0000-0000-0000-000000000000/state");
    assert_error(
        &p.post(&unknown, &n1.credential, healthy).await,
        StatusCode::NOT_FOUND,
        None,
    );
    let cases = [
        (
            "address",
            json!({"state": "healthy", "address": "10.0.0.5"}),
        ),
        // An address outside the node's own prefix (IPv4 is reused on every node, and
        // another node's is another tenant's VM) would send traffic to the wrong place.
        (
            "address",
            json!({"state": "healthy", "address": "172.31.0.3:8080"}),
        ),
        (
            "address",
            json!({"state": "healthy", "address": n2.address(8080)}),
        ),
        ("state", json!({"state": "running"})),
        ("colour", json!({"state": "healthy", "colour": "red"})),
    ];
    for (field, body) in cases {
        let a = p.post(&state, &n1.credential, body).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.body);
        assert!(a.body.to_string().contains(field), "{field}: {:?}", a.body);
    }
    assert_eq!(p.count("instance_observed").await, 2);
    p.assert_rebuild_is_exact().await;
}
