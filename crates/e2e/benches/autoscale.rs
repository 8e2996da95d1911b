//! Autoscaling through the whole platform (`zeitwork up`, QEMU microVMs, the edge): the
//! example autoscales between 1 and 3 instances at 2 requests in flight each. Each
//! round, 8 clients start keeping a 1 s request in flight through the edge (4 instances'
//! worth, capped at 3); timed from the burst's first request: the autoscaler's
//! `process_scaled` commit (the reaction the edges' reports and the controller allow),
//! and the first answer from a new instance (that plus boot and health checks). Then the
//! burst ends and the scale-down is timed against its window (3 s). Failed requests
//! are counted. Then scaling to zero: the example with `min = 0` and a 10 s idle timeout;
//! each round waits until its VM stopped, sends one request and times it to the first
//! byte, split at the autoscaler's `process_scaled` commit and at the instance's first
//! `healthy` report (the boot's share). Printed as Markdown for BENCHMARKS.md. Run:
//! `cargo bench -p zeitwork-e2e --bench autoscale`, as root.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use zeitwork_e2e::load::{Load, answering, get_via};
use zeitwork_e2e::{Up, example_manifest, poll_until, up_with_example};

const ROUNDS: usize = 5;
const WAKES: usize = 5;
const CLIENTS: usize = 8;
const BOOT: Duration = Duration::from_secs(300);
const HOST: &str = zeitwork_e2e::EXAMPLE_HOST;
const APP: [&str; 4] = zeitwork_e2e::EXAMPLE_APP;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let data = tempfile::tempdir().unwrap();
    let (up, image) = up_with_example(data.path(), BOOT).await;
    let db = sqlx::PgPool::connect(&up.database_url()).await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let manifest = example_manifest(
        files.path(),
        "autoscaled",
        "[deploy]\nstandby = \"0s\"\n[processes.web.autoscale]\nmax = 3\n\
         target_concurrency = 2\nscale_down_window = \"3s\"\n",
    );
    let deploy = [
        &APP[..],
        &["deploy", "--image", &image, "--manifest", &manifest],
    ]
    .concat();
    up.cli(&deploy).await.success();
    wait_for_count(&up, 1).await;
    let only = current(&up).await;
    poll_until(BOOT, || async {
        let id = answering(&get_via(&up.edge_addr(), HOST).await.ok()?)?;
        only.contains(&id).then_some(())
    })
    .await
    .expect("the autoscaled release serves");
    let (epoch, wall) = (Instant::now(), SystemTime::now());
    let at = |i: Instant| DateTime::<Utc>::from(wall + (i - epoch));

    let (mut decided, mut serving, mut down) = (Vec::new(), Vec::new(), Vec::new());
    let (mut answered, mut failed) = (0, Vec::new());
    for _ in 0..ROUNDS {
        let before: BTreeSet<String> = current(&up).await;
        let started = Instant::now();
        let burst = Load::slow_burst(&up.edge_addr(), HOST, CLIENTS, 1000);
        // The first answer by an instance that was not there before.
        let new = poll_until(BOOT, || async {
            let id = answering(&get_via(&up.edge_addr(), HOST).await.ok()?)?;
            (!before.contains(&id)).then(Instant::now)
        })
        .await
        .expect("a new instance serves");
        serving.push(new - started);
        let (commit,): (DateTime<Utc>,) = sqlx::query_as(
            "SELECT at FROM events WHERE kind = 'process_scaled' AND actor = 'autoscaler'
             AND at >= $1 ORDER BY seq LIMIT 1",
        )
        .bind(at(started))
        .fetch_one(&db)
        .await
        .unwrap();
        decided.push((commit - at(started)).to_std().unwrap_or_default());
        wait_for_count(&up, 3).await;
        for load in burst {
            let (ok, errors) = load.stop().await;
            answered += ok;
            failed.extend(errors);
        }
        let quiet = Instant::now();
        wait_for_count(&up, 1).await;
        down.push(quiet.elapsed());
    }
    println!(
        "| autoscaling 1 → 3 under a burst ({CLIENTS} clients × a 1 s request in flight) | runs | p50 | max |"
    );
    println!("|---|---|---|---|");
    for (what, runs) in [
        ("burst → the autoscaler's decision committed", decided),
        (
            "burst → first answer by a new instance (decision + boot + health)",
            serving,
        ),
        ("burst ends → scaled back to 1 (window 3 s)", down),
    ] {
        row(what, runs);
    }
    println!(
        "\nslow requests: {answered} answered, {} failed",
        failed.len()
    );
    for f in failed {
        eprintln!("failed: {f}");
    }
    wake_from_zero(&up, &image, files.path(), &db, &at).await;
}

