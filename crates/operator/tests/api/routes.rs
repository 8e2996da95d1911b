//! `tcp` routes get a port from the operator's range: the lowest free one, shared by
//! every org (each edge listens on all of them), freed when the route goes, and a full
//! range refused with a 409 that names what to do, writing nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use zeitwork_core::PortRange;
use zeitwork_operator::Config;

use crate::support::{Platform, assert_error, config};

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
    assert_error(&http, StatusCode::UNPROCESSABLE_ENTITY, Some("host"));

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
