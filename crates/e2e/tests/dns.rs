//! GeoDNS against real parts: a `zeitwork up` control plane, three standalone
//! `zeitwork server edge`s serving an imported wildcard over TLS (one for region eu-1 on
//! 127.0.0.2, two for us-1 on 127.0.0.3 and .4) and `zeitwork server dns`, asked with
//! Debian's `dig`. Regions' addresses are set with `zeitwork regions set`, as an operator
//! would; a client's region comes from the EDNS Client Subnet dig sends.
//!
//! Shown: answers per client subnet (≥ 2 addresses where the region has them, the TTL,
//! the subnet echoed), REFUSED outside the zone, FORMERR for malformed queries with the
//! server answering the next one, a region withdrawn when its edge dies (its clients sent
//! to the other region) and back when it returns, and a change of a region's addresses
//! reaching answers without a restart.

mod tls {
    pub mod client;
}

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tls::client::TestCa;
use tokio::process::Child;
use zeitwork_e2e::{Up, poll_until, refused};
use zeitwork_services::free_port;

const BASE: &str = "zeitwork.localhost";
const HOST: &str = "web-acme.zeitwork.localhost";
const EU: &str = "127.0.0.2";
const US: [&str; 2] = ["127.0.0.3", "127.0.0.4"];
const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test]
async fn dns_answers_each_client_with_its_regions_healthy_edges() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path().join("data")).await;
    up.login_as_admin().await;
    let ca = TestCa::new();
    let wildcard = ca.issue(&[&format!("*.{BASE}")]);
    let (chain, key, root) = (
        write(dir.path(), "chain.pem", &wildcard.chain_pem),
        write(dir.path(), "key.pem", &wildcard.key_pem),
        write(dir.path(), "ca.pem", &ca.pem()),
    );
    up.admin_cli(&["certs", "import", "--cert", &chain, "--key", &key])
        .await
        .success();

    regions_refuse_bad_input(&up).await;
    up.admin_cli(&[
        "regions",
        "set",
        "eu-1",
        "--address",
        EU,
        "--client-network",
        "10.1.0.0/16",
    ])
    .await
    .success();
    let set = up
        .admin_cli(&[
            "regions",
            "set",
            "us-1",
            "--address",
            US[0],
            "--address",
            US[1],
            "--client-network",
            "10.2.0.0/16",
        ])
        .await
        .success();
    assert!(set.stdout.contains("10.2.0.0/16"), "{set:#?}");
    let listed = up.admin_cli(&["regions"]).await.success();
    assert!(
        listed.stdout.contains(EU) && listed.stdout.contains(US[1]),
        "{listed:#?}"
    );

    let https = free_port();
    let mut eu_edge = edge(&up, EU, https, dir.path());
    let _us_edges: Vec<Child> = US
        .iter()
        .map(|ip| edge(&up, ip, https, dir.path()))
        .collect();
    let port = free_port();
    let _dns = dns(&up, port, https, &root, dir.path());
    let dns_log = || std::fs::read_to_string(dir.path().join("dns.stderr")).unwrap_or_default();

    // Every edge up: each client subnet gets its own region.
    let eu = poll_until(WITHIN, || async {
        let a = dig(port, HOST, "A", Some("10.1.2.0/24")).await;
        (a.addresses == [EU]).then_some(a)
    })
    .await
    .unwrap_or_else(|| panic!("eu-1 never answered for 10.1.2.0/24:\n{}", dns_log()));
    assert_eq!(eu.status, "NOERROR");
    assert!(eu.flags.contains(" aa"), "authoritative: {}", eu.text);
    assert!(
        eu.text.contains("CLIENT-SUBNET: 10.1.2.0/24/24"),
        "{}",
        eu.text
    );
    assert_eq!(eu.ttl, Some(20), "{}", eu.text);
    // Both of us-1's edges, once each has passed its checks (one still starting when first
    // probed must pass twice).
    let us = poll_until(WITHIN, || async {
        let a = dig(port, HOST, "A", Some("10.2.0.0/24")).await;
        (sorted(a.addresses.clone()) == US).then_some(a)
    })
    .await;
    assert!(
        us.is_some(),
        "us-1 never answered with both edges:\n{}",
        dns_log()
    );
    // Without a subnet, the resolver's own address (127.0.0.1) decides: no client network
    // holds it, so the default region (us-1) answers.
    let plain = dig(port, HOST, "A", None).await;
    assert_eq!(sorted(plain.addresses), US, "{}", plain.text);
    // The zone's own name server is answered with its address, never an edge's.
    let ns = dig(port, "ns1.zeitwork.localhost", "A", Some("10.1.2.0/24")).await;
    assert_eq!(ns.addresses, ["127.0.0.1"], "{}", ns.text);
    let apex_soa = dig(port, BASE, "SOA", None).await;
    assert!(apex_soa.text.contains("SOA"), "{}", apex_soa.text);
    let nodata = dig(port, HOST, "MX", None).await;
    assert_eq!(
        (nodata.status.as_str(), nodata.addresses.len()),
        ("NOERROR", 0)
    );
    assert!(
        nodata.text.contains("AUTHORITY: 1"),
        "the SOA for negative caching: {}",
        nodata.text
    );

    bad_queries_get_errors_and_the_server_goes_on(port).await;

    // eu-1's only edge dies: its clients are sent to us-1 once the checks see it.
    eu_edge.kill().await.unwrap();
    let killed = Instant::now();
    let moved = poll_until(WITHIN, || async {
        let a = dig(port, HOST, "A", Some("10.1.2.0/24")).await;
        (sorted(a.addresses.clone()) == US).then_some(a)
    })
    .await;
    assert!(moved.is_some(), "eu-1 was never withdrawn:\n{}", dns_log());
    let withdrawn = killed.elapsed();
    eprintln!("eu-1 withdrawn {withdrawn:?} after its edge died");
    assert!(
        dns_log().contains("withdrawn from DNS answers"),
        "{}",
        dns_log()
    );

    // Back: the edge returns and eu-1's clients get it again.
    let _eu_edge = edge(&up, EU, https, dir.path());
    let back = poll_until(WITHIN, || async {
        (dig(port, HOST, "A", Some("10.1.2.0/24")).await.addresses == [EU]).then_some(())
    })
    .await;
    assert!(back.is_some(), "eu-1 never came back:\n{}", dns_log());

    // A region's addresses change: answers follow without a restart (NATS, or the resync).
    up.admin_cli(&[
        "regions",
        "set",
        "us-1",
        "--address",
        US[1],
        "--client-network",
        "10.2.0.0/16",
    ])
    .await
    .success();
    let narrowed = poll_until(WITHIN, || async {
        (dig(port, HOST, "A", Some("10.2.0.0/24")).await.addresses == [US[1]]).then_some(())
    })
    .await;
    assert!(
        narrowed.is_some(),
        "the new address list never reached the answers"
    );
}

