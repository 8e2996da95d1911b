//! The secrets file: a JSON object name → value at [`SECRETS_PATH`] (on /run, a tmpfs:
//! secrets never touch a disk), mode 0400 in a 0500 directory, both owned by the app's user.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{Gid, Uid};
use zeitwork_core::guest::SECRETS_PATH;

use crate::error::{Context, Result};

/// The file's content: a JSON object, keys sorted.
pub fn render(secrets: &BTreeMap<String, String>) -> String {
    let mut json = serde_json::to_string(secrets).expect("a map of strings serializes");
    json.push('\n');
    json
}

/// Writes [`SECRETS_PATH`] (always, `{}` when there are none) for `uid:gid`.
pub fn write(secrets: &BTreeMap<String, String>, uid: u32, gid: u32) -> Result<()> {
    write_at(Path::new(SECRETS_PATH), secrets, uid, gid)
}

fn write_at(path: &Path, secrets: &BTreeMap<String, String>, uid: u32, gid: u32) -> Result<()> {
    let what = || format!("writing {}", path.display());
    let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).with_context(what)?;
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).with_context(what),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .with_context(what)?;
    file.write_all(render(secrets).as_bytes())
        .with_context(what)?;
    file.set_permissions(Permissions::from_mode(0o400))
        .with_context(what)?;
    nix::unistd::fchown(&file, uid, gid).with_context(what)?;
    fs::set_permissions(dir, Permissions::from_mode(0o500)).with_context(what)?;
    nix::unistd::chown(dir, uid, gid).with_context(what)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn secrets_render_as_a_json_object() {
        let s = BTreeMap::from([
            ("DB_URL".to_owned(), "postgres://u:p@h/db".to_owned()),
            ("QUOTE".to_owned(), "a \"b\"\n".to_owned()),
        ]);
        let text = render(&s);
        assert!(text.ends_with('\n'));
        let back: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        assert_eq!(render(&BTreeMap::new()), "{}\n");
    }

    #[test]
    fn file_is_written_read_only_for_its_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("secrets/zeitwork.json");
        let me = (Uid::current().as_raw(), Gid::current().as_raw());
        let s = BTreeMap::from([("K".to_owned(), "v".to_owned())]);
        write_at(&path, &s, me.0, me.1).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o400);
        assert_eq!((meta.uid(), meta.gid()), me);
        assert_eq!(
            fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
            0o500
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"K\":\"v\"}\n");
        // Rewriting replaces the old file (root ignores the 0500/0400 modes; others need u+w).
        if me.0 != 0 {
            fs::set_permissions(path.parent().unwrap(), Permissions::from_mode(0o700)).unwrap();
        }
        write_at(&path, &BTreeMap::new(), me.0, me.1).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{}\n");
    }
}
