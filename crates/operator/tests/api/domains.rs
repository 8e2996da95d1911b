//! Custom domains are verified by a DNS TXT record, looked up for real (in
//! pebble-challtestsrv): no record or a wrong one is refused, the right one records
//! `domain_verified` once, and nobody verifies another org's domain.

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use zeitwork_operator::Config;

use crate::support::{Platform, assert_error, config};
use zeitwork_services::ChallTestSrv;

const DOMAINS: &str = "/api/v1/orgs/acme/apps/web/envs/prod/domains";
const HOST: &str = "shop.example.test";
const CHALLENGE: &str = "_zeitwork-challenge.shop.example.test";
const ROUTES: &str = "/api/v1/orgs/acme/apps/web/envs/prod/routes";

/// The DNS server (pebble-challtestsrv, which `scripts/setup.sh` installs): a test
/// that cannot start it fails rather than skips.
pub async fn dns() -> ChallTestSrv {
    ChallTestSrv::start()
        .await
        .expect("pebble-challtestsrv must run for the domain tests")
}

fn verify(host: &str) -> String {
    format!("{DOMAINS}/{host}/verify")
}

#[tokio::test]
async fn a_domain_is_verified_by_its_txt_record_only() {
    let dns = dns().await;
    let p = Platform::start_with(Config {
        dns_server: Some(dns.dns),
        ..config()
    })
    .await;
    let admin = p.org("acme").await;
    let deployer = p.token("acme", "deployer").await;
    p.post("/api/v1/orgs/acme/apps", &admin, json!({"name": "web"}))
        .await;

    // Adding answers with the exact record to publish.
    let added = p.post(DOMAINS, &deployer, json!({"hostname": HOST})).await;
    assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.body);
    let token = added.body["verification_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let value = format!("zeitwork-verification={token}");
    assert_eq!(
        added.body["txt_record"],
        json!({"name": CHALLENGE, "type": "TXT", "value": value})
    );
    assert_eq!(added.body["verified_at"], Value::Null);
    let listed = p.get(DOMAINS, &deployer).await;
    assert_eq!(listed.body["domains"][0]["txt_record"]["value"], value);

    // No record yet.
    let refused = p.post(&verify(HOST), &deployer, json!({})).await;
    assert_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, None);
    assert_eq!(refused.body["error"]["code"], "not_verified");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("no TXT record at {CHALLENGE}"))
            && message.contains(&format!("publish {CHALLENGE} TXT \"{value}\"")),
        "{message}"
    );
    assert_eq!(verified_at(&p, &deployer).await, Value::Null);
    let route = json!({"host": HOST, "process": "web", "port": 8080});
    let early = p.post(ROUTES, &deployer, route.clone()).await;
    assert_error(&early, StatusCode::CONFLICT, Some("host"));
    let message = early.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("zeitwork domains verify"), "{message}");

    // A wrong token (say, of an earlier add of the same name) is named in the refusal.
    dns.set_txt(CHALLENGE, "zeitwork-verification=stale").await;
    let refused = p.post(&verify(HOST), &deployer, json!({})).await;
    assert_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, None);
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("zeitwork-verification=stale") && message.contains(&value),
        "{message}"
    );
    assert_eq!(verified_at(&p, &deployer).await, Value::Null);
    assert_eq!(p.count("domain_verified").await, 0);

    // The right one, beside other TXT records at the name.
    dns.clear_txt(CHALLENGE).await;
    dns.set_txt(CHALLENGE, "some-other=record").await;
    dns.set_txt(CHALLENGE, &value).await;
    let verified = p.post(&verify(HOST), &deployer, json!({})).await;
    assert_eq!(verified.status, StatusCode::OK, "{:?}", verified.body);
    assert_eq!(verified.body["hostname"], HOST);
    let at = verified.body["verified_at"].clone();
    assert!(at.is_string(), "{:?}", verified.body);
    assert_eq!(verified_at(&p, &deployer).await, at);
    let events = p.get("/api/v1/events?limit=1000", &admin).await;
    let recorded: Vec<&Value> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["type"] == "domain_verified")
        .collect();
    assert_eq!(recorded.len(), 1, "{:#}", events.body);
    assert_eq!(recorded[0]["data"]["domain_id"], added.body["id"]);

    // Again (as typed by a person, too): the same answer, nothing recorded, DNS not asked.
    dns.clear_txt(CHALLENGE).await;
    for host in [HOST, "SHOP.example.test."] {
        let again = p.post(&verify(host), &deployer, json!({})).await;
        assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
        assert_eq!(again.body["verified_at"], at);
    }
    assert_eq!(p.count("domain_verified").await, 1);

    // Readers may not verify; other orgs and unknown domains are not found.
    let reader = p.token("acme", "reader").await;
    let weak = p.post(&verify(HOST), &reader, json!({})).await;
    assert_error(&weak, StatusCode::FORBIDDEN, None);
    let other = p.org("other").await;
    let theirs = p.post(&verify(HOST), &other, json!({})).await;
    assert_error(&theirs, StatusCode::NOT_FOUND, None);
    let unknown = p
        .post(&verify("nope.example.test"), &deployer, json!({}))
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, None);
    assert_eq!(p.count("domain_verified").await, 1);

    // Only the env that verified a name may route it.
    let routed = p.post(ROUTES, &deployer, route.clone()).await;
    assert_eq!(routed.status, StatusCode::CREATED, "{:?}", routed.body);
    p.post("/api/v1/orgs/other/apps", &other, json!({"name": "web"}))
        .await;
    let theirs = "/api/v1/orgs/other/apps/web/envs/prod/routes";
    let stolen = p.post(theirs, &other, route).await;
    assert_error(&stolen, StatusCode::CONFLICT, Some("host"));

    // A routed domain stays until its route goes.
    let domain = format!("{DOMAINS}/{HOST}");
    let kept = p.send(Method::DELETE, &domain, Some(&deployer), None).await;
    assert_error(&kept, StatusCode::CONFLICT, Some("hostname"));
    let route_id = routed.body["id"].as_str().unwrap();
    let message = kept.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("zeitwork routes remove {route_id}")),
        "{message}"
    );
    let route = format!("{ROUTES}/{route_id}");
    let gone = p.send(Method::DELETE, &route, Some(&deployer), None).await;
    assert!(gone.status.is_success(), "{:?}", gone.body);
    let removed = p.send(Method::DELETE, &domain, Some(&deployer), None).await;
    assert!(removed.status.is_success(), "{:?}", removed.body);

    p.assert_rebuild_is_exact().await;
}

