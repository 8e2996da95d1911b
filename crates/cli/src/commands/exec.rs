//! `zeitwork exec`: run a command in a running instance. The CLI asks the API for a
//! single-use grant, redeems it on a connection upgraded to exec frames
//! (`zeitwork_core::exec`), and relays: its stdin (with `-i`) to the command, the
//! command's output to its stdout and stderr, the terminal's size (with `-t`), and at the
//! end the command's exit code as its own.

use std::io::IsTerminal;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use uuid::Uuid;
use zeitwork_api_types::{ExecGrant, ExecRequest};
use zeitwork_core::exec::{Frame, Kind, Reader};

use crate::context::{Ctx, Scope};
use crate::error::{CliError, Result};

#[derive(Debug, clap::Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// This instance (its id, from `zeitwork status`) [default: a healthy one of --process]
    #[arg(long, value_name = "ID")]
    pub instance: Option<Uuid>,
    /// An instance of this process [default: the one the app's hostnames serve]
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,
    /// Pass this terminal's stdin to the command (without it the command's stdin is empty)
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a terminal (PTY): window size, Ctrl-C, job control; stdin must be one
    #[arg(short, long)]
    pub tty: bool,
    /// The command and its arguments, after `--`
    #[arg(required = true, value_name = "COMMAND", num_args = 1..)]
    pub command: Vec<String>,
}

pub async fn exec(ctx: &Ctx, args: ExecArgs) -> Result<()> {
    if args.tty && !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "-t needs a terminal on stdin; leave it out to run with pipes".into(),
        ));
    }
    let term = std::env::var("TERM")
        .ok()
        .filter(|term| args.tty && zeitwork_core::exec::check_term(term).is_ok());
    let body = ExecRequest {
        command: args.command,
        instance: args.instance,
        process: args.process,
        tty: args.tty,
        term,
    };
    let client = ctx.client()?;
    let granted: ExecGrant = client
        .post(&ctx.path(Scope::Env, &["exec"])?, &body)
        .await?;
    let grant = ["exec".to_owned(), granted.grant_id.to_string()];
    let connection = client.upgrade(&grant, &granted.token).await?;
    let raw = args.tty.then(RawMode::enter);
    let code = relay(connection, args.interactive || args.tty, args.tty).await;
    drop(raw);
    match code? {
        0 => Ok(()),
        code => Err(CliError::Exited(u8::try_from(code).unwrap_or(1))),
    }
}

/// Relays until the command's exit: its code.
async fn relay(connection: reqwest::Upgraded, input: bool, tty: bool) -> Result<i32> {
    let (mut from, mut to) = tokio::io::split(connection);
    let (frames, mut outgoing) = mpsc::channel::<Frame>(16);
    let writer = tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if to.write_all(&frame.encode()).await.is_err() {
                return;
            }
        }
    });
    if input {
        forward_stdin(frames.clone());
    } else {
        let _ = frames.send(Frame::new(Kind::StdinEof, 0, vec![])).await;
    }
    if tty {
        tokio::spawn(forward_resizes(frames.clone()));
    }
    drop(frames);
    let mut reader = Reader::new();
    let mut buf = vec![0; 64 * 1024];
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let lost = |why: String| CliError::Protocol(format!("the exec connection broke: {why}"));
    let code = 'relay: loop {
        let n = from.read(&mut buf).await.map_err(|e| lost(e.to_string()))?;
        if n == 0 {
            return Err(lost("it closed before the command's exit".into()));
        }
        reader.push(&buf[..n]);
        while let Some(frame) = reader.next_frame().map_err(|e| lost(e.to_string()))? {
            match frame.kind {
                Kind::Stdout => {
                    stdout
                        .write_all(&frame.payload)
                        .await
                        .map_err(|_| CliError::OutputClosed)?;
                    stdout.flush().await.map_err(|_| CliError::OutputClosed)?;
                }
                Kind::Stderr => {
                    let _ = stderr.write_all(&frame.payload).await;
                }
                Kind::Exit => break 'relay frame.as_exit().map_err(|e| lost(e.to_string()))?,
                Kind::Error => {
                    return Err(CliError::Protocol(format!(
                        "exec failed: {}",
                        String::from_utf8_lossy(&frame.payload)
                    )));
                }
                _ => {}
            }
        }
    };
    writer.abort();
    Ok(code)
}

/// Sends stdin as `Stdin` frames, then `StdinEof`, from a thread of its own: a blocking
/// read cannot be cancelled, and tokio's stdin would hold the runtime's shutdown until the
/// user pressed a key after the command ended.
fn forward_stdin(frames: mpsc::Sender<Frame>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0; 32 * 1024];
        loop {
            match std::io::Read::read(&mut stdin, &mut buf) {
                Ok(0) | Err(_) => {
                    let _ = frames.blocking_send(Frame::new(Kind::StdinEof, 0, vec![]));
                    return;
                }
                Ok(n) => {
                    let frame = Frame::new(Kind::Stdin, 0, buf[..n].to_vec());
                    if frames.blocking_send(frame).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// Sends the terminal's size now and after every change (SIGWINCH).
async fn forward_resizes(frames: mpsc::Sender<Frame>) {
    let Ok(mut changes) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    else {
        return;
    };
    loop {
        if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdout()) {
            let frame = Frame::resize(0, size.ws_row, size.ws_col);
            if frames.send(frame).await.is_err() {
                return;
            }
        }
        if changes.recv().await.is_none() {
            return;
        }
    }
}

/// The terminal in raw mode (every key to the command, no local echo), restored on drop.
struct RawMode {
    saved: Option<rustix::termios::Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            raw.make_raw();
            let _ = tcsetattr(&stdin, OptionalActions::Now, &raw);
        }
        RawMode { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}
