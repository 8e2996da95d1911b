//! Join tokens and enrollment: one use each, bad fields named, secrets never stored,
//! and a node credential that reaches its own node's endpoints and nothing else.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::openapi::fill;
use crate::support::{Platform, assert_error, image};

fn enrollment(name: &str, memory_mb: u64) -> Value {
    json!({"name": name, "region": "eu", "zone": "a", "millicpus": 4000,
           "memory_mb": memory_mb, "addresses": ["10.0.0.7", "fd00::7"]})
}

#[tokio::test]
async fn a_join_token_enrolls_one_node_once() {
    let p = Platform::start().await;
    let created = p
        .post(
            "/api/v1/nodes/join-tokens",
            &p.root,
            json!({"ttl_seconds": 600}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let token = created.body["token"].as_str().unwrap().to_owned();
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(created.body["expires_at"].clone()).unwrap();
    let left = expires - chrono::Utc::now();
    assert!(
        (590..=600).contains(&left.num_seconds()),
        "expires in {left}"
    );

    // Bad fields are named, and do not use the token up.
    // (A name the API's paths use is well formed but taken: 409.)
    let bad = [
        ("name", json!("N1"), StatusCode::UNPROCESSABLE_ENTITY),
        ("name", json!("enroll"), StatusCode::CONFLICT),
        ("region", json!(""), StatusCode::UNPROCESSABLE_ENTITY),
        ("zone", json!("a_b"), StatusCode::UNPROCESSABLE_ENTITY),
        ("millicpus", json!(0), StatusCode::UNPROCESSABLE_ENTITY),
        ("memory_mb", json!(0), StatusCode::UNPROCESSABLE_ENTITY),
        ("millicpus", json!(-5), StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (key, value, status) in bad {
        let mut body = enrollment("n1", 1024);
        body[key] = value;
        let a = p.post("/api/v1/nodes/enroll", &token, body).await;
        assert_error(&a, status, Some(key));
    }
    let mut body = enrollment("n1", 1024);
    body["addresses"] = json!(["10.0.0.7", "nope"]);
    let a = p.post("/api/v1/nodes/enroll", &token, body).await;
    assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, Some("addresses[1]"));

    let enrolled = p
        .post("/api/v1/nodes/enroll", &token, enrollment("n1", 1024))
        .await;
    assert_eq!(enrolled.status, StatusCode::CREATED, "{:?}", enrolled.body);
    assert_eq!(enrolled.body["name"], "n1");
    let node_id = enrolled.body["node_id"].clone();
    let credential = enrolled.body["credential"].as_str().unwrap().to_owned();
    let node = p.get("/api/v1/nodes/n1", &p.root).await;
    assert_eq!(node.body["id"], node_id);
    assert_eq!(
        (&node.body["state"], &node.body["millicpus"]),
        (&json!("ready"), &json!(4000))
    );
    assert!(
        node.body["last_heartbeat"].is_string(),
        "enrolling counts as a heartbeat"
    );
    let regions = p.get("/api/v1/regions", &p.root).await;
    assert_eq!(
        regions.body["regions"][0]["name"], "eu",
        "the region was created"
    );

    let again = p
        .post("/api/v1/nodes/enroll", &token, enrollment("n2", 1024))
        .await;
    assert_error(&again, StatusCode::UNAUTHORIZED, None);
    assert_eq!(
        p.get("/api/v1/nodes/n2", &p.root).await.status,
        StatusCode::NOT_FOUND
    );

    // Enrolling the name again replaces its credential (and who gets its tenants'
    // secrets): an ordinary join token may not, and is not used up trying.
    let plain = p.join_token().await;
    let taken = p
        .post("/api/v1/nodes/enroll", &plain, enrollment("n1", 2048))
        .await;
    assert_error(&taken, StatusCode::CONFLICT, Some("name"));
    let message = taken.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("--replace n1"), "{message}");
    let other = p
        .post("/api/v1/nodes/enroll", &plain, enrollment("n3", 1024))
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{:?}", other.body);

    // A token the platform admin made for n1 enrolls n1 and nothing else.
    let replacing = p
        .post(
            "/api/v1/nodes/join-tokens",
            &p.root,
            json!({"replaces": "n1"}),
        )
        .await;
    assert_eq!(
        replacing.status,
        StatusCode::CREATED,
        "{:?}",
        replacing.body
    );
    let token = replacing.body["token"].as_str().unwrap().to_owned();
    let elsewhere = p
        .post("/api/v1/nodes/enroll", &token, enrollment("n4", 1024))
        .await;
    assert_error(&elsewhere, StatusCode::FORBIDDEN, Some("name"));

    // Enrolling the name again (a reinstalled node) keeps its id, takes the new
    // capacity, and only the new credential works.
    let re = p
        .post("/api/v1/nodes/enroll", &token, enrollment("n1", 2048))
        .await;
    assert_eq!(re.status, StatusCode::CREATED, "{:?}", re.body);
    assert_eq!(re.body["node_id"], node_id);
    let fresh = re.body["credential"].as_str().unwrap().to_owned();
    assert_eq!(
        p.get("/api/v1/nodes/n1", &p.root).await.body["memory_mb"],
        2048
    );
    let beat = json!({"running": 0});
    let old = p
        .post("/api/v1/nodes/n1/heartbeat", &credential, beat.clone())
        .await;
    assert_error(&old, StatusCode::UNAUTHORIZED, None);
    let ok = p.post("/api/v1/nodes/n1/heartbeat", &fresh, beat).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);

    // No secret reached the log.
    let log = p.get("/api/v1/events?limit=1000", &p.root).await.body;
    let text = log.to_string();
    for secret in [&token, &credential, &fresh] {
        assert!(!text.contains(secret.as_str()), "a secret is in the log");
    }
    assert!(text.contains("node_enrolled") && text.contains("node_join_token_created"));
    p.assert_rebuild_is_exact().await;
}

#[tokio::test]
async fn expired_tokens_and_bad_ttls_are_refused() {
    let p = Platform::start().await;
    let short = p
        .post(
            "/api/v1/nodes/join-tokens",
            &p.root,
            json!({"ttl_seconds": 1}),
        )
        .await;
    let token = short.body["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = p
        .post("/api/v1/nodes/enroll", &token, enrollment("n1", 512))
        .await;
    assert_error(&late, StatusCode::UNAUTHORIZED, None);
    let unknown = p
        .post("/api/v1/nodes/enroll", "zw_nothing", enrollment("n1", 512))
        .await;
    assert_error(&unknown, StatusCode::UNAUTHORIZED, None);

    for ttl in [json!(0), json!(8 * 24 * 3600), json!("1h")] {
        let a = p
            .post(
                "/api/v1/nodes/join-tokens",
                &p.root,
                json!({"ttl_seconds": ttl}),
            )
            .await;
        assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, Some("ttl_seconds"));
    }
    let admin = p.org("acme").await;
    let a = p.post("/api/v1/nodes/join-tokens", &admin, json!({})).await;
    assert_error(&a, StatusCode::FORBIDDEN, None);
}

#[tokio::test]
async fn a_node_credential_reaches_only_its_own_node() {
    let p = Platform::start().await;
    let admin = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &admin, json!({"name": "web"}))
        .await;
    let n1 = p.enroll("n1", 1024).await;
    let n2 = p.enroll("n2", 1024).await;
    let deployed = p
        .post(
            "/api/v1/orgs/acme/apps/web/envs/prod/deployments",
            &admin,
            json!({"image": image(1)}),
        )
        .await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{:?}", deployed.body);
    let instance = deployed.body["instances"][0].clone();
    let before = p.head().await;

    for e in zeitwork_operator::endpoints()
        .iter()
        .filter(|e| e.path.contains("{org}"))
    {
        let path = e
            .path
            .replace("{org}", "acme")
            .replace("{app}", "web")
            .replace("{env}", "prod");
        let path = fill(&path, "1");
        let a = p
            .send(
                e.method.clone(),
                &path,
                Some(&n1.credential),
                Some(&json!({})),
            )
            .await;
        assert_error(&a, StatusCode::NOT_FOUND, None);
    }
    let node = json!({"name": "x", "region": "local", "cpus": 1, "memory_mb": 512});
    let platform_only = [
        (Method::POST, "/api/v1/orgs", json!({"name": "x"})),
        (Method::POST, "/api/v1/nodes", node),
        (Method::POST, "/api/v1/regions", json!({"name": "x"})),
        (Method::PUT, "/api/v1/regions/x", json!({"addresses": []})),
        (Method::POST, "/api/v1/nodes/join-tokens", json!({})),
        (Method::POST, "/api/v1/nodes/n1/drain", json!({})),
        (Method::GET, "/api/v1/orgs", json!({})),
        (Method::GET, "/api/v1/events", json!({})),
    ];
    for (method, path, body) in platform_only {
        let a = p
            .send(method, path, Some(&n1.credential), Some(&body))
            .await;
        assert_error(&a, StatusCode::FORBIDDEN, None);
    }
    let whoami = p.get("/api/v1/whoami", &n1.credential).await;
    assert_eq!(
        (&whoami.body["node_id"], &whoami.body["org"]),
        (&json!(n1.id), &Value::Null)
    );

    // Another node's endpoints: 403 for n1's credential and for org tokens.
    let report = json!({"state": "healthy"});
    let id = instance["id"].as_str().unwrap();
    let theirs = [
        (Method::POST, n2.path("heartbeat"), json!({"running": 0})),
        (Method::GET, n2.path("desired"), json!({})),
        (
            Method::POST,
            n2.path(&format!("instances/{id}/state")),
            report,
        ),
    ];
    for (method, path, body) in &theirs {
        for token in [&n1.credential, &admin] {
            let a = p.send(method.clone(), path, Some(token), Some(body)).await;
            assert_error(&a, StatusCode::FORBIDDEN, None);
        }
    }
    assert_eq!(p.head().await, before, "nothing changed");

    // The platform may look at what a node is told, but not speak for it.
    let desired = p.get(&n2.path("desired"), &p.root).await;
    assert_eq!(desired.status, StatusCode::OK, "{:?}", desired.body);
    let beat = p
        .post(&n2.path("heartbeat"), &p.root, json!({"running": 0}))
        .await;
    assert_error(&beat, StatusCode::FORBIDDEN, None);
    let own = p.get(&n1.path("desired"), &n1.credential).await;
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
}

