//! The `firecracker` driver (production): Firecracker under its jailer, configured over
//! its HTTP API on a Unix socket.
//!
//! Per VM the jailer builds `<chroot base>/<exec name>/<id>/root` (a chroot in a mount
//! namespace of its own, with `/dev/kvm` and `/dev/net/tun`), creates the cgroup
//! `zeitwork/<id>` (memory hard cap, CPU weight; the same parent the QEMU driver uses),
//! drops to an unprivileged uid/gid and execs Firecracker in the same process, so the
//! child we spawned IS the VMM: its stdout, the run dir's `console.log`, is the guest's
//! serial console, followed by the same console watcher as QEMU's. Before that we place
//! the guest's files in the chroot (hard links; copies across filesystems); afterwards
//! we configure the VM over the API and start it. Stop: Ctrl-Alt-Del through the API (init turns it into a SIGTERM for the
//! app and resets the VM when the app has exited), SIGKILL after the grace period. After
//! the VMM exited, the jail directory and the cgroup are removed.
//!
//! **A network namespace per VM.** The jailer joins the one named in the spec's
//! [`NetAttachment`](crate::NetAttachment) (`--netns`) before dropping privileges, so
//! Firecracker sees only the guest's tap there, no host interface, and can reach no socket
//! in the host's namespace. The agent creates the namespace with the tap in it and links it
//! to the host (`zeitwork_net::Topology::OwnNetns`), because [`Vmm::wants_own_netns`] says
//! so. A VM without a NIC has no namespace to join and stays in the agent's.
//!
//! **A uid per VM.** The jailer drops each Firecracker to ids of its own
//! ([`VM_ID_BASE`](crate::VM_ID_BASE) plus the VM's [slot](VmSpec::slot)), so no VMM can
//! signal or trace another, or open another's files.
//!
//! **vsock: not configured yet.** [`VmSpec`] has no vsock field; `PUT /vsock` is all it
//! would take ([`api`] builds requests for any path). Until then a Firecracker instance has
//! no exec channel (QEMU's is a virtio-serial port, see [`Qemu::exec_channel`](crate::Qemu::exec_channel)).

pub(crate) mod api;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::cgroup::{self, Cgroup};
use crate::jail::{self, INITRD, KERNEL, place_files};
use crate::record::{GracefulStop, Jail};
use crate::running::{self, RunningVm};
use crate::{VmSpec, Vmm, VmmError};

use api::Api;

/// Memory Firecracker itself may use beyond guest RAM before the cap kills it (its own
/// footprint is a few MiB: the binary, thread stacks, virtio queues).
const OVERHEAD_MB: u64 = 32;

/// The cgroup parent, shared with the QEMU driver's cgroups.
const PARENT_CGROUP: &str = "zeitwork";

/// Inside the chroot.
const API_SOCKET: &str = "/run/firecracker.socket";
const LOG_FILE: &str = "/firecracker.log";

/// `zeitwork.shutdown=reboot`: Firecracker has no ACPI power-off but exits when the guest
/// resets (`reboot=k`), so init resets instead of powering off.
const BOOT_ARGS: &str = "console=ttyS0 reboot=k panic=1 pci=off quiet zeitwork.shutdown=reboot";

/// How long the jailer and Firecracker may take until the API socket answers.
const API_READY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

#[derive(Debug, Clone)]
pub struct Firecracker {
    firecracker: PathBuf,
    jailer: PathBuf,
    /// The jailer names the chroot after the (canonical) file name of the binary.
    exec_name: OsString,
    chroot_base: PathBuf,
    id_base: u32,
    cgroup_version: CgroupVersion,
}

