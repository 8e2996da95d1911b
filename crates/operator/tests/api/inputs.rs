//! Each class of bad input gets a clear 4xx in the one error shape, and writes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Platform, assert_error};

async fn raw(
    p: &Platform,
    path: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> crate::support::Answer {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", p.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.json().await.unwrap_or_default();
    crate::support::Answer { status, body }
}

#[tokio::test]
async fn bad_input_is_rejected_cleanly_and_nothing_is_half_written() {
    let p = Platform::start().await;
    let t = p.org("acme").await;
    let apps = "/api/v1/orgs/acme/apps";
    let before = p.head().await;

    assert_error(
        &raw(&p, apps, &t, "application/json", b"{\"name\":".to_vec()).await,
        StatusCode::BAD_REQUEST,
        None,
    );
    assert_error(
        &raw(&p, apps, &t, "text/plain", b"name=web".to_vec()).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        None,
    );
    let huge = format!("{{\"name\":\"{}\"}}", "a".repeat(2 << 20)).into_bytes();
    assert_error(
        &raw(&p, apps, &t, "application/json", huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
    );
    for bad in ["Web", "-web", "web_1", "", &"a".repeat(28)] {
        assert_error(
            &p.post(apps, &t, json!({"name": bad})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("name"),
        );
    }
    assert_error(
        &p.post(apps, &t, json!({"name": "web", "nmae": 1})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
    );
    assert_error(
        &p.post(apps, &t, json!({"name": 5})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("name"),
    );
    assert_error(
        &p.send(Method::GET, apps, None, None).await,
        StatusCode::UNAUTHORIZED,
        None,
    );
    assert_error(
        &p.get(apps, "zw_not-a-real-token").await,
        StatusCode::UNAUTHORIZED,
        None,
    );
    assert_eq!(p.head().await, before, "no rejected request wrote an event");

    assert_eq!(
        p.post(apps, &t, json!({"name": "web"})).await.status,
        StatusCode::CREATED
    );
    let after_create = p.head().await;
    assert_error(
        &p.post(apps, &t, json!({"name": "web"})).await,
        StatusCode::CONFLICT,
        Some("name"),
    );
    assert_eq!(p.head().await, after_create, "the duplicate wrote nothing");
    let env = "/api/v1/orgs/acme/apps/web/envs/prod";
    let bad_manifest = json!({"image": crate::support::image(1), "manifest": "version = 1\napp = \"web\"\n[processes.web]\nmemroy_mb = 5\n"});
    assert_error(
        &p.post(&format!("{env}/deployments"), &t, bad_manifest)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("manifest.processes.web.memroy_mb"),
    );
    let unpinned = json!({"image": "hello:latest"});
    assert_error(
        &p.post(&format!("{env}/deployments"), &t, unpinned).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("image"),
    );
    let wrong_app = json!({"image": crate::support::image(1), "manifest": "version = 1\napp = \"api\"\n[processes.web]\n"});
    assert_error(
        &p.post(&format!("{env}/deployments"), &t, wrong_app).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("manifest.app"),
    );
    let bad_route = json!({"process": "web", "port": 8080, "mode": "tcp", "host": "a.example.com"});
    assert_error(
        &p.post(&format!("{env}/routes"), &t, bad_route).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("host"),
    );
    assert_error(
        &p.get("/api/v1/events?limit=0", &t).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("limit"),
    );
    assert_eq!(
        p.head().await,
        after_create,
        "no invalid deploy or route wrote anything"
    );
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_answer() {
    let p = Platform::start().await;
    let t = p.org("acme").await;
    let send = |body: serde_json::Value| {
        reqwest::Client::new()
            .post(format!("{}/api/v1/orgs/acme/apps", p.base))
            .bearer_auth(&t)
            .header("idempotency-key", "create-web-1")
            .json(&body)
            .send()
    };
    let first = send(json!({"name": "web"})).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: serde_json::Value = first.json().await.unwrap();
    let head = p.head().await;
    let again = send(json!({"name": "web"})).await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replay"], "true");
    assert_eq!(again.json::<serde_json::Value>().await.unwrap(), first);
    assert_eq!(p.head().await, head, "the retry created nothing");
    let other = send(json!({"name": "api"})).await.unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let apps = p.get("/api/v1/orgs/acme/apps", &t).await;
    assert_eq!(apps.body["apps"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn replay_records_never_hold_a_token_secret_and_expire() {
    let p = Platform::start().await;
    let t = p.org("acme").await;
    let send = |key: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/api/v1/orgs/acme/tokens", p.base))
            .bearer_auth(&t)
            .header("idempotency-key", key)
            .json(&json!({"name": "ci", "role": "deployer"}))
            .send()
    };
    let first: serde_json::Value = send("token-1").await.unwrap().json().await.unwrap();
    let secret = first["secret"].as_str().unwrap().to_owned();
    let kept: Vec<String> = sqlx::query_scalar("SELECT body::text FROM idempotency_keys")
        .fetch_all(p.store.pool())
        .await
        .unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        !kept[0].contains(&secret),
        "a replay record holds the secret: {kept:?}"
    );

    let head = p.head().await;
    let again = send("token-1").await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replay"], "true");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["token"], first["token"]);
    assert!(again["secret"].is_null(), "{again}");
    assert!(
        again["secret_note"]
            .as_str()
            .unwrap()
            .contains("shown once"),
        "{again}"
    );
    assert_eq!(p.head().await, head, "the retry created nothing");

    // A day later the key is forgotten: pruned, and a retry is a new request.
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        .execute(p.store.pool())
        .await
        .unwrap();
    let later = send("token-1").await.unwrap();
    assert!(later.headers().get("idempotent-replay").is_none());
    let later: serde_json::Value = later.json().await.unwrap();
    assert_ne!(later["token"]["id"], first["token"]["id"]);
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        .execute(p.store.pool())
        .await
        .unwrap();
    assert_eq!(
        zeitwork_store::idempotency::prune(p.store.pool())
            .await
            .unwrap(),
        1
    );
}

/// A duration that once parsed as finite and reached the log as infinity (`"1e308m"`,
/// stored as `"infs"`, after which the log could not be read) is refused where it
/// enters, naming the field, and nothing is written; the log stays readable.
#[tokio::test]
async fn durations_that_cannot_round_trip_are_refused_where_they_enter() {
    let p = Platform::start().await;
    let admin = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &admin, json!({"name": "web"}))
        .await;
    let env = "/api/v1/orgs/acme/apps/web/envs/prod";
    let head = p.head().await;
    for (policy, field) in [
        (
            json!({"cors": {"origins": ["*"], "max_age": "1e308m"}}),
            "policy.cors.max_age",
        ),
        (json!({"timeout": "inf"}), "policy.timeout"),
        (json!({"timeout": 1e300}), "policy.timeout"),
        (json!({"timeout": "2h"}), "policy.timeout"),
        (json!({"max_body_mb": 1e19}), "policy.max_body_mb"),
        (
            json!({"rate_limit": {"per_client": 4294967295u32}}),
            "policy.rate_limit",
        ),
    ] {
        let route = json!({"process": "web", "port": 5432, "mode": "tcp", "policy": policy});
        let a = p.post(&format!("{env}/routes"), &admin, route).await;
        assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
    }
    for (health, field) in [
        (
            "interval = \"1e308m\"",
            "manifest.processes.web.health.interval",
        ),
        ("timeout = \"NaN\"", "manifest.processes.web.health.timeout"),
    ] {
        let manifest = format!(
            "version = 1\napp = \"web\"\n[processes.web]\nport = 8080\n[processes.web.health]\n{health}\n"
        );
        let a = p
            .post(
                &format!("{env}/deployments"),
                &admin,
                json!({"image": crate::support::image(1), "manifest": manifest}),
            )
            .await;
        assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
    }
    assert_eq!(p.head().await, head, "nothing was written");
    let events = p.get("/api/v1/events?limit=1000", &p.root).await;
    assert_eq!(events.status, StatusCode::OK, "{:?}", events.body);
}
