//! Exec into the node's instances. The agent has no listener: when a client redeems an
//! exec grant at the operator, the node's desired state lists the exec, and the agent
//! dials the operator back for it (node credential), opens a session on the instance's
//! exec channel (see [`mux`]) and relays frames between the two until the command ends.
//! Output is acknowledged to the guest only once written to the operator, so a slow
//! client slows its own exec and nothing else.

mod mux;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;
use zeitwork_core::exec::{Frame, Kind, Reader, WINDOW};
use zeitwork_core::node::DesiredExec;
use zeitwork_vmm::{Qemu, Vmm};

use crate::Runtime;
use crate::control::ControlPlane;
use mux::Mux;

/// How long an exec the agent saw is remembered (grants live 60 s).
const REMEMBER: Duration = Duration::from_secs(120);

/// An instance's channel, once connected; locked while connecting, so a guest slow to
/// answer holds up execs into itself only.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Mux>>>>;

/// The node's execs and its instances' channels.
#[derive(Clone, Default)]
pub struct Execs {
    /// Execs already taken on, so a later pull does not dial twice.
    seen: Arc<Mutex<HashMap<Uuid, Instant>>>,
    /// One channel per instance, made on the first exec.
    channels: Arc<Mutex<HashMap<Uuid, Slot>>>,
}

impl Execs {
    /// Takes on every exec of `desired` not taken on yet.
    pub(crate) fn sync<V: Vmm + 'static, C: ControlPlane>(
        &self,
        desired: &[DesiredExec],
        runtime: &Arc<Runtime<V>>,
        control: &Arc<C>,
    ) {
        // Channels that ended (their instance stopped) are forgotten; busy slots stay.
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, slot| {
                slot.try_lock()
                    .map_or(true, |mux| mux.as_ref().is_some_and(|m| !m.is_dead()))
            });
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.retain(|_, at| at.elapsed() < REMEMBER);
        for exec in desired {
            if seen.insert(exec.grant_id, Instant::now()).is_some() {
                continue;
            }
            let (execs, runtime, control, exec) =
                (self.clone(), runtime.clone(), control.clone(), exec.clone());
            tokio::spawn(async move {
                let grant = exec.grant_id;
                if let Err(e) = execs.run(exec, &runtime, &*control).await {
                    tracing::warn!(%grant, error = %e, "exec");
                }
            });
        }
    }

    async fn run<V: Vmm + 'static, C: ControlPlane>(
        &self,
        exec: DesiredExec,
        runtime: &Runtime<V>,
        control: &C,
    ) -> Result<(), String> {
        let mut client = control
            .attach_exec(exec.grant_id)
            .await
            .map_err(|e| e.to_string())?;
        let run_dir = runtime.instance_dir(&exec.instance_id.to_string());
        let channel = match self.channel(exec.instance_id, &run_dir).await {
            Ok(channel) => channel,
            Err(reason) => {
                let frame = Frame::error(0, &reason);
                let _ = client.write_all(&frame.encode()).await;
                let _ = client.shutdown().await;
                return Err(reason);
            }
        };
        let open = serde_json::to_vec(&exec.open).expect("an Open serializes");
        let (id, from_guest) = channel.open();
        tracing::info!(grant = %exec.grant_id, instance = %exec.instance_id, session = id, "exec attached");
        let result = match channel.send(&Frame::new(Kind::Open, id, open)).await {
            Ok(()) => relay(&mut client, &channel, id, from_guest).await,
            Err(e) => Err(format!("opening the exec: {e}")),
        };
        channel.forget(id);
        if let Err(reason) = &result {
            let _ = channel.send(&Frame::new(Kind::Close, id, vec![])).await;
            let _ = client.write_all(&Frame::error(0, reason).encode()).await;
        }
        let _ = client.shutdown().await;
        result
    }

    /// The instance's channel: the live one, or a new connection.
    async fn channel(&self, instance: Uuid, run_dir: &std::path::Path) -> Result<Arc<Mux>, String> {
        let slot = self
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(instance)
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(mux) = slot.as_ref().filter(|m| !m.is_dead()) {
            return Ok(mux.clone());
        }
        let socket = Qemu::exec_channel(run_dir);
        if !socket.exists() {
            return Err(format!(
                "instance {instance} has no exec channel on this node (it is not running, or \
                 its VMM offers none)"
            ));
        }
        let mux = Mux::connect(&socket)
            .await
            .map_err(|e| format!("connecting to instance {instance}'s exec channel: {e}"))?;
        *slot = Some(mux.clone());
        Ok(mux)
    }
}

/// Relays one exec: the client's frames to the guest (its input within the guest's
/// credit), the guest's to the client (crediting the guest once written), until the exit.
async fn relay<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    channel: &Mux,
    id: u32,
    mut from_guest: tokio::sync::mpsc::UnboundedReceiver<Frame>,
) -> Result<(), String> {
    let mut input_credit = u64::from(WINDOW);
    // Output written to the client, not yet credited back: sent in quarters of the window,
    // so the guest is not woken for every frame.
    let mut owed = 0u32;
    let mut reader = Reader::new();
    let mut buf = vec![0; 64 * 1024];
    let lost = |e: std::io::Error| format!("the instance's exec channel failed: {e}");
    loop {
        tokio::select! {
            frame = from_guest.recv() => {
                let Some(frame) = frame else {
                    return Err("the instance's exec channel closed (the instance stopped?)".into());
                };
                match frame.kind {
                    Kind::Stdout | Kind::Stderr => {
                        owed += frame.payload.len() as u32;
                        client
                            .write_all(&Frame::new(frame.kind, 0, frame.payload).encode())
                            .await
                            .map_err(|e| format!("the client went away: {e}"))?;
                        if owed >= WINDOW / 4 {
                            channel.send(&Frame::credit(id, owed)).await.map_err(lost)?;
                            owed = 0;
                        }
                    }
                    Kind::Credit => {
                        input_credit += u64::from(frame.as_credit().unwrap_or(0));
                    }
                    Kind::Exit | Kind::Error => {
                        let done = Frame::new(frame.kind, 0, frame.payload);
                        let _ = client.write_all(&done.encode()).await;
                        let _ = client.flush().await;
                        return Ok(());
                    }
                    _ => {}
                }
            }
            read = client.read(&mut buf), if input_credit > 0 => {
                let n = read.map_err(|e| format!("the client went away: {e}"))?;
                if n == 0 {
                    return Err("the client went away".into());
                }
                reader.push(&buf[..n]);
                while let Some(frame) = reader.next_frame().map_err(|e| e.to_string())? {
                    match frame.kind {
                        Kind::Stdin => {
                            input_credit = input_credit.saturating_sub(frame.payload.len() as u64);
                        }
                        Kind::StdinEof | Kind::Resize | Kind::Close => {}
                        // Nothing else is the client's to send.
                        _ => continue,
                    }
                    let close = frame.kind == Kind::Close;
                    channel
                        .send(&Frame::new(frame.kind, id, frame.payload))
                        .await
                        .map_err(lost)?;
                    if close {
                        return Err("the client closed the exec".into());
                    }
                }
            }
        }
    }
}
