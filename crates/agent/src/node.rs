//! The agent's main loop: recover what a previous agent left, then pull the desired
//! state whenever a notification says it moved past our cursor, poll while NATS is
//! away, heartbeat, and resync in full now and then as a safety net.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use tokio::time::Instant;
use zeitwork_bus::NatsBus;
use zeitwork_core::node::{DesiredInstance, Heartbeat, NodeState};
use zeitwork_core::overlay::{MAX_PEERS, OverlayPeer, PeerSeen};
use zeitwork_net::{Overlay, Peer, keeps_alive};
use zeitwork_vmm::Vmm;

use crate::control::ControlPlane;
use crate::reconcile::{Changes, Reconciler};
use crate::reporter::Reporter;
use crate::supervisor::Context;
use crate::{AgentError, Runtime};

#[derive(Debug, Clone)]
pub struct LoopConfig {
    pub heartbeat: Duration,
    /// How often the desired state is pulled while notifications cannot arrive.
    pub poll: Duration,
    /// Mean time between full resyncs; each wait is drawn from [½, 1½] of it so that
    /// a fleet does not resync in lockstep.
    pub resync: Duration,
    /// How often cached images no instance uses are removed.
    pub image_gc: Duration,
    /// Stop every instance when the loop ends (`zeitwork up`), instead of leaving them
    /// running for the next agent to adopt (`zeitwork server agent`).
    pub stop_instances_on_exit: bool,
}

impl Default for LoopConfig {
    fn default() -> LoopConfig {
        LoopConfig {
            heartbeat: Duration::from_secs(5),
            poll: Duration::from_secs(2),
            resync: Duration::from_secs(3600),
            image_gc: Duration::from_secs(600),
            stop_instances_on_exit: false,
        }
    }
}

pub struct NodeAgent<V, C> {
    control: Arc<C>,
    /// Each instance's CPU use between heartbeats, for the autoscaler.
    cpu: crate::cpu::CpuMeter,
    runtime: Arc<Runtime<V>>,
    reconciler: Reconciler<V, C>,
    /// The builds this agent runs (see [`crate::build`]).
    builds: crate::build::Builds,
    /// Execs into the node's instances (see [`crate::exec`]).
    execs: crate::exec::Execs,
    /// Log position of the desired state last converged to.
    cursor: i64,
    /// Whether the last pull failed (then polling continues whatever NATS says).
    stale: bool,
    /// Whether NATS was away at the last poll: notifications sent meanwhile are lost,
    /// so one more pull follows its return.
    deaf: bool,
    /// The node's end of the WireGuard overlay and its public key, when it is on it:
    /// peers follow the desired state, handshakes go out with each heartbeat.
    overlay: Option<(Overlay, String)>,
    /// The peers last applied without error: an unchanged list is not applied again
    /// (most pulls are about instances), except by a resync.
    peers_applied: Option<Vec<OverlayPeer>>,
}

