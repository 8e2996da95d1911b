//! One exec: its command (started through the launcher in [`EXEC_ARG`] mode), a thread
//! per output stream, one feeding its input, one waiting for its end.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};
use zeitwork_core::exec::{Frame, Kind, Open, WINDOW};

use super::{Context, Port};
use crate::launch::EXEC_ARG;
use crate::process::{App, launcher_args};
use crate::{children, program};

/// The largest output chunk read at once (one frame).
const CHUNK: usize = 60 * 1024;
/// How often a blocked output thread looks whether its session ended.
const TICK: Duration = Duration::from_millis(200);
/// `TERM` of a terminal whose client named none.
const DEFAULT_TERM: &str = "xterm";

/// What a session's threads share.
struct Shared {
    id: u32,
    port: Arc<Port>,
    /// Output bytes the host still accepts.
    credit: Mutex<u64>,
    more_credit: Condvar,
    /// Closed by the host: stop everything.
    closed: AtomicBool,
    /// The command ended: output threads stop at the first silence.
    exited: AtomicBool,
    /// The exit was sent.
    done: AtomicBool,
}

impl Shared {
    fn send(&self, kind: Kind, payload: Vec<u8>) -> bool {
        self.port.send(&Frame::new(kind, self.id, payload)).is_ok()
    }

    /// Waits until some output may be sent: how much (0 once closed).
    fn wait_credit(&self) -> usize {
        let mut credit = self.credit.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return 0;
            }
            if *credit > 0 {
                return (*credit).min(CHUNK as u64) as usize;
            }
            credit = self
                .more_credit
                .wait_timeout(credit, TICK)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn spend(&self, n: usize) {
        let mut credit = self.credit.lock().unwrap_or_else(|e| e.into_inner());
        *credit = credit.saturating_sub(n as u64);
    }

    fn grant(&self, n: u32) {
        let mut credit = self.credit.lock().unwrap_or_else(|e| e.into_inner());
        *credit = credit
            .saturating_add(u64::from(n))
            .min(u64::from(WINDOW) * 4);
        self.more_credit.notify_all();
    }
}

/// Input for the feeding thread.
enum Input {
    Data(Vec<u8>),
    Eof,
}

/// A running exec, as the port's reader holds it.
pub struct Handle {
    shared: Arc<Shared>,
    pid: Pid,
    stdin: Sender<Input>,
    /// The terminal's master side (resizes), if it has one.
    terminal: Option<Arc<OwnedFd>>,
}

impl Handle {
    /// Whether its exit was sent (the reader forgets it then).
    pub fn is_done(&self) -> bool {
        self.shared.done.load(Ordering::Relaxed)
    }

    /// A frame from the host for this session.
    pub fn input(&self, frame: Frame) {
        match frame.kind {
            Kind::Stdin => {
                let _ = self.stdin.send(Input::Data(frame.payload));
            }
            Kind::StdinEof => {
                let _ = self.stdin.send(Input::Eof);
            }
            Kind::Credit => {
                if let Ok(n) = frame.as_credit() {
                    self.shared.grant(n);
                }
            }
            Kind::Resize => {
                if let (Some(master), Ok((rows, cols))) = (&self.terminal, frame.as_resize()) {
                    let _ = tcsetwinsize(master.as_fd(), winsize(rows, cols));
                }
            }
            _ => {}
        }
    }

    /// Kills the command and everything in its session.
    pub fn close(self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.more_credit.notify_all();
        let _ = kill(Pid::from_raw(-self.pid.as_raw()), Signal::SIGKILL);
        let _ = kill(self.pid, Signal::SIGKILL);
    }
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows.max(1),
        ws_col: cols.max(1),
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// A new terminal: the master side, the slave side.
fn terminal() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(name.to_string_lossy().as_ref())?;
    tcsetwinsize(&master, winsize(24, 80))?;
    Ok((master, slave.into()))
}

