//! The exec service: runs commands in the instance for `zeitwork exec`, as the app's user
//! with the app's environment (the secrets file is the app's too), each in its own
//! session, with pipes or a terminal (see [`zeitwork_core::exec`] for the frames).
//!
//! The node's agent reaches it through a virtio-serial port named
//! [`PORT_NAME`](zeitwork_core::exec::PORT_NAME) (QEMU; no vsock needed on the host). One
//! connection carries every exec of the instance. When the agent disconnects, reads return
//! end-of-file until it connects again: every session is killed, and the next connection
//! starts with `Hello`, answered with `HelloAck` so the agent knows where fresh frames
//! begin.

mod session;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zeitwork_core::exec::{Frame, Kind, PORT_NAME, Reader};

use crate::console;
use crate::user::Identity;

/// How long the service looks for its port after boot (a VMM without one: no exec).
const FIND_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a disconnected port is read again.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Commands one instance runs at once.
const MAX_SESSIONS: usize = 32;

/// What every exec's command gets from the app.
#[derive(Debug, Clone)]
pub struct Context {
    /// The app's environment (with `HOME`).
    pub env: BTreeMap<String, String>,
    pub identity: Identity,
}

/// The port, shared by every session's writers.
pub struct Port {
    file: Mutex<File>,
}

impl Port {
    /// Sends one frame (whole, under the lock).
    pub fn send(&self, frame: &Frame) -> std::io::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(&frame.encode())
    }
}

/// Starts the service on a thread of its own.
pub fn serve(context: Context) {
    std::thread::spawn(move || {
        let Some(device) = find_port(FIND_TIMEOUT) else {
            console::debug(|| format!("no {PORT_NAME} port: exec is unavailable"));
            return;
        };
        let context = Arc::new(context);
        loop {
            if let Err(e) = serve_port(&device, &context) {
                console::say(&format!("zeitwork-init: exec: {}: {e}", device.display()));
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    });
}

/// `/dev/vportNpM` of the port named [`PORT_NAME`] (named by the host shortly after the
/// device appears).
fn find_port(timeout: Duration) -> Option<PathBuf> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(entries) = std::fs::read_dir("/sys/class/virtio-ports") {
            for entry in entries.flatten() {
                let name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
                if name.trim() == PORT_NAME {
                    return Some(PathBuf::from("/dev").join(entry.file_name()));
                }
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(IDLE_POLL);
    }
}

/// Serves connections on the port until it fails.
fn serve_port(device: &PathBuf, context: &Arc<Context>) -> std::io::Result<()> {
    let mut input = OpenOptions::new().read(true).write(true).open(device)?;
    let port = Arc::new(Port {
        file: Mutex::new(input.try_clone()?),
    });
    let mut sessions: BTreeMap<u32, session::Handle> = BTreeMap::new();
    let mut reader = Reader::new();
    // A connection whose frames cannot be decoded is ignored until it ends.
    let mut broken = false;
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            // The host is not connected (any more).
            close_all(&mut sessions);
            reader = Reader::new();
            broken = false;
            std::thread::sleep(IDLE_POLL);
            continue;
        }
        if broken {
            continue;
        }
        reader.push(&buf[..n]);
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => handle(frame, &mut sessions, &port, context),
                Ok(None) => break,
                Err(e) => {
                    console::say(&format!(
                        "zeitwork-init: exec: {e}; dropping the connection"
                    ));
                    close_all(&mut sessions);
                    let _ = port.send(&Frame::error(0, &e.to_string()));
                    broken = true;
                    break;
                }
            }
        }
        sessions.retain(|_, s| !s.is_done());
    }
}

fn close_all(sessions: &mut BTreeMap<u32, session::Handle>) {
    for (_, s) in std::mem::take(sessions) {
        s.close();
    }
}

fn handle(
    frame: Frame,
    sessions: &mut BTreeMap<u32, session::Handle>,
    port: &Arc<Port>,
    context: &Arc<Context>,
) {
    let id = frame.session;
    match frame.kind {
        Kind::Hello => {
            close_all(sessions);
            let _ = port.send(&Frame::new(Kind::HelloAck, 0, frame.payload));
        }
        Kind::Open => {
            let started = if sessions.contains_key(&id) {
                Err(format!("session {id} is open already"))
            } else if sessions.len() >= MAX_SESSIONS {
                Err(format!(
                    "this instance runs {MAX_SESSIONS} execs already; wait for one to end"
                ))
            } else {
                frame
                    .as_open()
                    .map_err(|e| e.to_string())
                    .and_then(|open| session::start(context, id, &open, port))
            };
            match started {
                Ok(handle) => {
                    sessions.insert(id, handle);
                }
                Err(reason) => {
                    let _ = port.send(&Frame::error(id, &reason));
                }
            }
        }
        Kind::Stdin | Kind::StdinEof | Kind::Resize | Kind::Credit => {
            if let Some(s) = sessions.get(&id) {
                s.input(frame);
            }
        }
        Kind::Close => {
            if let Some(s) = sessions.remove(&id) {
                s.close();
            }
        }
        // Frames only the guest sends.
        Kind::HelloAck | Kind::Stdout | Kind::Stderr | Kind::Exit | Kind::Error => {}
    }
}
