//! Pebble (Debian's `pebble` package), Let's Encrypt's test ACME server, started for one
//! test with `pebble-challtestsrv` as its DNS server answering 127.0.0.1 for every name
//! (there is no real DNS here). Validation is real: Pebble fetches HTTP-01 tokens from
//! `http_port` and makes TLS-ALPN-01 handshakes to `tls_port` on 127.0.0.1. Its own HTTPS
//! certificate is made here (rcgen) and trusted through the issuer's CA-bundle option.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use zeitwork_services::{ChallTestSrv, free_port, listening};

pub const PEBBLE: &str = "/usr/bin/pebble";

pub struct Pebble {
    _pebble: Child,
    dns: ChallTestSrv,
    dir: TempDir,
    pub directory_url: String,
    /// The CA that signed Pebble's HTTPS certificate (for `ZEITWORK_ACME_CA_BUNDLE`).
    pub ca_bundle: PathBuf,
    management: u16,
}

impl Pebble {
    pub async fn start(http_port: u16, tls_port: u16) -> Pebble {
        let dir = tempfile::Builder::new()
            .prefix("zeitwork-pebble-")
            .tempdir()
            .unwrap();
        let (listen, management) = (free_port(), free_port());
        let ca_bundle = write_https_certificate(dir.path());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": dir.path().join("pebble.pem"),
                "privateKey": dir.path().join("pebble.key"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let dns = ChallTestSrv::start()
            .await
            .expect("pebble-challtestsrv starts");
        let pebble = Command::new(PEBBLE)
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &dns.dns.to_string()])
            // No random waits before validating, no refused nonces, no reused
            // authorizations: every order is validated for real, and quickly.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log_file(dir.path(), "pebble.log"))
            .stderr(log_file(dir.path(), "pebble.err"))
            .kill_on_drop(true)
            .spawn()
            .expect("pebble starts");
        let pebble = Pebble {
            _pebble: pebble,
            dns,
            directory_url: format!("https://127.0.0.1:{listen}/dir"),
            ca_bundle,
            management,
            dir,
        };
        for port in [listen, management] {
            if !listening(port).await {
                panic!("pebble did not listen on {port}:\n{}", pebble.log());
            }
        }
        pebble
    }

    /// The root Pebble signs certificates with (it makes a new one at every start).
    pub async fn root_pem(&self) -> String {
        let ca = std::fs::read(&self.ca_bundle).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        let url = format!("https://127.0.0.1:{}/roots/0", self.management);
        let response = client.get(&url).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response.text().await.unwrap()
    }

    /// What Pebble said, for failure messages.
    pub fn log(&self) -> String {
        let own = ["pebble.log", "pebble.err"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default());
        own.chain([self.dns.log()]).collect::<Vec<_>>().join("\n")
    }
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    std::fs::File::create(dir.join(name)).unwrap().into()
}

/// A test CA and Pebble's HTTPS certificate (localhost, 127.0.0.1) signed by it; returns
/// the CA's PEM path.
fn write_https_certificate(dir: &Path) -> PathBuf {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("pebble.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("pebble.key"), key.serialize_pem()).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    ca_path
}
