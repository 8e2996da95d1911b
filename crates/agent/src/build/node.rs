//! The node's side of builds: each build in the desired state runs once, as a task of
//! its own: fetch the source (an image of the platform registry; its files become the
//! context), build it in a builder microVM, push the image to the app's repository, and
//! report each step. A build an earlier agent had begun is failed with that reason.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::process::Command;
use uuid::Uuid;
use zeitwork_core::Manifest;
use zeitwork_core::build::{BuildReport, BuildState, DesiredBuild, log_tail};
use zeitwork_core::manifest::FILE;
use zeitwork_core::node::LogSource;
use zeitwork_image::PushOptions;
use zeitwork_vmm::{VM_ID_BASE, Vmm};

use super::{BuildLimits, BuildSpec, BuilderRootfs, bases, fetch};
use crate::control::ControlPlane;
use crate::logs::Console;
use crate::runtime::Runtime;

/// Builder VMs take slots from here up (instances use the ones below).
const FIRST_SLOT: u32 = 60_000;

/// The builds this agent runs, by id, each with its slot and the handle that stops it.
#[derive(Default, Clone)]
pub(crate) struct Builds {
    running: Arc<Mutex<HashMap<Uuid, (u32, tokio::task::AbortHandle)>>>,
    /// Apps whose layer cache a running build uses (one build at a time per cache).
    caches: Arc<Mutex<HashSet<Uuid>>>,
}

/// A build's hold on its app's layer cache, let go when dropped.
struct CacheHold {
    caches: Arc<Mutex<HashSet<Uuid>>>,
    app: Uuid,
}

impl Drop for CacheHold {
    fn drop(&mut self) {
        self.caches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.app);
    }
}

impl Builds {
    /// The app's layer cache, unless another build of the app uses it now (this one then
    /// builds without).
    fn hold_cache(&self, app: Uuid) -> Option<CacheHold> {
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        caches.insert(app).then(|| CacheHold {
            caches: self.caches.clone(),
            app,
        })
    }
}

impl Builds {
    /// Starts every build of `desired` this agent does not run yet, and stops those it
    /// runs that are no longer desired (cancelled): their builder VMs are killed.
    pub(crate) fn sync<V: Vmm + 'static, C: ControlPlane>(
        &self,
        desired: &[DesiredBuild],
        runtime: &Arc<Runtime<V>>,
        control: &Arc<C>,
    ) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.retain(|id, (_, handle)| {
            let wanted = desired.iter().any(|d| d.build_id == *id);
            if !wanted {
                tracing::info!(build = %id, "the build is no longer wanted (cancelled); stopping it");
                handle.abort();
            }
            wanted
        });
        for wanted in desired {
            if running.contains_key(&wanted.build_id) {
                continue;
            }
            let id = wanted.build_id;
            let slot = (FIRST_SLOT..)
                .find(|s| running.values().all(|(taken, _)| taken != s))
                .expect("a free slot");
            let (builds, runtime, control, wanted) = (
                self.clone(),
                runtime.clone(),
                control.clone(),
                wanted.clone(),
            );
            let task = tokio::spawn(async move {
                let report = match wanted.state {
                    BuildState::Queued => {
                        let hold = builds.hold_cache(wanted.app_id);
                        run(&runtime, &control, &wanted, slot, hold.is_some()).await
                    }
                    _ => failed(
                        "the node's agent restarted during the build; start it again".into(),
                        Vec::new(),
                    ),
                };
                send(&*control, id, &report).await;
                builds
                    .running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
            });
            running.insert(id, (slot, task.abort_handle()));
        }
    }
}

/// A task that stops when its handle is dropped (with the build's task, when cancelled).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Waits for the task to end by itself.
    async fn finish(mut self) {
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Removes a build's directory however its task ends (a stopped one included).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn failed(reason: String, log: Vec<String>) -> BuildReport {
    BuildReport {
        state: BuildState::Failed,
        reason: Some(reason),
        image: None,
        log: log_tail(&log),
        manifest: None,
    }
}

