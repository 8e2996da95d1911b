//! Base images: the node fetches every image the Dockerfile's stages start `FROM` (with
//! skopeo, as OCI archives on the build's disk), and the builder loads them under their
//! names before it builds, never pulling: the builder can neither reach the platform
//! registry (it is on the node's network) nor hold a credential for it, and a build
//! without network still has its bases. Images of the platform registry are fetched with
//! the node's own credential (the token service grants a node pulls of the orgs whose
//! builds it runs); others anonymously.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

/// The directory of the build's disk (`/build/bases` in the guest) holding the archives,
/// and its list of `file<TAB>name` lines.
pub(crate) const DIR: &str = "bases";
pub(crate) const LIST: &str = "list";
/// How many base images one Dockerfile may start from.
const MAX_BASES: usize = 16;

/// The images the Dockerfile's stages start from, fully qualified (`debian:12` is
/// `docker.io/library/debian:12`), each once: `scratch` and earlier stages left out, `$ARG`s
/// declared before the first `FROM` (or given as build args) substituted.
pub(crate) fn images(
    dockerfile: &str,
    build_args: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: HashSet<String> = HashSet::new();
    let mut images: Vec<String> = Vec::new();
    let mut seen_from = false;
    for line in instructions(dockerfile) {
        let mut words = line.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        match keyword.to_ascii_uppercase().as_str() {
            "ARG" if !seen_from => {
                for decl in words {
                    let (name, default) = decl.split_once('=').unwrap_or((decl, ""));
                    let value = build_args
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| default.trim_matches('"').to_owned());
                    args.insert(name.to_owned(), value);
                }
            }
            "FROM" => {
                seen_from = true;
                let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
                let Some(image) = rest.first() else {
                    return Err(format!("FROM without an image: {line}"));
                };
                let image = substitute(image, &args);
                let earlier_stage = stages.contains(&image.to_ascii_lowercase());
                if let [_, as_kw, name] = rest.as_slice()
                    && as_kw.eq_ignore_ascii_case("as")
                {
                    stages.insert(name.to_ascii_lowercase());
                }
                if image == "scratch" || earlier_stage {
                    continue;
                }
                let image = qualified(&image);
                if !images.contains(&image) {
                    images.push(image);
                }
            }
            _ => {}
        }
    }
    if images.len() > MAX_BASES {
        return Err(format!(
            "the Dockerfile starts from {} images; at most {MAX_BASES}",
            images.len()
        ));
    }
    Ok(images)
}

/// The Dockerfile's instructions: comments and blank lines dropped, continued lines joined.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `$NAME` and `${NAME}` replaced by the arguments' values (unknown ones by nothing).
fn substitute(word: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if braced && chars.peek() == Some(&'}') {
            chars.next();
        }
        out.push_str(args.get(&name).map_or("", String::as_str));
    }
    out
}

/// `debian:12` → `docker.io/library/debian:12`, `user/app` → `docker.io/user/app`; a
/// reference with a registry stays as it is.
fn qualified(image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    let has_registry =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    match (has_registry, image.contains('/')) {
        (true, _) => image.to_owned(),
        (false, true) => format!("docker.io/{image}"),
        (false, false) => format!("docker.io/library/{image}"),
    }
}

/// Fetches `images` into `dir/bases` as OCI archives and writes their list. `login`
/// gives the `user:password` for a registry (the platform's), when there is one;
/// `plain_http` says which registries speak HTTP.
pub(crate) async fn fetch(
    images: &[String],
    dir: &Path,
    login: impl Fn(&str) -> Option<(String, String)>,
    plain_http: impl Fn(&str) -> bool,
    time: Duration,
) -> Result<(), String> {
    let bases = dir.join(DIR);
    tokio::fs::create_dir_all(&bases)
        .await
        .map_err(|e| format!("creating {}: {e}", bases.display()))?;
    let mut list = String::new();
    for (n, image) in images.iter().enumerate() {
        let registry = image.split('/').next().unwrap_or_default();
        let file = format!("{n}.tar");
        let mut cmd = Command::new("skopeo");
        cmd.arg("copy").arg("--quiet");
        if plain_http(registry) {
            cmd.arg("--src-tls-verify=false");
        }
        // Credentials in a file of the build's own, never on a command line.
        if let Some((user, password)) = login(registry) {
            use base64::Engine as _;
            let auth =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let file = dir.join("registry-auth.json");
            let json = serde_json::json!({ "auths": { registry: { "auth": auth } } });
            tokio::fs::write(&file, json.to_string())
                .await
                .map_err(|e| format!("writing {}: {e}", file.display()))?;
            cmd.arg("--src-authfile").arg(&file);
        }
        cmd.arg(format!("docker://{image}"))
            .arg(format!("oci-archive:{}", bases.join(&file).display()))
            .env_remove("REGISTRY_AUTH_FILE")
            .kill_on_drop(true);
        let out = tokio::time::timeout(time, cmd.output())
            .await
            .map_err(|_| format!("fetching the base image {image} took longer than {time:?}"))?
            .map_err(|e| format!("running skopeo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "fetching the base image {image}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        list.push_str(&format!("{file}\t{image}\n"));
    }
    let _ = tokio::fs::remove_file(dir.join("registry-auth.json")).await;
    tokio::fs::write(bases.join(LIST), list)
        .await
        .map_err(|e| format!("writing the base image list: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_start_from_images_with_args_and_earlier_stages_left_out() {
        let dockerfile = "# syntax=docker/dockerfile:1\n\
            ARG BASE=debian:12\n\
            ARG TAG\n\
            FROM --platform=linux/amd64 ${BASE} AS build\n\
            RUN make \\\n  all\n\
            FROM build AS test\n\
            FROM scratch\n\
            COPY --from=build /app /app\n\
            FROM registry.example:5000/acme/runtime:$TAG\n\
            from node:20 as web\n\
            FROM debian:12\n";
        let args = BTreeMap::from([("TAG".to_owned(), "v2".to_owned())]);
        assert_eq!(
            images(dockerfile, &args).unwrap(),
            [
                "docker.io/library/debian:12",
                "registry.example:5000/acme/runtime:v2",
                "docker.io/library/node:20",
            ]
        );
        assert_eq!(
            images("FROM scratch\nCOPY a /a\n", &BTreeMap::new()).unwrap(),
            Vec::<String>::new()
        );
        assert!(images("FROM\n", &BTreeMap::new()).is_err());
        assert_eq!(qualified("user/app:1"), "docker.io/user/app:1");
        assert_eq!(qualified("localhost/app"), "localhost/app");
        assert_eq!(qualified("127.0.0.1:5000/a/b"), "127.0.0.1:5000/a/b");
    }
}
