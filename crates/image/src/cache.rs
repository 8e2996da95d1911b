//! The on-disk cache: verified blobs by digest, and one ext4 image (+ its config) per image
//! digest.
//!
//! ```text
//! <cache>/blobs/sha256-<hex>         verified config and layer blobs
//! <cache>/rootfs/sha256-<hex>.ext4   the read-only root filesystem of an image
//! <cache>/rootfs/sha256-<hex>.json   its ImageConfig and the blobs it was built from
//! <cache>/tmp/                       downloads and builds in progress
//! <cache>/locks/                     flock(2) files
//! ```
//!
//! Everything is written to `tmp/` and renamed into place only when complete and verified, so a
//! crash or a failed check never leaves a half-written file under a name that will be trusted.
//! The `.json` is renamed last: its presence marks a finished image. Builds hold a shared lock on
//! `locks/gc` and an exclusive one on `locks/<digest>` (a second build of the same digest, in any
//! process, waits and then finds it done); garbage collection takes `locks/gc` exclusively, so
//! it never removes what a build in progress relies on.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::{ImageConfig, ImageError};

/// What is recorded beside each root filesystem.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// The digest the image was asked for by (an index or a manifest).
    pub digest: String,
    /// The linux/amd64 image manifest (equal to `digest` unless that is an index).
    pub manifest_digest: String,
    /// The config and layer blobs, for garbage collection.
    pub blobs: Vec<String>,
    /// How to run the image.
    pub config: ImageConfig,
}

/// The cache directory.
#[derive(Clone, Debug)]
pub(crate) struct Cache {
    root: PathBuf,
}

/// Held locks; dropping it releases them.
pub(crate) struct Locks {
    _files: Vec<File>,
}

impl Cache {
    /// Opens (creating) the cache directory.
    pub(crate) fn open(root: PathBuf) -> Result<Cache, ImageError> {
        for dir in ["blobs", "rootfs", "tmp", "locks"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path)
                .map_err(ImageError::io(format!("creating {}", path.display())))?;
        }
        Ok(Cache { root })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blob(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join(digest.file_name())
    }

    pub(crate) fn rootfs(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("rootfs")
            .join(format!("{}.ext4", digest.file_name()))
    }

    fn meta(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("rootfs")
            .join(format!("{}.json", digest.file_name()))
    }

    /// A temporary file in `tmp/` (same file system as the cache, so it can be renamed in);
    /// removed when dropped unless persisted.
    pub(crate) fn temp_file(&self) -> Result<tempfile::NamedTempFile, ImageError> {
        tempfile::NamedTempFile::new_in(self.root.join("tmp")).map_err(ImageError::io(
            "creating a temporary file in the image cache",
        ))
    }

    /// A temporary directory in `tmp/`, removed when dropped.
    pub(crate) fn temp_dir(&self) -> Result<tempfile::TempDir, ImageError> {
        tempfile::TempDir::new_in(self.root.join("tmp")).map_err(ImageError::io(
            "creating a staging directory in the image cache",
        ))
    }

    /// The finished image `digest`, if there is one.
    pub(crate) fn lookup(&self, digest: &Digest) -> Result<Option<Meta>, ImageError> {
        let path = self.meta(digest);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ImageError::io(format!("reading {}", path.display()))(e)),
        };
        if !self.rootfs(digest).exists() {
            return Ok(None);
        }
        let meta = serde_json::from_slice(&bytes).map_err(|e| ImageError::Invalid {
            what: path.display().to_string(),
            reason: format!("{e}; delete the file to rebuild the image"),
        })?;
        Ok(Some(meta))
    }

    /// Moves a built ext4 image and its metadata into place (the metadata last).
    pub(crate) fn commit(
        &self,
        digest: &Digest,
        image: tempfile::NamedTempFile,
        meta: &Meta,
    ) -> Result<PathBuf, ImageError> {
        let path = self.rootfs(digest);
        image.persist(&path).map_err(|e| {
            ImageError::io(format!("moving the image to {}", path.display()))(e.error)
        })?;
        let mut json = self.temp_file()?;
        serde_json::to_writer_pretty(json.as_file_mut(), meta)
            .map_err(|e| ImageError::io("writing image metadata")(e.into()))?;
        let meta_path = self.meta(digest);
        json.persist(&meta_path).map_err(|e| {
            ImageError::io(format!("moving metadata to {}", meta_path.display()))(e.error)
        })?;
        Ok(path)
    }

    /// Takes the locks of a build of `digest` (blocking: call from a blocking thread).
    pub(crate) fn lock_build(&self, digest: &Digest) -> Result<Locks, ImageError> {
        let gc = self.lock_file("gc")?;
        gc.lock_shared()
            .map_err(ImageError::io("locking the image cache"))?;
        let build = self.lock_file(&digest.file_name())?;
        build
            .lock()
            .map_err(ImageError::io(format!("locking the build of {digest}")))?;
        Ok(Locks {
            _files: vec![gc, build],
        })
    }

    fn lock_file(&self, name: &str) -> Result<File, ImageError> {
        let path = self.root.join("locks").join(name);
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ImageError::io(format!("opening {}", path.display())))
    }

    /// Removes every image whose digest (or manifest digest) is not in `keep`, every blob no kept
    /// image uses, and whatever interrupted builds left in `tmp/`; returns the bytes freed.
    /// Blocking: call from a blocking thread.
    pub(crate) fn gc(&self, keep: &HashSet<String>) -> Result<(u64, Vec<String>), ImageError> {
        let gc = self.lock_file("gc")?;
        gc.lock().map_err(ImageError::io(
            "locking the image cache for garbage collection",
        ))?;
        let mut freed = 0;
        let mut removed = Vec::new();
        let mut used_blobs = HashSet::new();

        // Images: keep those asked for (and remember their blobs), drop the rest.
        let rootfs_dir = self.root.join("rootfs");
        for path in list(&rootfs_dir)? {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            let Some(digest) = Digest::from_file_name(stem) else {
                continue;
            };
            let meta = self.lookup(&digest).ok().flatten();
            let kept = meta.as_ref().is_some_and(|meta| {
                keep.contains(&meta.digest) || keep.contains(&meta.manifest_digest)
            });
            if kept {
                used_blobs.extend(meta.into_iter().flat_map(|meta| meta.blobs));
            } else {
                freed += remove(&path)?;
                freed += remove(&self.rootfs(&digest))?;
                removed.push(digest.to_string());
            }
        }
        // Images without metadata were never finished.
        for path in list(&rootfs_dir)? {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if let Some(stem) = name.strip_suffix(".ext4")
                && Digest::from_file_name(stem).is_none_or(|d| !self.meta(&d).exists())
            {
                freed += remove(&path)?;
            }
        }
        for path in list(&self.root.join("blobs"))? {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let used = Digest::from_file_name(&name)
                .is_some_and(|digest| used_blobs.contains(&digest.to_string()));
            if !used {
                freed += remove(&path)?;
            }
        }
        // No build runs while we hold the gc lock: everything in tmp/ and the per-image lock
        // files are leftovers.
        for path in list(&self.root.join("tmp"))? {
            freed += remove(&path)?;
        }
        for path in list(&self.root.join("locks"))? {
            if path.file_name() != Some("gc".as_ref()) {
                remove(&path)?;
            }
        }
        Ok((freed, removed))
    }
}

