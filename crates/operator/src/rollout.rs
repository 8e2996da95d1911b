//! Rollouts and rollbacks, behind the deploy, rollback and build handlers (which only
//! parse and authorize): which release, where its instances go, and what becomes of the
//! deployment it replaces. A rollout puts the replaced deployment on standby for the
//! app's window (`[deploy] standby`, else the operator's `--standby-window`); a rollback
//! to that standby inside its window switches the env back to it in one event, booting
//! nothing; outside it, the old release rolls out again. The monitor ends standbys whose
//! window passed or whose room is needed ([`end_standbys`]). A restart (also after a
//! change of secrets) replaces the active deployment's instances in place, surging.

use sqlx::PgConnection;
use uuid::Uuid;
use zeitwork_api_types::{Restarted, Rollout};
use zeitwork_core::event::ProcessSpec;
use zeitwork_core::manifest::Seconds;
use zeitwork_core::{DeploymentState, DesiredState};
use zeitwork_core::{EventData, ImageRef, Manifest, platform_host};
use zeitwork_store::model::{Deployment, Release};
use zeitwork_store::{StoreError, Tx, agents, log, read};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::handlers::apply_declared;
use crate::hostnames;
use crate::placement::{self, Want};
use crate::quota;
use crate::scope::EnvScope;
use crate::state::AppState;

impl AppState {
    /// The release for this image and manifest: reused when the same pair was released
    /// before (a release is an immutable tuple), created otherwise.
    pub(crate) async fn release_for(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        scope: &EnvScope,
        image: &ImageRef,
        manifest: &Manifest,
    ) -> ApiResult<Release> {
        let hash = manifest.hash();
        let existing = read::releases(&mut **tx, scope.app.id).await?;
        if let Some(r) = existing
            .iter()
            .find(|r| r.digest == image.digest && r.manifest_hash == hash)
        {
            return Ok(r.clone());
        }
        let number = existing.first().map_or(1, |r| r.number + 1);
        let release_id = Uuid::now_v7();
        let data = EventData::ReleaseCreated {
            release_id,
            app_id: scope.app.id,
            number,
            image: image.to_string(),
            digest: image.digest.clone(),
            manifest: serde_json::to_value(manifest).expect("manifests serialize"),
            manifest_hash: hash,
        };
        log::append(tx, Some(scope.org.id), &auth.actor(), data).await?;
        Ok(read::release_by_id(&mut **tx, release_id)
            .await?
            .expect("just created"))
    }

    /// Creates a deployment of `release` in the env, placing its instances. Instance
    /// counts set by `scale` or the autoscaler carry over from the active deployment
    /// (within the new release's autoscale bounds).
    pub(crate) async fn roll_out(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        scope: &EnvScope,
        release: Release,
        manifest: &Manifest,
        rollback_of: Option<Uuid>,
    ) -> ApiResult<Rollout> {
        let active = read::active_deployment(&mut **tx, scope.env.id).await?;
        let scaled = match &active {
            Some(d) => read::process_types(&mut **tx, d.id).await?,
            None => Vec::new(),
        };
        let processes: Vec<(ProcessSpec, Vec<String>)> = manifest
            .processes
            .iter()
            .map(|(name, p)| {
                let instances = scaled
                    .iter()
                    .find(|pt| pt.name == name.as_str())
                    .map_or(p.instances, |pt| u32::try_from(pt.instances).unwrap_or(0));
                // An autoscaled process starts within its bounds (from the count it has
                // now, so a rollout under load does not shrink it first), and with at
                // least one instance even when scaled to zero, so the rollout shows the
                // release healthy; idleness stops it again.
                let instances = p
                    .autoscale
                    .as_ref()
                    .map_or(instances, |a| a.clamp(instances).max(1));
                let spec = ProcessSpec {
                    name: name.to_string(),
                    instances,
                    millicpus: (p.cpus * 1000.0).round() as u32,
                    memory_mb: p.memory_mb,
                    port: p.port,
                };
                (spec, p.regions.iter().map(ToString::to_string).collect())
            })
            .collect();
        let deployment_id = Uuid::now_v7();
        let wants: Vec<Want> = processes
            .iter()
            .map(|(spec, regions)| Want {
                spec,
                count: spec.instances,
                regions,
            })
            .collect();
        // The active deployment's instances keep their room until this one is healthy;
        // where there is not enough besides, new instances wait and the monitor stops
        // the old ones to make room (a rolling rather than a surging rollout).
        let plans =
            placement::plan(tx, self.config.cpu_oversubscription, deployment_id, &wants).await?;
        // The env's running instances are replaced by these once they are healthy.
        let usage = read::org_usage(&mut **tx, scope.org.id, Some(scope.env.id), None).await?;
        let memory: u64 = plans
            .iter()
            .filter_map(|plan| processes.iter().find(|(spec, _)| spec.name == plan.process))
            .map(|(spec, _)| spec.memory_mb)
            .sum();
        quota::of(&mut **tx, self.config.quotas, &scope.org)
            .await?
            .allow_instances(
                usage.instances + plans.len() as u64,
                usage.memory_mb + memory,
            )?;
        let slug = free_slug(tx, scope).await?;
        let data = EventData::DeploymentCreated {
            deployment_id,
            env_id: scope.env.id,
            release_id: release.id,
            slug: slug.clone(),
            rollback_of,
            processes: processes.into_iter().map(|(spec, _)| spec).collect(),
            instances: plans,
            surge: true,
            standby: self.standby_window(manifest),
        };
        log::append(tx, Some(scope.org.id), &auth.actor(), data).await?;
        apply_declared(tx, self, auth, scope, manifest).await?;
        let deployment: Deployment = read::active_deployment(&mut **tx, scope.env.id)
            .await?
            .expect("just created");
        let instances: Vec<_> = read::instances(&mut **tx, scope.env.id)
            .await?
            .into_iter()
            .filter(|i| i.deployment_id == deployment_id)
            .collect();
        Ok(Rollout {
            deployment,
            release,
            url: self.url(scope, &slug),
            instances,
            warnings: manifest.reachability_warnings(),
            instant: false,
        })
    }

