//! Health checks the agent runs against its instances, with the manifest's thresholds:
//! a flapping probe does not flap the instance's state.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeitwork_core::node::{HealthCheck, Probe};

/// One probe: Ok, or why it failed.
pub async fn probe(addr: SocketAddr, check: &HealthCheck) -> Result<(), String> {
    let timeout = Duration::from_millis(check.timeout_ms.max(1));
    match tokio::time::timeout(timeout, attempt(addr, &check.probe)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", check.timeout_ms)),
    }
}

async fn attempt(addr: SocketAddr, probe: &Probe) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let Probe::Http { path } = probe else {
        return Ok(());
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: zeitwork-health\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending GET {path}: {e}"))?;
    // The status line is all we need; it fits in the first read of any real server.
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < 12 {
        let n = stream
            .read(&mut head[len..])
            .await
            .map_err(|e| format!("reading the answer to GET {path}: {e}"))?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let status = std::str::from_utf8(&head[..len])
        .ok()
        .and_then(|s| s.strip_prefix("HTTP/1."))
        .and_then(|s| s.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("GET {path} did not answer HTTP"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("GET {path} answered {status}"))
    }
}

/// Consecutive results folded into a verdict that changes only past a threshold.
#[derive(Debug, Clone)]
pub struct Verdict {
    healthy: Option<bool>,
    streak: u32,
    last: bool,
}

impl Verdict {
    /// Starts undecided: a new instance is neither healthy nor unhealthy until it has
    /// passed `healthy_threshold` probes or failed `unhealthy_threshold`.
    pub fn new() -> Verdict {
        Verdict {
            healthy: None,
            streak: 0,
            last: false,
        }
    }

    /// Records one probe; returns the new verdict when it changed.
    pub fn record(&mut self, ok: bool, check: &HealthCheck) -> Option<bool> {
        if ok == self.last {
            self.streak += 1;
        } else {
            self.last = ok;
            self.streak = 1;
        }
        let needed = if ok {
            check.healthy_threshold
        } else {
            check.unhealthy_threshold
        };
        if self.streak >= needed.max(1) && self.healthy != Some(ok) {
            self.healthy = Some(ok);
            return Some(ok);
        }
        None
    }
}

impl Default for Verdict {
    fn default() -> Verdict {
        Verdict::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(probe: Probe) -> HealthCheck {
        HealthCheck {
            probe,
            interval_ms: 100,
            timeout_ms: 500,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }

    #[test]
    fn verdicts_need_a_streak() {
        let c = check(Probe::Tcp);
        let mut v = Verdict::new();
        assert_eq!(v.record(true, &c), None);
        assert_eq!(v.record(true, &c), Some(true));
        assert_eq!(v.record(true, &c), None);
        assert_eq!(v.record(false, &c), None);
        assert_eq!(v.record(false, &c), None);
        assert_eq!(
            v.record(true, &c),
            None,
            "a single success resets the streak"
        );
        for _ in 0..2 {
            assert_eq!(v.record(false, &c), None);
        }
        assert_eq!(v.record(false, &c), Some(false));
    }

    async fn serve_once(answer: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(answer.as_bytes()).await;
        });
        addr
    }

    #[tokio::test]
    async fn http_probes_read_the_status() {
        let ok = serve_once("HTTP/1.1 204 No Content\r\n\r\n").await;
        assert_eq!(
            probe(ok, &check(Probe::Http { path: "/".into() })).await,
            Ok(())
        );
        let bad = serve_once("HTTP/1.1 503 Unavailable\r\n\r\n").await;
        let err = probe(bad, &check(Probe::Http { path: "/h".into() }))
            .await
            .unwrap_err();
        assert!(err.contains("503"), "{err}");
    }

    #[tokio::test]
    async fn tcp_probes_fail_on_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert!(probe(addr, &check(Probe::Tcp)).await.is_err());
    }
}
