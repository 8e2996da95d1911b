//! A STAND-IN for GitHub in tests, since GitHub itself is not reachable from these
//! machines: repositories served by git's own daemon (`git daemon`, read-only, on
//! loopback), commits made with real git, and webhook deliveries sent exactly as GitHub
//! sends them: its headers (`X-GitHub-Event`, `X-GitHub-Delivery`, `X-Hub-Signature-256`,
//! `User-Agent: GitHub-Hookshot/…`) and a `push` body with GitHub's fields.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use zeitwork_core::repository::signature;

use crate::ServiceError;
use crate::process::{free_port, logged, spawn_listening};

/// The commit id GitHub sends for "no commit" (a created or deleted branch's other side).
pub const NO_COMMIT: &str = "0000000000000000000000000000000000000000";

/// A running `git daemon` over a directory of repositories; killed when dropped.
#[derive(Debug)]
pub struct GitHubStandIn {
    _child: Child,
    port: u16,
    dir: TempDir,
    client: reqwest::Client,
}

/// One commit pushed: its id and its tree's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub before: String,
    pub commit: String,
    pub tree: String,
}

/// A webhook to deliver to: its URL and secret (what `zeitwork apps connect` printed).
#[derive(Debug, Clone)]
pub struct Hook {
    pub url: String,
    pub secret: String,
}

impl GitHubStandIn {
    /// Starts `git daemon` on a free loopback port (Debian's `git`).
    pub async fn start() -> Result<GitHubStandIn, ServiceError> {
        let (dir, log, output, stderr) = logged("git")?;
        let port = free_port();
        let repos = dir.path().join("repos");
        std::fs::create_dir(&repos).map_err(ServiceError::io("creating the repositories"))?;
        let child = spawn_listening(
            "git daemon",
            Command::new("git")
                .arg("daemon")
                .arg("--export-all")
                .arg("--reuseaddr")
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(format!("--base-path={}", repos.display()))
                .arg(&repos),
            (&log, output, stderr),
            port,
            ServiceError::NotInstalled {
                binary: "git",
                hint: "apt-get install git (scripts/setup.sh does it)",
            },
        )
        .await?;
        Ok(GitHubStandIn {
            _child: child,
            port,
            dir,
            client: reqwest::Client::new(),
        })
    }

    /// The working tree of repository `full_name` (`owner/name`), made on first use.
    pub async fn repository(&self, full_name: &str) -> Result<PathBuf, ServiceError> {
        let path = self.dir.path().join("repos").join(full_name);
        if !path.exists() {
            std::fs::create_dir_all(&path)
                .map_err(ServiceError::io(format!("creating {}", path.display())))?;
            git(&path, &["init", "-q", "-b", "main"]).await?;
        }
        Ok(path)
    }

    /// `git://127.0.0.1:PORT/owner/name`: what a builder fetches.
    pub fn clone_url(&self, full_name: &str) -> String {
        format!("git://127.0.0.1:{}/{full_name}", self.port)
    }

