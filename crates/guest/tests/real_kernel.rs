//! Against Debian's real cloud kernel package: downloaded once into
//! `$TMPDIR/zeitwork-guest-test-cache` (or taken from `ZEITWORK_KERNEL_DEB`), so reruns are fast.
//! The QEMU tests boot the extracted kernel under TCG when `qemu-system-x86_64` is installed.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use zeitwork_core::guest::{EXIT_LINE, FAILURE_LINE};
use zeitwork_guest::{
    DEFAULT_KERNEL_PACKAGE, DEFAULT_MODULES, GuestArtifacts, GuestOptions, KERNEL_DEB_ENV,
    KernelSource, apt, cpio, deb, prepare_with, vmlinux,
};

struct Shared {
    cache: PathBuf,
    deb: PathBuf,
    fake_init: PathBuf,
    artifacts: GuestArtifacts,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let cache = std::env::temp_dir().join("zeitwork-guest-test-cache");
        std::fs::create_dir_all(&cache).unwrap();
        let t = Instant::now();
        let deb = match std::env::var_os(KERNEL_DEB_ENV) {
            Some(deb) => PathBuf::from(deb),
            None => apt::fetch(DEFAULT_KERNEL_PACKAGE, &cache.join("debs"))
                .expect("download the kernel package"),
        };
        eprintln!(
            "kernel package {} ready in {:?}",
            deb.display(),
            t.elapsed()
        );
        let fake_init = cache.join("fake-init");
        std::fs::write(
            &fake_init,
            b"not a real init: the tests that boot it only expect a kernel panic\n",
        )
        .unwrap();
        let t = Instant::now();
        let artifacts = prepare_with(&cache, &fake_init, &deb_options(&deb)).expect("prepare");
        eprintln!("shared artifacts ready in {:?}: {artifacts:?}", t.elapsed());
        Shared {
            cache,
            deb,
            fake_init,
            artifacts,
        }
    })
}

fn package() -> &'static deb::KernelPackage {
    static PACKAGE: OnceLock<deb::KernelPackage> = OnceLock::new();
    PACKAGE.get_or_init(|| {
        let t = Instant::now();
        let pkg = deb::read_kernel_package(&shared().deb).expect("read the kernel package");
        eprintln!(
            "read {} ({} modules) in {:?}",
            pkg.release,
            pkg.modules.len(),
            t.elapsed()
        );
        pkg
    })
}

fn deb_options(deb: &Path) -> GuestOptions {
    GuestOptions {
        kernel: KernelSource::Deb(deb.to_owned()),
        ..GuestOptions::default()
    }
}

fn default_modules() -> Vec<String> {
    DEFAULT_MODULES.iter().map(|m| m.to_string()).collect()
}

#[test]
fn deb_parses() {
    let pkg = package();
    assert!(pkg.release.ends_with("-cloud-amd64"), "{}", pkg.release);
    assert!(pkg.vmlinuz.len() > 1 << 20);
    assert!(pkg.modules.len() > 100, "{} modules", pkg.modules.len());
    for name in [
        "virtio",
        "virtio_ring",
        "virtio_mmio",
        "virtio_blk",
        "virtio_net",
        "vsock",
        "overlay",
    ] {
        let m = pkg
            .modules
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert!(
            m.path.starts_with("kernel/") && m.path.ends_with(".ko"),
            "{}",
            m.path
        );
        assert!(m.bytes.starts_with(b"\x7fELF"));
    }
    assert!(pkg.builtin.contains("ext4"), "ext4 is built in");
    assert_eq!(shared().artifacts.kernel_release, pkg.release);
}

#[test]
fn vmlinux_is_an_elf_larger_than_the_bzimage() {
    let pkg = package();
    let payload = vmlinux::bzimage_payload(&pkg.vmlinuz).unwrap();
    assert_eq!(payload[..4], vmlinux::LZ4_LEGACY_MAGIC);
    let t = Instant::now();
    let elf = vmlinux::extract_vmlinux(&pkg.vmlinuz).unwrap();
    eprintln!(
        "vmlinuz {} bytes -> vmlinux {} bytes in {:?}",
        pkg.vmlinuz.len(),
        elf.len(),
        t.elapsed()
    );
    assert!(elf.starts_with(b"\x7fELF"));
    assert!(elf.len() > pkg.vmlinuz.len());
    assert_eq!(std::fs::read(&shared().artifacts.vmlinux).unwrap(), elf);
}

