//! Platform hostnames are never given twice (names may contain '-', so two tenants can
//! make the same label) nor longer than DNS allows, and an unverified custom domain
//! claim never blocks the domain's real owner.

use reqwest::{Method, StatusCode};
use serde_json::json;
use zeitwork_operator::Config;

use crate::domains::dns;
use crate::support::{Platform, assert_error, config, image};

#[tokio::test]
async fn a_platform_hostname_is_never_given_to_two_tenants() {
    let p = Platform::start().await;
    let corp = p.org("corp").await;
    let acme_corp = p.org("acme-corp").await;
    let made = p
        .post(
            "/api/v1/orgs/corp/apps",
            &corp,
            json!({"name": "shop-acme"}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);

    // shop + acme-corp would be shop-acme-corp.<base> too.
    let head = p.head().await;
    let squat = p
        .post(
            "/api/v1/orgs/acme-corp/apps",
            &acme_corp,
            json!({"name": "shop"}),
        )
        .await;
    assert_error(&squat, StatusCode::CONFLICT, Some("name"));
    let message = squat.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("shop-acme-corp.zeitwork.localhost"),
        "{message}"
    );
    assert_eq!(p.head().await, head, "nothing was written");

    // An env's name makes labels as well: env `acme` of app `shop` in org `corp`.
    p.post("/api/v1/orgs/corp/apps", &corp, json!({"name": "shop"}))
        .await;
    let env = p
        .post(
            "/api/v1/orgs/corp/apps/shop/envs",
            &corp,
            json!({"name": "acme"}),
        )
        .await;
    assert_error(&env, StatusCode::CONFLICT, Some("name"));

    // Too long for one DNS label: 27 + 27 + 27 characters and two dashes.
    let long = "a".repeat(27);
    p.post("/api/v1/orgs", &p.root, json!({"name": long})).await;
    let t = p.token(&long, "admin").await;
    let apps = format!("/api/v1/orgs/{long}/apps");
    let app = p.post(&apps, &t, json!({"name": long})).await;
    assert_eq!(app.status, StatusCode::CREATED, "{:?}", app.body);
    let envs = format!("{apps}/{long}/envs");
    let too_long = p.post(&envs, &t, json!({"name": long})).await;
    assert_error(&too_long, StatusCode::UNPROCESSABLE_ENTITY, Some("name"));
    let message = too_long.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("at most 63"), "{message}");

    // A deployment's label is checked as well: app `shop-<slug>` of org `corp` may
    // exist, and deploys of `shop` never get that slug (here: every deploy works and
    // its URL is unique).
    let mut urls = std::collections::HashSet::new();
    for n in 0..3 {
        let d = p
            .post(
                "/api/v1/orgs/corp/apps/shop-acme/envs/prod/deployments",
                &corp,
                json!({"image": image(n)}),
            )
            .await;
        assert_eq!(d.status, StatusCode::CREATED, "{:?}", d.body);
        assert!(urls.insert(d.body["url"].as_str().unwrap().to_owned()));
    }
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM platform_labels")
        .fetch_one(p.store.pool())
        .await
        .unwrap();
    // corp: shop-acme (prod + 3 deployments), shop (prod); the long org's app.
    assert_eq!(held, 6);
    p.assert_rebuild_is_exact().await;
}

const HOST: &str = "shop.example.test";
const CHALLENGE: &str = "_zeitwork-challenge.shop.example.test";

fn domains(org: &str) -> String {
    format!("/api/v1/orgs/{org}/apps/web/envs/prod/domains")
}

#[tokio::test]
async fn an_unverified_claim_never_blocks_the_owner_and_expires() {
    let dns = dns().await;
    let p = Platform::start_with(Config {
        dns_server: Some(dns.dns),
        ..config()
    })
    .await;
    let squatter = p.org("squatter").await;
    let owner = p.org("owner").await;
    for (org, t) in [("squatter", &squatter), ("owner", &owner)] {
        let app = p
            .post(
                &format!("/api/v1/orgs/{org}/apps"),
                t,
                json!({"name": "web"}),
            )
            .await;
        assert_eq!(app.status, StatusCode::CREATED, "{:?}", app.body);
    }
    let claim = p
        .post(&domains("squatter"), &squatter, json!({"hostname": HOST}))
        .await;
    assert_eq!(claim.status, StatusCode::CREATED, "{:?}", claim.body);
    assert_eq!(claim.body["state"], "pending");

    // The owner claims it too, publishes its own token and wins.
    let mine = p
        .post(&domains("owner"), &owner, json!({"hostname": HOST}))
        .await;
    assert_eq!(mine.status, StatusCode::CREATED, "{:?}", mine.body);
    let value = mine.body["txt_record"]["value"].as_str().unwrap();
    dns.set_txt(CHALLENGE, value).await;
    let verify = |org: &str| format!("{}/{HOST}/verify", domains(org));
    let won = p.post(&verify("owner"), &owner, json!({})).await;
    assert_eq!(won.status, StatusCode::OK, "{:?}", won.body);
    assert_eq!(won.body["state"], "verified");

    // The squatter can neither verify (even publishing its token) nor claim it again.
    let theirs = claim.body["txt_record"]["value"].as_str().unwrap();
    dns.set_txt(CHALLENGE, theirs).await;
    let lost = p.post(&verify("squatter"), &squatter, json!({})).await;
    assert_error(&lost, StatusCode::CONFLICT, Some("hostname"));
    let again = p
        .post(&domains("squatter"), &squatter, json!({"hostname": HOST}))
        .await;
    assert_error(&again, StatusCode::CONFLICT, Some("hostname"));

    // Claims expire: a week-old unverified claim can no longer be verified.
    let removed = p
        .send(
            Method::DELETE,
            &format!("{}/{HOST}", domains("owner")),
            Some(&owner),
            None,
        )
        .await;
    assert!(removed.status.is_success(), "{:?}", removed.body);
    sqlx::query("UPDATE domains SET created_at = created_at - interval '8 days'")
        .execute(p.store.pool())
        .await
        .unwrap();
    let listed = p.get(&domains("squatter"), &squatter).await;
    assert_eq!(listed.body["domains"][0]["state"], "expired");
    let expired = p.post(&verify("squatter"), &squatter, json!({})).await;
    assert_error(&expired, StatusCode::CONFLICT, Some("hostname"));
    let message = expired.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("expired"), "{message}");
}