    /// Rolls the env back to `number` (default: the release before the active one's).
    /// When that release's deployment is the env's standby and ready for the traffic,
    /// the switch is one `deployment_reactivated` (no instance boots); otherwise the
    /// release rolls out like a deploy.
    pub(crate) async fn roll_back(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        scope: &EnvScope,
        number: Option<i32>,
    ) -> ApiResult<Rollout> {
        let history = read::deployments(&mut **tx, scope.env.id).await?;
        let Some(active) = history.iter().find(|d| d.state == DeploymentState::Active) else {
            return Err(ApiError::conflict(
                "release",
                "nothing is deployed to this env yet",
            ));
        };
        let release = match number {
            Some(number) => read::release(&mut **tx, scope.app.id, number)
                .await?
                .ok_or_else(|| ApiError::not_found("release").with_field("release"))?,
            None => {
                let previous = history
                    .iter()
                    .filter(|d| {
                        d.activated_at < active.activated_at && d.release_id != active.release_id
                    })
                    .max_by_key(|d| (d.activated_at, d.id))
                    .ok_or_else(|| {
                        ApiError::conflict("release", "there is no earlier release to roll back to")
                    })?;
                read::release_by_id(&mut **tx, previous.release_id)
                    .await?
                    .expect("deployments reference releases")
            }
        };
        if !history.iter().any(|d| d.release_id == release.id) {
            return Err(ApiError::conflict(
                "release",
                format!(
                    "release {} was never deployed to env {}; deploy it instead",
                    release.number, scope.env.name
                ),
            ));
        }
        let manifest = Manifest::from_json(&release.manifest).map_err(|e| {
            ApiError::invalid(
                "release",
                format!("release {} has an unreadable manifest: {e}", release.number),
            )
        })?;
        if let Some(standby) = read::standby_deployment(&mut **tx, scope.env.id).await?
            && standby.release_id == release.id
            && read::deployment_ready(&mut **tx, standby.id).await?
        {
            let back = Reactivation {
                standby,
                active,
                release,
                manifest: &manifest,
            };
            return self.reactivate(tx, auth, scope, back).await;
        }
        self.roll_out(tx, auth, scope, release, &manifest, Some(active.id))
            .await
    }

