//! Applying image layers (tar streams) to a staging directory, the way a container runtime
//! stacks them: in order, with whiteouts, keeping modes, owners, links and times.
//!
//! Every path is resolved inside the staging root by [`crate::confined`], and an entry replaces
//! whatever is at its path (never writing through a symlink there).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tar::EntryType;

use crate::ImageError;
use crate::confined::{invalid, relative_path, remove, resolve_in_root};
use crate::digest::{Digest, HashingReader};

/// How a layer blob is compressed, from its media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The layer media types we can apply, for error messages.
pub(crate) const SUPPORTED_LAYERS: &str = "application/vnd.oci.image.layer.v1.tar[+gzip|+zstd], \
     application/vnd.docker.image.rootfs.diff.tar[.gzip|.zstd] (and their non-distributable/foreign \
     variants)";

impl Compression {
    /// The compression of a layer media type, or `None` for media types that are not layers.
    pub(crate) fn of_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// The most an image's layers may unpack to, together (the tar streams after
/// decompression): a small compressed layer of zeros must not fill the node's disk.
pub(crate) const MAX_UNPACKED: u64 = 16 << 30;

/// The state kept across the layers of one image.
pub(crate) struct Staging {
    /// Directory modification times, set once every layer is in (adding entries changes them).
    dir_times: HashMap<PathBuf, SystemTime>,
    /// Bytes the layers applied so far unpacked to.
    unpacked: u64,
    /// The cap on [`Staging::unpacked`].
    limit: u64,
}

impl Default for Staging {
    fn default() -> Staging {
        Staging::with_limit(MAX_UNPACKED)
    }
}

impl Staging {
    /// Staging whose layers may unpack to `limit` bytes in all.
    pub(crate) fn with_limit(limit: u64) -> Staging {
        Staging {
            dir_times: HashMap::new(),
            unpacked: 0,
            limit,
        }
    }

