use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeitwork_core::guest::{GuestConfig, Interface};

use super::*;
use crate::NetAttachment;
use crate::console::VmExit;
use crate::testing::{blank_disks, guest_files, joined, sample_spec, static_bin};

fn driver() -> Qemu {
    Qemu {
        binary: BINARY.into(),
        kvm: false,
        id_base: 10_000,
    }
}

/// The sample VM, its root disk's path with a comma (which QEMU's option syntax escapes).
fn spec() -> VmSpec {
    VmSpec {
        root_disk: "/d/root,1.ext4".into(),
        ..sample_spec()
    }
}

/// Like Firecracker, QEMU opens its tap in the instance's namespace, never on the host.
#[test]
fn a_tap_on_the_host_is_refused_with_what_to_do() {
    let q = driver();
    assert!(q.wants_own_netns());
    assert!(spec().check_net(&q).is_ok());
    let mut on_host = spec();
    on_host.net.as_mut().unwrap().netns = None;
    assert_eq!(
        on_host.check_net(&q).unwrap_err().to_string(),
        "the qemu-tcg driver runs each VM in a network namespace of its own: create the \
         tap in one (NetAttachment::netns; the agent follows Vmm::wants_own_netns)"
    );
}

#[test]
fn tcg_and_kvm_command_lines() {
    let q = driver();
    let line = joined(&q.args(&spec()));
    assert!(
        line.starts_with(
            "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny \
             -M microvm,x-option-roms=off -nodefaults -no-user-config"
        ),
        "{line}"
    );
    assert!(
        line.contains("-accel tcg,tb-size=64") && !line.contains("kvm"),
        "{line}"
    );
    assert!(line.contains("-m 256 -smp 2"));
    assert!(
        line.contains("file=/d/root,,1.ext4"),
        "commas are escaped: {line}"
    );
    let order: Vec<_> = ["drive=root", "drive=scratch", "drive=config"]
        .iter()
        .map(|d| line.find(d).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "disks keep the vda/vdb/vdc order"
    );
    assert!(line.contains("tap,id=net0,ifname=tap0") && line.contains("mac=02:00:00:00:00:01"));
    assert!(
        line.contains("-qmp unix:/run/zw/i-1/qmp.sock,server=on,wait=off"),
        "{line}"
    );
    // The exec channel: a virtio-serial port, its socket beside QMP's.
    assert!(
        line.contains(
            "-device virtio-serial-device \
             -chardev socket,id=exec,server=on,wait=off,path=/run/zw/i-1/exec.sock \
             -device virtserialport,chardev=exec,name=zeitwork.exec"
        ),
        "{line}"
    );
    assert_eq!(
        Qemu::exec_channel(Path::new("/var/lib/zw/i-1")),
        Path::new("/var/lib/zw/i-1/jail/run/exec.sock")
    );
    let line = joined(&q.with_kvm(true).args(&spec()));
    assert!(
        line.contains("-accel kvm -cpu host,-arch-capabilities"),
        "{line}"
    );
}

