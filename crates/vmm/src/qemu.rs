//! The `qemu` driver: `qemu-system-x86_64 -M microvm` from Debian, with KVM where it can
//! run Linux guests and TCG (software) otherwise, so every Linux box boots real microVMs.
//! Stop: the ACPI power button through QMP (init turns it into a SIGTERM for the app and
//! powers off when the app has exited), SIGKILL after the grace period.
//!
//! **Confined as Firecracker is under its jailer.** Software emulation is no security
//! boundary by itself, so a guest that breaks out of QEMU must find as little as a guest
//! that breaks out of Firecracker. The spawned process is a chain of standard tools that
//! each exec the next in the same process (so the child we spawned IS the VMM):
//!
//! 1. `nsenter --net=<the instance's namespace>` (`wants_own_netns`: QEMU opens `tap0` there
//!    and sees no host interface; a VM without a NIC gets an empty namespace instead);
//! 2. `unshare --mount --propagation private`: a mount namespace of its own, then a shell
//!    that joins the VM's cgroup (memory cap and CPU weight before QEMU allocates anything)
//!    and bind-mounts the host's `/usr` (and `/lib*`, `/bin`, `/sbin` where they are not
//!    symlinks into it) read-only, `nosuid`, `nodev` into the jail: QEMU's program, its
//!    libraries and its firmware, nothing else of the host;
//! 3. `chroot <run dir>/jail`: the jail holds the kernel, the initramfs and the three disks
//!    (hard links, or copies; see `crate::jail`), `/run` for the QMP socket, and the device
//!    nodes `/dev/null`, `/dev/net/tun` (with a NIC) and `/dev/kvm` (with KVM), made for and
//!    owned by the VMM's uid as the jailer makes them;
//! 4. `setpriv`: the VM's own unprivileged uid/gid ([`Qemu::ids`]: [`VM_ID_BASE`](crate::VM_ID_BASE)
//!    plus its slot, as Firecracker's), no supplementary groups, no capabilities (bounding set emptied), `no_new_privs`;
//! 5. `env -i`: QEMU starts with an empty environment;
//! 6. QEMU with `-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny`
//!    (seccomp), `-nodefaults`, `-no-user-config`, and only the devices the guest uses.
//!
//! Privileges are dropped before QEMU starts rather than with its own `-runas`/`-chroot`:
//! QEMU installs its seccomp filter first and changes ids last, so `-runas` together with
//! `elevateprivileges=deny` dies of SIGSYS (QEMU 7.2, measured). Unprivileged, QEMU opens
//! every file itself, inside the jail; only its stdout (the console log) and stderr (the VMM
//! log) are opened by us and inherited. The jail is removed once the VMM has ended; the bind
//! mounts vanish with its mount namespace.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::cgroup::Cgroup;
use crate::jail::{self, CACHE_DISK, CONFIG_DISK, INITRD, KERNEL, ROOT_DISK, SCRATCH_DISK};
use crate::qmp;
use crate::record::{GracefulStop, Jail};
use crate::running::{self, RunningVm};
use crate::{VmSpec, Vmm, VmmError, kvm_usable};
use zeitwork_core::exec::PORT_NAME;

const BINARY: &str = "qemu-system-x86_64";

/// Memory the VMM itself may use beyond guest RAM before the cap kills it. TCG needs
/// room for its translation cache (bounded with `tb-size`).
const OVERHEAD_KVM_MB: u64 = 64;
const OVERHEAD_TCG_MB: u64 = 192;
const TB_SIZE_MB: u64 = 64;

/// QEMU's seccomp filter: no obsolete system calls, no set*uid/gid, no fork/exec, no
/// scheduling or affinity changes.
const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// The jail's directory in the run dir; QEMU's root.
const JAIL: &str = "jail";
/// Inside the jail: the run dir QEMU sees, holding its QMP and exec sockets.
const RUN_DIR: &str = "/run";

