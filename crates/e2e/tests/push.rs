//! `git push` to deploy, through the whole platform, with the GitHub stand-in (git's own
//! daemon serving the repository, deliveries shaped and signed as GitHub's): `zeitwork
//! apps connect` prints the webhook's URL and secret; a signed push of the production
//! branch is fetched by the node (the exact commit), built in a builder microVM with the
//! commit's own zeitwork.toml, and served at the app's URL; the same tree pushed again is
//! not rebuilt; another branch gets a preview URL of its own, gone with the branch; a
//! delivery with a wrong signature builds nothing.

use std::time::Duration;

use serde_json::Value;
use zeitwork_e2e::{Up, hello_bin, poll_until};
use zeitwork_services::{GitHubStandIn, Hook};

const WITHIN: Duration = Duration::from_secs(600);
const MANIFEST: &[u8] =
    b"version = 1\napp = \"shop\"\n[processes.web]\n[build]\nmemory_mb = 1024\ndisk_mb = 2048\n";
const DOCKERFILE: &[u8] = b"FROM scratch\nCOPY hello /hello\nEXPOSE 8080\nCMD [\"/hello\"]\n";
const APP: &[&str] = &["--org", "acme", "--app", "shop"];

/// The builds of `env`, newest first.
async fn builds(up: &Up, env: &str) -> Vec<Value> {
    let listed = up
        .cli(&[APP, &["--env", env, "builds", "--json"]].concat())
        .await;
    if listed.code != 0 {
        return Vec::new();
    }
    listed.json()["builds"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits for build `id` of `env` to end; the build.
async fn ended(up: &Up, env: &str, id: &str) -> Value {
    poll_until(WITHIN, || async {
        builds(up, env).await.into_iter().find(|b| {
            b["id"] == id
                && matches!(
                    b["state"].as_str(),
                    Some("succeeded" | "failed" | "cancelled")
                )
        })
    })
    .await
    .unwrap_or_else(|| panic!("build {id} did not end:\n{}", up.stderr()))
}

/// Delivers a push signed with the hook's secret; the answer, which must be 200.
async fn delivered(gh: &GitHubStandIn, hook: &Hook, delivery: &str, payload: &Value) -> Value {
    let (status, body) = gh
        .deliver(hook, "push", delivery, payload, &hook.secret)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until `host` answers through the edge with the example's greeting.
async fn serves(up: &Up, host: &str) -> bool {
    poll_until(WITHIN, || async {
        let body = zeitwork_e2e::nodes::http_get(&up.edge_addr(), host, "/").await?;
        body.contains("Hello from Zeitwork").then_some(())
    })
    .await
    .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_with_the_github_stand_in_builds_and_serves_and_branches_preview() {
    let data = tempfile::tempdir().unwrap();
    let up = zeitwork_e2e::up_with_app(data.path(), "acme", "shop").await;
    let (gh, hook) = zeitwork_e2e::connected_repository(&up, "acme", "shop").await;
    let repo = gh.clone_url("acme/shop");
    let shown = up
        .cli(&[APP, &["apps", "repository"]].concat())
        .await
        .success();
    assert!(
        shown.stdout.contains(&repo) && shown.stdout.contains(&hook.url),
        "{}",
        shown.stdout
    );
    assert!(!shown.stdout.contains(&hook.secret));

    let hello = std::fs::read(hello_bin()).unwrap();
    let files: &[(&str, &[u8], bool)] = &[
        ("Dockerfile", DOCKERFILE, false),
        ("hello", &hello, true),
        ("zeitwork.toml", MANIFEST, false),
    ];
    let first = gh
        .commit("acme/shop", "main", files, "first")
        .await
        .unwrap();
    let payload = gh.push_payload("acme/shop", "main", &first);

    // A wrong signature: 401, nothing is built.
    let (status, _) = gh
        .deliver(&hook, "push", "delivery-0", &payload, "not-the-secret")
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert!(builds(&up, "prod").await.is_empty());

    // The signed push builds the commit and serves it at the app's URL.
    let body = delivered(&gh, &hook, "delivery-1", &payload).await;
    let id = body["build_id"].as_str().unwrap().to_owned();
    let build = ended(&up, "prod", &id).await;
    assert_eq!(build["state"], "succeeded", "{build}");
    assert_eq!(build["git"]["commit"], first.commit.as_str());
    assert!(
        serves(&up, "shop-acme.zeitwork.localhost").await,
        "{}",
        up.stderr()
    );
    // GitHub redelivering it changes nothing.
    let (status, body) = gh
        .deliver(&hook, "push", "delivery-1", &payload, &hook.secret)
        .await
        .unwrap();
    assert_eq!(
        (status, &body["duplicate"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    assert_eq!(builds(&up, "prod").await.len(), 1);

    // Another commit of the same tree: not rebuilt, the image is reused.
    let again = gh
        .commit("acme/shop", "main", files, "same tree")
        .await
        .unwrap();
    assert_eq!(again.tree, first.tree);
    let again = gh.push_payload("acme/shop", "main", &again);
    let body = delivered(&gh, &hook, "delivery-2", &again).await;
    let reused = ended(&up, "prod", body["build_id"].as_str().unwrap()).await;
    assert_eq!(reused["image"], build["image"], "{reused}");
    assert!(
        reused["reason"].as_str().unwrap().contains("reused"),
        "{reused}"
    );

    // A branch: a preview env of its own at its own URL; deleting the branch removes it.
    let mut changed = files.to_vec();
    changed.push(("CHANGELOG", b"a preview\n", false));
    let feature = gh
        .commit("acme/shop", "feature/new-look", &changed, "preview me")
        .await
        .unwrap();
    let feature = gh.push_payload("acme/shop", "feature/new-look", &feature);
    let body = delivered(&gh, &hook, "delivery-3", &feature).await;
    let preview = ended(&up, "feature-new-look", body["build_id"].as_str().unwrap()).await;
    assert_eq!(preview["state"], "succeeded", "{preview}");
    let preview_host = "shop-feature-new-look-acme.zeitwork.localhost";
    assert!(serves(&up, preview_host).await, "{}", up.stderr());
    let was = gh
        .delete_branch("acme/shop", "feature/new-look")
        .await
        .unwrap();
    let deleted = gh.delete_payload("acme/shop", "feature/new-look", &was);
    delivered(&gh, &hook, "delivery-4", &deleted).await;
    let envs = up
        .cli(&[APP, &["envs", "--json"]].concat())
        .await
        .success()
        .json();
    assert_eq!(envs["envs"].as_array().unwrap().len(), 1, "{envs}");
    let gone = poll_until(WITHIN, || async {
        let body = zeitwork_e2e::nodes::http_get(&up.edge_addr(), preview_host, "/")
            .await
            .unwrap_or_default();
        (!body.contains("Hello from Zeitwork")).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the preview stops answering");
    assert!(serves(&up, "shop-acme.zeitwork.localhost").await);
}
