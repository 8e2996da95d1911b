//! Building this workspace's binaries from its tests (the `zeitwork` binary for
//! whole-platform tests, the static guest init and example app for VM tests), the way
//! `scripts/build-guest.sh` builds the static ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// Cargo in the workspace root, without the variables cargo sets for the test process
/// calling it: build scripts that watch them (ring watches `CARGO_MANIFEST_DIR`) would
/// rebuild, and the next plain build would rebuild again.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
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

/// The target triple guest binaries are built for (the host's, named explicitly so they
/// get a directory of their own: `target/<triple>/release/`, as `scripts/build-guest.sh`).
pub fn guest_target() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

/// Builds `package`'s binary `bin` and returns its path. A `guest` binary (one that runs
/// inside a microVM) is built static, in release, into `target/<host triple>/release/`, a
/// directory plain builds never overwrite with a dynamically linked one; any other is a
/// plain debug build. Panics, with cargo's errors, when the build fails.
pub fn build_bin(package: &str, bin: &str, guest: bool) -> PathBuf {
    let mut build = cargo();
    if guest {
        let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
        build.args([
            "rustc",
            "--release",
            "-p",
            package,
            "--bin",
            bin,
            "--target",
            &triple,
        ]);
    } else {
        build.args(["build", "-p", package, "--bin", bin]);
    }
    build
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null());
    if guest {
        build.args(["--", "-C", "target-feature=+crt-static"]);
    }
    let output = build
        .output()
        .unwrap_or_else(|e| panic!("could not run cargo to build {bin}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "building {bin} failed ({}); ZEITWORK_BIN and ZEITWORK_INIT_BIN name prebuilt ones:\n{stderr}",
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
