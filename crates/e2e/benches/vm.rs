//! MicroVM benchmarks (issue 3), printed as Markdown for BENCHMARKS.md:
//! - launch to healthy (`GET /` answers) through the runtime, against QEMU started bare
//!   on the same kernel, initramfs, disks and tap prepared beforehand: our overhead;
//! - host memory per idle instance beyond its guest RAM;
//! - rootfs build for a 100 MB image, cold and cached.
//!
//! Run: `bench/vm.sh` (or `cargo bench -p zeitwork-e2e --bench vm`), as root.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeitwork_agent::{InstanceSpec, Runtime, RuntimeConfig};
use zeitwork_core::guest::{GuestConfig, Interface};
use zeitwork_e2e::{init_bin, push_example};
use zeitwork_image::{Auth, ImageConfig, ImageStore, PushOptions, push_directory};
use zeitwork_net::{AppPort, Firewall, InstanceAddrs, Link, NodePrefix, Topology};
use zeitwork_services::Registry;
use zeitwork_vmm::{Qemu, VmSpec, Vmm};

const ROUNDS: usize = 5;
const PREFIX: &str = "fd00:7a77:be::/64";

fn spec(id: &str, image: &str, index: u32) -> InstanceSpec {
    InstanceSpec {
        id: id.into(),
        image: image.into(),
        command: None,
        env: BTreeMap::new(),
        secrets: BTreeMap::new(),
        port: Some(8080),
        port_from_image: false,
        vcpus: 1,
        memory_mb: 128,
        cpu_weight: 100,
        net_index: index,
    }
}

async fn healthy(addr: std::net::Ipv4Addr) {
    loop {
        if let Ok(Ok(mut s)) = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect((addr, 8080)),
        )
        .await
        {
            let _ = s
                .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await;
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf).await;
            if buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Resident memory of `pid` outside the guest RAM mapping (the one mapping of exactly
/// the guest's size), in KiB.
fn vmm_overhead_kib(pid: u32, guest_mb: u64) -> (u64, u64) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut total, mut guest, mut in_guest) = (0, 0, false);
    for line in smaps.lines() {
        if let Some(size) = line.strip_prefix("Size:") {
            in_guest =
                size.trim().trim_end_matches(" kB").trim().parse::<u64>() == Ok(guest_mb * 1024);
        } else if let Some(rss) = line.strip_prefix("Rss:") {
            let kib: u64 = rss
                .trim()
                .trim_end_matches(" kB")
                .trim()
                .parse()
                .unwrap_or(0);
            total += kib;
            if in_guest {
                guest += kib;
            }
        }
    }
    (total - guest, guest)
}

