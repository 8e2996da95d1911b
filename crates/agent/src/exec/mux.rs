//! One connection to an instance's exec channel, shared by all its execs: sessions are
//! numbered here, frames from the guest go to their session's queue (bounded by the
//! credit the session grants, see [`zeitwork_core::exec::WINDOW`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;
use zeitwork_core::exec::{Frame, Kind, Reader};

/// How long a fresh connection waits for the guest's answer to `Hello`: init starts its
/// exec service right after the app, so on a just-booted instance this covers the boot's
/// last steps.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// A live connection to one instance's exec service.
pub struct Mux {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    sessions: Mutex<HashMap<u32, mpsc::UnboundedSender<Frame>>>,
    next: AtomicU32,
    dead: AtomicBool,
}

impl Mux {
    /// Connects to the channel at `socket` and greets the guest; frames still in flight
    /// from an earlier connection are skipped.
    pub async fn connect(socket: &Path) -> std::io::Result<Arc<Mux>> {
        let stream = UnixStream::connect(socket).await?;
        let (mut read, mut write) = stream.into_split();
        let nonce: [u8; 8] = rand::random();
        write
            .write_all(&Frame::new(Kind::Hello, 0, nonce.to_vec()).encode())
            .await?;
        let marker = Frame::new(Kind::HelloAck, 0, nonce.to_vec()).encode();
        let mut reader = Reader::new();
        let mut buf = vec![0; 64 * 1024];
        let greeted = tokio::time::timeout(HELLO_TIMEOUT, async {
            loop {
                let n = read.read(&mut buf).await?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the exec channel closed before the guest answered",
                    ));
                }
                reader.push(&buf[..n]);
                if reader.skip_past(&marker) {
                    return Ok(());
                }
            }
        })
        .await;
        match greeted {
            Ok(result) => result?,
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the instance's exec service did not answer within {}s",
                        HELLO_TIMEOUT.as_secs()
                    ),
                ));
            }
        }
        let mux = Arc::new(Mux {
            writer: tokio::sync::Mutex::new(write),
            sessions: Mutex::new(HashMap::new()),
            next: AtomicU32::new(1),
            dead: AtomicBool::new(false),
        });
        let reading = mux.clone();
        tokio::spawn(async move {
            let why = reading.read_loop(read, reader, buf).await;
            tracing::debug!(reason = %why, "an exec channel closed");
            reading.dead.store(true, Ordering::Relaxed);
            // Every session's queue ends: each tells its client the channel is gone.
            reading.sessions().clear();
        });
        Ok(mux)
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<u32, mpsc::UnboundedSender<Frame>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn read_loop(
        &self,
        mut read: tokio::net::unix::OwnedReadHalf,
        mut reader: Reader,
        mut buf: Vec<u8>,
    ) -> String {
        loop {
            loop {
                match reader.next_frame() {
                    Ok(Some(frame)) => {
                        if frame.session == 0 && frame.kind == Kind::Error {
                            return String::from_utf8_lossy(&frame.payload).into_owned();
                        }
                        let sessions = self.sessions();
                        if let Some(queue) = sessions.get(&frame.session) {
                            let _ = queue.send(frame);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return e.to_string(),
                }
            }
            match read.read(&mut buf).await {
                Ok(0) => return "end of file".into(),
                Ok(n) => reader.push(&buf[..n]),
                Err(e) => return e.to_string(),
            }
        }
    }

    /// Whether the connection ended (a new one is needed).
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// A new session: its number and the queue of the guest's frames for it.
    pub fn open(&self) -> (u32, mpsc::UnboundedReceiver<Frame>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.sessions().insert(id, tx);
        (id, rx)
    }

    /// Forgets a session (its exit came, or its client left).
    pub fn forget(&self, id: u32) {
        self.sessions().remove(&id);
    }

    /// Sends one frame to the guest.
    pub async fn send(&self, frame: &Frame) -> std::io::Result<()> {
        self.writer.lock().await.write_all(&frame.encode()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;
    use zeitwork_core::exec::HEADER;

    const HEADER_AND_NONCE: usize = HEADER + 8;

    /// A guest's side of the channel: leftovers of an earlier connection first (half a
    /// frame and a stale exit), then the answer to `Hello`, then one session's output.
    async fn guest(listener: UnixListener) {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut stale = Frame::exit(7, 1).encode();
        stale.extend(&Frame::new(Kind::Stdout, 1, b"stale".to_vec()).encode()[..6]);
        stream.write_all(&stale).await.unwrap();
        let mut reader = Reader::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the agent hung up");
            reader.push(&buf[..n]);
            while let Some(frame) = reader.next_frame().unwrap() {
                match frame.kind {
                    Kind::Hello => {
                        let ack = Frame::new(Kind::HelloAck, 0, frame.payload);
                        stream.write_all(&ack.encode()).await.unwrap();
                    }
                    Kind::Open => {
                        let id = frame.session;
                        let open = frame.as_open().unwrap();
                        let out = Frame::new(Kind::Stdout, id, open.argv.join(" ").into_bytes());
                        stream.write_all(&out.encode()).await.unwrap();
                        stream
                            .write_all(&Frame::exit(id, 3).encode())
                            .await
                            .unwrap();
                        return;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }

    #[tokio::test]
    async fn a_fresh_connection_skips_leftovers_and_routes_frames_to_their_session() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("exec.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let guest = tokio::spawn(guest(listener));
        let mux = Mux::connect(&socket).await.unwrap();
        let (other, mut other_rx) = mux.open();
        let (id, mut rx) = mux.open();
        assert_ne!(other, id);
        let open = br#"{"argv":["echo","hi"]}"#.to_vec();
        mux.send(&Frame::new(Kind::Open, id, open)).await.unwrap();
        let out = rx.recv().await.unwrap();
        assert_eq!((out.kind, out.payload), (Kind::Stdout, b"echo hi".to_vec()));
        assert_eq!(rx.recv().await.unwrap().as_exit(), Ok(3));
        guest.await.unwrap();
        // The guest hung up: the connection is dead, every session's queue ends.
        assert_eq!(rx.recv().await, None);
        assert_eq!(other_rx.recv().await, None);
        assert!(mux.is_dead());
    }

    #[tokio::test]
    async fn a_guest_that_never_answers_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("exec.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        // Reads the greeting and closes: as a VM that is going away.
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut hello = [0u8; HEADER_AND_NONCE];
            stream.read_exact(&mut hello).await.unwrap();
        });
        let err = Mux::connect(&socket).await.err().unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
