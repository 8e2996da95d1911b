//! An answer's body on to the client as it came: by length, chunk by chunk (followed
//! with the guard's chunk parser, trailers included) or until the instance closes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::super::guard::Chunk;
use super::wire::Framing;
use super::{Buffers, CHUNK};

/// How an answer's body went.
pub(super) struct Relayed {
    /// The client has all of it and the connection may carry another answer.
    pub whole: bool,
    /// The instance sent nothing after it: its connection may carry another request.
    pub clean: bool,
}

/// A client that takes longer than this to take one piece of an answer (at most
/// [`CHUNK`] bytes) is cut off: a reader that reads nothing would otherwise hold the
/// instance's connection and the lane's buffers for as long as it liked.
const SLOW_READER: Duration = Duration::from_secs(60);

const BROKEN: Relayed = Relayed {
    whole: false,
    clean: false,
};

/// Sends the head in `bufs.out` with the body: what came with the head in `bufs.down`
/// (after `head_len`), then the rest as it arrives, framed as it came.
pub(super) async fn pass_body<S: AsyncWrite + Unpin>(
    framing: Framing,
    upstream: &mut tokio::net::TcpStream,
    client: &mut S,
    head_len: usize,
    bufs: &mut Buffers,
) -> Relayed {
    let Buffers { down, out, .. } = bufs;
    let rest = &down[head_len..];
    match framing {
        Framing::Empty => Relayed {
            whole: write(client, out).await,
            clean: rest.is_empty(),
        },
        Framing::Length(length) => {
            let now = (rest.len() as u64).min(length) as usize;
            out.extend_from_slice(&rest[..now]);
            let clean = rest.len() == now;
            if !write(client, out).await {
                return BROKEN;
            }
            let mut left = length - now as u64;
            while left > 0 {
                down.clear();
                let mut room = bytes::BufMut::limit(&mut *down, left.min(CHUNK as u64) as usize);
                match upstream.read_buf(&mut room).await {
                    Ok(n) if n > 0 => left -= n as u64,
                    _ => return BROKEN,
                }
                if !write(client, down).await {
                    return BROKEN;
                }
            }
            Relayed { whole: true, clean }
        }
        Framing::Chunked => {
            let mut chunk = Chunk::default();
            let Ok((used, mut done)) = chunk.advance(rest) else {
                return BROKEN;
            };
            out.extend_from_slice(&rest[..used]);
            let mut clean = used == rest.len();
            if !write(client, out).await {
                return BROKEN;
            }
            while !done {
                down.clear();
                down.reserve(CHUNK);
                if !matches!(upstream.read_buf(down).await, Ok(n) if n > 0) {
                    return BROKEN;
                }
                let Ok((used, ended)) = chunk.advance(down) else {
                    return BROKEN;
                };
                done = ended;
                clean &= used == down.len();
                if !write(client, &down[..used]).await {
                    return BROKEN;
                }
            }
            Relayed { whole: true, clean }
        }
        Framing::UntilClose => {
            out.extend_from_slice(rest);
            if !write(client, out).await {
                return BROKEN;
            }
            loop {
                down.clear();
                down.reserve(CHUNK);
                match upstream.read_buf(down).await {
                    Ok(0) => {
                        return Relayed {
                            whole: true,
                            clean: false,
                        };
                    }
                    Ok(_) if write(client, down).await => {}
                    _ => return BROKEN,
                }
            }
        }
    }
}

/// Writes and flushes (TLS holds records back until then); whether it all went.
/// A client slower than [`SLOW_READER`] fails it.
pub(super) async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> bool {
    let sent = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    matches!(tokio::time::timeout(SLOW_READER, sent).await, Ok(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_nothing_is_cut_off() {
        // The client stays connected but reads nothing.
        let (mut edge, client) = tokio::io::duplex(1024);
        let answer = vec![b'x'; 4096];
        let started = tokio::time::Instant::now();
        assert!(!write(&mut edge, &answer).await, "nobody read it");
        assert_eq!(started.elapsed(), SLOW_READER);
        // A reader that keeps up gets it all.
        let (mut edge, mut reader) = tokio::io::duplex(1024);
        let drain = tokio::spawn(async move {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.map(|_| got.len())
        });
        assert!(write(&mut edge, &answer).await);
        drop(edge);
        assert_eq!(drain.await.unwrap().unwrap(), 4096);
        drop(client);
    }
}
