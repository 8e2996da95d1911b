//! ACME through the real binary: `zeitwork up --acme-directory` pointed at Pebble (Let's
//! Encrypt's test CA, which validates for real over loopback against up's edge ports), a
//! verified custom domain gets a certificate, and the edge serves it.

// The same Pebble the certificate store's own tests run (crates/certs/tests).
#[path = "tls/client.rs"]
mod client;
#[path = "../../certs/tests/pebble/server.rs"]
mod pebble;

use std::path::Path;
use std::time::{Duration, Instant};

use zeitwork_e2e::{Up, poll_until};
use zeitwork_services::free_port;

const DOMAIN: &str = "shop.example.test";

#[tokio::test]
async fn a_verified_domain_gets_a_certificate_from_pebble_served_by_up() {
    if !Path::new(pebble::PEBBLE).exists() {
        eprintln!(
            "skipping: {} is missing (scripts/setup.sh installs Debian's pebble)",
            pebble::PEBBLE
        );
        return;
    }
    let started = Instant::now();
    // Pebble validates HTTP-01 on the edge's HTTP port and TLS-ALPN-01 on its HTTPS port.
    let ports = (free_port(), free_port());
    let ca = pebble::Pebble::start(ports.0, ports.1).await;
    let root = ca.root_pem().await;
    let bundle = ca.ca_bundle.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let acme = [
        "--no-agent",
        "--no-example",
        "--acme-directory",
        &ca.directory_url,
        "--acme-ca-bundle",
        bundle,
        "--acme-email",
        "ops@example.test",
    ];
    let up = Up::start_with_edge(dir.path().join("data"), "127.0.0.1", &acme, ports).await;
    let admin = up.admin_token().expect("a first start").to_owned();
    up.cli(&["login", "--api", up.api(), "--token", &admin])
        .await
        .success();
    up.cli(&["orgs", "create", "acme"]).await.success();
    up.cli(&["--org", "acme", "apps", "create", "web"])
        .await
        .success();
    let web = ["--org", "acme", "--app", "web", "domains", "add"];
    up.cli(&[&web[..], &[DOMAIN]].concat()).await.success();

    // Domain ownership checks have no API yet: the domain is marked verified in its
    // projection, as crates/certs/tests do. That is no event, so a second (unverified)
    // domain is added after it: its notification wakes the issuer.
    let db = sqlx::PgPool::connect(&up.database_url()).await.unwrap();
    sqlx::query("UPDATE domains SET verified_at = now() WHERE hostname = $1")
        .bind(DOMAIN)
        .execute(&db)
        .await
        .unwrap();
    up.cli(&[&web[..], &["unverified.example.test"]].concat())
        .await
        .success();

    let https = up.edge_https_addr();
    let alpn: &[&[u8]] = &[b"h2", b"http/1.1"];
    let served = poll_until(Duration::from_secs(90), || async {
        client::https_get(&https, DOMAIN, "/", &root, alpn)
            .await
            .ok()
    })
    .await;
    let Some(answer) = served else {
        let last = client::https_get(&https, DOMAIN, "/", &root, alpn).await;
        panic!(
            "{DOMAIN} was not served with a certificate from Pebble within 90 s: {:?}\n\
             --- up ---\n{}\n--- pebble ---\n{}",
            last.err(),
            up.stderr(),
            ca.log()
        );
    };
    assert!(answer.leaf.is_some(), "{answer:?}");
    assert!(
        [404, 503].contains(&answer.status),
        "the edge's own answer: {answer:?}"
    );

    let listed = up.admin_cli(&["certs", "list"]).await.success();
    let line = listed.stdout.lines().find(|l| l.contains(DOMAIN));
    assert!(
        line.is_some_and(|l| l.contains("acme")),
        "an ACME certificate for {DOMAIN}: {listed:#?}"
    );
    assert!(
        !listed.stdout.contains("unverified.example.test"),
        "never ordered for an unverified domain: {listed:#?}"
    );
    let moved = client::http_get(&up.edge_addr(), DOMAIN, "/").await;
    assert_eq!(moved.status, 308, "now sent to HTTPS: {moved:?}");
    eprintln!("acme test took {:?}", started.elapsed());
}