/// Bad region settings: exit ≠ 0, one line naming the field; nothing stored.
async fn regions_refuse_bad_input(up: &Up) {
    for (args, needle) in [
        (
            vec!["regions", "set", "eu-1", "--address", "edge.example"],
            "addresses[0]",
        ),
        (
            vec!["regions", "set", "eu-1", "--address", "0.0.0.0"],
            "addresses[0]",
        ),
        (
            vec![
                "regions",
                "set",
                "eu-1",
                "--address",
                EU,
                "--client-network",
                "10.1.2.3/16",
            ],
            "client_networks[0]",
        ),
    ] {
        let out = up.admin_cli(&args).await;
        refused(&out, needle);
    }
    let listed = up.admin_cli(&["regions"]).await.success();
    assert!(!listed.stdout.contains("eu-1"), "{listed:#?}");
}

/// A question about another zone is refused; bytes that are no valid query get FORMERR
/// (or are dropped when even the header is missing); the next good query is answered.
async fn bad_queries_get_errors_and_the_server_goes_on(port: u16) {
    let outside = dig(port, "example.com", "A", None).await;
    assert_eq!(outside.status, "REFUSED", "{}", outside.text);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(("127.0.0.1", port)).await.unwrap();
    // Two questions in one query; a question cut short; a name with a label too long.
    let two = [
        &[0x12, 0x34, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0][..],
        b"\x03web\x09zeitwork\x09localhost\x00\x00\x01\x00\x01",
        b"\x03web\x09zeitwork\x09localhost\x00\x00\x01\x00\x01",
    ]
    .concat();
    let cut = [&[0x12, 0x35, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0][..], b"\x03we"].concat();
    let long = [
        &[0x12, 0x36, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0][..],
        &[0x7f, b'a'],
    ]
    .concat();
    for (query, id) in [
        (two, [0x12, 0x34]),
        (cut, [0x12, 0x35]),
        (long, [0x12, 0x36]),
    ] {
        socket.send(&query).await.unwrap();
        let mut answer = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut answer))
            .await
            .expect("an answer to a malformed query")
            .unwrap();
        assert!(n >= 12 && answer[..2] == id, "{:?}", &answer[..n]);
        assert_eq!(answer[3] & 0x0f, 1, "FORMERR: {:?}", &answer[..n]);
    }
    socket.send(&[0u8; 5]).await.unwrap();
    let good = dig(port, HOST, "A", Some("10.1.2.0/24")).await;
    assert_eq!(good.status, "NOERROR", "still answering: {}", good.text);
}

