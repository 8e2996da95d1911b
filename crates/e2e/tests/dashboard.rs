//! The dashboard in a real browser: Debian's Chromium, driven by Playwright
//! (`web/e2e/*.spec.ts`, `npm run e2e`), against a real `zeitwork up` with the example
//! booted in a microVM. This test prepares the platform (a second release to roll back
//! from, another org to prove isolation), runs the browser tests, then kills NATS and runs
//! the ones that show the page keeps working without it.

use std::path::Path;
use std::time::Duration;

use rustix::process::Signal;
use zeitwork_e2e::{EXAMPLE_APP, EXAMPLE_HOST, example_manifest, poll_until, up_with_example};

const BOOT: Duration = Duration::from_secs(300);

/// Runs the browser tests of `phase` with the platform's coordinates; panics with their
/// output when one fails.
async fn browser_tests(phase: &str, env: &[(&str, &str)]) {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let out = tokio::process::Command::new("npm")
        .args(["run", "--silent", "e2e"])
        .current_dir(&web)
        .env("ZW_PHASE", phase)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("npm must be installed (scripts/build-web.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser tests ({phase}) failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}

#[tokio::test]
async fn the_dashboard_signs_in_shows_follows_scales_rolls_back_and_signs_out_in_chromium() {
    assert!(
        rustix::process::geteuid().is_root(),
        "cannot run: microVMs need root (taps, nftables, cgroups)"
    );
    let data = tempfile::tempdir().unwrap();
    let (up, image) = up_with_example(data.path(), BOOT).await;
    // Release 2 (the same image, its own manifest), so the page can roll back to 1.
    let files = tempfile::tempdir().unwrap();
    let manifest = example_manifest(files.path(), "2", "");
    let deploy = [
        &EXAMPLE_APP[..],
        &["deploy", "--image", &image, "--manifest", &manifest],
    ]
    .concat();
    up.cli(&deploy).await.success();
    poll_until(BOOT, || async {
        let out = up
            .cli(&[&EXAMPLE_APP[..], &["status", "--json"]].concat())
            .await;
        let status: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        let active = status["deployment"]["id"].clone();
        (status["deployment"]["release_number"] == 2
            && status["instances"]
                .as_array()?
                .iter()
                .any(|i| i["deployment_id"] == active && i["observed_state"] == "healthy"))
        .then_some(())
    })
    .await
    .expect("release 2 healthy");
    up.cli(&["orgs", "create", "other"]).await.success();
    let other = up
        .cli(&[
            "--org", "other", "tokens", "create", "browser", "--role", "reader",
        ])
        .await
        .success();
    let other = other
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("zw_"))
        .expect("`tokens create` prints the secret")
        .to_owned();

    let edge = up.edge_addr();
    let token = up
        .admin_token()
        .expect("a fresh `up` prints its token")
        .to_owned();
    let env = [
        ("ZW_URL", up.api()),
        ("ZW_TOKEN", token.as_str()),
        ("ZW_EDGE", edge.as_str()),
        ("ZW_APP_HOST", EXAMPLE_HOST),
        ("ZW_OTHER_TOKEN", other.as_str()),
    ];
    browser_tests("main", &env).await;

    // NATS goes away: the dashboard does not depend on it (its stream is the event log's).
    let pid_file = up.data_dir().join("nats/nats.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("NATS' pid file")
        .trim()
        .parse()
        .expect("a pid");
    assert!(zeitwork_e2e::signal(pid, Signal::KILL), "killing NATS");
    browser_tests("degraded", &env).await;
}
