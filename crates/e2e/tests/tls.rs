//! HTTPS through the edge of a real `zeitwork up`: the operator imports a wildcard for the
//! base domain with `zeitwork certs import`, as a user would, and every platform hostname
//! is then served over TLS with it (HTTP/2 by ALPN), plain HTTP to those hosts is sent to
//! HTTPS, and the edge's requests are counted on the operator's /metrics. A standalone
//! `zeitwork server edge` on the same Postgres serves the same certificate.

mod tls {
    pub mod client;
}

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use http::Version;
use serde_json::Value;
use tls::client::{self, Issued, TestCa};
use zeitwork_e2e::{Up, poll_until, refused};
use zeitwork_services::free_port;

/// `zeitwork up`'s default base domain.
const BASE: &str = "zeitwork.localhost";
/// The env hostname of app web in org acme (no deployment: the edge answers itself).
const HOST: &str = "web-acme.zeitwork.localhost";
/// What a client offering HTTP/2 sends in ALPN.
const H2: &[&[u8]] = &[b"h2", b"http/1.1"];

#[tokio::test]
async fn an_imported_wildcard_serves_https_with_http2_redirects_and_metrics() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(dir.path().join("data")).await;
    let plain_apps = format!("apps at http://<app>-<org>.{BASE}");
    assert!(
        up.banner().contains("HTTPS:") && up.banner().contains(&plain_apps),
        "no certificate yet, so no https URL: {}",
        up.banner()
    );
    up.login_as_admin().await;
    up.cli(&["orgs", "create", "acme"]).await.success();
    up.cli(&["--org", "acme", "apps", "create", "web"])
        .await
        .success();

    let ca = TestCa::new();
    let wildcard = ca.issue(&[&format!("*.{BASE}")]);
    import_refuses_bad_input_then_stores(&up, &ca, &wildcard, dir.path()).await;
    served_by_sni_with_http2(&up, &ca, &wildcard).await;
    plain_http_is_redirected(&up).await;
    counted_on_the_operators_metrics(&up).await;
    a_standalone_edge_serves_it_too(&up, &ca, &wildcard, dir.path()).await;

    // With a certificate for the apps, `up` shows them on https.
    up.interrupt().await;
    up.restart().await;
    let port = up.edge_https_addr().rsplit(':').next().unwrap().to_owned();
    let https_apps = format!("apps at https://<app>-<org>.{BASE}:{port}");
    assert!(up.banner().contains(&https_apps), "{}", up.banner());
    eprintln!("tls test took {:?}", started.elapsed());
}

/// `zeitwork certs import` (the CLI, talking to Postgres): bad input is refused with one
/// readable line and a failure exit code; a good pair is stored and listed.
async fn import_refuses_bad_input_then_stores(up: &Up, ca: &TestCa, cert: &Issued, dir: &Path) {
    let stranger = ca.issue(&["elsewhere.example.com"]);
    let write = |name: &str, text: &str| {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        file.to_str().expect("a UTF-8 temporary path").to_owned()
    };
    let chain = write("chain.pem", &cert.chain_pem);
    let key = write("key.pem", &cert.key_pem);
    let other_key = write("other.key", &stranger.key_pem);
    refused(
        &up.admin_cli(&import(&chain, &other_key)).await,
        "does not belong",
    );
    refused(&up.admin_cli(&import(&key, &key)).await, "no CERTIFICATE");
    let db = up.database_url();
    let keyless = [&import(&chain, &key)[..], &["--database-url", &db]].concat();
    refused(&up.cli(&keyless).await, "ZEITWORK_CERT_KEY");
    let listed = up.admin_cli(&["certs", "list"]).await.success();
    assert!(listed.stdout.contains("no certificates"), "{listed:#?}");

    let imported = up.admin_cli(&import(&chain, &key)).await.success();
    assert!(
        imported.stdout.starts_with("imported certificate ")
            && imported.stdout.contains(&format!("hostnames: *.{BASE}"))
            && imported.stdout.contains("expires:"),
        "{imported:#?}"
    );
    let listed = up.admin_cli(&["certs", "list"]).await.success();
    assert!(
        listed.stdout.contains("operator") && listed.stdout.contains(&format!("*.{BASE}")),
        "{listed:#?}"
    );
}

fn import<'a>(chain: &'a str, key: &'a str) -> [&'a str; 6] {
    ["certs", "import", "--cert", chain, "--key", key]
}

