//! The autoscaler in the operator, fed load reports the way edges and agents write them
//! (the test writes the edges' reports through the same store function; the agents'
//! come through the heartbeat API): a burst scales up at once, quiet load scales down
//! only after the window, missing reports hold the count, and `scale` is refused while
//! the manifest autoscales. Real edges and VMs: `crates/e2e/tests/autoscale.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use zeitwork_store::load::EdgeLoad;

use crate::support::{Agent, Platform, assert_error, eventually, image};

const APPS: &str = "/api/v1/orgs/acme/apps";
const ENV: &str = "/api/v1/orgs/acme/apps/web/envs/prod";

fn manifest(autoscale: &str) -> String {
    format!(
        "version = 1\napp = \"web\"\n[processes.web]\nport = 8080\ninstances = 1\n\
         memory_mb = 128\ncpus = 0.5\n[processes.web.autoscale]\n{autoscale}\n"
    )
}

/// Reports every instance of the env that is meant to run healthy, each at an address
/// of its own; their addresses.
async fn all_healthy(p: &Platform, admin: &str, node: &Agent) -> Vec<String> {
    let prefix = node.instance_prefix.trim_end_matches("/64").to_owned();
    let list = p.get(&format!("{ENV}/instances"), admin).await.body;
    let mut addresses = Vec::new();
    for (n, i) in list["instances"].as_array().unwrap().iter().enumerate() {
        if i["desired_state"] != "running" {
            continue;
        }
        let address = format!("[{prefix}{:x}]:8080", n + 16);
        let report = node.path(&format!("instances/{}/state", i["id"].as_str().unwrap()));
        let state = json!({"state": "healthy", "address": address});
        let a = p.post(&report, &node.credential, state).await;
        assert!(a.status.is_success(), "{:?}", a.body);
        addresses.push(address);
    }
    addresses
}

