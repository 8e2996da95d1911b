//! Apps connected to a git repository: pushes to its production branch build and deploy
//! to the primary env, pushes to any other branch build a preview env of their own,
//! named after the branch ([`preview_env`]), whose hostname is therefore
//! `<app>-<branch-slug>-<org>` (see [`crate::platform_host`]).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::name::{MAX_NAME, Name, NameError};

/// The longest repository URL accepted.
pub const MAX_URL: usize = 500;
/// The longest branch name accepted (git allows more; nobody needs it).
pub const MAX_BRANCH: usize = 200;

/// The exact source of a build from git: the commit, and the tree it must have (so a
/// tree built before is not built again, whatever commit holds it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitSource {
    pub url: String,
    pub branch: String,
    /// 40 hex digits.
    pub commit: String,
    /// 40 hex digits: the commit's tree.
    pub tree: String,
}

impl GitSource {
    /// What identifies the source for reuse: the same tree builds the same image.
    pub fn identity(&self) -> String {
        format!("git-tree:{}", self.tree)
    }
}

/// Why a repository URL or branch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    #[error("must be an https://, http://, git:// or ssh:// URL (or user@host:path)")]
    Scheme,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must be printable ASCII, without whitespace")]
    BadChar,
    #[error("is not a valid git branch name")]
    Branch,
    #[error("must be 40 hexadecimal digits")]
    ObjectId,
}

/// Checks a repository URL the builder can fetch: the network transports only (never
/// `file://` or `ext::`, which would read the node's disk or run commands).
pub fn check_url(url: &str) -> Result<(), RepositoryError> {
    if url.len() > MAX_URL {
        return Err(RepositoryError::TooLong(MAX_URL));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RepositoryError::BadChar);
    }
    let network = ["https://", "http://", "git://", "ssh://"]
        .iter()
        .any(|s| url.starts_with(s) && url.len() > s.len());
    let scp_like = url
        .split_once(':')
        .is_some_and(|(host, path)| host.contains('@') && !host.contains('/') && !path.is_empty());
    if network || scp_like {
        Ok(())
    } else {
        Err(RepositoryError::Scheme)
    }
}

/// Checks a branch name by git's rules for ref names (`git check-ref-format`).
pub fn check_branch(branch: &str) -> Result<(), RepositoryError> {
    let bad = branch.is_empty()
        || branch.len() > MAX_BRANCH
        || branch.starts_with(['-', '/', '.'])
        || branch.ends_with(['/', '.'])
        || branch.ends_with(".lock")
        || branch.contains("..")
        || branch.contains("//")
        || branch.contains("@{")
        || branch.contains("/.")
        || branch == "@"
        || branch
            .chars()
            .any(|c| c.is_control() || " ~^:?*[\\".contains(c));
    if bad {
        Err(RepositoryError::Branch)
    } else {
        Ok(())
    }
}

/// Checks a git object id (SHA-1, as GitHub sends them).
pub fn check_object_id(id: &str) -> Result<(), RepositoryError> {
    if id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(RepositoryError::ObjectId)
    }
}

/// Whether two URLs name the same repository: the same host and path, whatever the
/// transport, credentials, case of the host or a trailing `.git` or `/`. GitHub sends a
/// repository as `clone_url`, `ssh_url`, `git_url` and `html_url`; a connection made
/// with any of them matches.
pub fn same_repository(a: &str, b: &str) -> bool {
    match (location(a), location(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `host/path` of a repository URL, normalized.
fn location(url: &str) -> Option<(String, String)> {
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest.to_owned(),
        // scp-like `git@host:owner/repo`
        None => url.replacen(':', "/", 1),
    };
    let (authority, path) = rest.split_once('/')?;
    let host = authority.rsplit('@').next()?;
    let host = host.split(':').next()?.to_ascii_lowercase();
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path).trim_matches('/');
    (!host.is_empty() && !path.is_empty()).then(|| (host, path.to_owned()))
}

/// The env a branch's previews go to: the branch lowercased, every run of other
/// characters made one `-`, cut to a name's length. Refused when nothing is left.
pub fn preview_env(branch: &str) -> Result<Name, NameError> {
    let mut slug = String::new();
    for c in branch.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug = slug.trim_matches('-').to_owned();
    slug.truncate(MAX_NAME);
    Name::parse(slug.trim_end_matches('-'))
}

/// GitHub's `X-Hub-Signature-256` of a delivery's body: `sha256=` and the hex of its
/// HMAC-SHA256 under the hook's secret.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is `body`'s [`signature`] under `secret`, compared in constant time.
pub fn signature_matches(secret: &[u8], header: Option<&str>, body: &[u8]) -> bool {
    let Some(sig) = header
        .and_then(|h| h.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_secret_over_the_exact_body_matches() {
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let good = signature(b"s3cret", body);
        // GitHub's documented example (docs: "Validating webhook deliveries").
        assert_eq!(
            signature(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        assert!(signature_matches(b"s3cret", Some(&good), body));
        assert!(!signature_matches(b"other", Some(&good), body));
        assert!(!signature_matches(b"s3cret", Some(&good), b"{}"));
        assert!(!signature_matches(b"s3cret", None, body));
        assert!(!signature_matches(
            b"s3cret",
            Some(good.trim_start_matches("sha256=")),
            body
        ));
        assert!(!signature_matches(b"s3cret", Some("sha256=zz"), body));
    }

    #[test]
    fn urls_of_one_repository_match_whatever_the_transport() {
        let forms = [
            "https://github.com/acme/shop.git",
            "https://github.com/acme/shop",
            "git://github.com/acme/shop.git",
            "git@github.com:acme/shop.git",
            "ssh://git@GitHub.com/acme/shop/",
            "https://token@github.com:443/acme/shop.git",
        ];
        for a in forms {
            check_url(a).unwrap();
            for b in forms {
                assert!(same_repository(a, b), "{a} vs {b}");
            }
        }
        assert!(!same_repository(
            "https://github.com/acme/shop",
            "https://github.com/acme/shop-fork"
        ));
        assert!(!same_repository(
            "https://github.com/acme/shop",
            "https://gitlab.com/acme/shop"
        ));
    }

    #[test]
    fn only_network_transports_are_accepted() {
        for bad in [
            "file:///etc",
            "/srv/repo",
            "ext::sh -c id",
            "https://",
            "https://a b",
            "host:path",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn branches_follow_git_rules_and_slug_into_env_names() {
        for good in ["main", "feature/login", "fix-1.2", "Release_2026"] {
            check_branch(good).unwrap();
        }
        for bad in ["", "-x", "a..b", "a b", "a~1", "x.lock", "a/", "@", "a@{1}"] {
            assert!(check_branch(bad).is_err(), "{bad}");
        }
        assert_eq!(
            preview_env("feature/Login_Page").unwrap().as_str(),
            "feature-login-page"
        );
        assert_eq!(preview_env("--x--").unwrap().as_str(), "x");
        let long = preview_env(&"ab/".repeat(40)).unwrap();
        assert!(long.as_str().len() <= MAX_NAME && !long.as_str().ends_with('-'));
        assert!(preview_env("___").is_err());
        check_object_id(&"a".repeat(40)).unwrap();
        assert!(check_object_id("abc").is_err());
    }
}
