//! `tcp` routes get a port from the operator's range: the lowest free one, shared by
//! every org (each edge listens on all of them), freed when the route goes, and a full
//! range refused with a 409 that names what to do, writing nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use zeitwork_core::PortRange;
use zeitwork_operator::Config;

use crate::support::{Platform, assert_error, config, image};

fn routes(org: &str) -> String {
    format!("/api/v1/orgs/{org}/apps/web/envs/prod/routes")
}

fn tcp() -> Value {
    json!({"process": "web", "port": 5432, "mode": "tcp"})
}

#[tokio::test]
async fn tcp_routes_get_the_lowest_free_port_of_the_range() {
    let p = Platform::start_with(Config {
        tcp_ports: PortRange::new(30000, 30001).unwrap(),
        ..config()
    })
    .await;
    let mut deployers = Vec::new();
    for org in ["acme", "other"] {
        let admin = p.org(org).await;
        p.post(
            &format!("/api/v1/orgs/{org}/apps"),
            &admin,
            json!({"name": "web"}),
        )
        .await;
        deployers.push(p.token(org, "deployer").await);
    }
    let (acme, other) = (&deployers[0], &deployers[1]);

    // A hostname route needs a verified domain (tests/api/domains.rs): none here.
    let http = json!({"process": "web", "port": 8080, "host": "api.example.com"});
    let http = p.post(&routes("acme"), acme, http).await;
    assert_error(&http, StatusCode::CONFLICT, Some("host"));

    let first = p.post(&routes("acme"), acme, tcp()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(first.body["listen_port"], 30000);
    let second = p.post(&routes("other"), other, tcp()).await;
    assert_eq!(
        second.body["listen_port"], 30001,
        "ports are shared by all orgs"
    );

    let head = p.head().await;
    let full = p.post(&routes("acme"), acme, tcp()).await;
    assert_error(&full, StatusCode::CONFLICT, Some("mode"));
    let message = full.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("30000-30001"), "{message}");
    assert_eq!(p.head().await, head, "a refused route writes nothing");

    let listed = p.get(&routes("acme"), acme).await;
    let ports: Vec<&Value> = listed.body["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["listen_port"])
        .collect();
    assert_eq!(ports, [&json!(30000)]);

    let id = first.body["id"].as_str().unwrap();
    let gone = p
        .send(
            Method::DELETE,
            &format!("{}/{id}", routes("acme")),
            Some(acme),
            None,
        )
        .await;
    assert!(gone.status.is_success(), "{:?}", gone.body);
    let again = p.post(&routes("other"), other, tcp()).await;
    assert_eq!(
        again.body["listen_port"], 30000,
        "a removed route's port is free"
    );
    p.assert_rebuild_is_exact().await;
}

fn manifest(routes: &str) -> String {
    format!("version = 1\napp = \"web\"\n[processes.web]\nport = 8080\n{routes}")
}

#[tokio::test]
async fn declared_routes_follow_the_deployed_release() {
    let p = Platform::start_with(Config {
        tcp_ports: PortRange::new(30000, 30009).unwrap(),
        ..config()
    })
    .await;
    let admin = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &admin, json!({"name": "web"}))
        .await;
    let deploys = "/api/v1/orgs/acme/apps/web/envs/prod/deployments";
    let deploy = |n: u8, routes: &str| {
        let body = json!({"image": image(n), "manifest": manifest(routes)});
        p.post(deploys, &admin, body)
    };
    let declared = |answer: &Value| -> Vec<(String, Value, Value)> {
        let mut out: Vec<_> = answer["routes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["declared"] == true)
            .map(|r| {
                let id = r["id"].as_str().unwrap().to_owned();
                (id, r["listen_port"].clone(), r["proxy_protocol"].clone())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    let by_hand = p.post(&routes("acme"), &admin, tcp()).await;
    assert_eq!(by_hand.body["listen_port"], 30000);
    let tcp_route = "[[routes]]\nprocess = \"web\"\nmode = \"tcp\"\n";

    assert_eq!(deploy(1, tcp_route).await.status, StatusCode::CREATED);
    let first = declared(&p.get(&routes("acme"), &admin).await.body);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].1, 30001);
    // The same declaration again: the same route, the same port.
    assert_eq!(deploy(2, tcp_route).await.status, StatusCode::CREATED);
    assert_eq!(declared(&p.get(&routes("acme"), &admin).await.body), first);
    // Changed: replaced.
    let with_proxy = format!("{tcp_route}proxy_protocol = true\n");
    assert_eq!(deploy(3, &with_proxy).await.status, StatusCode::CREATED);
    let changed = declared(&p.get(&routes("acme"), &admin).await.body);
    assert_eq!(changed.len(), 1);
    assert_ne!(changed[0].0, first[0].0);
    assert_eq!(changed[0].2, true);
    // No longer declared: removed; the route made by hand stays.
    assert_eq!(deploy(4, "").await.status, StatusCode::CREATED);
    let listed = p.get(&routes("acme"), &admin).await.body;
    assert!(declared(&listed).is_empty());
    assert_eq!(listed["routes"][0]["id"], by_hand.body["id"]);

    // A host the env has not verified: refused, naming the manifest's field; nothing written.
    let head = p.head().await;
    let http = "[[routes]]\nhost = \"api.example.com\"\nprocess = \"web\"\n";
    let refused = deploy(5, http).await;
    assert_error(
        &refused,
        StatusCode::CONFLICT,
        Some("manifest.routes[0].host"),
    );
    assert_eq!(p.head().await, head);

    // Rolling back to release 3 brings its route back.
    let back = p
        .post(
            "/api/v1/orgs/acme/apps/web/envs/prod/rollback",
            &admin,
            json!({"release": 3}),
        )
        .await;
    assert_eq!(back.status, StatusCode::CREATED, "{:?}", back.body);
    let restored = declared(&p.get(&routes("acme"), &admin).await.body);
    assert_eq!((restored.len(), &restored[0].2), (1, &json!(true)));
    p.assert_rebuild_is_exact().await;
}
