use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::NetAttachment;
use crate::console::VmExit;
use crate::firecracker::api::tests::stand_in;
use crate::testing::{blank_disks, guest_files, joined, sample_spec};

fn driver(version: CgroupVersion) -> Firecracker {
    Firecracker {
        firecracker: "/opt/fc/firecracker".into(),
        jailer: "/opt/fc/jailer".into(),
        exec_name: "firecracker".into(),
        chroot_base: "/srv/jailer".into(),
        id_base: 10_000,
        cgroup_version: version,
    }
}

fn spec() -> VmSpec {
    VmSpec {
        cpu_weight: 200,
        ..sample_spec()
    }
}

#[test]
fn jailer_command_lines_for_cgroup_v1_and_v2() {
    let limit = (256 + OVERHEAD_MB) << 20;
    assert_eq!(
        joined(&driver(CgroupVersion::V1).jailer_args(&spec(), (10_001, 10_001), true)),
        format!(
            "--id i-1 --exec-file /opt/fc/firecracker --uid 10001 --gid 10001 \
             --chroot-base-dir /srv/jailer --netns /var/run/netns/zwvm-i-1 \
             --cgroup-version 1 --parent-cgroup zeitwork \
             --cgroup memory.limit_in_bytes={limit} --cgroup memory.memsw.limit_in_bytes={limit} \
             --cgroup cpu.shares=2048 \
             -- --api-sock /run/firecracker.socket --log-path /firecracker.log"
        )
    );
    assert_eq!(
        joined(&driver(CgroupVersion::V2).jailer_args(&spec(), (10_001, 10_001), false)),
        format!(
            "--id i-1 --exec-file /opt/fc/firecracker --uid 10001 --gid 10001 \
             --chroot-base-dir /srv/jailer --netns /var/run/netns/zwvm-i-1 \
             --cgroup-version 2 --parent-cgroup zeitwork \
             --cgroup memory.max={limit} --cgroup cpu.weight=200 \
             -- --api-sock /run/firecracker.socket --log-path /firecracker.log"
        )
    );
    let d = driver(CgroupVersion::V1);
    assert_eq!(
        d.chroot("i-1"),
        Path::new("/srv/jailer/firecracker/i-1/root")
    );
    // Without a NIC there is no namespace to join.
    let no_net = VmSpec {
        net: None,
        ..spec()
    };
    assert!(!joined(&d.jailer_args(&no_net, (1, 1), true)).contains("--netns"));
    // Each VM its own ids: the base plus its slot.
    assert_eq!(d.ids(&spec()).unwrap(), (10_001, 10_001));
    let other = VmSpec { slot: 2, ..spec() };
    assert_eq!(d.ids(&other).unwrap(), (10_002, 10_002));
}

/// Firecracker opens its tap in the namespace it runs in, never on the host.
#[test]
fn a_tap_on_the_host_is_refused_with_what_to_do() {
    let d = driver(CgroupVersion::V1);
    assert!(d.wants_own_netns());
    assert!(spec().check_net(&d).is_ok());
    assert!(
        VmSpec {
            net: None,
            ..spec()
        }
        .check_net(&d)
        .is_ok()
    );
    let mut on_host = spec();
    on_host.net.as_mut().unwrap().netns = None;
    let err = on_host.check_net(&d).unwrap_err().to_string();
    assert_eq!(
        err,
        "the firecracker driver runs each VM in a network namespace of its own: create the \
         tap in one (NetAttachment::netns; the agent follows Vmm::wants_own_netns)"
    );
}

