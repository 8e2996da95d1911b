//! A build from source through the whole platform: the source (a context with a
//! Dockerfile) is pushed to the platform registry as the CLI does, a build is queued
//! through the API, the node fetches it, builds it in a builder microVM, pushes the image
//! to the app's repository, and the image rolls out and answers through the edge. A
//! failing step fails its build with the step's output; what runs keeps serving.

use std::time::Duration;

use serde_json::{Value, json};
use zeitwork_e2e::{Up, poll_until};
use zeitwork_image::{Auth, ImageConfig, PushOptions, push_directory};

const WITHIN: Duration = Duration::from_secs(600);
const MANIFEST: &str =
    "version = 1\napp = \"web\"\n[processes.web]\n[build]\nmemory_mb = 1024\ndisk_mb = 2048\n";

/// Pushes `dir` as a source image of acme/web; its pinned reference.
async fn push_source(up: &Up, dir: &std::path::Path, tag: &str) -> String {
    let name = format!("{}/acme/web/source", up.registry());
    let options = PushOptions {
        auth: Auth::Basic {
            username: "zeitwork".into(),
            password: up.admin_token().unwrap().to_owned(),
        },
        ..PushOptions::default()
    };
    let digest = push_directory(
        dir,
        &format!("{name}:{tag}"),
        &ImageConfig::default(),
        &options,
    )
    .await
    .expect("pushing the source");
    format!("{name}@{digest}")
}

async fn api(up: &Up, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, format!("{}{path}", up.api()))
        .bearer_auth(up.admin_token().unwrap());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// Queues a build of `source`; waits until it ends and returns it.
