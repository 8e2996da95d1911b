//! `zeitwork exec` through the whole platform (`zeitwork up`, a QEMU microVM): the round
//! trip of `zeitwork exec -- true` as a user sees it (the CLI process from start to exit:
//! grant, redeem, the agent's dial-back, the session in the guest, the exit code), side by
//! side in one run with `zeitwork status` (one plain API call by the same CLI, the floor
//! any CLI command pays); then the throughput of one exec's output (1 GiB to the CLI's
//! stdout), beside the same bytes moved through a pipe inside the guest (the ceiling the
//! emulated guest sets). Printed as Markdown for BENCHMARKS.md. Run:
//! `cargo bench -p zeitwork-e2e --bench exec`, as root.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use zeitwork_e2e::{
    EXAMPLE_APP, Up, example_manifest, poll_until, push_example_with_shell, up_with_example,
};

const ROUNDS: usize = 50;
const BOOT: Duration = Duration::from_secs(300);
const GIB: u64 = 1 << 30;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let data = tempfile::tempdir().unwrap();
    let (up, _) = up_with_example(data.path(), BOOT).await;
    let image = push_example_with_shell(&up).await;
    let files = tempfile::tempdir().unwrap();
    let manifest = example_manifest(files.path(), "shell", "[deploy]\nstandby = \"0s\"\n");
    let deploy = [
        &EXAMPLE_APP[..],
        &["deploy", "--image", &image, "--manifest", &manifest],
    ]
    .concat();
    up.cli(&deploy).await.success();
    let exec = [&EXAMPLE_APP[..], &["exec", "--", "true"]].concat();
    poll_until(BOOT, || async {
        (up.cli(&exec).await.code == 0).then_some(())
    })
    .await
    .expect("the shell release runs");

    let status = [&EXAMPLE_APP[..], &["status"]].concat();
    let (mut execs, mut statuses) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        execs.push(timed(&up, &exec).await);
        statuses.push(timed(&up, &status).await);
    }
    let throughput = stream(&up).await;
    let inside = inside_guest(&up).await;

    println!("| what | runs | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    row(
        "`zeitwork exec -- true` (grant, attach, run, exit code)",
        execs,
    );
    row(
        "`zeitwork status` (one API call, same CLI: the floor)",
        statuses,
    );
    println!();
    println!("| output of one exec | MiB/s |");
    println!("|---|---|");
    println!(
        "| 1 GiB to the CLI's stdout (`exec -- busybox head -c 1G /dev/zero`) | {throughput:.1} |"
    );
    println!(
        "| 1 GiB through a pipe inside the guest (`head … \\| wc -c`, no exec channel) | {inside:.1} |"
    );
}

/// How long the CLI ran `args` (it must succeed).
async fn timed(up: &Up, args: &[&str]) -> Duration {
    let started = Instant::now();
    up.cli(args).await.success();
    started.elapsed()
}

/// MiB/s of one exec's 1 GiB output, read by this process from the CLI's stdout.
async fn stream(up: &Up) -> f64 {
    let gib = GIB.to_string();
    let args = [
        &EXAMPLE_APP[..],
        &["exec", "--", "busybox", "head", "-c", &gib, "/dev/zero"],
    ]
    .concat();
    let mut command = up.cli_command(&args);
    command.stdout(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let (mut total, mut buf) = (0u64, vec![0u8; 1 << 20]);
    loop {
        let n = out.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    assert!(child.wait().await.unwrap().success());
    assert_eq!(total, GIB);
    GIB as f64 / f64::from(1 << 20) / started.elapsed().as_secs_f64()
}

/// MiB/s of 1 GiB through a pipe inside the guest, timed around the exec (whose own
/// round trip is a fraction of a second of it).
async fn inside_guest(up: &Up) -> f64 {
    let script = format!("busybox head -c {GIB} /dev/zero | busybox wc -c");
    let args = [&EXAMPLE_APP[..], &["exec", "--", "sh", "-c", &script]].concat();
    let started = Instant::now();
    // Longer than `Up::cli` waits.
    let out = up.cli_command(&args).output().await.unwrap();
    let took = started.elapsed();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), GIB.to_string());
    GIB as f64 / f64::from(1 << 20) / took.as_secs_f64()
}

/// One Markdown table row: what, runs, p50, p99, max.
fn row(what: &str, mut runs: Vec<Duration>) {
    runs.sort();
    let at = |q: f64| runs[((runs.len() as f64 * q) as usize).min(runs.len() - 1)];
    println!(
        "| {what} | {} | {} ms | {} ms | {} ms |",
        runs.len(),
        at(0.5).as_millis(),
        at(0.99).as_millis(),
        runs.last().unwrap().as_millis()
    );
}
