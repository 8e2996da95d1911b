//! Real microVMs under QEMU (TCG here, KVM where the CPU allows): the example image from
//! a real registry, booted with the real kernel, initramfs and zeitwork-init.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeitwork_agent::{InstanceSpec, Runtime, RuntimeConfig};
use zeitwork_core::guest::Exit;
use zeitwork_e2e::{init_bin, push_example};
use zeitwork_net::NodePrefix;
use zeitwork_services::Registry;
use zeitwork_vmm::{Qemu, VmExit};

/// Each test installs the node's firewall table and checks for leftover taps, so they
/// take turns.
static VMS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PREFIX: &str = "fd00:7a77:e2e::/64";

fn spec(id: &str, image: &str, net_index: u32, command: Option<&[&str]>) -> InstanceSpec {
    InstanceSpec {
        id: id.into(),
        image: image.into(),
        command: command.map(|c| c.iter().map(|s| s.to_string()).collect()),
        env: BTreeMap::new(),
        secrets: BTreeMap::from([("API_KEY".into(), "k".into())]),
        port: Some(8080),
        port_from_image: false,
        vcpus: 1,
        memory_mb: 128,
        cpu_weight: 100,
        net_index,
    }
}

/// GET over plain TCP, retried until the app answers (it boots under emulation).
async fn get(url_host: std::net::IpAddr, path: &str, within: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let connect = tokio::net::TcpStream::connect((url_host, 8080));
        if let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
            let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.ok()?;
            let mut body = String::new();
            s.read_to_string(&mut body).await.ok()?;
            return Some(body);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_boots_serves_exits_is_capped_and_isolated() {
    let _one_at_a_time = VMS.lock().await;
    let registry = Registry::throwaway().await.unwrap();
    let image = push_example(&registry).await;
    let state = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(
        Qemu::detect().unwrap(),
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

    // 1. The example serves GET / to the host over its link, at its IPv4 and its IPv6.
    let web = runtime
        .start(&spec("web-a", &image, 10, None))
        .await
        .unwrap();
    let body = get(web.guest_ipv4().into(), "/", Duration::from_secs(90)).await;
    let console = std::fs::read_to_string(web.console_log()).unwrap_or_default();
    let body = body.unwrap_or_else(|| panic!("no answer from the example; console:\n{console}"));
    assert!(
        body.starts_with("HTTP/1.1 200 OK") && body.contains("Hello from Zeitwork"),
        "{body}"
    );
    let body = get(web.addrs.guest6.into(), "/", Duration::from_secs(10)).await;
    assert!(
        body.is_some_and(|b| b.contains("Hello from Zeitwork")),
        "no answer at {}",
        web.addrs.guest6
    );

    // 2. Another instance cannot reach it, nor the host's other ports.
    let host_port = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let gateway = zeitwork_net::InstanceAddrs::for_index(NodePrefix::parse(PREFIX).unwrap(), 12)
        .unwrap()
        .host4;
    let host_target = format!("{gateway}:{}", host_port.local_addr().unwrap().port());
    let to_web = format!("{}:8080", web.guest_ipv4());
    for (i, target) in [(11, to_web.as_str()), (12, host_target.as_str())] {
        let probe = runtime
            .start(&spec(
                &format!("probe-{i}"),
                &image,
                i,
                Some(&["/hello", "probe", target]),
            ))
            .await
            .unwrap();
        let log = probe.console_log();
        let exit = probe.wait().await.unwrap();
        let console = std::fs::read_to_string(log).unwrap_or_default();
        assert_eq!(
            exit,
            VmExit::App(Exit::Code(1)),
            "probe of {target} must fail; console:\n{console}"
        );
        // Dropped by the firewall, so the connection times out: not refused (which would
        // mean the packet arrived) and not unreachable (which would mean no network).
        assert!(
            console.contains(&format!("probe {target}: connection timed out")),
            "{console}"
        );
    }
    let web_dir = web.dir.clone();
    let stopped = web.stop(Duration::from_secs(5)).await.unwrap();
    assert!(
        matches!(stopped, VmExit::Crashed(_) | VmExit::App(_)),
        "{stopped:?}"
    );
    assert!(
        !web_dir.join("scratch.ext4").exists(),
        "disks are removed on stop"
    );
    // Only this test's taps: other VMs may run on the host.
    let taps = zeitwork_net::Link::list().await.unwrap();
    assert!(
        !taps
            .iter()
            .any(|t| ["zw10", "zw11", "zw12"].contains(&t.as_str())),
        "taps are removed on stop: {taps:?}"
    );

    // 3. The app's exit status reaches the host.
    let exit = runtime
        .start(&spec("exit-7", &image, 13, Some(&["/hello", "exit", "7"])))
        .await
        .unwrap();
    assert_eq!(exit.wait().await.unwrap(), VmExit::App(Exit::Code(7)));

    // 4. Memory is capped: allocating past the VM's RAM gets the app killed as OOM.
    let hog = runtime
        .start(&spec("hog", &image, 14, Some(&["/hello", "alloc", "512"])))
        .await
        .unwrap();
    let log = hog.console_log();
    let exit = hog.wait().await.unwrap();
    let console = std::fs::read_to_string(log).unwrap_or_default();
    assert_eq!(exit, VmExit::OutOfMemory, "console:\n{console}");
    assert!(!console.contains("survived"), "{console}");
}

#[tokio::test]
async fn bad_images_fail_clearly_and_leave_nothing() {
    let _one_at_a_time = VMS.lock().await;
    let registry = Registry::throwaway().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(
        Qemu::detect().unwrap(),
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
    let missing = format!("{}/nothing@sha256:{}", registry.addr(), "ab".repeat(32));
    for (reference, expect) in [
        ("not a reference!", "reference"),
        (missing.as_str(), "nothing"),
    ] {
        let err = runtime
            .start(&spec("bad", reference, 20, None))
            .await
            .err()
            .expect("must fail")
            .to_string();
        assert!(err.contains(expect), "{reference}: {err}");
    }
    assert!(
        !state.path().join("instances/bad").exists(),
        "no instance files left"
    );
    let taps = zeitwork_net::Link::list().await.unwrap();
    assert!(!taps.contains(&"zw20".to_owned()), "no tap left: {taps:?}");
}
