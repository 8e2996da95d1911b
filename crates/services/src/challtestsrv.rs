//! `pebble-challtestsrv` (Debian's `pebble` package) for tests: a real DNS server on
//! loopback whose TXT records are set over HTTP (custom-domain ownership checks), and the
//! DNS server Pebble validates through (every name answers 127.0.0.1).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::free_port;

pub const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";

/// A running `pebble-challtestsrv`, stopped when dropped.
pub struct ChallTestSrv {
    _child: Child,
    /// Where it answers DNS (UDP and TCP).
    pub dns: SocketAddr,
    management: String,
    client: reqwest::Client,
    /// Holds its log.
    dir: TempDir,
}

impl ChallTestSrv {
    /// Starts one on free loopback ports, or says why not (the binary is missing).
    pub async fn start() -> Result<ChallTestSrv, String> {
        if !Path::new(CHALLTESTSRV).exists() {
            return Err(format!(
                "{CHALLTESTSRV} is missing (scripts/setup.sh installs Debian's pebble)"
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("zeitwork-challtestsrv-")
            .tempdir()
            .map_err(|e| format!("a directory for {CHALLTESTSRV}: {e}"))?;
        let log = std::fs::File::create(dir.path().join("challtestsrv.log"))
            .map_err(|e| format!("a log for {CHALLTESTSRV}: {e}"))?;
        let (dns, management) = (free_port(), free_port());
        let child = Command::new(CHALLTESTSRV)
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log)
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{CHALLTESTSRV} does not start: {e}"))?;
        let server = ChallTestSrv {
            _child: child,
            dns: SocketAddr::from(([127, 0, 0, 1], dns)),
            management: format!("http://127.0.0.1:{management}"),
            client: reqwest::Client::new(),
            dir,
        };
        for port in [dns, management] {
            if !listening(port).await {
                return Err(format!(
                    "{CHALLTESTSRV} did not listen on {port}:\n{}",
                    server.log()
                ));
            }
        }
        Ok(server)
    }

    /// Adds a TXT value at `host` (no trailing dot); earlier values stay.
    pub async fn set_txt(&self, host: &str, value: &str) {
        let body = serde_json::json!({ "host": format!("{host}."), "value": value });
        self.manage("set-txt", body).await;
    }

    /// Removes every TXT value at `host`.
    pub async fn clear_txt(&self, host: &str) {
        let body = serde_json::json!({ "host": format!("{host}.") });
        self.manage("clear-txt", body).await;
    }

    /// What it logged, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("challtestsrv.log")).unwrap_or_default()
    }

    async fn manage(&self, call: &str, body: serde_json::Value) {
        let url = format!("{}/{call}", self.management);
        let resp = self.client.post(&url).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
    }
}

/// Whether something accepts connections on loopback `port` within 10 s.
pub async fn listening(port: u16) -> bool {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
