//! Day-two operations through `zeitwork up` on QEMU. Warm standby, under a steady request loop through the
//! edge: after a rollout the replaced deployment's microVM keeps running; a rollback
//! inside the window switches the env back to it (no VM boots, no request fails, and
//! once its instance answers, every later request is answered by it); after a short
//! window (`[deploy] standby`) the standby stops and a rollback boots the release again,
//! still without a failed request. Then a secret change restarts the env under load:
//! the app answers with the new value, and no request fails. Last, autoscaling: a burst
//! of slow requests scales the app up to its max, and it comes back down after the
//! window, without a failed request; and scaling to zero: an idle app's microVM stops,
//! held requests wake one instance and are served, and a busy app is not stopped.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use zeitwork_e2e::load::{Answer, Load, answering, count_vms, get_path_via, get_via};
use zeitwork_e2e::{Up, example_manifest, poll_until, up_with_example};

const BOOT: Duration = Duration::from_secs(300);
const HOST: &str = zeitwork_e2e::EXAMPLE_HOST;
const APP: [&str; 4] = zeitwork_e2e::EXAMPLE_APP;

/// The ids of the env's instances meant to run: all of them (active and standby
/// deployments alike), and the active deployment's.
async fn instances(up: &Up) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    let out = up.cli(&[&APP[..], &["status", "--json"]].concat()).await;
    let status: Value = serde_json::from_str(&out.stdout).ok()?;
    let active = &status["deployment"]["id"];
    let (mut all, mut of_active) = (BTreeSet::new(), BTreeSet::new());
    for i in status["instances"].as_array()? {
        let Some(id) = i["id"].as_str().filter(|_| i["desired_state"] == "running") else {
            continue;
        };
        if i["deployment_id"] == *active {
            of_active.insert(id.to_owned());
        }
        all.insert(id.to_owned());
    }
    Some((all, of_active))
}

/// The instance that answers the env's hostname through the edge, once it is `other`
/// than the one given (waiting for a rollout's switch).
async fn served_by_other_than(up: &Up, instance: &str) -> String {
    poll_until(BOOT, || async {
        let body = get_via(&up.edge_addr(), HOST).await.ok()?;
        let id = answering(&body)?;
        (id != instance).then_some(id)
    })
    .await
    .unwrap_or_else(|| panic!("the rollout never served:\n{}", up.stderr()))
}