fn step(state: BuildState) -> BuildReport {
    BuildReport {
        state,
        reason: None,
        image: None,
        log: Vec::new(),
        manifest: None,
    }
}

/// Reports, retrying a while when the operator is away.
async fn send<C: ControlPlane>(control: &C, id: Uuid, report: &BuildReport) {
    for attempt in 0..10u32 {
        match control.report_build(id, report).await {
            Ok(()) => return,
            Err(e) if e.is_permanent() => {
                tracing::warn!(build = %id, error = %e, "the operator refused a build report");
                return;
            }
            Err(e) => {
                tracing::warn!(build = %id, error = %e, attempt, "reporting a build; retrying");
                tokio::time::sleep(Duration::from_secs(1 << attempt.min(5))).await;
            }
        }
    }
}

/// Runs one build through; its final report.
async fn run<V: Vmm + 'static, C: ControlPlane>(
    runtime: &Runtime<V>,
    control: &Arc<C>,
    wanted: &DesiredBuild,
    slot: u32,
    with_cache: bool,
) -> BuildReport {
    let id = wanted.build_id;
    let dir = runtime.config.state_dir.join("builds").join(id.to_string());
    let _remove = RemoveOnDrop(dir.clone());
    let result = async {
        send(&**control, id, &step(BuildState::Fetching)).await;
        let context = dir.join(fetch::CONTEXT);
        // A commit carries its own manifest (and so its own `[build]`).
        let mut manifest = None;
        match &wanted.git {
            Some(git) => {
                let ids = (VM_ID_BASE + slot, VM_ID_BASE + slot);
                let time = wanted.build.timeout.as_duration();
                fetch::fetch(git, wanted.git_token.as_deref(), &dir, ids, time)
                    .await
                    .map_err(|e| (format!("fetching the source: {e}"), Vec::new()))?;
                manifest = own_manifest(&context).await.map_err(|e| (e, Vec::new()))?;
            }
            None => {
                let source = runtime
                    .images()
                    .rootfs(&wanted.source, &runtime.config.pull_auth(&wanted.source))
                    .await
                    .map_err(|e| (format!("fetching the source: {e}"), Vec::new()))?;
                unpack(&source.path, &context)
                    .await
                    .map_err(|e| (format!("unpacking the source: {e}"), Vec::new()))?;
            }
        }
        let b = manifest
            .as_ref()
            .and_then(|(m, _): &(Manifest, String)| m.build.as_ref())
            .unwrap_or(&wanted.build);
        let context = context.join(b.context.trim_start_matches("./"));
        // The images its stages start from, fetched here, with the node's credential for
        // the platform registry (which the builder can neither see nor reach).
        let dockerfile = tokio::fs::read_to_string(context.join(&b.dockerfile))
            .await
            .unwrap_or_default();
        let images = bases::images(&dockerfile, &b.args)
            .map_err(|e| (format!("reading the Dockerfile: {e}"), Vec::new()))?;
        let login = |registry: &str| match runtime.config.pull_auth(&format!("{registry}/base")) {
            zeitwork_image::Auth::Basic { username, password } => Some((username, password)),
            _ => None,
        };
        let time = b.timeout.as_duration();
        bases::fetch(&images, &dir, login, zeitwork_image::plain_http, time)
            .await
            .map_err(|e| (e, Vec::new()))?;
        let builder = BuilderRootfs::prepare(&runtime.config.guest_dir)
            .await
            .map_err(|e| (format!("preparing the builder: {e}"), Vec::new()))?;
        send(&**control, id, &step(BuildState::Building)).await;
        let spec = BuildSpec {
            id: format!("build-{id}"),
            context,
            bases: dir.join(bases::DIR),
            dockerfile: b.dockerfile.clone(),
            target: b.target.clone(),
            build_args: b.args.clone(),
            limits: BuildLimits {
                vcpus: b.cpus,
                memory_mb: b.memory_mb,
                disk_mb: b.disk_mb,
                time: b.timeout.as_duration(),
            },
            slot,
            network: b.network.then_some(slot - FIRST_SLOT),
            cache_disk: with_cache.then(|| cache_disk(&runtime.config.state_dir, wanted.app_id)),
        };
        // Its output ships as it comes (`zeitwork builds logs -f`); every line is shipped
        // before the build's end is reported.
        let vm_dir = dir.join("vm");
        let (ended, ended_rx) = tokio::sync::watch::channel(false);
        let console = Console::of(LogSource::Build(id), &vm_dir);
        let shipper = AbortOnDrop(tokio::spawn(crate::logs::ship(
            control.clone(),
            console,
            0,
            ended_rx,
        )));
        let built = runtime.build(&builder, &spec, &vm_dir).await;
        let _ = ended.send(true);
        shipper.finish().await;
        // A build that did not end by its own exit may have left the cache half written.
        if let (Err(e), Some(cache)) = (&built, &spec.cache_disk)
            && !e.is_the_builds_own()
        {
            let _ = tokio::fs::remove_file(cache).await;
        }
        let built = built.map_err(|e| (e.to_string(), e.log().to_vec()))?;
        send(&**control, id, &step(BuildState::Pushing)).await;
        let tag = format!(
            "{}:build-{}",
            wanted.repository,
            &id.simple().to_string()[..12]
        );
        let options = PushOptions {
            auth: runtime.config.pull_auth(&tag),
            ..PushOptions::default()
        };
        let digest = push(&built.archive, &tag, &options)
            .await
            .map_err(|e| (format!("pushing the image: {e}"), built.log.clone()))?;
        Ok::<_, (String, Vec<String>)>((format!("{tag}@{digest}"), manifest.map(|(_, text)| text)))
    }
    .await;
    match result {
        Ok((image, manifest)) => BuildReport {
            state: BuildState::Succeeded,
            reason: None,
            image: Some(image),
            log: Vec::new(),
            manifest,
        },
        Err((reason, log)) => {
            tracing::warn!(build = %id, %reason, "build failed");
            failed(reason, log)
        }
    }
}

