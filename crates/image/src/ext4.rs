//! Turning a staged directory tree into an ext4 image with `mkfs.ext4 -d`.
//!
//! `mke2fs -d` (e2fsprogs ≥ 1.43) copies a tree into a new file system without mounting
//! anything, keeping modes, owners, times, symlinks and hard links — so building an image needs
//! no loop devices and no privileges beyond the root that gave the staged files their owners.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ImageError;

const BLOCK: u64 = 4096;
const MIB: u64 = 1024 * 1024;
/// The smallest image we make: metadata of an almost empty ext4 fits with room to spare.
const MIN_SIZE: u64 = 16 * MIB;

/// What a tree needs on disk: data bytes (rounded to blocks) and inodes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub bytes: u64,
    pub inodes: u64,
}

/// Measures `root` (hard links counted once).
pub(crate) fn usage(root: &Path) -> io::Result<Usage> {
    let mut usage = Usage::default();
    let mut seen = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = path.symlink_metadata()?;
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        usage.inodes += 1;
        if meta.is_dir() {
            let mut names = 0;
            for entry in std::fs::read_dir(&path)? {
                let entry = entry?;
                names += entry.file_name().len() as u64 + 16;
                stack.push(entry.path());
            }
            usage.bytes += names.div_ceil(BLOCK).max(1) * BLOCK;
        } else if meta.file_type().is_symlink() {
            // Targets up to 60 bytes live in the inode itself.
            if meta.len() > 60 {
                usage.bytes += BLOCK;
            }
        } else {
            usage.bytes += meta.len().div_ceil(BLOCK) * BLOCK;
        }
    }
    Ok(usage)
}

/// The image size for a tree: its data plus 20 % for ext4's own metadata (block maps, extent
/// trees, group descriptors), the inode table, and fixed slack; whole MiB, at least 16 MiB.
pub(crate) fn image_size(usage: &Usage) -> u64 {
    let size = usage.bytes + usage.bytes / 5 + inode_count(usage) * 256 + 8 * MIB;
    size.div_ceil(MIB).max(MIN_SIZE / MIB) * MIB
}

/// Inodes to create: the tree's plus a margin (the image is read-only, so no more are needed).
fn inode_count(usage: &Usage) -> u64 {
    usage.inodes + usage.inodes / 10 + 64
}

/// Writes an ext4 file system holding `tree` to `image` (which may exist, e.g. an empty
/// temporary file), its root owned by 0:0 and labelled `zeitwork-root`.
pub(crate) fn build(tree: &Path, image: &Path) -> Result<(), ImageError> {
    let usage = usage(tree).map_err(ImageError::io(format!("measuring {}", tree.display())))?;
    let mkfs = find_mkfs().ok_or(ImageError::MkfsMissing)?;
    let output = Command::new(&mkfs)
        .arg("-d")
        .arg(tree)
        .args(["-F", "-q", "-E", "root_owner=0:0", "-L", "zeitwork-root"])
        // Fixed 4 KiB blocks (mke2fs picks 1 KiB for small images, which our sizing does not
        // assume); no journal and no reserved blocks: the image is mounted read-only.
        .args(["-b", "4096", "-O", "^has_journal", "-m", "0"])
        .arg("-N")
        .arg(inode_count(&usage).to_string())
        .arg(image)
        .arg(format!("{}k", image_size(&usage) / 1024))
        .env("LC_ALL", "C")
        .output()
        .map_err(ImageError::io(format!("running {}", mkfs.display())))?;
    if !output.status.success() {
        return Err(ImageError::Mkfs {
            image: image.to_path_buf(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// `mkfs.ext4` on PATH or in the system directories (not on an unprivileged user's PATH).
fn find_mkfs() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("mkfs.ext4"))
        .find(|candidate| candidate.is_file())
}

/// Whether `mkfs.ext4` is installed (checked before pulling, to fail before the download).
pub(crate) fn available() -> bool {
    find_mkfs().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_grow_with_content_and_have_a_floor() {
        assert_eq!(image_size(&Usage::default()), MIN_SIZE);
        let big = Usage {
            bytes: 1000 * MIB,
            inodes: 40_000,
        };
        let size = image_size(&big);
        assert!((1200 * MIB..1250 * MIB).contains(&size), "{}", size / MIB);
        assert_eq!(size % MIB, 0);
    }

    #[test]
    fn usage_counts_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 5000]).unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("short")).unwrap();
        let usage = usage(dir.path()).unwrap();
        assert_eq!(usage.inodes, 3, "root, a/b, short");
        assert_eq!(
            usage.bytes,
            2 * BLOCK + BLOCK,
            "a in two blocks, the root dir in one"
        );
    }

    #[test]
    fn builds_an_image_that_debugfs_reads() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("hello"), b"hi").unwrap();
        let image = dir.path().join("root.ext4");
        build(&tree, &image).unwrap();
        assert_eq!(image.metadata().unwrap().len(), MIN_SIZE);
        let out = Command::new("debugfs")
            .args(["-R", "cat /hello"])
            .arg(&image)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi");
    }

    #[test]
    fn mkfs_failures_carry_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let err = build(dir.path(), &dir.path().join("missing-dir/root.ext4")).unwrap_err();
        assert!(
            matches!(&err, ImageError::Mkfs { stderr, .. } if !stderr.is_empty()),
            "{err}"
        );
    }
}
