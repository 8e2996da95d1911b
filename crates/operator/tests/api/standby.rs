//! Warm standby: a rollout keeps the deployment it replaces running (unrouted) for the
//! standby window; a rollback to it inside the window switches back with one event and
//! no new instance; the window's end or another deployment's need for room supersedes
//! it, and its instances stop.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Agent, Platform, assert_error, eventually, image};

const APPS: &str = "/api/v1/orgs/acme/apps";
const ENV: &str = "/api/v1/orgs/acme/apps/web/envs/prod";

fn manifest(app: &str, standby: Option<&str>) -> String {
    let deploy = standby.map_or(String::new(), |s| format!("[deploy]\nstandby = \"{s}\"\n"));
    format!(
        "version = 1\napp = \"{app}\"\n[processes.web]\nport = 8080\ninstances = 1\n\
         memory_mb = 256\ncpus = 0.5\n{deploy}"
    )
}

async fn acme(p: &Platform) -> String {
    let admin = p.org("acme").await;
    for app in ["web", "api"] {
        p.post(APPS, &admin, json!({ "name": app })).await;
    }
    admin
}

/// Deploys image `n` of `app` and reports its one instance healthy; the deployment.
async fn deploy_healthy(
    p: &Platform,
    admin: &str,
    node: &Agent,
    app: &str,
    n: u8,
    standby: Option<&str>,
) -> Value {
    let body = json!({"image": image(n), "manifest": manifest(app, standby)});
    let d = p
        .post(&format!("{APPS}/{app}/envs/prod/deployments"), admin, body)
        .await;
    assert_eq!(d.status, StatusCode::CREATED, "{:?}", d.body);
    let id = d.body["instances"][0]["id"].as_str().unwrap().to_owned();
    healthy(p, node, &id).await;
    d.body
}

async fn healthy(p: &Platform, node: &Agent, instance: &str) {
    let report = node.path(&format!("instances/{instance}/state"));
    let state = json!({"state": "healthy", "address": node.address(8080)});
    let a = p.post(&report, &node.credential, state).await;
    assert!(a.status.is_success(), "{:?}", a.body);
}

/// The env's deployments, newest first, as `(id, state)`.
async fn states(p: &Platform, admin: &str) -> Vec<(String, String)> {
    let list = p.get(&format!("{ENV}/deployments"), admin).await.body;
    list["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().into(),
                d["state"].as_str().unwrap().into(),
            )
        })
        .collect()
}