/// What dig printed, parsed.
#[derive(Debug)]
struct Dig {
    text: String,
    status: String,
    flags: String,
    addresses: Vec<String>,
    ttl: Option<u32>,
}

async fn dig(port: u16, name: &str, kind: &str, subnet: Option<&str>) -> Dig {
    let mut command = tokio::process::Command::new("dig");
    command.args([
        "@127.0.0.1",
        "-p",
        &port.to_string(),
        name,
        kind,
        "+tries=1",
        "+time=2",
    ]);
    if let Some(subnet) = subnet {
        command.arg(format!("+subnet={subnet}"));
    }
    let out = command
        .output()
        .await
        .expect("dig (Debian's dnsutils: scripts/setup.sh)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .to_owned();
    let flags = text
        .split("flags:")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or("")
        .to_owned();
    let answers: Vec<Vec<&str>> = text
        .split(";; ANSWER SECTION:")
        .nth(1)
        .map(|s| s.split("\n\n").next().unwrap_or(""))
        .unwrap_or("")
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| f.len() == 5 && (f[3] == "A" || f[3] == "AAAA"))
        .collect();
    Dig {
        status,
        flags,
        addresses: answers.iter().map(|f| f[4].to_owned()).collect(),
        ttl: answers.first().and_then(|f| f[1].parse().ok()),
        text,
    }
}

fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list
}

/// `zeitwork server edge` on `ip`, HTTPS on `https`, the stored certificates only.
fn edge(up: &Up, ip: &str, https: u16, dir: &Path) -> Child {
    let (http, https) = (format!("{ip}:{}", free_port()), format!("{ip}:{https}"));
    let log = dir.join(format!("edge-{ip}.stderr"));
    let mut command = up.cli_command(&[
        "server",
        "edge",
        "--listen",
        &http,
        "--https-listen",
        &https,
        "--no-acme",
    ]);
    command
        .env("DATABASE_URL", up.database_url())
        .env("NATS_URL", up.nats_url())
        .env("ZEITWORK_CERT_KEY", up.key("cert.key"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    command.spawn().expect("starting `zeitwork server edge`")
}

/// `zeitwork server dns` on 127.0.0.1:`port`, probing each region address's `https` port
/// with the test CA trusted; clients no network holds belong to us-1.
fn dns(up: &Up, port: u16, https: u16, root: &str, dir: &Path) -> Child {
    let listen = format!("127.0.0.1:{port}");
    let mut command = up.cli_command(&[
        "server",
        "dns",
        "--listen",
        &listen,
        "--base-domain",
        BASE,
        "--nameserver",
        "ns1.zeitwork.localhost=127.0.0.1",
        "--default-region",
        "us-1",
        "--check-port",
        &https.to_string(),
        "--check-ca-bundle",
        root,
    ]);
    command
        .env("DATABASE_URL", up.database_url())
        .env("NATS_URL", up.nats_url())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dns.stderr")).unwrap());
    command.spawn().expect("starting `zeitwork server dns`")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file.to_str().expect("a UTF-8 temporary path").to_owned()
}
