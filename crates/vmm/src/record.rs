//! What was made for a VMM and how to stop it, saved as `vmm.json` in the run dir at
//! launch: an agent that died leaves its VMs running, and the next one reads this to
//! adopt them (wait for them, stop them gracefully, clean up after them).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::VmmError;
use crate::cgroup::Cgroup;
use crate::firecracker::api::Api;

const FILE: &str = "vmm.json";

/// How a driver asks its VMM to stop gracefully.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum GracefulStop {
    /// QEMU presses the ACPI power button (init turns it into a SIGTERM for the app).
    PowerButton { qmp: PathBuf },
    /// Ctrl-Alt-Del through Firecracker's API (init turns it into a SIGTERM for the app).
    CtrlAltDel(Api),
}

/// Files made for a jailed VMM: removed after it ended, its log kept.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Jail {
    /// The directory holding the chroot, removed as a whole: Firecracker's
    /// `<chroot base>/<exec name>/<id>`, QEMU's `<run dir>/jail`.
    pub dir: PathBuf,
    /// The VMM's log inside the jail, appended to the run dir's `vmm.log` before removal
    /// (QEMU writes its log to the run dir directly: none).
    #[serde(default)]
    pub log: Option<PathBuf>,
}

impl Jail {
    pub fn remove(&self, keep_log_in: &Path) {
        if let Some(Ok(log)) = self.log.as_ref().map(std::fs::read) {
            use std::io::Write;
            if let Ok(mut out) = std::fs::OpenOptions::new().append(true).open(keep_log_in) {
                let _ = out.write_all(&log);
            }
        }
        // The VMM's bind mounts live in its own mount namespace, gone with it; should one
        // be visible here, removing the tree would delete what it shows (the host's /usr).
        let mounted = crate::jail::mounts_under(&self.dir);
        if !mounted.is_empty() {
            tracing::warn!(dir = %self.dir.display(), ?mounted, "not removing a VMM's jail with mounts in it");
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "removing the VMM's jail");
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The VMM; adopted only while it is still in `cgroup` (a pid alone may be recycled).
    pub pid: u32,
    pub cgroup: Cgroup,
    pub graceful: GracefulStop,
    pub jail: Option<Jail>,
}

impl Record {
    /// Writes the record whole or not at all (a reader never sees half of it).
    pub fn save(&self, run_dir: &Path) -> Result<(), VmmError> {
        let path = run_dir.join(FILE);
        let partial = run_dir.join(format!("{FILE}.partial"));
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other);
        json.and_then(|json| std::fs::write(&partial, json))
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|source| VmmError::Io {
                path: path.display().to_string(),
                source,
            })
    }

    /// The record in `run_dir`, or `None` when there is none (no VM was launched there).
    pub fn load(run_dir: &Path) -> Result<Option<Record>, VmmError> {
        let path = run_dir.join(FILE);
        let io = |source| VmmError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(&path) {
            Ok(json) => serde_json::from_slice(&json)
                .map(Some)
                .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// Once the VMM has ended and everything in the record is gone.
    pub fn remove(run_dir: &Path) {
        let _ = std::fs::remove_file(run_dir.join(FILE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Record::load(dir.path()).unwrap().is_none());
        let record = Record {
            pid: 42,
            cgroup: Cgroup::existing(
                "/cg/memory/zeitwork/a".into(),
                "/cg/cpu/zeitwork/a".into(),
                false,
            ),
            graceful: GracefulStop::CtrlAltDel(Api::new(
                "/srv/jailer/fc/a/root/run/firecracker.socket".into(),
            )),
            jail: Some(Jail {
                dir: "/srv/jailer/fc/a".into(),
                log: Some("/srv/jailer/fc/a/root/firecracker.log".into()),
            }),
        };
        record.save(dir.path()).unwrap();
        let read = Record::load(dir.path()).unwrap().unwrap();
        assert_eq!(format!("{read:?}"), format!("{record:?}"));
        Record::remove(dir.path());
        assert!(Record::load(dir.path()).unwrap().is_none());
        std::fs::write(dir.path().join(FILE), "{").unwrap();
        assert!(
            Record::load(dir.path()).is_err(),
            "a corrupt record is an error"
        );
    }
}
