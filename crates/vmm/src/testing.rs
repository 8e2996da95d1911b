//! What the tests that boot real guests share: the guest's kernel and initramfs (made when
//! missing, never skipped for lack of them), blank disks, and static builds of workspace
//! binaries for a guest to run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

/// The guest crate's test cache, shared with the guest and e2e tests.
fn cache() -> PathBuf {
    std::env::temp_dir().join("zeitwork-guest-test-cache")
}

/// Empty root, scratch and config disks in `d` (init rejects them: that verdict proves a boot).
pub(crate) fn blank_disks(d: &Path) {
    for (disk, size) in [
        ("root.ext4", 1 << 20),
        ("rw.ext4", 16 << 20),
        ("config.img", 4096),
    ] {
        std::fs::File::create(d.join(disk))
            .unwrap()
            .set_len(size)
            .unwrap();
    }
}

/// A guest kernel and an initramfs with zeitwork-init: `ZEITWORK_TEST_VMLINUX` and
/// `ZEITWORK_TEST_INITRAMFS`, else the newest in the guest crate's test cache, else made
/// there now (zeitwork-init built statically, the guest crate's `prepare` example run,
/// which downloads Debian's cloud kernel with apt or takes `ZEITWORK_KERNEL_DEB`).
pub(crate) fn guest_files() -> (PathBuf, PathBuf) {
    static FILES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FILES
        .get_or_init(|| {
            cached_guest_files().unwrap_or_else(|| {
                eprintln!(
                    "no guest kernel/initramfs with zeitwork-init in {}: preparing them",
                    cache().display()
                );
                prepare_guest();
                cached_guest_files().expect("the prepared guest is in the cache")
            })
        })
        .clone()
}

fn cached_guest_files() -> Option<(PathBuf, PathBuf)> {
    let cache = cache();
    let newest = |pick: &dyn Fn(&Path) -> Option<PathBuf>| {
        std::fs::read_dir(&cache)
            .ok()?
            .filter_map(|e| pick(&e.ok()?.path()))
            .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    };
    let kernel = std::env::var_os("ZEITWORK_TEST_VMLINUX")
        .map(PathBuf::from)
        .or_else(|| {
            newest(&|p| {
                let name = p.file_name()?.to_str()?;
                let vmlinux = p.join("vmlinux");
                (name.starts_with("kernel-") && vmlinux.is_file()).then_some(vmlinux)
            })
        })?;
    let initramfs = std::env::var_os("ZEITWORK_TEST_INITRAMFS")
        .map(PathBuf::from)
        .or_else(|| {
            newest(&|p| {
                let name = p.file_name()?.to_str()?;
                (name.starts_with("initramfs-") && name.ends_with(".cpio")).then_some(())?;
                // The cache also holds initramfs with a fake init: take one with the real one.
                let bytes = std::fs::read(p).ok()?;
                let marker = zeitwork_core::guest::FAILURE_LINE.as_bytes();
                bytes
                    .windows(marker.len())
                    .any(|w| w == marker)
                    .then(|| p.to_owned())
            })
        })?;
    Some((kernel, initramfs))
}

/// Runs the guest crate's `prepare` example into the cache with a static zeitwork-init.
fn prepare_guest() {
    let init = static_bin("zeitwork-init", "zeitwork-init");
    std::fs::create_dir_all(cache()).unwrap();
    let mut prepare = zeitwork_services::workspace::cargo();
    prepare
        .args(["run", "-p", "zeitwork-guest", "--example", "prepare", "--"])
        .arg(cache())
        .arg(&init)
        .stdin(Stdio::null());
    let output = prepare
        .output()
        .unwrap_or_else(|e| panic!("running cargo: {e}"));
    assert!(
        output.status.success(),
        "preparing the guest failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `package`'s binary `bin`, built now as a static release binary (as binaries that run
/// inside a microVM must be). `ZEITWORK_INIT_BIN` names a prebuilt zeitwork-init.
pub(crate) fn static_bin(package: &str, bin: &str) -> PathBuf {
    if bin == "zeitwork-init"
        && let Some(prebuilt) = std::env::var_os("ZEITWORK_INIT_BIN")
    {
        return prebuilt.into();
    }
    zeitwork_services::workspace::build_bin(package, bin, true)
}

/// A VM spec for command-line tests: 2 vCPUs, 256 MiB, a tap in its own namespace.
pub(crate) fn sample_spec() -> crate::VmSpec {
    crate::VmSpec {
        name: "i-1".into(),
        vcpus: 2,
        memory_mb: 256,
        cpu_weight: 100,
        kernel: "/k/vmlinux".into(),
        initramfs: "/k/initrd".into(),
        root_disk: "/d/root.ext4".into(),
        scratch_disk: "/d/rw.ext4".into(),
        config_disk: "/d/config.img".into(),
        cache_disk: None,
        net: Some(crate::NetAttachment {
            tap: "tap0".into(),
            mac: "02:00:00:00:00:01".into(),
            netns: Some("/var/run/netns/zwvm-i-1".into()),
        }),
        run_dir: "/run/zw/i-1".into(),
        slot: 1,
    }
}

/// A command line as one string, for assertions.
pub(crate) fn joined(args: &[std::ffi::OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
