//! Restarts and secrets rotation: a secret change (or `restart`) replaces the active
//! deployment's instances with ones that run with the env's current secrets, each old
//! one stopping once its replacement is healthy; an instance never gets a newer secret
//! than the ones it started with; `restart: false` batches changes.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Agent, Platform, assert_error, eventually, image};

const ENV: &str = "/api/v1/orgs/acme/apps/web/envs/prod";
const MANIFEST: &str = "version = 1\napp = \"web\"\n[processes.web]\nport = 8080\ninstances = 2\n\
     memory_mb = 256\ncpus = 0.5\n[processes.worker]\nmemory_mb = 128\n";

/// The TOKEN secret each instance the node is told to run gets, by instance id.
async fn tokens(p: &Platform, node: &Agent) -> BTreeMap<String, String> {
    let d = p.get(&node.path("desired"), &node.credential).await.body;
    d["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let id = i["instance_id"].as_str().unwrap().to_owned();
            (id, i["secrets"]["TOKEN"].as_str().unwrap_or("-").to_owned())
        })
        .collect()
}

async fn set(p: &Platform, admin: &str, value: &str, restart: Option<bool>) -> Value {
    let mut body = json!({ "value": value });
    if let Some(r) = restart {
        body["restart"] = r.into();
    }
    let a = p.put(&format!("{ENV}/secrets/TOKEN"), admin, body).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    a.body
}

async fn all_healthy(p: &Platform, node: &Agent) {
    for id in tokens(p, node).await.keys() {
        let report = node.path(&format!("instances/{id}/state"));
        let state = json!({"state": "healthy", "address": node.address(8080)});
        p.post(&report, &node.credential, state).await;
    }
}

#[tokio::test]
async fn a_secret_change_restarts_the_env_and_older_instances_keep_their_values() {
    let p = Platform::start().await;
    let admin = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &admin, json!({"name": "web"}))
        .await;
    let n1 = p.enroll("n1", 8192).await;
    p.keep_alive(&n1);
    let nothing = p.post(&format!("{ENV}/restart"), &admin, json!({})).await;
    assert_error(&nothing, StatusCode::CONFLICT, Some("env"));
    assert_eq!(set(&p, &admin, "one", None).await["restarted"], 0);
    let d = p
        .post(
            &format!("{ENV}/deployments"),
            &admin,
            json!({"image": image(1), "manifest": MANIFEST}),
        )
        .await;
    assert_eq!(d.status, StatusCode::CREATED, "{:?}", d.body);
    all_healthy(&p, &n1).await;
    let first = tokens(&p, &n1).await;
    assert_eq!(first.len(), 3);
    assert!(first.values().all(|t| t == "one"), "{first:?}");

    // A change restarts every instance: the old ones keep the old value.
    assert_eq!(set(&p, &admin, "two", None).await["restarted"], 3);
    let now = tokens(&p, &n1).await;
    assert_eq!(now.len(), 6, "replacements boot beside the old ones");
    for (id, token) in &now {
        let expected = if first.contains_key(id) { "one" } else { "two" };
        assert_eq!(token, expected, "{id}: {now:?}");
    }
    all_healthy(&p, &n1).await;
    let second = eventually("the old instances stop", || async {
        let t = tokens(&p, &n1).await;
        (t.len() == 3).then_some(t)
    })
    .await;
    assert!(second.values().all(|t| t == "two"), "{second:?}");

    // Batched: nothing restarts until `restart`, which restarts one process only.
    assert_eq!(set(&p, &admin, "three", Some(false)).await["restarted"], 0);
    assert_eq!(
        tokens(&p, &n1).await,
        second,
        "nothing changed for running instances"
    );
    let unknown = p
        .post(
            &format!("{ENV}/restart"),
            &admin,
            json!({"process": "nope"}),
        )
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, Some("process"));
    let web = p
        .post(&format!("{ENV}/restart"), &admin, json!({"process": "web"}))
        .await;
    assert_eq!(web.status, StatusCode::CREATED, "{:?}", web.body);
    assert_eq!(web.body["replacements"].as_array().unwrap().len(), 2);
    let third = tokens(&p, &n1).await;
    let new: Vec<&String> = third
        .iter()
        .filter(|(id, _)| !second.contains_key(*id))
        .map(|(_, t)| t)
        .collect();
    assert_eq!(new, ["three", "three"], "{third:?}");
    assert_eq!(
        third.iter().filter(|(_, t)| *t == "two").count(),
        3,
        "the worker and the old web instances keep the value they started with"
    );
    let replaced: (Value,) = sqlx::query_as(
        "SELECT payload FROM events WHERE kind = 'instances_replaced' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(p.store.pool())
    .await
    .unwrap();
    assert_eq!(replaced.0["restart"], true);
    p.assert_rebuild_is_exact().await;
}
