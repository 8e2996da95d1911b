//! The build context as Docker sends it: the context directory without what its
//! `.dockerignore` excludes (the Dockerfile and `.dockerignore` themselves always go), and
//! no larger than a limit, so a stray `node_modules` or `.git` neither slows a build nor
//! fills its disk.
//!
//! Patterns follow Docker's rules: one per line, `#` comments, relative to the context (a
//! leading `/` is dropped), `*` and `?` within one path component, `**` across any number
//! of them, `!` to take back an exclusion; the last matching line wins, and a directory
//! that is excluded takes its contents with it unless a later `!` line names some of them.

use std::path::{Path, PathBuf};

use crate::ImageError;

/// What was staged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Staged {
    pub files: u64,
    pub bytes: u64,
}

/// One `.dockerignore` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    parts: Vec<String>,
    exclude: bool,
}

/// The rules of a `.dockerignore` text.
fn rules(text: &str) -> Vec<Rule> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let (exclude, pattern) = match line.strip_prefix('!') {
                Some(rest) => (false, rest.trim()),
                None => (true, line),
            };
            let parts: Vec<String> = pattern
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .map(str::to_owned)
                .collect();
            (!parts.is_empty()).then_some(Rule { parts, exclude })
        })
        .collect()
}

/// Whether `path` (components relative to the context) is excluded by `rules`.
fn excluded(rules: &[Rule], path: &[&str]) -> bool {
    let mut out = false;
    for rule in rules {
        // A rule matching the path or one of its parent directories applies.
        let applies = (1..=path.len()).any(|n| matches(&rule.parts, &path[..n]));
        if applies {
            out = rule.exclude;
        }
    }
    out
}

/// Whether the pattern components match the path components exactly.
fn matches(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| matches(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, tail)) => {
                component(first.as_bytes(), name.as_bytes()) && matches(rest, tail)
            }
            None => false,
        },
    }
}

/// `*` and `?` within one component.
fn component(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| component(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && component(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && component(rest, &name[1..]),
    }
}

/// Copies the context at `from` into `to` as Docker would send it, refusing (with what
/// to do) a context over `limit` bytes; `dockerfile` (relative) always goes.
pub fn stage_context(
    from: &Path,
    to: &Path,
    dockerfile: &str,
    limit: u64,
) -> Result<Staged, ImageError> {
    let ignore = std::fs::read_to_string(from.join(".dockerignore")).unwrap_or_default();
    let rules = rules(&ignore);
    let always: Vec<String> = [dockerfile, ".dockerignore"]
        .iter()
        .map(|p| p.trim_start_matches("./").to_owned())
        .collect();
    let mut staged = Staged::default();
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    std::fs::create_dir_all(to).map_err(ImageError::io(format!("creating {}", to.display())))?;
    while let Some(relative) = stack.pop() {
        let dir = from.join(&relative);
        let entries = std::fs::read_dir(&dir).map_err(ImageError::io(format!(
            "reading the context {}",
            dir.display()
        )))?;
        for entry in entries {
            let entry = entry.map_err(ImageError::io(format!("reading {}", dir.display())))?;
            let rel = relative.join(entry.file_name());
            let text = rel.to_string_lossy().into_owned();
            let parts: Vec<&str> = text.split('/').collect();
            let kind = entry
                .file_type()
                .map_err(ImageError::io(format!("reading {}", rel.display())))?;
            // A directory is walked even when excluded: a later `!` may take some back.
            if excluded(&rules, &parts) && !kind.is_dir() && !always.contains(&text) {
                continue;
            }
            let target = to.join(&rel);
            if kind.is_dir() {
                std::fs::create_dir_all(&target)
                    .map_err(ImageError::io(format!("staging {}", rel.display())))?;
                stack.push(rel);
            } else if kind.is_symlink() {
                let link = std::fs::read_link(entry.path())
                    .map_err(ImageError::io(format!("reading {}", rel.display())))?;
                std::os::unix::fs::symlink(link, &target)
                    .map_err(ImageError::io(format!("staging {}", rel.display())))?;
            } else if kind.is_file() {
                let size = entry
                    .metadata()
                    .map_err(ImageError::io(format!("reading {}", rel.display())))?
                    .len();
                staged.bytes += size;
                staged.files += 1;
                if staged.bytes > limit {
                    return Err(ImageError::Invalid {
                        what: format!("the build context {}", from.display()),
                        reason: format!(
                            "it is over {} MiB (half the build's disk_mb); leave out what the build does not need with a .dockerignore",
                            limit >> 20
                        ),
                    });
                }
                std::fs::copy(entry.path(), &target)
                    .map_err(ImageError::io(format!("staging {}", rel.display())))?;
            }
        }
    }
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(ignore: &str, path: &str) -> bool {
        excluded(&rules(ignore), &path.split('/').collect::<Vec<_>>())
    }

    #[test]
    fn dockerignore_patterns_as_docker_reads_them() {
        let ignore =
            "# comment\n.git\nnode_modules/\n*.log\n/target\n**/*.tmp\ndocs/*\n!docs/keep.md\n";
        assert!(ex(ignore, ".git"));
        assert!(ex(ignore, ".git/config"), "a directory takes its contents");
        assert!(ex(ignore, "node_modules/a/b.js"));
        assert!(ex(ignore, "build.log"));
        assert!(!ex(ignore, "logs/build.log"), "* stays in one component");
        assert!(ex(ignore, "target/debug/x"));
        assert!(ex(ignore, "a/b/c.tmp"));
        assert!(ex(ignore, "c.tmp"), "** matches no directory too");
        assert!(ex(ignore, "docs/readme.md"));
        assert!(!ex(ignore, "docs/keep.md"), "the last matching line wins");
        assert!(!ex(ignore, "src/main.rs"));
        assert!(ex("?at", "cat") && !ex("?at", "at"));
    }

    #[test]
    fn a_context_is_staged_without_what_is_ignored_and_within_its_limit() {
        let from = tempfile::tempdir().unwrap();
        let f = from.path();
        for (path, body) in [
            ("Dockerfile", "FROM scratch\n"),
            (".dockerignore", ".git\n**/*.log\nDockerfile\nbig\n"),
            (".git/HEAD", "ref"),
            ("app/main.rs", "fn main() {}"),
            ("app/debug.log", "noise"),
            ("big", "x"),
        ] {
            std::fs::create_dir_all(f.join(path).parent().unwrap()).unwrap();
            std::fs::write(f.join(path), body).unwrap();
        }
        let to = tempfile::tempdir().unwrap();
        let staged = stage_context(f, &to.path().join("ctx"), "Dockerfile", 1 << 20).unwrap();
        let t = to.path().join("ctx");
        assert!(t.join("Dockerfile").is_file(), "the Dockerfile always goes");
        assert!(t.join(".dockerignore").is_file());
        assert!(t.join("app/main.rs").is_file());
        assert!(!t.join("app/debug.log").exists());
        assert!(!t.join(".git/HEAD").exists());
        assert!(!t.join("big").exists());
        assert_eq!(staged.files, 3);
        std::fs::write(f.join("huge"), vec![0u8; 2 << 20]).unwrap();
        let err = stage_context(f, &to.path().join("again"), "Dockerfile", 1 << 20).unwrap_err();
        assert!(err.to_string().contains("over 1 MiB"), "{err}");
    }
}