impl<V: Vmm + 'static, C: ControlPlane> NodeAgent<V, C> {
    /// Adopts the instances a previous agent left running (when still wanted), removes
    /// everything else it left, and converges once.
    pub async fn start(runtime: Runtime<V>, control: C) -> Result<NodeAgent<V, C>, AgentError> {
        let control = Arc::new(control);
        let reporter = Reporter::default();
        tokio::spawn(reporter.clone().run(control.clone()));
        let specs_dir = runtime.config.state_dir.join("agent").join("specs");
        let runtime = Arc::new(runtime);
        let ctx = Context {
            runtime: runtime.clone(),
            control: control.clone(),
            reporter,
        };
        let mut agent = NodeAgent {
            control,
            cpu: crate::cpu::CpuMeter::default(),
            runtime,
            reconciler: Reconciler::new(ctx, specs_dir),
            builds: crate::build::Builds::default(),
            execs: crate::exec::Execs::default(),
            cursor: 0,
            stale: true,
            deaf: false,
            overlay: None,
            peers_applied: None,
        };
        let mut builds = Vec::new();
        let (seq, desired) = match agent.control.desired().await {
            Ok(desired) => {
                builds = desired.builds;
                (Some(desired.seq), desired.instances)
            }
            Err(e) => {
                // No control plane: keep what this node last knew it had to run.
                tracing::warn!(error = %e, "the operator is unreachable; keeping the instances saved by the previous agent");
                (None, agent.reconciler.saved().await)
            }
        };
        agent.reconciler.adopt(&desired).await?;
        agent.reconciler.clean_orphans().await?;
        // After the clean-up, which removes every build a previous agent left.
        agent.builds.sync(&builds, &agent.runtime, &agent.control);
        match seq {
            Some(seq) => {
                agent.converge(seq, &desired).await?;
            }
            None => {
                agent.reconciler.converge(&desired).await?;
            }
        }
        Ok(agent)
    }

    /// Puts the node on the overlay (its interface is up): the first pull of [`run`]
    /// peers it.
    ///
    /// [`run`]: NodeAgent::run
    pub fn with_overlay(mut self, overlay: Overlay, public_key: String) -> NodeAgent<V, C> {
        self.overlay = Some((overlay, public_key));
        self.peers_applied = None;
        self.stale = true;
        self
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(
        mut self,
        bus: Option<NatsBus>,
        node_id: uuid::Uuid,
        config: LoopConfig,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut notes = match &bus {
            Some(bus) => subscribe(bus, node_id).await,
            None => futures::stream::empty().boxed(),
        };
        let mut heartbeat = tokio::time::interval(config.heartbeat);
        let mut poll = tokio::time::interval(config.poll);
        let mut resync_at = next_resync(config.resync);
        let mut image_gc =
            tokio::time::interval_at(Instant::now() + config.image_gc, config.image_gc);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                Some(note) = notes.next() => {
                    if note.seq > self.cursor {
                        self.pull(false).await;
                    }
                }
                _ = poll.tick() => {
                    let deaf = bus.as_ref().is_none_or(|b| !b.is_connected());
                    if deaf || self.deaf || self.stale {
                        self.pull(false).await;
                    }
                    self.deaf = deaf;
                }
                _ = heartbeat.tick() => self.heartbeat().await,
                _ = image_gc.tick() => self.reconciler.collect_images().await,
                _ = tokio::time::sleep_until(resync_at) => {
                    self.pull(true).await;
                    resync_at = next_resync(config.resync);
                }
                () = &mut shutdown => break,
            }
        }
        if config.stop_instances_on_exit {
            self.reconciler.stop_all().await;
        }
    }

    async fn pull(&mut self, resync: bool) {
        let desired = match self.control.desired().await {
            Ok(desired) => desired,
            Err(e) => {
                if !self.stale {
                    tracing::warn!(error = %e, "pulling the desired state; instances keep running, retrying");
                }
                self.stale = true;
                return;
            }
        };
        self.builds
            .sync(&desired.builds, &self.runtime, &self.control);
        self.execs
            .sync(&desired.execs, &self.runtime, &self.control);
        let unchanged = !resync && self.peers_applied.as_ref() == Some(&desired.peers);
        if let Some((overlay, mine)) = &self.overlay
            && !unchanged
        {
            let list = peers(mine, &desired.peers);
            let applied = overlay.set_peers(&list).await;
            match &applied {
                Ok(()) => nudge_later(overlay.clone(), list),
                Err(e) => tracing::error!(error = %e, "configuring the overlay's peers"),
            }
            // Edges on the other nodes reach this node's instances from their own overlay
            // addresses.
            let edges: Vec<std::net::Ipv6Addr> = desired
                .peers
                .iter()
                .flat_map(|p| &p.allowed_ips)
                .filter_map(|prefix| zeitwork_core::ipam::overlay_address(prefix))
                .collect();
            let let_in = self.runtime.firewall.set_overlay_edges(&edges).await;
            if let Err(e) = &let_in {
                tracing::error!(error = %e, "letting the other nodes' edges in");
            }
            // A failure is tried again at the next pull.
            self.peers_applied = (applied.is_ok() && let_in.is_ok()).then(|| desired.peers.clone());
        }
        // Changes found by a resync should have arrived as notifications: one was lost
        // (or a bug let the node drift). Either way it is repaired here and must be seen.
        match self.converge(desired.seq, &desired.instances).await {
            Ok(changes) if resync && !changes.is_empty() => {
                metrics::counter!("zeitwork_agent_drift_repairs_total").increment(1);
                tracing::warn!(
                    ?changes,
                    seq = desired.seq,
                    "resync found drift between this node and the desired state; repaired"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "converging"),
        }
    }

    async fn converge(
        &mut self,
        seq: i64,
        instances: &[DesiredInstance],
    ) -> Result<Changes, AgentError> {
        let changes = self.reconciler.converge(instances).await?;
        if !changes.is_empty() {
            tracing::info!(
                seq,
                started = changes.started.len(),
                adopted = changes.adopted.len(),
                stopped = changes.stopped.len(),
                "converged"
            );
        }
        self.cursor = seq;
        self.stale = false;
        Ok(changes)
    }

    async fn heartbeat(&mut self) {
        let beat = Heartbeat {
            running: u32::try_from(self.reconciler.running()).unwrap_or(u32::MAX),
            cpu: self.cpu.measure(|id| {
                let dir = self.runtime.instance_dir(&id.to_string());
                dir.join(crate::logs::BUSY_FILE).exists()
            }),
            overlay: self.handshakes().await,
        };
        match self.control.heartbeat(&beat).await {
            Ok(ack) if ack.state == NodeState::Dead => {
                // We were declared dead while away; what moved is no longer ours.
                self.pull(false).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "heartbeat"),
        }
    }
}

