//! One task per wanted instance: boot it (or take over the VM a previous agent left
//! running), check its health, ship its console, restart it with exponential back-off
//! when it ends, and stop it when it is no longer wanted. Every transition is reported.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;
use zeitwork_core::guest::Exit;
use zeitwork_core::node::{DesiredInstance, HealthCheck, ObservedState};
use zeitwork_vmm::{VmExit, Vmm};

use crate::control::ControlPlane;
use crate::health::{Verdict, probe};
use crate::logs::{self, Console};
use crate::reporter::Reporter;
use crate::{Instance, InstanceSpec, Runtime};

/// First pause before a restart; doubled per consecutive failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// An instance that ran this long before ending starts over at [`FIRST_BACKOFF`].
const STABLE: Duration = Duration::from_secs(60);
/// Time an app gets to exit after a stop request before its VM is killed.
const GRACE: Duration = Duration::from_secs(10);
/// Time an instance that serves keeps serving once it is told to stop, before its app
/// is asked to exit: edges drop it at their next routing-table refresh (tens of
/// milliseconds after the change), and a request one of them sends it meanwhile is
/// answered instead of reset.
const DEREGISTER: Duration = Duration::from_secs(1);

/// What supervisors share.
pub struct Context<V, C> {
    pub runtime: Arc<Runtime<V>>,
    pub control: Arc<C>,
    pub reporter: Reporter,
}

impl<V, C> Clone for Context<V, C> {
    fn clone(&self) -> Self {
        Context {
            runtime: self.runtime.clone(),
            control: self.control.clone(),
            reporter: self.reporter.clone(),
        }
    }
}

/// A running supervisor; [`Supervised::stop`] ends it.
pub struct Supervised {
    pub net_index: u32,
    stop: watch::Sender<bool>,
    pub task: JoinHandle<()>,
}

impl Supervised {
    pub fn spawn<V: Vmm + 'static, C: ControlPlane>(
        ctx: Context<V, C>,
        spec: DesiredInstance,
        net_index: u32,
        adopted: Option<Instance>,
    ) -> Supervised {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(ctx, spec, net_index, adopted, stopped));
        Supervised {
            net_index,
            stop,
            task,
        }
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

async fn supervise<V: Vmm + 'static, C: ControlPlane>(
    ctx: Context<V, C>,
    spec: DesiredInstance,
    net_index: u32,
    mut adopted: Option<Instance>,
    mut stop: watch::Receiver<bool>,
) {
    let id = spec.instance_id;
    let report =
        |state, reason, address, restarts| ctx.reporter.send(id, state, reason, address, restarts);
    let (mut restarts, mut backoff) = (0u32, FIRST_BACKOFF);
    loop {
        let (instance, log_offset) = match adopted.take() {
            Some(instance) => {
                let dir = instance.dir.clone();
                (instance, Console::in_dir(id, &dir).saved_offset().await)
            }
            None => match boot(&ctx, &spec, net_index, restarts, &mut stop).await {
                Some(Ok(instance)) => (instance, 0),
                Some(Err(reason)) => {
                    report(ObservedState::Failed, Some(reason), None, restarts);
                    restarts += 1;
                    if pause(&mut stop, &mut backoff).await {
                        report(ObservedState::Stopped, None, None, restarts);
                        return;
                    }
                    continue;
                }
                None => {
                    report(ObservedState::Stopped, None, None, restarts);
                    return;
                }
            },
        };
        let started = Instant::now();
        // Its IPv6 address: unique platform-wide (`zeitwork_core::ipam`), unlike the IPv4
        // one, which every node reuses.
        let address = instance
            .port
            .map(|port| SocketAddr::new(instance.addrs.guest6.into(), port));
        let (ended_tx, ended) = watch::channel(false);
        let console = Console::in_dir(id, &instance.dir);
        let shipper = tokio::spawn(logs::ship(ctx.control.clone(), console, log_offset, ended));
        let health = tokio::spawn(watch_health(
            ctx.reporter.clone(),
            id,
            spec.clone(),
            address,
            restarts,
        ));
        let dir = instance.dir.clone();
        let asked = stop.clone();
        let exit = instance
            .wait_or_stop(
                stopping(
                    stop.clone(),
                    || report(ObservedState::Stopping, None, address, restarts),
                    address.map_or(Duration::ZERO, |_| DEREGISTER),
                ),
                GRACE,
            )
            .await;
        health.abort();
        let _ = ended_tx.send(true);
        let _ = shipper.await;
        if *asked.borrow() {
            // A stop on request says how the app ended only when it ended by itself.
            let reason = match &exit {
                Ok(exit @ VmExit::App(_)) => Some(describe(exit)),
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            };
            report(ObservedState::Stopped, reason, None, restarts);
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return;
        }
        let reason = match exit {
            Ok(exit) => describe(&exit),
            Err(e) => e.to_string(),
        };
        restarts += 1;
        report(ObservedState::Failed, Some(reason), None, restarts);
        if started.elapsed() >= STABLE {
            backoff = FIRST_BACKOFF;
        }
        if pause(&mut stop, &mut backoff).await {
            report(ObservedState::Stopped, None, None, restarts);
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return;
        }
    }
}

