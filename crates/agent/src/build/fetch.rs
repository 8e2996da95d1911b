//! Fetching a pushed commit for a build: git runs on the node as the build's own
//! unprivileged ids (those its builder VM gets), with no configuration but ours, over the
//! network transports only (never `file://` or `ext::`), within the build's time; the
//! commit's tree must be the one the push named, so what is built is what was pushed.
//! The files of the commit (without `.git`) become the context.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use tokio::process::Command;
use zeitwork_core::repository::{GitSource, check_object_id};

/// Where the commit's files go, under `dir` (which is the build's own).
pub(crate) const CONTEXT: &str = "context";

/// Fetches `git`'s commit into `dir/context` as user and group `ids`.
pub(crate) async fn fetch(
    git: &GitSource,
    token: Option<&str>,
    dir: &Path,
    ids: (u32, u32),
    time: Duration,
) -> Result<(), String> {
    check_object_id(&git.commit).map_err(|e| format!("commit {e}"))?;
    check_object_id(&git.tree).map_err(|e| format!("tree {e}"))?;
    let meta = dir.join("git");
    let context = dir.join(CONTEXT);
    let home = dir.join("home");
    for d in [&meta, &context, &home] {
        tokio::fs::create_dir_all(d)
            .await
            .map_err(|e| format!("creating {}: {e}", d.display()))?;
        std::os::unix::fs::chown(d, Some(ids.0), Some(ids.1))
            .map_err(|e| format!("handing {} to the build: {e}", d.display()))?;
    }
    let git_dir = format!("--git-dir={}", meta.display());
    let work_tree = format!("--work-tree={}", context.display());
    let deadline = tokio::time::Instant::now() + time;
    let run = |args: Vec<String>| {
        let mut cmd = Command::new("git");
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_ALLOW_PROTOCOL", "https:http:git:ssh")
            .env(
                "GIT_SSH_COMMAND",
                "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
            )
            .uid(ids.0)
            .gid(ids.1)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(token) = token {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {basic}"),
                );
        }
        async move {
            let out = tokio::time::timeout_at(deadline, cmd.output())
                .await
                .map_err(|_| format!("fetching the source took longer than {time:?}"))?
                .map_err(|e| format!("running git: {e}"))?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
            }
        }
    };
    let s = |v: &str| v.to_owned();
    run(vec![
        s("init"),
        s("-q"),
        s("--bare"),
        meta.display().to_string(),
    ])
    .await?;
    // By commit first (GitHub and git's own daemon serve any reachable commit); else the
    // branch, whose history must hold it.
    let by_commit = run(vec![
        git_dir.clone(),
        s("fetch"),
        s("-q"),
        s("--no-tags"),
        s("--depth=1"),
        s("--"),
        git.url.clone(),
        git.commit.clone(),
    ])
    .await;
    if let Err(first) = by_commit {
        run(vec![
            git_dir.clone(),
            s("fetch"),
            s("-q"),
            s("--no-tags"),
            s("--"),
            git.url.clone(),
            format!("refs/heads/{}", git.branch),
        ])
        .await
        .map_err(|e| format!("fetching {} from {}: {first}; {e}", git.commit, git.url))?;
    }
    let tree = run(vec![
        git_dir.clone(),
        s("rev-parse"),
        s("--verify"),
        format!("{}^{{tree}}", git.commit),
    ])
    .await
    .map_err(|e| format!("commit {} is not in {}: {e}", git.commit, git.url))?;
    if tree != git.tree {
        return Err(format!(
            "commit {} has tree {tree}, not the {} its push named",
            git.commit, git.tree
        ));
    }
    run(vec![
        git_dir,
        work_tree,
        s("checkout"),
        s("-q"),
        s("-f"),
        git.commit.clone(),
        s("--"),
        s("."),
    ])
    .await
    .map_err(|e| format!("checking out {}: {e}", git.commit))?;
    Ok(())
}
