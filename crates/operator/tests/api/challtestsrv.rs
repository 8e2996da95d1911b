//! `pebble-challtestsrv` (Debian's `pebble` package): a real DNS server whose TXT records
//! are set over HTTP, so ownership checks resolve real DNS answers over loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::process::{Child, Command};
use zeitwork_services::free_port;

pub const BINARY: &str = "/usr/bin/pebble-challtestsrv";

pub struct ChallTestSrv {
    _child: Child,
    /// Where it answers DNS (UDP and TCP).
    pub dns: SocketAddr,
    management: String,
    client: reqwest::Client,
}

impl ChallTestSrv {
    /// Starts one on free loopback ports, or says why not (the binary is missing).
    pub async fn start() -> Result<ChallTestSrv, String> {
        if !Path::new(BINARY).exists() {
            return Err(format!(
                "{BINARY} is missing (scripts/setup.sh installs Debian's pebble)"
            ));
        }
        let (dns, management) = (free_port(), free_port());
        let child = Command::new(BINARY)
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{BINARY} does not start: {e}"))?;
        for port in [dns, management] {
            wait_for(port).await;
        }
        Ok(ChallTestSrv {
            _child: child,
            dns: SocketAddr::from(([127, 0, 0, 1], dns)),
            management: format!("http://127.0.0.1:{management}"),
            client: reqwest::Client::new(),
        })
    }

    /// Adds a TXT value at `host` (no trailing dot); earlier values stay.
    pub async fn set_txt(&self, host: &str, value: &str) {
        self.manage(
            "set-txt",
            json!({ "host": format!("{host}."), "value": value }),
        )
        .await;
    }

    /// Removes every TXT value at `host`.
    pub async fn clear_txt(&self, host: &str) {
        self.manage("clear-txt", json!({ "host": format!("{host}.") }))
            .await;
    }

    async fn manage(&self, call: &str, body: serde_json::Value) {
        let url = format!("{}/{call}", self.management);
        let resp = self.client.post(&url).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
    }
}

async fn wait_for(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{BINARY} did not listen on {port}");
}
