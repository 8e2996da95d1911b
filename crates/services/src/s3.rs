//! A STAND-IN for S3 in tests: `moto_server` (PyPI's `moto`, S3-API server mode) on
//! loopback, because no real S3 is reachable from these machines. The registry's `s3`
//! storage driver speaks to it exactly as to AWS, with path-style requests.

use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::ServiceError;
use crate::process::{free_port, logged, spawn_listening};

const SERVICE: &str = "moto_server";

/// A running `moto_server` holding S3 buckets in memory; killed when dropped.
#[derive(Debug)]
pub struct S3StandIn {
    _child: Child,
    port: u16,
    client: reqwest::Client,
    /// Holds its log.
    _dir: TempDir,
}

impl S3StandIn {
    /// Starts one on a free loopback port (`moto_server` on PATH: `pip install
    /// 'moto[server]'`, which `scripts/test.sh` does).
    pub async fn start() -> Result<S3StandIn, ServiceError> {
        let (dir, log, output, stderr) = logged("s3")?;
        let port = free_port();
        let child = spawn_listening(
            SERVICE,
            Command::new(SERVICE).args(["-H", "127.0.0.1", "-p", &port.to_string()]),
            (&log, output, stderr),
            port,
            ServiceError::NotInstalled {
                binary: SERVICE,
                hint: "pip install 'moto[server]' (scripts/test.sh does it)",
            },
        )
        .await?;
        Ok(S3StandIn {
            _child: child,
            port,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a plain HTTP client"),
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`, the endpoint to give S3 clients.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` (moto takes unsigned requests).
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), ServiceError> {
        let url = format!("{}/{bucket}", self.endpoint());
        let status = self
            .client
            .put(&url)
            .send()
            .await
            .map_err(|e| ServiceError::io(format!("PUT {url}"))(std::io::Error::other(e)))?
            .status();
        if !status.is_success() {
            return Err(ServiceError::io(format!("PUT {url}"))(
                std::io::Error::other(format!("answered {status}")),
            ));
        }
        Ok(())
    }

    /// The keys in `bucket` (its first page of a listing), for tests that check what a
    /// client stored there.
    pub async fn keys(&self, bucket: &str) -> Result<Vec<String>, ServiceError> {
        let url = format!("{}/{bucket}?list-type=2", self.endpoint());
        let body = self
            .client
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| ServiceError::io(format!("GET {url}"))(std::io::Error::other(e)))?
            .text()
            .await
            .map_err(|e| ServiceError::io(format!("GET {url}"))(std::io::Error::other(e)))?;
        Ok(body
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect())
    }
}
