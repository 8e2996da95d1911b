//! An agent killed outright leaves its VM running; the next agent's start-up removes it:
//! the VMM, its cgroup, its tap and its disks. The "agent" here is `zeitwork vm run`,
//! killed with SIGKILL. Beside it, what a Firecracker instance leaves (a network namespace
//! of its own and the veth to it; no Firecracker guest boots on every host) goes too.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use zeitwork_agent::{Runtime, RuntimeConfig};
use zeitwork_e2e::{init_bin, push_example, zeitwork_bin};
use zeitwork_net::{InstanceAddrs, Link, NodePrefix, Topology};
use zeitwork_services::Registry;
use zeitwork_vmm::{Cgroup, Qemu};

const PREFIX: &str = "fd7a:7a77:0:1::/64";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agents_vm_is_cleaned_up_at_the_next_start() {
    let registry = Registry::throwaway().await.unwrap();
    let image = push_example(&registry).await;
    let node = tempfile::tempdir().unwrap();
    // Share the downloaded kernel with the other VM tests.
    zeitwork_e2e::share_guest_cache(node.path());

    let mut agent = tokio::process::Command::new(zeitwork_bin())
        .args([
            "vm",
            "run",
            "--image",
            &image,
            "--port",
            "8080",
            "--net-index",
            "30",
            "--node-prefix",
            PREFIX,
        ])
        .arg("--node-dir")
        .arg(node.path())
        .arg("--init-bin")
        .arg(init_bin())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(agent.stderr.take().unwrap()).lines();
    let (id, vmm_pid) = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // "booted vm-run-123 (VMM pid 456), guest address …"
            if let Some(rest) = line.strip_prefix("booted ") {
                let id = rest.split_whitespace().next().unwrap().to_owned();
                let pid: u32 = rest
                    .split("VMM pid ")
                    .nth(1)
                    .unwrap()
                    .split(')')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                return (id, pid);
            }
        }
        panic!("`zeitwork vm run` never booted");
    })
    .await
    .expect("boot within 120 s");

    agent.start_kill().unwrap();
    agent.wait().await.unwrap();
    assert!(alive(vmm_pid), "the VMM outlives its killed agent");
    assert!(Link::list().await.unwrap().contains(&"zw30".to_owned()));

    let runtime = Runtime::new(
        Qemu::detect().unwrap(),
        RuntimeConfig {
            state_dir: node.path().to_path_buf(),
            guest_dir: node.path().join("guest"),
            init_binary: init_bin().to_path_buf(),
            node_prefix: NodePrefix::parse(PREFIX).unwrap(),
            egress_allow: Vec::new(),
            edge_networks: Vec::new(),
            registry: None,
        },
    )
    .await
    .unwrap();
    // A Firecracker instance's link and namespace, as its crashed agent left them.
    let fc_id = format!("fc-crashed-{}", std::process::id());
    std::fs::create_dir_all(node.path().join("instances").join(&fc_id)).unwrap();
    let addrs = InstanceAddrs::for_index(NodePrefix::parse(PREFIX).unwrap(), 31).unwrap();
    let fc_link = Link::create(31, addrs, Topology::OwnNetns, &fc_id)
        .await
        .unwrap();
    let fc_netns = fc_link.netns.clone().unwrap();
    // A build's VM, as its crashed agent left it: a process in cgroup `build-<id>` and the
    // build's directory (a sleeping process stands in for the VMM).
    let build_id = format!("b{}", std::process::id());
    std::fs::create_dir_all(node.path().join("builds").join(&build_id).join("vm")).unwrap();
    let builder = Cgroup::create(&format!("build-{build_id}"), 64 << 20, 100).unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    for dir in builder.dirs() {
        std::fs::write(dir.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    }
    assert!(builder.pids().contains(&sleeper.id()));

    let cleaned = runtime.clean_orphans(&[]).await.unwrap();
    assert!(
        cleaned.builds.contains(&format!("build-{build_id}")),
        "{cleaned:?}"
    );
    assert!(
        sleeper.wait().is_ok_and(|s| !s.success()),
        "the leftover builder VM is killed"
    );
    assert!(!node.path().join("builds").join(&build_id).exists());
    assert!(cleaned.vms.contains(&id), "{cleaned:?}");
    assert!(cleaned.links.contains(&"zw30".to_owned()), "{cleaned:?}");
    assert!(cleaned.links.contains(&"zw31".to_owned()), "{cleaned:?}");
    // Both VMMs had their own namespace (QEMU's too, since it is confined like Firecracker).
    assert!(
        cleaned.netns.iter().any(|n| n == fc_netns.name()),
        "{cleaned:?}"
    );
    assert_eq!(cleaned.netns.len(), 2, "{cleaned:?}");
    assert!(!fc_netns.exists(), "the namespace is gone");
    assert!(cleaned.disks.contains(&id), "{cleaned:?}");
    assert!(!alive(vmm_pid), "the orphaned VMM is gone");
    assert!(
        !Cgroup::ours().iter().any(|(name, _)| *name == id),
        "its cgroup is gone"
    );
    assert!(
        !zeitwork_net::Link::list()
            .await
            .unwrap()
            .contains(&"zw30".to_owned())
    );
    assert!(
        !node
            .path()
            .join("instances")
            .join(&id)
            .join("scratch.ext4")
            .exists()
    );
}

/// Running, as opposed to gone or a zombie (killed, waiting for whoever inherited it to reap it).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}