/// The launcher: into the instance's network namespace, a mount namespace of its own, the
/// cgroup, the jail, the VMM's ids without capabilities, an empty environment, and QEMU
/// opening the guest's files by their names in the jail.
#[test]
fn the_launcher_confines_qemu() {
    let q = driver();
    let procs = [
        PathBuf::from("/sys/fs/cgroup/memory/zeitwork/i-1/cgroup.procs"),
        PathBuf::from("/sys/fs/cgroup/cpu/zeitwork/i-1/cgroup.procs"),
    ];
    let binds = [PathBuf::from("/usr")];
    let jail = Path::new("/run/zw/i-1/jail");
    let binary = Path::new("/usr/bin/qemu-system-x86_64");
    let argv = q.launcher(
        &spec(),
        q.ids(&spec()).unwrap(),
        binary,
        jail,
        &procs,
        &binds,
    );
    let line = joined(&argv);
    let (launcher, qemu) = line.split_once(" /usr/bin/qemu-system-x86_64 ").unwrap();
    assert_eq!(
        launcher,
        format!(
            "nsenter --net=/var/run/netns/zwvm-i-1 -- unshare --mount --propagation private \
             -- /bin/sh -c {LAUNCH_SCRIPT} zeitwork-vmm \
             /sys/fs/cgroup/memory/zeitwork/i-1/cgroup.procs \
             /sys/fs/cgroup/cpu/zeitwork/i-1/cgroup.procs -- /run/zw/i-1/jail /usr -- \
             chroot /run/zw/i-1/jail setpriv --reuid=10001 --regid=10001 --clear-groups \
             --no-new-privs --inh-caps=-all --bounding-set=-all -- env -i"
        )
    );
    assert_eq!(
        qemu,
        joined(&q.args(&VmSpec {
            kernel: "/vmlinux".into(),
            initramfs: "/initrd".into(),
            root_disk: "/root.ext4".into(),
            scratch_disk: "/scratch.ext4".into(),
            config_disk: "/config.img".into(),
            cache_disk: None,
            run_dir: "/run".into(),
            ..spec()
        }))
    );
    assert!(qemu.contains("-qmp unix:/run/qmp.sock,"), "{qemu}");
    assert!(!qemu.contains("id=cache"), "{qemu}");
    // A builder's layer cache: a fourth, writable disk (vdd) at its place in the jail.
    let cached = VmSpec {
        cache_disk: Some("/var/lib/zw/cache.ext4".into()),
        ..spec()
    };
    let args = joined(&q.args(&Qemu::jailed(&cached)));
    assert!(
        args.contains("-drive id=cache,format=raw,if=none,readonly=off,file=/cache.ext4"),
        "{args}"
    );
    // Without a NIC: an empty network namespace rather than the host's.
    let no_net = VmSpec {
        net: None,
        ..spec()
    };
    let line = joined(&q.launcher(&no_net, (1, 1), binary, jail, &procs, &binds));
    assert!(
        line.starts_with("unshare --mount --propagation private --net -- /bin/sh"),
        "{line}"
    );
}

