//! Builds from source (see `zeitwork_core::build`): queuing one on a node, and what a
//! node's reports about it do. A build's image lives in the platform registry: its
//! source in `<org>/<app>/source`, its image in `<org>/<app>`; when it succeeds, the image
//! rolls out to the env as a deploy of it would.

use serde_json::Value;
use uuid::Uuid;
use zeitwork_api_types::BuildReported;
use zeitwork_core::build::{BuildReport, BuildState, log_tail};
use zeitwork_core::event::ProcessSpec;
use zeitwork_core::{EventData, ImageRef, Manifest};
use zeitwork_store::model::Build;
use zeitwork_store::{Tx, log, read};

use zeitwork_core::repository::GitSource;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::registry::PlatformRegistry;
use crate::scope::EnvScope;
use crate::state::AppState;

/// Where a build's source must be, in the platform registry.
pub fn source_repository(org: &str, app: &str) -> String {
    format!("{org}/{app}/source")
}

/// What a build builds.
pub(crate) enum BuildSource<'a> {
    /// An image of the platform registry whose one layer is the context (uploaded by
    /// `zeitwork deploy`).
    Uploaded(&'a str),
    /// A pushed commit, fetched by the node.
    Git(GitSource),
}

impl AppState {
    fn platform_registry(&self) -> ApiResult<&PlatformRegistry> {
        self.config.registry.as_deref().ok_or_else(|| {
            ApiError::conflict(
                "source",
                "builds need the platform registry, and this operator runs none",
            )
        })
    }

    /// Queues a build of `source` for the env on a node with room for its builder VM
    /// (placed by the scheduler, like an instance).
    pub(crate) async fn queue_build(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        scope: &EnvScope,
        source: BuildSource<'_>,
        manifest: &Manifest,
    ) -> ApiResult<Build> {
        let registry = self.platform_registry()?;
        let manifest_json = serde_json::to_value(manifest).expect("manifests serialize");
        let (identity, git, same_build) = match source {
            BuildSource::Uploaded(source) => {
                let pinned = ImageRef::parse(source)
                    .map_err(|e| ApiError::invalid("source", e.to_string()))?;
                let wanted = source_repository(&scope.org.name, &scope.app.name);
                if registry.repository_of(&pinned.to_string()).as_deref() != Some(wanted.as_str()) {
                    return Err(ApiError::invalid(
                        "source",
                        format!(
                            "the source must be in the platform registry at {}/{wanted}",
                            registry.address
                        ),
                    ));
                }
                let same = manifest_json.get("build").cloned().unwrap_or(Value::Null);
                (pinned.to_string(), None, Some(same))
            }
            // The tree decides everything, its own `zeitwork.toml` included.
            BuildSource::Git(git) => (git.identity(), Some(git), None),
        };
        let build = manifest.build.clone().unwrap_or_default();
        // The same source built the same way before: its image is reused, nothing builds.
        if let Some(earlier) =
            read::built_before(&mut **tx, scope.env.id, &identity, same_build.as_ref()).await?
        {
            return self
                .reuse(tx, auth, scope, &identity, git, manifest, earlier)
                .await;
        }
        // Its image goes to the registry: not while the org is over its registry quota.
        let usage = read::org_usage(&mut **tx, scope.org.id, None, None).await?;
        crate::quota::of(&mut **tx, self.config.quotas, &scope.org)
            .await?
            .allow_registry_writes(&usage)?;
        // Placed like an instance: its builder VM's memory must be free on the node.
        let build_id = Uuid::now_v7();
        let mut cluster =
            crate::placement::Cluster::load(tx, self.config.cpu_oversubscription).await?;
        let spec = ProcessSpec {
            name: "build".into(),
            instances: 1,
            millicpus: build.cpus.saturating_mul(1000),
            memory_mb: build.memory_mb,
            port: None,
        };
        // Near the app's layer cache (on the node of its last build) when it has room.
        let near = match read::last_build_node(&mut **tx, scope.app.id).await? {
            Some(node) => cluster.plan_on(build_id, &spec, node),
            None => None,
        };
        let plan = match near {
            Some(plan) => vec![plan],
            None => cluster.plan_in(build_id, &spec, None, 1),
        };
        let node = plan
            .first()
            .and_then(|p| p.node_id)
            .ok_or_else(|| {
                let why = plan
                    .first()
                    .and_then(|p| p.reason.clone())
                    .unwrap_or_else(|| "no node is ready".into());
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "no_node",
                    format!(
                        "no node has room for this build ({} MiB, {} CPUs: [build] memory_mb, cpus): {why}",
                        build.memory_mb, build.cpus
                    ),
                )
            })?;

