//! Builds from source through the API: queued on a node that has room, told to that
//! node (with what the registry lets it pull and push), moved forward only by its own
//! reports, and, when it succeeds, rolled out like a deploy of its image.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Platform, assert_error, with_registry};

const REGISTRY: &str = "127.0.0.1:5000";
const ENV: &str = "/api/v1/orgs/acme/apps/web/envs/prod";
const MANIFEST: &str = "version = 1\napp = \"web\"\n[processes.web]\nport = 8080\n[build]\ndockerfile = \"web.Dockerfile\"\nmemory_mb = 1024\n";

fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

#[tokio::test]
async fn a_build_runs_on_a_node_and_its_image_rolls_out() {
    let p = Platform::start_with(with_registry(REGISTRY)).await;
    let acme = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &acme, json!({"name": "web"}))
        .await;
    let builds = format!("{ENV}/builds");
    // No node yet: said so, nothing queued.
    let source = format!("{REGISTRY}/acme/web/source@{}", digest(1));
    let none = p
        .post(
            &builds,
            &acme,
            json!({"source": source, "manifest": MANIFEST}),
        )
        .await;
    assert_error(&none, StatusCode::SERVICE_UNAVAILABLE, None);
    let n1 = p.enroll("n1", 4096).await;
    let n2 = p.enroll("n2", 512).await;
    p.keep_alive(&n1);
    p.keep_alive(&n2);
    for (bad, why) in [
        (
            format!("{REGISTRY}/other/web/source@{}", digest(1)),
            "another app's",
        ),
        (
            format!("docker.io/acme/web/source@{}", digest(1)),
            "another registry",
        ),
        (format!("{REGISTRY}/acme/web/source:latest"), "not pinned"),
    ] {
        let a = p.post(&builds, &acme, json!({"source": bad})).await;
        assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, Some("source"));
        let _ = why;
    }
    let queued = p
        .post(
            &builds,
            &acme,
            json!({"source": source, "manifest": MANIFEST}),
        )
        .await;
    assert_eq!(queued.status, StatusCode::CREATED, "{:?}", queued.body);
    assert_eq!(queued.body["state"], "queued");
    assert_eq!(
        queued.body["node_id"],
        n1.id.as_str(),
        "n2 has too little memory"
    );
    let id = queued.body["id"].as_str().unwrap().to_owned();

    // The node is told, with the repository to push to and the manifest's [build].
    let desired = p.get(&n1.path("desired"), &n1.credential).await.body;
    let build = &desired["builds"][0];
    assert_eq!(build["build_id"], id.as_str());
    assert_eq!(build["repository"], format!("{REGISTRY}/acme/web"));
    assert_eq!(build["build"]["dockerfile"], "web.Dockerfile");
    assert_eq!(build["build"]["memory_mb"], 1024);
    assert!(
        p.get(&n2.path("desired"), &n2.credential).await.body["builds"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Reports move it forward only; another node's are refused.
    let state = format!("{}/{id}/state", n1.path("builds").trim_end_matches('/'));
    let report = |body| p.post(&state, &n1.credential, body);
    let a = report(json!({"state": "fetching"})).await;
    assert_eq!(a.body["changed"], true, "{:?}", a.body);
    let again = report(json!({"state": "fetching"})).await;
    assert_eq!(again.body["changed"], false);
    let other = format!("{}/{id}/state", n2.path("builds").trim_end_matches('/'));
    assert_error(
        &p.post(&other, &n2.credential, json!({"state": "building"}))
            .await,
        StatusCode::NOT_FOUND,
        None,
    );
    report(json!({"state": "building"})).await;
    assert_error(
        &report(json!({"state": "queued"})).await,
        StatusCode::CONFLICT,
        Some("state"),
    );
    assert_error(
        &report(json!({"state": "succeeded"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("image"),
    );
    let elsewhere = format!("{REGISTRY}/acme/other@{}", digest(2));
    assert_error(
        &report(json!({"state": "succeeded", "image": elsewhere})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("image"),
    );
    let image = format!("{REGISTRY}/acme/web:build-1@{}", digest(2));
    let done = report(json!({"state": "succeeded", "image": image})).await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    assert_eq!(done.body["build"]["state"], "succeeded");
    assert!(
        done.body["rollout"]["deployment"].is_object(),
        "{:?}",
        done.body
    );
    let releases = p.get("/api/v1/orgs/acme/apps/web/releases", &acme).await;
    assert_eq!(releases.body["releases"][0]["image"], image.as_str());
    assert!(
        p.get(&n1.path("desired"), &n1.credential).await.body["builds"]
            .as_array()
            .unwrap()
            .is_empty(),
        "an ended build is no longer the node's"
    );
    assert_error(
        &report(json!({"state": "failed"})).await,
        StatusCode::CONFLICT,
        Some("state"),
    );

    // The same source built the same way: nothing builds, the image is reused.
    let again = p
        .post(
            &builds,
            &acme,
            json!({"source": source, "manifest": MANIFEST}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
    assert_eq!(again.body["state"], "succeeded");
    assert_eq!(again.body["image"], image.as_str());
    assert!(
        again.body["reason"].as_str().unwrap().contains("reused"),
        "{:?}",
        again.body
    );
    assert!(
        p.get(&n1.path("desired"), &n1.credential).await.body["builds"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing for the node to build"
    );

    // A failing build keeps its reason and last lines; the running deployment stays.
    let changed = format!("{REGISTRY}/acme/web/source@{}", digest(3));
    let failing = p
        .post(
            &builds,
            &acme,
            json!({"source": changed, "manifest": MANIFEST}),
        )
        .await;
    let id2 = failing.body["id"].as_str().unwrap().to_owned();
    let state2 = format!("{}/{id2}/state", n1.path("builds").trim_end_matches('/'));
    let lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    let failed = p
        .post(
            &state2,
            &n1.credential,
            json!({"state": "failed", "reason": "the build exited with code 1", "log": lines}),
        )
        .await;
    assert_eq!(failed.status, StatusCode::OK, "{:?}", failed.body);
    let shown = p.get(&format!("{builds}/{id2}"), &acme).await.body;
    assert_eq!(shown["state"], "failed");
    assert_eq!(shown["reason"], "the build exited with code 1");
    assert_eq!(shown["log"].as_array().unwrap().len(), 40);
    assert_eq!(shown["log"][39], "line 99");
    let listed = p.get(&builds, &acme).await.body;
    assert_eq!(listed["builds"].as_array().unwrap().len(), 3);

    // Cancelling: the build ends, leaves the node's desired state, and takes no report.
    let other_source = format!("{REGISTRY}/acme/web/source@{}", digest(4));
    let queued = p
        .post(
            &builds,
            &acme,
            json!({"source": other_source, "manifest": MANIFEST}),
        )
        .await;
    let id3 = queued.body["id"].as_str().unwrap().to_owned();
    let cancel = format!("{builds}/{id3}/cancel");
    let reader = p.token("acme", "reader").await;
    assert_error(
        &p.post(&cancel, &reader, json!({})).await,
        StatusCode::FORBIDDEN,
        None,
    );
    let cancelled = p.post(&cancel, &acme, json!({})).await;
    assert_eq!(cancelled.body["state"], "cancelled", "{:?}", cancelled.body);
    assert!(
        p.get(&n1.path("desired"), &n1.credential).await.body["builds"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let state3 = format!("{}/{id3}/state", n1.path("builds").trim_end_matches('/'));
    assert_error(
        &p.post(&state3, &n1.credential, json!({"state": "building"}))
            .await,
        StatusCode::CONFLICT,
        Some("state"),
    );
    assert_error(
        &p.post(&cancel, &acme, json!({})).await,
        StatusCode::CONFLICT,
        Some("state"),
    );
    let status = p.get(&format!("{ENV}/status"), &acme).await.body;
    assert!(status["deployment"].is_object(), "{status}");
}

#[tokio::test]
async fn a_build_holds_its_nodes_memory_and_fails_when_its_node_dies() {
    let p = Platform::start_with(zeitwork_operator::Config {
        node_dead_after: std::time::Duration::from_secs(2),
        ..with_registry(REGISTRY)
    })
    .await;
    let acme = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &acme, json!({"name": "web"}))
        .await;
    let small = p.enroll("small", 1024).await;
    p.keep_alive(&small);
    let big = p.enroll("big", 2048).await;
    let builds = format!("{ENV}/builds");
    let manifest = "version = 1\napp = \"web\"\n[processes.web]\n[build]\nmemory_mb = 2048\n";
    let queue = |n: u8| {
        let source = format!("{REGISTRY}/acme/web/source@{}", digest(n));
        p.post(
            &builds,
            &acme,
            json!({"source": source, "manifest": manifest}),
        )
    };
    let first = queue(1).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(first.body["node_id"], big.id.as_str());
    // Its builder VM holds the big node's memory: a second build has no room.
    let second = queue(2).await;
    assert_error(&second, StatusCode::SERVICE_UNAVAILABLE, None);
    assert!(
        second.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2048 MiB"),
        "{:?}",
        second.body
    );
    // The big node falls silent: its build fails with why, it does not stay "queued".
    let id = first.body["id"].as_str().unwrap().to_owned();
    let failed = crate::support::eventually("the dead node's build fails", || async {
        let b = p.get(&format!("{builds}/{id}"), &acme).await.body;
        (b["state"] == "failed").then_some(b)
    })
    .await;
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("big stopped answering"),
        "{failed:?}"
    );
    p.assert_rebuild_is_exact().await;
}
