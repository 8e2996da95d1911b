//! Secret values are write-only, versioned, and never stored or logged in the clear.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Platform, assert_error};

#[tokio::test]
async fn secrets_are_write_only_and_encrypted_at_rest() {
    let p = Platform::start().await;
    let t = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &t, json!({"name": "web"}))
        .await;
    let path = "/api/v1/orgs/acme/apps/web/envs/prod/secrets";
    const VALUE: &str = "postgres://user:hunter2-very-secret@db/prod";
    for version in 1..=2 {
        let set = p
            .send(
                Method::PUT,
                &format!("{path}/DATABASE_URL"),
                Some(&t),
                Some(&json!({"value": VALUE})),
            )
            .await;
        assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
        assert_eq!(set.body["version"], version);
        assert!(set.body.get("value").is_none());
    }
    let list = p.get(path, &t).await;
    assert_eq!(list.body["secrets"][0]["name"], "DATABASE_URL");
    assert!(!list.body.to_string().contains("hunter2"));

    // Neither the projection nor the event log holds the plaintext.
    let (rows,): (String,) =
        sqlx::query_as("SELECT coalesce(string_agg(ciphertext, ''), '') FROM secrets")
            .fetch_one(p.store.pool())
            .await
            .unwrap();
    assert!(!rows.is_empty() && !rows.contains("hunter2"));
    let (log,): (String,) = sqlx::query_as("SELECT string_agg(payload::text, '') FROM events")
        .fetch_one(p.store.pool())
        .await
        .unwrap();
    assert!(log.contains("DATABASE_URL") && !log.contains("hunter2"));
    let events = p.get("/api/v1/events?limit=1000", &t).await;
    assert!(!events.body.to_string().contains("hunter2"));

    let bad = p
        .send(
            Method::PUT,
            &format!("{path}/ZEITWORK_TOKEN"),
            Some(&t),
            Some(&json!({"value": "x"})),
        )
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, Some("name"));
    let gone = p
        .send(
            Method::DELETE,
            &format!("{path}/DATABASE_URL"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_error(
        &p.send(
            Method::DELETE,
            &format!("{path}/DATABASE_URL"),
            Some(&t),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        None,
    );
}