        let data = EventData::BuildQueued {
            build_id,
            env_id: scope.env.id,
            source: identity,
            manifest: manifest_json,
            node_id: node,
            git,
        };
        log::append(tx, Some(scope.org.id), &auth.actor(), data).await?;
        Ok(read::build(&mut **tx, build_id)
            .await?
            .expect("just queued"))
    }

    /// Cancels a build that has not ended: its node stops it (the build leaves the node's
    /// desired state).
    pub(crate) async fn cancel_build(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        scope: &EnvScope,
        build_id: Uuid,
    ) -> ApiResult<Build> {
        let build = read::build(&mut **tx, build_id)
            .await?
            .filter(|b| b.env_id == scope.env.id)
            .ok_or_else(|| ApiError::not_found("build"))?;
        if build.state.is_final() {
            return Err(ApiError::conflict(
                "state",
                format!("the build already {}", build.state.as_str()),
            ));
        }
        let data = EventData::BuildStateChanged {
            build_id,
            state: BuildState::Cancelled,
            reason: Some(format!("cancelled by {}", auth.actor())),
            image: None,
            log: Vec::new(),
            manifest: None,
        };
        log::append(tx, Some(scope.org.id), &auth.actor(), data).await?;
        Ok(read::build(&mut **tx, build_id).await?.expect("it exists"))
    }

    /// A build of a source built before: recorded as succeeded at once with the earlier
    /// image, which rolls out (with the earlier build's manifest when the source carried
    /// its own, a commit's).
    #[allow(clippy::too_many_arguments)]
    async fn reuse(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        scope: &EnvScope,
        identity: &str,
        git: Option<GitSource>,
        manifest: &Manifest,
        earlier: read::BuiltBefore,
    ) -> ApiResult<Build> {
        let build_id = Uuid::now_v7();
        let from_source = git.is_some();
        let queued = EventData::BuildQueued {
            build_id,
            env_id: scope.env.id,
            source: identity.to_owned(),
            manifest: serde_json::to_value(manifest).expect("manifests serialize"),
            node_id: earlier.node_id,
            git,
        };
        log::append(tx, Some(scope.org.id), &auth.actor(), queued).await?;
        let manifest = match from_source {
            true => Manifest::from_json(&earlier.manifest)
                .map_err(|e| ApiError::invalid("manifest", e.to_string()))?,
            false => manifest.clone(),
        };
        let done = EventData::BuildStateChanged {
            build_id,
            state: BuildState::Succeeded,
            reason: Some(format!(
                "the same source was built the same way by build {}: its image is reused",
                earlier.id
            )),
            image: Some(earlier.image.clone()),
            log: Vec::new(),
            manifest: from_source.then(|| earlier.manifest.clone()),
        };
        log::append(tx, Some(scope.org.id), &auth.actor(), done).await?;
        let image = ImageRef::parse(&earlier.image)
            .map_err(|e| ApiError::invalid("image", e.to_string()))?;
        let release = self.release_for(tx, auth, scope, &image, &manifest).await?;
        self.roll_out(tx, auth, scope, release, &manifest, None)
            .await?;
        metrics::counter!("zeitwork_build_cache_hits_total").increment(1);
        Ok(read::build(&mut **tx, build_id)
            .await?
            .expect("just recorded"))
    }

    /// Records a node's report on its build; a succeeded one rolls its image out.
    pub(crate) async fn report_build(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        node: Uuid,
        build_id: Uuid,
        report: &BuildReport,
    ) -> ApiResult<BuildReported> {
        let build = read::build(&mut **tx, build_id)
            .await?
            .filter(|b| b.node_id == node)
            .ok_or_else(|| ApiError::not_found("build"))?;
        let known = build.state;
        if known == report.state {
            return Ok(BuildReported {
                changed: false,
                build: Some(build),
                rollout: None,
            });
        }
        if known.is_final() || rank(report.state) < rank(known) {
            return Err(ApiError::conflict(
                "state",
                format!(
                    "the build is {}; it cannot become {}",
                    known.as_str(),
                    report.state.as_str()
                ),
            ));
        }
        let (org, app, env) = read::env_path(tx, build.env_id)
            .await?
            .ok_or_else(|| ApiError::not_found("the build's env"))?;
        let scope = EnvScope { org, app, env };
        let mut report = report.clone();
        let mut rolls_out = None;
        if report.state == BuildState::Succeeded {
            let image = report
                .image
                .as_deref()
                .ok_or_else(|| ApiError::invalid("image", "a succeeded build names its image"))?;
            let pinned =
                ImageRef::parse(image).map_err(|e| ApiError::invalid("image", e.to_string()))?;
            let wanted = format!("{}/{}", scope.org.name, scope.app.name);
            if self.platform_registry()?.repository_of(image).as_deref() != Some(wanted.as_str()) {
                return Err(ApiError::invalid(
                    "image",
                    format!("a build's image goes to the platform registry's {wanted}"),
                ));
            }
            // A source's own manifest that is not right for this app fails the build
            // (the node cannot do better), and nothing rolls out.
            let manifest = match report.manifest.as_deref() {
                Some(text) => scope.manifest(Some(text)).map_err(|e| e.message),
                None => {
                    let queued = read::build_manifest(&mut **tx, build_id)
                        .await?
                        .ok_or_else(|| ApiError::not_found("build"))?;
                    Ok(Manifest::from_json(&queued)
                        .map_err(|e| ApiError::invalid("manifest", e.to_string()))?)
                }
            };
            match manifest {
                Ok(manifest) => rolls_out = Some((pinned, manifest)),
                Err(reason) => {
                    report = BuildReport {
                        state: BuildState::Failed,
                        reason: Some(format!("the source's zeitwork.toml: {reason}")),
                        image: None,
                        log: Vec::new(),
                        manifest: None,
                    }
                }
            }
        }
        let data = EventData::BuildStateChanged {
            build_id,
            state: report.state,
            reason: report.reason.clone(),
            image: rolls_out.as_ref().map(|(image, _)| image.to_string()),
            log: log_tail(&report.log),
            manifest: match (&rolls_out, &report.manifest) {
                (Some((_, manifest)), Some(_)) => {
                    Some(serde_json::to_value(manifest).expect("manifests serialize"))
                }
                _ => None,
            },
        };
        log::append(tx, Some(scope.org.id), &auth.actor(), data).await?;
        if report.state.is_final() {
            let took = (chrono::Utc::now() - build.created_at)
                .to_std()
                .unwrap_or_default();
            metrics::histogram!("zeitwork_build_duration_seconds", "state" => report.state.as_str())
                .record(took.as_secs_f64());
        }
        let rollout = match rolls_out {
            Some((image, manifest)) => {
                let release = self
                    .release_for(tx, auth, &scope, &image, &manifest)
                    .await?;
                Some(
                    self.roll_out(tx, auth, &scope, release, &manifest, None)
                        .await?,
                )
            }
            None => None,
        };
        Ok(BuildReported {
            changed: true,
            build: read::build(&mut **tx, build_id).await?,
            rollout,
        })
    }
}

/// The order of states: a build moves forward only (failing or being cancelled at any time).
fn rank(state: BuildState) -> u8 {
    match state {
        BuildState::Queued => 0,
        BuildState::Fetching => 1,
        BuildState::Building => 2,
        BuildState::Pushing => 3,
        BuildState::Succeeded | BuildState::Failed | BuildState::Cancelled => 4,
    }
}