/// The entries of a directory.
fn list(dir: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let entries =
        std::fs::read_dir(dir).map_err(ImageError::io(format!("listing {}", dir.display())))?;
    entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<io::Result<_>>()
        .map_err(ImageError::io(format!("listing {}", dir.display())))
}

/// Removes a file or directory tree; returns the disk space it used (allocated blocks, so a
/// sparse ext4 image counts for what it really occupies).
fn remove(path: &Path) -> Result<u64, ImageError> {
    let context = || format!("removing {}", path.display());
    let meta = match path.symlink_metadata() {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(ImageError::io(context())(e)),
    };
    if meta.is_dir() {
        let mut size = meta.blocks() * 512;
        for child in list(path)? {
            size += remove(&child)?;
        }
        std::fs::remove_dir(path).map_err(ImageError::io(context()))?;
        Ok(size)
    } else {
        std::fs::remove_file(path).map_err(ImageError::io(context()))?;
        Ok(meta.blocks() * 512)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn fake_image(cache: &Cache, name: &[u8], blobs: &[&Digest]) -> Digest {
        let digest = Digest::of(name);
        let mut image = cache.temp_file().unwrap();
        image.write_all(&[1; 8192]).unwrap();
        let meta = Meta {
            digest: digest.to_string(),
            manifest_digest: digest.to_string(),
            blobs: blobs.iter().map(|d| d.to_string()).collect(),
            config: ImageConfig::default(),
        };
        cache.commit(&digest, image, &meta).unwrap();
        digest
    }

    fn fake_blob(cache: &Cache, content: &[u8]) -> Digest {
        let digest = Digest::of(content);
        std::fs::write(cache.blob(&digest), content).unwrap();
        digest
    }

    #[test]
    fn commit_then_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("c")).unwrap();
        let missing = Digest::of(b"missing");
        assert!(cache.lookup(&missing).unwrap().is_none());
        let digest = fake_image(&cache, b"one", &[]);
        let meta = cache.lookup(&digest).unwrap().unwrap();
        assert_eq!(meta.digest, digest.to_string());
        assert!(cache.rootfs(&digest).is_file());
        assert_eq!(
            std::fs::read_dir(dir.path().join("c/tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn gc_keeps_kept_images_and_their_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().to_path_buf()).unwrap();
        let shared = fake_blob(&cache, b"shared");
        let only_old = fake_blob(&cache, b"old");
        let stray = fake_blob(&cache, b"stray");
        let kept = fake_image(&cache, b"kept", &[&shared]);
        let old = fake_image(&cache, b"old-image", &[&shared, &only_old]);
        std::fs::write(dir.path().join("tmp/leftover"), b"x").unwrap();
        let _lock = cache.lock_build(&kept).unwrap(); // a finished build's lock files linger
        drop(_lock);

        let keep = HashSet::from([kept.to_string()]);
        let (freed, removed) = cache.gc(&keep).unwrap();
        assert!(freed >= 8192, "{freed}");
        assert_eq!(removed, [old.to_string()]);
        assert!(cache.lookup(&kept).unwrap().is_some());
        assert!(cache.lookup(&old).unwrap().is_none());
        assert!(!cache.rootfs(&old).exists());
        assert!(cache.blob(&shared).exists());
        assert!(!cache.blob(&only_old).exists());
        assert!(!cache.blob(&stray).exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );

        let (_, removed) = cache.gc(&HashSet::new()).unwrap();
        assert_eq!(removed, [kept.to_string()]);
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_second_build_lock_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().to_path_buf()).unwrap();
        let digest = Digest::of(b"x");
        let first = cache.lock_build(&digest).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_cache = cache.clone();
        let thread_digest = digest.clone();
        let waiter = std::thread::spawn(move || {
            let _second = thread_cache.lock_build(&thread_digest).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err()
        );
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        waiter.join().unwrap();
        // A different image does not wait.
        let _other = cache.lock_build(&Digest::of(b"y")).unwrap();
    }
}