/// Where the launcher's tools are looked up; QEMU itself gets no environment at all.
const LAUNCHER_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Host directories QEMU's program files may be in. `usr` is bind-mounted read-only into
/// the jail; each other one is too where it is a directory, or recreated where it is a
/// symlink (into `usr`, on merged-/usr systems such as Debian 12).
const SYSTEM_DIRS: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Run after `unshare` with `<cgroup.procs files> -- <jail> <dirs to bind> -- <command>`:
/// joins the cgroup, bind-mounts the dirs read-only into the jail, execs the command.
const LAUNCH_SCRIPT: &str = r#"set -e
while [ "$1" != -- ]; do echo $$ > "$1" || exit 97; shift; done; shift
root=$1; shift
while [ "$1" != -- ]; do
  mount --bind "$1" "$root$1"
  mount -o remount,bind,ro,nosuid,nodev "$root$1"
  shift
done; shift
exec "$@""#;

/// The QEMU driver (see the module documentation for how QEMU is confined).
#[derive(Debug, Clone)]
pub struct Qemu {
    binary: PathBuf,
    kvm: bool,
    id_base: u32,
}

impl Qemu {
    /// Finds QEMU and decides between KVM and TCG for this host; each VMM runs as ids of
    /// its own from [`VM_ID_BASE`](crate::VM_ID_BASE), as Firecracker's do.
    pub fn detect() -> Result<Qemu, VmmError> {
        let binary = crate::driver::find_in_path(
            BINARY,
            std::env::var_os("PATH").as_deref(),
            &|p: &Path| p.is_file(),
        )
        .ok_or_else(|| VmmError::NotInstalled {
            binary: BINARY.into(),
            hint: "install Debian's qemu-system-x86 package (scripts/setup.sh does it)".into(),
        })?;
        Ok(Qemu {
            binary,
            kvm: kvm_usable(),
            id_base: crate::VM_ID_BASE,
        })
    }

    /// The QEMU executable (benchmarks run it bare, for comparison).
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Whether guests run under KVM (else TCG).
    pub fn kvm(&self) -> bool {
        self.kvm
    }

    /// KVM (`true`) or TCG, whatever [`Qemu::detect`] found.
    pub fn with_kvm(mut self, kvm: bool) -> Qemu {
        self.kvm = kvm;
        self
    }

    /// Where the VMMs' ids start: the VM in slot `n` runs as `base + n`.
    pub fn with_id_base(mut self, base: u32) -> Qemu {
        self.id_base = base;
        self
    }

    /// The uid and gid of the VMM that runs `spec`: its own.
    pub fn ids(&self, spec: &VmSpec) -> Result<(u32, u32), VmmError> {
        jail::vmm_ids(self.id_base, spec)
    }

    /// The jail (QEMU's root) of a VM whose run dir is `run_dir`.
    pub fn jail_dir(run_dir: &Path) -> PathBuf {
        let jail = run_dir.join(JAIL);
        std::path::absolute(&jail).unwrap_or(jail)
    }

    fn overhead_mb(&self) -> u64 {
        if self.kvm {
            OVERHEAD_KVM_MB
        } else {
            OVERHEAD_TCG_MB
        }
    }

