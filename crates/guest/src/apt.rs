//! Getting the kernel .deb with apt: resolve the metapackage (`linux-image-cloud-amd64`) to
//! the real image package, ask apt for its file name and SHA256, and download it only when the
//! cache does not already hold that exact file.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cache;
use crate::error::GuestError;

/// The metapackage that always points at Debian's current cloud kernel.
pub const DEFAULT_KERNEL_PACKAGE: &str = "linux-image-cloud-amd64";

/// What apt says about the file of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebFile {
    pub package: String,
    pub file_name: String,
    pub size: u64,
    pub sha256: String,
}

/// Returns the path of the package's .deb in `dir`, downloading it when needed. If apt does not
/// know the package or cannot fetch it, runs `apt-get update` once and tries again (stale
/// package lists are the usual cause).
pub fn fetch(package: &str, dir: &Path) -> Result<PathBuf, GuestError> {
    match fetch_once(package, dir) {
        Ok(path) => Ok(path),
        Err(first) => {
            tracing::warn!(error = %first, "kernel package not available; running apt-get update and trying again");
            if let Err(update) = run(
                "apt-get",
                &["-q", "-o", "DPkg::Lock::Timeout=120", "update"],
                None,
            ) {
                tracing::warn!(error = %update, "apt-get update failed");
                return Err(first);
            }
            fetch_once(package, dir)
        }
    }
}

fn fetch_once(package: &str, dir: &Path) -> Result<PathBuf, GuestError> {
    let real = resolve(package)?;
    let file = describe(&real)?;
    let target = dir.join(&file.file_name);
    if target.is_file() && cache::sha256_file(&target)? == file.sha256 {
        tracing::debug!(deb = %target.display(), "kernel package already downloaded");
        return Ok(target);
    }
    std::fs::create_dir_all(dir).map_err(GuestError::io(format!("create {}", dir.display())))?;
    let scratch = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(dir)
        .map_err(GuestError::io(format!(
            "create a directory in {}",
            dir.display()
        )))?;
    let started = std::time::Instant::now();
    run(
        "apt-get",
        &["-q", "-o", "APT::Sandbox::User=root", "download", &real],
        Some(scratch.path()),
    )?;
    let downloaded = scratch.path().join(&file.file_name);
    if !downloaded.is_file() {
        return Err(GuestError::Apt {
            command: format!("apt-get download {real}"),
            detail: format!("it did not produce {}", file.file_name),
        });
    }
    let actual = cache::sha256_file(&downloaded)?;
    if actual != file.sha256 {
        return Err(GuestError::DebDigest {
            path: downloaded,
            expected: file.sha256,
            actual,
        });
    }
    cache::sync_file(&downloaded)?;
    std::fs::rename(&downloaded, &target).map_err(GuestError::io(format!(
        "move the download to {}",
        target.display()
    )))?;
    cache::sync_dir(dir)?;
    tracing::info!(deb = %target.display(), size = file.size, elapsed = ?started.elapsed(), "downloaded kernel package");
    Ok(target)
}

/// Resolves a metapackage to the image package it depends on (`linux-image-<release>`); a
/// package that depends on no other `linux-image-*` is returned as it is.
pub fn resolve(package: &str) -> Result<String, GuestError> {
    let out = run("apt-cache", &["depends", package], None)?;
    Ok(parse_depends(&out).unwrap_or_else(|| package.to_owned()))
}

fn parse_depends(apt_cache_depends: &str) -> Option<String> {
    apt_cache_depends.lines().find_map(|line| {
        let dep = line
            .trim()
            .trim_start_matches('|')
            .strip_prefix("Depends:")?
            .trim();
        (dep.starts_with("linux-image-") && !dep.starts_with('<')).then(|| dep.to_owned())
    })
}

/// Asks apt for the file name, size and digest of a package without downloading it.
pub fn describe(package: &str) -> Result<DebFile, GuestError> {
    // Run where no file of that name exists: apt prints nothing for files already present.
    let empty = tempfile::tempdir().map_err(GuestError::io("create a temporary directory"))?;
    let out = run(
        "apt-get",
        &["-q", "--print-uris", "download", package],
        Some(empty.path()),
    )?;
    parse_print_uris(package, &out).ok_or_else(|| GuestError::Apt {
        command: format!("apt-get --print-uris download {package}"),
        detail: format!("unexpected output {:?}", out.trim()),
    })
}

fn parse_print_uris(package: &str, out: &str) -> Option<DebFile> {
    // 'URI' FILE SIZE SHA256:HEX
    out.lines().find_map(|line| {
        let mut parts = line.rsplitn(4, ' ');
        let digest = parts.next()?;
        let size = parts.next()?.parse().ok()?;
        let file_name = parts.next()?;
        let _uri = parts.next()?;
        let sha256 = digest.strip_prefix("SHA256:")?.to_ascii_lowercase();
        let ok = file_name.ends_with(".deb") && !file_name.contains('/') && sha256.len() == 64;
        ok.then(|| DebFile {
            package: package.to_owned(),
            file_name: file_name.to_owned(),
            size,
            sha256,
        })
    })
}

fn run(program: &str, args: &[&str], dir: Option<&Path>) -> Result<String, GuestError> {
    let command = format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args).env("LC_ALL", "C");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd.output().map_err(|e| GuestError::Apt {
        command: command.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // apt's errors are the "E:" lines; otherwise show the last thing it said.
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("E:")).collect();
        let detail = if errors.is_empty() {
            stderr
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_owned()
        } else {
            errors.join(" ")
        };
        return Err(GuestError::Apt {
            command,
            detail: format!("{} ({detail})", out.status),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_apt_cache_depends() {
        let out = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n";
        assert_eq!(
            parse_depends(out).as_deref(),
            Some("linux-image-6.1.0-56-cloud-amd64")
        );
        let out =
            "foo\n |Depends: <virtual>\n  Depends: libc6\n  Depends: linux-image-6.1.0-9-amd64\n";
        assert_eq!(
            parse_depends(out).as_deref(),
            Some("linux-image-6.1.0-9-amd64")
        );
        assert_eq!(
            parse_depends("linux-image-6.1.0-9-amd64\n  Depends: kmod\n  PreDepends: x\n"),
            None
        );
    }

    #[test]
    fn parses_print_uris() {
        let out = "'http://deb.debian.org/debian-security/pool/updates/main/l/linux-signed-amd64/linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb' linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb 26713492 SHA256:e7d02b943971edcb8790e256c02cfab3bca6c3d37c1bf25392a57c71300615ee\n";
        let file = parse_print_uris("p", out).unwrap();
        assert_eq!(
            file.file_name,
            "linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb"
        );
        assert_eq!(file.size, 26713492);
        assert_eq!(
            file.sha256,
            "e7d02b943971edcb8790e256c02cfab3bca6c3d37c1bf25392a57c71300615ee"
        );
        assert_eq!(parse_print_uris("p", ""), None);
        assert_eq!(parse_print_uris("p", "'u' ../evil.deb 1 SHA256:00"), None);
    }
}
