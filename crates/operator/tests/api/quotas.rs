//! Per-org quotas: instances and memory (deploy and scale), routes and `tcp` routes,
//! domains. Going past one is refused with 403 `quota_exceeded` naming the field, and
//! writes nothing; another org is not affected.

use reqwest::StatusCode;
use serde_json::json;
use zeitwork_operator::{Config, Quotas};

use crate::support::{Platform, assert_error, config, image};

const ENV: &str = "/api/v1/orgs/acme/apps/web/envs/prod";

fn manifest(instances: u32, memory_mb: u32) -> String {
    format!(
        "version = 1\napp = \"web\"\n[processes.web]\nport = 8080\ninstances = {instances}\nmemory_mb = {memory_mb}\n"
    )
}

#[tokio::test]
async fn an_org_cannot_go_past_its_quotas_and_others_are_untouched() {
    let p = Platform::start_with(Config {
        quotas: Quotas {
            instances: 3,
            memory_mb: 1024,
            routes: 2,
            tcp_routes: 1,
            domains: 1,
        },
        ..config()
    })
    .await;
    let node = json!({"name": "n1", "region": "local", "cpus": 8, "memory_mb": 65536, "addresses": ["10.0.0.1"]});
    assert_eq!(
        p.post("/api/v1/nodes", &p.root, node).await.status,
        StatusCode::CREATED
    );
    let t = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &t, json!({"name": "web"}))
        .await;
    let deploy =
        |instances, memory| json!({"image": image(1), "manifest": manifest(instances, memory)});
    let deployments = format!("{ENV}/deployments");

    // Instances and memory, at deploy time.
    let too_many = p.post(&deployments, &t, deploy(4, 128)).await;
    assert_error(&too_many, StatusCode::FORBIDDEN, Some("instances"));
    assert_eq!(too_many.body["error"]["code"], "quota_exceeded");
    let too_big = p.post(&deployments, &t, deploy(3, 512)).await;
    assert_error(&too_big, StatusCode::FORBIDDEN, Some("memory_mb"));
    assert_eq!(p.count("deployment_created").await, 0, "nothing written");
    let fits = p.post(&deployments, &t, deploy(3, 256)).await;
    assert_eq!(fits.status, StatusCode::CREATED, "{:?}", fits.body);
    // A new deploy replaces the env's instances: it is judged without them.
    let again = p.post(&deployments, &t, deploy(2, 256)).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);

    // Scaling past the quota.
    let scaled = p
        .post(
            &format!("{ENV}/scale"),
            &t,
            json!({"process": "web", "instances": 4}),
        )
        .await;
    assert_error(&scaled, StatusCode::FORBIDDEN, Some("instances"));
    let scaled = p
        .post(
            &format!("{ENV}/scale"),
            &t,
            json!({"process": "web", "instances": 3}),
        )
        .await;
    assert_eq!(scaled.status, StatusCode::OK, "{:?}", scaled.body);

    // Routes: one tcp route, two routes in all.
    let routes = format!("{ENV}/routes");
    let tcp = json!({"process": "web", "port": 5432, "mode": "tcp"});
    assert_eq!(
        p.post(&routes, &t, tcp.clone()).await.status,
        StatusCode::CREATED
    );
    assert_error(
        &p.post(&routes, &t, tcp).await,
        StatusCode::FORBIDDEN,
        Some("mode"),
    );

    // Domains.
    let domains = format!("{ENV}/domains");
    let one = p
        .post(&domains, &t, json!({"hostname": "shop.example.com"}))
        .await;
    assert_eq!(one.status, StatusCode::CREATED, "{:?}", one.body);
    assert_error(
        &p.post(&domains, &t, json!({"hostname": "www.example.com"}))
            .await,
        StatusCode::FORBIDDEN,
        Some("hostname"),
    );

    // Another org has quotas of its own.
    let other = p.org("other").await;
    p.post("/api/v1/orgs/other/apps", &other, json!({"name": "web"}))
        .await;
    let theirs = p
        .post(
            "/api/v1/orgs/other/apps/web/envs/prod/deployments",
            &other,
            json!({"image": image(1), "manifest": manifest(3, 256)}),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{:?}", theirs.body);
}
