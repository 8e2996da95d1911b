//! The platform registry's token service: what each caller is granted of the scopes it
//! asks for (the registry itself enforces the grant; `e2e --test registry` runs it).

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Platform, assert_error, with_registry};

const REGISTRY: &str = "127.0.0.1:5000";

/// The `access` claim of a token answer.
fn access(answer: &Value) -> Value {
    let token = answer["token"].as_str().expect("a token");
    assert_eq!(answer["access_token"], answer["token"]);
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    claims["access"].clone()
}

/// Asks for `scopes` with `secret` as the basic-auth password.
async fn ask(p: &Platform, secret: &str, scopes: &[&str]) -> crate::support::Answer {
    let mut url = "/api/v1/registry/token?service=zeitwork-registry&account=zeitwork".to_owned();
    for s in scopes {
        url.push_str(&format!("&scope={s}"));
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("zeitwork:{secret}"));
    p.send_with_header(
        Method::GET,
        &url,
        ("authorization", &format!("Basic {basic}")),
    )
    .await
}

#[tokio::test]
async fn each_caller_is_granted_its_own_repositories_only() {
    let p = Platform::start_with(with_registry(REGISTRY)).await;
    let acme = p.org("acme").await;
    let reader = p.token("acme", "reader").await;
    p.org("umbrella").await;
    let both = [
        "repository:acme/web:pull,push,delete",
        "repository:umbrella/web:pull",
    ];

    let a = ask(&p, &acme, &both).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(
        access(&a.body),
        json!([{"type": "repository", "name": "acme/web", "actions": ["pull", "push", "delete"]}])
    );
    assert!(a.body["expires_in"].as_u64().unwrap() <= 300);
    let r = ask(&p, &reader, &both).await;
    assert_eq!(
        access(&r.body),
        json!([{"type": "repository", "name": "acme/web", "actions": ["pull"]}])
    );
    let root = ask(&p, &p.root, &both).await;
    assert_eq!(access(&root.body).as_array().unwrap().len(), 2);

    // A node pulls the images placed on it, and nothing else.
    let node = p.enroll("n1", 4096).await;
    let n = ask(&p, &node.credential, &["repository:acme/web:pull,push"]).await;
    assert_eq!(access(&n.body), json!([]), "nothing placed on it yet");
    p.post("/api/v1/orgs/acme/apps", &acme, json!({"name": "web"}))
        .await;
    let digest = format!("sha256:{}", "ab".repeat(32));
    let manifest = "version = 1\napp = \"web\"\n[processes.web]\nport = 8080\n";
    let deployed = p
        .post(
            "/api/v1/orgs/acme/apps/web/envs/prod/deployments",
            &acme,
            json!({"image": format!("{REGISTRY}/acme/web:v1@{digest}"), "manifest": manifest}),
        )
        .await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{:?}", deployed.body);
    let n = ask(
        &p,
        &node.credential,
        &[
            "repository:acme/web:pull,push",
            "repository:acme/other:pull",
        ],
    )
    .await;
    assert_eq!(
        access(&n.body),
        json!([{"type": "repository", "name": "acme/web", "actions": ["pull"]}])
    );

    // No credential, a wrong one, another service, a bad scope: refused, named.
    let none = p
        .send(
            Method::GET,
            "/api/v1/registry/token?service=zeitwork-registry",
            None,
            None,
        )
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{:?}", none.body);
    assert_eq!(
        ask(&p, "zw_wrong", &both).await.status,
        StatusCode::UNAUTHORIZED
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("zeitwork:{acme}"));
    let auth = ("authorization", format!("Basic {basic}"));
    for (query, field) in [
        ("service=docker-hub", "service"),
        ("scope=repository:Acme/web:pull", "scope"),
        ("scope=registry:catalog:*", "scope"),
        ("scop=repository:acme/web:pull", "scop"),
    ] {
        let a = p
            .send_with_header(
                Method::GET,
                &format!("/api/v1/registry/token?{query}"),
                (auth.0, &auth.1),
            )
            .await;
        assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
    }
    let info = p.get("/api/v1/registry", &acme).await;
    assert_eq!(info.body["address"], REGISTRY, "{:?}", info.body);
}

#[tokio::test]
async fn without_a_registry_the_token_service_says_so() {
    let p = Platform::start().await;
    let a = p.get("/api/v1/registry/token", &p.root).await;
    assert_error(&a, StatusCode::NOT_FOUND, None);
}
