//! A token of org B walks every route with org A's names in the path: it must learn
//! nothing (404) and change nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::openapi::fill;
use crate::support::{Platform, image};

#[tokio::test]
async fn another_orgs_token_gets_404_on_every_route_of_the_org() {
    let p = Platform::start().await;
    let a = p.org("alpha").await;
    let b = p.org("bravo").await;
    // Give org A one of everything.
    assert_eq!(
        p.post("/api/v1/orgs/alpha/apps", &a, json!({"name": "web"}))
            .await
            .status,
        StatusCode::CREATED
    );
    let env = "/api/v1/orgs/alpha/apps/web/envs/prod";
    let deployed = p
        .post(
            &format!("{env}/deployments"),
            &a,
            json!({"image": image(1)}),
        )
        .await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{:?}", deployed.body);
    let secret = p
        .send(
            reqwest::Method::PUT,
            &format!("{env}/secrets/KEY"),
            Some(&a),
            Some(&json!({"value": "v"})),
        )
        .await;
    assert_eq!(secret.status, StatusCode::OK);
    let before = p.head().await;

    for e in zeitwork_operator::endpoints()
        .iter()
        .filter(|e| e.path.contains("{org}"))
    {
        let path = e
            .path
            .replace("{org}", "alpha")
            .replace("{app}", "web")
            .replace("{env}", "prod")
            .replace("{name}", "KEY")
            .replace("{number}", "1");
        let path = fill(&path, "00000000-0000-0000-0000-000000000000");
        let body = json!({});
        let answer = p.send(e.method.clone(), &path, Some(&b), Some(&body)).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{} {path} answered {:?}",
            e.method,
            answer.body
        );
        assert_eq!(
            answer.body["error"]["message"], "org not found",
            "{} {path}",
            e.method
        );
    }
    assert_eq!(p.head().await, before, "org B changed nothing");

    // Lists outside the org path never show A's things to B.
    let orgs = p.get("/api/v1/orgs", &b).await;
    assert_eq!(orgs.body["orgs"].as_array().unwrap().len(), 1);
    assert_eq!(orgs.body["orgs"][0]["name"], "bravo");
    let events = p.get("/api/v1/events?limit=1000", &b).await;
    let text = events.body.to_string();
    assert!(
        !text.contains("alpha") && !text.contains("\"web\""),
        "B saw A's events: {text}"
    );
    let all = p.get("/api/v1/events?limit=1000", &p.root).await;
    assert!(
        all.body.to_string().contains("alpha"),
        "the platform token sees everything"
    );
}

#[tokio::test]
async fn roles_limit_what_a_token_may_do() {
    let p = Platform::start().await;
    let admin = p.org("acme").await;
    let reader = p.token("acme", "reader").await;
    let deployer = p.token("acme", "deployer").await;
    assert_eq!(
        p.post("/api/v1/orgs/acme/apps", &admin, json!({"name": "web"}))
            .await
            .status,
        StatusCode::CREATED
    );

    let env = "/api/v1/orgs/acme/apps/web/envs/prod";
    assert_eq!(
        p.get("/api/v1/orgs/acme/apps", &reader).await.status,
        StatusCode::OK
    );
    let denied = p
        .post(
            &format!("{env}/deployments"),
            &reader,
            json!({"image": image(1)}),
        )
        .await;
    crate::support::assert_error(&denied, StatusCode::FORBIDDEN, None);
    let ok = p
        .post(
            &format!("{env}/deployments"),
            &deployer,
            json!({"image": image(1)}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);
    let denied = p
        .post("/api/v1/orgs/acme/apps", &deployer, json!({"name": "api"}))
        .await;
    crate::support::assert_error(&denied, StatusCode::FORBIDDEN, None);
    let denied = p
        .post(
            "/api/v1/orgs/acme/tokens",
            &deployer,
            json!({"name": "x", "role": "admin"}),
        )
        .await;
    crate::support::assert_error(&denied, StatusCode::FORBIDDEN, None);
    // Org admins are still not platform operators.
    let denied = p
        .post("/api/v1/orgs", &admin, json!({"name": "other"}))
        .await;
    crate::support::assert_error(&denied, StatusCode::FORBIDDEN, None);
    let denied = p
        .post("/api/v1/regions", &admin, json!({"name": "eu"}))
        .await;
    crate::support::assert_error(&denied, StatusCode::FORBIDDEN, None);

    // A revoked token stops working at once.
    let tokens = p.get("/api/v1/orgs/acme/tokens", &admin).await;
    let reader_id = tokens.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "reader")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = p
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/orgs/acme/tokens/{reader_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    crate::support::assert_error(
        &p.get("/api/v1/orgs/acme/apps", &reader).await,
        StatusCode::UNAUTHORIZED,
        None,
    );
}

#[tokio::test]
async fn node_details_are_for_platform_tokens_only() {
    let p = Platform::start().await;
    let t = p.org("alpha").await;
    p.enroll("n1", 1024).await;
    for path in ["/api/v1/nodes", "/api/v1/nodes/n1"] {
        let refused = p.get(path, &t).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{path}: {:?}",
            refused.body
        );
        assert!(
            !refused.body.to_string().contains("10.0.0.1"),
            "{:?}",
            refused.body
        );
        let shown = p.get(path, &p.root).await;
        assert_eq!(shown.status, StatusCode::OK, "{path}: {:?}", shown.body);
    }
    let regions = p.get("/api/v1/regions", &t).await;
    assert_eq!(regions.status, StatusCode::OK, "{:?}", regions.body);
    assert_eq!(regions.body["regions"][0]["name"], "local");
}