async fn desired(p: &Platform, node: &Agent) -> Vec<String> {
    let d = p.get(&node.path("desired"), &node.credential).await.body;
    let mut ids: Vec<String> = d["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn id(v: &Value) -> String {
    v["deployment"]["id"].as_str().unwrap().to_owned()
}

fn instance(v: &Value) -> String {
    v["instances"][0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_rollback_inside_the_window_switches_to_the_standby_without_a_new_instance() {
    let p = Platform::start().await;
    let admin = acme(&p).await;
    let n1 = p.enroll("n1", 2048).await;
    p.keep_alive(&n1);
    let v1 = deploy_healthy(&p, &admin, &n1, "web", 1, None).await;
    let v2 = deploy_healthy(&p, &admin, &n1, "web", 2, None).await;
    // Monitor rounds pass; the replaced deployment keeps running, on standby.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut both = vec![instance(&v1), instance(&v2)];
    both.sort();
    assert_eq!(desired(&p, &n1).await, both);
    assert_eq!(
        states(&p, &admin).await,
        [(id(&v2), "active".into()), (id(&v1), "standby".into())]
    );
    let list = p.get(&format!("{ENV}/deployments"), &admin).await.body;
    let until: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(list["deployments"][1]["standby_until"].clone()).unwrap();
    let left = until - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(29) && left <= chrono::Duration::minutes(30),
        "the default window is 30 minutes: {left}"
    );

    let instances_before = p.count("deployment_created").await;
    let back = p.post(&format!("{ENV}/rollback"), &admin, json!({})).await;
    assert_eq!(back.status, StatusCode::CREATED, "{:?}", back.body);
    assert_eq!(back.body["instant"], true);
    assert_eq!(back.body["release"]["number"], 1);
    assert_eq!(id(&back.body), id(&v1), "the standby deployment itself");
    assert_eq!(back.body["deployment"]["rollback_of"], id(&v2).as_str());
    assert_eq!(
        instance(&back.body),
        instance(&v1),
        "its instance, no new one"
    );
    assert_eq!(p.count("deployment_created").await, instances_before);
    assert_eq!(p.count("deployment_reactivated").await, 1);
    assert_eq!(desired(&p, &n1).await, both, "nothing boots, nothing stops");
    assert_eq!(
        states(&p, &admin).await,
        [(id(&v2), "standby".into()), (id(&v1), "active".into())]
    );
    let status = p.get(&format!("{ENV}/status"), &admin).await.body;
    assert_eq!(status["deployment"]["id"], id(&v1).as_str());
    assert_eq!(status["standby"]["id"], id(&v2).as_str());
    assert_eq!(status["release"]["number"], 1);

    // And forth again: v2 is the standby now.
    let forth = p
        .post(&format!("{ENV}/rollback"), &admin, json!({"release": 2}))
        .await;
    assert_eq!(forth.body["instant"], true, "{:?}", forth.body);
    assert_eq!(id(&forth.body), id(&v2));
    p.assert_rebuild_is_exact().await;
}

#[tokio::test]
async fn a_standby_stops_when_its_window_ends_and_a_rollback_then_boots() {
    let p = Platform::start().await;
    let admin = acme(&p).await;
    let n1 = p.enroll("n1", 2048).await;
    p.keep_alive(&n1);
    let v1 = deploy_healthy(&p, &admin, &n1, "web", 1, Some("1s")).await;
    let v2 = deploy_healthy(&p, &admin, &n1, "web", 2, Some("1s")).await;
    eventually(
        "the standby's window ends and its instance stops",
        || async { (desired(&p, &n1).await == [instance(&v2)]).then_some(()) },
    )
    .await;
    let ended: (Value,) = sqlx::query_as(
        "SELECT payload FROM events WHERE kind = 'standby_ended' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(p.store.pool())
    .await
    .unwrap();
    assert_eq!(ended.0["reason"], "its standby window ended");
    assert_eq!(ended.0["deployment_id"], id(&v1).as_str());
    assert_eq!(states(&p, &admin).await[1].1, "superseded");

    let back = p.post(&format!("{ENV}/rollback"), &admin, json!({})).await;
    assert_eq!(back.status, StatusCode::CREATED, "{:?}", back.body);
    assert_eq!(
        back.body.get("instant"),
        None,
        "rolled out: {:?}",
        back.body
    );
    assert_ne!(id(&back.body), id(&v1), "a new deployment");
    assert_ne!(instance(&back.body), instance(&v1), "with a new instance");
    assert_eq!(back.body["release"]["number"], 1);
    p.assert_rebuild_is_exact().await;
}

#[tokio::test]
async fn a_standby_without_a_window_stops_once_the_new_deployment_is_healthy() {
    let p = Platform::start().await;
    let admin = acme(&p).await;
    let n1 = p.enroll("n1", 2048).await;
    p.keep_alive(&n1);
    deploy_healthy(&p, &admin, &n1, "web", 1, Some("0s")).await;
    let v2 = deploy_healthy(&p, &admin, &n1, "web", 2, Some("0s")).await;
    eventually("the replaced instance stops", || async {
        (desired(&p, &n1).await == [instance(&v2)]).then_some(())
    })
    .await;
    assert_eq!(p.count("standby_ended").await, 0, "it never was on standby");
    assert_eq!(states(&p, &admin).await[1].1, "superseded");
}

#[tokio::test]
async fn a_standby_gives_its_room_to_an_instance_waiting_for_a_node() {
    let p = Platform::start().await;
    let admin = acme(&p).await;
    // Room for two 256 MiB instances.
    let n1 = p.enroll("n1", 512).await;
    p.keep_alive(&n1);
    let v1 = deploy_healthy(&p, &admin, &n1, "web", 1, None).await;
    let v2 = deploy_healthy(&p, &admin, &n1, "web", 2, None).await;
    assert_eq!(states(&p, &admin).await[1].1, "standby");
    let api = p
        .post(
            &format!("{APPS}/api/envs/prod/deployments"),
            &admin,
            json!({"image": image(3), "manifest": manifest("api", None)}),
        )
        .await;
    assert_eq!(api.body["instances"][0]["node_id"], Value::Null, "no room");
    let mut expected = vec![instance(&v2), instance(&api.body)];
    expected.sort();
    eventually("web's standby makes room for api", || async {
        (desired(&p, &n1).await == expected).then_some(())
    })
    .await;
    let ended: (Value,) = sqlx::query_as("SELECT payload FROM events WHERE kind = 'standby_ended'")
        .fetch_one(p.store.pool())
        .await
        .unwrap();
    assert_eq!(ended.0["deployment_id"], id(&v1).as_str());
    assert_eq!(
        ended.0["reason"],
        "its room was needed by instances waiting for a node"
    );
    p.assert_rebuild_is_exact().await;
}

#[tokio::test]
async fn a_rollback_names_a_release_that_does_not_exist_or_never_ran_in_the_env() {
    let p = Platform::start().await;
    let admin = acme(&p).await;
    let n1 = p.enroll("n1", 2048).await;
    p.keep_alive(&n1);
    deploy_healthy(&p, &admin, &n1, "web", 1, None).await;
    let missing = p
        .post(&format!("{ENV}/rollback"), &admin, json!({"release": 9}))
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, Some("release"));
    // Release 2 runs in staging only.
    p.post(
        &format!("{APPS}/web/envs"),
        &admin,
        json!({"name": "staging"}),
    )
    .await;
    let staged = p
        .post(
            &format!("{APPS}/web/envs/staging/deployments"),
            &admin,
            json!({"image": image(2), "manifest": manifest("web", None)}),
        )
        .await;
    assert_eq!(staged.body["release"]["number"], 2, "{:?}", staged.body);
    let elsewhere = p
        .post(&format!("{ENV}/rollback"), &admin, json!({"release": 2}))
        .await;
    assert_error(&elsewhere, StatusCode::CONFLICT, Some("release"));
    assert!(
        elsewhere.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("release 2"),
        "{:?}",
        elsewhere.body
    );
}
