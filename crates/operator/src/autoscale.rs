//! The autoscaler (docs/architecture.md, "Autoscaling"): one controller in the cluster,
//! elected by a Postgres advisory lock among the operators, sets the instance count of
//! every process with `[processes.<name>.autoscale]` from the load the edges and agents
//! report (`zeitwork_store::load`). Every decision is a `process_scaled` event by
//! `autoscaler` with its reason, decided again under the append lock.

mod decide;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use uuid::Uuid;
use zeitwork_core::Manifest;
use zeitwork_store::{Store, StoreError, leader, load, log, read};

use crate::error::ApiError;
use crate::scaling::{self, Change};
use crate::state::Config;
use decide::{Decision, History};

/// The actor of the autoscaler's events.
pub const ACTOR: &str = "autoscaler";
/// The advisory lock only the acting autoscaler holds ("zwscale!").
const LOCK_KEY: i64 = 0x7a77_7363_616c_6521;
/// How often a standing-by operator tries to take over.
const TAKEOVER_POLL: Duration = Duration::from_secs(1);
/// How often the load is looked at: a burst is acted on within about two of these.
const ROUND: Duration = Duration::from_millis(500);
/// Edge reports older than this do not count (agents' CPU reports: four times this,
/// as they come with heartbeats).
const FRESH: Duration = Duration::from_secs(4);
/// A held request older than this no longer wakes anything (its edge gave up).
const WAKE_FRESH: Duration = Duration::from_secs(60);
/// Reports older than this are deleted.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// Runs until `shutdown` resolves: waits to lead, leads until an error, and starts over.
pub async fn run(store: Store, config: Config, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            result = lead(&store, &config) => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "autoscaler lost its footing; standing by again");
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(TAKEOVER_POLL) => {}
        }
    }
}

async fn lead(store: &Store, config: &Config) -> Result<(), StoreError> {
    let mut conn = leader::elect(store, LOCK_KEY, TAKEOVER_POLL).await?;
    tracing::info!("autoscaler elected");
    // Recommendations live with the leader: a new one waits a whole window before it
    // scales anything down.
    let mut histories: HashMap<(Uuid, String), History> = HashMap::new();
    let mut ticker = tokio::time::interval(ROUND);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // An edge holding a request for a process scaled to zero says so at once.
    let mut woken = sqlx::postgres::PgListener::connect_with(store.pool()).await?;
    woken.listen(load::WAKE_CHANNEL).await?;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            note = woken.recv() => { note?; }
        }
        if !leader::still_leads(&mut conn).await {
            return Ok(());
        }
        load::prune(&mut conn, FORGET_AFTER).await?;
        round(store, config, &mut histories).await?;
    }
}

async fn round(
    store: &Store,
    config: &Config,
    histories: &mut HashMap<(Uuid, String), History>,
) -> Result<(), StoreError> {
    let now = Instant::now();
    let mut seen = HashSet::new();
    for target in load::autoscaled(store.pool()).await? {
        let Ok(manifest) = Manifest::from_json(&target.manifest) else {
            continue;
        };
        let processes = read::process_types(store.pool(), target.deployment_id).await?;
        for (name, process) in &manifest.processes {
            let Some(bounds) = &process.autoscale else {
                continue;
            };
            let Some(pt) = processes.iter().find(|pt| pt.name == name.as_str()) else {
                continue;
            };
            let key = (target.deployment_id, pt.name.clone());
            seen.insert(key.clone());
            let current = u32::try_from(pt.instances).unwrap_or(0);
            let measured =
                load::process_load(store.pool(), target.deployment_id, &pt.name, FRESH).await?;
            let millicpus = u32::try_from(pt.millicpus).unwrap_or(0);
            let history = histories.entry(key).or_default();
            let decision = if bounds.scales_to_zero() {
                // Held requests wake it; a wake asked for while it ran is spent.
                let waiting =
                    load::take_wake(store.pool(), target.deployment_id, &pt.name, WAKE_FRESH)
                        .await?;
                // Called asleep too: the idle time starts over at the wake.
                let idle = decide::idle(bounds, current, &measured, history, now);
                if current == 0 {
                    waiting.then(|| {
                        let reason = "a request arrived while scaled to zero".to_owned();
                        Decision::Scale(bounds.min.max(1), reason)
                    })
                } else {
                    idle
                }
            } else {
                None
            };
            let decision = match decision {
                Some(d) => Some(d),
                // Asleep: only a request wakes it.
                None if current == 0 && bounds.scales_to_zero() => None,
                None => {
                    let recommendation = decide::recommend(bounds, current, &measured, millicpus);
                    decide::decide(bounds, current, recommendation, history, now)
                }
            };
            let Some(Decision::Scale(to, reason)) = decision else {
                continue;
            };
            match act(store, config, &target, &pt.name, current, to, reason).await {
                Ok(true) => tracing::info!(
                    deployment = %target.deployment_id, process = %pt.name, from = current, to,
                    "autoscaled"
                ),
                Ok(false) => {}
                // Said once per refusal, not every round it lasts.
                Err(e) if history.refused(&e.message) => tracing::warn!(
                    deployment = %target.deployment_id, process = %pt.name, to,
                    error = %e.message, "autoscaling refused; holding the count"
                ),
                Err(_) => {}
            }
        }
    }
    histories.retain(|key, _| seen.contains(key));
    Ok(())
}

/// Scales under the append lock, if the deployment is still active and the count still
/// what the decision was made from; whether it did.
async fn act(
    store: &Store,
    config: &Config,
    target: &load::Autoscaled,
    process: &str,
    from: u32,
    to: u32,
    reason: String,
) -> Result<bool, ApiError> {
    let mut tx = store.begin().await?;
    log::lock(&mut tx).await?;
    let Some(deployment) = read::active_deployment(&mut *tx, target.env_id).await? else {
        return Ok(false);
    };
    let Some(pt) = scaling::process_of(&mut tx, deployment.id, process).await? else {
        return Ok(false);
    };
    if deployment.id != target.deployment_id || u32::try_from(pt.instances).ok() != Some(from) {
        return Ok(false);
    }
    let Some(org) = read::org_by_id(&mut *tx, target.org_id).await? else {
        return Ok(false);
    };
    let change = Change {
        org: &org,
        env_id: target.env_id,
        deployment: &deployment,
        process: &pt,
        instances: to,
        actor: ACTOR,
        reason: Some(reason),
    };
    scaling::apply(&mut tx, config, change).await?;
    tx.commit().await?;
    Ok(true)
}
