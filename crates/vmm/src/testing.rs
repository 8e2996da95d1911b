//! What the tests that boot real guests share: the guest's kernel and initramfs (made when
//! missing, never skipped for lack of them), blank disks, and static builds of workspace
//! binaries for a guest to run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use serde_json::Value;

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
    let mut prepare = cargo();
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
    let mut build = cargo();
    build
        .args(["rustc", "--release", "-p", package, "--bin", bin])
        // As scripts/build-guest.sh: a directory plain builds never overwrite.
        .args([
            "--target",
            &format!("{}-unknown-linux-gnu", std::env::consts::ARCH),
        ])
        .arg("--message-format=json-render-diagnostics")
        .args(["--", "-C", "target-feature=+crt-static"])
        .stdin(Stdio::null());
    let output = build
        .output()
        .unwrap_or_else(|e| panic!("running cargo to build {bin}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "building {bin} failed ({}):\n{stderr}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("building {bin} named no executable:\n{stderr}"))
}

/// Cargo in the workspace root, without the variables cargo sets for this test process
/// (build scripts that watch them would rebuild, and the next plain build again).
fn cargo() -> std::process::Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let per_test = name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&name.as_ref());
        if per_test {
            command.env_remove(name.as_ref());
        }
    }
    command
}
