//! Per-instance disks: a sparse writable ext4 (the overlay's upper layer, so the image
//! itself stays read-only and shared) and the raw config disk.

use std::path::Path;

use tokio::process::Command;
use zeitwork_core::guest::GuestConfig;

use crate::AgentError;

/// Creates a sparse file of `size_mb` and formats it; blocks stay unallocated until the
/// guest writes them.
pub async fn scratch(path: &Path, size_mb: u64) -> Result<(), AgentError> {
    scratch_with(path, size_mb, None).await
}

/// [`scratch`], holding the files of `tree` from the start (`mkfs.ext4 -d`).
pub async fn scratch_with(
    path: &Path,
    size_mb: u64,
    tree: Option<&Path>,
) -> Result<(), AgentError> {
    let file = std::fs::File::create(path)
        .map_err(AgentError::io(format!("creating {}", path.display())))?;
    file.set_len(size_mb << 20)
        .map_err(AgentError::io(format!("sizing {}", path.display())))?;
    let out = Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-L",
            "zeitwork-rw",
            "-O",
            "^has_journal",
            "-m",
            "0",
        ])
        .args(
            tree.map(|t| [std::ffi::OsStr::new("-d"), t.as_os_str()])
                .into_iter()
                .flatten(),
        )
        .arg(path)
        .output()
        .await
        .map_err(AgentError::io("running mkfs.ext4 (install e2fsprogs)"))?;
    if !out.status.success() {
        return Err(AgentError::Io {
            what: format!("mkfs.ext4 {}", path.display()),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        });
    }
    Ok(())
}

/// Writes the config disk; it holds secrets, so only root may read it.
pub fn config(path: &Path, config: &GuestConfig) -> Result<(), AgentError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(AgentError::io(format!("creating {}", path.display())))?;
    file.write_all(&config.encode())
        .map_err(AgentError::io(format!("writing {}", path.display())))
}