#[test]
fn requests_configure_the_vm_with_disks_in_guest_order() {
    let requests = Firecracker::requests(&spec());
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/machine-config",
            "/boot-source",
            "/drives/root",
            "/drives/scratch",
            "/drives/config",
            "/network-interfaces/eth0"
        ]
    );
    assert_eq!(
        requests[0].body,
        json!({"vcpu_count": 2, "mem_size_mib": 256})
    );
    assert_eq!(
        requests[1].body,
        json!({
            "kernel_image_path": "/vmlinux",
            "initrd_path": "/initrd",
            "boot_args": "console=ttyS0 reboot=k panic=1 pci=off quiet zeitwork.shutdown=reboot",
        })
    );
    let read_only: Vec<bool> = requests[2..5]
        .iter()
        .map(|r| r.body["is_read_only"].as_bool().unwrap())
        .collect();
    assert_eq!(read_only, [true, false, true]);
    // A builder's layer cache comes fourth (vdd), writable.
    let cached = Firecracker::requests(&VmSpec {
        cache_disk: Some("/var/lib/zw/cache.ext4".into()),
        ..spec()
    });
    let cache = cached.iter().find(|r| r.path == "/drives/cache").unwrap();
    assert_eq!(cache.body["path_on_host"], "/cache.ext4");
    assert_eq!(cache.body["is_read_only"], false);
    assert_eq!(cached[5].path, "/drives/cache", "after the config disk");
    assert!(
        requests[2..5]
            .iter()
            .all(|r| r.body["is_root_device"] == json!(false)),
        "the guest boots from the initramfs"
    );
    assert_eq!(
        requests[5].body,
        json!({"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "02:00:00:00:00:01"})
    );
    let mut no_net = spec();
    no_net.net = None;
    assert_eq!(Firecracker::requests(&no_net).len(), 5);
}

#[test]
fn names() {
    assert!(check_id("0192f-web-a").is_ok());
    for bad in ["", "a_b", "a/b", "é", &"a".repeat(65)] {
        assert!(
            matches!(check_id(bad), Err(VmmError::InvalidName(_))),
            "{bad}"
        );
    }
}

/// A child standing in for the VMM (a `sleep`), for the stand-in API tests.
fn fake_vmm(dir: &Path, api: Api) -> Pending {
    let child = tokio::process::Command::new("sleep")
        .arg("60")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    std::fs::create_dir_all(dir.join("jail/root")).unwrap();
    let vm = RunningVm::new(
        child,
        dir.to_path_buf(),
        Cgroup::existing(dir.join("no-cg"), dir.join("no-cg"), true),
        GracefulStop::CtrlAltDel(api.clone()),
        Some(Jail {
            dir: dir.join("jail"),
            log: Some(dir.join("jail/root/firecracker.log")),
        }),
    )
    .unwrap();
    Pending { vm, api }
}

/// The API sequence of a launch and of a stop, against a stand-in for Firecracker's API
/// server (the real one: `real_firecracker_under_the_jailer`).
#[tokio::test]
async fn start_sends_the_configuration_then_instance_start_and_stop_sends_ctrl_alt_del() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let seen = stand_in(&socket, &[]);
    let pending = fake_vmm(dir.path(), Api::new(socket));
    let vm = pending
        .start(&Firecracker::requests(&spec()))
        .await
        .unwrap();
    {
        let seen = seen.lock().unwrap();
        let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths.len(), 7);
        assert_eq!(paths[6], "/actions");
        assert_eq!(seen[6].body, json!({"action_type": "InstanceStart"}));
        assert!(seen.iter().all(|r| {
            r.method == "PUT"
                && r.headers
                    .contains(&("content-type".into(), "application/json".into()))
        }));
    }
    // The stand-in's "guest" ignores Ctrl-Alt-Del, so the grace period ends in SIGKILL.
    let started = std::time::Instant::now();
    let exit = vm.stop(Duration::from_millis(300)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(matches!(exit, VmExit::Crashed(_)), "{exit:?}");
    let last = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (last.path.as_str(), last.body),
        ("/actions", json!({"action_type": "SendCtrlAltDel"}))
    );
    assert!(!dir.path().join("jail").exists(), "the jail is removed");
}

#[tokio::test]
async fn a_refused_request_kills_the_vmm_and_names_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let seen = stand_in(&socket, &["/drives/scratch"]);
    let pending = fake_vmm(dir.path(), Api::new(socket));
    let pid = pending.vm.pid();
    let err = pending
        .start(&Firecracker::requests(&spec()))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Firecracker API PUT /drives/scratch: 400: The requested operation is not supported."
    );
    assert_eq!(seen.lock().unwrap().len(), 4, "nothing after the refusal");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "VMM reaped");
    assert!(!dir.path().join("jail").exists());
}

// ---------------------------------------------------------------------------------------
// The real binaries. `ZEITWORK_FIRECRACKER_BIN` and `ZEITWORK_JAILER_BIN` name static
// builds (Firecracker is in no package registry); without them these tests skip.

fn real_binaries() -> Option<(PathBuf, PathBuf)> {
    let fc = std::env::var_os(crate::FIRECRACKER_ENV);
    let jailer = std::env::var_os(crate::JAILER_ENV);
    match (fc, jailer) {
        (Some(fc), Some(jailer)) => Some((fc.into(), jailer.into())),
        _ => {
            eprintln!(
                "SKIPPED: set {} and {} to static Firecracker and jailer binaries to run this test",
                crate::FIRECRACKER_ENV,
                crate::JAILER_ENV
            );
            None
        }
    }
}

