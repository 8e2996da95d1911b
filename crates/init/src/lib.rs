//! `zeitwork-init`: PID 1 inside every Zeitwork microVM.
//!
//! It runs from an initramfs (with the kernel modules the host listed in
//! `/etc/zeitwork/modules`) and, in order:
//! 1. mounts `/dev` (devtmpfs), puts stdin/stdout/stderr on `/dev/console`, mounts
//!    `/proc`, `/sys`, `/dev/pts`, `/dev/shm`, `/run`; loads the modules
//!    (`finit_module`); waits (bounded) for `/dev/vda`, `/dev/vdb`, `/dev/vdc`;
//! 2. reads [`GuestConfig`](zeitwork_core::guest::GuestConfig) from the config disk `/dev/vdc`;
//! 3. mounts the image (`/dev/vda`, ext4, read-only) under the instance's writable disk
//!    (`/dev/vdb`, ext4) with overlayfs at `/mnt/root`, moves the API filesystems into
//!    it, sets the hostname;
//! 4. brings `lo` and the interfaces up with their addresses and routes (netlink);
//! 5. switches root, writes `/etc/resolv.conf` and `/etc/hosts`;
//! 6. resolves the user in the image's `/etc/passwd`/`/etc/group`, writes the secrets
//!    file ([`SECRETS_PATH`](zeitwork_core::guest::SECRETS_PATH), 0400, the user's), starts the app
//!    in its own session with exactly the config's env (+`HOME`), forwards signals
//!    (Ctrl-Alt-Del and a press of the ACPI power button as `SIGTERM`), reaps zombies,
//!    and when the app exits prints [`Exit::line`](zeitwork_core::guest::Exit::line),
//!    syncs and powers off;
//! 7. on any failure before the app runs, prints one
//!    [`FAILURE_LINE`](zeitwork_core::guest::FAILURE_LINE) with the reason, syncs and powers off.
//!
//! Kernel command line: `zeitwork.debug` prints a line per step; `zeitwork.shutdown=reboot`
//! ends the VM with a reset instead of a power-off (for VMMs without ACPI power-off).
//!
//! # Building the static binary
//! Only the `x86_64-unknown-linux-gnu` target exists here; glibc links statically with
//! `crt-static` (init uses nothing that needs NSS: it parses `/etc/passwd` itself).
//! `scripts/build-guest.sh` builds it with `--target <host triple>`, so it lands in
//! `target/<triple>/release/zeitwork-init`, a path a plain `cargo build` never writes (a
//! plain build's `target/release/zeitwork-init` is dynamic, and the agent refuses it):
//! ```text
//! cargo rustc -p zeitwork-init --release --bin zeitwork-init \
//!     --target x86_64-unknown-linux-gnu -- -C target-feature=+crt-static
//! file target/x86_64-unknown-linux-gnu/release/zeitwork-init
//! # ELF 64-bit LSB pie executable, x86-64, ..., static-pie linked
//! ```
//! The flags apply to the final link only (build scripts and proc macros stay normal).
//! `-C relocation-model=static` would make a classic static executable and
//! `-C strip=symbols` takes it from ~3.2 MB to ~2.6 MB; a static PIE boots alike.

#![forbid(unsafe_code)]

pub mod boot;
pub mod busy;
pub mod children;
pub mod config;
pub mod console;
pub mod error;
pub mod etc;
pub mod exec;
pub mod launch;
pub mod modules;
pub mod mounts;
pub mod netlink;
pub mod network;
pub mod power;
pub mod process;
pub mod program;
pub mod secrets;
pub mod user;

use std::ffi::OsString;
use std::process::ExitCode;

/// The binary's `main`: the launcher when asked for (see [`launch`]), else the boot
/// sequence, which only runs as PID 1 (it mounts over `/` and powers the machine off).
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args
        .first()
        .is_some_and(|a| a == launch::ARG || a == launch::EXEC_ARG)
    {
        launch::run(args);
    }
    if nix::unistd::getpid().as_raw() != 1 {
        eprintln!(
            "zeitwork-init is the init (PID 1) of a Zeitwork microVM; it refuses to run as PID {}.",
            nix::unistd::getpid()
        );
        return ExitCode::from(2);
    }
    std::panic::set_hook(Box::new(|info| console::fail(&format!("panic: {info}"))));
    boot::run()
}
