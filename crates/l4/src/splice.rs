//! Copying bytes both ways between two streams, as `tokio::io::copy_bidirectional` does
//! (an EOF from one side shuts the other's write half, and the other direction flows on
//! until it ends too), but never longer than `idle` without a byte in either direction:
//! a client or an instance that goes quiet, or reads nothing, cannot hold a connection
//! (and its buffers and file descriptors) open forever. Used by every relay: the load
//! balancer's, the edge's `tcp`/`tls-passthrough` routes and upgraded HTTP connections.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// How long a relayed connection may stay silent both ways by default.
pub const RELAY_IDLE: Duration = Duration::from_secs(15 * 60);

const CHUNK: usize = 16 * 1024;

/// Copies `a` → `b` and `b` → `a` until both directions ended; the bytes sent each way.
/// Fails with [`io::ErrorKind::TimedOut`] once nothing moved for `idle` (a write that
/// does not drain counts as nothing moving).
pub async fn splice<A, B>(a: A, b: B, idle: Duration) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let moved = AtomicU64::new(0);
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let both = async {
        tokio::try_join!(
            pump(&mut a_read, &mut b_write, &moved, start),
            pump(&mut b_read, &mut a_write, &moved, start),
        )
    };
    tokio::pin!(both);
    loop {
        let last = Duration::from_millis(moved.load(Ordering::Relaxed));
        let quiet = start.elapsed().saturating_sub(last);
        let Some(left) = idle.checked_sub(quiet).filter(|l| !l.is_zero()) else {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing moved for {idle:?}"),
            ));
        };
        tokio::select! {
            done = &mut both => return done,
            _ = tokio::time::sleep(left) => {}
        }
    }
}

/// Copies one direction; on its EOF, shuts the other side's write half.
async fn pump<R, W>(from: &mut R, to: &mut W, moved: &AtomicU64, start: Instant) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            to.shutdown().await?;
            return Ok(total);
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        total += n as u64;
        moved.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_flow_both_ways_and_half_closes_pass_on() {
        let (client, mut client_far) = tokio::io::duplex(64);
        let (server, mut server_far) = tokio::io::duplex(64);
        let relay = tokio::spawn(splice(client, server, Duration::from_secs(5)));
        client_far.write_all(b"ping").await.unwrap();
        client_far.shutdown().await.unwrap();
        let mut got = Vec::new();
        server_far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping", "the EOF reached the far side");
        server_far.write_all(b"pong").await.unwrap();
        server_far.shutdown().await.unwrap();
        let mut back = Vec::new();
        client_far.read_to_end(&mut back).await.unwrap();
        assert_eq!(
            back, b"pong",
            "the other direction flowed on after the half-close"
        );
        assert_eq!(relay.await.unwrap().unwrap(), (4, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_ended_and_a_busy_one_is_not() {
        let (client, mut client_far) = tokio::io::duplex(64);
        let (server, mut server_far) = tokio::io::duplex(64);
        let relay = tokio::spawn(splice(client, server, Duration::from_secs(60)));
        // Busy: a byte every 40 s keeps it open past the idle bound.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(40)).await;
            client_far.write_all(b"x").await.unwrap();
            let mut one = [0u8; 1];
            server_far.read_exact(&mut one).await.unwrap();
        }
        assert!(!relay.is_finished());
        // Silent: ended once 60 s pass without a byte.
        tokio::time::sleep(Duration::from_secs(61)).await;
        let e = relay.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
