//! Filesystems: the early API filesystems, the app's root (read-only image + writable
//! disk, combined with overlayfs), and the switch from the initramfs to that root.

use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};

use crate::console;
use crate::error::{Context, Error, Result};

/// The image's read-only root filesystem (ext4).
pub const ROOT_DEVICE: &str = "/dev/vda";
/// The instance's writable disk (ext4, formatted by the host).
pub const RW_DEVICE: &str = "/dev/vdb";
/// The raw config disk.
pub const CONFIG_DEVICE: &str = "/dev/vdc";
/// The cache disk, when the VM has one (`GuestConfig::cache` says where it goes).
pub const CACHE_DEVICE: &str = "/dev/vdd";

pub const LOWER: &str = "/mnt/lower";
pub const RW: &str = "/mnt/rw";
pub const NEW_ROOT: &str = "/mnt/root";

/// The API filesystems moved into the app's root (submounts such as /dev/pts move along).
const MOVED: [&str; 4] = ["/dev", "/proc", "/sys", "/run"];

/// One `mount(2)`, creating the mount point first.
fn mount_at(source: &str, target: &str, fstype: &str, flags: MsFlags, data: &str) -> Result<()> {
    std::fs::create_dir_all(target).with_context(|| format!("creating {target}"))?;
    let data = (!data.is_empty()).then_some(data);
    mount(Some(source), target, Some(fstype), flags, data)
        .with_context(|| format!("mounting {source} on {target}"))
}

/// `/dev` first: the console lives there.
pub fn mount_dev() -> Result<()> {
    mount_at(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MsFlags::MS_NOSUID,
        "mode=0755",
    )
}

/// /proc, /sys, /dev/pts, /dev/shm, /run, and the usual /dev symlinks.
pub fn mount_api_filesystems() -> Result<()> {
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_at("proc", "/proc", "proc", hardened, "")?;
    mount_at("sysfs", "/sys", "sysfs", hardened, "")?;
    mount_at(
        "devpts",
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        "mode=0620,ptmxmode=0666,gid=5",
    )?;
    let tmpfs = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount_at("shm", "/dev/shm", "tmpfs", tmpfs, "mode=1777")?;
    mount_at("tmpfs", "/run", "tmpfs", tmpfs, "mode=0755")?;
    for (target, link) in [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ] {
        match std::os::unix::fs::symlink(target, link) {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => {
                return Err(e).context(format!("linking {link} to {target}"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Waits until every path exists, polling, for at most `timeout`.
pub fn wait_for(paths: &[&str], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let missing: Vec<&str> = paths
            .iter()
            .copied()
            .filter(|p| !Path::new(p).exists())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::invalid(
                format!("waiting for {}", paths.join(", ")),
                format!(
                    "{} did not appear within {}s",
                    missing.join(", "),
                    timeout.as_secs_f32()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The overlayfs mount options.
pub fn overlay_options(lower: &str, upper: &str, work: &str) -> String {
    format!("lowerdir={lower},upperdir={upper},workdir={work}")
}

/// The image (read-only) under the instance's writable disk, combined at [`NEW_ROOT`].
pub fn mount_root() -> Result<()> {
    console::debug(|| format!("mounting {ROOT_DEVICE} + {RW_DEVICE} on {NEW_ROOT}"));
    mount_at(ROOT_DEVICE, LOWER, "ext4", MsFlags::MS_RDONLY, "")?;
    mount_at(RW_DEVICE, RW, "ext4", MsFlags::MS_NOATIME, "")?;
    let upper = format!("{RW}/upper");
    let work = format!("{RW}/work");
    for dir in [&upper, &work] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
    }
    mount_at(
        "overlay",
        NEW_ROOT,
        "overlay",
        MsFlags::empty(),
        &overlay_options(LOWER, &upper, &work),
    )
}

/// The cache disk at `path` of the new root (a builder's layer cache).
pub fn mount_cache(path: &str, timeout: Duration) -> Result<()> {
    wait_for(&[CACHE_DEVICE], timeout)?;
    let target = format!("{NEW_ROOT}/{}", path.trim_start_matches('/'));
    prepare_mountpoint(Path::new(&target))?;
    mount_at(CACHE_DEVICE, &target, "ext4", MsFlags::MS_NOATIME, "")
}

/// Makes `path` a directory to mount on: a symlink or file the image put there is
/// replaced (a symlink would be followed against the initramfs, not the new root).
fn prepare_mountpoint(path: &Path) -> Result<()> {
    let what = || format!("preparing mount point {}", path.display());
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => std::fs::remove_file(path).with_context(what)?,
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(what),
    }
    std::fs::create_dir_all(path).with_context(what)
}

/// Moves /dev, /proc, /sys and /run into the new root (`mount --move`).
pub fn move_api_filesystems() -> Result<()> {
    for fs in MOVED {
        let target = format!("{NEW_ROOT}{fs}");
        prepare_mountpoint(Path::new(&target))?;
        mount(
            Some(fs),
            target.as_str(),
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .with_context(|| format!("moving {fs} to {target}"))?;
    }
    Ok(())
}

/// `cd /mnt/root; mount --move . /; chroot .; cd /` (pivot_root does not work on an initramfs).
pub fn switch_root() -> Result<()> {
    console::debug(|| format!("switching root to {NEW_ROOT}"));
    nix::unistd::chdir(NEW_ROOT).with_context(|| format!("entering {NEW_ROOT}"))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .with_context(|| format!("moving {NEW_ROOT} to /"))?;
    nix::unistd::chroot(".").context("chroot into the new root")?;
    nix::unistd::chdir("/").context("entering the new root")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_name_the_three_dirs() {
        assert_eq!(
            overlay_options("/mnt/lower", "/mnt/rw/upper", "/mnt/rw/work"),
            "lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work"
        );
    }

    #[test]
    fn waiting_returns_once_paths_appear_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let late = dir.path().join("vdc");
        let late_str = late.to_str().unwrap().to_owned();
        let maker = std::thread::spawn({
            let late = late.clone();
            move || {
                std::thread::sleep(Duration::from_millis(50));
                std::fs::write(late, b"").unwrap();
            }
        });
        let here = dir.path().to_str().unwrap();
        wait_for(&[here, &late_str], Duration::from_secs(5)).unwrap();
        maker.join().unwrap();

        let gone = dir.path().join("vdz");
        let start = Instant::now();
        let e = wait_for(&[here, gone.to_str().unwrap()], Duration::from_millis(100))
            .unwrap_err()
            .to_string();
        assert!(start.elapsed() < Duration::from_secs(2));
        let tail = format!(": {} did not appear within 0.1s", gone.display());
        assert!(e.ends_with(&tail), "{e}");
    }

    #[test]
    fn mountpoints_replace_symlinks_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("run");
        std::os::unix::fs::symlink("/nonexistent", &link).unwrap();
        prepare_mountpoint(&link).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_dir());
        let file = dir.path().join("proc");
        std::fs::write(&file, b"x").unwrap();
        prepare_mountpoint(&file).unwrap();
        assert!(file.is_dir());
        let nested = dir.path().join("a/b");
        prepare_mountpoint(&nested).unwrap();
        assert!(nested.is_dir());
        prepare_mountpoint(&nested).unwrap();
    }
}