#[test]
fn module_order_puts_dependencies_first() {
    let order: Vec<String> = package()
        .load_order(&default_modules())
        .unwrap()
        .iter()
        .map(|m| zeitwork_guest::modules::name_from_path(&m.path).unwrap())
        .collect();
    eprintln!("load order: {order:?}");
    let pos = |name: &str| {
        order
            .iter()
            .position(|m| m == name)
            .unwrap_or_else(|| panic!("{name} not in {order:?}"))
    };
    for dep in ["virtio", "virtio_ring"] {
        assert!(pos(dep) < pos("virtio_mmio"), "{dep} before virtio_mmio");
        assert!(pos(dep) < pos("virtio_blk"), "{dep} before virtio_blk");
        assert!(pos(dep) < pos("virtio_net"), "{dep} before virtio_net");
    }
    assert!(pos("vsock") < pos("vmw_vsock_virtio_transport"));
    assert!(pos("vmw_vsock_virtio_transport_common") < pos("vmw_vsock_virtio_transport"));
    assert!(pos("overlay") < order.len());
    let unique: std::collections::HashSet<_> = order.iter().collect();
    assert_eq!(unique.len(), order.len(), "no module twice");
}

#[test]
fn missing_module_is_named() {
    let err = package()
        .load_order(&["no_such_module".to_string()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("module no_such_module not found in the kernel package"),
        "{err}"
    );
}

#[test]
fn initramfs_parses_back_and_second_call_is_cached() {
    let shared = shared();
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("zeitwork-init");
    std::fs::write(&init, b"\x7fELF pretend init binary").unwrap();
    let options = deb_options(&shared.deb);

    let t = Instant::now();
    let first = prepare_with(dir.path(), &init, &options).unwrap();
    eprintln!(
        "fresh prepare (read .deb, extract vmlinux, build initramfs): {:?}",
        t.elapsed()
    );
    let mtimes = |a: &GuestArtifacts| -> (SystemTime, SystemTime) {
        (mtime(&a.vmlinux), mtime(&a.initramfs))
    };
    let before = mtimes(&first);

    let t = Instant::now();
    let second = prepare_with(dir.path(), &init, &options).unwrap();
    let cached = t.elapsed();
    eprintln!("cached prepare: {cached:?}");
    assert_eq!(first, second);
    assert_eq!(mtimes(&second), before, "nothing rewritten");
    assert!(
        cached < Duration::from_secs(5),
        "cached call took {cached:?}"
    );

    // A different init binary gives a new initramfs but reuses the kernel.
    std::fs::write(&init, b"\x7fELF another init").unwrap();
    let third = prepare_with(dir.path(), &init, &options).unwrap();
    assert_eq!(third.vmlinux, first.vmlinux);
    assert_eq!(mtime(&third.vmlinux), before.0);
    assert_ne!(third.initramfs, first.initramfs);

    let bytes = std::fs::read(&first.initramfs).unwrap();
    assert_eq!(bytes.len() % 4, 0);
    let entries = cpio::read_archive(&bytes).unwrap();
    let find = |name: &str| {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(find("init").mode, cpio::S_IFREG | 0o755);
    assert_eq!(find("init").data, b"\x7fELF pretend init binary");
    let console = find("dev/console");
    assert_eq!(
        (
            console.mode & 0o170000,
            console.rdev_major,
            console.rdev_minor
        ),
        (cpio::S_IFCHR, 5, 1)
    );
    for d in ["dev", "proc", "sys", "run", "mnt", "etc/zeitwork"] {
        assert_eq!(find(d).mode, cpio::S_IFDIR | 0o755, "{d}");
    }
    let list = String::from_utf8(find("etc/zeitwork/modules").data.clone()).unwrap();
    let release = &first.kernel_release;
    let paths: Vec<&str> = list.lines().collect();
    assert!(paths.len() >= DEFAULT_MODULES.len(), "{paths:?}");
    for path in &paths {
        let module = find(&format!("lib/modules/{release}/{path}"));
        assert_eq!(module.mode, cpio::S_IFREG | 0o644);
        assert!(module.data.starts_with(b"\x7fELF"), "{path}");
    }
    // Only the needed modules are in it.
    let ko_count = entries.iter().filter(|e| e.name.ends_with(".ko")).count();
    assert_eq!(ko_count, paths.len());
    let tail = String::from_utf8_lossy(&bytes[bytes.len() - 128..]).into_owned();
    assert!(tail.contains("TRAILER!!!"));
    eprintln!(
        "initramfs {} bytes, {} entries, modules: {paths:?}",
        bytes.len(),
        entries.len()
    );
}

#[test]
fn apt_source_second_call_is_cached() {
    if std::env::var_os(KERNEL_DEB_ENV).is_some() {
        eprintln!("SKIP: {KERNEL_DEB_ENV} is set, the apt path is not used");
        return;
    }
    let shared = shared();
    let options = GuestOptions::default();
    let first = prepare_with(&shared.cache, &shared.fake_init, &options).unwrap();
    assert_eq!(first, shared.artifacts, "apt picks the same package");
    let before = (mtime(&first.vmlinux), mtime(&first.initramfs));
    let t = Instant::now();
    let second = prepare_with(&shared.cache, &shared.fake_init, &options).unwrap();
    eprintln!(
        "cached prepare with the apt source (apt-cache + apt-get --print-uris + hashing): {:?}",
        t.elapsed()
    );
    assert_eq!(second, first);
    assert_eq!((mtime(&second.vmlinux), mtime(&second.initramfs)), before);
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// Boots QEMU (TCG) and reads the serial console until `done` matches a line or the time is up.
/// Returns the console and whether `done` matched; QEMU is killed in any case.
fn boot(
    vmlinux: &Path,
    initramfs: Option<&Path>,
    append: &str,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> (String, bool) {
    // Without it the kernel hangs calibrating its TSC when the host is busy (see `tsc`).
    let append = [append.to_owned()]
        .into_iter()
        .chain(zeitwork_vmm::tcg_kernel_args())
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-M",
        "microvm",
        "-accel",
        "tcg",
        "-m",
        "256",
        "-nodefaults",
        "-no-user-config",
    ])
    .args([
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
    ])
    .arg(vmlinux)
    .args(["-append", &append])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(initramfs) = initramfs {
        cmd.arg("-initrd").arg(initramfs);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn qemu-system-x86_64");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    for stream in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(stream);
            let mut line = Vec::new();
            while reader
                .read_until(b'\n', &mut line)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                let _ = tx.send(String::from_utf8_lossy(&line).trim_end().to_owned());
                line.clear();
            }
        });
    }
    drop(tx);
    let mut console = String::new();
    let mut matched = false;
    while let Some(left) = timeout.checked_sub(started.elapsed()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                console.push_str(&line);
                console.push('\n');
                if done(&line) {
                    matched = true;
                    break;
                }
            }
            Err(_) => break, // timed out, or QEMU exited
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("qemu ran {:?} (matched: {matched})", started.elapsed());
    (console, matched)
}

