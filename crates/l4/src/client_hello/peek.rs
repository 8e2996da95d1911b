//! Reading a ClientHello off a connection, keeping every byte read so the caller can
//! replay them to whichever upstream the hello routes to.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{ClientHello, HelloError, MAX_HELLO_BYTES, Parsed, parse};

/// How much is asked of the socket per read when the framing does not say more.
const READ_CHUNK: usize = 4096;

/// Reads from `stream`, appending to `buf`, until `buf` starts with a whole ClientHello,
/// and returns it. Bytes already in `buf` count as read. `buf` keeps every byte read (at
/// most [`MAX_HELLO_BYTES`], possibly a little past the hello) for the caller to send
/// upstream first. A client that has not sent a whole hello within `timeout` is given
/// up on, so slow clients cannot hold connections open for free.
pub async fn peek_client_hello<R>(
    stream: &mut R,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> Result<ClientHello, HelloError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    match tokio::time::timeout(timeout, read(stream, buf)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(HelloError::Timeout(timeout)),
    }
}

/// Cancel-safe: `read_buf` only ever appends whole reads, so a timeout leaves `buf`
/// holding exactly the bytes received.
async fn read<R>(stream: &mut R, buf: &mut Vec<u8>) -> Result<ClientHello, HelloError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    // Parsing again is pointless until the bytes the framing asked for have arrived.
    let mut parse_at = 0;
    loop {
        if buf.len() >= parse_at {
            match parse(buf)? {
                Parsed::Complete(hello) => return Ok(hello),
                Parsed::Incomplete { needed_hint } => {
                    parse_at = buf.len() + needed_hint.unwrap_or(1);
                }
            }
        }
        let room = MAX_HELLO_BYTES.saturating_sub(buf.len());
        if room == 0 {
            return Err(HelloError::TooLarge {
                limit: MAX_HELLO_BYTES,
            });
        }
        let want = parse_at.saturating_sub(buf.len()).max(READ_CHUNK).min(room);
        buf.reserve(want);
        let n = (&mut *stream).take(want as u64).read_buf(buf).await?;
        if n == 0 {
            return Err(HelloError::Closed {
                received: buf.len(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::client_hello::testing::{fragment, rustls_hello};

    const LONG: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn reads_a_hello_sent_in_pieces_and_keeps_every_byte() {
        let hello = fragment(&rustls_hello(Some("app.test"), &[b"h2"]), 100);
        let (mut client, mut server) = tokio::io::duplex(64);
        let sent = hello.clone();
        let writer = tokio::spawn(async move {
            for piece in sent.chunks(37) {
                client.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            client.write_all(b"early data").await.unwrap();
            client
        });
        let mut buf = Vec::new();
        let got = peek_client_hello(&mut server, &mut buf, LONG)
            .await
            .unwrap();
        assert_eq!(got.server_name.as_deref(), Some("app.test"));
        assert_eq!(got.len, hello.len());
        assert!(
            buf.starts_with(&hello),
            "the bytes to replay are kept in order"
        );
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn a_hello_already_in_the_buffer_needs_no_read() {
        let hello = rustls_hello(Some("a.test"), &[]);
        let mut buf = hello.clone();
        let mut nothing: &[u8] = &[];
        let got = peek_client_hello(&mut nothing, &mut buf, LONG)
            .await
            .unwrap();
        assert_eq!((got.server_name.as_deref(), buf), (Some("a.test"), hello));
    }

    #[tokio::test]
    async fn slow_closed_and_garbage_clients_are_refused() {
        let hello = rustls_hello(Some("a.test"), &[]);
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        client.write_all(&hello[..50]).await.unwrap();
        let mut buf = Vec::new();
        let timeout = Duration::from_millis(50);
        let slow = peek_client_hello(&mut server, &mut buf, timeout).await;
        assert!(matches!(slow, Err(HelloError::Timeout(t)) if t == timeout));
        assert_eq!(buf, hello[..50], "a timeout keeps what was received");

        drop(client);
        let closed = peek_client_hello(&mut server, &mut buf, LONG).await;
        assert!(
            matches!(closed, Err(HelloError::Closed { received: 50 })),
            "{closed:?}"
        );

        let mut http: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        let garbage = peek_client_hello(&mut http, &mut Vec::new(), LONG).await;
        assert!(matches!(
            garbage,
            Err(HelloError::NotTls { first_byte: b'G' })
        ));
    }

    #[tokio::test]
    async fn a_hello_that_would_not_fit_is_refused_before_it_is_read() {
        // A handshake header announcing 70 000 bytes, and nothing else.
        let mut stream: &[u8] = &[22, 3, 1, 0, 4, 1, 1, 0x11, 0x70];
        let err = peek_client_hello(&mut stream, &mut Vec::new(), LONG).await;
        assert!(
            matches!(
                err,
                Err(HelloError::TooLarge {
                    limit: MAX_HELLO_BYTES
                })
            ),
            "{err:?}"
        );
    }
}
