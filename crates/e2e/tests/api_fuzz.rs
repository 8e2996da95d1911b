//! The API against its own document: Schemathesis (a schema-driven fuzzer, from PyPI;
//! `scripts/test.sh` installs it) sends every operation of `/api/v1/openapi.json` data
//! drawn from its schemas, valid and invalid, at a real `zeitwork up`, and fails on any
//! 5xx or any answer the document does not describe (status, content type, body), on
//! invalid input accepted and on valid input refused. Settings and the operations left
//! out (and why) are in `crates/e2e/fuzz-api/schemathesis.toml`.

use std::process::Stdio;

use zeitwork_e2e::Up;

/// Operations the fuzzer leaves alone (see `fuzz-api/schemathesis.toml` for why).
const LEFT_OUT: &[&str] = &[
    "post_orgs_org_apps_app_envs_env_deployments",
    "post_orgs_org_apps_app_envs_env_rollback",
    "post_orgs_org_apps_app_envs_env_builds",
    "post_orgs_org_apps_app_envs_env_domains_hostname_verify",
    "get_events_stream",
    "get_orgs_org_apps_app_logs",
    "get_orgs_org_apps_app_envs_env_builds_id_logs",
    "get_exec_grant",
    "get_nodes_name_execs_grant",
    "delete_orgs_org",
    "delete_orgs_org_apps_app",
    "delete_orgs_org_apps_app_envs_env",
];

#[tokio::test]
async fn the_api_answers_what_its_document_says_for_any_input() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path().join("data")).await;
    up.login_as_admin().await;
    up.cli(&["orgs", "create", "acme"]).await.success();
    up.cli(&["--org", "acme", "apps", "create", "web"])
        .await
        .success();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz-api/schemathesis.toml");
    let reports = dir.path().join("reports");
    let mut fuzzer = tokio::process::Command::new("schemathesis");
    fuzzer.args(["--config-file", config, "run"]);
    for id in LEFT_OUT {
        fuzzer.args(["--exclude-operation-id", id]);
    }
    let out = fuzzer
        .arg(format!("{}/api/v1/openapi.json", up.api()))
        .args(["--url", up.api()])
        .args(["--phases", "examples,coverage,fuzzing", "--seed", "14"])
        .arg("--report-dir")
        .arg(&reports)
        .env(
            "ZW_TOKEN",
            up.admin_token().expect("a fresh `up` prints its token"),
        )
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("schemathesis must be installed (scripts/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the fuzzer found answers the document does not describe:\n{stdout}\n{stderr}"
    );
    let selected = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Selected: "))
        .and_then(|s| s.split('/').next())
        .and_then(|n| n.parse::<usize>().ok());
    assert!(
        selected.is_some_and(|n| n >= 60),
        "the fuzzer should test (nearly) every operation:\n{stdout}"
    );
}
