//! The platform registry `zeitwork up` runs: the operator is its token service, an org's
//! token reaches that org's `<org>/...` repositories only (real skopeo, real
//! docker-registry), `zeitwork registry login` logs the container tools in, `zeitwork
//! deploy` pins a tag to its digest with those credentials, and the node pulls the image
//! with its own credential and serves it.

use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;
use zeitwork_e2e::{Up, poll_until, push_example, share_guest_cache};

const BOOT: Duration = Duration::from_secs(300);

/// `skopeo ARGS` against plain-HTTP registries; its exit status and stderr.
async fn skopeo(args: &[&str]) -> (bool, String) {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .await
        .expect("skopeo is installed (scripts/setup.sh installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn token(up: &Up, org: &str, role: &str) -> String {
    let out = up
        .cli(&[
            "--org", org, "tokens", "create", role, "--role", role, "--json",
        ])
        .await
        .success();
    out.json()["secret"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orgs_images_are_its_own_and_deploy_by_tag_from_the_platform_registry() {
    assert!(
        rustix::process::geteuid().is_root(),
        "cannot run: microVMs need root"
    );
    let data = tempfile::tempdir().unwrap();
    share_guest_cache(&data.path().join("node"));
    let up = Up::start_with(data.path(), "127.0.0.1", &["--no-example"]).await;
    assert!(
        up.banner()
            .contains(&format!("Registry:   {}", up.registry())),
        "{}",
        up.banner()
    );
    up.login_as_admin().await;
    for org in ["acme", "umbrella"] {
        up.cli(&["orgs", "create", org]).await.success();
    }
    let acme = token(&up, "acme", "deployer").await;
    let acme_reader = token(&up, "acme", "reader").await;
    let umbrella = token(&up, "umbrella", "admin").await;
    let registry = up.registry();
    let repo = format!("docker://{registry}/acme/hello:v1");

    // The image, pushed by acme with skopeo through the token flow.
    let source = zeitwork_services::Registry::throwaway().await.unwrap();
    let image = push_example(&source).await;
    let creds = |t: &str| format!("zeitwork:{t}");
    let copy = |creds: String, to: String| {
        let from = format!("docker://{image}");
        async move {
            skopeo(&[
                "copy",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "--dest-creds",
                &creds,
                &from,
                &to,
            ])
            .await
        }
    };
    let (pushed, err) = copy(creds(&acme), repo.clone()).await;
    assert!(pushed, "acme pushes to acme/: {err}");
    let inspect = |creds: Option<String>| {
        let repo = repo.clone();
        async move {
            let mut args = vec!["inspect".to_owned(), "--tls-verify=false".to_owned()];
            match creds {
                Some(c) => args.extend(["--creds".to_owned(), c]),
                None => args.push("--no-creds".to_owned()),
            }
            args.push(repo);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            skopeo(&args).await
        }
    };
    assert!(
        inspect(Some(creds(&acme_reader))).await.0,
        "a reader pulls its org's images"
    );
    // Another org can neither pull nor push acme's images, and nobody can anonymously.
    let (pulled, err) = inspect(Some(creds(&umbrella))).await;
    assert!(!pulled, "umbrella must not pull acme's image");
    assert!(
        err.contains("unauthorized") || err.contains("denied") || err.contains("401"),
        "{err}"
    );
    assert!(!inspect(None).await.0, "no anonymous pulls");
    let (pushed, _) = copy(
        creds(&umbrella),
        format!("docker://{registry}/acme/evil:v1"),
    )
    .await;
    assert!(!pushed, "umbrella must not push into acme/");
    let (pushed, _) = copy(
        creds(&acme_reader),
        format!("docker://{registry}/acme/hello:v2"),
    )
    .await;
    assert!(!pushed, "a reader must not push");
    let (pushed, err) = copy(
        creds(&umbrella),
        format!("docker://{registry}/umbrella/hello:v1"),
    )
    .await;
    assert!(pushed, "umbrella pushes to its own: {err}");
    // A bad password gets nothing at the token service.
    let (pulled, _) = inspect(Some("zeitwork:zw_not_a_token".into())).await;
    assert!(!pulled);

    // `zeitwork registry login` as acme: the container tools and the CLI use it.
    let home = tempfile::tempdir().unwrap();
    let auth_file = home.path().join("auth.json").display().to_string();
    let docker_dir = home.path().join("docker").display().to_string();
    let env = [
        ("REGISTRY_AUTH_FILE", auth_file.as_str()),
        ("DOCKER_CONFIG", docker_dir.as_str()),
        ("ZEITWORK_TOKEN", acme.as_str()),
    ];
    let login = up
        .cli_with_env(&["registry", "login"], &env)
        .await
        .success();
    assert!(login.stdout.contains(&registry), "{}", login.stdout);
    let (pulled, err) = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--authfile",
        &auth_file,
        &repo,
    ])
    .await;
    assert!(pulled, "skopeo uses the login: {err}");
    let docker_config: Value = serde_json::from_str(
        &std::fs::read_to_string(home.path().join("docker/config.json")).unwrap(),
    )
    .unwrap();
    assert!(
        docker_config["auths"][&registry]["auth"].is_string(),
        "{docker_config}"
    );

    // Deploy by tag: the CLI pins it with the login's credentials; the node pulls it with
    // its own.
    let app = ["--org", "acme", "--app", "hello"];
    up.cli(&["--org", "acme", "apps", "create", "hello"])
        .await
        .success();
    let tag = format!("{registry}/acme/hello:v1");
    let deployed = up
        .cli_with_env(&[&app[..], &["deploy", "--image", &tag]].concat(), &env)
        .await
        .success();
    let digest = image.rsplit_once('@').unwrap().1;
    assert!(
        deployed.stderr.contains(&format!("{tag} is {digest}")),
        "{}",
        deployed.stderr
    );
    assert!(
        deployed.stdout.contains(&format!("{tag}@{digest}")),
        "{}",
        deployed.stdout
    );
    let healthy = poll_until(BOOT, || async {
        let running = up.running_instances(&app).await?;
        (running.len() == 1 && running[0]["observed_state"] == "healthy").then_some(())
    })
    .await;
    assert!(
        healthy.is_some(),
        "the node pulled and booted it:\n{}",
        up.stderr()
    );
    // Without a login, a tag of a private registry cannot even be resolved.
    let empty = tempfile::tempdir().unwrap();
    let nobody = empty.path().join("auth.json").display().to_string();
    let refused = up
        .cli_with_env(
            &[&app[..], &["deploy", "--image", &tag]].concat(),
            &[
                ("REGISTRY_AUTH_FILE", nobody.as_str()),
                ("DOCKER_CONFIG", nobody.as_str()),
                ("HOME", nobody.as_str()),
                ("XDG_RUNTIME_DIR", nobody.as_str()),
                ("XDG_CONFIG_HOME", nobody.as_str()),
            ],
        )
        .await;
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert_eq!(
        refused.stderr.trim().lines().count(),
        1,
        "{}",
        refused.stderr
    );
}