async fn built(up: &Up, source: &str) -> Value {
    let builds = "/api/v1/orgs/acme/apps/web/envs/prod/builds";
    let queued = api(
        up,
        reqwest::Method::POST,
        builds,
        Some(json!({"source": source, "manifest": MANIFEST})),
    )
    .await;
    let id = queued["id"].as_str().unwrap().to_owned();
    poll_until(WITHIN, || async {
        let b = api(up, reqwest::Method::GET, &format!("{builds}/{id}"), None).await;
        matches!(
            b["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        )
        .then_some(b)
    })
    .await
    .unwrap_or_else(|| panic!("the build did not end:\n{}", up.stderr()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_is_built_on_the_node_and_rolls_out() {
    let data = tempfile::tempdir().unwrap();
    let up = zeitwork_e2e::up_with_app(data.path(), "acme", "web").await;
    // Its RUN step reaches the internet (the build fails if it cannot).
    let source = zeitwork_e2e::hello_context(
        "FROM scratch\nCOPY hello /hello\nRUN [\"/hello\", \"probe\", \"deb.debian.org:80\"]\n\
         EXPOSE 8080\nCMD [\"/hello\"]\n",
    );
    let reference = push_source(&up, source.path(), "v1").await;
    let build = built(&up, &reference).await;
    assert_eq!(build["state"], "succeeded", "{build}");
    let image = build["image"].as_str().unwrap();
    assert!(
        image.starts_with(&format!("{}/acme/web:build-", up.registry())),
        "{image}"
    );
    let app = ["--org", "acme", "--app", "web"];
    let healthy = poll_until(WITHIN, || async {
        let running = up.running_instances(&app).await?;
        (running.len() == 1 && running[0]["observed_state"] == "healthy").then_some(())
    })
    .await;
    assert!(healthy.is_some(), "the built image runs:\n{}", up.stderr());
    let host = "web-acme.zeitwork.localhost";
    // The edge routes to it once it learns the instance is healthy.
    let served = poll_until(WITHIN, || async {
        let body = zeitwork_e2e::nodes::http_get(&up.edge_addr(), host, "/").await?;
        body.contains("Hello from Zeitwork").then_some(body)
    })
    .await;
    assert!(served.is_some(), "the edge serves the built image");

    // A failing step: the build fails with its output, the deployment keeps serving.
    std::fs::write(
        source.path().join("Dockerfile"),
        "FROM scratch\nRUN /does-not-exist\n",
    )
    .unwrap();
    let reference = push_source(&up, source.path(), "v2").await;
    let build = built(&up, &reference).await;
    assert_eq!(build["state"], "failed", "{build}");
    assert!(
        build["reason"]
            .as_str()
            .unwrap()
            .contains("exited with code"),
        "{build}"
    );
    let log = build["log"].to_string();
    assert!(log.contains("RUN /does-not-exist"), "{log}");
    let served = zeitwork_e2e::nodes::http_get(&up.edge_addr(), host, "/")
        .await
        .unwrap_or_default();
    assert!(served.contains("Hello from Zeitwork"), "{served}");

    // A Dockerfile that starts FROM an image of the org (the first build's, through a
    // build argument and a named stage): the node fetches it, the builder loads it.
    let base = image.split_once('@').unwrap().0.to_owned();
    std::fs::write(
        source.path().join("Dockerfile"),
        "ARG BASE\nFROM ${BASE} AS base\nFROM base\nLABEL derived=yes\n",
    )
    .unwrap();
    let reference = push_source(&up, source.path(), "v3").await;
    let builds_path = "/api/v1/orgs/acme/apps/web/envs/prod/builds";
    let derived_manifest = format!("{MANIFEST}args = {{ BASE = \"{base}\" }}\n");
    let queued = api(
        &up,
        reqwest::Method::POST,
        builds_path,
        Some(json!({"source": reference, "manifest": derived_manifest})),
    )
    .await;
    let id = queued["id"].as_str().unwrap().to_owned();
    let derived = poll_until(WITHIN, || async {
        let b = api(
            &up,
            reqwest::Method::GET,
            &format!("{builds_path}/{id}"),
            None,
        )
        .await;
        matches!(b["state"].as_str(), Some("succeeded" | "failed")).then_some(b)
    })
    .await
    .unwrap();
    let output = up
        .cli(&["--org", "acme", "--app", "web", "builds", "logs", &id])
        .await
        .success();
    assert_eq!(
        derived["state"], "succeeded",
        "{derived}\n{}",
        output.stdout
    );
    assert!(
        output.stdout.contains(&format!("loading {base}")),
        "{}",
        output.stdout
    );

    // `zeitwork deploy` in a directory with a Dockerfile: uploaded, built, rolled out.
    // Its COPY is the first build's: the app's layer cache on the node has it.
    std::fs::write(
        source.path().join("Dockerfile"),
        "FROM scratch\nCOPY hello /hello\nEXPOSE 8080\nLABEL from=directory\nCMD [\"/hello\"]\n",
    )
    .unwrap();
    std::fs::write(source.path().join(".dockerignore"), "junk\n").unwrap();
    std::fs::write(source.path().join("junk"), vec![0u8; 1 << 20]).unwrap();
    let manifest = source.path().join("zeitwork.toml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let manifest = manifest.display().to_string();
    let deployed = up
        .cli(&["--org", "acme", "deploy", "--manifest", &manifest])
        .await
        .success();
    assert!(
        deployed.stdout.contains("Built and deployed web")
            && deployed.stdout.contains("http://web-"),
        "{}\n{}",
        deployed.stdout,
        deployed.stderr
    );
    assert!(
        deployed.stderr.contains("uploaded the source (4 files"),
        "{}",
        deployed.stderr
    );
    // The build's output streamed as it came, then the new instances' progress.
    assert!(
        deployed.stderr.contains("  | STEP 1/5: FROM scratch")
            && deployed.stderr.contains("Using cache")
            && deployed.stderr.contains("(web): healthy"),
        "{}",
        deployed.stderr
    );
    let releases = up
        .cli(&["--org", "acme", "--app", "web", "releases", "--json"])
        .await
        .success()
        .json();
    assert_eq!(
        releases["releases"].as_array().unwrap().len(),
        3,
        "{releases}"
    );
    let serving = poll_until(WITHIN, || async {
        let running = up.running_instances(&app).await?;
        let new = running.iter().all(|i| i["observed_state"] == "healthy");
        let body = zeitwork_e2e::nodes::http_get(&up.edge_addr(), host, "/").await?;
        (new && body.contains("Hello from Zeitwork")).then_some(())
    })
    .await;
    assert!(serving.is_some(), "the second release serves");
    // The same tree again: not rebuilt, the image is reused.
    let image_of = |out: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix("image"))
            .map(|i| i.trim().to_owned())
    };
    let again = up
        .cli(&["--org", "acme", "deploy", "--manifest", &manifest])
        .await
        .success();
    assert_eq!(
        image_of(&again.stdout),
        image_of(&deployed.stdout),
        "{}",
        again.stdout
    );
    // --json: one object on stdout, the progress on stderr.
    let json = up
        .cli(&["--org", "acme", "--json", "deploy", "--manifest", &manifest])
        .await
        .success();
    let answer = json.json();
    assert_eq!(answer["build"]["state"], "succeeded", "{answer}");
    assert!(answer["status"]["url"].is_string(), "{answer}");
    let builds = api(
        &up,
        reqwest::Method::GET,
        "/api/v1/orgs/acme/apps/web/envs/prod/builds",
        None,
    )
    .await;
    assert!(
        builds["builds"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("reused")),
        "{builds}"
    );
    // `zeitwork builds` lists them; `builds show` gives a failed one's last lines.
    let listed = up
        .cli(&["--org", "acme", "--app", "web", "builds"])
        .await
        .success();
    assert!(
        listed.stdout.contains("succeeded") && listed.stdout.contains("failed"),
        "{}",
        listed.stdout
    );
    let failed = builds["builds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["state"] == "failed")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = up
        .cli(&["--org", "acme", "--app", "web", "builds", "show", &failed])
        .await
        .success();
    assert!(
        shown.stdout.contains("RUN /does-not-exist"),
        "{}",
        shown.stdout
    );
    // Its whole output, kept in the log pipeline.
    let output = up
        .cli(&["--org", "acme", "--app", "web", "builds", "logs", &failed])
        .await
        .success();
    assert!(
        output.stdout.contains("STEP 1/2: FROM scratch")
            && output.stdout.contains("RUN /does-not-exist"),
        "{}",
        output.stdout
    );

    // A build cancelled while it builds: its builder VM is stopped.
    std::fs::write(
        source.path().join("Dockerfile"),
        "FROM scratch\nCOPY hello /hello-again\n",
    )
    .unwrap();
    let reference = push_source(&up, source.path(), "v4").await;
    let builds_path = "/api/v1/orgs/acme/apps/web/envs/prod/builds";
    let queued = api(
        &up,
        reqwest::Method::POST,
        builds_path,
        Some(json!({"source": reference, "manifest": MANIFEST})),
    )
    .await;
    let id = queued["id"].as_str().unwrap().to_owned();
    let vm = format!("build-{id}");
    let vm_runs = || {
        zeitwork_vmm::Cgroup::ours()
            .into_iter()
            .any(|(name, cg)| name == vm && !cg.pids().is_empty())
    };
    let building = poll_until(WITHIN, || async { vm_runs().then_some(()) }).await;
    assert!(building.is_some(), "the builder VM started");
    up.cli(&["--org", "acme", "--app", "web", "builds", "cancel", &id])
        .await
        .success();
    let stopped = poll_until(WITHIN, || async { (!vm_runs()).then_some(()) }).await;
    assert!(stopped.is_some(), "the cancelled build's VM is stopped");
    let build = api(
        &up,
        reqwest::Method::GET,
        &format!("{builds_path}/{id}"),
        None,
    )
    .await;
    assert_eq!(build["state"], "cancelled", "{build}");
}