/// Pulls and boots; None when a stop arrived meanwhile (the VM, if any, is stopped).
async fn boot<V: Vmm + 'static, C: ControlPlane>(
    ctx: &Context<V, C>,
    spec: &DesiredInstance,
    net_index: u32,
    restarts: u32,
    stop: &mut watch::Receiver<bool>,
) -> Option<Result<Instance, String>> {
    let id = spec.instance_id;
    let state = |s| ctx.reporter.send(id, s, None, None, restarts);
    state(ObservedState::Pulling);
    let auth = ctx.runtime.config.pull_auth(&spec.image);
    let pulled = tokio::select! {
        pulled = ctx.runtime.images().rootfs(&spec.image, &auth) => pulled,
        _ = stop.wait_for(|s| *s) => return None,
    };
    if let Err(e) = pulled {
        return Some(Err(format!("pulling {}: {e}", spec.image)));
    }
    state(ObservedState::Booting);
    let started = ctx.runtime.start(&instance_spec(spec, net_index)).await;
    if *stop.borrow() {
        if let Ok(instance) = started {
            let _ = instance.stop(GRACE).await;
        }
        return None;
    }
    Some(started.map_err(|e| format!("booting: {e}")))
}

fn instance_spec(spec: &DesiredInstance, net_index: u32) -> InstanceSpec {
    InstanceSpec {
        id: spec.instance_id.to_string(),
        image: spec.image.clone(),
        command: spec.command.clone(),
        env: spec.env_vars.clone(),
        secrets: spec.secrets.clone(),
        port: spec.port,
        port_from_image: spec.served,
        vcpus: spec.vcpus.max(1),
        memory_mb: spec.memory_mb,
        cpu_weight: spec.cpu_weight,
        net_index,
    }
}

/// Resolves `linger` after a stop is asked, having told the operator the instance is
/// stopping.
async fn stopping(mut stop: watch::Receiver<bool>, announce: impl FnOnce(), linger: Duration) {
    let _ = stop.wait_for(|s| *s).await;
    announce();
    tokio::time::sleep(linger).await;
}

/// Waits out the back-off (doubling it); true when a stop arrived meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>, backoff: &mut Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    let stopped = tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}

/// Probes until aborted, reporting each change of verdict. An instance with an address
/// and no check in its manifest gets [`HealthCheck::DEFAULT_TCP`].
async fn watch_health(
    reporter: Reporter,
    id: Uuid,
    spec: DesiredInstance,
    address: Option<SocketAddr>,
    restarts: u32,
) {
    let report = |state, reason| reporter.send(id, state, reason, address, restarts);
    let (check, addr) = match without_probe(&spec, address) {
        Ok(probed) => probed,
        Err((state, reason)) => return report(state, reason),
    };
    let mut verdict = Verdict::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(check.interval_ms.max(50)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let result = probe(addr, &check).await;
        match verdict.record(result.is_ok(), &check) {
            Some(true) => report(ObservedState::Healthy, None),
            Some(false) => report(ObservedState::Unhealthy, result.err()),
            None => {}
        }
    }
}

