//! Push to serving through the whole platform (`zeitwork up`, the GitHub stand-in's git
//! daemon and GitHub-shaped deliveries): from the signed delivery until the new
//! deployment's own URL answers through the edge, split into its parts (the build as the
//! platform records it, queued → succeeded; then the rollout until the new deployment's
//! instance is healthy and served). Three kinds of push, each ROUNDS times:
//! a source-only change (the README the image holds: its `COPY hello` comes from the app's
//! layer cache, the rest is built), a tree
//! built before but not serving (another commit: the image is reused and rolls out), and
//! the first push (cold: nothing built before, the builder guest already made). Printed as Markdown for BENCHMARKS.md.
//! Run: `cargo bench -p zeitwork-e2e --bench push`, as root.

use std::time::{Duration, Instant};

use serde_json::Value;
use zeitwork_e2e::{Up, hello_bin, poll_until};

const ROUNDS: usize = 3;
const WITHIN: Duration = Duration::from_secs(600);
const MANIFEST: &[u8] =
    b"version = 1\napp = \"shop\"\n[processes.web]\n[build]\nmemory_mb = 1024\ndisk_mb = 2048\n";
const DOCKERFILE: &[u8] =
    b"FROM scratch\nCOPY hello /hello\nCOPY README /README\nEXPOSE 8080\nCMD [\"/hello\"]\n";
const APP: &[&str] = &["--org", "acme", "--app", "shop"];

/// One push, timed.
struct Timed {
    total: Duration,
    build: Duration,
    rollout: Duration,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let data = tempfile::tempdir().unwrap();
    let up = zeitwork_e2e::up_with_app(data.path(), "acme", "shop").await;
    let (gh, hook) = zeitwork_e2e::connected_repository(&up, "acme", "shop").await;
    let hello = std::fs::read(hello_bin()).unwrap();
    let mut n = 0;
    let mut push = async |change: Option<String>| {
        n += 1;
        let readme = change.unwrap_or_default();
        let files: &[(&str, &[u8], bool)] = &[
            ("Dockerfile", DOCKERFILE, false),
            ("hello", &hello, true),
            ("zeitwork.toml", MANIFEST, false),
            ("README", readme.as_bytes(), false),
        ];
        let pushed = gh
            .commit("acme/shop", "main", files, &format!("push {n}"))
            .await
            .unwrap();
        let payload = gh.push_payload("acme/shop", "main", &pushed);
        let started = Instant::now();
        let (status, body) = gh
            .deliver(&hook, "push", &format!("d-{n}"), &payload, &hook.secret)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        serving(&up, body["build_id"].as_str().unwrap(), started).await
    };
    // The change is to a file the image holds, so each is a new image (its other
    // steps come from the app's layer cache).
    let cold = push(Some("first".into())).await;
    let (mut changed, mut same) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        changed.push(push(Some(format!("change {round}"))).await);
        // The first tree again: built before, not the one serving, so its image is
        // reused and rolls out.
        same.push(push(Some("first".into())).await);
    }
    println!(
        "| push → new deployment served (median of {ROUNDS}) | total | build (queued → succeeded) | rollout (→ healthy and served) |"
    );
    println!("|---|---|---|---|");
    for (what, mut runs) in [
        ("cold: the first push", vec![cold]),
        (
            "source-only change (`COPY hello` from the layer cache)",
            changed,
        ),
        ("a tree built before, another commit (image reused)", same),
    ] {
        runs.sort_by_key(|t| t.total);
        let t = &runs[runs.len() / 2];
        println!(
            "| {what} | {:.1} s | {:.1} s | {:.1} s |",
            t.total.as_secs_f64(),
            t.build.as_secs_f64(),
            t.rollout.as_secs_f64()
        );
    }
}

/// Waits until build `id` succeeded and its deployment's own URL answers; the timings.
async fn serving(up: &Up, id: &str, started: Instant) -> Timed {
    let build: Value = poll_until(WITHIN, || async {
        let listed = up.cli(&[APP, &["builds", "--json"]].concat()).await;
        let builds = listed.json()["builds"].as_array().cloned()?;
        let b = builds.into_iter().find(|b| b["id"] == id)?;
        match b["state"].as_str()? {
            "succeeded" => Some(b),
            "failed" | "cancelled" => panic!("build {id} ended: {b}"),
            _ => None,
        }
    })
    .await
    .expect("the build succeeds");
    let built = started.elapsed();
    let at =
        |key: &str| chrono::DateTime::parse_from_rfc3339(build[key].as_str().unwrap()).unwrap();
    let build_took = (at("updated_at") - at("created_at")).to_std().unwrap();
    // The release may be an earlier one of the same image (same digest, another tag).
    let digest = build["image"]
        .as_str()
        .unwrap()
        .rsplit_once('@')
        .unwrap()
        .1
        .to_owned();
    poll_until(WITHIN, || async {
        let status = up.cli(&[APP, &["status", "--json"]].concat()).await.json();
        if status["release"]["digest"] != digest.as_str() {
            return None;
        }
        let slug = status["deployment"]["slug"].as_str()?.to_owned();
        let host = format!("shop-{slug}-acme.zeitwork.localhost");
        let body = zeitwork_e2e::nodes::http_get(&up.edge_addr(), &host, "/").await?;
        body.contains("Hello from Zeitwork").then_some(())
    })
    .await
    .expect("the new deployment serves");
    let total = started.elapsed();
    Timed {
        total,
        build: build_took,
        rollout: total.saturating_sub(built),
    }
}