/// No request failed; and from the first answer by `to` among those sent after
/// `since`, every answer is by `to` (the switch happened once and for all).
fn switched_once(answers: &[Answer], since: Instant, to: &str) {
    let failed: Vec<&String> = answers
        .iter()
        .filter_map(|a| a.result.as_ref().err())
        .collect();
    assert!(failed.is_empty(), "requests failed: {failed:#?}");
    let by: Vec<String> = answers
        .iter()
        .filter(|a| a.sent >= since)
        .map(|a| answering(a.result.as_ref().unwrap()).unwrap_or_default())
        .collect();
    let first = by
        .iter()
        .position(|i| i == to)
        .unwrap_or_else(|| panic!("{to} never answered after the switch: {by:?}"));
    let strays: Vec<&String> = by[first..].iter().filter(|i| *i != to).collect();
    assert!(
        strays.is_empty(),
        "answers by others after the switch: {strays:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_an_instant_rollback_a_rollback_after_the_window_a_secret_rotation_autoscaling_and_scaling_to_zero()
 {
    assert!(
        rustix::process::geteuid().is_root(),
        "cannot run: microVMs need root (taps, nftables, cgroups)"
    );
    let data = tempfile::tempdir().unwrap();
    let (mut up, image) = up_with_example(data.path(), BOOT).await;
    let (running, _) = instances(&up).await.unwrap();
    let v1 = running.first().unwrap().clone();
    let files = tempfile::tempdir().unwrap();

    // Release 2 rolls out; release 1's VM stays, on standby.
    let load = Load::start(up.edge_addr(), HOST.into());
    let v2_manifest = example_manifest(files.path(), "2", "");
    let deploy = [
        &APP[..],
        &["deploy", "--image", &image, "--manifest", &v2_manifest],
    ]
    .concat();
    up.cli(&deploy).await.success();
    let v2 = served_by_other_than(&up, &v1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count_vms(), 2, "release 1's VM stays on standby");
    let releases = up.cli(&[&APP[..], &["releases"]].concat()).await.success();
    assert!(
        releases.stdout.contains("prod (standby until"),
        "{}",
        releases.stdout
    );

    // Rollback inside the window: release 1's own instance serves again, none boots.
    let since = Instant::now();
    let back = up.cli(&[&APP[..], &["rollback"]].concat()).await.success();
    assert!(back.stdout.contains("instantly"), "{}", back.stdout);
    poll_until(BOOT, || async {
        let body = get_via(&up.edge_addr(), HOST).await.ok()?;
        (answering(&body)? == v1).then_some(())
    })
    .await
    .expect("release 1's instance serves again");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answers = load.answers().await;
    switched_once(&answers, since, &v1);
    assert_eq!(count_vms(), 2, "no VM booted or stopped");
    let (running, _) = instances(&up).await.unwrap();
    assert_eq!(running, BTreeSet::from([v1.clone(), v2.clone()]));

    // Release 3 with a 5 s window: release 1 (active) stands by for 5 s, release 2 (the
    // standby) is superseded; both stop.
    let load = Load::start(up.edge_addr(), HOST.into());
    let v3_manifest = example_manifest(files.path(), "3", "[deploy]\nstandby = \"5s\"\n");
    let deploy = [
        &APP[..],
        &["deploy", "--image", &image, "--manifest", &v3_manifest],
    ]
    .concat();
    up.cli(&deploy).await.success();
    let v3 = served_by_other_than(&up, &v1).await;
    assert_ne!(v3, v2);
    poll_until(BOOT, || async { (count_vms() == 1).then_some(()) })
        .await
        .expect("the standby stops once its window ends");
    let (running, _) = instances(&up).await.unwrap();
    assert_eq!(running, BTreeSet::from([v3.clone()]));

    // Rollback after the window: release 1 boots again, and takes over without a failure.
    let since = Instant::now();
    let back = up
        .cli(&[&APP[..], &["rollback", "--release", "1"]].concat())
        .await
        .success();
    assert!(!back.stdout.contains("instantly"), "{}", back.stdout);
    let v1_again = served_by_other_than(&up, &v3).await;
    assert!(
        v1_again != v1 && v1_again != v3,
        "a new instance: {v1_again}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    switched_once(&load.answers().await, since, &v1_again);

    // A secret change restarts the env under load: the app answers with the new value,
    // no request fails, and the instance that started before never sees it.
    let public = || async {
        zeitwork_e2e::nodes::http_get(&up.edge_addr(), HOST, "/public")
            .await
            .unwrap_or_default()
    };
    let secret = |value: &str| -> Vec<String> {
        APP.iter()
            .map(|a| a.to_string())
            .chain([
                "secrets".into(),
                "set".into(),
                format!("PUBLIC_GREETING={value}"),
            ])
            .collect()
    };
    let out = up.cli(&strs(&secret("one"))).await.success();
    assert!(
        out.stdout.contains("Restarting 1 instance"),
        "{}",
        out.stdout
    );
    poll_until(BOOT, || async {
        public().await.contains("PUBLIC_GREETING=one").then_some(())
    })
    .await
    .expect("the restarted instance has the secret");
    poll_until(BOOT, || async {
        (instances(&up).await?.1.len() == 1).then_some(())
    })
    .await
    .expect("the instance from before the change stops");
    let before = instances(&up).await.unwrap().1;
    let load = Load::start(up.edge_addr(), HOST.into());
    up.cli(&strs(&secret("two"))).await.success();
    poll_until(BOOT, || async {
        public().await.contains("PUBLIC_GREETING=two").then_some(())
    })
    .await
    .expect("the new value reaches the app");
    let rotated = poll_until(BOOT, || async {
        let running = instances(&up).await?.1;
        (running.len() == 1 && running != before).then_some(running)
    })
    .await
    .expect("the old instance stops once its replacement is healthy");
    let (served, failed) = load.stop().await;
    assert!(
        failed.is_empty(),
        "requests failed during the restart: {failed:#?}"
    );
    assert!(served > 10, "the load ran ({served} requests)");
    for _ in 0..5 {
        assert!(
            public().await.contains("PUBLIC_GREETING=two"),
            "only the new value now"
        );
    }
    assert_ne!(rotated, before);

    autoscaling(&up, &image, files.path()).await;
    scaling_to_zero(&up, &image, files.path()).await;

    up.interrupt().await;
    assert_eq!(count_vms(), 0, "Ctrl-C on `up` stops its instances");
}

/// Release 4 autoscales between 1 and 3 instances at 2 requests in flight each: a burst
/// of slow requests scales it to 3 (the autoscaler's event says why, `status` shows it),
/// every new instance serves, no request fails; once the burst ends the count holds
/// for the window and comes back down to 1, still without a failed request.
async fn autoscaling(up: &Up, image: &str, files: &std::path::Path) {
    let manifest = example_manifest(
        files,
        "4",
        "[deploy]\nstandby = \"0s\"\n[processes.web.autoscale]\nmax = 3\n\
         target_concurrency = 2\nscale_down_window = \"10s\"\n",
    );
    let first = deploy_one(up, image, &manifest).await;

    // 8 clients, each keeping a 1 s request in flight: 8 in flight, 4 instances' worth.
    let burst_started = Instant::now();
    let burst = Load::slow_burst(&up.edge_addr(), HOST, 8, 1000);
    let scaled = poll_until(Duration::from_secs(30), || async {
        (instances(up).await?.1.len() == 3).then(Instant::now)
    })
    .await
    .expect("the burst scales the process to its max");
    eprintln!(
        "autoscaler: burst → 3 instances decided in {:?}",
        scaled - burst_started
    );
    let status = up.cli(&[&APP[..], &["status"]].concat()).await.success();
    assert!(
        status
            .stdout
            .contains("web: autoscales 1–3 per region at 2 requests in flight")
            && status.stdout.contains("scaled to 3")
            && status.stdout.contains("by autoscaler: ")
            && status.stdout.contains("requests in flight over ")
            && status.stdout.contains("instance(s), target 2 each"),
        "{}",
        status.stdout
    );
    // Scaling by hand is refused while it autoscales: exit 4 (conflict), one line.
    let scale = up
        .cli(&[&APP[..], &["scale", "web=2"]].concat())
        .await
        .exit(4);
    assert!(
        scale.stderr.contains("autoscales between 1 and 3")
            && scale.stderr.trim().lines().count() == 1,
        "{}",
        scale.stderr
    );
    // Every instance serves once booted.
    let mut answering_ids = BTreeSet::new();
    let deadline = Instant::now() + BOOT;
    while answering_ids.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "3 instances never all answered: {answering_ids:?}"
        );
        if let Some(id) = get_via(&up.edge_addr(), HOST)
            .await
            .ok()
            .and_then(|body| answering(&body))
        {
            answering_ids.insert(id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let steady = Load::start(up.edge_addr(), HOST.into());
    let mut served = 0;
    for load in burst {
        let (ok, failed) = load.stop().await;
        assert!(failed.is_empty(), "slow requests failed: {failed:#?}");
        served += ok;
    }
    assert!(served >= 8, "the burst ran ({served} requests)");

    // Quiet: held for the window (10 s), then back to 1.
    let quiet = Instant::now();
    let down = poll_until(Duration::from_secs(60), || async {
        let running = instances(up).await?.1;
        (running.len() == 1).then_some(running)
    })
    .await
    .expect("the quiet process scales back down");
    assert!(
        quiet.elapsed() >= Duration::from_secs(8),
        "scaled down before the window: {:?}",
        quiet.elapsed()
    );
    assert!(down.is_subset(&answering_ids));
    assert!(answering_ids.contains(&first));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (served, failed) = steady.stop().await;
    assert!(
        failed.is_empty(),
        "requests failed during the scale-down: {failed:#?}"
    );
    assert!(served > 10, "the load ran ({served} requests)");
    let events = up.cli(&["events"]).await.success();
    assert!(
        events.stdout.contains("process_scaled")
            && events
                .stdout
                .contains("for 10s the load asked for at most 1"),
        "{}",
        events.stdout
    );
}

/// Deploys `manifest` (a release whose active deployment runs one instance); the id of
/// that instance once it is meant to run.
async fn deploy_one(up: &Up, image: &str, manifest: &str) -> String {
    let before = instances(up).await.unwrap().1;
    let deploy = [
        &APP[..],
        &["deploy", "--image", image, "--manifest", manifest],
    ]
    .concat();
    up.cli(&deploy).await.success();
    let running = poll_until(BOOT, || async {
        let running = instances(up).await?.1;
        (running.len() == 1 && running != before).then_some(running)
    })
    .await
    .expect("the release runs one instance");
    running.into_iter().next().unwrap()
}

/// Release 5 scales to zero after 10 s without a request: its microVM stops. Then six
/// concurrent requests are all held by the edge and served once one instance boots (one,
/// not one per request). An app that says it is busy is not stopped while it is; once it
/// is not, it is.
async fn scaling_to_zero(up: &Up, image: &str, files: &std::path::Path) {
    let manifest = example_manifest(
        files,
        "5",
        "[deploy]\nstandby = \"0s\"\n[processes.web.autoscale]\nmin = 0\nmax = 2\n\
         target_concurrency = 50\nidle_timeout = \"10s\"\n",
    );
    let before = instances(up).await.unwrap().1;
    let first = deploy_one(up, image, &manifest).await;
    served_by_other_than(up, before.first().unwrap()).await;

    // Idle: no request for 10 s, and the VM stops.
    let idle = Instant::now();
    poll_until(Duration::from_secs(60), || async {
        (count_vms() == 0 && instances(up).await?.1.is_empty()).then_some(())
    })
    .await
    .expect("the idle app scales to zero");
    assert!(
        idle.elapsed() >= Duration::from_secs(9),
        "{:?}",
        idle.elapsed()
    );
    let status = up.cli(&[&APP[..], &["status"]].concat()).await.success();
    assert!(
        status.stdout.contains("scaled to 0")
            && status
                .stdout
                .contains("no requests for 10s: scaled to zero"),
        "{}",
        status.stdout
    );

    // Six requests at once wake it: all held, all served, by one new instance.
    let woke = Instant::now();
    let held: Vec<_> = (0..6)
        .map(|_| {
            let edge = up.edge_addr();
            tokio::spawn(
                async move { get_path_via(&edge, HOST, "/", Duration::from_secs(60)).await },
            )
        })
        .collect();
    let mut by = BTreeSet::new();
    for request in held {
        let body = request.await.unwrap().expect("a held request is served");
        by.insert(answering(&body).unwrap());
    }
    eprintln!(
        "scale to zero: wake → all six answered in {:?}",
        woke.elapsed()
    );
    assert_eq!(by.len(), 1, "one instance served them all: {by:?}");
    assert!(!by.contains(&first), "a new instance");
    assert_eq!(count_vms(), 1, "one VM booted for six requests");

    // Busy: not stopped past the idle timeout while the app says so.
    let busy = zeitwork_e2e::nodes::http_get(&up.edge_addr(), HOST, "/busy?set=1").await;
    assert!(busy.unwrap_or_default().contains("busy: true"));
    // The agent measures the VM's CPU from its cgroup and carries the busy signal.
    let db = sqlx::PgPool::connect(&up.database_url()).await.unwrap();
    poll_until(Duration::from_secs(15), || async {
        let rows: Vec<(i32, bool)> =
            sqlx::query_as("SELECT millicpus, busy FROM instance_cpu WHERE busy")
                .fetch_all(&db)
                .await
                .ok()?;
        (rows.len() == 1).then_some(())
    })
    .await
    .expect("the heartbeat reports the instance's CPU use and that it is busy");
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(count_vms(), 1, "a busy app is not stopped for idleness");
    let idle = zeitwork_e2e::nodes::http_get(&up.edge_addr(), HOST, "/busy?set=0").await;
    assert!(idle.unwrap_or_default().contains("busy: false"));
    poll_until(Duration::from_secs(60), || async {
        (count_vms() == 0).then_some(())
    })
    .await
    .expect("no longer busy, the idle app scales to zero");
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
