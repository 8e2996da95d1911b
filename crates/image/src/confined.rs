//! Paths confined to a root directory: where a layer's entries may be written.
//!
//! A layer is hostile input. Entry names with `..` are refused; symlinks met on the way to an
//! entry are followed as the guest will see them, with the staging root as `/` (so an absolute
//! symlink or a `../../..` chain stays inside); the final component is never followed. The
//! staging directory is written by nothing but the layer code while it runs, so resolving in
//! user space (rather than with `openat2(RESOLVE_IN_ROOT)`) leaves no window for a race.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// An entry name made relative (`/a`, `./a` → `a`); `..` anywhere is refused, since no
/// legitimate layer needs it and it is the classic way out of the extraction directory.
pub(crate) fn relative_path(name: &Path) -> io::Result<PathBuf> {
    let mut relative = PathBuf::new();
    for component in name.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(invalid(&format!(
                    "entry {} contains \"..\"; refusing to write outside the image root",
                    name.display()
                )));
            }
        }
    }
    Ok(relative)
}

/// Resolves directory `relative` inside `root` as the guest would see it: symlinks on the way
/// are followed with `root` as `/`, and `..` stops at `root`. Missing directories are created
/// (mode 0755, owned by root) when `create` is set, else the result is `None`.
///
/// The returned path contains no symlinks, so writing below it stays inside `root`.
pub(crate) fn resolve_in_root(
    root: &Path,
    relative: &Path,
    create: bool,
) -> io::Result<Option<PathBuf>> {
    const MAX_LINKS: usize = 40; // as Linux's path walk
    let mut pending: Vec<OsString> = components(relative);
    pending.reverse(); // a stack: next component last
    let mut resolved = root.to_path_buf();
    let mut depth = 0usize;
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            if depth > 0 {
                resolved.pop();
                depth -= 1;
            }
            continue;
        }
        let candidate = resolved.join(&part);
        match candidate.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(invalid(&format!(
                        "too many levels of symbolic links resolving {}",
                        relative.display()
                    )));
                }
                let target = std::fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved = root.to_path_buf();
                    depth = 0;
                }
                pending.extend(components(&target).into_iter().rev());
            }
            Ok(meta) if meta.is_dir() => {
                resolved = candidate;
                depth += 1;
            }
            Ok(_) => {
                return Err(invalid(&format!(
                    "{} is not a directory (resolving {})",
                    candidate.strip_prefix(root).unwrap_or(&candidate).display(),
                    relative.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                std::fs::create_dir(&candidate)?;
                std::fs::set_permissions(&candidate, std::fs::Permissions::from_mode(0o755))?;
                resolved = candidate;
                depth += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(resolved))
}

/// The normal and `..` components of a path (`.` and `/` dropped).
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Removes whatever is at `path` (a directory with its contents; a symlink itself, never its
/// target); nothing there is fine.
pub(crate) fn remove(path: &Path) -> io::Result<()> {
    match path.symlink_metadata() {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub(crate) fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_relative_and_dot_dot_is_refused() {
        assert_eq!(
            relative_path(Path::new("/a/./b")).unwrap(),
            Path::new("a/b")
        );
        assert_eq!(relative_path(Path::new("./")).unwrap(), Path::new(""));
        for bad in ["../x", "a/../../x", "a/.."] {
            assert!(relative_path(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
        std::os::unix::fs::symlink("/usr", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../..", r.join("up")).unwrap();
        let resolve = |p: &str| resolve_in_root(r, Path::new(p), false).unwrap();
        assert_eq!(resolve("lib"), Some(r.join("usr/lib")));
        assert_eq!(resolve("abs/lib"), Some(r.join("usr/lib")));
        assert_eq!(resolve("up"), Some(r.to_path_buf()));
        assert_eq!(resolve("up/usr/../usr"), Some(r.join("usr")));
        assert_eq!(resolve("missing/dir"), None);
        assert_eq!(resolve(""), Some(r.to_path_buf()));
    }

    #[test]
    fn missing_directories_are_created_0755() {
        let root = tempfile::tempdir().unwrap();
        let made = resolve_in_root(root.path(), Path::new("a/b"), true)
            .unwrap()
            .unwrap();
        assert_eq!(made, root.path().join("a/b"));
        let mode = made.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn a_file_on_the_way_is_not_a_directory() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("file"), b"x").unwrap();
        let err = resolve_in_root(root.path(), Path::new("file/x"), true).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn remove_takes_the_link_not_its_target() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"x").unwrap();
        std::os::unix::fs::symlink(&target, root.path().join("link")).unwrap();
        remove(&root.path().join("link")).unwrap();
        assert!(target.join("keep").exists());
        remove(&target).unwrap();
        assert!(!target.exists());
        remove(&target).unwrap();
    }
}