/// (a, c) The edge picks the import up (through NATS) and serves it by SNI, HTTP/2 when
/// the client offers it; a name it does not cover gets no handshake.
async fn served_by_sni_with_http2(up: &Up, ca: &TestCa, cert: &Issued) {
    let https = up.edge_https_addr();
    let root = ca.pem();
    let answer = https_within(&https, HOST, &root, Duration::from_secs(30), &up.stderr()).await;
    assert_eq!(answer.leaf.as_ref(), Some(&cert.leaf), "the imported one");
    assert_eq!(answer.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(answer.version, Version::HTTP_2);
    the_edge_answered(&answer);
    let h1 = client::https_get(&https, HOST, "/", &root, &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(h1.version, Version::HTTP_11);
    assert_eq!(h1.leaf.as_ref(), Some(&cert.leaf));
    the_edge_answered(&h1);
    let uncovered = client::https_get(&https, "elsewhere.example.com", "/", &root, H2).await;
    assert!(uncovered.is_err(), "no certificate, no handshake");
}

/// The first answer `host` gets over HTTPS within `within`.
async fn https_within(
    addr: &str,
    host: &str,
    root: &str,
    within: Duration,
    log: &str,
) -> client::Answer {
    let served = poll_until(within, || async {
        client::https_get(addr, host, "/", root, H2).await.ok()
    })
    .await;
    match served {
        Some(answer) => answer,
        None => {
            let last = client::https_get(addr, host, "/", root, H2).await;
            panic!(
                "{host} was not served over HTTPS on {addr} within {within:?}: {:?}\n{log}",
                last.err()
            );
        }
    }
}

/// The edge's own JSON answer, with the request id and HSTS the edge adds: 404 while the
/// env has no deployment (503 once it has one without a healthy instance).
#[track_caller]
fn the_edge_answered(answer: &client::Answer) {
    let body: Value = serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("not the edge's JSON ({e}): {answer:?}"));
    let code = body["error"]["code"].as_str().unwrap_or_default();
    assert!(
        matches!(
            (answer.status, code),
            (503, "unavailable") | (404, "not_found")
        ),
        "{answer:?}"
    );
    assert!(!answer.header("x-request-id").is_empty(), "{answer:?}");
    assert!(
        answer
            .header("strict-transport-security")
            .contains("max-age"),
        "HSTS over HTTPS: {answer:?}"
    );
}

/// (b) Plain HTTP to a covered host goes to HTTPS, method and body kept (308); other
/// hosts stay on HTTP.
async fn plain_http_is_redirected(up: &Up) {
    let edge = up.edge_addr();
    let moved = client::http_get(&edge, HOST, "/a/b?c=1").await;
    assert_eq!(moved.status, 308, "{moved:?}");
    let port = up.edge_https_addr().rsplit(':').next().unwrap().to_owned();
    assert_eq!(
        moved.header("location"),
        format!("https://{HOST}:{port}/a/b?c=1")
    );
    let plain = client::http_get(&edge, "elsewhere.example.com", "/").await;
    assert_eq!(plain.status, 404, "uncovered hosts stay on HTTP: {plain:?}");
}

/// (d) Inside `up` the edge's metrics are on the operator's /metrics.
async fn counted_on_the_operators_metrics(up: &Up) {
    let api = up.api().trim_start_matches("http://");
    let metrics = client::http_get(api, "127.0.0.1", "/metrics").await.body;
    // Whatever the labels: the four answers above (h2, HTTP/1.1 over TLS, 308, 404).
    let requests = client::total(&metrics, "zeitwork_edge_requests_total");
    assert!(
        requests >= 4.0,
        "{requests} edge requests counted:\n{metrics}"
    );
    assert!(
        metrics.contains("zeitwork_edge_request_duration_seconds"),
        "{metrics}"
    );
}

/// `zeitwork server edge` on the same Postgres (no NATS: it polls; no ACME): it needs the
/// operator's key, then serves the same certificate and its metrics on --metrics-addr.
async fn a_standalone_edge_serves_it_too(up: &Up, ca: &TestCa, cert: &Issued, dir: &Path) {
    let db = up.database_url();
    let keyless = up
        .cli(&["server", "edge", "--database-url", &db, "--no-acme"])
        .await;
    refused(&keyless, "ZEITWORK_CERT_KEY");
    // The key that opens tenants' secrets is no use to an edge: it opens no certificate.
    let with_secrets_key = up
        .cli_command(&["server", "edge", "--database-url", &db, "--no-acme"])
        .env("ZEITWORK_SECRET_KEY", up.key("secret.key"))
        .output()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&with_secrets_key.stderr).contains("ZEITWORK_CERT_KEY"),
        "{with_secrets_key:?}"
    );
    assert_ne!(up.key("secret.key"), up.key("cert.key"));

    let (http, https, metrics) = (free_port(), free_port(), free_port());
    let [http, https, metrics] = [http, https, metrics].map(|p| format!("127.0.0.1:{p}"));
    let log = dir.join("edge.stderr");
    let mut edge = up.cli_command(&[
        "server",
        "edge",
        "--listen",
        &http,
        "--https-listen",
        &https,
        "--https-public-port",
        "443",
        "--no-acme",
        "--metrics-addr",
        &metrics,
    ]);
    edge.env("DATABASE_URL", &db)
        .env("ZEITWORK_CERT_KEY", up.key("cert.key"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let _edge = edge.spawn().expect("starting `zeitwork server edge`");

    let root = ca.pem();
    let waited = Duration::from_secs(30);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let served = poll_until(waited, || async {
        client::https_get(&https, HOST, "/", &root, H2).await.ok()
    })
    .await;
    let answer = served.unwrap_or_else(|| panic!("server edge served no HTTPS:\n{}", log_text()));
    assert_eq!(answer.leaf.as_ref(), Some(&cert.leaf));
    the_edge_answered(&answer);
    let moved = client::http_get(&http, HOST, "/").await;
    assert_eq!(
        moved.header("location"),
        format!("https://{HOST}/"),
        "the public port (443) in redirects: {moved:?}"
    );
    let text = client::http_get(&metrics, "127.0.0.1", "/metrics")
        .await
        .body;
    let requests = client::total(&text, "zeitwork_edge_requests_total");
    assert!(requests >= 2.0, "{requests} requests counted:\n{text}");
}