/// QEMU alone on artifacts prepared beforehand: the floor our launch path is measured against.
async fn bare_boot(
    runtime: &Runtime<Qemu>,
    qemu: &Qemu,
    image: &str,
    index: u32,
    dir: &Path,
) -> f64 {
    let rootfs = runtime
        .images()
        .rootfs(image, &Auth::Anonymous)
        .await
        .unwrap();
    let addrs = InstanceAddrs::for_index(NodePrefix::parse(PREFIX).unwrap(), index).unwrap();
    let tap = Link::create(index, addrs, Topology::HostTap, &format!("bare-{index}"))
        .await
        .unwrap();
    let firewall = Firewall::new(NodePrefix::parse(PREFIX).unwrap());
    firewall.allow(AppPort { addrs, port: 8080 }).await.unwrap();
    let scratch = dir.join("scratch.ext4");
    std::fs::File::create(&scratch)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-O", "^has_journal"])
        .arg(&scratch)
        .status()
        .unwrap();
    let config = GuestConfig {
        argv: vec!["/hello".into()],
        env: BTreeMap::from([("PORT".into(), "8080".into())]),
        workdir: "/".into(),
        user: "0:0".into(),
        hostname: "bare".into(),
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
    std::fs::write(dir.join("config.img"), config.encode()).unwrap();
    let vm = VmSpec {
        name: format!("bare-{index}"),
        vcpus: 1,
        memory_mb: 128,
        cpu_weight: 100,
        kernel: runtime.guest().vmlinux.clone(),
        initramfs: runtime.guest().initramfs.clone(),
        root_disk: rootfs.path,
        scratch_disk: scratch,
        config_disk: dir.join("config.img"),
        cache_disk: None,
        net: Some(zeitwork_vmm::NetAttachment {
            tap: tap.tap().to_owned(),
            mac: tap.mac.clone(),
            netns: None,
        }),
        run_dir: dir.to_path_buf(),
        slot: index,
    };
    let started = Instant::now();
    let mut child = tokio::process::Command::new(qemu.binary())
        .args(qemu.args(&vm))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    healthy(addrs.guest4).await;
    let elapsed = started.elapsed().as_secs_f64();
    child.kill().await.unwrap();
    firewall
        .revoke(AppPort { addrs, port: 8080 })
        .await
        .unwrap();
    tap.remove().await.unwrap();
    elapsed
}

async fn rootfs_build(registry: &Registry) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..10 {
        // Incompressible bytes, so the layer really is ~100 MB.
        let data: Vec<u8> = (0..10 << 20)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        std::fs::write(dir.path().join(format!("blob-{i}")), data).unwrap();
    }
    let reference = format!("{}/big:bench", registry.addr());
    let digest = push_directory(
        dir.path(),
        &reference,
        &ImageConfig::default(),
        &PushOptions::default(),
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let store = ImageStore::new(cache.path()).unwrap();
    let pinned = format!("{}/big@{digest}", registry.addr());
    let t = Instant::now();
    store.rootfs(&pinned, &Auth::Anonymous).await.unwrap();
    let cold = t.elapsed().as_secs_f64();
    let t = Instant::now();
    store.rootfs(&pinned, &Auth::Anonymous).await.unwrap();
    (cold, t.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let registry = Registry::throwaway().await.unwrap();
    let image = push_example(&registry).await;
    let state = tempfile::tempdir().unwrap();
    let qemu = Qemu::detect().unwrap();
    let runtime = Runtime::new(
        qemu.clone(),
        RuntimeConfig {
            state_dir: state.path().to_path_buf(),
            guest_dir: zeitwork_e2e::guest_cache(),
            init_binary: init_bin().to_path_buf(),
            node_prefix: NodePrefix::parse(PREFIX).unwrap(),
            egress_allow: Vec::new(),
            edge_networks: Vec::new(),
            registry: None,
        },
    )
    .await
    .unwrap();
    // Warm the image cache so both paths measure boot, not the first pull.
    runtime
        .images()
        .rootfs(&image, &Auth::Anonymous)
        .await
        .unwrap();

    let (mut ours, mut bare, mut overhead, mut guest_rss) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS as u32 {
        let t = Instant::now();
        let instance = runtime
            .start(&spec(&format!("bench-{round}"), &image, 100 + round))
            .await
            .unwrap();
        healthy(instance.guest_ipv4()).await;
        ours.push(t.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (extra, guest) = vmm_overhead_kib(instance.vmm_pid(), 128);
        overhead.push(extra as f64 / 1024.0);
        guest_rss.push(guest as f64 / 1024.0);
        instance.stop(Duration::from_secs(5)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        bare.push(bare_boot(&runtime, &qemu, &image, 200 + round, dir.path()).await);
    }
    let (cold, cached) = rootfs_build(&registry).await;

    let (o, b) = (median(ours.clone()), median(bare.clone()));
    println!(
        "| measure ({}) | median | all rounds |",
        runtime.vmm().name()
    );
    println!("|---|---|---|");
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| launch to healthy, zeitwork runtime (s) | {o:.2} | {} |",
        fmt(&ours)
    );
    println!(
        "| launch to healthy, bare QEMU, same artifacts (s) | {b:.2} | {} |",
        fmt(&bare)
    );
    println!(
        "| runtime overhead over bare | {:+.1} % | |",
        (o - b) / b * 100.0
    );
    println!(
        "| VMM resident memory beyond guest RAM, idle (MiB) | {:.1} | {} |",
        median(overhead.clone()),
        fmt(&overhead)
    );
    println!(
        "| guest RAM resident, idle (MiB of 128) | {:.1} | {} |",
        median(guest_rss.clone()),
        fmt(&guest_rss)
    );
    println!("| rootfs build, 100 MB image, cold (s) | {cold:.2} | |");
    println!(
        "| rootfs build, 100 MB image, cached (ms) | {:.2} | |",
        cached * 1000.0
    );
}
