//! The node agent for real, through `zeitwork up` as a user runs it: this machine
//! enrolls as a node, the example app is deployed into a QEMU microVM, its status goes
//! healthy, its output reaches `zeitwork logs`, a rollout under load fails no request, a
//! tcp route reaches it on a port of its own, a killed VMM comes back, NATS down still
//! converges, a SIGKILLed `up` (also mid-change) finds its VMs again instead of booting
//! duplicates, and with Postgres gone the instances keep running untouched.
//!
//! One test, because every agent on a host owns the host's taps and VM cgroups: two
//! `up`s at once would clean up each other's instances.

use std::time::Duration;

use serde_json::Value;
use zeitwork_e2e::load::{Load, count_vms, get, get_via};
use zeitwork_e2e::{Up, poll_until, processes_mentioning, share_guest_cache, signal};
use zeitwork_vmm::Cgroup;

const BOOT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_the_example_heals_it_and_survives_restarts() {
    if !rustix::process::geteuid().is_root() {
        panic!("cannot run: microVMs need root (taps, nftables, cgroups)");
    }
    let data = tempfile::tempdir().unwrap();
    share_guest_cache(&data.path().join("node"));
    // Rollouts here replace instances outright (warm standbys: tests/day_two.rs).
    let mut up = Up::start_with(data.path(), "127.0.0.1", &["--standby-window", "0"]).await;
    let line = up.wait_for_line("Example app:", BOOT).await;
    // "Example app: http://HOST:PORT/ (this deployment: …; instance: http://IP:PORT/)"
    let env_url = line.split_whitespace().nth(2).unwrap().to_owned();
    let host = env_url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(host, "hello-demo.zeitwork.localhost", "{line}");
    let url = line
        .split_whitespace()
        .last()
        .unwrap()
        .trim_end_matches(')')
        .to_owned();
    let body = get(&url)
        .await
        .expect("the example answers on its instance");
    assert!(body.contains("Hello from Zeitwork"), "{body}");
    let body = get_via(&up.edge_addr(), &host)
        .await
        .expect("the example answers through the edge");
    assert!(body.contains("Hello from Zeitwork"), "{body}");

    up.login_as_admin().await;
    let app = ["--org", "demo", "--app", "hello"];
    let status = healthy(&up, &app, 0).await;
    let id = status["id"].as_str().unwrap().to_owned();

    // The request above shows up in the logs, with the instance's boot output.
    let logs = eventually(|| async {
        let out = up
            .cli(&[&app[..], &["logs", "--tail", "200"]].concat())
            .await;
        out.stdout
            .contains("hello: GET / 200 OK")
            .then_some(out.stdout)
    })
    .await;
    assert!(logs.contains("hello: listening on port 8080"), "{logs}");

    // A rollout (release 1 again) under load: the old instance serves until the new one
    // is healthy, then stops, and no request through the edge fails meanwhile.
    let load = Load::start(up.edge_addr(), host.clone());
    up.cli(&[&app[..], &["rollback", "--release", "1"]].concat())
        .await
        .success();
    let status = eventually(|| async {
        let running = up.running_instances(&app).await?;
        let only = running.first()?;
        (running.len() == 1 && only["id"] != id.as_str() && only["observed_state"] == "healthy")
            .then(|| only.clone())
    })
    .await;
    eventually(|| async { (count_vms() == 1).then_some(()) }).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (served, failed) = load.stop().await;
    assert!(
        failed.is_empty(),
        "requests failed during the rollout: {failed:#?}"
    );
    assert!(served > 10, "the load ran ({served} requests)");
    let id = status["id"].as_str().unwrap().to_owned();
    let url = format!("http://{}/", status["address"].as_str().unwrap());

    // A tcp route: a port of the edge's own, relaying bytes to the microVM as they come.
    let tcp = [
        "routes",
        "add",
        "--process",
        "web",
        "--port",
        "8080",
        "--mode",
        "tcp",
    ];
    let added = up.cli(&[&app[..], &tcp[..]].concat()).await.success();
    let port = added
        .stdout
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port in {added:#?}"));
    let relayed = eventually(|| async {
        get_via(&format!("127.0.0.1:{port}"), "anything.example")
            .await
            .ok()
    })
    .await;
    assert!(relayed.contains("Hello from Zeitwork"), "{relayed}");

    // A VMM killed behind the agent's back: reported, restarted, healthy again.
    let vmm = vmm_pid(&id).expect("the instance's VMM");
    assert!(signal(vmm, rustix::process::Signal::KILL));
    let status = healthy(&up, &app, 1).await;
    assert_eq!(status["id"], id.as_str(), "the same instance is restarted");
    assert_ne!(vmm_pid(&id), Some(vmm));
    get(&url)
        .await
        .expect("the example answers after the restart");

    // `up` killed outright leaves the VM running; the next `up` adopts it.
    let vmm = vmm_pid(&id).unwrap();
    up.kill().await;
    assert!(get(&url).await.is_ok(), "the instance outlives its agent");
    up.restart().await;
    up.wait_for_line("Example app:", BOOT).await;
    assert_eq!(
        vmm_pid(&id),
        Some(vmm),
        "the running VM was adopted, not booted again"
    );
    assert_eq!(count_vms(), 1, "no duplicate instance");

    // NATS gone: a change still converges, by polling.
    let nats = processes_mentioning(&up.data_dir().join("nats"));
    assert_eq!(nats.len(), 1, "{nats:?}");
    let pid: u32 = nats[0].split(':').next().unwrap().parse().unwrap();
    assert!(signal(pid, rustix::process::Signal::KILL));
    up.cli(&[&app[..], &["scale", "web=2"]].concat())
        .await
        .success();
    eventually(|| async { (in_state(&up, &app, &["healthy"]).await? == 2).then_some(()) }).await;
    assert_eq!(count_vms(), 2);

    // `up` killed in the middle of a change: the restarted agent finishes it, once.
    up.cli(&[&app[..], &["scale", "web=3"]].concat())
        .await
        .success();
    let caught = poll_until(Duration::from_secs(60), || async {
        (in_state(&up, &app, &["pulling", "booting"]).await? > 0).then_some(())
    })
    .await;
    if caught.is_none() {
        // Booting took less than one status poll: the kill below lands after the change.
        eprintln!("note: the new instance was never seen pulling or booting");
    }
    up.kill().await;
    up.restart().await;
    eventually(|| async { (in_state(&up, &app, &["healthy"]).await? == 3).then_some(()) }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count_vms(), 3, "three instances, no duplicate");

    // A VM killed under load (its VMM, so the guest goes silent rather than refusing):
    // the agent aborts the host's connections to it and the firewall refuses new ones,
    // so the edge sends every request to the other instances and not one fails.
    let loads: Vec<Load> = (0..4)
        .map(|_| Load::start(up.edge_addr(), host.clone()))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let running = up.running_instances(&app).await.expect("instances");
    let victim = running[0]["id"].as_str().unwrap().to_owned();
    let before = running[0]["restarts"].as_u64().unwrap();
    assert!(signal(
        vmm_pid(&victim).expect("the victim's VMM"),
        rustix::process::Signal::KILL
    ));
    eventually(|| async {
        let running = up.running_instances(&app).await?;
        let v = running.iter().find(|i| i["id"] == victim.as_str())?;
        (v["observed_state"] == "healthy" && v["restarts"].as_u64() > Some(before)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut served, mut failed) = (0, Vec::new());
    for load in loads {
        let (s, f) = load.stop().await;
        served += s;
        failed.extend(f);
    }
    if !failed.is_empty() {
        let log = up.stderr();
        let tail: Vec<&str> = log.lines().rev().take(80).collect();
        panic!(
            "{} requests failed when a VM died ({served} served); first: {:?}\n--- up's log, last lines first ---\n{}",
            failed.len(),
            failed.first().map(|f| f.lines().next().unwrap_or_default()),
            tail.join("\n")
        );
    }
    assert!(served > 40, "the load ran ({served} requests)");

    // Postgres gone: the control plane cannot answer, and running instances are untouched.
    let before = vm_pids();
    for process in processes_mentioning(&up.data_dir().join("postgres")) {
        let pid: u32 = process.split(':').next().unwrap().parse().unwrap();
        signal(pid, rustix::process::Signal::KILL);
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(vm_pids(), before, "no instance stopped or restarted");
    get(&url).await.expect("the example still answers");

    up.interrupt().await;
    assert_eq!(count_vms(), 0, "Ctrl-C on `up` stops its instances");
}

/// Waits until the app's only running instance is healthy with at least `restarts`.
async fn healthy(up: &Up, app: &[&str], restarts: u64) -> Value {
    eventually(|| async {
        let running = up.running_instances(app).await?;
        let only = running.first()?;
        (running.len() == 1
            && only["observed_state"] == "healthy"
            && only["restarts"].as_u64() >= Some(restarts))
        .then(|| only.clone())
    })
    .await
}

/// How many wanted instances are in one of `states`.
async fn in_state(up: &Up, app: &[&str], states: &[&str]) -> Option<usize> {
    let running = up.running_instances(app).await?;
    Some(
        running
            .iter()
            .filter(|i| states.iter().any(|s| i["observed_state"] == *s))
            .count(),
    )
}

async fn eventually<T, F, Fut>(check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_until(BOOT, check)
        .await
        .unwrap_or_else(|| panic!("condition not met within {BOOT:?}"))
}

fn vmm_pid(instance: &str) -> Option<u32> {
    Cgroup::ours()
        .into_iter()
        .find(|(name, _)| name == instance)
        .and_then(|(_, cg)| cg.pids().into_iter().min())
}

fn vm_pids() -> Vec<u32> {
    let mut pids: Vec<u32> = Cgroup::ours()
        .into_iter()
        .flat_map(|(_, cg)| cg.pids())
        .collect();
    pids.sort_unstable();
    pids
}
