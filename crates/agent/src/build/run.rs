//! One build in a microVM: the context goes in and the image comes out through the VM's
//! scratch disk, which the host makes before the boot (`mkfs.ext4 -d`) and reads after it
//! (`debugfs`). The builder's `RUN` steps reach the internet through a link of its own,
//! confined as an instance's is (never the node, its networks or another VM), or have no
//! network at all when the build says so. Its CPU, memory, disk and wall time are bounded;
//! its output is the build log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;
use zeitwork_core::guest::{Exit, GuestConfig};
use zeitwork_net::{InstanceAddrs, Link, Netns};
use zeitwork_vmm::{NetAttachment, VmExit, VmSpec, Vmm};

use super::BuilderRootfs;
use crate::instance::{host_resolvers, interface};
use crate::{AgentError, Runtime};

/// In the guest: the build's directory (on the scratch disk's upper layer).
const BUILD_DIR: &str = "/build";
/// How a failure of the build's own steps begins.
const EXITED: &str = "the build exited with code";
/// In the guest: where the app's layer cache disk is mounted, when there is one.
const CACHE_DIR: &str = "/cache";
/// The scratch disk's path of the image archive the guest writes.
const ARCHIVE_ON_DISK: &str = "/upper/build/out/image.tar";
/// What runs in the guest: buildah builds the Dockerfile and writes an OCI archive.
/// Arguments: the Dockerfile, the target (or empty), then `--build-arg` pairs.
const SCRIPT: &str = r#"set -eu
dockerfile=$1; target=$2; shift 2
root=/build/storage
if [ -d /cache ]; then
  root=/cache/storage
  # A cache over three quarters full starts over rather than failing the build.
  stat -f -c '%a %b' /cache > /run/zw-cache-space
  read free total < /run/zw-cache-space
  if [ $((free * 4)) -lt "$total" ]; then
    rm -rf /cache/storage
    echo "zeitwork-build: the layer cache was full; it starts over"
  fi
  echo "zeitwork-build: with the app's layer cache"
fi
store="--storage-driver vfs --root $root --runroot /run/buildah"
set -- "$@"
args=""
for a in "$@"; do args="$args --build-arg $a"; done
# The base images the node fetched (with its own credential, which the builder never
# sees), under their names.
if [ -f /build/bases/list ]; then
  while IFS="$(printf '\t')" read -r file name; do
    echo "zeitwork-build: loading $name"
    id=$(buildah $store pull --quiet "oci-archive:/build/bases/$file")
    buildah $store tag "$id" "$name"
  done < /build/bases/list
fi
echo "zeitwork-build: building $dockerfile"
buildah $store bud --pull=never --isolation chroot --layers ${target:+--target "$target"} -f "$dockerfile" $args -t zeitwork-build /build/context
mkdir -p /build/out
buildah $store push zeitwork-build oci-archive:/build/out/image.tar
sync
echo "zeitwork-build: done""#;

/// What one build may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildLimits {
    pub vcpus: u32,
    pub memory_mb: u64,
    /// The scratch disk: context, layers, the archive.
    pub disk_mb: u64,
    pub time: Duration,
}

impl Default for BuildLimits {
    /// 2 vCPUs, 2 GiB, 10 GiB of disk, 15 minutes.
    fn default() -> BuildLimits {
        BuildLimits {
            vcpus: 2,
            memory_mb: 2048,
            disk_mb: 10 * 1024,
            time: Duration::from_secs(15 * 60),
        }
    }
}

/// A build to run.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// Unique on the node (names the VM's cgroup and run files).
    pub id: String,
    /// The build context, a directory on the host.
    pub context: PathBuf,
    /// The base images its stages start from, as OCI archives with their list
    /// (`bases::fetch`), a directory on the host; none there when it has none.
    pub bases: PathBuf,
    /// The Dockerfile's path in the context.
    pub dockerfile: String,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub limits: BuildLimits,
    /// The VM's slot on the node (its VMM's own ids).
    pub slot: u32,
    /// The builder's link to the internet: its number among the node's builder links
    /// (below `zeitwork_net::BUILDER_LINKS`, one no other running build uses); `None`
    /// builds with no network.
    pub network: Option<u32>,
    /// The app's layer cache: an ext4 image the builder keeps its layers on (made
    /// empty when missing), for no other app's builds.
    pub cache_disk: Option<PathBuf>,
}

/// A finished build.
#[derive(Debug)]
pub struct Built {
    /// The image as an OCI archive, on the host.
    pub archive: PathBuf,
    /// What the build printed.
    pub log: Vec<String>,
}

/// Why a build gave no image; the log says what it printed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the build failed: {reason}")]
    Failed { reason: String, log: Vec<String> },
    #[error("the build ran past its {0:?} limit and was stopped")]
    TimedOut(Duration, Vec<String>),
    #[error(transparent)]
    Setup(#[from] AgentError),
}