/// The real binaries and a VM of `name` with the real guest and blank disks in `d`, its
/// NIC's tap in a namespace of its own linked to the host as `zw<index>` (by the agent's
/// code, `zeitwork_net`); `None` (skipped) when the binaries are missing.
async fn real_vm(d: &Path, name: &str, index: u32) -> Option<(Firecracker, VmSpec, NetGuard)> {
    let (fc, jailer) = real_binaries()?;
    let (kernel, initramfs) = guest_files();
    blank_disks(d);
    let name = format!("{name}-{}", std::process::id());
    let prefix = zeitwork_net::NodePrefix::parse("fd7a:7a77:0:fc::/64").unwrap();
    let addrs = zeitwork_net::InstanceAddrs::for_index(prefix, index).unwrap();
    let link = zeitwork_net::Link::create(index, addrs, zeitwork_net::Topology::OwnNetns, &name)
        .await
        .unwrap();
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
            tap: link.tap().into(),
            mac: link.mac.clone(),
            netns: link.netns.as_ref().map(zeitwork_net::Netns::path),
        }),
        run_dir: d.join("run"),
        slot: index,
    };
    let fc = Firecracker::new(fc, jailer)
        .unwrap()
        .with_chroot_base(d.join("jail"));
    Some((fc, spec, NetGuard(link)))
}

/// An instance's link and namespace, removed however the test ends.
struct NetGuard(zeitwork_net::Link);

impl NetGuard {
    fn netns(&self) -> &zeitwork_net::Netns {
        self.0.netns.as_ref().expect("a namespace of its own")
    }
}

impl Drop for NetGuard {
    fn drop(&mut self) {
        let ip = |args: &[&str]| std::process::Command::new("ip").args(args).output();
        let _ = ip(&["link", "delete", &self.0.name]);
        let _ = ip(&["netns", "delete", self.netns().name()]);
    }
}

/// The real jailer and Firecracker: the jail and cgroup are set up as asked, Firecracker
/// runs unprivileged, every API request is accepted (and a bad one refused with its
/// `fault_message`), `InstanceStart` is accepted, and after the VMM ended nothing is
/// left. Where KVM can run Linux guests, the guest also boots to init's verdict (the
/// disks are blank, so init reports that the config disk has no zeitwork magic).
#[tokio::test]
async fn real_firecracker_under_the_jailer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some((fc, spec, net)) = real_vm(d, "zw-fc-test", 32_000).await else {
        return;
    };
    let name = spec.name.clone();
    let (uid, gid) = fc.ids(&spec).unwrap();
    let chroot = fc.chroot(&name);
    let cgroup_dirs = fc.cgroup(&name).unwrap().dirs();

    let pending = fc.spawn(&spec).await.unwrap();
    let pid = pending.vm.pid();
    // The jail: our files, the API socket, and Firecracker running as uid:gid in it.
    for f in [
        "vmlinux",
        "initrd",
        "root.ext4",
        "scratch.ext4",
        "config.img",
        "firecracker",
    ] {
        assert!(chroot.join(f).exists(), "{f} in the chroot");
    }
    assert!(chroot.join("run/firecracker.socket").exists());
    assert_eq!(std::fs::metadata(&chroot).unwrap().uid(), uid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string()))
            && status
                .lines()
                .any(|l| l.starts_with("Gid:")
                    && l.split_whitespace().nth(1) == Some(&gid.to_string())),
        "{status}"
    );
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, Path::new("/firecracker"), "exec'd in the chroot");
    // The network namespace: the instance's own, which holds the tap.
    let netns = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let own = std::fs::metadata(net.netns().path()).unwrap().ino();
    assert_eq!(
        netns,
        Path::new(&format!("net:[{own}]")),
        "runs in its netns"
    );
    // The cgroup: the memory cap, and the VMM inside it.
    let limit_file = if fc.cgroup_version == CgroupVersion::V2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let limit = std::fs::read_to_string(cgroup_dirs[0].join(limit_file)).unwrap();
    assert_eq!(limit.trim(), ((128 + OVERHEAD_MB) << 20).to_string());
    for cg in &cgroup_dirs {
        let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|p| p == pid.to_string()),
            "{}",
            cg.display()
        );
    }
    // A request Firecracker refuses becomes a clear error with its fault_message.
    let err = pending
        .api
        .put(&api::machine_config(0, 128))
        .await
        .unwrap_err()
        .to_string();
    eprintln!("refused as expected: {err}");
    assert!(
        err.starts_with("Firecracker API PUT /machine-config: 400: "),
        "{err}"
    );

    // Unprivileged, it opens the tap in its namespace (PUT /network-interfaces).
    let vm = pending.start(&Firecracker::requests(&spec)).await.unwrap();
    eprintln!("every request (the NIC on the namespace's tap too) and InstanceStart accepted");
    let exit = if crate::kvm_usable() {
        let exit = tokio::time::timeout(Duration::from_secs(60), vm.wait())
            .await
            .expect("the guest reports within 60 s")
            .unwrap();
        assert!(
            matches!(&exit, VmExit::InitFailed(reason) if reason.contains("magic")),
            "{exit:?}"
        );
        exit
    } else {
        eprintln!("KVM cannot run Linux guests here: not waiting for init, stopping");
        tokio::time::timeout(Duration::from_secs(30), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            vm.stop(Duration::from_secs(3)).await
        })
        .await
        .expect("stopped within 30 s")
        .unwrap()
    };
    let vmm_log = std::fs::read_to_string(d.join("run/vmm.log")).unwrap();
    if !crate::kvm_usable() {
        assert!(
            vmm_log.contains(r#"{\"action_type\":\"SendCtrlAltDel\"}"#),
            "the graceful stop went through the API: {vmm_log}"
        );
    }
    eprintln!("exit: {exit:?}");
    eprintln!(
        "console:\n{}",
        std::fs::read_to_string(d.join("run/console.log")).unwrap_or_default()
    );
    assert!(!fc.jail_dir(&name).exists(), "jail removed");
    for cg in &cgroup_dirs {
        assert!(!cg.exists(), "cgroup {} removed", cg.display());
    }
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "VMM reaped");
    assert!(
        vmm_log.contains("Running Firecracker v"),
        "log kept: {vmm_log}"
    );
    let netns = net.netns().clone();
    drop(net);
    assert!(!netns.exists(), "namespace removed");
}

