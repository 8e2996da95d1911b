//! Sending a head (and a body) to an instance over the lane's pool and reading the head
//! of its answer, with the hyper path's rules for trying another instance.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::super::balance::{Backends, Candidate};
use super::super::guard::head_end;
use super::pool::{Pool, Upstream};
use super::{CHUNK, MAX_RESPONSE_HEAD, MAX_RESPONSE_HEADERS};

/// A request for an instance: its head, the body, and whether it may be sent twice.
pub(super) struct Outgoing<'a> {
    pub head: &'a [u8],
    pub body: Body<'a>,
    pub idempotent: bool,
}

/// The first instance of `plan` that answers `request` (the body read on from `client`)
/// with a head, read into `down`; the next is tried where that is safe, as the hyper
/// path does (`forward.rs`): a connection that could not be made always, a kept one the
/// instance had closed meanwhile on a new connection, and an idempotent request once
/// more elsewhere, as long as none of the body was streamed.
pub(super) async fn send<S: AsyncRead + Unpin>(
    pool: &Pool,
    backends: &Backends,
    plan: Vec<Candidate>,
    request: &mut Outgoing<'_>,
    client: &mut S,
    down: &mut Vec<u8>,
) -> Result<Answer, Failed> {
    let Outgoing {
        head,
        body,
        idempotent,
    } = request;
    let (mut retried, mut last) = (false, String::from("no instance to send to"));
    'instances: for candidate in plan {
        let mut fresh = false;
        loop {
            let upstream = match fresh {
                true => pool.connect(candidate.addr).await,
                false => pool.checkout(candidate.addr).await,
            };
            let mut upstream = match upstream {
                Ok(upstream) => upstream,
                Err(e) => {
                    // Nothing was sent: any instance may have the request.
                    backends.failed(&candidate, true);
                    last = format!("{}: {e}", candidate.addr);
                    continue 'instances;
                }
            };
            let in_flight = backends.begin(&candidate);
            let exchanged = exchange(&mut upstream, head, body, client, down).await;
            drop(in_flight);
            match exchanged {
                Ok(head_len) => {
                    return Ok(Answer {
                        upstream,
                        candidate,
                        head_len,
                    });
                }
                Err(Broken::Client) => return Err(Failed::ClientGone),
                Err(Broken::Upstream { answered, error }) => {
                    let replayable = !body.streamed;
                    // A kept connection the instance had closed meanwhile: not its fault.
                    if upstream.reused && !answered && replayable && !fresh {
                        fresh = true;
                        continue;
                    }
                    backends.failed(&candidate, false);
                    last = format!("{}: {error}", candidate.addr);
                    tracing::warn!(backend = %candidate.addr, %error, "upstream request failed");
                    if replayable && *idempotent && !retried {
                        retried = true;
                        continue 'instances;
                    }
                    return Err(Failed::Unreachable(last));
                }
            }
        }
    }
    Err(Failed::Unreachable(last))
}

/// An instance's answer: its head is the first `head_len` bytes of `down`.
pub(super) struct Answer {
    pub upstream: Upstream,
    pub candidate: Candidate,
    pub head_len: usize,
}

/// The request body: what came with the head, and how much is still on the wire.
pub(super) struct Body<'a> {
    pub early: &'a [u8],
    pub left: u64,
    /// Some of it was read from the client and sent: it cannot be sent again.
    pub streamed: bool,
}

pub(super) enum Failed {
    ClientGone,
    Unreachable(String),
}

enum Broken {
    Client,
    Upstream { answered: bool, error: String },
}

/// Sends the head (in `up`) and the body to the instance and reads the answer's head
/// into `down` (informational answers skipped): its length.
async fn exchange<S: AsyncRead + Unpin>(
    upstream: &mut Upstream,
    up: &[u8],
    body: &mut Body<'_>,
    client: &mut S,
    down: &mut Vec<u8>,
) -> Result<usize, Broken> {
    let broken = |answered: bool| {
        move |e: std::io::Error| Broken::Upstream {
            answered,
            error: e.to_string(),
        }
    };
    let conn = &mut upstream.stream;
    let mut head = bytes::Buf::chain(up, body.early);
    conn.write_all_buf(&mut head).await.map_err(broken(false))?;
    while body.left > 0 {
        down.clear();
        down.resize(body.left.min(CHUNK as u64) as usize, 0);
        let n = match client.read(down).await {
            Ok(0) | Err(_) => return Err(Broken::Client),
            Ok(n) => n,
        };
        body.streamed = true;
        body.left -= n as u64;
        conn.write_all(&down[..n]).await.map_err(broken(false))?;
    }
    down.clear();
    loop {
        if let Some(end) = head_end(&[], down) {
            let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
            let mut res = httparse::Response::new(&mut headers);
            let code = match res.parse(&down[..end]) {
                Ok(httparse::Status::Complete(_)) => res.code.unwrap_or(0),
                _ => return Ok(end), // reported as malformed by the caller
            };
            if (100..200).contains(&code) && code != 101 {
                down.drain(..end);
                continue;
            }
            if code == 101 {
                return Err(Broken::Upstream {
                    answered: true,
                    error: "switched protocols unasked".into(),
                });
            }
            return Ok(end);
        }
        if down.len() > MAX_RESPONSE_HEAD {
            return Err(Broken::Upstream {
                answered: true,
                error: "answer head too long".into(),
            });
        }
        down.reserve(CHUNK);
        let answered = !down.is_empty();
        match conn.read_buf(down).await {
            Ok(0) => {
                return Err(Broken::Upstream {
                    answered,
                    error: "connection closed before an answer".into(),
                });
            }
            Ok(_) => {}
            Err(e) => return Err(broken(answered)(e)),
        }
    }
}
