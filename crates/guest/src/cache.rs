//! Content-addressed files in the cache directory, written crash-safely: to a temporary file
//! in the same directory, flushed to disk, then renamed over the final name.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::GuestError;

/// Bump when the initramfs layout changes, so old cached archives are not reused.
pub const INITRAMFS_FORMAT: &str = "zeitwork-initramfs v1";

pub fn sha256_file(path: &Path) -> Result<String, GuestError> {
    let mut file = File::open(path).map_err(GuestError::io(format!("open {}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(GuestError::io(format!("read {}", path.display())))?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The cache key of an initramfs: everything that goes into it. The kernel package's digest is
/// part of it because modules only load into the exact kernel build they came from.
pub fn initramfs_key(
    deb_sha256: &str,
    release: &str,
    modules: &[String],
    init_sha256: &str,
) -> String {
    let text = format!(
        "{INITRAMFS_FORMAT}\nkernel-deb {deb_sha256}\nrelease {release}\nmodules {}\ninit {init_sha256}\n",
        modules.join(",")
    );
    sha256(text.as_bytes())
}

/// Writes `bytes` to `path` atomically: readers see the old file or the whole new one, and a
/// crash leaves at most a stray temporary file (named `.tmp*`) behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), GuestError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(GuestError::io(format!("create {}", dir.display())))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp")
        .tempfile_in(dir)
        .map_err(GuestError::io(format!(
            "create a temporary file in {}",
            dir.display()
        )))?;
    tmp.write_all(bytes)
        .map_err(GuestError::io(format!("write {}", tmp.path().display())))?;
    tmp.as_file()
        .sync_all()
        .map_err(GuestError::io(format!("sync {}", tmp.path().display())))?;
    set_mode_644(tmp.as_file())?;
    tmp.persist(path).map_err(|e| GuestError::Io {
        context: format!("rename into {}", path.display()),
        source: e.error,
    })?;
    sync_dir(dir)
}

fn set_mode_644(file: &File) -> Result<(), GuestError> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(GuestError::io("chmod a cache file"))
}

pub fn sync_file(path: &Path) -> Result<(), GuestError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(GuestError::io(format!("sync {}", path.display())))
}

/// Makes a rename in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), GuestError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(GuestError::io(format!("sync {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/artifact");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two!").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two!");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["artifact"], "no temporary files left");
        assert_eq!(sha256_file(&path).unwrap(), sha256(b"two!"));
    }

    #[test]
    fn key_depends_on_every_input() {
        let m = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let base = initramfs_key("d", "r", &m(&["a", "b"]), "i");
        assert_eq!(base, initramfs_key("d", "r", &m(&["a", "b"]), "i"));
        assert_ne!(base, initramfs_key("D", "r", &m(&["a", "b"]), "i"));
        assert_ne!(base, initramfs_key("d", "R", &m(&["a", "b"]), "i"));
        assert_ne!(base, initramfs_key("d", "r", &m(&["a"]), "i"));
        assert_ne!(base, initramfs_key("d", "r", &m(&["a", "b"]), "I"));
    }
}
