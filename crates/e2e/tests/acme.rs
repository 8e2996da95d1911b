//! ACME through the real binary: `zeitwork up --acme-directory` pointed at Pebble (Let's
//! Encrypt's test CA, which validates for real over loopback against up's edge ports), a
//! custom domain verified by its DNS TXT record (`zeitwork domains verify`, against a DNS
//! server of the test's) gets a certificate, and the edge serves it.

// The same Pebble the certificate store's own tests run (crates/certs/tests).
#[path = "tls/client.rs"]
mod client;
#[path = "../../certs/tests/pebble/server.rs"]
mod pebble;

use std::path::Path;
use std::time::{Duration, Instant};

use zeitwork_e2e::{Up, poll_until};
use zeitwork_services::{ChallTestSrv, free_port};

const DOMAIN: &str = "shop.example.test";

/// `zeitwork domains <args>` for app web of org acme.
fn domains<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["--org", "acme", "--app", "web", "domains"][..], args].concat()
}

#[tokio::test]
async fn a_verified_domain_gets_a_certificate_from_pebble_served_by_up() {
    if !Path::new(pebble::PEBBLE).exists() {
        panic!(
            "cannot run: {} is missing (scripts/setup.sh installs Debian's pebble)",
            pebble::PEBBLE
        );
    }
    let started = Instant::now();
    // Pebble validates HTTP-01 on the edge's HTTP port and TLS-ALPN-01 on its HTTPS port.
    let ports = (free_port(), free_port());
    let ca = pebble::Pebble::start(ports.0, ports.1).await;
    let root = ca.root_pem().await;
    let bundle = ca.ca_bundle.to_str().unwrap();
    let dns = ChallTestSrv::start().await.unwrap();
    let dns_server = dns.dns.to_string();
    let dir = tempfile::tempdir().unwrap();
    let acme = [
        "--dns-server",
        &dns_server,
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
    up.login_as_admin().await;
    up.cli(&["orgs", "create", "acme"]).await.success();
    up.cli(&["--org", "acme", "apps", "create", "web"])
        .await
        .success();
    let added = up.cli(&domains(&["add", DOMAIN])).await.success();
    // `  _zeitwork-challenge.shop.example.test TXT "zeitwork-verification=…"`
    let record = format!("_zeitwork-challenge.{DOMAIN}");
    let line = added
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&record));
    let value = line
        .and_then(|l| l.split('"').nth(1))
        .unwrap_or_else(|| panic!("the record to publish: {added:#?}"));

    // Not published yet: refused, with what to publish.
    let refused = up.cli(&domains(&["verify", DOMAIN])).await.exit(1);
    assert!(
        refused.stderr.contains("no TXT record") && refused.stderr.contains(value),
        "{refused:#?}"
    );
    dns.set_txt(&record, value).await;
    let verified = up.cli(&domains(&["verify", DOMAIN])).await.success();
    assert!(
        verified
            .stdout
            .starts_with(&format!("{DOMAIN} is verified"))
            && verified.stdout.lines().count() == 1,
        "{verified:#?}"
    );
    // Another domain, never verified, is never ordered.
    up.cli(&domains(&["add", "unverified.example.test"]))
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
