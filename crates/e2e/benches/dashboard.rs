//! The dashboard at scale: `zeitwork up` with 500 apps and 5,000 instances in its
//! database (placed on one enrolled node whose agent this bench plays through the API:
//! heartbeats and instance reports, so no VM boots), measured in Debian's Chromium by
//! `web/bench/dashboard.mjs` (Playwright): first contentful paint of the apps list and of
//! an app page with a cold cache, the time from an instance's `healthy` report committing
//! to the page showing it, and the JavaScript the first view loads, gzipped. The same
//! pages served by nginx (static files, the API proxied to the operator) run beside it as
//! the peer. Printed as Markdown for BENCHMARKS.md. Run:
//! `cargo bench -p zeitwork-e2e --bench dashboard` (needs `web/dist` built; installs nginx
//! with `scripts/setup.sh` when it is missing).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use zeitwork_e2e::{Up, push_example_with_shell};

/// Apps seeded; `ZW_BENCH_APPS` makes a smaller run (to try the bench out).
const APPS: usize = 500;
const INSTANCES_PER_APP: usize = 10;
const ORG: &str = "bench";

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("the API answers");
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success() || status == StatusCode::CONFLICT,
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, token, body).await
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let setup = std::process::Command::new(root.join("scripts/setup.sh"))
        .arg("nginx-light")
        .status()
        .expect("scripts/setup.sh runs");
    assert!(setup.success(), "scripts/setup.sh nginx-light failed");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(data.path().join("data")).await;
    up.login_as_admin().await;
    let admin = up.admin_token().expect("a fresh `up`").to_owned();
    let api = Api {
        http: reqwest::Client::new(),
        base: up.api().to_owned(),
    };
    let image = push_example_with_shell(&up).await;

    // One node big enough for every instance, kept alive by this bench.
    let join = api
        .post("/api/v1/nodes/join-tokens", &admin, json!({}))
        .await;
    let join = join["token"].as_str().expect("a join token").to_owned();
    let node = api
        .post(
            "/api/v1/nodes/enroll",
            &join,
            json!({ "name": "bench-node", "region": "local", "millicpus": 4_096_000,
                    "memory_mb": 16_777_216_u64, "addresses": ["127.0.0.1"] }),
        )
        .await;
    let credential = node["credential"]
        .as_str()
        .expect("a credential")
        .to_owned();
    // Where the node's instances answer: an address of its own /64.
    let prefix = node["instance_prefix"].as_str().expect("a prefix");
    let address = format!("[{}2]:8080", prefix.trim_end_matches("/64"));
    let heartbeat = {
        let (http, base, credential) = (api.http.clone(), api.base.clone(), credential.clone());
        tokio::spawn(async move {
            loop {
                let _ = http
                    .post(format!("{base}/api/v1/nodes/bench-node/heartbeat"))
                    .bearer_auth(&credential)
                    .json(&json!({ "running": 0 }))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    api.post("/api/v1/orgs", &admin, json!({ "name": ORG }))
        .await;
    api.call(
        reqwest::Method::PUT,
        &format!("/api/v1/orgs/{ORG}/quotas"),
        &admin,
        json!({ "instances": 100_000, "memory_mb": 1_073_741_824_u64 }),
    )
    .await;
    let apps = std::env::var("ZW_BENCH_APPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(APPS);
    let started = std::time::Instant::now();
    for n in 0..apps {
        let app = format!("app-{n:03}");
        let manifest = format!(
            "version = 1\napp = \"{app}\"\n[processes.web]\ninstances = {INSTANCES_PER_APP}\ncpus = 0.1\nmemory_mb = 64\nport = 8080\n"
        );
        api.post(
            &format!("/api/v1/orgs/{ORG}/apps"),
            &admin,
            json!({ "name": app }),
        )
        .await;
        let path = format!("/api/v1/orgs/{ORG}/apps/{app}/envs/prod/deployments");
        api.post(
            &path,
            &admin,
            json!({ "image": image, "manifest": manifest }),
        )
        .await;
    }
    eprintln!(
        "seeded {apps} apps, {} instances in {:?}",
        apps * INSTANCES_PER_APP,
        started.elapsed()
    );

    // The app page the browser watches, and its instances to report healthy one by one.
    let watched = format!("app-{:03}", apps / 2);
    let status = api
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/orgs/{ORG}/apps/{watched}/envs/prod/status"),
            &admin,
            Value::Null,
        )
        .await;
    let instances: Vec<String> = status["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect();

    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let out = tokio::process::Command::new("node")
        .arg("bench/dashboard.mjs")
        .current_dir(&web)
        .env("ZW_URL", up.api())
        .env("ZW_TOKEN", &admin)
        .env("ZW_ORG", ORG)
        .env("ZW_APP", &watched)
        .env("ZW_NODE", "bench-node")
        .env("ZW_NODE_CREDENTIAL", &credential)
        .env("ZW_INSTANCES", instances.join(","))
        .env("ZW_ADDRESS", &address)
        .env("ZW_DIST", web.join("dist"))
        .output()
        .await
        .expect("node runs the measuring script");
    heartbeat.abort();
    assert!(
        out.status.success(),
        "measuring failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
}
