//! The node monitor: dead nodes' instances move at once, drained nodes' instances stop
//! only once their replacements are healthy, a superseded deployment's only once the
//! new one is (or when the new one needs their room), and instances that waited get
//! placed.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use zeitwork_operator::Config;

use crate::support::{self, Agent, Platform, eventually, image};

const ENV: &str = "/api/v1/orgs/acme/apps/web/envs/prod";

/// Without a standby window: a replaced deployment stops once the new one is healthy
/// (standbys: tests/api/standby.rs).
fn manifest(instances: u32) -> String {
    format!(
        "version = 1\napp = \"web\"\n[processes.web]\nport = 8080\ninstances = {instances}\n\
         memory_mb = 256\ncpus = 0.5\n[deploy]\nstandby = \"0s\"\n"
    )
}

/// Org acme with app web, and its admin token.
async fn acme(p: &Platform) -> String {
    let admin = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &admin, json!({"name": "web"}))
        .await;
    admin
}

async fn deploy(p: &Platform, admin: &str, instances: u32) -> Value {
    let body = json!({"image": image(1), "manifest": manifest(instances)});
    let d = p.post(&format!("{ENV}/deployments"), admin, body).await;
    assert_eq!(d.status, StatusCode::CREATED, "{:?}", d.body);
    d.body
}

async fn instances(p: &Platform, admin: &str) -> Vec<Value> {
    let a = p.get(&format!("{ENV}/instances"), admin).await;
    a.body["instances"].as_array().unwrap().clone()
}

