//! Reading a PROXY v2 header off a connection.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Decoded, FIXED_LEN, Header, ProxyError, decode};

/// Reads exactly one PROXY v2 header from the start of `stream` and nothing more, so the
/// stream continues with the client's first byte (a TLS hello, an HTTP request, …). The
/// fixed part is checked before the rest is awaited; a sender that has not sent the whole
/// header within `timeout` is given up on.
pub async fn read_header<R>(stream: &mut R, timeout: Duration) -> Result<Header, ProxyError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    match tokio::time::timeout(timeout, read(stream)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(ProxyError::Timeout(timeout)),
    }
}

async fn read<R>(stream: &mut R) -> Result<Header, ProxyError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut buf = vec![0; FIXED_LEN];
    stream.read_exact(&mut buf).await?;
    loop {
        match decode(&buf)? {
            Decoded::Complete { header, .. } => return Ok(header),
            Decoded::Incomplete { needed } => {
                let start = buf.len();
                buf.resize(start + needed, 0);
                stream.read_exact(&mut buf[start..]).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::proxy_v2::encode;

    const LONG: Duration = Duration::from_secs(10);

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn reads_the_header_and_leaves_the_data() {
        let header = encode(addr("[2001:db8::1]:4321"), addr("[2001:db8::2]:443"));
        let mut bytes = header.clone();
        bytes.extend(b"GET / HTTP/1.1\r\n");
        let mut stream = &bytes[..];
        let got = read_header(&mut stream, LONG).await.unwrap();
        assert_eq!(got.source(), Some(addr("[2001:db8::1]:4321")));
        assert_eq!(
            stream, b"GET / HTTP/1.1\r\n",
            "nothing past the header was read"
        );
    }

    #[tokio::test]
    async fn a_header_sent_in_pieces_is_awaited() {
        let header = encode(addr("192.0.2.1:1"), addr("192.0.2.2:2"));
        let (mut client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for byte in header {
                client.write_all(&[byte]).await.unwrap();
            }
            client
        });
        let got = read_header(&mut server, LONG).await.unwrap();
        assert_eq!(got.source(), Some(addr("192.0.2.1:1")));
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn garbage_short_and_slow_streams_are_refused() {
        let mut http: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let got = read_header(&mut http, LONG).await;
        assert!(matches!(got, Err(ProxyError::Signature)), "{got:?}");

        let header = encode(addr("192.0.2.1:1"), addr("192.0.2.2:2"));
        let mut cut = &header[..20];
        let got = read_header(&mut cut, LONG).await;
        assert!(
            matches!(got, Err(ProxyError::Io(ref e)) if e.kind() == std::io::ErrorKind::UnexpectedEof)
        );

        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(&header[..10]).await.unwrap();
        let timeout = Duration::from_millis(50);
        let got = read_header(&mut server, timeout).await;
        assert!(matches!(got, Err(ProxyError::Timeout(t)) if t == timeout));
    }
}
