//! `zeitwork up` as an operator runs it and the CLI as a developer uses it, with real
//! processes: state must survive a crash, Ctrl-C must leave nothing behind, and the
//! projections must be exactly what replaying the event log yields.

use serde_json::{Value, json};
use sqlx::Connection;
use zeitwork_e2e::{Up, pluck, processes_mentioning};

const SECRET_VALUE: &str = "postgres://secret-value";

/// `args` acting on app hello of org acme.
fn hello<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["--org", "acme", "--app", "hello"][..], args].concat()
}

/// What `up` holds for org acme, as the CLI lists it: compared across a crash.
async fn listings(up: &Up) -> Vec<Value> {
    let mut all = Vec::new();
    for args in [
        &["--json", "orgs"][..],
        &["--json", "--org", "acme", "apps"],
        &["--json", "--org", "acme", "--app", "hello", "envs"],
        &["--json", "--org", "acme", "--app", "hello", "secrets"],
        &["--json", "--org", "acme", "tokens"],
    ] {
        all.push(up.cli(args).await.json());
    }
    all
}

/// The whole single-machine story: log in, create every kind of object, hit each error
/// exit code, crash `up` with SIGKILL, restart it and find everything (and the login)
/// intact, then stop it with Ctrl-C and find no server left running.
#[tokio::test]
async fn up_serves_the_cli_and_keeps_every_object_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(dir.path().join("data")).await;
    let admin = up
        .admin_token()
        .expect("the first start prints the admin token")
        .to_owned();
    assert!(admin.starts_with("zw_"), "{}", up.banner());
    let saved = std::fs::read_to_string(up.data_dir().join("admin-token")).unwrap();
    assert_eq!(saved.trim(), admin);

    up.cli(&["login", "--api", up.api(), "--token", &admin])
        .await
        .success();
    up.cli(&["orgs", "create", "acme"]).await.success();
    up.cli(&["--org", "acme", "apps", "create", "hello"])
        .await
        .success();
    let db_url = format!("DB_URL={SECRET_VALUE}");
    up.cli(&hello(&["secrets", "set", &db_url, "API_KEY=k"]))
        .await
        .success();
    up.cli(&hello(&["envs", "create", "staging"]))
        .await
        .success();
    let created = up
        .cli(&[
            "--json", "--org", "acme", "tokens", "create", "ci", "--role", "deployer",
        ])
        .await
        .json();
    let ci = created["secret"]
        .as_str()
        .expect("the new token's secret")
        .to_owned();
    assert!(ci.starts_with("zw_") && ci != admin, "{created:#}");
    assert_eq!(created["token"]["role"], "deployer", "{created:#}");

    let before = listings(&up).await;
    let [orgs, apps, envs, secrets, tokens] = &before[..] else {
        unreachable!()
    };
    assert_eq!(pluck(orgs, "orgs", "name"), [&json!("acme")]);
    assert_eq!(pluck(apps, "apps", "name"), [&json!("hello")]);
    let mut env_names = pluck(envs, "envs", "name");
    env_names.sort_by_key(|v| v.to_string());
    assert_eq!(env_names, [&json!("prod"), &json!("staging")]);
    let mut versions: Vec<(String, i64)> = secrets["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["version"].as_i64().unwrap(),
            )
        })
        .collect();
    versions.sort();
    assert_eq!(
        versions,
        [("API_KEY".to_owned(), 1), ("DB_URL".to_owned(), 1)]
    );
    assert_eq!(pluck(tokens, "tokens", "name"), [&json!("ci")]);
    assert_eq!(pluck(tokens, "tokens", "role"), [&json!("deployer")]);

    // The new token works, within its role.
    let as_ci = ["--token", ci.as_str(), "--org", "acme"];
    let seen = up
        .cli(&[&as_ci[..], &["--json", "apps"]].concat())
        .await
        .json();
    assert_eq!(pluck(&seen, "apps", "name"), [&json!("hello")]);
    up.cli(&[&as_ci[..], &["apps", "create", "other"]].concat())
        .await
        .exit(5);

    // Every error exit code, through the real API.
    up.cli(&["--org", "acme", "apps", "create", "hello"])
        .await
        .exit(4);
    let bad = up
        .cli(&["--org", "acme", "apps", "create", "Bad_Name"])
        .await
        .exit(1);
    assert_eq!(bad.stderr.lines().count(), 1, "{bad:#?}");
    assert!(bad.stderr.contains("field: name"), "{bad:#?}");
    up.cli(&["--org", "nope", "apps"]).await.exit(3);
    up.cli(&["--token", "zw_bad", "--org", "acme", "apps"])
        .await
        .exit(5);
    up.cli(&hello(&["scale", "web"])).await.exit(2);

    // A crash: the next start adopts the orphaned servers and keeps all state.
    up.kill().await;
    let orphans = processes_mentioning(up.data_dir());
    assert!(
        !orphans.is_empty(),
        "Postgres and NATS outlive a killed `up`"
    );
    up.restart().await;
    assert_eq!(
        up.admin_token(),
        None,
        "a restart prints no new token:\n{}",
        up.banner()
    );
    assert!(!up.banner().contains(&admin), "{}", up.banner());
    let saved_again = std::fs::read_to_string(up.data_dir().join("admin-token")).unwrap();
    assert_eq!(saved_again, saved, "the saved admin token is unchanged");
    assert_eq!(
        listings(&up).await,
        before,
        "the saved login sees the same objects"
    );
    let seen = up
        .cli(&[&as_ci[..], &["--json", "apps"]].concat())
        .await
        .json();
    assert_eq!(pluck(&seen, "apps", "name"), [&json!("hello")]);

    // The secret's value was sent once and never came back, not even in the event log.
    up.cli(&["--json", "events"]).await.success();
    up.cli(&["--org", "acme", "events"]).await.success();
    let transcript = up.transcript();
    assert!(transcript.contains("DB_URL"), "the transcript is real");
    assert!(
        !transcript.contains(SECRET_VALUE),
        "a secret value was printed:\n{transcript}"
    );

    let status = up.interrupt().await;
    assert!(status.success(), "Ctrl-C is a clean stop: {status}");
    let left = processes_mentioning(up.data_dir());
    assert!(left.is_empty(), "servers outlived `zeitwork up`: {left:#?}");
}

