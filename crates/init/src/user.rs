//! Who the app runs as. The config's `user` is `uid[:gid]`, `name[:group]`, or empty
//! (root). Names are looked up in the image's own `/etc/passwd` and `/etc/group`,
//! parsed here: a static binary has no NSS, and the image is the authority anyway.

use crate::error::{Error, Result};

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The resolved identity of the app's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the primary group, then every group listing the user.
    pub groups: Vec<u32>,
    /// `HOME` when the config's env sets none.
    pub home: String,
}

/// Parses `/etc/passwd` (`name:password:uid:gid:gecos:home:shell`); malformed lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).copied().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// Parses `/etc/group` (`name:password:gid:member,member`); malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 || f[0].is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .copied()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// A numeric id; `u32::MAX` is `(uid_t)-1`, "no change", never an identity.
fn parse_id(s: &str) -> Option<u32> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&id| id != u32::MAX)
}

/// Resolves the config's `user` against the image's users and groups.
///
/// - `""` and `"root"` are 0:0 (even without an /etc/passwd);
/// - `uid` uses the passwd entry's group when there is one, else gid 0 (like Docker);
/// - `name` must exist in /etc/passwd; `:group` may be a gid or a name from /etc/group.
pub fn resolve(spec: &str, passwd: &[PasswdEntry], groups: &[GroupEntry]) -> Result<Identity> {
    let what = || format!("resolving user {spec:?}");
    let (user, group) = match spec.trim().split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec.trim(), None),
    };
    let user = if user.is_empty() { "root" } else { user };

    let entry = match parse_id(user) {
        Some(uid) => passwd.iter().find(|e| e.uid == uid),
        None => passwd.iter().find(|e| e.name == user),
    };
    let uid = match (parse_id(user), entry) {
        (Some(uid), _) => uid,
        (None, Some(e)) => e.uid,
        (None, None) if user == "root" => 0,
        (None, None) => {
            return Err(Error::invalid(
                what(),
                format!("no user {user:?} in the image's /etc/passwd"),
            ));
        }
    };

    let gid = match group {
        Some(g) => match parse_id(g) {
            Some(gid) => gid,
            None => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    Error::invalid(what(), format!("no group {g:?} in the image's /etc/group"))
                })?,
        },
        None => entry.map_or(0, |e| e.gid),
    };

    let mut supplementary = vec![gid];
    if let Some(e) = entry {
        for g in groups.iter().filter(|g| g.members.contains(&e.name)) {
            if !supplementary.contains(&g.gid) {
                supplementary.push(g.gid);
            }
        }
    }

    let home = match entry {
        Some(e) if !e.home.is_empty() => e.home.clone(),
        _ if uid == 0 => "/root".to_owned(),
        _ => "/".to_owned(),
    };
    Ok(Identity {
        uid,
        gid,
        groups: supplementary,
        home,
    })
}

/// Reads the image's /etc/passwd and /etc/group (a missing file is an empty one).
pub fn resolve_in_root(spec: &str) -> Result<Identity> {
    let read = |path: &str| match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::new(format!("reading {path}"), e)),
    };
    let passwd = parse_passwd(&read("/etc/passwd")?);
    let groups = parse_group(&read("/etc/group")?);
    resolve(spec, &passwd, &groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        broken line\n\
        bad:x:notanumber:1::/:\n\
        app:x:1000:1000:App,,,:/home/app:/bin/sh\n\
        nohome:x:1001:1001::\n";
    const GROUP: &str = "root:x:0:\n\
        daemon:x:1:\n\
        app:x:1000:\n\
        audio:x:29:app,other\n\
        video:x:44: other , app \n\
        staff:x:50:\n\
        broken\n";

    fn id(spec: &str) -> Result<Identity> {
        resolve(spec, &parse_passwd(PASSWD), &parse_group(GROUP))
    }

    #[test]
    fn passwd_and_group_parse_and_skip_malformed_lines() {
        let p = parse_passwd(PASSWD);
        assert_eq!(
            p.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["root", "daemon", "app", "nohome"]
        );
        assert_eq!(
            p[2],
            PasswdEntry {
                name: "app".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/app".into()
            }
        );
        let g = parse_group(GROUP);
        assert_eq!(g.len(), 6);
        assert_eq!(g[4].members, ["other", "app"]);
        assert!(g[0].members.is_empty());
    }

    #[test]
    fn empty_and_root_are_root_even_without_passwd() {
        for spec in ["", "root", "  "] {
            let i = resolve(spec, &[], &[]).unwrap();
            assert_eq!(
                (i.uid, i.gid, i.groups, i.home.as_str()),
                (0, 0, vec![0], "/root")
            );
        }
        assert_eq!(id("root").unwrap().home, "/root");
    }

    #[test]
    fn names_use_passwd_and_collect_supplementary_groups() {
        let i = id("app").unwrap();
        assert_eq!(
            i,
            Identity {
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 29, 44],
                home: "/home/app".into()
            }
        );
        let i = id("app:staff").unwrap();
        assert_eq!((i.uid, i.gid), (1000, 50));
        assert_eq!(i.groups, vec![50, 29, 44]);
        assert_eq!(id("app:44").unwrap().groups, vec![44, 29]);
    }

    #[test]
    fn numeric_ids_work_with_or_without_an_entry() {
        assert_eq!(id("1000").unwrap().gid, 1000);
        assert_eq!(id("1000").unwrap().groups, vec![1000, 29, 44]);
        let i = id("4242").unwrap();
        assert_eq!(
            (i.uid, i.gid, i.groups, i.home.as_str()),
            (4242, 0, vec![0], "/")
        );
        let i = id("4242:4343").unwrap();
        assert_eq!((i.uid, i.gid), (4242, 4343));
        assert_eq!(id("1001").unwrap().home, "/");
        assert_eq!(id("0:0").unwrap().home, "/root");
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = id("nobody").unwrap_err().to_string();
        assert!(e.contains("no user \"nobody\""), "{e}");
        let e = id("app:wheel").unwrap_err().to_string();
        assert!(e.contains("no group \"wheel\""), "{e}");
        assert!(id("-1").is_err());
        assert!(id("4294967295").is_err());
        assert!(id("+5").is_err());
    }
}
