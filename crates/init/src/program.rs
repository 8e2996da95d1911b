//! What exactly gets executed: `argv[0]` resolved against the config's `PATH`, and the
//! environment (the config's, plus `HOME` when it sets none).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `PATH` when the config's env has none (the OCI/Docker default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A regular file with an execute bit (as root, that is what `execve` needs).
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The file to execute for `argv0`: as given when it contains a `/` (relative to the
/// working directory), else the first executable `dir/argv0` along `path` (an empty
/// entry is the working directory, as in `execvp`).
pub fn resolve(argv0: &str, path: Option<&str>) -> Result<PathBuf> {
    let what = || format!("finding the program {argv0:?}");
    if argv0.is_empty() {
        return Err(Error::invalid(what(), "argv[0] is empty"));
    }
    if argv0.contains('/') {
        return Ok(PathBuf::from(argv0));
    }
    let path = path.unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let candidate = if dir.is_empty() {
            Path::new(".").join(argv0)
        } else {
            Path::new(dir).join(argv0)
        };
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(Error::invalid(
        what(),
        format!("no executable {argv0:?} in PATH={path}"),
    ))
}

/// The app's environment: exactly the config's, plus `HOME` (the user's) when unset.
pub fn environment(config: &BTreeMap<String, String>, home: &str) -> BTreeMap<String, String> {
    let mut env = config.clone();
    env.entry("HOME".to_owned())
        .or_insert_with(|| home.to_owned());
    env
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn file(dir: &Path, name: &str, mode: u32) {
        let p = dir.join(name);
        fs::write(&p, b"#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn path_is_searched_in_order_for_executable_files() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        file(&a, "app", 0o644); // not executable: skipped
        file(&b, "app", 0o755);
        fs::create_dir_all(a.join("dir")).unwrap(); // a directory: skipped
        file(&b, "dir", 0o700);
        let path = format!("/nonexistent:{}:{}", a.display(), b.display());
        assert_eq!(resolve("app", Some(&path)).unwrap(), b.join("app"));
        assert_eq!(resolve("dir", Some(&path)).unwrap(), b.join("dir"));
        file(&a, "app", 0o755);
        assert_eq!(resolve("app", Some(&path)).unwrap(), a.join("app"));

        let e = resolve("missing", Some(&path)).unwrap_err().to_string();
        assert!(
            e.contains("no executable \"missing\" in PATH=/nonexistent:"),
            "{e}"
        );
    }

    #[test]
    fn slashes_skip_the_search_and_empty_argv0_fails() {
        assert_eq!(
            resolve("/srv/app", Some("")).unwrap(),
            PathBuf::from("/srv/app")
        );
        assert_eq!(resolve("./app", None).unwrap(), PathBuf::from("./app"));
        assert!(resolve("", None).is_err());
    }

    #[test]
    fn default_path_applies_without_a_path_variable() {
        // `sh` is in /bin or /usr/bin on every Linux the tests run on.
        let sh = resolve("sh", None).unwrap();
        assert!(
            sh.starts_with("/usr/bin") || sh.starts_with("/bin"),
            "{sh:?}"
        );
    }

    #[test]
    fn home_is_added_only_when_missing() {
        let env = BTreeMap::from([("PATH".to_owned(), "/bin".to_owned())]);
        let out = environment(&env, "/home/app");
        assert_eq!(out.len(), 2);
        assert_eq!(out["HOME"], "/home/app");
        let env = BTreeMap::from([("HOME".to_owned(), "/data".to_owned())]);
        assert_eq!(environment(&env, "/home/app")["HOME"], "/data");
    }
}