/// `verified_at` of the one domain, as the API lists it.
async fn verified_at(p: &Platform, token: &str) -> Value {
    let listed = p.get(DOMAINS, token).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    listed.body["domains"][0]["verified_at"].clone()
}

/// A resolver that does not answer is no "record missing": the check says DNS failed
/// and to retry, rather than telling the user to publish what they may have published.
#[tokio::test]
async fn an_unreachable_dns_server_is_unavailable_not_unverified() {
    // A UDP and TCP port nothing listens on.
    let silent = SocketAddr::from(([127, 0, 0, 1], zeitwork_services::free_port()));
    let p = Platform::start_with(Config {
        dns_server: Some(silent),
        ..config()
    })
    .await;
    let admin = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &admin, json!({"name": "web"}))
        .await;
    let added = p.post(DOMAINS, &admin, json!({"hostname": HOST})).await;
    assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.body);
    let failed = p.post(&verify(HOST), &admin, json!({})).await;
    assert_error(&failed, StatusCode::SERVICE_UNAVAILABLE, None);
    assert_eq!(failed.body["error"]["code"], "dns_unavailable");
    let message = failed.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(CHALLENGE) && message.contains("retry"),
        "{message}"
    );
    assert_eq!(p.count("domain_verified").await, 0);
}
