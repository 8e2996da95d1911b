//! Registry credentials where docker, podman, buildah and skopeo keep them, so a user who
//! ran `docker login`, `podman login` (or `zeitwork registry login`) needs nothing more.
//!
//! Files, first match wins: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `$XDG_CONFIG_HOME/containers/auth.json` (else `~/.config/containers/auth.json`), then
//! `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`). In each, `auths` entries are
//! keyed by `host[:port]`, optionally with a repository path (the most specific wins) or a
//! URL scheme; `credHelpers`/`credsStore` name a `docker-credential-<helper>` to ask.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;
use serde::Deserialize;

use crate::Auth;

/// Docker Hub's key in Docker's config, for references to `docker.io`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The auth files to read, in order.
#[derive(Debug, Clone)]
pub struct AuthFiles {
    paths: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, Entry>,
    #[serde(default)]
    cred_helpers: std::collections::BTreeMap<String, String>,
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Entry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// What a credential helper answers (`docker-credential-<name> get`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

impl AuthFiles {
    /// The files docker, podman, buildah and skopeo read, from this process's environment.
    pub fn from_env() -> AuthFiles {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let home = var("HOME");
        let mut paths = Vec::new();
        paths.extend(var("REGISTRY_AUTH_FILE"));
        paths.extend(var("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
        paths.extend(
            var("XDG_CONFIG_HOME")
                .or_else(|| home.as_ref().map(|h| h.join(".config")))
                .map(|d| d.join("containers/auth.json")),
        );
        paths.extend(
            var("DOCKER_CONFIG")
                .or_else(|| home.as_ref().map(|h| h.join(".docker")))
                .map(|d| d.join("config.json")),
        );
        AuthFiles { paths }
    }

    /// Exactly these files, in this order.
    pub fn at(paths: Vec<PathBuf>) -> AuthFiles {
        AuthFiles { paths }
    }

    /// The first of the files, where a login writes: `$REGISTRY_AUTH_FILE`, else podman's
    /// runtime file, else its config file.
    pub fn login_file(&self) -> Option<&Path> {
        self.paths.first().map(PathBuf::as_path)
    }

    /// The credentials for the registry and repository of `reference`
    /// (`[REGISTRY/]NAME[:TAG][@DIGEST]`).
    pub fn for_reference(&self, reference: &str) -> Result<Auth, crate::ImageError> {
        let parsed = crate::reference::parse(reference)?;
        self.lookup(parsed.resolve_registry(), parsed.repository())
            .map_err(|reason| crate::ImageError::Invalid {
                what: "registry credentials".into(),
                reason,
            })
    }

    /// The credentials for `repository` (`org/app`) on `registry` (`host[:port]`), or
    /// [`Auth::Anonymous`] when no file names them. A file that cannot be read as an auth
    /// file is an error naming it (a silent anonymous pull would fail later, obscurely).
    pub fn lookup(&self, registry: &str, repository: &str) -> Result<Auth, String> {
        for path in &self.paths {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("reading {}: {e}", path.display())),
            };
            let file: AuthFile = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not an auth file: {e}", path.display()))?;
            if let Some(auth) = file.entry(registry, repository) {
                return auth.map_err(|e| format!("{}: {e}", path.display()));
            }
            if let Some(helper) = file.helper(registry) {
                return ask_helper(helper, registry);
            }
        }
        Ok(Auth::Anonymous)
    }
}

impl AuthFile {
    /// The most specific `auths` entry for the repository, decoded.
    fn entry(&self, registry: &str, repository: &str) -> Option<Result<Auth, String>> {
        let mut keys: Vec<String> = Vec::new();
        let mut path = format!("{registry}/{repository}");
        loop {
            keys.push(path.clone());
            match path.rsplit_once('/') {
                Some((parent, _)) => path = parent.to_owned(),
                None => break,
            }
        }
        for scheme in ["https://", "http://"] {
            keys.push(format!("{scheme}{registry}"));
            keys.push(format!("{scheme}{registry}/v1/"));
            keys.push(format!("{scheme}{registry}/v2/"));
        }
        if is_docker_hub(registry) {
            keys.push(DOCKER_HUB_KEY.to_owned());
        }
        keys.iter()
            .find_map(|k| self.auths.get(k))
            .map(Entry::decode)
    }

