//! Dashboard sessions: a token exchanged for a cookie, CSRF on every change, sign-out,
//! and the same org boundary as bearer tokens.

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::Platform;

/// Signs in with `token`: the cookie pair to send back, the CSRF token, the Set-Cookie.
async fn sign_in(p: &Platform, token: &str, https: bool) -> (String, String, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/api/v1/session", p.base))
        .json(&json!({ "token": token }));
    if https {
        req = req.header("x-forwarded-proto", "https");
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let pair = set.split(';').next().unwrap().to_owned();
    (pair, body["csrf"].as_str().unwrap().to_owned(), set)
}

async fn call(
    p: &Platform,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", p.base))
        .header(COOKIE, cookie);
    if let Some(csrf) = csrf {
        req = req.header("x-csrf-token", csrf);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn a_token_becomes_a_cookie_session_that_needs_csrf_to_change_anything() {
    let p = Platform::start().await;
    let acme = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &acme, json!({ "name": "web" }))
        .await;

    let (cookie, csrf, set) = sign_in(&p, &acme, false).await;
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    assert!(!set.contains(&acme), "the token never goes into the cookie");
    let (_, _, secure) = sign_in(&p, &acme, true).await;
    assert!(secure.ends_with("; Secure"), "{secure}");

    // Reads need only the cookie; the session says who it is and its CSRF token again.
    let (status, apps) = call(&p, Method::GET, "/api/v1/orgs/acme/apps", &cookie, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(apps["apps"][0]["name"], "web");
    let (status, session) = call(&p, Method::GET, "/api/v1/session", &cookie, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (session["csrf"].as_str(), session["whoami"]["org"].as_str()),
        (Some(csrf.as_str()), Some("acme"))
    );

    // A change without the CSRF token (what a cross-site form could send) is refused.
    let path = "/api/v1/orgs/acme/apps/web/envs";
    let (status, _) = call(&p, Method::POST, path, &cookie, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&p, Method::POST, path, &cookie, Some("wrong")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", p.base))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({ "name": "staging" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Sign-out ends it (and needs the CSRF token too).
    let (status, _) = call(&p, Method::DELETE, "/api/v1/session", &cookie, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&p, Method::DELETE, "/api/v1/session", &cookie, Some(&csrf)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&p, Method::GET, "/api/v1/orgs/acme/apps", &cookie, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_session_sees_its_org_only_and_dies_with_its_token() {
    let p = Platform::start().await;
    let acme = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &acme, json!({ "name": "web" }))
        .await;
    p.org("other").await;
    let other = p.token("other", "reader").await;
    let (cookie, _, _) = sign_in(&p, &other, false).await;
    let (status, _) = call(&p, Method::GET, "/api/v1/orgs/acme/apps", &cookie, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another org's apps do not exist for it"
    );

    let bad = reqwest::Client::new()
        .post(format!("{}/api/v1/session", p.base))
        .json(&json!({ "token": "zw_nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.headers().get(SET_COOKIE).is_none());
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["field"], "token");

    // Revoking the token ends the sessions it opened.
    let (cookie, _, _) = sign_in(&p, &acme, false).await;
    let tokens = p.get("/api/v1/orgs/acme/tokens", &p.root).await;
    let id = tokens.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] != "bootstrap")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = p
        .send(
            Method::DELETE,
            &format!("/api/v1/orgs/acme/tokens/{id}"),
            Some(&p.root),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let (status, _) = call(&p, Method::GET, "/api/v1/orgs/acme/apps", &cookie, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_dashboard_is_served_with_a_strict_policy_and_api_paths_stay_json() {
    let p = Platform::start().await;
    let page = reqwest::get(format!("{}/orgs/acme/apps", p.base))
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let api = reqwest::get(format!("{}/api/v1/nope", p.base))
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert_eq!(api.headers()["content-type"], "application/json");
}
