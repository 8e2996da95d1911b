//! Deploy, scale, rollback and status through the API, placement on registered
//! nodes, the event stream, and rebuilding the projections afterwards.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Platform, assert_error, image};

const MANIFEST: &str = r#"
version = 1
app = "web"
[processes.web]
port = 8080
instances = 2
memory_mb = 256
cpus = 0.5
"#;

fn running(body: &Value) -> Vec<&Value> {
    body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["desired_state"] == "running")
        .collect()
}

#[tokio::test]
async fn deploy_scale_rollback_place_instances_and_the_log_rebuilds() {
    let p = Platform::start().await;
    let t = p.org("acme").await;
    for n in ["n1", "n2"] {
        let node = json!({"name": n, "region": "local", "cpus": 2, "memory_mb": 512, "addresses": ["10.0.0.1"]});
        assert_eq!(
            p.post("/api/v1/nodes", &p.root, node).await.status,
            StatusCode::CREATED
        );
    }
    p.post("/api/v1/orgs/acme/apps", &t, json!({"name": "web"}))
        .await;
    let env = "/api/v1/orgs/acme/apps/web/envs/prod";

    let first = p
        .post(
            &format!("{env}/deployments"),
            &t,
            json!({"image": image(1), "manifest": MANIFEST}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(first.body["release"]["number"], 1);
    assert_eq!(first.body["warnings"], json!([]), "web has a port");
    let slug = first.body["deployment"]["slug"].as_str().unwrap();
    assert_eq!(
        first.body["url"],
        format!("http://web-{slug}-acme.zeitwork.localhost")
    );
    let nodes: Vec<_> = first.body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["node_id"].clone())
        .collect();
    assert_eq!(nodes.len(), 2);
    assert_ne!(
        nodes[0], nodes[1],
        "one deployment's instances are spread across nodes"
    );

    // Memory is a hard cap: 2 nodes × 512 MiB hold four 256 MiB instances, not five.
    let scaled = p
        .post(
            &format!("{env}/scale"),
            &t,
            json!({"process": "web", "instances": 5}),
        )
        .await;
    assert_eq!(scaled.status, StatusCode::OK, "{:?}", scaled.body);
    let live = running(&scaled.body);
    assert_eq!(live.len(), 5);
    let unplaced: Vec<_> = live.iter().filter(|i| i["node_id"].is_null()).collect();
    assert_eq!(unplaced.len(), 1);
    assert!(
        unplaced[0]["reason"].as_str().unwrap().contains("MiB"),
        "{:?}",
        unplaced[0]
    );
    let down = p
        .post(
            &format!("{env}/scale"),
            &t,
            json!({"process": "web", "instances": 1}),
        )
        .await;
    assert_eq!(running(&down.body).len(), 1);
    assert_error(
        &p.post(
            &format!("{env}/scale"),
            &t,
            json!({"process": "api", "instances": 1}),
        )
        .await,
        StatusCode::NOT_FOUND,
        Some("process"),
    );

    // A second release keeps the scaled count; rollback returns to release 1.
    let second = p
        .post(
            &format!("{env}/deployments"),
            &t,
            json!({"image": image(2), "manifest": MANIFEST}),
        )
        .await;
    assert_eq!(second.body["release"]["number"], 2);
    assert_eq!(
        second.body["instances"].as_array().unwrap().len(),
        1,
        "scale carries over"
    );
    let back = p.post(&format!("{env}/rollback"), &t, json!({})).await;
    assert_eq!(back.status, StatusCode::CREATED, "{:?}", back.body);
    assert_eq!(back.body["release"]["number"], 1);
    assert_eq!(
        back.body["deployment"]["rollback_of"],
        second.body["deployment"]["id"]
    );
    let same = p
        .post(
            &format!("{env}/deployments"),
            &t,
            json!({"image": image(1), "manifest": MANIFEST}),
        )
        .await;
    assert_eq!(
        same.body["release"]["number"], 1,
        "the same image and manifest reuse the release"
    );

    let status = p.get(&format!("{env}/status"), &t).await;
    assert_eq!(
        status.body["deployment"]["id"],
        same.body["deployment"]["id"]
    );
    let running = running(&status.body);
    let active = running
        .iter()
        .filter(|i| i["deployment_id"] == same.body["deployment"]["id"])
        .count();
    // No node reports health here: the earlier deployments' instances keep serving
    // (the monitor stops them once the active one is healthy, tests/api/monitor.rs).
    assert_eq!((active, running.len()), (1, 4), "{running:#?}");
    let releases = p.get("/api/v1/orgs/acme/apps/web/releases", &t).await;
    assert_eq!(releases.body["releases"].as_array().unwrap().len(), 2);
    assert_eq!(
        p.get("/api/v1/orgs/acme/apps/web/releases/2", &t)
            .await
            .body["number"],
        2
    );

    let mut db = p.store.pool().acquire().await.unwrap();
    let live = zeitwork_store::rebuild::snapshot(&mut db).await.unwrap();
    zeitwork_store::rebuild::rebuild(&p.store).await.unwrap();
    assert_eq!(
        zeitwork_store::rebuild::snapshot(&mut db).await.unwrap(),
        live
    );
}

#[tokio::test]
async fn the_event_stream_delivers_commits_as_they_happen() {
    let p = Platform::start().await;
    let t = p.org("acme").await;
    let head = p.head().await;
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/events/stream?after={head}", p.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.bytes_stream();
    p.post("/api/v1/orgs/acme/apps", &t, json!({"name": "web"}))
        .await;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains("event: env_created") {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("event arrives")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(&format!("id: {}", head + 1)), "{text}");
    assert!(text.contains("event: app_created"), "{text}");
}

/// A follower is let go after `follow_for`: the stream ends (a follower that vanished
/// holds nothing longer), and one resumed with Last-Event-ID gets what came meanwhile.
#[tokio::test]
async fn an_event_stream_ends_after_its_time_and_resumes_without_a_gap() {
    let p = Platform::start_with(zeitwork_operator::Config {
        follow_for: Duration::from_secs(1),
        ..crate::support::config()
    })
    .await;
    let t = p.org("acme").await;
    let head = p.head().await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/events/stream?after={head}", p.base);
    let resp = client.get(&url).bearer_auth(&t).send().await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), resp.text())
        .await
        .expect("the stream ends by itself");
    assert!(ended.is_ok(), "{ended:?}");
    p.post("/api/v1/orgs/acme/apps", &t, json!({"name": "web"}))
        .await;
    let resumed = client
        .get(&url)
        .bearer_auth(&t)
        .header("last-event-id", head.to_string())
        .send()
        .await
        .unwrap();
    let text = tokio::time::timeout(Duration::from_secs(10), resumed.text())
        .await
        .expect("the resumed stream ends too")
        .unwrap();
    assert!(text.contains(&format!("id: {}", head + 1)), "{text}");
    assert!(text.contains("event: app_created"), "{text}");
}

