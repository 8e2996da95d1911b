//! Per-org quotas: instances and memory (deploy and scale), routes and `tcp` routes,
//! domains. Going past one is refused with 403 `quota_exceeded` naming the field, and
//! writes nothing; another org is not affected. A platform admin sets one org's own
//! quotas, which win over the platform's for that org alone.

use reqwest::StatusCode;
use serde_json::json;
use zeitwork_core::Quotas;
use zeitwork_operator::Config;

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
            registry_mb: 1,
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

#[tokio::test]
async fn a_platform_admin_sets_one_orgs_own_quotas() {
    let p = Platform::start_with(Config {
        quotas: Quotas {
            instances: 2,
            ..Quotas::default()
        },
        ..config()
    })
    .await;
    let node = json!({"name": "n1", "region": "local", "cpus": 8, "memory_mb": 65536, "addresses": ["10.0.0.1"]});
    p.post("/api/v1/nodes", &p.root, node).await;
    let t = p.org("acme").await;
    let other = p.org("other").await;
    for (org, token) in [("acme", &t), ("other", &other)] {
        p.post(
            &format!("/api/v1/orgs/{org}/apps"),
            token,
            json!({"name": "web"}),
        )
        .await;
    }
    let deploy = json!({"image": image(1), "manifest": manifest(5, 128)});
    let deployments = format!("{ENV}/deployments");
    assert_error(
        &p.post(&deployments, &t, deploy.clone()).await,
        StatusCode::FORBIDDEN,
        Some("instances"),
    );

    // The org itself may read its quotas, not set them.
    let quotas = "/api/v1/orgs/acme/quotas";
    let shown = p.get(quotas, &t).await;
    assert_eq!(shown.status, StatusCode::OK, "{:?}", shown.body);
    assert_eq!(shown.body["quotas"]["instances"], 2);
    assert_eq!(shown.body["own"]["instances"], serde_json::Value::Null);
    assert_eq!(shown.body["usage"]["instances"], 0);
    let raise = json!({"instances": 5, "domains": 0});
    assert_error(
        &p.put(quotas, &t, raise.clone()).await,
        StatusCode::FORBIDDEN,
        None,
    );
    // Bad input: named, and nothing written.
    let head = p.head().await;
    for (body, field) in [
        (json!({"instances": 100_001}), "instances"),
        (json!({"memory_mb": -1}), "memory_mb"),
        (json!({"instance": 5}), "instance"),
        (json!({"routes": 1.5}), "routes"),
    ] {
        let a = p.put(quotas, &p.root, body.clone()).await;
        assert!(a.status.is_client_error(), "{body}: {:?}", a.body);
        assert_eq!(a.body["error"]["field"], field, "{body}: {:?}", a.body);
    }
    assert_eq!(p.head().await, head, "refusals write nothing");

    let set = p.put(quotas, &p.root, raise).await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    assert_eq!(set.body["quotas"]["instances"], 5);
    assert_eq!(set.body["quotas"]["domains"], 0);
    assert_eq!(set.body["platform"]["instances"], 2);
    let five = p.post(&deployments, &t, deploy.clone()).await;
    assert_eq!(five.status, StatusCode::CREATED, "{:?}", five.body);
    assert_error(
        &p.post(
            &format!("{ENV}/domains"),
            &t,
            json!({"hostname": "shop.example.com"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        Some("hostname"),
    );
    // Another org keeps the platform's.
    let theirs = p
        .post(
            "/api/v1/orgs/other/apps/web/envs/prod/deployments",
            &other,
            deploy,
        )
        .await;
    assert_error(&theirs, StatusCode::FORBIDDEN, Some("instances"));
    // Back to the platform's: an empty body.
    let reset = p.put(quotas, &p.root, json!({})).await;
    assert_eq!(reset.body["quotas"]["instances"], 2, "{:?}", reset.body);
    assert_eq!(reset.body["usage"]["instances"], 5);
}