impl Firecracker {
    /// `ZEITWORK_FIRECRACKER_BIN` and `ZEITWORK_JAILER_BIN`, else `firecracker` and
    /// `jailer` on `PATH`.
    pub fn detect() -> Result<Firecracker, VmmError> {
        let found = crate::driver::locate_firecracker(
            std::env::var_os(crate::driver::FIRECRACKER_ENV).as_deref(),
            std::env::var_os(crate::driver::JAILER_ENV).as_deref(),
            std::env::var_os("PATH").as_deref(),
            &|p: &Path| p.is_file(),
        )
        .map_err(|hint| VmmError::NotInstalled {
            binary: "firecracker".into(),
            hint,
        })?;
        Firecracker::new(found.0, found.1)
    }

    /// Both binaries must be statically linked (Firecracker runs in an empty chroot).
    /// Defaults: chroot base `/srv/jailer` (keep it on the filesystem of the agent's state
    /// directory, so disks are hard-linked rather than copied), the
    /// ids of each VM's own from [`VM_ID_BASE`](crate::VM_ID_BASE), and the host's cgroup
    /// version.
    pub fn new(firecracker: PathBuf, jailer: PathBuf) -> Result<Firecracker, VmmError> {
        let canonical = std::fs::canonicalize(&firecracker).map_err(|source| VmmError::Io {
            path: firecracker.display().to_string(),
            source,
        })?;
        let exec_name = canonical.file_name().unwrap_or_default().to_owned();
        Ok(Firecracker {
            firecracker,
            jailer,
            exec_name,
            chroot_base: PathBuf::from("/srv/jailer"),
            id_base: crate::VM_ID_BASE,
            cgroup_version: if cgroup::unified_with_memory() {
                CgroupVersion::V2
            } else {
                CgroupVersion::V1
            },
        })
    }

    pub fn with_chroot_base(mut self, base: PathBuf) -> Firecracker {
        self.chroot_base = base;
        self
    }

    /// Where the VMMs' ids start: the VM in slot `n` runs as `base + n`.
    pub fn with_id_base(mut self, base: u32) -> Firecracker {
        self.id_base = base;
        self
    }

    pub fn with_cgroup_version(mut self, version: CgroupVersion) -> Firecracker {
        self.cgroup_version = version;
        self
    }

    pub fn firecracker_binary(&self) -> &Path {
        &self.firecracker
    }

    pub fn jailer_binary(&self) -> &Path {
        &self.jailer
    }

    /// The uid and gid of the Firecracker that runs `spec`: its own.
    pub fn ids(&self, spec: &VmSpec) -> Result<(u32, u32), VmmError> {
        jail::vmm_ids(self.id_base, spec)
    }

    /// `<chroot base>/<exec name>/<name>`: everything the jailer makes for one VM.
    pub fn jail_dir(&self, name: &str) -> PathBuf {
        self.chroot_base.join(&self.exec_name).join(name)
    }

    /// The chroot Firecracker sees as `/`.
    pub fn chroot(&self, name: &str) -> PathBuf {
        self.jail_dir(name).join("root")
    }