async fn running(p: &Platform, admin: &str) -> usize {
    let list = p.get(&format!("{ENV}/instances"), admin).await.body;
    list["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["desired_state"] == "running")
        .count()
}

/// What an edge reports: `in_flight` spread evenly over `addresses`, no request sent.
fn spread(addresses: &[String], in_flight: f64) -> BTreeMap<String, EdgeLoad> {
    let each = EdgeLoad {
        in_flight: in_flight / addresses.len().max(1) as f64,
        requests: 0,
    };
    addresses.iter().map(|a| (a.clone(), each)).collect()
}

async fn edge_reports(p: &Platform, edge: &str, addresses: &[String], in_flight: f64) {
    let load = spread(addresses, in_flight);
    zeitwork_store::load::report_edge(p.store.pool(), edge, &load)
        .await
        .unwrap();
}

async fn status(p: &Platform, admin: &str) -> Value {
    p.get(&format!("{ENV}/status"), admin).await.body
}

async fn setup(p: &Platform, autoscale: &str) -> (String, Agent) {
    let admin = p.org("acme").await;
    p.post(APPS, &admin, json!({ "name": "web" })).await;
    let node = p.enroll("n1", 8192).await;
    p.keep_alive(&node);
    let body = json!({"image": image(1), "manifest": manifest(autoscale)});
    let d = p.post(&format!("{ENV}/deployments"), &admin, body).await;
    assert_eq!(d.status, StatusCode::CREATED, "{:?}", d.body);
    (admin, node)
}

#[tokio::test]
async fn a_burst_scales_up_at_once_and_quiet_scales_down_after_the_window() {
    let p = Platform::start().await;
    let (admin, node) = setup(
        &p,
        "min = 1\nmax = 4\ntarget_concurrency = 5\nscale_down_window = \"3s\"",
    )
    .await;
    let addresses = all_healthy(&p, &admin, &node).await;
    assert_eq!(addresses.len(), 1);

    // 18 requests in flight at a target of 5 each: 4 instances at once.
    edge_reports(&p, "edge-a", &addresses, 12.0).await;
    edge_reports(&p, "edge-b", &addresses, 6.0).await;
    eventually("scaled up", || async {
        (running(&p, &admin).await == 4).then_some(())
    })
    .await;
    let s = status(&p, &admin).await;
    let last = &s["scaling"][0]["last"];
    assert_eq!(last["actor"], "autoscaler", "{s}");
    assert_eq!(last["instances"], 4);
    let reason = last["reason"].as_str().unwrap();
    assert!(
        reason.contains("18.0 requests in flight over 1 instance(s), target 5"),
        "{reason}"
    );
    assert_eq!(s["scaling"][0]["autoscale"]["max"], 4);

    // Manual scaling is refused while the manifest autoscales.
    let refused = p
        .post(
            &format!("{ENV}/scale"),
            &admin,
            json!({"process": "web", "instances": 2}),
        )
        .await;
    assert_error(&refused, StatusCode::CONFLICT, Some("process"));
    let message = refused.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("autoscales between 1 and 4"),
        "{:?}",
        refused.body
    );

    // The load drops; the count holds for the window, then goes down to what it asks.
    let addresses = all_healthy(&p, &admin, &node).await;
    let quiet = tokio::spawn({
        let (store, addresses) = (p.store.clone(), addresses.clone());
        async move {
            loop {
                let load = spread(&addresses, 1.0);
                for edge in ["edge-a", "edge-b"] {
                    let _ = zeitwork_store::load::report_edge(store.pool(), edge, &load).await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(running(&p, &admin).await, 4, "held during the window");
    eventually("scaled down", || async {
        (running(&p, &admin).await == 1).then_some(())
    })
    .await;
    quiet.abort();
    let s = status(&p, &admin).await;
    let reason = s["scaling"][0]["last"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.starts_with("for 3s the load asked for at most 1"),
        "{reason}"
    );
    assert!(p.count("process_scaled").await >= 2);
    p.assert_rebuild_is_exact().await;
}

#[tokio::test]
async fn without_reports_the_count_holds() {
    let p = Platform::start().await;
    let (admin, node) = setup(
        &p,
        "min = 2\nmax = 5\ntarget_concurrency = 5\nscale_down_window = \"0s\"",
    )
    .await;
    // The first deployment starts within the bounds: `instances = 1` is raised to min.
    assert_eq!(running(&p, &admin).await, 2);
    let addresses = all_healthy(&p, &admin, &node).await;
    // A stale report (an edge that went away) is no report.
    edge_reports(&p, "edge-gone", &addresses, 100.0).await;
    sqlx::query("UPDATE edge_load SET reported_at = now() - interval '1 minute'")
        .execute(p.store.pool())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(running(&p, &admin).await, 2);
    assert_eq!(p.count("process_scaled").await, 0);
}

#[tokio::test]
async fn cpu_reports_come_with_heartbeats_and_only_for_the_nodes_own_instances() {
    let p = Platform::start().await;
    let (admin, node) = setup(&p, "max = 3\ntarget_cpu = 50").await;
    all_healthy(&p, &admin, &node).await;
    let list = p.get(&format!("{ENV}/instances"), &admin).await.body;
    let instance = list["instances"][0]["id"].as_str().unwrap().to_owned();
    let other = p.enroll("n2", 8192).await;

    // Out of bounds: named field, nothing stored.
    let beat = |millicpus: u64| json!({"running": 1, "cpu": [{"instance_id": instance, "millicpus": millicpus}]});
    let bad = p
        .post(&node.path("heartbeat"), &node.credential, beat(2_000_000))
        .await;
    assert_error(
        &bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("cpu[0].millicpus"),
    );
    // Another node cannot speak for this node's instance.
    let a = p
        .post(&other.path("heartbeat"), &other.credential, beat(500))
        .await;
    assert!(a.status.is_success(), "{:?}", a.body);
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM instance_cpu")
        .fetch_one(p.store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0);

    // Its own node says it runs at 100 % of its 0.5 CPU: twice the target, 2 instances.
    let a = p
        .post(&node.path("heartbeat"), &node.credential, beat(500))
        .await;
    assert!(a.status.is_success(), "{:?}", a.body);
    eventually("scaled by CPU", || async {
        (running(&p, &admin).await == 2).then_some(())
    })
    .await;
    // The new instance has no report yet: the work measured still asks for 2, not more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(running(&p, &admin).await, 2);
    let s = status(&p, &admin).await;
    let reason = s["scaling"][0]["last"]["reason"].as_str().unwrap();
    assert!(reason.contains("CPU at 100%"), "{reason}");
}

#[tokio::test]
async fn an_idle_process_scales_to_zero_and_a_storm_of_held_requests_wakes_one_instance() {
    let p = Platform::start().await;
    let (admin, node) = setup(
        &p,
        "min = 0\nmax = 3\ntarget_concurrency = 5\nidle_timeout = \"10s\"",
    )
    .await;
    let addresses = all_healthy(&p, &admin, &node).await;
    // Edges keep reporting: no request for 10 s.
    let idle = tokio::spawn({
        let (store, addresses) = (p.store.clone(), addresses.clone());
        async move {
            loop {
                let load = spread(&addresses, 0.0);
                let _ = zeitwork_store::load::report_edge(store.pool(), "edge-a", &load).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(running(&p, &admin).await, 1, "not idle for long enough yet");
    let zero = std::time::Instant::now();
    eventually("scaled to zero", || async {
        (running(&p, &admin).await == 0).then_some(())
    })
    .await;
    assert!(zero.elapsed() < Duration::from_secs(8));
    let s = status(&p, &admin).await;
    let reason = s["scaling"][0]["last"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(reason, "no requests for 10s: scaled to zero");
    assert_eq!(s["scaling"][0]["last"]["instances"], 0);

    // Fifty edges' worth of held requests at once: one instance.
    let before = p.count("process_scaled").await;
    let deployment = s["deployment"]["id"].as_str().unwrap().parse().unwrap();
    let storm: Vec<_> = (0..50)
        .map(|_| {
            let store = p.store.clone();
            tokio::spawn(async move {
                zeitwork_store::load::request_wake(store.pool(), deployment, "web")
                    .await
                    .unwrap();
            })
        })
        .collect();
    for ask in storm {
        ask.await.unwrap();
    }
    eventually("woken", || async {
        (running(&p, &admin).await == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(running(&p, &admin).await, 1, "one instance for the storm");
    assert_eq!(p.count("process_scaled").await, before + 1);
    let s = status(&p, &admin).await;
    assert_eq!(
        s["scaling"][0]["last"]["reason"],
        "a request arrived while scaled to zero"
    );
    idle.abort();
    p.assert_rebuild_is_exact().await;
}