    /// QEMU's command line for `spec` (without the program name), its paths as given:
    /// [`Vmm::launch`] passes the paths inside the jail; benchmarks run it bare.
    pub fn args(&self, spec: &VmSpec) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
        push(&["-sandbox", SANDBOX]);
        push(&[
            "-M",
            "microvm,x-option-roms=off",
            "-nodefaults",
            "-no-user-config",
        ]);
        push(&["-display", "none", "-no-reboot"]);
        if self.kvm {
            push(&["-accel", "kvm", "-cpu", "host,-arch-capabilities"]);
        } else {
            push(&["-accel", &format!("tcg,tb-size={TB_SIZE_MB}")]);
        }
        push(&[
            "-m",
            &spec.memory_mb.to_string(),
            "-smp",
            &spec.vcpus.max(1).to_string(),
        ]);
        push(&[
            "-chardev",
            "stdio,id=console,signal=off",
            "-serial",
            "chardev:console",
        ]);
        let mut cmdline = String::from("console=ttyS0 reboot=k panic=1 quiet");
        if !self.kvm {
            for arg in crate::tcg_kernel_args() {
                cmdline.push(' ');
                cmdline.push_str(&arg);
            }
        }
        push(&["-append", &cmdline]);
        // The graceful stop presses the ACPI power button through it.
        let mut qmp = OsString::from("unix:");
        qmp.push(escape(&qmp::socket(&spec.run_dir)));
        qmp.push(",server=on,wait=off");
        a.extend(["-qmp".into(), qmp]);
        // The exec channel: a virtio-serial port the guest's init serves (no vsock, so
        // no /dev/vhost-vsock on the host), its socket next to QMP's.
        let mut exec = OsString::from("socket,id=exec,server=on,wait=off,path=");
        exec.push(escape(&exec_socket(&spec.run_dir)));
        a.extend(["-device".into(), "virtio-serial-device".into()]);
        a.extend(["-chardev".into(), exec]);
        a.extend([
            "-device".into(),
            format!("virtserialport,chardev=exec,name={PORT_NAME}").into(),
        ]);
        a.extend(["-kernel".into(), spec.kernel.clone().into_os_string()]);
        a.extend(["-initrd".into(), spec.initramfs.clone().into_os_string()]);
        let disks = [
            Some(("root", &spec.root_disk, true)),
            Some(("scratch", &spec.scratch_disk, false)),
            Some(("config", &spec.config_disk, true)),
            spec.cache_disk
                .as_ref()
                .map(|cache| ("cache", cache, false)),
        ];
        for (id, path, readonly) in disks.into_iter().flatten() {
            let mut drive = OsString::from(format!(
                "id={id},format=raw,if=none,readonly={},file=",
                if readonly { "on" } else { "off" }
            ));
            drive.push(escape(path));
            a.extend(["-drive".into(), drive]);
            a.extend([
                "-device".into(),
                format!("virtio-blk-device,drive={id}").into(),
            ]);
        }
        if let Some(net) = &spec.net {
            a.extend([
                "-netdev".into(),
                format!("tap,id=net0,ifname={},script=no,downscript=no", net.tap).into(),
            ]);
            a.extend([
                "-device".into(),
                format!("virtio-net-device,netdev=net0,mac={}", net.mac).into(),
            ]);
        }
        a
    }

    /// The socket of the exec channel of the VM whose run dir is `run_dir`, as the host
    /// sees it (in the jail). The node's agent connects to it; see `zeitwork_core::exec`.
    pub fn exec_channel(run_dir: &Path) -> PathBuf {
        exec_socket(&Qemu::jail_dir(run_dir).join(&RUN_DIR[1..]))
    }

    /// `spec` as QEMU sees it in its jail.
    fn jailed(spec: &VmSpec) -> VmSpec {
        VmSpec {
            kernel: KERNEL.into(),
            initramfs: INITRD.into(),
            root_disk: ROOT_DISK.into(),
            scratch_disk: SCRATCH_DISK.into(),
            config_disk: CONFIG_DISK.into(),
            cache_disk: spec.cache_disk.as_ref().map(|_| CACHE_DISK.into()),
            run_dir: RUN_DIR.into(),
            ..spec.clone()
        }
    }

    /// The whole command that launches `spec`'s VMM (program first): the tools that confine
    /// it, then QEMU (`binary`, its path on the host and in the jail) with its arguments.
    /// `procs` are the cgroup files to join, `binds` the host dirs mounted into the jail;
    /// QEMU runs as `(uid, gid)`.
    fn launcher(
        &self,
        spec: &VmSpec,
        (uid, gid): (u32, u32),
        binary: &Path,
        jail: &Path,
        procs: &[PathBuf],
        binds: &[PathBuf],
    ) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        match spec.net.as_ref().and_then(|net| net.netns.as_ref()) {
            Some(netns) => {
                let mut net = OsString::from("--net=");
                net.push(netns);
                a.extend(["nsenter".into(), net, "--".into()]);
                a.extend(["unshare", "--mount", "--propagation", "private"].map(OsString::from));
            }
            // No NIC: an empty network namespace, not the host's.
            None => a.extend(
                ["unshare", "--mount", "--propagation", "private", "--net"].map(OsString::from),
            ),
        }
        a.extend(["--", "/bin/sh", "-c", LAUNCH_SCRIPT, "zeitwork-vmm"].map(OsString::from));
        a.extend(procs.iter().map(|p| p.clone().into_os_string()));
        a.push("--".into());
        a.push(jail.into());
        a.extend(binds.iter().map(|p| p.clone().into_os_string()));
        a.push("--".into());
        a.extend(["chroot".into(), jail.into()]);
        a.extend(
            [
                "setpriv".into(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
                "--no-new-privs".into(),
                "--inh-caps=-all".into(),
                "--bounding-set=-all".into(),
                "--".into(),
                "env".into(),
                "-i".into(),
            ]
            .map(OsString::from),
        );
        a.push(binary.into());
        a.extend(self.args(&Self::jailed(spec)));
        a
    }

    /// The QEMU binary by its real path, which must be under `/usr` (the only part of
    /// the host the jail shows).
    fn binary_in_jail(&self) -> Result<PathBuf, VmmError> {
        let real = std::fs::canonicalize(&self.binary).map_err(|source| VmmError::Io {
            path: self.binary.display().to_string(),
            source,
        })?;
        if real.starts_with("/usr/") {
            return Ok(real);
        }
        Err(VmmError::NotInstalled {
            binary: real.display().to_string(),
            hint: "QEMU runs in a jail that shows only /usr of the host: install it under \
                   /usr (Debian's qemu-system-x86 package)"
                .into(),
        })
    }
}