    /// The cgroup the jailer creates for `name` (one directory on v2; memory and cpu on v1).
    pub fn cgroup(&self, name: &str) -> Result<Cgroup, VmmError> {
        let mounts = std::fs::read_to_string("/proc/mounts").map_err(|source| VmmError::Io {
            path: "/proc/mounts".into(),
            source,
        })?;
        let v2 = self.cgroup_version == CgroupVersion::V2;
        let at = |controller: &str| {
            cgroup::mount_point(&mounts, v2, controller)
                .map(|m| m.join(PARENT_CGROUP).join(name))
                .ok_or_else(|| VmmError::Cgroup {
                    path: format!("/proc/mounts ({controller})"),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no cgroup hierarchy with this controller is mounted",
                    ),
                })
        };
        Ok(Cgroup::existing(at("memory")?, at("cpu")?, v2))
    }

    /// The memory cap: guest RAM plus Firecracker's own overhead.
    fn memory_limit(spec: &VmSpec) -> u64 {
        (spec.memory_mb + OVERHEAD_MB) << 20
    }

    /// `--cgroup` values for the jailer. Swap is capped at zero where the host accounts it.
    pub fn cgroup_settings(&self, spec: &VmSpec, swap_accounting: bool) -> Vec<String> {
        let bytes = Self::memory_limit(spec);
        let mut settings = Vec::new();
        match self.cgroup_version {
            CgroupVersion::V1 => {
                settings.push(format!("memory.limit_in_bytes={bytes}"));
                if swap_accounting {
                    settings.push(format!("memory.memsw.limit_in_bytes={bytes}"));
                }
                settings.push(format!("cpu.shares={}", cgroup::v1_shares(spec.cpu_weight)));
            }
            CgroupVersion::V2 => {
                settings.push(format!("memory.max={bytes}"));
                if swap_accounting {
                    settings.push("memory.swap.max=0".into());
                }
                settings.push(format!("cpu.weight={}", spec.cpu_weight.clamp(1, 10_000)));
            }
        }
        settings
    }

    /// The jailer's command line (without the program name), Firecracker running as
    /// `(uid, gid)` ([`Firecracker::ids`]).
    pub fn jailer_args(
        &self,
        spec: &VmSpec,
        (uid, gid): (u32, u32),
        swap_accounting: bool,
    ) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |k: &str, v: &OsStr| {
            a.push(k.into());
            a.push(v.to_owned());
        };
        push("--id", spec.name.as_ref());
        push("--exec-file", self.firecracker.as_os_str());
        push("--uid", uid.to_string().as_ref());
        push("--gid", gid.to_string().as_ref());
        push("--chroot-base-dir", self.chroot_base.as_os_str());
        if let Some(netns) = spec.net.as_ref().and_then(|net| net.netns.as_ref()) {
            push("--netns", netns.as_os_str());
        }
        let version = match self.cgroup_version {
            CgroupVersion::V1 => "1",
            CgroupVersion::V2 => "2",
        };
        push("--cgroup-version", version.as_ref());
        push("--parent-cgroup", PARENT_CGROUP.as_ref());
        for setting in self.cgroup_settings(spec, swap_accounting) {
            push("--cgroup", setting.as_ref());
        }
        a.push("--".into());
        for arg in ["--api-sock", API_SOCKET, "--log-path", LOG_FILE] {
            a.push(arg.into());
        }
        a
    }

    /// The API requests that configure and start `spec`'s VM, in order (the drives'
    /// order makes them vda, vdb, vdc, and vdd for a cache disk).
    pub(crate) fn requests(spec: &VmSpec) -> Vec<api::Put> {
        let mut requests = vec![
            api::machine_config(spec.vcpus.clamp(1, 32), spec.memory_mb),
            api::boot_source(KERNEL, INITRD, BOOT_ARGS),
        ];
        for (id, path, read_only) in api::DRIVES {
            requests.push(api::drive(id, path, read_only));
        }
        if spec.cache_disk.is_some() {
            requests.push(api::drive("cache", crate::jail::CACHE_DISK, false));
        }
        if let Some(net) = &spec.net {
            requests.push(api::network_interface("eth0", &net.tap, &net.mac));
        }
        requests
    }

    /// Whether the host accounts swap per cgroup (else the swap limits do not exist).
    fn swap_accounting(&self) -> bool {
        let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
            return false;
        };
        match self.cgroup_version {
            CgroupVersion::V1 => cgroup::mount_point(&mounts, false, "memory")
                .is_some_and(|m| m.join("memory.memsw.limit_in_bytes").exists()),
            // The root has no memory.swap.max; any child with the memory controller does.
            CgroupVersion::V2 => cgroup::mount_point(&mounts, true, "")
                .and_then(|m| std::fs::read_dir(m).ok())
                .is_some_and(|mut d| {
                    d.any(|e| e.is_ok_and(|e| e.path().join("memory.swap.max").exists()))
                }),
        }
    }

    /// Spawns the jailer for `spec` with the guest's files in place and waits until the
    /// API answers. The VM is configured but not started.
    async fn spawn(&self, spec: &VmSpec) -> Result<Pending, VmmError> {
        check_id(&spec.name)?;
        spec.check_net(self)?;
        let ids = self.ids(spec)?;
        let (console, vmm_log) = running::run_files(&spec.run_dir).await?;
        let jail_dir = self.jail_dir(&spec.name);
        if jail_dir.exists() {
            return Err(VmmError::Io {
                path: jail_dir.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a VM of this name runs, or a crashed one left its jail (remove it)",
                ),
            });
        }
        let jail = Jail {
            dir: jail_dir,
            log: Some(self.chroot(&spec.name).join(&LOG_FILE[1..])),
        };
        let cgroup = self.cgroup(&spec.name)?;
        let placed = {
            let (chroot, spec) = (self.chroot(&spec.name), spec.clone());
            tokio::task::spawn_blocking(move || place_files(&chroot, &spec, ids))
                .await
                .map_err(|e| VmmError::Io {
                    path: "placing the guest's files".into(),
                    source: std::io::Error::other(e),
                })?
        };
        if let Err(e) = placed {
            let _ = std::fs::remove_dir_all(&jail.dir);
            return Err(e);
        }
        // The jailer execs Firecracker in the same process, which keeps these stdio files.
        let spawned = tokio::process::Command::new(&self.jailer)
            .args(self.jailer_args(spec, ids, self.swap_accounting()))
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(vmm_log)
            .kill_on_drop(true)
            .process_group(0)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(source) => {
                let _ = std::fs::remove_dir_all(&jail.dir);
                return Err(VmmError::Spawn {
                    what: self.jailer.display().to_string(),
                    source,
                });
            }
        };
        let api = Api::new(self.chroot(&spec.name).join(&API_SOCKET[1..]));
        let vm = RunningVm::new(
            child,
            spec.run_dir.clone(),
            cgroup,
            GracefulStop::CtrlAltDel(api.clone()),
            Some(jail),
        )?;
        let mut pending = Pending { vm, api };
        match pending
            .wait_for_api(&spec.run_dir.join(running::VMM_LOG))
            .await
        {
            Ok(()) => Ok(pending),
            Err(e) => Err(pending.abort(e).await),
        }
    }
}

