//! The event log as a user reads it: `zeitwork events` pages through it in commit order
//! without gaps, and `zeitwork events -f` pushes a new event while it happens, through the
//! real operator's Server-Sent Events and the real CLI.

use std::process::Stdio;
use std::time::Duration;

use rustix::process::Signal;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;
use zeitwork_e2e::Up;

/// How long the follower may take to print an event.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(15);

/// Reads the follower's lines until one is an event of `kind` named `name`; panics after
/// [`FOLLOW_TIMEOUT`] or at the end of its output, quoting what it printed.
async fn wait_for(lines: &mut Lines<BufReader<ChildStdout>>, kind: &str, name: &str) -> Value {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + FOLLOW_TIMEOUT;
    loop {
        let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(other) => panic!("the follower stopped ({other:?}) before {kind} {name}: {seen:#?}"),
            Err(_) => panic!("no {kind} {name} within {FOLLOW_TIMEOUT:?}: {seen:#?}"),
        };
        let event: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("`events -f --json` printed a non-JSON line ({e}): {line}"));
        if event["data"]["type"] == kind && event["data"]["name"] == name {
            return event;
        }
        seen.push(line);
    }
}

#[tokio::test]
async fn events_follow_streams_new_events() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path().join("data")).await;
    up.login_as_admin().await;
    up.cli(&["orgs", "create", "acme"]).await.success();

    let mut follower = up
        .cli_command(&["--org", "acme", "events", "-f", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning `zeitwork events -f`");
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    // The stream replays the log first: seeing the org proves the follower is connected,
    // so the app below is created while it listens.
    let org = wait_for(&mut lines, "org_created", "acme").await;
    up.cli(&["--org", "acme", "apps", "create", "hello"])
        .await
        .success();
    let app = wait_for(&mut lines, "app_created", "hello").await;
    assert!(
        app["seq"].as_i64() > org["seq"].as_i64(),
        "{org} then {app}"
    );

    // Ctrl-C ends a follow cleanly.
    let pid = follower.id().expect("the follower runs");
    assert!(
        zeitwork_e2e::signal(pid, Signal::INT),
        "the follower is alive"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), follower.wait())
        .await
        .expect("the follower exits on Ctrl-C")
        .unwrap();
    assert!(
        status.success(),
        "Ctrl-C ends `events -f` with success: {status}"
    );

    let page = up.cli(&["--json", "events"]).await.json();
    let events = page["events"].as_array().expect("an events list");
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e["seq"].as_i64().expect("a seq"))
        .collect();
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "seq order, from 1, without gaps");
    assert_eq!(page["next"].as_i64(), seqs.last().copied(), "{page:#}");
    for kind in ["token_created", "org_created", "app_created"] {
        assert!(
            events.iter().any(|e| e["data"]["type"] == kind),
            "no {kind} in {page:#}"
        );
    }
    let app_seq = events
        .iter()
        .find(|e| e["data"]["type"] == "app_created")
        .map(|e| &e["seq"]);
    assert_eq!(
        app_seq,
        Some(&app["seq"]),
        "the followed event is the listed one"
    );
}