fn have_qemu() -> bool {
    let found = Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIP: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
    }
    found
}

#[test]
fn extracted_kernel_boots_to_the_root_fs_panic() {
    if !have_qemu() {
        return;
    }
    let artifacts = &shared().artifacts;
    let t = Instant::now();
    let (console, matched) = boot(
        &artifacts.vmlinux,
        None,
        "console=ttyS0 reboot=k panic=-1",
        Duration::from_secs(60),
        |line| line.contains("Kernel panic - not syncing"),
    );
    eprintln!("boot to panic: {:?}", t.elapsed());
    let tail: String = console
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        matched,
        "no kernel panic within 60 s; console tail:\n{tail}"
    );
    assert!(
        console.contains("Linux version"),
        "no banner; console:\n{tail}"
    );
    assert!(
        console.contains(&artifacts.kernel_release),
        "banner names another release:\n{tail}"
    );
    assert!(
        console.contains("VFS: Unable to mount root fs"),
        "unexpected panic:\n{tail}"
    );
}

#[test]
fn zeitwork_init_runs_from_the_initramfs() {
    let Some(init) = std::env::var_os("ZEITWORK_INIT_BIN") else {
        eprintln!(
            "SKIP: set ZEITWORK_INIT_BIN to a built zeitwork-init to boot it from the initramfs"
        );
        return;
    };
    if !have_qemu() {
        return;
    }
    let shared = shared();
    let artifacts =
        prepare_with(&shared.cache, Path::new(&init), &deb_options(&shared.deb)).unwrap();
    let (console, matched) = boot(
        &artifacts.vmlinux,
        Some(&artifacts.initramfs),
        "console=ttyS0 reboot=k panic=-1",
        Duration::from_secs(120),
        |line| line.contains(FAILURE_LINE) || line.contains(EXIT_LINE),
    );
    assert!(
        matched,
        "zeitwork-init printed nothing; console:\n{console}"
    );
    assert!(
        !console.contains("Unknown symbol"),
        "a module was loaded before its dependency:\n{console}"
    );
    assert!(!console.contains("Kernel panic"), "{console}");
}
