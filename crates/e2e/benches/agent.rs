//! Notification-to-converged latency (issue 4), printed as Markdown for BENCHMARKS.md.
//!
//! `zeitwork up` with its agent runs the example; the bench scales `web` 1 → 2 → 1 again
//! and again. For each change it reads from the event log the commit time of the
//! `process_scaled` event and of the agent's first report about the affected instance
//! (`pulling` or later for a new one, `stopping` or later for a removed one): the time from commit through
//! the listener, NATS, the agent's pull and reconcile, to its report being committed.
//! It also prints commit-to-healthy for new instances (dominated by the VM boot).
//!
//! Run: `bench/agent.sh` (or `cargo bench -p zeitwork-e2e --bench agent`), as root.

use std::time::Duration;

use sqlx::Row;
use zeitwork_e2e::Up;

const ROUNDS: usize = 15;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !rustix::process::geteuid().is_root() {
        panic!("cannot run: microVMs need root");
    }
    let data = tempfile::tempdir().unwrap();
    zeitwork_e2e::share_guest_cache(&data.path().join("node"));
    let mut up = Up::with_node(data.path()).await;
    up.wait_for_line("Example app:", Duration::from_secs(300))
        .await;
    let admin = up.admin_token().unwrap().to_owned();
    up.cli(&["login", "--api", up.api(), "--token", &admin])
        .await
        .success();
    let db = sqlx::PgPool::connect(&up.database_url()).await.unwrap();

    let (mut react_up, mut react_down, mut healthy) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (react, ready) = scale(&up, &db, 2, true).await;
        react_up.push(react);
        healthy.push(ready.expect("a new instance goes healthy"));
        let (react, _) = scale(&up, &db, 1, false).await;
        react_down.push(react);
    }
    println!("| change | p50 | p99 | max | n |");
    println!("|---|---|---|---|---|");
    row(
        "scale up: commit → agent's first report on the new instance",
        &mut react_up,
    );
    row(
        "scale down: commit → agent's first report on the stopped one",
        &mut react_down,
    );
    row(
        "scale up: commit → new instance `healthy` (VM boot)",
        &mut healthy,
    );
    up.interrupt().await;
}

/// Scales `web` to `count`; returns commit-to-first-report and, for new instances,
/// commit-to-healthy.
async fn scale(
    up: &Up,
    db: &sqlx::PgPool,
    count: u32,
    grows: bool,
) -> (Duration, Option<Duration>) {
    let before: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM events")
        .fetch_one(db)
        .await
        .unwrap();
    up.cli(&[
        "--org",
        "demo",
        "--app",
        "hello",
        "scale",
        &format!("web={count}"),
    ])
    .await
    .success();
    let row = sqlx::query(
        "SELECT at, payload FROM events WHERE seq > $1 AND kind = 'process_scaled' ORDER BY seq LIMIT 1",
    )
    .bind(before)
    .fetch_one(db)
    .await
    .unwrap();
    let committed: chrono::DateTime<chrono::Utc> = row.get("at");
    let payload: serde_json::Value = row.get("payload");
    let instance = payload["started"][0]["instance_id"]
        .as_str()
        .or_else(|| payload["stopped"][0].as_str())
        .unwrap()
        .to_owned();
    // Reports coalesce (only the latest state of an instance is sent), so the first one
    // recorded may already be past `pulling` or `stopping`: any first report counts.
    let reacted = observed(db, before, &instance, "any").await;
    let ready = if grows {
        Some(observed(db, before, &instance, "healthy").await)
    } else {
        // Let the stop finish before the next round starts another instance.
        observed(db, before, &instance, "stopped").await;
        None
    };
    let since = |at: chrono::DateTime<chrono::Utc>| (at - committed).to_std().unwrap_or_default();
    (since(reacted), ready.map(since))
}

/// Waits for the commit time of the report of `state` about `instance`.
async fn observed(
    db: &sqlx::PgPool,
    after: i64,
    instance: &str,
    state: &str,
) -> chrono::DateTime<chrono::Utc> {
    for _ in 0..6000 {
        let at: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
            "SELECT at FROM events WHERE seq > $1 AND kind = 'instance_observed' \
             AND payload->>'instance_id' = $2 AND ($3 = 'any' OR payload->>'state' = $3) \
             ORDER BY seq LIMIT 1",
        )
        .bind(after)
        .bind(instance)
        .bind(state)
        .fetch_optional(db)
        .await
        .unwrap();
        if let Some(at) = at {
            return at;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no `{state}` report for {instance}");
}

fn row(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| {what} | {} | {} | {} | {} |",
        ms(pick(0.5)),
        ms(pick(0.99)),
        ms(*samples.last().unwrap()),
        samples.len()
    );
}