/// What to probe, or the verdict that needs no probe: an instance without a port is
/// healthy once booted unless its process serves the deployment's URLs, where nothing
/// could reach it; that one is unhealthy, saying why (never `healthy` while the edge
/// has nowhere to send a request).
fn without_probe(
    spec: &DesiredInstance,
    address: Option<SocketAddr>,
) -> Result<(HealthCheck, SocketAddr), (ObservedState, Option<String>)> {
    match address {
        Some(addr) => Ok((
            spec.health.clone().unwrap_or(HealthCheck::DEFAULT_TCP),
            addr,
        )),
        None if spec.served => Err((
            ObservedState::Unhealthy,
            Some(format!(
                "nothing to route to: process {p} has no port and its image exposes none (set processes.{p}.port in zeitwork.toml, or EXPOSE one)",
                p = spec.process
            )),
        )),
        None => Err((ObservedState::Healthy, None)),
    }
}

/// A VM's end in words for the operator and the CLI.
pub fn describe(exit: &VmExit) -> String {
    match exit {
        VmExit::App(Exit::Code(code)) => format!("the app exited with code {code}"),
        VmExit::App(Exit::Signal(signal)) => format!("the app was killed by signal {signal}"),
        VmExit::OutOfMemory => "out of memory: the app used more than its memory limit".into(),
        VmExit::InitFailed(reason) => format!("the instance could not start: {reason}"),
        VmExit::Crashed(tail) => {
            let last = tail.lines().rev().find(|l| !l.trim().is_empty());
            format!("the VM ended unexpectedly: {}", last.unwrap_or("no output"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_read_well() {
        assert_eq!(
            describe(&VmExit::App(Exit::Code(3))),
            "the app exited with code 3"
        );
        assert!(describe(&VmExit::OutOfMemory).starts_with("out of memory"));
        assert_eq!(
            describe(&VmExit::Crashed("a\nlast words\n\n".into())),
            "the VM ended unexpectedly: last words"
        );
    }

    fn desired(process: &str, served: bool, health: Option<HealthCheck>) -> DesiredInstance {
        DesiredInstance {
            instance_id: Uuid::nil(),
            org: "acme".into(),
            app: "shop".into(),
            env: "prod".into(),
            deployment_id: Uuid::nil(),
            process: process.into(),
            image: "x".into(),
            command: None,
            env_vars: Default::default(),
            secrets: Default::default(),
            port: None,
            vcpus: 1,
            memory_mb: 128,
            cpu_weight: 100,
            health,
            served,
        }
    }

    #[test]
    fn an_instance_nothing_can_reach_is_never_healthy() {
        let addr: SocketAddr = "172.31.0.1:8000".parse().unwrap();
        let (state, reason) = without_probe(&desired("web", true, None), None).unwrap_err();
        assert_eq!(state, ObservedState::Unhealthy);
        let reason = reason.unwrap();
        assert!(
            reason.starts_with("nothing to route to: process web has no port"),
            "{reason}"
        );
        assert!(reason.contains("processes.web.port"), "{reason}");
        assert_eq!(
            without_probe(&desired("worker", false, None), None).unwrap_err(),
            (ObservedState::Healthy, None),
            "a worker nobody routes to is healthy once booted"
        );
        assert_eq!(
            without_probe(&desired("web", true, None), Some(addr)).unwrap(),
            (HealthCheck::DEFAULT_TCP, addr),
            "a port from the image is probed like any other"
        );
    }

    #[tokio::test]
    async fn back_off_doubles_up_to_the_cap_and_yields_to_a_stop() {
        let (tx, mut rx) = watch::channel(false);
        let mut backoff = Duration::from_millis(1);
        assert!(!pause(&mut rx, &mut backoff).await);
        assert_eq!(backoff, Duration::from_millis(2));
        let mut big = Duration::from_secs(50);
        tx.send(true).unwrap();
        assert!(pause(&mut rx, &mut big).await, "a stop ends the pause");
        assert_eq!(big, MAX_BACKOFF);
    }
}