impl BuildError {
    /// Whether the build itself failed (a step exited non-zero): the VM ran as it should.
    pub fn is_the_builds_own(&self) -> bool {
        matches!(self, BuildError::Failed { reason, .. } if reason.starts_with(EXITED))
    }

    /// What the build printed before it failed (nothing when it never started).
    pub fn log(&self) -> &[String] {
        match self {
            BuildError::Failed { log, .. } | BuildError::TimedOut(_, log) => log,
            BuildError::Setup(_) => &[],
        }
    }
}

impl<V: Vmm> Runtime<V> {
    /// Builds `spec` in a microVM under `run_dir` (made; left for the caller to remove),
    /// booting `rootfs` with the node's guest kernel; its link (if it has one) is removed
    /// when the build ends, however it ends.
    pub async fn build(
        &self,
        rootfs: &BuilderRootfs,
        spec: &BuildSpec,
        run_dir: &Path,
    ) -> Result<Built, BuildError> {
        let link = match spec.network {
            Some(n) => {
                let (index, addrs) = InstanceAddrs::for_builder(self.config.node_prefix, n)
                    .map_err(AgentError::from)?;
                let link = Link::create(index, addrs, self.topology(), &spec.id)
                    .await
                    .map_err(AgentError::from)?;
                Some(LinkGuard(Some(link)))
            }
            None => None,
        };
        let built = self
            .build_in(
                rootfs,
                spec,
                run_dir,
                link.as_ref().and_then(|l| l.0.as_ref()),
            )
            .await;
        if let Some(link) = link {
            link.remove().await;
        }
        built
    }

    async fn build_in(
        &self,
        rootfs: &BuilderRootfs,
        spec: &BuildSpec,
        run_dir: &Path,
        link: Option<&Link>,
    ) -> Result<Built, BuildError> {
        std::fs::create_dir_all(run_dir)
            .map_err(AgentError::io(format!("creating {}", run_dir.display())))?;
        if let Some(cache) = &spec.cache_disk
            && !cache.exists()
        {
            if let Some(dir) = cache.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(AgentError::io(format!("creating {}", dir.display())))?;
            }
            crate::disks::scratch_with(cache, spec.limits.disk_mb, None).await?;
        }
        let scratch = run_dir.join("scratch.ext4");
        scratch_with_context(&scratch, spec).await?;
        let config = run_dir.join("config.img");
        crate::disks::config(&config, &guest_config(spec, link))?;
        let vm = self
            .vmm
            .launch(&VmSpec {
                name: spec.id.clone(),
                vcpus: spec.limits.vcpus,
                memory_mb: spec.limits.memory_mb,
                cpu_weight: 100,
                kernel: self.guest.vmlinux.clone(),
                initramfs: self.guest.initramfs.clone(),
                root_disk: rootfs.path.clone(),
                scratch_disk: scratch.clone(),
                config_disk: config,
                cache_disk: spec.cache_disk.clone(),
                net: link.map(|link| NetAttachment {
                    tap: link.tap().to_owned(),
                    mac: link.mac.clone(),
                    netns: link.netns.as_ref().map(Netns::path),
                }),
                run_dir: run_dir.to_path_buf(),
                slot: spec.slot,
            })
            .await
            .map_err(AgentError::from)?;
        let started = Instant::now();
        let exit = vm
            .wait_or_stop(tokio::time::sleep(spec.limits.time), Duration::from_secs(5))
            .await
            .map_err(AgentError::from)?;
        let log = build_log(run_dir);
        if started.elapsed() >= spec.limits.time {
            return Err(BuildError::TimedOut(spec.limits.time, log));
        }
        match exit {
            VmExit::App(Exit::Code(0)) => {}
            VmExit::App(Exit::Code(code)) => {
                return Err(BuildError::Failed {
                    reason: format!("{EXITED} {code}"),
                    log,
                });
            }
            VmExit::App(Exit::Signal(signal)) => {
                return Err(BuildError::Failed {
                    reason: format!("the build was killed by signal {signal}"),
                    log,
                });
            }
            VmExit::OutOfMemory => {
                return Err(BuildError::Failed {
                    reason: format!("out of memory ({} MiB)", spec.limits.memory_mb),
                    log,
                });
            }
            VmExit::InitFailed(reason) | VmExit::Crashed(reason) => {
                return Err(BuildError::Failed { reason, log });
            }
        }
        let archive = run_dir.join("image.tar");
        dump(&scratch, ARCHIVE_ON_DISK, &archive).await?;
        Ok(Built { archive, log })
    }
}

/// A builder's link, removed when the build ends; dropped with a cancelled build's task,
/// it is removed in the background (and a restarted agent removes what is left).
struct LinkGuard(Option<Link>);

