//! Rollback through the whole platform (`zeitwork up`, QEMU microVMs, the edge), under
//! load: four request loops through the edge, one request every 10 ms each. Side by side
//! in one run: a rollback inside the standby window (the deployment it returns to is
//! still running: one `deployment_reactivated`) against a rollback outside it (the
//! release rolls out again: a microVM boots). Each is timed from its event's commit
//! (the event's timestamp, taken in the committing transaction) to the switch: the send
//! time of the first request from which every answer comes from the rolled-back
//! release's instance. Then restarts (what a secret change does), timed from commit
//! until the old instance is out of rotation. Failed requests are counted. Printed as
//! Markdown for
//! BENCHMARKS.md. Run: `cargo bench -p zeitwork-e2e --bench standby`, as root.

use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use zeitwork_e2e::load::{Answer, Load, answering, get_via};
use zeitwork_e2e::{Up, example_manifest, poll_until, up_with_example};

const INSTANT_ROUNDS: usize = 20;
const BOOT_ROUNDS: usize = 3;
const RESTART_ROUNDS: usize = 3;
const BOOT: Duration = Duration::from_secs(300);
const HOST: &str = zeitwork_e2e::EXAMPLE_HOST;
const APP: [&str; 4] = zeitwork_e2e::EXAMPLE_APP;

/// Instants and wall-clock time, related once.
struct Clock(Instant, SystemTime);