impl<V, C> NodeAgent<V, C> {
    /// How recently each overlay peer answered; nothing off the overlay.
    async fn handshakes(&self) -> Vec<PeerSeen> {
        let Some((overlay, _)) = &self.overlay else {
            return Vec::new();
        };
        match overlay.handshakes().await {
            Ok(seen) => seen
                .into_iter()
                .take(MAX_PEERS)
                .map(|h| PeerSeen {
                    public_key: h.public_key,
                    handshake_age_seconds: h.age_seconds,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the overlay's handshakes");
                Vec::new()
            }
        }
    }
}

/// Peers the node's overlay from the desired state now, before its runtime is ready
/// (preparing the guest kernel takes seconds): the other nodes reach it as soon as it has
/// enrolled. The run loop's first pull applies the peers again, with the firewall.
pub async fn join_overlay<C: ControlPlane>(
    control: &C,
    overlay: &Overlay,
    public_key: &str,
) -> Result<usize, String> {
    let desired = control.desired().await.map_err(|e| e.to_string())?;
    let list = peers(public_key, &desired.peers);
    overlay.set_peers(&list).await.map_err(|e| e.to_string())?;
    let count = list.len();
    nudge_later(overlay.clone(), list);
    Ok(count)
}

/// How long after peering a node starts the handshakes its peers' first initiations
/// failed to.
const NUDGE_AFTER: Duration = Duration::from_secs(1);

/// WireGuard retries a lost first handshake only after 5 s (REKEY_TIMEOUT), and a peer's
/// first initiation is lost when it arrives before this node knows the peer (the peer
/// learned of this node first). [`NUDGE_AFTER`] peering, this node sends one datagram
/// to each peer that has not handshaken and that it does not keep alive itself (those
/// get an initiation the moment they are set): WireGuard starts a handshake from this
/// side, which the peer, knowing this node by now, answers.
fn nudge_later(overlay: Overlay, peers: Vec<Peer>) {
    tokio::spawn(async move {
        tokio::time::sleep(NUDGE_AFTER).await;
        let seen = overlay.handshakes().await.unwrap_or_default();
        let socket = match tokio::net::UdpSocket::bind("[::]:0").await {
            Ok(s) => s,
            Err(e) => return tracing::debug!(error = %e, "no socket to nudge overlay peers"),
        };
        for peer in peers.iter().filter(|p| !p.keepalive) {
            let handshaken = seen
                .iter()
                .any(|h| h.public_key == peer.public_key && h.age_seconds.is_some());
            let address = peer
                .allowed_ips
                .first()
                .and_then(|prefix| zeitwork_core::ipam::overlay_address(prefix));
            if let (false, Some(address)) = (handshaken, address) {
                // The discard port: the datagram only has to leave through the tunnel.
                let _ = socket.send_to(&[0], (address, 9)).await;
            }
        }
    });
}

/// The desired peers as the overlay of the node with key `mine` takes them: the first
/// endpoint (IPv6 first), keepalives from one side of each pair.
fn peers(mine: &str, desired: &[OverlayPeer]) -> Vec<Peer> {
    desired
        .iter()
        .map(|p| Peer {
            public_key: p.public_key.clone(),
            endpoint: p.endpoints.first().cloned(),
            allowed_ips: p.allowed_ips.clone(),
            keepalive: keeps_alive(mine, &p.public_key),
        })
        .collect()
}

async fn subscribe(
    bus: &NatsBus,
    node_id: uuid::Uuid,
) -> futures::stream::BoxStream<'static, zeitwork_bus::Notification> {
    let prefix = zeitwork_bus::PREFIX;
    let mut streams = Vec::new();
    for subject in [
        format!("{prefix}.instances.node.{node_id}"),
        format!("{prefix}.instances"),
        // Nodes joining, leaving or moving: the overlay's peers.
        format!("{prefix}.nodes"),
    ] {
        match bus.subscribe(&subject).await {
            Ok(stream) => streams.push(stream.boxed()),
            Err(e) => tracing::warn!(error = %e, "subscribing; polling instead"),
        }
    }
    futures::stream::select_all(streams).boxed()
}

fn next_resync(mean: Duration) -> Instant {
    let factor = rand::thread_rng().gen_range(0.5..1.5);
    Instant::now() + mean.mul_f64(factor)
}
