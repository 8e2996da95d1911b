//! Idle connections to instances, per worker (a connection belongs to the runtime whose
//! reactor drives it): the freshest is reused first, and one idle longer than the
//! instance is likely to keep it open is closed instead of tried.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::super::forward::CONNECT_TIMEOUT;

/// Idle connections kept per instance.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused (most servers close
/// idle keep-alive connections after a minute or more).
const MAX_IDLE_AGE: Duration = Duration::from_secs(50);

#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<(TcpStream, Instant)>>>,
}

/// A connection to an instance, and whether it served a request before.
pub(super) struct Upstream {
    pub stream: TcpStream,
    pub reused: bool,
}

impl Pool {
    /// An idle connection to `addr`, else a new one.
    pub(super) async fn checkout(&self, addr: SocketAddr) -> std::io::Result<Upstream> {
        if let Some(stream) = self.take(addr) {
            return Ok(Upstream {
                stream,
                reused: true,
            });
        }
        self.connect(addr).await
    }

    /// A new connection to `addr`.
    pub(super) async fn connect(&self, addr: SocketAddr) -> std::io::Result<Upstream> {
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr));
        let stream = connect.await.map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
        })??;
        stream.set_nodelay(true)?;
        Ok(Upstream {
            stream,
            reused: false,
        })
    }

    fn take(&self, addr: SocketAddr) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let streams = idle.get_mut(&addr)?;
        while let Some((stream, since)) = streams.pop() {
            if since.elapsed() < MAX_IDLE_AGE {
                return Some(stream);
            }
        }
        None
    }

    /// Keeps a connection whose last exchange ended cleanly.
    pub(super) fn checkin(&self, addr: SocketAddr, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let streams = idle.entry(addr).or_default();
        if streams.len() < MAX_IDLE {
            streams.push((stream, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_reused_freshest_first_and_new_ones_made_otherwise() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::default();
        let first = pool.checkout(addr).await.unwrap();
        assert!(!first.reused);
        let port = first.stream.local_addr().unwrap().port();
        pool.checkin(addr, first.stream);
        let again = pool.checkout(addr).await.unwrap();
        assert!(again.reused);
        assert_eq!(again.stream.local_addr().unwrap().port(), port);
        let other = pool.checkout(addr).await.unwrap();
        assert!(!other.reused, "the pool was empty");
    }
}