/// The jail holds the guest's files (the writable disk and a copy of the unreadable config
/// disk are the VMM's), its run dir and device nodes; a leftover jail is replaced.
#[test]
fn the_jail_holds_only_what_qemu_opens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    blank_disks(d);
    for f in ["vmlinux", "initrd"] {
        std::fs::write(d.join(f), f).unwrap();
    }
    let config = std::fs::File::create(d.join("config.img")).unwrap();
    config
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .unwrap();
    let spec = VmSpec {
        kernel: d.join("vmlinux"),
        initramfs: d.join("initrd"),
        root_disk: d.join("root.ext4"),
        scratch_disk: d.join("rw.ext4"),
        config_disk: d.join("config.img"),
        cache_disk: None,
        run_dir: d.join("run"),
        ..spec()
    };
    let jail = Qemu::jail_dir(&spec.run_dir);
    std::fs::create_dir_all(jail.join("stale")).unwrap();
    let binds = build_jail(&jail, &spec, (10_000, 10_001), false).unwrap();
    assert_eq!(binds[0], Path::new("/usr"));
    let mut names: Vec<String> = std::fs::read_dir(&jail)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected = vec![
        "config.img",
        "dev",
        "initrd",
        "root.ext4",
        "run",
        "scratch.ext4",
        "usr",
        "vmlinux",
    ];
    // Symlinks into usr on merged-/usr hosts, else mount points.
    for dir in SYSTEM_DIRS {
        if dir != "usr" && Path::new("/").join(dir).exists() {
            expected.push(dir);
        }
    }
    expected.sort();
    assert_eq!(names, expected);
    let meta = |p: &str| std::fs::symlink_metadata(jail.join(p)).unwrap();
    assert_eq!(
        (meta("run").uid(), meta("run").mode() & 0o777),
        (10_000, 0o700)
    );
    assert_eq!(meta("scratch.ext4").uid(), 10_000);
    assert_eq!(
        (meta("config.img").uid(), meta("config.img").mode() & 0o777),
        (10_000, 0o400)
    );
    let tun = meta("dev/net/tun");
    assert_eq!(
        (tun.uid(), tun.gid(), tun.mode() & 0o777, tun.rdev()),
        (
            10_000,
            10_001,
            0o600,
            std::fs::metadata("/dev/net/tun").unwrap().rdev()
        )
    );
    assert_eq!(meta("dev/null").mode() & 0o777, 0o666);
    assert!(!jail.join("dev/kvm").exists(), "no KVM, no /dev/kvm");
    assert!(
        std::fs::read_dir(jail.join("usr"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// QEMU and a VM of the real guest with blank disks in `d` (no NIC): QEMU missing fails.
fn blank_vm(d: &Path, name: &str) -> (Qemu, VmSpec) {
    let qemu = Qemu::detect().expect("QEMU is installed (scripts/setup.sh installs it)");
    let (kernel, initramfs) = guest_files();
    blank_disks(d);
    let spec = VmSpec {
        name: format!("zw-qemu-{name}-{}", std::process::id()),
        vcpus: 1,
        memory_mb: 128,
        cpu_weight: 100,
        kernel,
        initramfs,
        root_disk: d.join("root.ext4"),
        scratch_disk: d.join("rw.ext4"),
        config_disk: d.join("config.img"),
        cache_disk: None,
        net: None,
        run_dir: d.join("run"),
        slot: 0,
    };
    (qemu, spec)
}

/// That guest boots here with TCG: init reports that the config disk has no zeitwork
/// magic, the verdict `firecracker::tests::real_firecracker_under_the_jailer` expects
/// where KVM can run Linux guests.
#[tokio::test]
async fn real_blank_disks_boot_to_inits_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let (qemu, spec) = blank_vm(dir.path(), "test");
    let vm = qemu.launch(&spec).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(180), vm.wait())
        .await
        .expect("init reports within 180 s")
        .unwrap();
    assert!(
        matches!(&exit, VmExit::InitFailed(reason) if reason.contains("magic")),
        "{exit:?}"
    );
    assert!(!Qemu::jail_dir(&spec.run_dir).exists(), "jail removed");
}

/// A VM whose agent died (here: its handle forgotten, so nothing kills or reaps the
/// VMM) is adopted from its run dir: waited for through a pidfd, its verdict read from
/// the console file, its cgroup, jail and record removed.
#[tokio::test]
async fn real_vm_is_adopted_from_its_run_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (qemu, spec) = blank_vm(dir.path(), "adopt");
    let vm = qemu.launch(&spec).await.unwrap();
    let pid = vm.pid();
    std::mem::forget(vm);
    // The VMM joins its cgroup right after the spawn (see `LAUNCH_SCRIPT`).
    while !Cgroup::ours()
        .iter()
        .any(|(name, cg)| *name == spec.name && cg.pids().contains(&pid))
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let adopted = RunningVm::adopt(&spec.run_dir)
        .await
        .unwrap()
        .expect("the VMM runs");
    assert_eq!(adopted.pid(), pid);
    let exit = tokio::time::timeout(Duration::from_secs(180), adopted.wait())
        .await
        .expect("init reports within 180 s")
        .unwrap();
    assert!(
        matches!(&exit, VmExit::InitFailed(reason) if reason.contains("magic")),
        "{exit:?}"
    );
    assert!(!Cgroup::ours().iter().any(|(name, _)| *name == spec.name));
    assert!(!Qemu::jail_dir(&spec.run_dir).exists(), "jail removed");
    assert!(RunningVm::adopt(&spec.run_dir).await.unwrap().is_none());
}

/// An instance's link and namespace (made by the agent's code, `zeitwork_net`), and its
/// app port in the node's firewall, removed however the test ends.
struct NetGuard(zeitwork_net::Link);

impl Drop for NetGuard {
    fn drop(&mut self) {
        let ip = |args: &[&str]| std::process::Command::new("ip").args(args).output();
        let _ = ip(&["link", "delete", &self.0.name]);
        if let Some(netns) = &self.0.netns {
            let _ = ip(&["netns", "delete", netns.name()]);
        }
        let (a4, a6) = (self.0.addrs.guest4, self.0.addrs.guest6);
        for (set, addr) in [("app4", a4.to_string()), ("app6", a6.to_string())] {
            let _ = std::process::Command::new("nft")
                .args(["delete", "element", "inet", zeitwork_net::TABLE, set])
                .arg(format!("{{ {addr} . 8080 }}"))
                .output();
        }
    }
}