    /// Commits `files` (path, contents, executable) to `branch` of `full_name` (created
    /// from the current one when new), exactly as given: files not named are removed.
    pub async fn commit(
        &self,
        full_name: &str,
        branch: &str,
        files: &[(&str, &[u8], bool)],
        message: &str,
    ) -> Result<Pushed, ServiceError> {
        let repo = self.repository(full_name).await?;
        let before = git(&repo, &["rev-parse", "--verify", "-q", "HEAD"])
            .await
            .unwrap_or_else(|_| NO_COMMIT.to_owned());
        git(&repo, &["checkout", "-q", "-B", branch]).await?;
        git(&repo, &["rm", "-rqf", "--ignore-unmatch", "."]).await?;
        for (name, contents, executable) in files {
            let path = repo.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(ServiceError::io(format!("creating {}", parent.display())))?;
            }
            std::fs::write(&path, contents)
                .map_err(ServiceError::io(format!("writing {}", path.display())))?;
            if *executable {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .map_err(ServiceError::io(format!("chmod {}", path.display())))?;
            }
        }
        git(&repo, &["add", "-A"]).await?;
        git(
            &repo,
            &[
                "-c",
                "user.name=Dev",
                "-c",
                "user.email=dev@example.com",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                message,
            ],
        )
        .await?;
        Ok(Pushed {
            before,
            commit: git(&repo, &["rev-parse", "HEAD"]).await?,
            tree: git(&repo, &["rev-parse", "HEAD^{tree}"]).await?,
        })
    }

    /// Deletes `branch` of `full_name` (the repository moves to `main`).
    pub async fn delete_branch(
        &self,
        full_name: &str,
        branch: &str,
    ) -> Result<String, ServiceError> {
        let repo = self.repository(full_name).await?;
        let was = git(&repo, &["rev-parse", branch]).await?;
        git(&repo, &["checkout", "-q", "main"]).await?;
        git(&repo, &["branch", "-q", "-D", branch]).await?;
        Ok(was)
    }

    /// GitHub's `push` payload for `pushed` to `branch` of `full_name`.
    pub fn push_payload(&self, full_name: &str, branch: &str, pushed: &Pushed) -> Value {
        let commit = json!({
            "id": pushed.commit,
            "tree_id": pushed.tree,
            "distinct": true,
            "message": "change",
            "timestamp": "2026-12-07T10:00:00+00:00",
            "url": format!("{}/commit/{}", self.html_url(full_name), pushed.commit),
            "author": {"name": "Dev", "email": "dev@example.com", "username": "dev"},
            "committer": {"name": "Dev", "email": "dev@example.com", "username": "dev"},
            "added": [], "removed": [], "modified": [],
        });
        self.payload(
            full_name,
            branch,
            &pushed.before,
            &pushed.commit,
            Some(commit),
        )
    }

    /// GitHub's `push` payload for deleting `branch` (which was at `was`).
    pub fn delete_payload(&self, full_name: &str, branch: &str, was: &str) -> Value {
        self.payload(full_name, branch, was, NO_COMMIT, None)
    }

    fn html_url(&self, full_name: &str) -> String {
        format!("http://127.0.0.1:{}/{full_name}", self.port)
    }

    fn payload(
        &self,
        full_name: &str,
        branch: &str,
        before: &str,
        after: &str,
        head: Option<Value>,
    ) -> Value {
        let (owner, name) = full_name.split_once('/').unwrap_or(("dev", full_name));
        let html = self.html_url(full_name);
        let user = json!({"name": owner, "login": owner, "id": 1, "type": "User",
                          "url": format!("https://api.github.com/users/{owner}")});
        json!({
            "ref": format!("refs/heads/{branch}"),
            "before": before,
            "after": after,
            "repository": {
                "id": 1, "node_id": "R_1", "name": name, "full_name": full_name,
                "private": false, "owner": user, "html_url": html, "description": null,
                "fork": false, "url": html,
                "git_url": self.clone_url(full_name),
                "ssh_url": format!("git@127.0.0.1:{full_name}.git"),
                "clone_url": self.clone_url(full_name),
                "default_branch": "main", "master_branch": "main",
                "pushed_at": 1_796_000_000, "created_at": 1_795_000_000,
            },
            "pusher": {"name": "dev", "email": "dev@example.com"},
            "sender": {"login": "dev", "id": 2, "type": "User"},
            "created": before == NO_COMMIT,
            "deleted": after == NO_COMMIT,
            "forced": false,
            "base_ref": null,
            "compare": format!("{html}/compare/{}...{}", &before[..12], &after[..12]),
            "commits": head.iter().cloned().collect::<Vec<_>>(),
            "head_commit": head,
        })
    }

    /// Delivers `payload` as event `event` to `hook`, signed with `secret` (which may be
    /// wrong, to test that), under delivery id `delivery`; the answer's status and body.
    pub async fn deliver(
        &self,
        hook: &Hook,
        event: &str,
        delivery: &str,
        payload: &Value,
        secret: &str,
    ) -> Result<(u16, Value), ServiceError> {
        let body = serde_json::to_vec(payload).expect("JSON serializes");
        let answer = self
            .client
            .post(&hook.url)
            .header("User-Agent", "GitHub-Hookshot/5c5e7a2")
            .header("Content-Type", "application/json")
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery)
            .header("X-GitHub-Hook-ID", "1")
            .header("X-GitHub-Hook-Installation-Target-Type", "repository")
            .header("X-GitHub-Hook-Installation-Target-ID", "1")
            .header("X-Hub-Signature-256", signature(secret.as_bytes(), &body))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                ServiceError::io(format!("POST {}", hook.url))(std::io::Error::other(e))
            })?;
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

/// Runs git in `repo`; its trimmed output.
async fn git(repo: &Path, args: &[&str]) -> Result<String, ServiceError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(ServiceError::io("running git"))?;
    if !out.status.success() {
        return Err(ServiceError::io(format!("git {}", args.join(" ")))(
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
