//! What both drivers share to confine a VMM: the unprivileged ids it runs as and the
//! guest's files in its chroot, under the names both drivers open them by.
//!
//! Firecracker's jailer and the QEMU driver's launcher both drop the VMM to ids of its own,
//! [`VM_ID_BASE`] plus the VM's slot ([`vmm_ids`]; `with_id_base` on either driver moves
//! the base), and show
//! it a chroot holding the kernel, the initramfs and the three disks placed by
//! [`place_files`]: hard links, or copies where a link cannot be made or the VMM could not
//! read the original. The writable disk is handed to the VMM's uid.

use std::path::Path;

use crate::{VmSpec, VmmError};

/// The first of the VMMs' ids: the VM in slot `n` ([`VmSpec::slot`]) runs as uid and gid
/// `VM_ID_BASE + n`, ids of its own, so no VMM can signal, trace or read another's files.
/// `0x7A77_0000` is in the range systemd leaves unused (above the container ranges, which
/// end at `0x6FFF_FFFF`, below `0x7FFE_0000` and 2³¹), so no login, system, dynamic or
/// container user of the host has these ids (drivers' `with_id_base` moves them).
pub const VM_ID_BASE: u32 = 0x7A77_0000;
/// How many VMs a node runs at once, at most: one id each from the base.
pub const VM_SLOTS: u32 = 1 << 16;

/// Inside the chroot: where the guest's files are placed.
pub(crate) const KERNEL: &str = "/vmlinux";
pub(crate) const INITRD: &str = "/initrd";
pub(crate) const ROOT_DISK: &str = "/root.ext4";
pub(crate) const SCRATCH_DISK: &str = "/scratch.ext4";
pub(crate) const CONFIG_DISK: &str = "/config.img";
pub(crate) const CACHE_DISK: &str = "/cache.ext4";

/// The uid and gid (equal) of the VMM of `spec` for drivers whose ids start at `base`.
pub(crate) fn vmm_ids(base: u32, spec: &VmSpec) -> Result<(u32, u32), VmmError> {
    if spec.slot >= VM_SLOTS {
        return Err(VmmError::InvalidSlot(spec.slot));
    }
    let id = base
        .checked_add(spec.slot)
        .ok_or(VmmError::InvalidSlot(spec.slot))?;
    Ok((id, id))
}

/// Puts the guest's files into the chroot under [`KERNEL`], [`INITRD`] and the disk names.
/// The writable disk is handed to the VMM's uid (it is this VM's own file).
pub(crate) fn place_files(
    chroot: &Path,
    spec: &VmSpec,
    (uid, gid): (u32, u32),
) -> Result<(), VmmError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| VmmError::Io { path, source }
    };
    std::fs::create_dir_all(chroot).map_err(io(chroot))?;
    for (from, to, writable) in [
        (&spec.kernel, KERNEL, false),
        (&spec.initramfs, INITRD, false),
        (&spec.root_disk, ROOT_DISK, false),
        (&spec.scratch_disk, SCRATCH_DISK, true),
        (&spec.config_disk, CONFIG_DISK, false),
    ] {
        let to = chroot.join(&to[1..]);
        link_or_copy(from, &to, (uid, gid), writable).map_err(io(from))?;
    }
    if let Some(cache) = &spec.cache_disk {
        let to = chroot.join(&CACHE_DISK[1..]);
        link_or_copy(cache, &to, (uid, gid), true).map_err(io(cache))?;
    }
    Ok(())
}

