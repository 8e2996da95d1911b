//! The hard memory cap on a VMM process (guest RAM plus the VMM's own overhead) and its
//! soft CPU weight, in a cgroup of our own. Hosts have cgroup v1 (hybrid, as on these
//! machines) or v2; both are supported.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::VmmError;

const ROOT: &str = "/sys/fs/cgroup";
const PARENT: &str = "zeitwork";

/// A cgroup (one directory per controller on v1) holding one VMM process.
#[derive(Debug, Serialize, Deserialize)]
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

/// Whether the host's cgroups are v2 with the memory controller (else v1 is used).
pub(crate) fn unified_with_memory() -> bool {
    std::fs::read_to_string(Path::new(ROOT).join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
}

/// v1 `cpu.shares` for a v2-style weight (1–10000, 100 = normal): 1024 is v1's default.
pub(crate) fn v1_shares(cpu_weight: u32) -> u64 {
    (u64::from(cpu_weight.clamp(1, 10_000)) * 1024 / 100).max(2)
}

/// Where a cgroup hierarchy is mounted, found in `/proc/mounts` text the way
/// Firecracker's jailer finds it: for v1 the first `cgroup` mount whose options name
/// `controller`, for v2 the first `cgroup2` mount.
pub(crate) fn mount_point(mounts: &str, v2: bool, controller: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, dir, fstype, options) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let found = if v2 {
            fstype == "cgroup2"
        } else {
            fstype == "cgroup" && options.split(',').any(|o| o == controller)
        };
        found.then(|| PathBuf::from(dir))
    })
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
        write(&cpu.join("cpu.shares"), &v1_shares(weight).to_string())?;
        Ok(Cgroup {
            memory,
            cpu,
            v2: false,
        })
    }

    /// A cgroup someone else created (Firecracker's jailer creates its own).
    pub(crate) fn existing(memory: PathBuf, cpu: PathBuf, v2: bool) -> Cgroup {
        Cgroup { memory, cpu, v2 }
    }

    /// Its directories (one on v2; memory and cpu on v1).
    pub fn dirs(&self) -> Vec<PathBuf> {
        if self.v2 {
            vec![self.memory.clone()]
        } else {
            vec![self.memory.clone(), self.cpu.clone()]
        }
    }

    /// A command that joins this cgroup and then execs `program`, so the process is
    /// capped from its first allocation (adding it after spawn would race).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        let procs = self.procs_files();
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

    /// The `cgroup.procs` files a process writes its pid to, to join (one per hierarchy).
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs().iter().map(|d| d.join("cgroup.procs")).collect()
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

    /// The VM cgroups under our parent on this host, by name. A crashed agent leaves them
    /// behind with their VMMs still inside.
    pub fn ours() -> Vec<(String, Cgroup)> {
        let v2 = unified_with_memory();
        let (memory_parent, cpu_parent) = if v2 {
            let p = Path::new(ROOT).join(PARENT);
            (p.clone(), p)
        } else {
            (
                Path::new(ROOT).join("memory").join(PARENT),
                Path::new(ROOT).join("cpu").join(PARENT),
            )
        };
        let Ok(entries) = std::fs::read_dir(&memory_parent) else {
            return Vec::new();
        };
        let mut found: Vec<(String, Cgroup)> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .map(|name| {
                let cg = Cgroup {
                    memory: memory_parent.join(&name),
                    cpu: cpu_parent.join(&name),
                    v2,
                };
                (name, cg)
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    /// CPU time used by everything inside, in microseconds: v2 `cpu.stat` `usage_usec`;
    /// on v1, `cpuacct.usage` where cpuacct shares the cpu hierarchy, else the user and
    /// system time of the processes inside (`/proc/<pid>/stat`). Only differences
    /// between two readings mean anything; `None` when unreadable.
    pub fn cpu_usage_usec(&self) -> Option<u64> {
        if self.v2 {
            let stat = std::fs::read_to_string(self.cpu.join("cpu.stat")).ok()?;
            return stat
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))?
                .trim()
                .parse()
                .ok();
        }
        if let Some(nanos) = std::fs::read_to_string(self.cpu.join("cpuacct.usage"))
            .ok()
            .and_then(|n| n.trim().parse::<u64>().ok())
        {
            return Some(nanos / 1000);
        }
        let pids = self.pids();
        if pids.is_empty() {
            return None;
        }
        let ticks: u64 = pids
            .iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
            .filter_map(|stat| process_ticks(&stat))
            .sum();
        let per_second = rustix::param::clock_ticks_per_second().max(1);
        Some(ticks * 1_000_000 / per_second)
    }

    /// The processes inside.
    pub fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.memory.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kills everything inside (an orphaned VM's VMM) and removes the cgroup.
    pub async fn kill_all(self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let pids = self.pids();
            if pids.is_empty() || tokio::time::Instant::now() > deadline {
                break;
            }
            for pid in pids {
                if let Some(pid) = i32::try_from(pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.remove();
    }

    /// Removes the (now empty) cgroup.
    pub fn remove(self) {
        let _ = std::fs::remove_dir(&self.memory);
        if !self.v2 {
            let _ = std::fs::remove_dir(&self.cpu);
        }
    }
}

/// User plus system time (clock ticks) from a `/proc/<pid>/stat` line: fields 14 and 15,
/// counted after the command name, which is in parentheses and may hold spaces.
fn process_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_times_are_read_past_a_command_with_spaces() {
        let stat = "4242 (qemu system x86) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 75 0 0 20 0 3";
        assert_eq!(process_ticks(stat), Some(325));
        assert_eq!(process_ticks("garbage"), None);
    }

    #[test]
    fn mount_points_are_found_like_the_jailer_finds_them() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
";
        let at = |v2, c| mount_point(hybrid, v2, c).map(|p| p.display().to_string());
        assert_eq!(
            at(false, "cpu").as_deref(),
            Some("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(
            at(false, "memory").as_deref(),
            Some("/sys/fs/cgroup/memory")
        );
        assert_eq!(at(false, "pids"), None);
        assert_eq!(
            at(true, "memory").as_deref(),
            Some("/sys/fs/cgroup/unified")
        );
        assert_eq!(v1_shares(100), 1024);
        assert_eq!(v1_shares(0), 10);
        assert_eq!(v1_shares(1), 10);
    }

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
