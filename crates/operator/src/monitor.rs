//! The operator's watch over nodes, run in every operator: each round it (a) declares
//! nodes whose agents fell silent dead, replaces their instances elsewhere and fails
//! their builds, (a') supersedes standby deployments whose window ended or whose room
//! is needed, (b) stops
//! instances whose replacement reports healthy (the end of a drain) and those of
//! deployments superseded by a healthy one (the end of a rollout), and (c) places
//! instances that waited for room.
//!
//! Several operators may run it at once. Each kind of work is first looked for without
//! the append lock (cheap, and usually there is none), then decided again under it in
//! the transaction that records it, so no two operators do the same work twice.

use std::future::Future;

use zeitwork_core::EventData;
use zeitwork_core::build::BuildState;
use zeitwork_core::node::NodeState;
use zeitwork_store::{Store, StoreError, agents, log, read};

use crate::relocate::{self, Handover};
use crate::rollout;
use crate::state::Config;

/// The actor of the events the monitor writes.
const ACTOR: &str = "system";

/// Runs rounds every `config.monitor_interval` until `shutdown` resolves. A failed
/// round (database away) is logged; the next one starts over from the database.
pub async fn run(store: Store, config: Config, shutdown: impl Future<Output = ()>) {
    let mut ticker = tokio::time::interval(config.monitor_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticker.tick() => {}
        }
        if let Err(e) = round(&store, &config).await {
            tracing::warn!(error = %e, "node monitor round failed; retrying next round");
        }
    }
}

/// One round of the monitor.
pub async fn round(store: &Store, config: &Config) -> Result<(), StoreError> {
    bury_silent_nodes(store, config).await?;
    end_standbys(store).await?;
    stop_handed_over(store, Handover::Replaced).await?;
    stop_handed_over(store, Handover::Superseded).await?;
    place_waiting(store, config).await
}

async fn bury_silent_nodes(store: &Store, config: &Config) -> Result<(), StoreError> {
    let dead_after = config.node_dead_after;
    if agents::silent_nodes(store.pool(), dead_after, false)
        .await?
        .is_empty()
    {
        return Ok(());
    }
    let mut tx = store.begin().await?;
    log::lock(&mut tx).await?;
    for name in agents::silent_nodes(&mut *tx, dead_after, true).await? {
        let Some(node) = read::node(&mut *tx, &name).await? else {
            continue;
        };
        let cpu = config.cpu_oversubscription;
        let moved = relocate::evacuate(&mut tx, cpu, &node, NodeState::Dead, ACTOR).await?;
        tracing::warn!(node = %name, replaced = moved, "node stopped sending heartbeats: dead");
        // Its builds cannot end by themselves: failed, with why (never left "building").
        for build in read::node_builds(&mut *tx, node.id).await? {
            let data = EventData::BuildStateChanged {
                build_id: build.id,
                state: BuildState::Failed,
                reason: Some(format!(
                    "node {name} stopped answering during the build; push or deploy again"
                )),
                image: None,
                log: Vec::new(),
                manifest: None,
            };
            log::append(&mut tx, Some(build.org_id), ACTOR, data).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn end_standbys(store: &Store) -> Result<(), StoreError> {
    let mut db = store.pool().acquire().await?;
    if agents::standbys_ended(&mut *db).await?.is_empty()
        && agents::standby_for_room(&mut *db).await?.is_none()
    {
        return Ok(());
    }
    drop(db);
    let mut tx = store.begin().await?;
    log::lock(&mut tx).await?;
    let ended = rollout::end_standbys(&mut tx, ACTOR).await?;
    tx.commit().await?;
    if ended > 0 {
        tracing::info!(ended, "standby deployments were superseded");
    }
    Ok(())
}

async fn stop_handed_over(store: &Store, handover: Handover) -> Result<(), StoreError> {
    let mut db = store.pool().acquire().await?;
    if handover.due(&mut db).await?.is_empty() {
        return Ok(());
    }
    drop(db);
    let mut tx = store.begin().await?;
    log::lock(&mut tx).await?;
    let stopped = relocate::stop_handed_over(&mut tx, handover, ACTOR).await?;
    tx.commit().await?;
    tracing::info!(
        stopped,
        ?handover,
        "instances whose successors are healthy were told to stop"
    );
    Ok(())
}

async fn place_waiting(store: &Store, config: &Config) -> Result<(), StoreError> {
    let cpu = config.cpu_oversubscription;
    let mut db = store.pool().acquire().await?;
    if relocate::plan_waiting(&mut db, cpu).await?.is_empty() {
        return Ok(());
    }
    drop(db);
    let mut tx = store.begin().await?;
    log::lock(&mut tx).await?;
    let placed = relocate::place_waiting(&mut tx, cpu, ACTOR).await?;
    tx.commit().await?;
    if placed > 0 {
        tracing::info!(placed, "instances that waited for room were placed");
    }
    Ok(())
}