/// Hard-links `from` to `to` (a copy, sparse, across filesystems). A read-only file the
/// VMM could not read is copied and the copy given to it, so the original stays as it is.
pub(crate) fn link_or_copy(
    from: &Path,
    to: &Path,
    (uid, gid): (u32, u32),
    writable: bool,
) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(from)?;
    let readable_by_vmm =
        meta.mode() & 0o004 != 0 || (meta.uid() == uid && meta.mode() & 0o400 != 0);
    let copied = if writable || readable_by_vmm {
        match std::fs::hard_link(from, to) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
                copy_sparse(from, to)?;
                true
            }
            Err(e) => return Err(e),
        }
    } else {
        copy_sparse(from, to)?;
        true
    };
    if writable || copied {
        std::os::unix::fs::chown(to, Some(uid), Some(gid))?;
        let mode = if writable { 0o600 } else { 0o400 };
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Copies only the data of a sparse file (a 1 GiB scratch disk holds a few MiB). The copy
/// is created owner-only (0600): the config disk holds secrets, and no one may read the
/// copy in the moment before its owner and mode are set.
pub(crate) fn copy_sparse(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::SeekFrom as Seek2;
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let mut src = std::fs::File::open(from)?;
    let len = src.metadata()?.len();
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(to)?;
    dst.set_len(len)?;
    let mut pos = 0;
    while pos < len {
        let data = match rustix::fs::seek(&src, Seek2::Data(pos)) {
            Ok(data) => data,
            Err(rustix::io::Errno::NXIO) => break,
            Err(rustix::io::Errno::INVAL) if pos == 0 => {
                // No SEEK_DATA on this filesystem: a plain copy.
                drop(dst);
                std::fs::copy(from, to)?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let hole = rustix::fs::seek(&src, Seek2::Hole(data))?.min(len);
        src.seek(SeekFrom::Start(data))?;
        dst.seek(SeekFrom::Start(data))?;
        std::io::copy(&mut (&mut src).take(hole - data), &mut dst)?;
        pos = hole;
    }
    dst.sync_all()
}

/// Mount points at or below `dir` in this process's mount namespace, from
/// `/proc/self/mountinfo` (field 5, octal escapes decoded). A jail is removed only when
/// this is empty: removing a tree with a bind mount of the host's `/usr` in it would
/// empty the host's `/usr`.
pub(crate) fn mounts_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    mount_points(&mountinfo)
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect()
}

fn mount_points(mountinfo: &str) -> Vec<std::path::PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|escaped| {
            let bytes = escaped.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                let octal = bytes.get(i + 1..i + 4).and_then(|d| {
                    std::str::from_utf8(d)
                        .ok()
                        .and_then(|d| u8::from_str_radix(d, 8).ok())
                });
                match (bytes[i], octal) {
                    (b'\\', Some(b)) => {
                        out.push(b);
                        i += 4;
                    }
                    (b, _) => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            std::path::PathBuf::from(std::ffi::OsString::from_vec(out))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn every_slot_has_ids_of_its_own_and_none_is_a_hosts_user() {
        let spec = |slot| VmSpec {
            slot,
            ..crate::testing::sample_spec()
        };
        let ids = |slot| vmm_ids(VM_ID_BASE, &spec(slot));
        assert_eq!(ids(0).unwrap(), (VM_ID_BASE, VM_ID_BASE));
        assert_eq!(ids(7).unwrap(), (VM_ID_BASE + 7, VM_ID_BASE + 7));
        assert_ne!(ids(1).unwrap(), ids(2).unwrap());
        let last = ids(VM_SLOTS - 1).unwrap().0;
        // Above systemd's container ranges, below its foreign range and 2^31.
        assert!(VM_ID_BASE > 0x6FFF_FFFF && last < 0x7FFE_0000, "{last:#x}");
        assert!(matches!(ids(VM_SLOTS), Err(VmmError::InvalidSlot(s)) if s == VM_SLOTS));
        assert!(vmm_ids(u32::MAX, &spec(1)).is_err(), "no wrap to root");
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        for line in passwd.lines() {
            let uid: u32 = line
                .split(':')
                .nth(2)
                .and_then(|u| u.parse().ok())
                .unwrap_or(0);
            assert!(
                !(VM_ID_BASE..=last).contains(&uid),
                "a user of this host has a VMM's id: {line}"
            );
        }
    }

    #[test]
    fn mount_points_are_decoded() {
        let info = "22 1 8:1 / / rw - ext4 /dev/vda rw\n\
                    90 22 8:1 /usr /tmp/run/jail/usr ro,nosuid - ext4 /dev/vda rw\n\
                    91 22 0:5 / /tmp/a\\040b rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mount_points(info),
            [
                Path::new("/"),
                Path::new("/tmp/run/jail/usr"),
                Path::new("/tmp/a b")
            ]
        );
        let here = mounts_under(Path::new("/"));
        assert!(here.contains(&Path::new("/").to_path_buf()), "{here:?}");
    }

    #[test]
    fn files_are_hard_linked_or_copied_sparsely_and_the_scratch_disk_is_the_vmms() {
        use std::io::{Seek, SeekFrom, Write};
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut scratch = std::fs::File::create(d.join("rw.ext4")).unwrap();
        scratch.set_len(64 << 20).unwrap();
        scratch.seek(SeekFrom::Start(32 << 20)).unwrap();
        scratch.write_all(b"data in the middle").unwrap();
        drop(scratch);
        for f in ["vmlinux", "initrd", "root.ext4", "config.img"] {
            std::fs::write(d.join(f), f).unwrap();
        }
        // Not readable by the VMM's uid: copied, never chowned in place.
        std::fs::set_permissions(d.join("config.img"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let spec = VmSpec {
            kernel: d.join("vmlinux"),
            initramfs: d.join("initrd"),
            root_disk: d.join("root.ext4"),
            scratch_disk: d.join("rw.ext4"),
            config_disk: d.join("config.img"),
            cache_disk: None,
            net: None,
            run_dir: d.join("run"),
            ..crate::testing::sample_spec()
        };
        let chroot = d.join("jail/root");
        place_files(&chroot, &spec, (10_000, 10_001)).unwrap();
        let meta = |p: &Path| std::fs::metadata(p).unwrap();
        assert_eq!(
            meta(&chroot.join("root.ext4")).ino(),
            meta(&d.join("root.ext4")).ino()
        );
        assert_eq!(
            meta(&chroot.join("vmlinux")).ino(),
            meta(&d.join("vmlinux")).ino()
        );
        let scratch = meta(&chroot.join("scratch.ext4"));
        assert_eq!((scratch.uid(), scratch.gid()), (10_000, 10_001));
        let config = meta(&chroot.join("config.img"));
        assert_ne!(config.ino(), meta(&d.join("config.img")).ino());
        assert_eq!((config.uid(), config.mode() & 0o777), (10_000, 0o400));
        assert_eq!(
            meta(&d.join("config.img")).uid(),
            0,
            "the original is untouched"
        );
        assert_eq!(
            std::fs::read(chroot.join("config.img")).unwrap(),
            b"config.img"
        );

        // The copy across filesystems keeps holes.
        let copy = d.join("copy.ext4");
        copy_sparse(&d.join("rw.ext4"), &copy).unwrap();
        let m = meta(&copy);
        assert_eq!(m.mode() & 0o777, 0o600, "owner-only from its creation");
        assert_eq!(m.len(), 64 << 20);
        assert!(m.blocks() * 512 < 4 << 20, "sparse: {} blocks", m.blocks());
        let bytes = std::fs::read(&copy).unwrap();
        assert_eq!(&bytes[32 << 20..(32 << 20) + 18], b"data in the middle");
        assert_eq!(bytes, std::fs::read(d.join("rw.ext4")).unwrap());

        // Across filesystems (/dev/shm is a tmpfs) the link falls back to a sparse copy.
        let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        if meta(shm.path()).dev() == meta(d).dev() {
            return;
        }
        let elsewhere = shm.path().join("rw.ext4");
        copy_sparse(&d.join("rw.ext4"), &elsewhere).unwrap();
        let to = chroot.join("other.ext4");
        link_or_copy(&elsewhere, &to, (10_000, 10_001), true).unwrap();
        let m = meta(&to);
        assert_ne!(m.dev(), meta(&elsewhere).dev());
        assert_eq!((m.uid(), m.len()), (10_000, 64 << 20));
        assert!(m.blocks() * 512 < 4 << 20, "sparse: {} blocks", m.blocks());
    }
}