/// A deploy whose URLs may reach nothing says so: without a manifest, web takes the
/// image's EXPOSEd port (which the operator cannot see), and with only port-less
/// workers nothing serves at all.
#[tokio::test]
async fn a_deploy_that_may_reach_nothing_warns() {
    let p = Platform::start().await;
    let t = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &t, json!({"name": "web"}))
        .await;
    let env = "/api/v1/orgs/acme/apps/web/envs/prod";
    let bare = p
        .post(
            &format!("{env}/deployments"),
            &t,
            json!({"image": image(1)}),
        )
        .await;
    assert_eq!(bare.status, StatusCode::CREATED, "{:?}", bare.body);
    let warning = bare.body["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.starts_with("processes.web has no port") && warning.contains("EXPOSE"),
        "{:?}",
        bare.body
    );
    let workers = "version = 1\napp = \"web\"\n[processes.worker]\n";
    let only_workers = p
        .post(
            &format!("{env}/deployments"),
            &t,
            json!({"image": image(2), "manifest": workers}),
        )
        .await;
    assert_eq!(
        only_workers.status,
        StatusCode::CREATED,
        "{:?}",
        only_workers.body
    );
    let warning = only_workers.body["warnings"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        warning.starts_with("no process serves this deployment's URLs"),
        "{:?}",
        only_workers.body
    );
}
