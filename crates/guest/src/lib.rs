//! Guest artifacts shared by every VMM driver: the kernel as an uncompressed `vmlinux` ELF (QEMU
//! `-M microvm` and Firecracker both boot it through its PVH entry) and an initramfs holding
//! `zeitwork-init` as `/init` plus the kernel modules it loads.
//!
//! The kernel is Debian's `linux-image-cloud-amd64` (downloaded with apt, or a .deb named by
//! `ZEITWORK_KERNEL_DEB` for offline setups). Everything is parsed here, without dpkg or tar.
//!
//! Cache layout under `cache_dir`:
//! - `debs/<package>_<version>_amd64.deb`: apt downloads
//! - `kernel-<sha256 of the .deb>/vmlinux` and `…/release`
//! - `initramfs-<key>.cpio`, the key being the sha256 of the kernel package's digest, the kernel
//!   release, the module list and the init binary's digest ([`cache::initramfs_key`]).
//!
//! Initramfs layout: `/init` (0755), `/dev/console` (char 5:1), empty `/dev /proc /sys /run
//! /mnt`, the modules under `/lib/modules/<release>/<path>` (always uncompressed `.ko`), and
//! [`MODULES_LIST`]: one path relative to `/lib/modules/<release>/` per line, in load order.

use std::path::{Path, PathBuf};
use std::time::Instant;

pub mod apt;
pub mod cache;
pub mod cpio;
pub mod deb;
pub mod elf;
mod error;
pub mod modules;
pub mod vmlinux;

pub use apt::DEFAULT_KERNEL_PACKAGE;
pub use error::GuestError;
pub use modules::DEFAULT_MODULES;

/// Names a kernel .deb to use instead of downloading one with apt.
pub const KERNEL_DEB_ENV: &str = "ZEITWORK_KERNEL_DEB";
/// In the guest: the modules to load, in order, relative to `/lib/modules/<release>/`.
pub const MODULES_LIST: &str = "/etc/zeitwork/modules";

/// The prepared artifacts, ready for `-kernel` / `-initrd` (or Firecracker's boot source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestArtifacts {
    pub vmlinux: PathBuf,
    pub initramfs: PathBuf,
    /// `uname -r` in the guest, e.g. `6.1.0-56-cloud-amd64`.
    pub kernel_release: String,
}