/// The `Name:` line of `/proc/<pid>/status`, split into its fields.
fn status_fields(status: &str, name: &str) -> Vec<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The VMM `pid` runs as `(uid, gid)` with no groups, capabilities or environment, under
/// seccomp (mode 2, a filter) with `no_new_privs`, in `jail` as its root and `netns`.
fn assert_confined(pid: u32, (uid, gid): (u32, u32), jail: &Path, netns: &Path) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    eprintln!("VMM {pid}:\n{status}");
    assert_ne!(uid, 0);
    assert_ne!(gid, 0);
    assert_eq!(
        status_fields(&status, "Uid"),
        vec![uid.to_string(); 4],
        "{status}"
    );
    assert_eq!(
        status_fields(&status, "Gid"),
        vec![gid.to_string(); 4],
        "{status}"
    );
    assert!(status_fields(&status, "Groups").is_empty(), "{status}");
    assert!(status.contains("\nSeccomp:\t2\n"), "{status}");
    assert!(status.contains("\nNoNewPrivs:\t1\n"), "{status}");
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            status_fields(&status, caps),
            ["0000000000000000"],
            "{status}"
        );
    }
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environ.is_empty(),
        "empty environment: {:?}",
        String::from_utf8_lossy(&environ)
    );
    let root = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
    assert_eq!(root, jail, "chrooted into its jail");
    let mnt = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).unwrap();
    assert_ne!(
        mnt(&pid.to_string()),
        mnt("self"),
        "a mount namespace of its own"
    );
    let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let own = std::fs::metadata(netns).unwrap().ino();
    assert_eq!(net, Path::new(&format!("net:[{own}]")), "in its netns");
}