impl Clock {
    fn wall(&self, at: Instant) -> DateTime<Utc> {
        DateTime::<Utc>::from(self.1 + (at - self.0))
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let data = tempfile::tempdir().unwrap();
    let (up, image) = up_with_example(data.path(), BOOT).await;
    let db = sqlx::PgPool::connect(&up.database_url()).await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let clock = Clock(Instant::now(), SystemTime::now());
    let loads: Vec<Load> = (0..4)
        .map(|_| Load::every(up.edge_addr(), HOST.into(), Duration::from_millis(10)))
        .collect();

    // Inside the window: release 2 rolls out, then rollbacks alternate between 1 and 2.
    let v2 = example_manifest(files.path(), "2", "");
    deploy(&up, &image, &v2).await;
    let mut switches = Vec::new();
    for round in 0..INSTANT_ROUNDS {
        let to = if round % 2 == 0 { 1 } else { 2 };
        switches.push(roll_back(&up, to).await);
    }
    // Outside it: releases without a window; each rollback boots the release again.
    let mut boots = Vec::new();
    for round in 0..BOOT_ROUNDS {
        let none = example_manifest(
            files.path(),
            &format!("nowindow-{round}"),
            "[deploy]\nstandby = \"0s\"\n",
        );
        deploy(&up, &image, &none).await;
        boots.push(roll_back(&up, 1).await);
    }
    // Restarts (what a secret change does): each instance is replaced beside itself.
    let mut restarts = Vec::new();
    for _ in 0..RESTART_ROUNDS {
        restarts.push(restart(&up).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut answers = Vec::new();
    for load in loads {
        answers.extend(load.answers().await);
    }
    answers.sort_by_key(|a| a.sent);
    let failed = answers.iter().filter(|a| a.result.is_err()).count();

    let commits: Vec<(DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT at, kind FROM events
         WHERE kind IN ('deployment_reactivated', 'deployment_created', 'instances_replaced')
         ORDER BY seq",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let timed = |runs: &[Switch]| -> Vec<Duration> {
        runs.iter()
            .map(|s| {
                let commit = commits
                    .iter()
                    .map(|(at, _)| *at)
                    .find(|at| *at >= clock.wall(s.started))
                    .expect("the rollback's event");
                let switched = switch_at(&answers, s, &clock);
                (switched - commit).to_std().unwrap_or_default()
            })
            .collect()
    };
    let (instant, booted, restarted) = (timed(&switches), timed(&boots), timed(&restarts));
    println!(
        "| rollback under load (4 loops × 1 request / 10 ms through the edge) | runs | commit → served p50 | p99 | max |"
    );
    println!("|---|---|---|---|---|");
    for (what, runs) in [
        ("inside the standby window (no boot)", instant),
        (
            "outside it (the release rolls out: a microVM boots)",
            booted,
        ),
        (
            "restart (a secret change): commit → the old instance out of rotation",
            restarted,
        ),
    ] {
        let mut runs = runs;
        runs.sort();
        let at = |q: f64| runs[((runs.len() - 1) as f64 * q).round() as usize];
        println!(
            "| {what} | {} | {} | {} | {} |",
            runs.len(),
            ms(at(0.5)),
            ms(at(0.99)),
            ms(*runs.last().unwrap())
        );
    }
    println!(
        "\nrequests: {} answered, {failed} failed",
        answers.len() - failed
    );
    // Which phase each failure fell in, to look into.
    let phases = [
        ("instant", &switches),
        ("boot", &boots),
        ("restart", &restarts),
    ];
    for a in answers.iter().filter(|a| a.result.is_err()) {
        let phase = phases
            .iter()
            .flat_map(|(name, runs)| runs.iter().map(move |r| (*name, r)))
            .filter(|(_, r)| r.started <= a.sent)
            .max_by_key(|(_, r)| r.started)
            .map_or("before the first rollback", |(name, _)| name);
        eprintln!(
            "failed ({phase}, {}): {}",
            clock.wall(a.sent),
            a.result.as_ref().unwrap_err()
        );
    }
}

/// One rollback: when it was asked for, and the instance it went to.
struct Switch {
    started: Instant,
    /// The next rollback's start (or the run's end): the switch must hold until then.
    until: Instant,
    to: String,
}

async fn deploy(up: &Up, image: &str, manifest: &str) {
    let before = serving(up).await;
    let deploy = [
        &APP[..],
        &["deploy", "--image", image, "--manifest", manifest],
    ]
    .concat();
    up.cli(&deploy).await.success();
    poll_until(BOOT, || async {
        (serving(up).await != before).then_some(())
    })
    .await
    .expect("the deploy serves");
}

async fn roll_back(up: &Up, release: u32) -> Switch {
    let before = serving(up).await;
    let started = Instant::now();
    let release = release.to_string();
    let args = [&APP[..], &["rollback", "--release", &release]].concat();
    up.cli(&args).await.success();
    let to = poll_until(BOOT, || async {
        let now = serving(up).await;
        (now != before).then_some(now)
    })
    .await
    .expect("the rollback serves");
    // Let the loops show the switch holds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Switch {
        started,
        until: Instant::now(),
        to,
    }
}

/// `zeitwork restart`: done when twenty answers in a row come from one new instance.
async fn restart(up: &Up) -> Switch {
    let before = serving(up).await;
    let started = Instant::now();
    up.cli(&[&APP[..], &["restart"]].concat()).await.success();
    let to = poll_until(BOOT, || async {
        let now = serving(up).await;
        if now == before || now.is_empty() {
            return None;
        }
        for _ in 0..20 {
            if serving(up).await != now {
                return None;
            }
        }
        Some(now)
    })
    .await
    .expect("the restart serves");
    tokio::time::sleep(Duration::from_millis(500)).await;
    Switch {
        started,
        until: Instant::now(),
        to,
    }
}

/// The instance answering the env's hostname now.
async fn serving(up: &Up) -> String {
    let body = get_via(&up.edge_addr(), HOST).await.unwrap_or_default();
    answering(&body).unwrap_or_default()
}

/// The send time of the first answer after `s.started` from which every answer until
/// `s.until` is by `s.to`.
fn switch_at(answers: &[Answer], s: &Switch, clock: &Clock) -> DateTime<Utc> {
    let window: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.sent >= s.started && a.sent < s.until)
        .collect();
    let by = |a: &Answer| {
        a.result
            .as_ref()
            .ok()
            .and_then(|b| answering(b))
            .unwrap_or_default()
    };
    let last_other = window.iter().rposition(|a| by(a) != s.to);
    let first = last_other.map_or(0, |i| i + 1);
    let a = window
        .get(first)
        .unwrap_or_else(|| panic!("{} never answered alone", s.to));
    clock.wall(a.sent)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
