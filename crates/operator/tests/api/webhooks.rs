//! Apps connected to a repository, and GitHub's deliveries (sent by the GitHub stand-in
//! exactly as GitHub sends them): nothing is read before the signature matches, each
//! delivery acts once, pushes build (production branch → prod, others → previews) and a
//! deleted branch takes its preview with it.

use reqwest::StatusCode;
use serde_json::json;
use zeitwork_services::{GitHubStandIn, Hook, Pushed};

use crate::support::{Platform, assert_error, with_registry};

const REGISTRY: &str = "127.0.0.1:5000";
const APP: &str = "/api/v1/orgs/acme/apps/web";

fn pushed(n: u8, tree: u8) -> Pushed {
    Pushed {
        before: "0".repeat(40),
        commit: format!("{n:02x}").repeat(20),
        tree: format!("{tree:02x}").repeat(20),
    }
}

#[tokio::test]
async fn github_deliveries_with_the_stand_in_are_checked_handled_once_and_build_pushes() {
    let p = Platform::start_with(with_registry(REGISTRY)).await;
    let acme = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &acme, json!({"name": "web"}))
        .await;
    let gh = GitHubStandIn::start().await.unwrap();
    let url = gh.clone_url("acme/web");
    let repository = format!("{APP}/repository");

    // Bad connections are refused, naming the field.
    for (body, field) in [
        (json!({"url": "file:///srv/web"}), Some("url")),
        (json!({"url": "ext::sh -c id"}), Some("url")),
        (json!({"url": url, "branch": "a..b"}), Some("branch")),
        (json!({"url": url, "token": "two words"}), Some("token")),
        (json!({"url": url, "secret": "mine"}), Some("secret")),
    ] {
        let a = p.put(&repository, &acme, body).await;
        assert!(a.status.is_client_error(), "{:?}", a.body);
        assert_error(&a, a.status, field);
    }
    let viewer = p.token("acme", "reader").await;
    assert_error(
        &p.put(&repository, &viewer, json!({"url": url})).await,
        StatusCode::FORBIDDEN,
        None,
    );
    let connected = p
        .put(
            &repository,
            &acme,
            json!({"url": url, "token": "ghp_fetch"}),
        )
        .await;
    assert_eq!(connected.status, StatusCode::OK, "{:?}", connected.body);
    let secret = connected.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    assert_eq!(connected.body["repository"]["branch"], "main");
    let hook = Hook {
        url: format!(
            "{}{}",
            p.base,
            connected.body["webhook_path"].as_str().unwrap()
        ),
        secret: secret.clone(),
    };
    // The secret is shown once: neither the connection nor the log shows it again.
    let shown = p.get(&repository, &viewer).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(
        !shown.body.to_string().contains(&secret),
        "{:?}",
        shown.body
    );
    assert!(!shown.body.to_string().contains("sealed"));
    let events = p.get("/api/v1/events?limit=500", &acme).await.body;
    let text = events.to_string();
    assert!(!text.contains(&secret) && !text.contains("ghp_fetch"));
    assert!(text.contains("repository_connected"));

    // Not signed by the hook's secret: 401, and nothing is stored.
    let head = p.head().await;
    let main = gh.push_payload("acme/web", "main", &pushed(1, 0xa1));
    let (status, _) = gh
        .deliver(&hook, "push", "d-0", &main, "wrong")
        .await
        .unwrap();
    assert_eq!(status, 401);
    let unknown = Hook {
        url: format!("{}/api/v1/webhooks/github?hook={}", p.base, uuid_like()),
        secret: secret.clone(),
    };
    let (status, _) = gh
        .deliver(&unknown, "push", "d-0", &main, &secret)
        .await
        .unwrap();
    assert_eq!(status, 401);
    let bare = Hook {
        url: format!("{}/api/v1/webhooks/github", p.base),
        secret: secret.clone(),
    };
    let (status, _) = gh
        .deliver(&bare, "push", "d-0", &main, &secret)
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert_eq!(p.head().await, head, "nothing was written");

    // ping is answered; a redelivery acts no more.
    let (status, body) = gh
        .deliver(
            &hook,
            "ping",
            "d-ping",
            &json!({"zen": "Design for failure.", "hook_id": 1}),
            &secret,
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["message"].as_str()),
        (200, Some("pong")),
        "{body:?}"
    );
    let (status, body) = gh
        .deliver(&hook, "ping", "d-ping", &json!({"zen": "x"}), &secret)
        .await
        .unwrap();
    assert_eq!(
        (status, &body["duplicate"]),
        (200, &json!(true)),
        "{body:?}"
    );
    // Signed but not a push payload: 400, and GitHub may deliver it again.
    let (status, _) = gh
        .deliver(&hook, "push", "d-bad", &json!("not a payload"), &secret)
        .await
        .unwrap();
    assert_eq!(status, 400);
    // No node can build yet: the delivery fails (GitHub shows it) and is not recorded.
    let (status, body) = gh
        .deliver(&hook, "push", "d-1", &main, &secret)
        .await
        .unwrap();
    assert_eq!(status, 503, "{body:?}");

    let n1 = p.enroll("n1", 4096).await;
    p.keep_alive(&n1);
    // Tags, other repositories and forks: 202 with why, nothing built.
    let mut tag = main.clone();
    tag["ref"] = json!("refs/tags/v1");
    let mut other = main.clone();
    other["repository"]["clone_url"] = json!(gh.clone_url("acme/other"));
    other["repository"]["git_url"] = json!(gh.clone_url("acme/other"));
    other["repository"]["html_url"] = json!("https://github.com/acme/other");
    other["repository"]["ssh_url"] = json!("git@github.com:acme/other.git");
    let mut fork = other.clone();
    fork["repository"]["fork"] = json!(true);
    for (payload, why) in [
        (&tag, "not a branch"),
        (&other, "not the connected"),
        (&fork, "fork"),
    ] {
        let (status, body) = gh
            .deliver(&hook, "push", why, payload, &secret)
            .await
            .unwrap();
        assert_eq!(status, 202, "{body:?}");
        assert!(body["message"].as_str().unwrap().contains(why), "{body:?}");
    }
    let (status, body) = gh
        .deliver(&hook, "issues", "d-issue", &json!({}), &secret)
        .await
        .unwrap();
    assert_eq!(status, 202, "{body:?}");
    assert!(
        p.get(&format!("{APP}/envs/prod/builds"), &acme).await.body["builds"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The production branch builds into prod: the node fetches the commit itself.
    let (status, body) = gh
        .deliver(&hook, "push", "d-1", &main, &secret)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body:?}");
    let build = body["build_id"].as_str().unwrap().to_owned();
    let desired = p.get(&n1.path("desired"), &n1.credential).await.body;
    let told = &desired["builds"][0];
    assert_eq!(told["build_id"], build.as_str());
    assert_eq!(told["git"]["url"], url.as_str());
    assert_eq!(told["git"]["commit"], "01".repeat(20));
    assert_eq!(told["git"]["tree"], "a1".repeat(20));
    assert_eq!(told["git_token"], "ghp_fetch");
    // It succeeds with the commit's own zeitwork.toml, which the release then carries.
    let state = format!("{}/{build}/state", n1.path("builds").trim_end_matches('/'));
    let image = format!("{REGISTRY}/acme/web:build-1@sha256:{}", "c1".repeat(32));
    let own =
        "version = 1\napp = \"web\"\nenv = { FROM = \"repo\" }\n[processes.web]\nport = 8080\n";
    let done = p
        .post(
            &state,
            &n1.credential,
            json!({"state": "succeeded", "image": image, "manifest": own}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    let releases = p.get(&format!("{APP}/releases"), &acme).await.body;
    assert_eq!(releases["releases"][0]["manifest"]["env"]["FROM"], "repo");

    // Another commit with the same tree: nothing builds, the image is reused.
    let mut same_tree = pushed(2, 0xa1);
    same_tree.before = "01".repeat(20);
    let again = gh.push_payload("acme/web", "main", &same_tree);
    let (status, body) = gh
        .deliver(&hook, "push", "d-2", &again, &secret)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body:?}");
    let reused = p
        .get(
            &format!(
                "{APP}/envs/prod/builds/{}",
                body["build_id"].as_str().unwrap()
            ),
            &acme,
        )
        .await
        .body;
    assert_eq!(reused["state"], "succeeded", "{reused:?}");
    assert_eq!(reused["image"], image.as_str());
    assert!(
        p.get(&n1.path("desired"), &n1.credential).await.body["builds"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Another branch gets a preview env of its own, named after it; deleting the branch
    // deletes it.
    let feature = gh.push_payload("acme/web", "feature/Login_Page", &pushed(3, 0xb2));
    let (status, body) = gh
        .deliver(&hook, "push", "d-3", &feature, &secret)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body:?}");
    let env = p
        .get(&format!("{APP}/envs/feature-login-page"), &acme)
        .await;
    assert_eq!(env.status, StatusCode::OK, "{:?}", env.body);
    assert_eq!(env.body["preview_of"], "feature/Login_Page");
    let builds = p
        .get(&format!("{APP}/envs/feature-login-page/builds"), &acme)
        .await
        .body;
    assert_eq!(builds["builds"][0]["id"], body["build_id"]);
    // A branch whose name is a non-preview env's is not built over it.
    let hijack = gh.push_payload("acme/web", "prod", &pushed(4, 0xb3));
    let (status, body) = gh
        .deliver(&hook, "push", "d-4", &hijack, &secret)
        .await
        .unwrap();
    assert_eq!(status, 202, "{body:?}");
    let gone = gh.delete_payload("acme/web", "feature/Login_Page", &"03".repeat(20));
    let (status, body) = gh
        .deliver(&hook, "push", "d-5", &gone, &secret)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body:?}");
    assert_error(
        &p.get(&format!("{APP}/envs/feature-login-page"), &acme)
            .await,
        StatusCode::NOT_FOUND,
        None,
    );
    let deleted_main = gh.delete_payload("acme/web", "main", &"02".repeat(20));
    let (status, body) = gh
        .deliver(&hook, "push", "d-6", &deleted_main, &secret)
        .await
        .unwrap();
    assert_eq!(status, 202, "{body:?}");
    assert!(body["message"].as_str().unwrap().contains("keeps serving"));

    // Disconnected: the hook no longer exists.
    let a = p
        .send(reqwest::Method::DELETE, &repository, Some(&acme), None)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    let (status, _) = gh
        .deliver(&hook, "ping", "d-7", &json!({}), &secret)
        .await
        .unwrap();
    assert_eq!(status, 401);
    p.assert_rebuild_is_exact().await;
}

/// A well-formed hook id no connection has.
fn uuid_like() -> &'static str {
    "0190d6a4-7c1e-7aa0-9c3b-5f0b8c1d2e3f"
}