/// A jailed Firecracker whose agent died (here: its handle forgotten) is adopted from
/// its run dir and stopped through its API socket, found again from the record; the grace
/// period ends (the guest cannot reset where KVM cannot run it) in a SIGKILL through the
/// pidfd, and the jail and cgroup are removed as for a VM launched here.
#[tokio::test]
async fn real_firecracker_is_adopted_and_stopped_through_its_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some((fc, spec, _net)) = real_vm(d, "zw-fc-adopt", 32_001).await else {
        return;
    };
    let cgroup_dirs = fc.cgroup(&spec.name).unwrap().dirs();
    let vm = fc.launch(&spec).await.unwrap();
    let pid = vm.pid();
    std::mem::forget(vm);
    let adopted = RunningVm::adopt(&spec.run_dir)
        .await
        .unwrap()
        .expect("the VMM runs");
    assert_eq!(adopted.pid(), pid);
    let exit = tokio::time::timeout(
        Duration::from_secs(30),
        adopted.stop(Duration::from_secs(3)),
    )
    .await
    .expect("stopped within 30 s")
    .unwrap();
    eprintln!("exit: {exit:?}");
    let vmm_log = std::fs::read_to_string(d.join("run/vmm.log")).unwrap();
    assert!(
        vmm_log.contains(r#"{\"action_type\":\"SendCtrlAltDel\"}"#),
        "the graceful stop went through the API: {vmm_log}"
    );
    assert!(!fc.jail_dir(&spec.name).exists(), "jail removed");
    for cg in &cgroup_dirs {
        assert!(!cg.exists(), "cgroup {} removed", cg.display());
    }
    assert!(RunningVm::adopt(&spec.run_dir).await.unwrap().is_none());
}

/// The jailer's own failures (here: cgroups of the version this host does not use for
/// memory) come back as errors quoting what it printed, and leave nothing behind.
#[tokio::test]
async fn real_jailer_failures_are_reported_and_cleaned_up() {
    let Some((fc, jailer)) = real_binaries() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for f in ["vmlinux", "initrd", "root.ext4", "rw.ext4", "config.img"] {
        std::fs::write(d.join(f), f).unwrap();
    }
    let fc = Firecracker::new(fc, jailer)
        .unwrap()
        .with_chroot_base(d.join("jail"));
    let wrong = match fc.cgroup_version {
        CgroupVersion::V1 => CgroupVersion::V2,
        CgroupVersion::V2 => CgroupVersion::V1,
    };
    let fc = fc.with_cgroup_version(wrong);
    let name = format!("zw-fc-fail-{}", std::process::id());
    let spec = VmSpec {
        name: name.clone(),
        kernel: d.join("vmlinux"),
        initramfs: d.join("initrd"),
        root_disk: d.join("root.ext4"),
        scratch_disk: d.join("rw.ext4"),
        config_disk: d.join("config.img"),
        cache_disk: None,
        net: None,
        run_dir: d.join("run"),
        ..spec()
    };
    let err = fc.launch(&spec).await.unwrap_err();
    eprintln!("{err}");
    assert!(
        matches!(&err, VmmError::Jailer(m) if m.contains("before Firecracker's API answered")
            && m.to_lowercase().contains("cgroup")),
        "{err}"
    );
    assert!(!fc.jail_dir(&name).exists());
}