/// A jailed Firecracker whose API answers; the VM is not started yet.
struct Pending {
    vm: RunningVm,
    api: Api,
}

impl Pending {
    async fn wait_for_api(&mut self, vmm_log: &Path) -> Result<(), VmmError> {
        let deadline = tokio::time::Instant::now() + API_READY_TIMEOUT;
        loop {
            if self.api.connect().await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self.vm.exited() {
                let log = std::fs::read_to_string(vmm_log).unwrap_or_default();
                return Err(VmmError::Jailer(format!(
                    "exited with {status} before Firecracker's API answered: {}",
                    log.trim().replace('\n', "; ")
                )));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(VmmError::Jailer(format!(
                    "Firecracker's API socket {} did not answer within {API_READY_TIMEOUT:?}",
                    self.api.socket().display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends `requests` and then `InstanceStart`.
    async fn start(self, requests: &[api::Put]) -> Result<RunningVm, VmmError> {
        for put in requests.iter().chain([&api::action("InstanceStart")]) {
            if let Err(e) = self.api.put(put).await {
                return Err(self.abort(e).await);
            }
        }
        Ok(self.vm)
    }

    /// Kills the VMM, removes its jail and cgroup, and hands back `error`.
    async fn abort(mut self, error: VmmError) -> VmmError {
        self.vm.kill();
        let _ = self.vm.wait().await;
        error
    }
}

impl Vmm for Firecracker {
    fn name(&self) -> &'static str {
        "firecracker"
    }

    fn wants_own_netns(&self) -> bool {
        true
    }

    async fn launch(&self, spec: &VmSpec) -> Result<RunningVm, VmmError> {
        let pending = self.spawn(spec).await?;
        pending.start(&Firecracker::requests(spec)).await
    }
}

/// The jailer accepts ids of up to 64 ASCII letters, digits and hyphens.
fn check_id(name: &str) -> Result<(), VmmError> {
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(VmmError::InvalidName(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
