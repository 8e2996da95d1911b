//! The ports of `tcp` routes. Every worker listens on each port a route holds (shared
//! with SO_REUSEPORT like the HTTP ports, so the kernel spreads connections and a new
//! edge can take the ports over), opening and closing them as tables are swapped in.
//! A port that cannot be bound (another program holds it) is reported once and tried
//! again with every table, that is within the resync interval.

use std::collections::HashSet;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::task::Poll;

use tokio::net::{TcpListener, TcpStream};

use crate::table::RoutingTable;
use crate::workers::bind_shared;

pub(super) struct TcpPorts {
    /// Where the ports are opened; `None`: this edge serves no `tcp` routes.
    ip: Option<IpAddr>,
    open: Vec<(u16, TcpListener)>,
    /// Ports that could not be bound, already reported.
    failed: HashSet<u16>,
    /// Where the next accept starts looking, so one busy port starves no other.
    next: usize,
}

impl TcpPorts {
    pub(super) fn new(ip: Option<IpAddr>) -> TcpPorts {
        TcpPorts {
            ip,
            open: Vec::new(),
            failed: HashSet::new(),
            next: 0,
        }
    }

    /// Opens the ports of new routes and closes those no route holds any more
    /// (connections already relayed on them go on).
    pub(super) fn follow(&mut self, table: &RoutingTable) {
        let Some(ip) = self.ip else {
            return;
        };
        let wanted: HashSet<u16> = table.tcp_ports().collect();
        self.open.retain(|(port, _)| wanted.contains(port));
        self.failed.retain(|port| wanted.contains(port));
        for port in wanted {
            if self.open.iter().any(|(p, _)| *p == port) {
                continue;
            }
            match bind_shared(SocketAddr::new(ip, port)) {
                Ok(listener) => {
                    if self.failed.remove(&port) {
                        tracing::info!(port, "listening for a tcp route at last");
                    }
                    self.open.push((port, listener));
                }
                Err(e) => {
                    if self.failed.insert(port) {
                        tracing::warn!(%ip, port, error = %e, "cannot listen for a tcp route; trying again with every routing table");
                    }
                }
            }
        }
    }

    /// The next client of any port, and the port; never, while none is open.
    pub(super) async fn accept(&mut self) -> (u16, io::Result<(TcpStream, SocketAddr)>) {
        poll_fn(|cx| {
            let n = self.open.len();
            for i in 0..n {
                let (port, listener) = &self.open[(self.next + i) % n];
                if let Poll::Ready(accepted) = listener.poll_accept(cx) {
                    self.next = (self.next + i + 1) % n;
                    return Poll::Ready((*port, accepted));
                }
            }
            Poll::Pending
        })
        .await
    }

    /// The ports open right now.
    #[cfg(test)]
    fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.open.iter().map(|(p, _)| *p).collect();
        ports.sort();
        ports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_an_address_no_port_is_opened() {
        let mut ports = TcpPorts::new(None);
        ports.follow(&RoutingTable::with_tcp_ports(&[20000]));
        assert!(ports.ports().is_empty());
    }

    #[tokio::test]
    async fn ports_follow_the_table_and_a_taken_port_is_retried() {
        // A port some other program holds (no SO_REUSEPORT): it cannot be shared.
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = other.local_addr().unwrap().port();
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let free_port = free.local_addr().unwrap().port();
        drop(free);
        let mut ports = TcpPorts::new(Some("127.0.0.1".parse().unwrap()));
        ports.follow(&RoutingTable::with_tcp_ports(&[taken, free_port]));
        assert_eq!(ports.ports(), [free_port]);
        drop(other);
        ports.follow(&RoutingTable::with_tcp_ports(&[taken, free_port]));
        let mut both = vec![taken, free_port];
        both.sort();
        assert_eq!(ports.ports(), both);
        ports.follow(&RoutingTable::with_tcp_ports(&[taken]));
        assert_eq!(ports.ports(), [taken]);
        let refused = TcpStream::connect(("127.0.0.1", free_port)).await;
        assert!(refused.is_err(), "a closed port refuses");
        let client = TcpStream::connect(("127.0.0.1", taken)).await.unwrap();
        let (port, accepted) = ports.accept().await;
        assert_eq!(port, taken);
        assert_eq!(
            accepted.unwrap().1,
            client.local_addr().unwrap(),
            "the client's connection was accepted"
        );
    }
}
