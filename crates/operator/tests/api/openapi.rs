use reqwest::{Method, StatusCode};

use crate::support::Platform;

/// Replaces `{param}` segments with a value so the path can be requested.
pub fn fill(path: &str, value: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { value } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let p = Platform::start().await;
    let doc = p
        .send(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let endpoints = zeitwork_operator::endpoints();
    assert!(endpoints.len() > 40, "all routes are listed");
    for e in &endpoints {
        let op = &doc.body["paths"][e.path][e.method.as_str().to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} missing from the OpenAPI document",
            e.method,
            e.path
        );
        assert_eq!(
            op["security"].is_array(),
            e.authenticated(),
            "{} {}",
            e.method,
            e.path
        );
        // Every route says what it answers when it succeeds, and every JSON answer and
        // body names a schema the document holds.
        let success: Vec<&String> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with('1') || k.starts_with('2'))
            .collect();
        assert!(
            !success.is_empty(),
            "{} {} documents no success",
            e.method,
            e.path
        );
        for schema in [
            &op["requestBody"]["content"]["application/json"]["schema"],
            &op["responses"]["200"]["content"]["application/json"]["schema"],
            &op["responses"]["201"]["content"]["application/json"]["schema"],
        ] {
            if let Some(r) = schema["$ref"].as_str() {
                let name = r.strip_prefix("#/components/schemas/").unwrap();
                assert!(
                    doc.body["components"]["schemas"][name].is_object(),
                    "{} {}: {r} is not in the document",
                    e.method,
                    e.path
                );
            }
        }
        if e.path.ends_with("/stream") {
            // An endless body: the headers show the route answered as itself.
            let resp = reqwest::Client::new()
                .get(format!("{}{}", p.base, e.path))
                .bearer_auth(&p.root)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.headers()["content-type"], "text/event-stream");
            continue;
        }
        // The route answers as itself: never the router's "no such route" fallback or 405.
        let a = p
            .send(e.method.clone(), &fill(e.path, "x"), Some(&p.root), None)
            .await;
        assert_ne!(
            a.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {}",
            e.method,
            e.path
        );
        assert_ne!(
            a.body["error"]["message"], "no such API route",
            "{} {}",
            e.method, e.path
        );
    }
    let documented: usize = doc.body["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|m| m.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        endpoints.len(),
        "nothing documented that is not mounted"
    );
    let unknown = p
        .send(Method::GET, "/api/v1/nope", Some(&p.root), None)
        .await;
    crate::support::assert_error(&unknown, StatusCode::NOT_FOUND, None);
    let wrong_method = p
        .send(Method::PATCH, "/api/v1/orgs", Some(&p.root), None)
        .await;
    crate::support::assert_error(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, None);
}

#[tokio::test]
async fn health_and_metrics_are_public() {
    let p = Platform::start().await;
    let h = p.send(Method::GET, "/health", None, None).await;
    assert_eq!(
        (h.status, h.body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    p.get("/api/v1/orgs", &p.root).await;
    let m = p.send(Method::GET, "/metrics", None, None).await;
    let text = m.body.as_str().unwrap();
    assert!(text.contains("zeitwork_api_requests_total"), "{text}");
    assert!(text.contains("route=\"/api/v1/orgs\""), "{text}");
}

/// The dashboard's client is generated from `web/openapi.json`; it must be the document
/// the operator serves. `ZEITWORK_BLESS=1 cargo test -p zeitwork-operator --test api
/// the_dashboards_copy` writes it anew after a change to the API.
#[test]
fn the_dashboards_copy_of_the_document_is_current() {
    let doc = zeitwork_operator::openapi::document(&zeitwork_operator::endpoints());
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/openapi.json");
    if std::env::var_os("ZEITWORK_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let copy = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        copy == text,
        "web/openapi.json is not the operator's document: run ZEITWORK_BLESS=1 cargo test -p zeitwork-operator --test api the_dashboards_copy, then `npm run gen` in web/"
    );
}
