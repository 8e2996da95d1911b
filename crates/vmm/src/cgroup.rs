//! The hard memory cap on a VMM process (guest RAM plus the VMM's own overhead) and its
//! soft CPU weight, in a cgroup of our own. Hosts have cgroup v1 (hybrid, as on these
//! machines) or v2; both are supported.

use std::path::{Path, PathBuf};

use crate::VmmError;

const ROOT: &str = "/sys/fs/cgroup";
const PARENT: &str = "zeitwork";

/// A cgroup (one directory per controller on v1) holding one VMM process.
#[derive(Debug)]
pub struct Cgroup {
    memory: PathBuf,
    cpu: PathBuf,
    v2: bool,
}

fn write(path: &Path, value: &str) -> Result<(), VmmError> {
    std::fs::write(path, value).map_err(|source| VmmError::Cgroup {
        path: path.display().to_string(),
        source,
    })
}

fn mkdir(path: &Path) -> Result<(), VmmError> {
    std::fs::create_dir_all(path).map_err(|source| VmmError::Cgroup {
        path: path.display().to_string(),
        source,
    })
}

fn unified_with_memory() -> bool {
    std::fs::read_to_string(Path::new(ROOT).join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
}

impl Cgroup {
    /// Creates `zeitwork/<name>` with `memory_bytes` as a hard limit (no swap) and
    /// `cpu_weight` (1–10000, 100 = normal) as the CPU share.
    pub fn create(name: &str, memory_bytes: u64, cpu_weight: u32) -> Result<Cgroup, VmmError> {
        let weight = cpu_weight.clamp(1, 10_000);
        if unified_with_memory() {
            let parent = Path::new(ROOT).join(PARENT);
            mkdir(&parent)?;
            write(
                &Path::new(ROOT).join("cgroup.subtree_control"),
                "+memory +cpu",
            )?;
            write(&parent.join("cgroup.subtree_control"), "+memory +cpu")?;
            let dir = parent.join(name);
            mkdir(&dir)?;
            write(&dir.join("memory.max"), &memory_bytes.to_string())?;
            let _ = write(&dir.join("memory.swap.max"), "0");
            write(&dir.join("cpu.weight"), &weight.to_string())?;
            return Ok(Cgroup {
                memory: dir.clone(),
                cpu: dir,
                v2: true,
            });
        }
        let memory = Path::new(ROOT).join("memory").join(PARENT).join(name);
        let cpu = Path::new(ROOT).join("cpu").join(PARENT).join(name);
        mkdir(&memory)?;
        mkdir(&cpu)?;
        write(
            &memory.join("memory.limit_in_bytes"),
            &memory_bytes.to_string(),
        )?;
        // Without swap accounting this file is absent; the RAM limit still holds.
        let _ = write(
            &memory.join("memory.memsw.limit_in_bytes"),
            &memory_bytes.to_string(),
        );
        // v1 shares: 1024 is the default, as weight 100 is on v2.
        write(
            &cpu.join("cpu.shares"),
            &(u64::from(weight) * 1024 / 100).max(2).to_string(),
        )?;
        Ok(Cgroup {
            memory,
            cpu,
            v2: false,
        })
    }

    /// A command that joins this cgroup and then execs `program`, so the process is
    /// capped from its first allocation (adding it after spawn would race).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        let mut procs = vec![self.memory.join("cgroup.procs")];
        if !self.v2 {
            procs.push(self.cpu.join("cgroup.procs"));
        }
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(r#"for p in $ZW_CGROUP_PROCS; do echo $$ > "$p" || exit 97; done; exec "$@""#)
            .arg("zeitwork-vmm")
            .arg(program)
            .env(
                "ZW_CGROUP_PROCS",
                procs
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        cmd
    }

    /// Whether the kernel killed a process here for exceeding the limit.
    pub fn oom_killed(&self) -> bool {
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        std::fs::read_to_string(self.memory.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .any(|(k, v)| k == key && v.trim().parse::<u64>().is_ok_and(|n| n > 0))
    }

    /// The limit as the kernel holds it.
    pub fn memory_limit(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        std::fs::read_to_string(self.memory.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Removes the (now empty) cgroup.
    pub fn remove(self) {
        let _ = std::fs::remove_dir(&self.memory);
        if !self.v2 {
            let _ = std::fs::remove_dir(&self.cpu);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real cgroups: needs root, which the test machines have.
    #[tokio::test]
    async fn a_process_over_the_limit_is_killed_and_reported() {
        let name = format!("test-{}", std::process::id());
        let cg = Cgroup::create(&name, 32 << 20, 50).unwrap();
        assert_eq!(cg.memory_limit(), Some(32 << 20));
        let status = cg
            .command("python3")
            .args(["-c", "b = bytearray(128 << 20)"])
            .status()
            .await
            .unwrap();
        assert!(!status.success(), "the process over the cap was killed");
        assert!(cg.oom_killed());
        cg.remove();
    }
}