    /// Makes the standby deployment active again; the active one takes its place.
    async fn reactivate(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        scope: &EnvScope,
        back: Reactivation<'_>,
    ) -> ApiResult<Rollout> {
        let Reactivation {
            standby,
            active,
            release,
            manifest,
        } = back;
        let current = read::release_by_id(&mut **tx, active.release_id)
            .await?
            .and_then(|r| Manifest::from_json(&r.manifest).ok());
        let data = EventData::DeploymentReactivated {
            deployment_id: standby.id,
            env_id: scope.env.id,
            rollback_of: active.id,
            // The window of the app as it is now, as a deploy of it would take.
            standby: current.as_ref().and_then(|m| self.standby_window(m)),
        };
        log::append(tx, Some(scope.org.id), &auth.actor(), data).await?;
        apply_declared(tx, self, auth, scope, manifest).await?;
        let deployment = read::active_deployment(&mut **tx, scope.env.id)
            .await?
            .expect("just reactivated");
        let instances: Vec<_> = read::instances(&mut **tx, scope.env.id)
            .await?
            .into_iter()
            .filter(|i| i.deployment_id == standby.id && i.desired_state == DesiredState::Running)
            .collect();
        let url = self.url(scope, &standby.slug);
        Ok(Rollout {
            deployment,
            release,
            url,
            instances,
            warnings: manifest.reachability_warnings(),
            instant: true,
        })
    }

    /// Restarts the env's active deployment (only `process`'s instances, when given): a
    /// replacement for each running instance, with the env's current secrets, booted
    /// beside it; each old instance stops once its replacement is healthy, so the env
    /// keeps serving throughout. `None` when nothing is deployed.
    pub(crate) async fn restart(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        scope: &EnvScope,
        process: Option<&str>,
    ) -> ApiResult<Option<Restarted>> {
        let Some(deployment) = read::active_deployment(&mut **tx, scope.env.id).await? else {
            return Ok(None);
        };
        if let Some(name) = process
            && !read::process_types(&mut **tx, deployment.id)
                .await?
                .iter()
                .any(|p| p.name == name)
        {
            return Err(ApiError::not_found("process").with_field("process"));
        }
        let olds = agents::unreplaced_of(&mut **tx, deployment.id, process).await?;
        let cpu = self.config.cpu_oversubscription;
        let replacements = crate::relocate::replace(tx, cpu, olds, true, &auth.actor()).await?;
        Ok(Some(Restarted {
            deployment,
            replacements,
        }))
    }

    /// How long the deployment a rollout of `manifest` replaces stays on standby;
    /// `None`: not at all.
    fn standby_window(&self, manifest: &Manifest) -> Option<Seconds> {
        let window = manifest
            .deploy
            .as_ref()
            .and_then(|d| d.standby)
            .unwrap_or(self.config.standby_window);
        (window.as_millis() > 0).then_some(window)
    }
}

/// Supersedes the standby deployments whose window ended, and the oldest one while an
/// active deployment's instance waits for room (both recorded with the reason); their
/// instances then stop as superseded ones do. Returns how many ended.
pub(crate) async fn end_standbys(tx: &mut PgConnection, actor: &str) -> Result<usize, StoreError> {
    let mut ended = Vec::new();
    for s in agents::standbys_ended(&mut *tx).await? {
        ended.push((s, "its standby window ended"));
    }
    if ended.is_empty()
        && let Some(s) = agents::standby_for_room(&mut *tx).await?
    {
        ended.push((s, "its room was needed by instances waiting for a node"));
    }
    let count = ended.len();
    for (s, reason) in ended {
        let data = EventData::StandbyEnded {
            deployment_id: s.deployment_id,
            env_id: s.env_id,
            reason: reason.to_owned(),
        };
        log::append(tx, Some(s.org_id), actor, data).await?;
    }
    Ok(count)
}

/// A slug whose deployment hostname no other env or deployment holds (an app of
/// another org can make the same label: `shop-<slug>-acme` is also app `shop-<slug>`
/// of org `acme`), drawn again while taken.
async fn free_slug(tx: &mut Tx, scope: &EnvScope) -> ApiResult<String> {
    for _ in 0..16 {
        let slug = nanoid::nanoid!(7, &SLUG_ALPHABET);
        let label = platform_host::deployment_label(&scope.app.name, &slug, &scope.org.name);
        if hostnames::is_free(tx, &label).await? {
            return Ok(slug);
        }
    }
    Err(ApiError::conflict(
        "id",
        "no free deployment hostname was found; retry",
    ))
}

/// Deployment slugs appear in hostnames: lowercase letters and digits only.
const SLUG_ALPHABET: [char; 36] = [
    'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's',
    't', 'u', 'v', 'w', 'x', 'y', 'z', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
];

/// A rollback inside the standby window: the standby deployment of `release` becomes
/// active again, and `active` its standby.
struct Reactivation<'a> {
    standby: Deployment,
    active: &'a Deployment,
    release: Release,
    manifest: &'a Manifest,
}
