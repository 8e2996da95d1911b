//! The bundled example app, deployed by `zeitwork up` on its first start so that a new
//! machine ends with a URL that answers: org `demo`, app `hello`, env `prod`.

use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use zeitwork_image::{ImageConfig, PushOptions, push_directory};

const MANIFEST: &str = include_str!("../../../examples/hello/zeitwork.toml");
pub const ORG: &str = "demo";
pub const APP: &str = "hello";
/// Booting under software emulation takes seconds; pulling and first boot more.
const READY_WITHIN: Duration = Duration::from_secs(300);

/// Talks to our own API as the platform admin.
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1/{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(120));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = response.status();
        let value = response.json().await.unwrap_or(Value::Null);
        Ok((status, value))
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, value) = self.call(method, path, body).await?;
        anyhow::ensure!(status.is_success(), "{path}: {status} {value}");
        Ok(value)
    }
}

/// Where the example answers.
pub struct Deployed {
    /// The deployment's own URL, without the edge's port.
    pub url: String,
    /// One healthy instance, straight on the node: `http://ip:port/`.
    pub instance: String,
}

/// Deploys the example unless it exists and waits for a healthy instance.
pub async fn deploy(api: &Api, registry: &str) -> anyhow::Result<Deployed> {
    let app_path = format!("orgs/{ORG}/apps/{APP}");
    let (status, _) = api.call(Method::GET, &app_path, None).await?;
    if status == StatusCode::NOT_FOUND {
        let (status, body) = api
            .call(Method::POST, "orgs", Some(json!({ "name": ORG })))
            .await?;
        anyhow::ensure!(
            status.is_success() || status == StatusCode::CONFLICT,
            "creating org {ORG}: {status} {body}"
        );
        api.ok(
            Method::POST,
            &format!("orgs/{ORG}/apps"),
            Some(json!({ "name": APP })),
        )
        .await?;
        let image = push(registry, &api.token).await?;
        eprintln!("deploying the example app ({image}) …");
        api.ok(
            Method::POST,
            &format!("{app_path}/envs/prod/deployments"),
            Some(json!({ "image": image, "manifest": MANIFEST })),
        )
        .await?;
    }
    let instance = wait_healthy(api, &format!("{app_path}/envs/prod/instances")).await?;
    let status = api
        .ok(Method::GET, &format!("{app_path}/envs/prod/status"), None)
        .await?;
    let url = status["url"]
        .as_str()
        .context("the example's status has no URL")?
        .trim_end_matches('/')
        .to_owned();
    Ok(Deployed { url, instance })
}

/// Packs the static `hello` binary (`ZEITWORK_HELLO_BIN`, else next to this one or where
/// `scripts/build-guest.sh` builds it) into an image in `registry`'s `demo/hello`, pushed
/// with `token`.
async fn push(registry: &str, token: &str) -> anyhow::Result<String> {
    let hello = match std::env::var_os("ZEITWORK_HELLO_BIN") {
        Some(path) => std::path::PathBuf::from(path),
        None => crate::guest_bins::static_bin("hello")?,
    };
    anyhow::ensure!(
        hello.is_file(),
        "{} not found: build it with scripts/build-guest.sh (scripts/up.sh does)",
        hello.display()
    );
    let dir = tempfile::tempdir()?;
    std::fs::copy(&hello, dir.path().join("hello"))?;
    let config = ImageConfig {
        entrypoint: vec!["/hello".into()],
        exposed_ports: vec!["8080/tcp".into()],
        ..Default::default()
    };
    let name = format!("{registry}/{ORG}/{APP}");
    let options = PushOptions {
        auth: zeitwork_image::Auth::Basic {
            username: "zeitwork".into(),
            password: token.to_owned(),
        },
        ..PushOptions::default()
    };
    let digest = push_directory(dir.path(), &format!("{name}:latest"), &config, &options).await?;
    Ok(format!("{name}@{digest}"))
}

/// Polls the env's instances, printing each state change, until one is healthy.
async fn wait_healthy(api: &Api, path: &str) -> anyhow::Result<String> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let listing = api.ok(Method::GET, path, None).await?;
        let instances = listing["instances"].as_array().cloned().unwrap_or_default();
        let running: Vec<&Value> = instances
            .iter()
            .filter(|i| i["desired_state"] == "running")
            .collect();
        if let Some(healthy) = running
            .iter()
            .find(|i| i["observed_state"] == "healthy" && i["address"].is_string())
        {
            return Ok(format!(
                "http://{}/",
                healthy["address"].as_str().unwrap_or("")
            ));
        }
        let now = running
            .iter()
            .map(|i| {
                let reason = i["reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                format!("{}{reason}", i["observed_state"].as_str().unwrap_or("?"))
            })
            .collect::<Vec<_>>()
            .join(", ");
        if now != last {
            eprintln!("  example instance: {now}");
            last = now;
        }
        anyhow::ensure!(
            start.elapsed() < READY_WITHIN,
            "the example app did not become healthy within {} s (last: {last})",
            READY_WITHIN.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
