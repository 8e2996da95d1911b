//! Where the binaries that run inside microVMs (the guest init, the bundled example app)
//! are found. They must be static: an initramfs or a one-file image holds no loader and
//! no libraries. `scripts/build-guest.sh` builds them with `--target <host triple>`, into
//! `target/<triple>/release/`, a directory a plain `cargo build` never writes, so building
//! the workspace again cannot replace them with dynamically linked ones.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// `name` next to this binary (an installed layout) when that one is static, else in the
/// cargo target directory's `<triple>/release/`.
pub fn static_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let dir = exe.parent().context("this binary has no directory")?;
    let mut candidates = vec![dir.join(name)];
    if let Some(target) = dir.parent() {
        let triple = zeitwork_services::workspace::guest_target();
        candidates.push(target.join(triple).join("release").join(name));
    }
    let mut dynamic = None;
    for candidate in &candidates {
        match judge(candidate) {
            Some(None) => return Ok(candidate.clone()),
            Some(Some(reason)) => dynamic = dynamic.or(Some((candidate, reason))),
            None => {}
        }
    }
    match dynamic {
        Some((path, reason)) => anyhow::bail!(
            "{} is {reason}, and a binary that runs inside a microVM must be static: build it with scripts/build-guest.sh",
            path.display()
        ),
        None => anyhow::bail!(
            "{name} not found (looked at {}): build it with scripts/build-guest.sh",
            candidates
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `None` when there is no such file; `Some(None)` when it is static; else why not.
fn judge(path: &Path) -> Option<Option<&'static str>> {
    let bytes = std::fs::read(path).ok()?;
    Some(zeitwork_guest::elf::not_static(&bytes))
}