/// WireGuard public keys of the tests' nodes (any 32 bytes in base64 are a key).
const KEY_A: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
const KEY_B: &str = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";

#[tokio::test]
async fn overlay_keys_are_one_per_node_and_every_node_peers_with_the_others() {
    let p = Platform::start().await;
    let enroll = |name: &'static str, overlay: Value| {
        let p = &p;
        async move {
            let token = p.join_token().await;
            let mut body = enrollment(name, 1024);
            body["overlay"] = overlay;
            p.post("/api/v1/nodes/enroll", &token, body).await
        }
    };
    // A key must be 32 bytes in base64, the port not 0; neither uses the token up.
    for (overlay, field) in [
        (
            json!({"public_key": "short=", "port": 51820}),
            "overlay.public_key",
        ),
        (json!({"public_key": KEY_A, "port": 0}), "overlay.port"),
    ] {
        let a = enroll("n1", overlay).await;
        assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
    }
    let a = enroll("n1", json!({"public_key": KEY_A, "port": 51820})).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let n1 = a.body["credential"].as_str().unwrap().to_owned();
    // Another node presenting n1's key is refused: a key is one node's.
    let taken = enroll("n2", json!({"public_key": KEY_A, "port": 51820})).await;
    assert_error(&taken, StatusCode::CONFLICT, Some("overlay.public_key"));
    let b = enroll("n2", json!({"public_key": KEY_B, "port": 51821})).await;
    assert_eq!(b.status, StatusCode::CREATED, "{:?}", b.body);
    let n2 = b.body["credential"].as_str().unwrap().to_owned();
    // A node off the overlay is no one's peer.
    let c = enroll("n3", Value::Null).await;
    assert_eq!(c.status, StatusCode::CREATED, "{:?}", c.body);

    // n1 peers with n2 only: its endpoints (IPv6 first) and its /64, nothing else.
    let desired = p.get("/api/v1/nodes/n1/desired", &n1).await;
    assert_eq!(desired.status, StatusCode::OK, "{:?}", desired.body);
    let node2 = p.get("/api/v1/nodes/n2", &p.root).await.body;
    let prefix2 = node2["instance_prefix"].as_str().unwrap();
    assert_eq!(
        desired.body["peers"],
        json!([{
            "node_id": node2["id"], "name": "n2", "public_key": KEY_B,
            "endpoints": ["[fd00::7]:51821", "10.0.0.7:51821"],
            "allowed_ips": [prefix2],
        }])
    );
    let peers_of_n2 = p.get("/api/v1/nodes/n2/desired", &n2).await.body["peers"].clone();
    assert_eq!(peers_of_n2.as_array().map(Vec::len), Some(1));
    assert_eq!(peers_of_n2[0]["name"], "n1");
    // The overlay address is the first of the node's /64.
    assert_eq!(
        node2["overlay_address"],
        json!(prefix2.replace("::/64", "::1"))
    );
    assert_eq!(
        p.get("/api/v1/nodes/n3", &p.root).await.body["overlay_address"],
        Value::Null
    );

    // Heartbeats say how recently each peer answered; the node answer names the peers.
    let beat = |age: Value| json!({"running": 0, "overlay": [{"public_key": KEY_B, "handshake_age_seconds": age}]});
    let ok = p
        .post("/api/v1/nodes/n1/heartbeat", &n1, beat(json!(5)))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let peers = p.get("/api/v1/nodes/n1", &p.root).await.body["overlay_peers"].clone();
    assert_eq!(peers[0]["node"], "n2");
    assert_eq!(peers[0]["reachable"], true);
    assert!(
        peers[0]["handshake_age_seconds"]
            .as_u64()
            .is_some_and(|a| (5..60).contains(&a))
    );
    // A lost peer is reported, not silent.
    p.post("/api/v1/nodes/n1/heartbeat", &n1, beat(Value::Null))
        .await;
    let peers = p.get("/api/v1/nodes/n1", &p.root).await.body["overlay_peers"].clone();
    assert_eq!(
        (&peers[0]["reachable"], &peers[0]["handshake_age_seconds"]),
        (&json!(false), &Value::Null)
    );
    let bad = p
        .post(
            "/api/v1/nodes/n1/heartbeat",
            &n1,
            json!({"running": 0, "overlay": [{"public_key": "x"}]}),
        )
        .await;
    assert_error(
        &bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("overlay[0].public_key"),
    );

    // Enrollment and the keys replay from the log exactly.
    p.assert_rebuild_is_exact().await;
}