/// Starts `open` as session `id`; the reason when it cannot.
pub fn start(context: &Context, id: u32, open: &Open, port: &Arc<Port>) -> Result<Handle, String> {
    let shared = Arc::new(Shared {
        id,
        port: port.clone(),
        credit: Mutex::new(u64::from(WINDOW)),
        more_credit: Condvar::new(),
        closed: AtomicBool::new(false),
        exited: AtomicBool::new(false),
        done: AtomicBool::new(false),
    });
    let mut env = context.env.clone();
    let program = match program::resolve(&open.argv[0], env.get("PATH").map(String::as_str)) {
        Ok(program) => program,
        Err(e) => {
            // As a shell says it: on stderr, exit 127.
            shared.send(Kind::Stderr, format!("zeitwork exec: {e}\n").into_bytes());
            let _ = shared.port.send(&Frame::exit(id, 127));
            return Ok(finished(shared));
        }
    };
    if let Some(tty) = &open.tty {
        env.insert(
            "TERM".into(),
            tty.term.clone().unwrap_or_else(|| DEFAULT_TERM.into()),
        );
    }
    let app = App {
        program,
        argv: open.argv.clone(),
        env,
        identity: context.identity.clone(),
    };
    let mut args = launcher_args(&app);
    args[0] = EXEC_ARG.to_owned();
    let mut command = Command::new("/proc/self/exe");
    command
        .arg0("zeitwork-init")
        .args(args)
        .env_clear()
        .envs(&app.env);

    let fail = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let (tx, rx) = mpsc::channel();
    let mut outputs: Vec<JoinHandle<()>> = Vec::new();
    let (pid, terminal) = match open.tty {
        Some(_) => {
            let (master, slave) = terminal().map_err(|e| fail("opening a terminal", e))?;
            let stdio = |fd: &OwnedFd| {
                fd.try_clone()
                    .map(Stdio::from)
                    .map_err(|e| fail("sharing the terminal", e))
            };
            command
                .stdin(stdio(&slave)?)
                .stdout(stdio(&slave)?)
                .stderr(stdio(&slave)?);
            let child =
                children::spawn(&mut command).map_err(|e| fail("starting the command", e))?;
            drop(command);
            drop(slave);
            let master = Arc::new(master);
            let reads = File::from(master.try_clone().map_err(|e| fail("terminal", e))?);
            let writes = File::from(master.try_clone().map_err(|e| fail("terminal", e))?);
            outputs.push(pump(shared.clone(), reads, Kind::Stdout));
            feed(shared.clone(), writes, rx, true);
            (child.id(), Some(master))
        }
        None => {
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child =
                children::spawn(&mut command).map_err(|e| fail("starting the command", e))?;
            let (Some(stdin), Some(stdout), Some(stderr)) =
                (child.stdin.take(), child.stdout.take(), child.stderr.take())
            else {
                return Err("the command's pipes are missing".into());
            };
            outputs.push(pump(
                shared.clone(),
                File::from(OwnedFd::from(stdout)),
                Kind::Stdout,
            ));
            outputs.push(pump(
                shared.clone(),
                File::from(OwnedFd::from(stderr)),
                Kind::Stderr,
            ));
            feed(shared.clone(), File::from(OwnedFd::from(stdin)), rx, false);
            (child.id(), None)
        }
    };
    let pid = Pid::from_raw(pid as i32);
    {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let exit = children::wait(pid.as_raw());
            shared.exited.store(true, Ordering::Relaxed);
            for output in outputs {
                let _ = output.join();
            }
            let _ = shared
                .port
                .send(&Frame::exit(shared.id, children::code(exit)));
            shared.done.store(true, Ordering::Relaxed);
        });
    }
    Ok(Handle {
        shared,
        pid,
        stdin: tx,
        terminal,
    })
}

/// A handle for a session that ended before it started (its exit was sent).
fn finished(shared: Arc<Shared>) -> Handle {
    shared.done.store(true, Ordering::Relaxed);
    let (tx, _) = mpsc::channel();
    Handle {
        shared,
        pid: Pid::from_raw(0),
        stdin: tx,
        terminal: None,
    }
}

/// Sends what `from` yields as `kind` frames, within the host's credit, until it ends
/// (end-of-file; `EIO` from a terminal whose command is gone), the session is closed, or
/// the command ended and nothing more comes.
fn pump(shared: Arc<Shared>, mut from: File, kind: Kind) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0; CHUNK];
        loop {
            let allowed = shared.wait_credit();
            if allowed == 0 {
                return;
            }
            let mut fds = [PollFd::new(from.as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(TICK).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) => {
                    // Silence: a background process may hold the stream; once the
                    // command itself ended, that is the end.
                    if shared.exited.load(Ordering::Relaxed) {
                        return;
                    }
                    continue;
                }
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return,
            }
            match fill(&mut from, &mut buf[..allowed]) {
                Ok(0) => return,
                Ok(n) => {
                    shared.spend(n);
                    if !shared.send(kind, buf[..n].to_vec()) {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // EIO: the terminal's last user is gone.
                Err(_) => return,
            }
        }
    })
}

/// Reads what is there now into `buf`, as much as fits: one read, then more while more is
/// ready at once. Fewer, larger frames: each one costs the port a round through the VMM.
fn fill(from: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = from.read(buf)?;
    while n > 0 && n < buf.len() {
        let mut fds = [PollFd::new(from.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1)) {
            break;
        }
        match from.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(more) => n += more,
        }
    }
    Ok(n)
}

/// Writes the host's input to the command, acknowledging each chunk with credit. A
/// terminal ignores end-of-input (the client's Ctrl-D arrives as a byte).
fn feed(shared: Arc<Shared>, mut to: File, input: Receiver<Input>, terminal: bool) {
    std::thread::spawn(move || {
        while let Ok(item) = input.recv() {
            match item {
                Input::Data(bytes) => {
                    // A command that stopped reading loses what comes; the credit still
                    // flows, so the host never waits on it.
                    let _ = to.write_all(&bytes);
                    let credit = Frame::credit(shared.id, bytes.len() as u32);
                    if shared.port.send(&credit).is_err() {
                        return;
                    }
                }
                Input::Eof if terminal => {}
                Input::Eof => return,
            }
        }
    });
}