/// QEMU's option syntax doubles commas inside values.
fn escape(path: &Path) -> OsString {
    OsString::from(path.to_string_lossy().replace(',', ",,"))
}

/// Makes the jail of `spec` at `jail` for a VMM of `ids` (replacing what a VMM that no
/// longer runs left there) and returns the host dirs to bind-mount into it.
fn build_jail(
    jail: &Path,
    spec: &VmSpec,
    (uid, gid): (u32, u32),
    kvm: bool,
) -> Result<Vec<PathBuf>, VmmError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| VmmError::Io { path, source }
    };
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
    };
    let own = |path: &Path| std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io(path));
    if jail.exists() {
        let mounted = jail::mounts_under(jail);
        if !mounted.is_empty() {
            return Err(VmmError::Io {
                path: jail.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("a previous jail still has mounts: {mounted:?}"),
                ),
            });
        }
        std::fs::remove_dir_all(jail).map_err(io(jail))?;
    }
    std::fs::create_dir_all(jail).map_err(io(jail))?;
    mode(jail, 0o755)?;
    jail::place_files(jail, spec, (uid, gid))?;
    let run = jail.join(&RUN_DIR[1..]);
    std::fs::create_dir(&run).map_err(io(&run))?;
    own(&run)?;
    mode(&run, 0o700)?;
    // Device nodes like the host's, as the jailer makes them: the VMM's own (null is
    // everybody's), on the jail's filesystem.
    let mut devices = vec![("null", 0o666, false)];
    if spec.net.is_some() {
        devices.push(("net/tun", 0o600, true));
    }
    if kvm {
        devices.push(("kvm", 0o600, true));
    }
    for (name, perm, owned) in devices {
        let host = Path::new("/dev").join(name);
        let rdev = std::fs::metadata(&host).map_err(io(&host))?.rdev();
        let node = jail.join("dev").join(name);
        if let Some(parent) = node.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &node,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(perm),
            rdev,
        )
        .map_err(|e| io(&node)(e.into()))?;
        if owned {
            own(&node)?;
        }
        mode(&node, perm)?;
    }
    let mut binds = Vec::new();
    for dir in SYSTEM_DIRS {
        let host = Path::new("/").join(dir);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        let inside = jail.join(dir);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&host).map_err(io(&host))?;
            std::os::unix::fs::symlink(target, &inside).map_err(io(&inside))?;
        } else if meta.is_dir() {
            std::fs::create_dir(&inside).map_err(io(&inside))?;
            binds.push(host);
        }
    }
    if !binds.iter().any(|b| b == Path::new("/usr")) {
        return Err(VmmError::Io {
            path: "/usr".into(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not a directory: the jail shows QEMU's program files from it",
            ),
        });
    }
    Ok(binds)
}