/// Where the kernel package comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// Downloaded with `apt-get download` (the package may be a metapackage).
    Apt { package: String },
    /// A .deb on disk.
    Deb(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestOptions {
    pub kernel: KernelSource,
    /// Modules to put in the initramfs (with everything they depend on). Names use `_` or `-`.
    pub modules: Vec<String>,
}

impl Default for GuestOptions {
    /// Debian's cloud kernel via apt, and [`DEFAULT_MODULES`].
    fn default() -> Self {
        GuestOptions {
            kernel: KernelSource::Apt {
                package: DEFAULT_KERNEL_PACKAGE.to_owned(),
            },
            modules: DEFAULT_MODULES.iter().map(|m| m.to_string()).collect(),
        }
    }
}

impl GuestOptions {
    /// The defaults, with the kernel .deb taken from `ZEITWORK_KERNEL_DEB` when it is set.
    pub fn from_env() -> Self {
        let mut options = GuestOptions::default();
        if let Some(deb) = std::env::var_os(KERNEL_DEB_ENV).filter(|v| !v.is_empty()) {
            options.kernel = KernelSource::Deb(PathBuf::from(deb));
        }
        options
    }
}

/// Prepares the guest kernel and initramfs in `cache_dir` with [`GuestOptions::from_env`].
///
/// Blocking (process spawns, file I/O, decompression): from async code, call it inside
/// `tokio::task::spawn_blocking`. Safe to call concurrently on one cache directory.
pub fn prepare(cache_dir: &Path, init_binary: &Path) -> Result<GuestArtifacts, GuestError> {
    prepare_with(cache_dir, init_binary, &GuestOptions::from_env())
}

/// Prepares the guest kernel and initramfs in `cache_dir`. When both are cached already this
/// only hashes the inputs (plus, for an apt source, asks apt which file is current).
pub fn prepare_with(
    cache_dir: &Path,
    init_binary: &Path,
    options: &GuestOptions,
) -> Result<GuestArtifacts, GuestError> {
    let started = Instant::now();
    let init = read_init(init_binary)?;
    let deb = match &options.kernel {
        KernelSource::Apt { package } => apt::fetch(package, &cache_dir.join("debs"))?,
        KernelSource::Deb(path) => deb::given_deb(path)?,
    };
    let deb_sha = cache::sha256_file(&deb)?;
    let kernel_dir = cache_dir.join(format!("kernel-{deb_sha}"));
    let vmlinux_path = kernel_dir.join("vmlinux");
    let release_path = kernel_dir.join("release");
    let modules: Vec<String> = options
        .modules
        .iter()
        .map(|m| modules::normalize_name(m))
        .collect();

    let mut package = None;
    let cached_release = read_cached_release(&release_path, &vmlinux_path);
    let release = match cached_release {
        Some(release) => release,
        None => {
            let pkg = read_package(&deb)?;
            let t = Instant::now();
            let vmlinux = vmlinux::extract_vmlinux(&pkg.vmlinuz)?;
            cache::write_atomic(&vmlinux_path, &vmlinux)?;
            // Written last: its presence says the directory is complete.
            cache::write_atomic(&release_path, pkg.release.as_bytes())?;
            tracing::info!(
                release = %pkg.release, vmlinuz = pkg.vmlinuz.len(), vmlinux = vmlinux.len(),
                elapsed = ?t.elapsed(), "extracted vmlinux"
            );
            package.insert(pkg).release.clone()
        }
    };

    let key = cache::initramfs_key(&deb_sha, &release, &modules, &cache::sha256(&init));
    let initramfs_path = cache_dir.join(format!("initramfs-{key}.cpio"));
    if !is_nonempty_file(&initramfs_path) {
        let pkg = match package {
            Some(pkg) => pkg,
            None => read_package(&deb)?,
        };
        let t = Instant::now();
        let image = build_initramfs(&pkg, &modules, &init)?;
        cache::write_atomic(&initramfs_path, &image)?;
        tracing::info!(bytes = image.len(), elapsed = ?t.elapsed(), path = %initramfs_path.display(), "built initramfs");
    }
    tracing::debug!(elapsed = ?started.elapsed(), %release, "guest artifacts ready");
    Ok(GuestArtifacts {
        vmlinux: vmlinux_path,
        initramfs: initramfs_path,
        kernel_release: release,
    })
}

fn read_init(path: &Path) -> Result<Vec<u8>, GuestError> {
    if !path.is_file() {
        return Err(GuestError::InitMissing(path.to_owned()));
    }
    std::fs::read(path).map_err(GuestError::io(format!("read {}", path.display())))
}

fn read_package(deb: &Path) -> Result<deb::KernelPackage, GuestError> {
    let t = Instant::now();
    let pkg = deb::read_kernel_package(deb)?;
    tracing::info!(deb = %deb.display(), release = %pkg.release, modules = pkg.modules.len(), elapsed = ?t.elapsed(), "read kernel package");
    Ok(pkg)
}

fn read_cached_release(release_path: &Path, vmlinux_path: &Path) -> Option<String> {
    if !is_nonempty_file(vmlinux_path) {
        return None;
    }
    let release = std::fs::read_to_string(release_path).ok()?;
    let release = release.trim();
    (!release.is_empty()).then(|| release.to_owned())
}

fn is_nonempty_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.len() > 0)
        .unwrap_or(false)
}

/// Builds the initramfs (an uncompressed newc cpio archive) for `wanted` modules of `pkg`.
pub fn build_initramfs(
    pkg: &deb::KernelPackage,
    wanted: &[String],
    init: &[u8],
) -> Result<Vec<u8>, GuestError> {
    let order = pkg.load_order(wanted)?;
    let module_root = format!("lib/modules/{}", pkg.release);

    let mut dirs = std::collections::BTreeSet::new();
    for dir in ["dev", "proc", "sys", "run", "mnt", "etc/zeitwork"] {
        add_with_parents(&mut dirs, dir);
    }
    add_with_parents(&mut dirs, &module_root);
    for module in &order {
        if let Some((parent, _)) = module.path.rsplit_once('/') {
            add_with_parents(&mut dirs, &format!("{module_root}/{parent}"));
        }
    }
    let list: String = order.iter().map(|m| format!("{}\n", m.path)).collect();

    let write = |w: &mut cpio::CpioWriter<Vec<u8>>| -> std::io::Result<()> {
        // BTreeSet order puts every directory before its subdirectories.
        for dir in &dirs {
            w.dir(dir, 0o755)?;
        }
        w.char_device("dev/console", 0o600, 5, 1)?;
        w.file("init", 0o755, init)?;
        w.file(MODULES_LIST.trim_start_matches('/'), 0o644, list.as_bytes())?;
        for module in &order {
            w.file(
                &format!("{module_root}/{}", module.path),
                0o644,
                &module.bytes,
            )?;
        }
        Ok(())
    };
    let mut w = cpio::CpioWriter::new(Vec::new());
    write(&mut w)
        .and_then(|_| w.finish())
        .map_err(GuestError::io("write the initramfs"))
}