    /// Applies the layer stored in `blob` on top of `root`, and checks that its uncompressed
    /// content hashes to `diff_id` (the image config's record of it).
    pub(crate) fn apply(
        &mut self,
        root: &Path,
        blob: &Path,
        compression: Compression,
        layer: &Digest,
        diff_id: &Digest,
    ) -> Result<(), ImageError> {
        let bad = |reason: String| ImageError::BadLayer {
            digest: layer.to_string(),
            reason,
        };
        let file =
            File::open(blob).map_err(ImageError::io(format!("opening {}", blob.display())))?;
        let file = io::BufReader::new(file);
        let stream: Box<dyn Read> = match compression {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(file)
                    .map_err(|e| bad(format!("zstd: {e}")))?,
            ),
        };
        let capped = Capped {
            inner: stream,
            left: self.limit.saturating_sub(self.unpacked),
            limit: self.limit,
        };
        let mut archive = tar::Archive::new(HashingReader::new(capped));
        let mut written = HashSet::new();
        let entries = archive.entries().map_err(|e| bad(format!("tar: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad(format!("tar: {e}")))?;
            self.entry(root, &mut entry, &mut written)
                .map_err(|e| bad(e.to_string()))?;
        }
        let (actual, size) = archive
            .into_inner()
            .finish()
            .map_err(|e| bad(format!("decompressing: {e}")))?;
        self.unpacked += size;
        if actual != *diff_id {
            return Err(ImageError::DigestMismatch {
                what: format!("the uncompressed content of layer {layer} (its diff_id)"),
                expected: diff_id.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Sets the directory times recorded from the layers (after the last layer).
    pub(crate) fn finish(self) -> io::Result<()> {
        for (dir, time) in self.dir_times {
            match File::open(&dir) {
                Ok(handle) => handle.set_modified(time)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {} // whited out later
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn entry<R: Read>(
        &mut self,
        root: &Path,
        entry: &mut tar::Entry<'_, R>,
        written: &mut HashSet<PathBuf>,
    ) -> io::Result<()> {
        let name = relative_path(&entry.path()?)?;
        let kind = entry.header().entry_type();
        let meta = Metadata::of(entry)?;

        let Some(file_name) = name.file_name().map(OsStr::to_owned) else {
            // "./" or "/": the root directory itself.
            if kind.is_dir() {
                meta.apply_to_dir(root)?;
                self.dir_times.insert(root.to_path_buf(), meta.mtime);
            }
            return Ok(());
        };
        let parent_name = name.parent().unwrap_or(Path::new(""));
        let name_bytes = file_name.as_encoded_bytes();

        if name_bytes == b".wh..wh..opq" {
            // Opaque directory: hide everything lower layers put in it.
            let dir = resolve_in_root(root, parent_name, true)?.expect("created");
            keep_only_written(&dir, written)?;
            return Ok(());
        }
        if let Some(hidden) = name_bytes.strip_prefix(b".wh.") {
            let hidden = whiteout_target(hidden)?;
            if let Some(dir) = resolve_in_root(root, parent_name, false)? {
                let target = dir.join(hidden);
                if !written.contains(&target) {
                    remove(&target)?;
                }
            }
            return Ok(());
        }

        let parent = resolve_in_root(root, parent_name, true)?.expect("created");
        let path = parent.join(&file_name);
        match kind {
            EntryType::Directory => {
                match path.symlink_metadata() {
                    Ok(existing) if existing.is_dir() => {}
                    Ok(_) => {
                        remove(&path)?;
                        std::fs::create_dir(&path)?;
                    }
                    Err(_) => std::fs::create_dir(&path)?,
                }
                meta.apply_to_dir(&path)?;
                self.dir_times.insert(path.clone(), meta.mtime);
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                remove(&path)?;
                // create_new (O_EXCL) never follows a symlink, even a dangling one.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                io::copy(entry, &mut file)?;
                // chown first: it clears setuid/setgid bits, which chmod then sets.
                std::os::unix::fs::fchown(&file, Some(meta.uid), Some(meta.gid))?;
                file.set_permissions(std::fs::Permissions::from_mode(meta.mode))?;
                file.set_modified(meta.mtime)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| invalid("symlink without a target"))?;
                remove(&path)?;
                std::os::unix::fs::symlink(&target, &path)?;
                std::os::unix::fs::lchown(&path, Some(meta.uid), Some(meta.gid))?;
            }
            EntryType::Link => {
                let target_name = entry
                    .link_name()?
                    .ok_or_else(|| invalid("hard link without a target"))?;
                let target_name = relative_path(&target_name)?;
                let target = target_name
                    .file_name()
                    .and_then(|file| {
                        let dir = resolve_in_root(root, target_name.parent()?, false).ok()??;
                        Some(dir.join(file))
                    })
                    .filter(|target| target.symlink_metadata().is_ok_and(|meta| !meta.is_dir()))
                    .ok_or_else(|| {
                        invalid(&format!(
                            "hard link {} points to {}, which is not a file of the image",
                            name.display(),
                            target_name.display()
                        ))
                    })?;
                if target != path {
                    remove(&path)?;
                    // linkat(2) without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
                    std::fs::hard_link(&target, &path)?;
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                // The guest gets a devtmpfs on /dev; device nodes from images are not needed
                // and would be a way to hand a tenant raw access to a host device number.
                tracing::debug!(path = %name.display(), "skipping device node in layer");
                return Ok(());
            }
            other => {
                tracing::debug!(path = %name.display(), kind = ?other, "skipping tar entry");
                return Ok(());
            }
        }
        // Record the path and its ancestors, so an opaque marker later in this layer keeps them.
        let mut path = path.as_path();
        while path != root && written.insert(path.to_path_buf()) {
            path = path.parent().unwrap_or(root);
        }
        Ok(())
    }
}

/// Under an opaque directory only what the current layer wrote may remain: remove everything
/// else, descending into directories that hold something written (markers usually come first,
/// when nothing is written yet, but the order of tar entries is not guaranteed).
/// A decompressed layer stream that fails once the image's layers together unpacked to
/// more than the limit.
struct Capped<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.left = self.left.checked_sub(read as u64).ok_or_else(|| {
            io::Error::other(format!(
                "the image unpacks to more than the node's limit of {} MiB (a compression bomb?)",
                self.limit >> 20
            ))
        })?;
        Ok(read)
    }
}

fn keep_only_written(dir: &Path, written: &HashSet<PathBuf>) -> io::Result<()> {
    for child in std::fs::read_dir(dir)? {
        let child = child?.path();
        if !written.contains(&child) {
            remove(&child)?;
        } else if child.symlink_metadata()?.is_dir() {
            keep_only_written(&child, written)?;
        }
    }
    Ok(())
}

/// Owner, mode and time of a tar entry (PAX records override the header fields).
struct Metadata {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: SystemTime,
}

impl Metadata {
    fn of<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Metadata> {
        let header = entry.header();
        // Empty numeric fields mean 0 (as Go's archive/tar, which wrote most layers, reads them).
        let mut uid = header.uid().unwrap_or(0);
        let mut gid = header.gid().unwrap_or(0);
        let mode = header.mode()? & 0o7777;
        let mut mtime = header.mtime().unwrap_or(0);
        if let Some(extensions) = entry.pax_extensions()? {
            for extension in extensions {
                let extension = extension?;
                let value = extension.value().ok().and_then(|v| v.split('.').next());
                let number = value.and_then(|v| v.parse::<u64>().ok());
                match (extension.key(), number) {
                    (Ok("uid"), Some(n)) => uid = n,
                    (Ok("gid"), Some(n)) => gid = n,
                    (Ok("mtime"), Some(n)) => mtime = n,
                    _ => {}
                }
            }
        }
        let id = |n: u64| u32::try_from(n).map_err(|_| invalid(&format!("owner id {n} too large")));
        Ok(Metadata {
            uid: id(uid)?,
            gid: id(gid)?,
            mode,
            mtime: SystemTime::UNIX_EPOCH + Duration::from_secs(mtime),
        })
    }

    fn apply_to_dir(&self, dir: &Path) -> io::Result<()> {
        std::os::unix::fs::lchown(dir, Some(self.uid), Some(self.gid))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(self.mode))
    }
}

/// The name a whiteout (`.wh.NAME`) hides; it must name something (`.wh.` alone does not) and
/// stay a single component.
fn whiteout_target(bytes: &[u8]) -> io::Result<&OsStr> {
    use std::os::unix::ffi::OsStrExt;
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(invalid("malformed whiteout entry"));
    }
    Ok(OsStr::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// A tar stream built entry by entry.
    pub(crate) struct TarBuilder(tar::Builder<Vec<u8>>);

    impl TarBuilder {
        pub(crate) fn new() -> Self {
            TarBuilder(tar::Builder::new(Vec::new()))
        }

        fn header(kind: EntryType, mode: u32, size: u64) -> tar::Header {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(size);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(1_000_000);
            header
        }

        pub(crate) fn dir(mut self, path: &str) -> Self {
            let mut header = Self::header(EntryType::Directory, 0o755, 0);
            self.0.append_data(&mut header, path, io::empty()).unwrap();
            self
        }

        pub(crate) fn file(mut self, path: &str, mode: u32, data: &[u8]) -> Self {
            let mut header = Self::header(EntryType::Regular, mode, data.len() as u64);
            self.0.append_data(&mut header, path, data).unwrap();
            self
        }

        pub(crate) fn symlink(mut self, path: &str, target: &str) -> Self {
            let mut header = Self::header(EntryType::Symlink, 0o777, 0);
            self.0.append_link(&mut header, path, target).unwrap();
            self
        }

        pub(crate) fn hardlink(mut self, path: &str, target: &str) -> Self {
            let mut header = Self::header(EntryType::Link, 0o644, 0);
            self.0.append_link(&mut header, path, target).unwrap();
            self
        }

        /// A raw entry name, bypassing the builder's own checks (for hostile names).
        pub(crate) fn raw_file(mut self, path: &str, data: &[u8]) -> Self {
            let mut header = Self::header(EntryType::Regular, 0o644, data.len() as u64);
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            self.0.append(&header, data).unwrap();
            self
        }

        pub(crate) fn finish(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    /// Applies plain tar layers in order; returns the staging root.
    fn apply_all(layers: &[Vec<u8>]) -> Result<tempfile::TempDir, ImageError> {
        let root = tempfile::tempdir().unwrap();
        let blobs = tempfile::tempdir().unwrap();
        let mut staging = Staging::default();
        for (i, layer) in layers.iter().enumerate() {
            let blob = blobs.path().join(i.to_string());
            std::fs::write(&blob, layer).unwrap();
            let digest = Digest::of(layer);
            staging.apply(root.path(), &blob, Compression::None, &digest, &digest)?;
        }
        staging.finish().unwrap();
        Ok(root)
    }

    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for path in entries {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                let meta = path.symlink_metadata().unwrap();
                if meta.is_dir() {
                    out.push(format!("{rel}/"));
                    walk(root, &path, out);
                } else {
                    out.push(rel);
                }
            }
        }
        walk(root, root, &mut out);
        out
    }

    #[test]
    fn media_types_map_to_compression() {
        use Compression::*;
        for (media_type, expected) in [
            ("application/vnd.oci.image.layer.v1.tar", Some(None)),
            ("application/vnd.oci.image.layer.v1.tar+gzip", Some(Gzip)),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Some(Zstd)),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Some(Gzip),
            ),
            ("application/vnd.oci.image.config.v1+json", Option::None),
        ] {
            assert_eq!(
                Compression::of_media_type(media_type),
                expected,
                "{media_type}"
            );
        }
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers() {
        let lower = TarBuilder::new()
            .dir("etc")
            .file("etc/keep", 0o644, b"k")
            .file("etc/gone", 0o644, b"g")
            .dir("var/")
            .file("var/old", 0o644, b"o")
            .dir("var/sub")
            .file("var/sub/deep", 0o644, b"d")
            .finish();
        let upper = TarBuilder::new()
            .file("etc/.wh.gone", 0o644, b"")
            .file("etc/.wh.never-existed", 0o644, b"")
            .file("nothere/.wh.x", 0o644, b"")
            .dir("var")
            .file("var/new", 0o644, b"n")
            .file("var/sub/fresh", 0o644, b"f")
            .file("var/.wh..wh..opq", 0o644, b"")
            .finish();
        let root = apply_all(&[lower, upper]).unwrap();
        assert_eq!(
            tree(root.path()),
            [
                "etc/",
                "etc/keep",
                "var/",
                "var/new",
                "var/sub/",
                "var/sub/fresh"
            ],
            "whiteouts removed, opaque dir kept only this layer's entry"
        );
    }

    #[test]
    fn modes_owners_links_and_replacements() {
        let lower = TarBuilder::new()
            .file("bin/tool", 0o4755, b"#!/bin/sh\n")
            .file("data", 0o644, b"first")
            .dir("was-dir")
            .file("was-dir/x", 0o644, b"x")
            .finish();
        let upper = TarBuilder::new()
            .file("data", 0o600, b"second")
            .file("was-dir", 0o644, b"now a file")
            .symlink("link", "/bin/tool")
            .hardlink("hard", "data")
            .finish();
        let root = apply_all(&[lower, upper]).unwrap();
        let r = root.path();
        let tool = r.join("bin/tool").metadata().unwrap();
        assert_eq!(tool.mode() & 0o7777, 0o4755, "setuid bit kept");
        assert_eq!(r.join("bin").metadata().unwrap().mode() & 0o777, 0o755);
        let data = r.join("data").metadata().unwrap();
        assert_eq!(data.mode() & 0o777, 0o600);
        assert_eq!(data.nlink(), 2);
        assert_eq!(std::fs::read(r.join("hard")).unwrap(), b"second");
        assert_eq!(
            std::fs::read_link(r.join("link")).unwrap(),
            Path::new("/bin/tool")
        );
        assert!(r.join("was-dir").is_file());
        assert_eq!(
            data.modified().unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
        );
    }

    #[test]
    fn symlinks_cannot_lead_writes_out_of_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let escape = outside.path().display().to_string();
        let layer = TarBuilder::new()
            .symlink("abs", &escape)
            .symlink("rel", "../../../../../../..")
            .file("abs/pwned", 0o644, b"x")
            .file("rel/pwned2", 0o644, b"x")
            .symlink("etc", "/real-etc")
            .file("etc/passwd", 0o644, b"root")
            .finish();
        let root = apply_all(&[layer]).unwrap();
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // The writes landed where the guest will look for them.
        let inside = root
            .path()
            .join(escape.trim_start_matches('/'))
            .join("pwned");
        assert!(inside.is_file(), "{}", inside.display());
        assert!(root.path().join("pwned2").is_file());
        assert!(root.path().join("real-etc/passwd").is_file());
    }

    #[test]
    fn a_file_replacing_a_symlink_does_not_write_through_it() {
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(outside.path(), b"original").unwrap();
        let target = outside.path().display().to_string();
        let layer = TarBuilder::new()
            .symlink("victim", &target)
            .file("victim", 0o644, b"overwritten")
            .finish();
        let root = apply_all(&[layer]).unwrap();
        assert_eq!(std::fs::read(outside.path()).unwrap(), b"original");
        assert_eq!(
            std::fs::read(root.path().join("victim")).unwrap(),
            b"overwritten"
        );
    }

    #[test]
    fn dot_dot_names_are_refused() {
        for name in ["../escape", "a/../../escape"] {
            let layer = TarBuilder::new().raw_file(name, b"x").finish();
            let err = apply_all(&[layer]).expect_err("refused");
            assert!(err.to_string().contains("\"..\""), "{name}: {err}");
        }
        let layer = TarBuilder::new()
            .file("a", 0o644, b"x")
            .hardlink("b", "../a")
            .finish();
        assert!(apply_all(&[layer]).is_err());
    }

    #[test]
    fn a_hard_link_to_nothing_is_refused() {
        let layer = TarBuilder::new().hardlink("b", "missing").finish();
        let err = apply_all(&[layer]).expect_err("refused");
        assert!(err.to_string().contains("not a file of the image"), "{err}");
    }

    #[test]
    fn symlink_loops_are_reported() {
        let layer = TarBuilder::new()
            .symlink("a", "b")
            .symlink("b", "a")
            .file("a/x", 0o644, b"x")
            .finish();
        let err = apply_all(&[layer]).expect_err("refused");
        assert!(err.to_string().contains("too many levels"), "{err}");
    }

    #[test]
    fn a_wrong_diff_id_is_a_digest_mismatch() {
        let layer = TarBuilder::new().file("a", 0o644, b"x").finish();
        let root = tempfile::tempdir().unwrap();
        let blob = root.path().join("blob");
        std::fs::write(&blob, &layer).unwrap();
        let staging_root = root.path().join("rootfs");
        std::fs::create_dir(&staging_root).unwrap();
        let err = Staging::default()
            .apply(
                &staging_root,
                &blob,
                Compression::None,
                &Digest::of(&layer),
                &Digest::of(b"other"),
            )
            .unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    }

    #[test]
    fn a_layer_that_unpacks_past_the_limit_is_refused() {
        use std::io::Write;
        // 4 MiB of zeros: a few KiB compressed.
        let layer = TarBuilder::new()
            .file("zeros", 0o644, &vec![0u8; 4 << 20])
            .finish();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&layer).unwrap();
        let gzip = encoder.finish().unwrap();
        assert!(gzip.len() < 64 << 10, "{} bytes", gzip.len());
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("blob");
        std::fs::write(&blob, &gzip).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let apply = |staging: &mut Staging| {
            staging.apply(
                &root,
                &blob,
                Compression::Gzip,
                &Digest::of(&gzip),
                &Digest::of(&layer),
            )
        };
        let e = apply(&mut Staging::with_limit(1 << 20)).unwrap_err();
        assert!(
            e.to_string()
                .contains("more than the node's limit of 1 MiB"),
            "{e}"
        );
        // The limit counts every layer of the image: a second one may not go past it either.
        let mut staging = Staging::with_limit(6 << 20);
        apply(&mut staging).unwrap();
        let e = apply(&mut staging).unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
    }

    #[test]
    fn compressed_layers_apply() {
        let layer = TarBuilder::new().file("hello", 0o644, b"hi").finish();
        let diff_id = Digest::of(&layer);
        let gzip = {
            use std::io::Write;
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&layer).unwrap();
            encoder.finish().unwrap()
        };
        let zstd = zstd::encode_all(&layer[..], 3).unwrap();
        for (compression, blob_bytes) in [(Compression::Gzip, gzip), (Compression::Zstd, zstd)] {
            let dir = tempfile::tempdir().unwrap();
            let blob = dir.path().join("blob");
            std::fs::write(&blob, &blob_bytes).unwrap();
            let root = dir.path().join("root");
            std::fs::create_dir(&root).unwrap();
            Staging::default()
                .apply(
                    &root,
                    &blob,
                    compression,
                    &Digest::of(&blob_bytes),
                    &diff_id,
                )
                .unwrap();
            assert_eq!(std::fs::read(root.join("hello")).unwrap(), b"hi");
        }
    }
}
