//! `auto`: Firecracker where it can run (its binaries installed and KVM able to run Linux
//! guests), QEMU everywhere else.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::{Firecracker, Qemu, RunningVm, VmSpec, Vmm, VmmError, kvm_usable};

/// Paths of the Firecracker and jailer binaries (else both are looked up on `PATH`).
pub const FIRECRACKER_ENV: &str = "ZEITWORK_FIRECRACKER_BIN";
pub const JAILER_ENV: &str = "ZEITWORK_JAILER_BIN";

/// One of the drivers, chosen at run time.
#[derive(Debug, Clone)]
pub enum Driver {
    Firecracker(Firecracker),
    Qemu(Qemu),
}

impl Vmm for Driver {
    fn name(&self) -> &'static str {
        match self {
            Driver::Firecracker(f) => f.name(),
            Driver::Qemu(q) => q.name(),
        }
    }

    fn wants_own_netns(&self) -> bool {
        match self {
            Driver::Firecracker(f) => f.wants_own_netns(),
            Driver::Qemu(q) => q.wants_own_netns(),
        }
    }

    async fn launch(&self, spec: &VmSpec) -> Result<RunningVm, VmmError> {
        match self {
            Driver::Firecracker(f) => f.launch(spec).await,
            Driver::Qemu(q) => q.launch(spec).await,
        }
    }
}

/// What [`auto`] decided, from its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Firecracker {
        firecracker: PathBuf,
        jailer: PathBuf,
    },
    /// QEMU, and why not Firecracker.
    Qemu { reason: String },
}

/// Firecracker when both binaries exist and KVM can run Linux guests, else QEMU (KVM or
/// TCG, see [`Qemu::detect`]).
pub fn auto() -> Result<Driver, VmmError> {
    let choice = choose(
        std::env::var_os(FIRECRACKER_ENV).as_deref(),
        std::env::var_os(JAILER_ENV).as_deref(),
        std::env::var_os("PATH").as_deref(),
        kvm_usable(),
        &|p: &Path| p.is_file(),
    );
    match choice {
        Choice::Firecracker {
            firecracker,
            jailer,
        } => {
            tracing::info!(firecracker = %firecracker.display(), "VMM: firecracker");
            Ok(Driver::Firecracker(Firecracker::new(firecracker, jailer)?))
        }
        Choice::Qemu { reason } => {
            let qemu = Qemu::detect()?;
            tracing::info!(vmm = qemu.name(), why_not_firecracker = %reason, "VMM: qemu");
            Ok(Driver::Qemu(qemu))
        }
    }
}

/// The decision of [`auto`] as a pure function of the environment variables, `PATH`,
/// whether KVM is usable, and which files exist.
pub fn choose(
    firecracker_env: Option<&OsStr>,
    jailer_env: Option<&OsStr>,
    path: Option<&OsStr>,
    kvm: bool,
    is_file: &dyn Fn(&Path) -> bool,
) -> Choice {
    match locate_firecracker(firecracker_env, jailer_env, path, is_file) {
        Err(reason) => Choice::Qemu { reason },
        Ok(_) if !kvm => Choice::Qemu {
            reason: "KVM cannot run Linux guests here (no /dev/kvm, or no vmx/svm in \
                     /proc/cpuinfo; ZEITWORK_KVM=1 overrides)"
                .into(),
        },
        Ok((firecracker, jailer)) => Choice::Firecracker {
            firecracker,
            jailer,
        },
    }
}

/// Both binaries, each from its variable when set, else from `PATH`; or what is missing.
pub(crate) fn locate_firecracker(
    firecracker_env: Option<&OsStr>,
    jailer_env: Option<&OsStr>,
    path: Option<&OsStr>,
    is_file: &dyn Fn(&Path) -> bool,
) -> Result<(PathBuf, PathBuf), String> {
    let one = |env: Option<&OsStr>, var: &str, name: &str| match env {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            if is_file(&p) {
                Ok(p)
            } else {
                Err(format!("{var}={} is not a file", p.display()))
            }
        }
        _ => find_in_path(name, path, is_file)
            .ok_or_else(|| format!("{name} is not installed (set {var} or put it on PATH)")),
    };
    Ok((
        one(firecracker_env, FIRECRACKER_ENV, "firecracker")?,
        one(jailer_env, JAILER_ENV, "jailer")?,
    ))
}

/// The first `name` in the directories of `path` (a `PATH` value).
pub(crate) fn find_in_path(
    name: &str,
    path: Option<&OsStr>,
    is_file: &dyn Fn(&Path) -> bool,
) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|dir| dir.join(name))
        .find(|p| is_file(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(present: &'static [&'static str]) -> impl Fn(&Path) -> bool {
        move |p: &Path| present.iter().any(|f| Path::new(f) == p)
    }

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn firecracker_needs_both_binaries_and_usable_kvm() {
        let on_path = files(&["/usr/bin/firecracker", "/usr/bin/jailer"]);
        assert_eq!(
            choose(None, None, os("/bin:/usr/bin"), true, &on_path),
            Choice::Firecracker {
                firecracker: "/usr/bin/firecracker".into(),
                jailer: "/usr/bin/jailer".into()
            }
        );
        let Choice::Qemu { reason } = choose(None, None, os("/usr/bin"), false, &on_path) else {
            panic!("no KVM, no Firecracker")
        };
        assert!(reason.contains("KVM"), "{reason}");
        let only_fc = files(&["/usr/bin/firecracker"]);
        let Choice::Qemu { reason } = choose(None, None, os("/usr/bin"), true, &only_fc) else {
            panic!("no jailer, no Firecracker")
        };
        assert!(reason.contains("jailer is not installed"), "{reason}");
        assert!(matches!(
            choose(None, None, None, true, &on_path),
            Choice::Qemu { .. }
        ));
    }

    #[test]
    fn variables_win_over_path_and_must_name_files() {
        let present = files(&[
            "/opt/fc/firecracker-v1.16",
            "/opt/fc/jailer-v1.16",
            "/usr/bin/firecracker",
            "/usr/bin/jailer",
        ]);
        assert_eq!(
            choose(
                os("/opt/fc/firecracker-v1.16"),
                os("/opt/fc/jailer-v1.16"),
                os("/usr/bin"),
                true,
                &present
            ),
            Choice::Firecracker {
                firecracker: "/opt/fc/firecracker-v1.16".into(),
                jailer: "/opt/fc/jailer-v1.16".into()
            }
        );
        // Only one variable set: the other binary comes from PATH.
        assert_eq!(
            choose(
                None,
                os("/opt/fc/jailer-v1.16"),
                os("/usr/bin"),
                true,
                &present
            ),
            Choice::Firecracker {
                firecracker: "/usr/bin/firecracker".into(),
                jailer: "/opt/fc/jailer-v1.16".into()
            }
        );
        let Choice::Qemu { reason } = choose(
            os("/nope/firecracker"),
            None,
            os("/usr/bin"),
            true,
            &present,
        ) else {
            panic!("a variable naming a missing file does not fall back to PATH")
        };
        assert_eq!(
            reason,
            "ZEITWORK_FIRECRACKER_BIN=/nope/firecracker is not a file"
        );
        // An empty variable counts as unset.
        assert!(matches!(
            choose(os(""), os(""), os("/usr/bin"), true, &present),
            Choice::Firecracker { .. }
        ));
    }
}
