//! Health checks through the path clients take: TCP to the address's HTTPS port, a TLS
//! handshake with the check hostname as SNI (the certificate verified against the
//! configured roots), and an HTTP/1.1 request answered with any status line. An address
//! that fails `fall` rounds in a row is withdrawn; one that passes `rise` in a row is
//! back. A new address counts from its first probe.
//!
//! With probes every second, a 2 s timeout and `fall` = 2, a dead edge leaves the answers
//! within ~5 s (a refused connection fails at once, a black hole at the timeout).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::handler::Current;

/// How the edges are probed.
#[derive(Clone)]
pub struct Check {
    /// The HTTPS port on every region address.
    pub port: u16,
    /// SNI and `Host` of the probe: a hostname the edges hold a certificate for.
    pub host: ServerName<'static>,
    pub tls: Arc<ClientConfig>,
    /// Time between rounds.
    pub every: Duration,
    /// The longest one probe may take.
    pub timeout: Duration,
    /// Failed rounds in a row that withdraw an address.
    pub fall: u32,
    /// Passed rounds in a row that bring it back.
    pub rise: u32,
}

/// What is known of one address.
#[derive(Debug, Clone, Copy)]
struct Seen {
    up: bool,
    /// Rounds in a row whose result disagreed with `up`.
    against: u32,
}

/// Probes one address once.
pub async fn probe(check: &Check, ip: IpAddr) -> Result<(), String> {
    let attempt = async {
        let addr = SocketAddr::new(ip, check.port);
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut tls = TlsConnector::from(check.tls.clone())
            .connect(check.host.clone(), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let host = check.host.to_str();
        let request = format!(
            "HEAD / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: zeitwork-dns\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut head = [0u8; 12];
        tls.read_exact(&mut head)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if head.starts_with(b"HTTP/1.") {
            Ok(())
        } else {
            Err(format!(
                "not an HTTP answer: {:?}",
                String::from_utf8_lossy(&head)
            ))
        }
    };
    match tokio::time::timeout(check.timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
    }
}

/// Probes every address of the current table each round, for ever, publishing the set of
/// addresses that are up.
pub async fn run(check: Check, current: Arc<Current>) {
    let mut seen: HashMap<IpAddr, Seen> = HashMap::new();
    let mut ticks = tokio::time::interval(check.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let addresses: HashSet<IpAddr> = current.table.load().addresses().collect();
        seen.retain(|ip, _| addresses.contains(ip));
        let mut probes = tokio::task::JoinSet::new();
        for ip in addresses {
            let check = check.clone();
            probes.spawn(async move { (ip, probe(&check, ip).await) });
        }
        while let Some(done) = probes.join_next().await {
            let Ok((ip, result)) = done else { continue };
            record(&check, &mut seen, ip, result);
        }
        let up: HashSet<IpAddr> = seen
            .iter()
            .filter(|(_, s)| s.up)
            .map(|(ip, _)| *ip)
            .collect();
        if **current.up.load() != up {
            current.up.store(Arc::new(up));
        }
    }
}

fn record(check: &Check, seen: &mut HashMap<IpAddr, Seen>, ip: IpAddr, result: Result<(), String>) {
    let passed = result.is_ok();
    let state = seen.entry(ip).or_insert(Seen {
        up: passed,
        against: 0,
    });
    if passed == state.up {
        state.against = 0;
    } else {
        state.against += 1;
        let needed = if state.up { check.fall } else { check.rise };
        if state.against >= needed {
            state.up = passed;
            state.against = 0;
            match &result {
                Ok(()) => tracing::info!(%ip, "health checks pass again; back in DNS answers"),
                Err(e) => {
                    tracing::warn!(%ip, error = %e, "health checks fail; withdrawn from DNS answers")
                }
            }
        }
    }
    let address = ip.to_string();
    metrics::gauge!("zeitwork_dns_address_up", "address" => address)
        .set(f64::from(u8::from(state.up)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> Check {
        let tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
        Check {
            port: 1,
            host: ServerName::try_from("edge.test").unwrap(),
            tls: Arc::new(tls),
            every: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            fall: 2,
            rise: 3,
        }
    }

    #[test]
    fn an_address_falls_after_fall_failures_and_rises_after_rise_passes() {
        let (c, ip) = (check(), IpAddr::from([192, 0, 2, 1]));
        let mut seen = HashMap::new();
        let fail = || Err("refused".to_owned());
        record(&c, &mut seen, ip, Ok(()));
        record(&c, &mut seen, ip, fail());
        assert!(seen[&ip].up, "one failure is not enough");
        record(&c, &mut seen, ip, Ok(()));
        record(&c, &mut seen, ip, fail());
        assert!(seen[&ip].up, "a pass in between starts the count again");
        record(&c, &mut seen, ip, fail());
        assert!(!seen[&ip].up);
        record(&c, &mut seen, ip, Ok(()));
        record(&c, &mut seen, ip, Ok(()));
        assert!(!seen[&ip].up);
        record(&c, &mut seen, ip, Ok(()));
        assert!(seen[&ip].up);
    }

    #[test]
    fn a_new_address_counts_from_its_first_probe() {
        let (c, ip) = (check(), IpAddr::from([192, 0, 2, 1]));
        let mut seen = HashMap::new();
        record(&c, &mut seen, ip, Err("refused".into()));
        assert!(!seen[&ip].up);
    }

    #[tokio::test]
    async fn a_closed_port_fails_the_probe() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let c = Check { port, ..check() };
        let err = probe(&c, IpAddr::from([127, 0, 0, 1])).await.unwrap_err();
        assert!(err.starts_with("connect"), "{err}");
    }
}
