//! An agent killed outright leaves its VMs running; the next agent adopts them. The
//! "agent" is this test binary run again as a child process ([`agent_to_be_killed`]),
//! which starts one instance through `Runtime::start` and is then SIGKILLed.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use zeitwork_agent::{InstanceSpec, Runtime, RuntimeConfig};
use zeitwork_core::guest::Exit;
use zeitwork_e2e::{init_bin, push_example, signal};
use zeitwork_net::{Link, NodePrefix};
use zeitwork_services::Registry;
use zeitwork_vmm::{Cgroup, Qemu, VmExit};

const PREFIX: &str = "fd7a:7a77:0:2::/64";
/// Tells [`agent_to_be_killed`] what to start, as JSON.
const AGENT_ENV: &str = "ZEITWORK_TEST_AGENT";

fn runtime_config(node: &Path, init: &Path) -> RuntimeConfig {
    RuntimeConfig {
        state_dir: node.to_path_buf(),
        // Shares the downloaded kernel with the other VM tests.
        guest_dir: zeitwork_e2e::guest_cache(),
        init_binary: init.to_path_buf(),
        node_prefix: NodePrefix::parse(PREFIX).unwrap(),
        egress_allow: Vec::new(),
        edge_networks: Vec::new(),
        registry: None,
    }
}

/// The agent the test kills: run only as a child of [`a_killed_agents_vms_are_adopted_or_cleaned_up`].
#[tokio::test]
#[ignore = "the agent that a_killed_agents_vms_are_adopted_or_cleaned_up runs and kills"]
async fn agent_to_be_killed() {
    let Ok(task) = std::env::var(AGENT_ENV) else {
        return;
    };
    let task: Value = serde_json::from_str(&task).unwrap();
    let field = |name: &str| task[name].as_str().unwrap().to_owned();
    let config = runtime_config(Path::new(&field("node")), Path::new(&field("init")));
    let runtime = Runtime::new(Qemu::detect().unwrap(), config).await.unwrap();
    let instance = runtime
        .start(&InstanceSpec {
            id: field("id"),
            image: field("image"),
            command: None,
            env: Default::default(),
            secrets: Default::default(),
            port: Some(8080),
            port_from_image: false,
            vcpus: 1,
            memory_mb: 128,
            cpu_weight: 100,
            net_index: task["net_index"].as_u64().unwrap() as u32,
        })
        .await
        .unwrap();
    println!("booted {}", instance.vmm_pid());
    std::future::pending::<()>().await;
}

/// Runs [`agent_to_be_killed`] for instance `id` and SIGKILLs it once the VM booted;
/// returns the VMM's pid.
async fn start_and_kill_agent(node: &Path, image: &str, id: &str, net_index: u32) -> u32 {
    let task = json!({
        "node": node, "init": init_bin(), "image": image, "id": id, "net_index": net_index,
    });
    let mut agent = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "agent_to_be_killed", "--ignored", "--nocapture"])
        .env(AGENT_ENV, task.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    let pid = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(pid) = line.strip_prefix("booted ") {
                return pid.trim().parse().unwrap();
            }
        }
        panic!("the agent for {id} exited before its VM booted");
    })
    .await
    .expect("boot within 120 s");
    agent.start_kill().unwrap();
    agent.wait().await.unwrap();
    assert!(alive(pid), "the VMM outlives its killed agent");
    pid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agents_vms_are_adopted_or_cleaned_up() {
    let registry = Registry::throwaway().await.unwrap();
    let image = push_example(&registry).await;
    let node = tempfile::tempdir().unwrap();
    let (kept, dead) = ("adopt-kept", "adopt-dead");
    let kept_pid = start_and_kill_agent(node.path(), &image, kept, 40).await;
    let dead_pid = start_and_kill_agent(node.path(), &image, dead, 41).await;
    // The second VM dies while no agent runs.
    assert!(signal(dead_pid, rustix::process::Signal::KILL));
    while alive(dead_pid) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let runtime = Runtime::new(
        Qemu::detect().unwrap(),
        runtime_config(node.path(), init_bin()),
    )
    .await
    .unwrap();
    let live = runtime.live_instances();
    let record = live
        .iter()
        .find(|r| r.id == kept)
        .expect("the kept VM is live");
    assert_eq!((record.net_index, record.port), (40, Some(8080)));
    assert!(!live.iter().any(|r| r.id == dead), "{live:?}");

    let instance = runtime.adopt(kept).await.unwrap().expect("its VM runs");
    assert_eq!((instance.vmm_pid(), instance.net_index()), (kept_pid, 40));
    assert!(runtime.adopt(dead).await.unwrap().is_none());
    assert!(runtime.adopt("never-started").await.unwrap().is_none());
    let app = get(instance.guest_ipv4()).await;
    assert!(
        app.contains("Hello from Zeitwork"),
        "the adopted app answers: {app}"
    );

    let cleaned = runtime.clean_orphans(&[record.keep()]).await.unwrap();
    assert!(cleaned.links.contains(&"zw41".to_owned()), "{cleaned:?}");
    assert!(cleaned.disks.contains(&dead.to_owned()), "{cleaned:?}");
    assert!(!cleaned.vms.contains(&kept.to_owned()), "{cleaned:?}");
    assert!(!Cgroup::ours().iter().any(|(name, _)| name == dead));
    let app = get(instance.guest_ipv4()).await;
    assert!(app.contains("Hello from Zeitwork"), "still kept: {app}");

    let dir = instance.dir.clone();
    let exit = tokio::time::timeout(
        Duration::from_secs(60),
        instance.stop(Duration::from_secs(5)),
    )
    .await
    .expect("stopped within 60 s")
    .unwrap();
    // Gracefully: the power button became the app's SIGTERM (which `hello` dies of).
    assert_eq!(exit, VmExit::App(Exit::Signal(15)));
    assert!(!alive(kept_pid), "the adopted VMM ended");
    assert!(!Cgroup::ours().iter().any(|(name, _)| name == kept));
    assert!(!Link::list().await.unwrap().contains(&"zw40".to_owned()));
    assert!(!dir.join("scratch.ext4").exists(), "disks removed");
    assert!(runtime.adopt(kept).await.unwrap().is_none(), "nothing left");
}

/// `GET /` on the app's port, retried while the guest is slow to answer.
async fn get(host: std::net::Ipv4Addr) -> String {
    for _ in 0..40 {
        let connect = tokio::net::TcpStream::connect((host, 8080));
        if let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
            let req = "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
            s.write_all(req.as_bytes()).await.unwrap();
            let mut body = String::new();
            let _ = s.read_to_string(&mut body).await;
            return body;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no answer from {host}:8080");
}

/// Running, as opposed to gone or a zombie (killed, waiting for whoever inherited it).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}