/// Scale to zero and wake on a request, [`WAKES`] times.
async fn wake_from_zero(
    up: &Up,
    image: &str,
    files: &std::path::Path,
    db: &sqlx::PgPool,
    at: &impl Fn(Instant) -> DateTime<Utc>,
) {
    let manifest = example_manifest(
        files,
        "sleepy",
        "[deploy]\nstandby = \"0s\"\n[processes.web.autoscale]\nmin = 0\nmax = 2\n\
         target_concurrency = 50\nidle_timeout = \"10s\"\n",
    );
    let deploy = [
        &APP[..],
        &["deploy", "--image", image, "--manifest", &manifest],
    ]
    .concat();
    up.cli(&deploy).await.success();
    let (mut total, mut decided, mut booted) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..WAKES {
        wait_for_count(up, 0).await;
        poll_until(BOOT, || async {
            (zeitwork_e2e::load::count_vms() == 0).then_some(())
        })
        .await
        .expect("the VM stops");
        let sent = Instant::now();
        let first_byte = zeitwork_e2e::load::first_byte(&up.edge_addr(), HOST, "/")
            .await
            .expect("the held request is answered");
        total.push(first_byte);
        let (scaled,): (DateTime<Utc>,) = sqlx::query_as(
            "SELECT at FROM events WHERE kind = 'process_scaled' AND at >= $1 ORDER BY seq LIMIT 1",
        )
        .bind(at(sent))
        .fetch_one(db)
        .await
        .unwrap();
        let (healthy,): (DateTime<Utc>,) = sqlx::query_as(
            "SELECT at FROM events WHERE kind = 'instance_observed' AND at >= $1
             AND payload ->> 'state' = 'healthy' ORDER BY seq LIMIT 1",
        )
        .bind(scaled)
        .fetch_one(db)
        .await
        .unwrap();
        decided.push((scaled - at(sent)).to_std().unwrap_or_default());
        booted.push((healthy - scaled).to_std().unwrap_or_default());
    }
    println!("\n| wake from zero (one request, QEMU TCG) | runs | p50 | max |");
    println!("|---|---|---|---|");
    for (what, runs) in [
        ("request → first byte", total),
        ("request → the autoscaler's decision committed", decided),
        (
            "decision → the instance healthy (place, boot, first health check)",
            booted,
        ),
    ] {
        row(what, runs);
    }
}

/// The active deployment's instances meant to run.
async fn current(up: &Up) -> BTreeSet<String> {
    let out = up.cli(&[&APP[..], &["status", "--json"]].concat()).await;
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    let active = &status["deployment"]["id"];
    status["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["desired_state"] == "running" && i["deployment_id"] == *active)
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect()
}

async fn wait_for_count(up: &Up, n: usize) {
    poll_until(BOOT, || async {
        (current(up).await.len() == n).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("never {n} instances"));
}

/// One Markdown table row: what, runs, p50, max.
fn row(what: &str, mut runs: Vec<Duration>) {
    runs.sort();
    println!(
        "| {what} | {} | {} | {} |",
        runs.len(),
        ms(runs[runs.len() / 2]),
        ms(*runs.last().unwrap())
    );
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}