/// `zeitwork admin rebuild-projections` replays the log into the tables the live API
/// wrote; any projection that its events do not fully describe shows up as a difference.
#[tokio::test]
async fn rebuild_projections_matches_the_live_tables() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path().join("data")).await;
    up.login_as_admin().await;
    let image = format!("127.0.0.1:5000/hello@sha256:{}", "ab".repeat(32));
    up.cli(&["orgs", "create", "acme"]).await.success();
    for app in ["hello", "world"] {
        up.cli(&["--org", "acme", "apps", "create", app])
            .await
            .success();
    }
    up.cli(&hello(&["envs", "create", "staging"]))
        .await
        .success();
    up.cli(&hello(&["secrets", "set", "A=1", "B=2"]))
        .await
        .success();
    up.cli(&hello(&["secrets", "set", "A=3"])).await.success();
    up.cli(&hello(&["secrets", "unset", "B"])).await.success();
    up.cli(&hello(&["--env", "staging", "secrets", "set", "C=4"]))
        .await
        .success();
    let route = [
        "--process",
        "web",
        "--port",
        "8080",
        "--host",
        "www.example.com",
    ];
    // www.example.com is no verified domain of the env: refused, in one line.
    let refused = up
        .cli(&hello(&[&["routes", "add"][..], &route].concat()))
        .await
        .exit(4);
    assert!(
        refused
            .stderr
            .contains("zeitwork domains add www.example.com")
            && refused.stderr.trim().lines().count() == 1,
        "{refused:#?}"
    );
    let tcp = [
        "routes",
        "add",
        "--process",
        "web",
        "--port",
        "5432",
        "--mode",
        "tcp",
    ];
    let added = up.cli(&hello(&tcp)).await.success();
    assert!(
        added
            .stdout
            .contains("clients connect to port 20000 of every edge"),
        "the first port of the default range: {added:#?}"
    );
    up.cli(&hello(&["deploy", "--image", &image]))
        .await
        .success();
    let status = up
        .cli(&["--json", "--org", "acme", "--app", "hello", "status"])
        .await
        .json();
    let instances = status["instances"].as_array().expect("instances");
    assert!(
        !instances.is_empty(),
        "the deploy planned instances: {status:#}"
    );
    let events = up.cli(&["--json", "events"]).await.json();
    let event_count = events["events"].as_array().expect("events").len();

    let mut db = sqlx::PgConnection::connect(&up.database_url())
        .await
        .unwrap();
    let live = zeitwork_store::rebuild::snapshot(&mut db).await.unwrap();
    let rebuilt = up
        .cli(&[
            "admin",
            "rebuild-projections",
            "--database-url",
            &up.database_url(),
        ])
        .await
        .success();
    assert!(
        rebuilt
            .stdout
            .contains(&format!("from {event_count} events")),
        "every event was replayed: {rebuilt:#?}"
    );
    let replayed = zeitwork_store::rebuild::snapshot(&mut db).await.unwrap();

    let rows = |table: &str| live[table].as_array().map_or(0, Vec::len);
    let sizes = [
        ("orgs", 1),
        ("apps", 2),
        ("envs", 3),
        ("secrets", 2),
        ("routes", 1),
    ];
    for (table, expected) in sizes {
        assert_eq!(rows(table), expected, "{table}: {:#}", live[table]);
    }
    let a = live["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "A");
    assert_eq!(
        a.map(|s| &s["version"]),
        Some(&json!(2)),
        "{:#}",
        live["secrets"]
    );
    for table in ["releases", "deployments", "process_types", "instances"] {
        assert!(rows(table) >= 1, "{table} is empty");
    }
    for (table, rows) in &live {
        assert_eq!(&replayed[table], rows, "{table} differs after the rebuild");
    }
    assert_eq!(replayed, live);
}