    fn helper(&self, registry: &str) -> Option<&str> {
        self.cred_helpers
            .get(registry)
            .or(self.creds_store.as_ref())
            .map(String::as_str)
    }
}

impl Entry {
    fn decode(&self) -> Result<Auth, String> {
        if let (Some(username), Some(password)) = (&self.username, &self.password) {
            return Ok(Auth::Basic {
                username: username.clone(),
                password: password.clone(),
            });
        }
        let Some(encoded) = &self.auth else {
            return Ok(Auth::Anonymous);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| "an \"auth\" entry is not base64".to_owned())?;
        let text = String::from_utf8(bytes).map_err(|_| "an \"auth\" entry is not UTF-8")?;
        let (username, password) = text
            .split_once(':')
            .ok_or("an \"auth\" entry is not base64 of USER:PASSWORD")?;
        Ok(Auth::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }
}

fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// Asks `docker-credential-<helper> get` for `registry`'s credentials.
fn ask_helper(helper: &str, registry: &str) -> Result<Auth, String> {
    use std::io::Write as _;
    let program = format!("docker-credential-{helper}");
    let server = if is_docker_hub(registry) {
        DOCKER_HUB_KEY
    } else {
        registry
    };
    let mut child = std::process::Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {program} (named by the auth file): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| format!("{program}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    let said = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // "credentials not found in native keychain": no login for this registry.
        if said.contains("not found") {
            return Ok(Auth::Anonymous);
        }
        return Err(format!("{program} get failed: {}", said.trim()));
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{program}'s answer: {e}"))?;
    Ok(Auth::Basic {
        username: answer.username,
        password: answer.secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Auth {
        Auth::Basic {
            username: user.into(),
            password: password.into(),
        }
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn the_most_specific_entry_of_the_first_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let podman = dir.path().join("auth.json");
        let docker = dir.path().join("config.json");
        std::fs::write(
            &podman,
            serde_json::json!({"auths": {
                "reg.example:5000": {"auth": b64("all:one")},
                "reg.example:5000/acme": {"auth": b64("acme:two")},
            }})
            .to_string(),
        )
        .unwrap();
        std::fs::write(
            &docker,
            serde_json::json!({"auths": {
                "https://other.example": {"username": "u", "password": "p:w"},
                "https://index.docker.io/v1/": {"auth": b64("hub:three")},
                "reg.example:5000": {"auth": b64("never:read")},
            }})
            .to_string(),
        )
        .unwrap();
        let files = AuthFiles::at(vec![dir.path().join("missing.json"), podman, docker]);
        let look = |r: &str, repo: &str| files.lookup(r, repo).unwrap();
        assert_eq!(look("reg.example:5000", "acme/web"), basic("acme", "two"));
        assert_eq!(look("reg.example:5000", "other/web"), basic("all", "one"));
        assert_eq!(look("other.example", "x"), basic("u", "p:w"));
        assert_eq!(look("docker.io", "library/alpine"), basic("hub", "three"));
        assert_eq!(look("nobody.example", "x"), Auth::Anonymous);
    }

    #[test]
    fn a_broken_file_is_named_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("auth.json");
        std::fs::write(&bad, "{not json").unwrap();
        let err = AuthFiles::at(vec![bad]).lookup("r", "x").unwrap_err();
        assert!(err.contains("auth.json is not an auth file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("auth.json");
        std::fs::write(&odd, r#"{"auths": {"r": {"auth": "%%%"}}}"#).unwrap();
        let err = AuthFiles::at(vec![odd]).lookup("r", "x").unwrap_err();
        assert!(err.contains("not base64"), "{err}");
    }
}