/// How long a push refused by the registry is tried again: a blob sweep refuses pushes
/// for about the lifetime of a registry token (`zeitwork_operator::registry_gc::sweep`).
const PUSH_REFUSED_FOR: Duration = Duration::from_secs(400);

/// Pushes the archive, trying again while the registry refuses pushes for a while.
async fn push(
    archive: &Path,
    tag: &str,
    options: &PushOptions,
) -> Result<String, zeitwork_image::ImageError> {
    let deadline = tokio::time::Instant::now() + PUSH_REFUSED_FOR;
    loop {
        match zeitwork_image::push_oci_archive(archive, tag, options).await {
            Err(zeitwork_image::ImageError::Unauthorized { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tracing::info!(%tag, "the registry refuses pushes now (a sweep?); trying again");
                tokio::time::sleep(Duration::from_secs(15)).await;
            }
            other => return other,
        }
    }
}

/// Where the node keeps the layer cache of `app`'s builds.
fn cache_disk(state_dir: &Path, app: Uuid) -> std::path::PathBuf {
    state_dir.join("build-cache").join(format!("{app}.ext4"))
}

/// The commit's own `zeitwork.toml` (parsed, and its text), when it has one.
async fn own_manifest(context: &Path) -> Result<Option<(Manifest, String)>, String> {
    let path = context.join(FILE);
    // Not a file (a symlink, a directory): not a manifest.
    match tokio::fs::symlink_metadata(&path).await {
        Ok(meta) if meta.is_file() => {}
        _ => return Ok(None),
    }
    let text = tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| format!("reading {FILE}: {e}"))?;
    let manifest = Manifest::from_toml(&text).map_err(|e| format!("{FILE}: {e}"))?;
    Ok(Some((manifest, text)))
}

/// The files of the source's root file system, as the build context.
async fn unpack(image: &Path, to: &Path) -> std::io::Result<()> {
    tokio::fs::create_dir_all(to).await?;
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump / {}", to.display()))
        .arg(image)
        .output()
        .await?;
    if !out.status.success() {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    // mkfs.ext4 made it; the source never had it.
    let _ = tokio::fs::remove_dir(to.join("lost+found")).await;
    Ok(())
}