/// GET / from the guest over its link, retried until the app answers (TCG is slow).
async fn get(addr: std::net::Ipv4Addr, within: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let connect = tokio::net::TcpStream::connect((addr, 8080));
        if let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
            let request = "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
            s.write_all(request.as_bytes()).await.ok()?;
            let mut body = String::new();
            s.read_to_string(&mut body).await.ok()?;
            return Some(body);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// The whole confinement on a real guest: QEMU (missing, the test fails) runs unprivileged
/// under seccomp with an empty environment, chrooted into its jail in a mount namespace of
/// its own and in the instance's network namespace, and the guest still boots, serves the
/// example app to the host through the tap QEMU opened there, and stops gracefully through
/// the QMP socket in the jail. Afterwards the jail and cgroup are gone.
#[tokio::test]
async fn real_qemu_is_confined_and_its_guest_serves() {
    let qemu = Qemu::detect().expect("QEMU is installed (scripts/setup.sh installs it)");
    let (kernel, initramfs) = guest_files();
    let hello = static_bin("zeitwork-example-hello", "hello");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The image: the example app alone; the writable layer; the config (root-only, as
    // the agent writes it, so the jail gets a copy the VMM may read).
    let image = d.join("image");
    std::fs::create_dir(&image).unwrap();
    std::fs::copy(&hello, image.join("hello")).unwrap();
    for (disk, mb, from) in [("root.ext4", 32, Some(&image)), ("rw.ext4", 32, None)] {
        std::fs::File::create(d.join(disk))
            .unwrap()
            .set_len(mb << 20)
            .unwrap();
        let mut mkfs = std::process::Command::new("mkfs.ext4");
        mkfs.args(["-q", "-F", "-O", "^has_journal"]);
        if let Some(from) = from {
            mkfs.arg("-d").arg(from);
        }
        let out = mkfs
            .arg(d.join(disk))
            .output()
            .expect("mkfs.ext4 (e2fsprogs)");
        assert!(out.status.success(), "{out:?}");
    }
    let index = 32_100 + std::process::id() % 400;
    let name = format!("zw-qemu-confined-{}", std::process::id());
    let prefix = zeitwork_net::NodePrefix::parse("fd7a:7a77:0:fd::/64").unwrap();
    let addrs = zeitwork_net::InstanceAddrs::for_index(prefix, index).unwrap();
    let config = GuestConfig {
        argv: vec!["/hello".into()],
        env: BTreeMap::from([("PORT".into(), "8080".into())]),
        workdir: "/".into(),
        user: "0:0".into(),
        hostname: "confined".into(),
        interfaces: vec![Interface {
            name: "eth0".into(),
            ipv4: Some(format!("{}/31", addrs.guest4)),
            gateway4: Some(addrs.host4.to_string()),
            ipv6: Some(format!("{}/127", addrs.guest6)),
            gateway6: Some(addrs.host6.to_string()),
        }],
        dns: vec![],
        secrets: BTreeMap::new(),
        cache: None,
    };
    std::fs::write(d.join("config.img"), config.encode()).unwrap();
    std::fs::set_permissions(
        d.join("config.img"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let link = zeitwork_net::Link::create(index, addrs, zeitwork_net::Topology::OwnNetns, &name)
        .await
        .unwrap();
    let net = NetGuard(link);
    // Where a node's firewall is installed (by an agent or the e2e tests), the host reaches
    // a guest only at its app port, opened as the agent opens it; elsewhere nothing filters.
    let firewall = zeitwork_net::Firewall::new(prefix);
    let port = zeitwork_net::AppPort { addrs, port: 8080 };
    if let Err(e) = firewall.allow(port).await {
        eprintln!("no node firewall to open the app port in: {e}");
    }
    let netns = net.0.netns.as_ref().expect("a namespace of its own").path();
    let spec = VmSpec {
        name,
        vcpus: 1,
        memory_mb: 128,
        cpu_weight: 100,
        kernel,
        initramfs,
        root_disk: d.join("root.ext4"),
        scratch_disk: d.join("rw.ext4"),
        config_disk: d.join("config.img"),
        cache_disk: None,
        net: Some(NetAttachment {
            tap: net.0.tap().into(),
            mac: net.0.mac.clone(),
            netns: Some(netns.clone()),
        }),
        run_dir: d.join("run"),
        slot: index,
    };
    let jail = Qemu::jail_dir(&spec.run_dir);
    let cgroup_dirs = Cgroup::ours()
        .into_iter()
        .find(|(n, _)| *n == spec.name)
        .map(|(_, cg)| cg.dirs());
    assert!(cgroup_dirs.is_none(), "no cgroup before the launch");

    let vm = qemu.launch(&spec).await.unwrap();
    let pid = vm.pid();
    // QEMU has installed its filter and opened everything once its QMP socket is there.
    let qmp = jail.join("run/qmp.sock");
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while !qmp.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let vmm_log = || std::fs::read_to_string(d.join("run/vmm.log")).unwrap_or_default();
    assert!(ready.is_ok(), "no QMP socket; VMM log:\n{}", vmm_log());
    let ids = qemu.ids(&spec).unwrap();
    assert_eq!(
        ids,
        (crate::VM_ID_BASE + index, crate::VM_ID_BASE + index),
        "its own ids"
    );
    assert_confined(pid, ids, &jail, &netns);
    let in_cgroup = Cgroup::ours()
        .into_iter()
        .find(|(n, _)| *n == spec.name)
        .expect("the VM's cgroup")
        .1;
    assert!(in_cgroup.pids().contains(&pid), "capped by its cgroup");
    let cgroup_dirs = in_cgroup.dirs();

    let body = get(addrs.guest4, Duration::from_secs(120)).await;
    let console = || std::fs::read_to_string(d.join("run/console.log")).unwrap_or_default();
    let body = body.unwrap_or_else(|| {
        panic!(
            "no answer from the guest; console:\n{}\nVMM log:\n{}",
            console(),
            vmm_log()
        )
    });
    assert!(
        body.starts_with("HTTP/1.1 200 OK") && body.contains("Hello from Zeitwork"),
        "{body}"
    );

    // The power button through the jail's QMP socket: init stops the app and reports.
    let exit = tokio::time::timeout(Duration::from_secs(120), vm.stop(Duration::from_secs(60)))
        .await
        .expect("stopped within 120 s")
        .unwrap();
    assert!(
        matches!(exit, VmExit::App(_)),
        "a graceful stop: {exit:?}; console:\n{}",
        console()
    );
    assert!(
        !vmm_log().contains("Failed"),
        "QEMU found all it opens: {}",
        vmm_log()
    );
    assert!(!jail.exists(), "jail removed");
    for cg in &cgroup_dirs {
        assert!(!cg.exists(), "cgroup {} removed", cg.display());
    }
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "VMM reaped");
    assert!(
        std::fs::read_dir("/usr/bin").unwrap().next().is_some(),
        "the host's /usr is intact"
    );
}