impl LinkGuard {
    async fn remove(mut self) {
        if let Some(link) = self.0.take() {
            remove_link(link).await;
        }
    }
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if let (Some(link), Ok(handle)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            handle.spawn(remove_link(link));
        }
    }
}

async fn remove_link(link: Link) {
    let name = link.name.clone();
    if let Err(e) = link.remove().await {
        tracing::warn!(link = %name, error = %e, "could not remove a builder's link");
    }
}

/// What the guest runs: the script, as root, in the context, on its link when it has one.
fn guest_config(spec: &BuildSpec, link: Option<&Link>) -> GuestConfig {
    let mut argv = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        SCRIPT.to_owned(),
        "zeitwork-build".to_owned(),
        spec.dockerfile.clone(),
        spec.target.clone().unwrap_or_default(),
    ];
    argv.extend(spec.build_args.iter().map(|(k, v)| format!("{k}={v}")));
    let env = BTreeMap::from([
        (
            "PATH".to_owned(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        ),
        ("HOME".to_owned(), "/root".to_owned()),
    ]);
    GuestConfig {
        argv,
        env,
        workdir: format!("{BUILD_DIR}/context"),
        user: "0:0".into(),
        hostname: "builder".into(),
        interfaces: link.map(|l| interface(l.addrs)).into_iter().collect(),
        dns: link.map(|_| host_resolvers()).unwrap_or_default(),
        secrets: BTreeMap::new(),
        cache: spec.cache_disk.as_ref().map(|_| CACHE_DIR.to_owned()),
    }
}

/// The scratch disk, `disk_mb` large, holding the context (as
/// `zeitwork_image::stage_context` sends it)
/// at `/build/context` of the guest's root (the overlay's upper layer).
async fn scratch_with_context(path: &Path, spec: &BuildSpec) -> Result<(), AgentError> {
    let (context, dockerfile, disk_mb) = (&spec.context, &spec.dockerfile, spec.limits.disk_mb);
    let staging = tempfile::Builder::new()
        .prefix("context-")
        .tempdir_in(path.parent().unwrap_or(Path::new("/tmp")))
        .map_err(AgentError::io("staging the build context"))?;
    let upper = staging.path().join("upper/build");
    std::fs::create_dir_all(&upper).map_err(AgentError::io("staging the build context"))?;
    let (from, to, dockerfile) = (
        context.to_owned(),
        upper.join("context"),
        dockerfile.to_owned(),
    );
    let limit = zeitwork_core::manifest::Build::context_limit(disk_mb);
    tokio::task::spawn_blocking(move || {
        zeitwork_image::stage_context(&from, &to, &dockerfile, limit)
    })
    .await
    .map_err(|e| AgentError::Io {
        what: "staging the build context".into(),
        source: std::io::Error::other(e),
    })??;
    std::fs::create_dir_all(staging.path().join("work"))
        .map_err(AgentError::io("staging the build context"))?;
    if spec.bases.join(super::bases::LIST).is_file() {
        let to = upper.join(super::bases::DIR);
        std::fs::create_dir_all(&to).map_err(AgentError::io("staging the base images"))?;
        for entry in
            std::fs::read_dir(&spec.bases).map_err(AgentError::io("staging the base images"))?
        {
            let entry = entry.map_err(AgentError::io("staging the base images"))?;
            let target = to.join(entry.file_name());
            std::fs::hard_link(entry.path(), &target)
                .or_else(|_| std::fs::copy(entry.path(), &target).map(drop))
                .map_err(AgentError::io("staging the base images"))?;
        }
    }
    crate::disks::scratch_with(path, disk_mb, Some(staging.path())).await
}

/// Copies `file` of the ext4 image `disk` to `to` (no mount needed).
async fn dump(disk: &Path, file: &str, to: &Path) -> Result<(), AgentError> {
    run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("dump {file} {}", to.display()))
        .arg(disk))
    .await?;
    if !to.is_file() || std::fs::metadata(to).map_or(0, |m| m.len()) == 0 {
        return Err(AgentError::Io {
            what: format!("reading {file} from the build's disk"),
            source: std::io::Error::other("the build wrote no image"),
        });
    }
    Ok(())
}

async fn run(command: &mut Command) -> Result<(), AgentError> {
    let what = format!("{command:?}");
    let out = command
        .output()
        .await
        .map_err(AgentError::io(format!("running {what}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(AgentError::Io {
            what,
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        })
    }
}

/// The console, without the kernel's and init's own lines.
fn build_log(run_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(run_dir.join(zeitwork_vmm::CONSOLE_LOG))
        .unwrap_or_default()
        .lines()
        .filter(|l| is_build_output(l))
        .map(str::to_owned)
        .collect()
}

/// Whether a builder's console line is the build's own (not the kernel's or init's).
pub fn is_build_output(line: &str) -> bool {
    !line.starts_with('[') && !line.starts_with("zeitwork-init")
}