fn add_with_parents(dirs: &mut std::collections::BTreeSet<String>, path: &str) {
    let mut prefix = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        dirs.insert(prefix.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn fake_package() -> deb::KernelPackage {
        let module = |path: &str, deps: &[&str]| deb::KernelModule {
            path: path.to_owned(),
            depends: deps.iter().map(|d| d.to_string()).collect(),
            bytes: path.as_bytes().to_vec(),
        };
        let mut modules = BTreeMap::new();
        modules.insert(
            "virtio".into(),
            module("kernel/drivers/virtio/virtio.ko", &[]),
        );
        modules.insert(
            "virtio_ring".into(),
            module("kernel/drivers/virtio/virtio_ring.ko", &[]),
        );
        modules.insert(
            "virtio_mmio".into(),
            module(
                "kernel/drivers/virtio/virtio_mmio.ko",
                &["virtio", "virtio_ring"],
            ),
        );
        modules.insert(
            "overlay".into(),
            module("kernel/fs/overlayfs/overlay.ko", &[]),
        );
        deb::KernelPackage {
            release: "6.1.0-1-cloud-amd64".into(),
            vmlinuz: Vec::new(),
            modules,
            builtin: BTreeSet::from(["ext4".to_string()]),
            unusable: BTreeMap::new(),
        }
    }

    #[test]
    fn initramfs_layout() {
        let pkg = fake_package();
        let wanted = vec![
            "overlay".to_string(),
            "virtio-mmio".to_string(),
            "ext4".to_string(),
        ];
        let image = build_initramfs(&pkg, &wanted, b"INIT").unwrap();
        let entries = cpio::read_archive(&image).unwrap();
        let by_name: BTreeMap<_, _> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
        assert_eq!(by_name["init"].mode, cpio::S_IFREG | 0o755);
        assert_eq!(by_name["init"].data, b"INIT");
        assert_eq!(by_name["dev/console"].mode, cpio::S_IFCHR | 0o600);
        for dir in [
            "dev",
            "proc",
            "sys",
            "run",
            "mnt",
            "etc",
            "etc/zeitwork",
            "lib/modules/6.1.0-1-cloud-amd64/kernel/fs/overlayfs",
        ] {
            assert_eq!(by_name[dir].mode, cpio::S_IFDIR | 0o755, "{dir}");
        }
        assert_eq!(
            String::from_utf8_lossy(&by_name["etc/zeitwork/modules"].data),
            "kernel/fs/overlayfs/overlay.ko\nkernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/virtio/virtio_mmio.ko\n"
        );
        let ko = &by_name["lib/modules/6.1.0-1-cloud-amd64/kernel/drivers/virtio/virtio_mmio.ko"];
        assert_eq!(ko.data, b"kernel/drivers/virtio/virtio_mmio.ko");
        // Every entry's parent directory comes before it.
        for (i, e) in entries.iter().enumerate() {
            if let Some((parent, _)) = e.name.rsplit_once('/') {
                assert!(
                    entries[..i].iter().any(|p| p.name == parent),
                    "{} before its parent",
                    e.name
                );
            }
        }
        // The same inputs give the same bytes.
        assert_eq!(image, build_initramfs(&pkg, &wanted, b"INIT").unwrap());
    }

    #[test]
    fn missing_module_is_reported() {
        let err = build_initramfs(&fake_package(), &["virtio_net".to_string()], b"").unwrap_err();
        assert!(
            err.to_string().contains("module virtio_net not found"),
            "{err}"
        );
    }

    #[test]
    fn missing_init_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let options = GuestOptions {
            kernel: KernelSource::Deb(dir.path().join("k.deb")),
            modules: vec![],
        };
        let err =
            prepare_with(dir.path(), &dir.path().join("zeitwork-init"), &options).unwrap_err();
        assert!(matches!(err, GuestError::InitMissing(_)), "{err}");
        std::fs::write(dir.path().join("zeitwork-init"), b"x").unwrap();
        let err =
            prepare_with(dir.path(), &dir.path().join("zeitwork-init"), &options).unwrap_err();
        assert!(matches!(err, GuestError::DebMissing(_)), "{err}");
        assert!(err.to_string().contains("ZEITWORK_KERNEL_DEB"), "{err}");
    }
}
