//! A build in the builder microVM against the same buildah build on the host (the peer),
//! side by side in one run, printed as Markdown for BENCHMARKS.md: the VM's overhead (boot,
//! the context in and the archive out through its disk) over the build itself.
//!
//! The Dockerfile is the e2e test's (`FROM scratch`, `COPY` a static binary, `EXPOSE`,
//! `CMD`); each side builds it ROUNDS times from a clean store, into an OCI archive.
//! Run: `cargo bench -p zeitwork-e2e --bench build`, as root.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use zeitwork_agent::build::{BuildLimits, BuildSpec};

const ROUNDS: usize = 5;
const DOCKERFILE: &str = "FROM scratch\nCOPY hello /hello\nEXPOSE 8080\nCMD [\"/hello\"]\n";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    assert!(
        rustix::process::geteuid().is_root(),
        "cannot run: microVMs need root"
    );
    let node = zeitwork_e2e::builder().await;
    let context = zeitwork_e2e::hello_context(DOCKERFILE);

    let (mut in_vm, mut on_host) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let run = tempfile::tempdir().unwrap();
        let spec = BuildSpec {
            id: format!("zw-bench-build-{round}"),
            context: context.path().to_owned(),
            bases: run.path().join("bases"),
            dockerfile: "Dockerfile".into(),
            target: None,
            build_args: BTreeMap::new(),
            limits: BuildLimits {
                memory_mb: 1024,
                disk_mb: 2048,
                ..BuildLimits::default()
            },
            slot: 4000,
            network: None,
            cache_disk: None,
        };
        let started = Instant::now();
        node.runtime
            .build(&node.rootfs, &spec, run.path())
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", e.log().join("\n")));
        in_vm.push(started.elapsed());

        let store = tempfile::tempdir().unwrap();
        let started = Instant::now();
        host_build(store.path(), context.path()).await;
        on_host.push(started.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (vm, host) = (median(&mut in_vm), median(&mut on_host));
    println!("| build of the same Dockerfile into an OCI archive | median of {ROUNDS} |");
    println!("|---|---|");
    println!(
        "| in the builder microVM (QEMU, boot included) | {:.1} s |",
        vm.as_secs_f64()
    );
    println!(
        "| buildah on the host (the peer) | {:.1} s |",
        host.as_secs_f64()
    );
    println!(
        "| the VM's overhead | {:.1} s |",
        vm.saturating_sub(host).as_secs_f64()
    );
}

/// The same build with the host's buildah, in a store of its own.
async fn host_build(store: &std::path::Path, context: &std::path::Path) {
    let root = store.join("root");
    let runroot = store.join("run");
    let common = |cmd: &mut tokio::process::Command| {
        cmd.arg("--storage-driver")
            .arg("vfs")
            .arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot);
    };
    let mut bud = tokio::process::Command::new("buildah");
    common(&mut bud);
    let out = bud
        .args([
            "bud",
            "--isolation",
            "chroot",
            "--layers",
            "-t",
            "zeitwork-bench",
            "-f",
        ])
        .arg(context.join("Dockerfile"))
        .arg(context)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut push = tokio::process::Command::new("buildah");
    common(&mut push);
    let archive = format!("oci-archive:{}", store.join("image.tar").display());
    let out = push
        .args(["push", "zeitwork-bench", &archive])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