/// The exec channel's socket in a run dir (absolute, as QMP's).
fn exec_socket(run_dir: &Path) -> PathBuf {
    let socket = run_dir.join("exec.sock");
    std::path::absolute(&socket).unwrap_or(socket)
}

impl Vmm for Qemu {
    fn name(&self) -> &'static str {
        if self.kvm { "qemu-kvm" } else { "qemu-tcg" }
    }

    /// Like Firecracker, QEMU runs in the instance's network namespace and opens its tap
    /// there.
    fn wants_own_netns(&self) -> bool {
        true
    }

    async fn launch(&self, spec: &VmSpec) -> Result<RunningVm, VmmError> {
        spec.check_net(self)?;
        let ids = self.ids(spec)?;
        let jail_dir = Qemu::jail_dir(&spec.run_dir);
        let qmp = jail_dir.join(&RUN_DIR[1..]).join("qmp.sock");
        qmp::check(&qmp)?;
        let binary = self.binary_in_jail()?;
        if running::runs_in(&spec.run_dir) {
            return Err(VmmError::Io {
                path: spec.run_dir.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a VM launched in this run dir still runs",
                ),
            });
        }
        let (console, vmm_log) = running::run_files(&spec.run_dir).await?;
        let built = {
            let (jail_dir, spec, kvm) = (jail_dir.clone(), spec.clone(), self.kvm);
            tokio::task::spawn_blocking(move || build_jail(&jail_dir, &spec, ids, kvm))
                .await
                .map_err(|e| VmmError::Io {
                    path: "building the VMM's jail".into(),
                    source: std::io::Error::other(e),
                })
                .and_then(|built| built)
        };
        let jail = Jail {
            dir: jail_dir.clone(),
            log: None,
        };
        let remove_jail = || {
            let _ = std::fs::remove_dir_all(&jail.dir);
        };
        let binds = built.inspect_err(|_| remove_jail())?;
        let cgroup = Cgroup::create(
            &spec.name,
            (spec.memory_mb + self.overhead_mb()) << 20,
            spec.cpu_weight,
        )
        .inspect_err(|_| remove_jail())?;
        let argv = self.launcher(spec, ids, &binary, &jail_dir, &cgroup.procs_files(), &binds);
        // Its own process group: a Ctrl-C meant for the agent does not reach the VMM.
        let spawned = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("PATH", LAUNCHER_PATH)
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(vmm_log)
            .kill_on_drop(true)
            .process_group(0)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(source) => {
                remove_jail();
                cgroup.remove();
                return Err(VmmError::Spawn {
                    what: argv[0].to_string_lossy().into_owned(),
                    source,
                });
            }
        };
        RunningVm::new(
            child,
            spec.run_dir.clone(),
            cgroup,
            GracefulStop::PowerButton { qmp },
            Some(jail),
        )
    }
}

#[cfg(test)]
pub(crate) mod tests;