#[tokio::test]
async fn a_regions_addresses_are_checked_then_set_whole() {
    let p = Platform::start().await;
    let put = |body: Value| {
        let p = &p;
        async move { p.put("/api/v1/regions/eu-1", &p.root, body).await }
    };
    for (body, field) in [
        (
            json!({"addresses": ["203.0.113.1", "edge.example"]}),
            "addresses[1]",
        ),
        (json!({"addresses": ["0.0.0.0"]}), "addresses[0]"),
        (
            json!({"addresses": ["203.0.113.1", "203.0.113.1"]}),
            "addresses[1]",
        ),
        (
            json!({"addresses": [], "client_networks": ["10.1.2.3/16"]}),
            "client_networks[0]",
        ),
        (
            json!({"addresses": (0..17).map(|i| format!("203.0.113.{i}")).collect::<Vec<_>>()}),
            "addresses",
        ),
    ] {
        let a = put(body).await;
        assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
    }
    let unknown = put(json!({"addresses": [], "weight": 3})).await;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown.body
    );
    let bad_name = p
        .put(
            "/api/v1/regions/Not_A_Region",
            &p.root,
            json!({"addresses": []}),
        )
        .await;
    assert_error(&bad_name, StatusCode::UNPROCESSABLE_ENTITY, Some("name"));
    let listed = p.get("/api/v1/regions", &p.root).await;
    assert_eq!(
        listed.body["regions"],
        json!([]),
        "nothing refused was stored"
    );

    let set = put(json!({
        "addresses": ["203.0.113.1", "2001:db8::1"],
        "client_networks": ["10.1.0.0/16"],
    }))
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["name"], "eu-1", "created by the first set");
    assert_eq!(set.body["addresses"], json!(["203.0.113.1", "2001:db8::1"]));
    let again = put(json!({"addresses": ["203.0.113.2"]})).await;
    assert_eq!(again.body["id"], set.body["id"]);
    assert_eq!(again.body["addresses"], json!(["203.0.113.2"]));
    assert_eq!(again.body["client_networks"], json!([]), "set whole");
    let listed = p.get("/api/v1/regions", &p.root).await;
    assert_eq!(
        listed.body["regions"][0]["addresses"],
        json!(["203.0.113.2"])
    );
}