/// Instance ids the node is told to run.
async fn desired_ids(p: &Platform, node: &Agent) -> Vec<String> {
    let d = p.get(&node.path("desired"), &node.credential).await.body;
    d["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn node_state(p: &Platform, name: &str) -> String {
    let node = p.get(&format!("/api/v1/nodes/{name}"), &p.root).await;
    node.body["state"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_dead_nodes_instances_move_and_it_comes_back_empty() {
    let p = Platform::start_with(Config {
        node_dead_after: Duration::from_secs(2),
        ..support::config()
    })
    .await;
    let admin = acme(&p).await;
    let n1 = p.enroll("n1", 256).await;
    let n2 = p.enroll("n2", 512).await;
    p.keep_alive(&n2);
    let deployed = deploy(&p, &admin, 2).await;
    let on = |node: &Agent| {
        deployed["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["node_id"] == node.id.as_str())
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .expect("spread over both nodes")
    };
    let (lost, kept) = (on(&n1), on(&n2));

    eventually("n1 is declared dead", || async {
        (node_state(&p, "n1").await == "dead").then_some(())
    })
    .await;
    let all = instances(&p, &admin).await;
    let old = all.iter().find(|i| i["id"] == lost.as_str()).unwrap();
    assert_eq!(old["desired_state"], "stopped");
    assert_eq!(old["reason"], "node n1 stopped sending heartbeats");
    let new = all
        .iter()
        .find(|i| i["replaces"] == lost.as_str())
        .expect("a replacement");
    assert_eq!(
        (&new["node_id"], &new["desired_state"]),
        (&json!(n2.id), &json!("running"))
    );
    let mut on_n2 = desired_ids(&p, &n2).await;
    on_n2.sort();
    let mut want = vec![kept, new["id"].as_str().unwrap().to_owned()];
    want.sort();
    assert_eq!(on_n2, want);
    assert_eq!(p.count("instances_replaced").await, 1);
    assert_eq!(p.count("instances_stopped").await, 1);

    // Back again: ready, told to run nothing, and its stopped instance holds no room,
    // so the next instance fits there.
    let ack = p
        .post(&n1.path("heartbeat"), &n1.credential, json!({"running": 1}))
        .await;
    assert_eq!(ack.body["state"], "ready", "{:?}", ack.body);
    p.keep_alive(&n1);
    assert_eq!(node_state(&p, "n1").await, "ready");
    assert!(desired_ids(&p, &n1).await.is_empty());
    let scaled = p
        .post(
            &format!("{ENV}/scale"),
            &admin,
            json!({"process": "web", "instances": 3}),
        )
        .await;
    assert_eq!(scaled.status, StatusCode::OK, "{:?}", scaled.body);
    assert_eq!(desired_ids(&p, &n1).await.len(), 1);
    assert_eq!(
        p.count("node_state_changed").await,
        2,
        "dead, then ready; nothing more"
    );
    p.assert_rebuild_is_exact().await;
}

#[tokio::test]
async fn a_drained_nodes_instances_stop_once_their_replacements_are_healthy() {
    let p = Platform::start().await;
    let admin = acme(&p).await;
    let n1 = p.enroll("n1", 1024).await;
    let deployed = deploy(&p, &admin, 1).await;
    let old = deployed["instances"][0]["id"].as_str().unwrap().to_owned();
    let n2 = p.enroll("n2", 1024).await;

    let drained = p.post("/api/v1/nodes/n1/drain", &p.root, json!({})).await;
    assert_eq!(drained.status, StatusCode::OK, "{:?}", drained.body);
    assert_eq!(drained.body["replacements"], 1);
    assert_eq!(drained.body["node"]["state"], "draining");
    let all = instances(&p, &admin).await;
    let new = all.iter().find(|i| i["replaces"] == old.as_str()).unwrap();
    let new_id = new["id"].as_str().unwrap().to_owned();
    assert_eq!(new["node_id"], n2.id.as_str());

    // Until the replacement is healthy, the old instance keeps serving.
    let report = n2.path(&format!("instances/{new_id}/state"));
    let booting = p
        .post(&report, &n2.credential, json!({"state": "booting"}))
        .await;
    assert_eq!(booting.body["recorded"], true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(desired_ids(&p, &n1).await, [old.as_str()]);
    assert_eq!(p.count("instances_stopped").await, 0);

    let healthy = json!({"state": "healthy", "address": n2.address(8080)});
    p.post(&report, &n2.credential, healthy).await;
    eventually("the old instance is told to stop", || async {
        desired_ids(&p, &n1).await.is_empty().then_some(())
    })
    .await;
    let all = instances(&p, &admin).await;
    let stopped = all.iter().find(|i| i["id"] == old.as_str()).unwrap();
    assert_eq!(stopped["reason"], "replaced by a healthy instance");
    assert_eq!(desired_ids(&p, &n2).await, [new_id]);

    // A draining node takes nothing new; draining again starts nothing more.
    let scaled = p
        .post(
            &format!("{ENV}/scale"),
            &admin,
            json!({"process": "web", "instances": 2}),
        )
        .await;
    assert_eq!(scaled.status, StatusCode::OK, "{:?}", scaled.body);
    assert!(desired_ids(&p, &n1).await.is_empty());
    assert_eq!(desired_ids(&p, &n2).await.len(), 2);
    let again = p.post("/api/v1/nodes/n1/drain", &p.root, json!({})).await;
    assert_eq!(again.body["replacements"], 0);
    assert_eq!(p.count("node_state_changed").await, 1);
    assert_eq!(p.count("instances_stopped").await, 1);

    // Undrained, n1 takes new instances again; n2 is full for a third one.
    let undrained = p.post("/api/v1/nodes/n1/undrain", &p.root, json!({})).await;
    assert_eq!(undrained.status, StatusCode::OK, "{:?}", undrained.body);
    assert_eq!(undrained.body["node"]["state"], "ready");
    assert_eq!(p.count("node_state_changed").await, 2);
    let scaled = p
        .post(
            &format!("{ENV}/scale"),
            &admin,
            json!({"process": "web", "instances": 3}),
        )
        .await;
    assert_eq!(scaled.status, StatusCode::OK, "{:?}", scaled.body);
    assert_eq!(desired_ids(&p, &n1).await.len(), 1);
    let refused = p.post("/api/v1/nodes/n1/undrain", &admin, json!({})).await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "org tokens cannot undrain"
    );
    p.assert_rebuild_is_exact().await;
}

#[tokio::test]
async fn instances_deployed_before_any_node_are_placed_when_one_enrolls() {
    let p = Platform::start().await;
    let admin = acme(&p).await;
    let deployed = deploy(&p, &admin, 2).await;
    for i in deployed["instances"].as_array().unwrap() {
        assert_eq!(i["node_id"], Value::Null);
        assert_eq!(i["reason"], "unscheduled: no nodes are registered yet");
    }
    // Room for one of the two: the other keeps waiting.
    let n1 = p.enroll("n1", 256).await;
    eventually("an instance is placed on n1", || async {
        (desired_ids(&p, &n1).await.len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = instances(&p, &admin).await;
    let placed: Vec<_> = all
        .iter()
        .filter(|i| i["node_id"] == n1.id.as_str())
        .collect();
    assert_eq!(placed.len(), 1, "{all:#?}");
    assert_eq!(placed[0]["reason"], Value::Null);
    assert_eq!(
        p.count("instances_placed").await,
        1,
        "no event while nothing fits"
    );

    let n2 = p.enroll("n2", 256).await;
    eventually("the other is placed on n2", || async {
        (desired_ids(&p, &n2).await.len() == 1).then_some(())
    })
    .await;
    let ids: Vec<_> = deployed["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    let mut told = [desired_ids(&p, &n1).await, desired_ids(&p, &n2).await].concat();
    told.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(told, want, "the same instances, now placed");
    p.assert_rebuild_is_exact().await;
}

#[tokio::test]
async fn a_rollout_keeps_the_old_instance_until_the_new_one_is_healthy() {
    let p = Platform::start().await;
    let admin = acme(&p).await;
    let n1 = p.enroll("n1", 1024).await;
    p.keep_alive(&n1);
    let first = deploy(&p, &admin, 1).await;
    let old = first["instances"][0]["id"].as_str().unwrap().to_owned();
    let second = deploy(&p, &admin, 1).await;
    let new = second["instances"][0]["id"].as_str().unwrap().to_owned();

    // Several monitor rounds: the old instance serves on while the new one starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut both = vec![old.clone(), new.clone()];
    both.sort();
    let mut running = desired_ids(&p, &n1).await;
    running.sort();
    assert_eq!(running, both);

    let report = n1.path(&format!("instances/{new}/state"));
    let healthy = json!({"state": "healthy", "address": n1.address(8080)});
    p.post(&report, &n1.credential, healthy).await;
    eventually("the superseded instance is told to stop", || async {
        (desired_ids(&p, &n1).await == [new.clone()]).then_some(())
    })
    .await;
    let all = instances(&p, &admin).await;
    let stopped = all.iter().find(|i| i["id"] == old.as_str()).unwrap();
    assert_eq!(stopped["reason"], "superseded by a healthy deployment");
    assert_eq!(p.count("instances_stopped").await, 1);
    p.assert_rebuild_is_exact().await;
}

#[tokio::test]
async fn without_room_for_both_the_old_instance_makes_room() {
    let p = Platform::start().await;
    let admin = acme(&p).await;
    let n1 = p.enroll("n1", 256).await;
    p.keep_alive(&n1);
    let first = deploy(&p, &admin, 1).await;
    let old = first["instances"][0]["id"].as_str().unwrap().to_owned();
    let second = deploy(&p, &admin, 1).await;
    let new = second["instances"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        second["instances"][0]["node_id"],
        Value::Null,
        "no room yet"
    );

    eventually(
        "the new instance is placed where the old one was",
        || async { (desired_ids(&p, &n1).await == [new.clone()]).then_some(()) },
    )
    .await;
    let all = instances(&p, &admin).await;
    let stopped = all.iter().find(|i| i["id"] == old.as_str()).unwrap();
    assert_eq!(stopped["desired_state"], "stopped");
    p.assert_rebuild_is_exact().await;
}
