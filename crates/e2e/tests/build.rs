//! A Dockerfile built inside a microVM (real QEMU, real buildah in the builder guest made
//! from Debian's packages): the context goes in through the VM's scratch disk, the image
//! comes out as an OCI archive and is pushed byte for byte to a registry, where it pulls
//! back with the Dockerfile's command, port, build argument and files. A failing step fails
//! the build with its output in the log.

use std::collections::BTreeMap;
use std::time::Duration;

use zeitwork_agent::build::{BuildError, BuildLimits, BuildSpec, build};
use zeitwork_image::{Auth, ImageStore, PushOptions, pin, push_oci_archive};

const DOCKERFILE: &str = r#"FROM scratch
ARG GREETING=hi
COPY hello /hello
EXPOSE 8080
LABEL greeting=$GREETING
CMD ["/hello"]
"#;

fn spec(name: &str, context: &std::path::Path, slot: u32) -> BuildSpec {
    BuildSpec {
        id: format!("zw-build-{name}-{}", std::process::id()),
        context: context.to_owned(),
        bases: context.join("no-bases"),
        dockerfile: "Dockerfile".into(),
        target: None,
        build_args: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
        limits: BuildLimits {
            vcpus: 2,
            memory_mb: 1024,
            disk_mb: 2048,
            time: Duration::from_secs(600),
        },
        slot,
        cache_disk: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dockerfile_is_built_in_a_microvm_and_pushed_as_built() {
    assert!(
        rustix::process::geteuid().is_root(),
        "cannot run: microVMs need root"
    );
    let (guest, rootfs, qemu) = zeitwork_e2e::builder().await;

    let context = zeitwork_e2e::hello_context(DOCKERFILE);
    let run = tempfile::tempdir().unwrap();
    let built = build(
        &qemu,
        &guest,
        &rootfs,
        &spec("ok", context.path(), 4000),
        run.path(),
    )
    .await
    .unwrap_or_else(|e| panic!("the build failed: {e}\n{}", e.log().join("\n")));
    let log = built.log.join("\n");
    assert!(log.contains("COPY hello /hello"), "{log}");
    assert!(log.contains("zeitwork-build: done"), "{log}");

    let registry = zeitwork_services::Registry::throwaway().await.unwrap();
    let reference = format!("{}/acme/built:v1", registry.addr());
    let digest = push_oci_archive(&built.archive, &reference, &PushOptions::default())
        .await
        .expect("the archive pushes");
    let pinned = pin(&reference, &Auth::Anonymous).await.unwrap();
    assert_eq!(
        pinned,
        format!("{reference}@{digest}"),
        "the builder's own digest"
    );
    let images = tempfile::tempdir().unwrap();
    let rootfs_of_image = ImageStore::new(images.path())
        .unwrap()
        .rootfs(&pinned, &Auth::Anonymous)
        .await
        .unwrap();
    let config = &rootfs_of_image.config;
    assert_eq!(config.cmd, ["/hello"], "{config:?}");
    assert!(
        config.exposed_ports.iter().any(|p| p == "8080/tcp"),
        "{config:?}"
    );
    assert_eq!(
        config.labels.get("greeting").map(String::as_str),
        Some("hello")
    );

    // A step that cannot run fails the build, its output in the log, and nothing is made.
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nRUN /does-not-exist\n",
    )
    .unwrap();
    let run = tempfile::tempdir().unwrap();
    match build(
        &qemu,
        &guest,
        &rootfs,
        &spec("fail", context.path(), 4001),
        run.path(),
    )
    .await
    {
        Err(BuildError::Failed { reason, log }) => {
            let log = log.join("\n");
            assert!(reason.contains("exited with code"), "{reason}");
            assert!(log.contains("RUN /does-not-exist"), "{log}");
        }
        other => panic!("a failing RUN must fail the build: {other:?}"),
    }
    assert!(!run.path().join("image.tar").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_build_of_an_app_reuses_the_layers_of_its_cache_disk() {
    assert!(
        rustix::process::geteuid().is_root(),
        "cannot run: microVMs need root"
    );
    let (guest, rootfs, qemu) = zeitwork_e2e::builder().await;
    let context = zeitwork_e2e::hello_context(DOCKERFILE);
    let caches = tempfile::tempdir().unwrap();
    let cache = caches.path().join("app.ext4");
    let mut logs = Vec::new();
    for (round, slot) in [(0, 4010), (1, 4011)] {
        let run = tempfile::tempdir().unwrap();
        let spec = BuildSpec {
            cache_disk: Some(cache.clone()),
            ..spec(&format!("cached-{round}"), context.path(), slot)
        };
        let built = build(&qemu, &guest, &rootfs, &spec, run.path())
            .await
            .unwrap_or_else(|e| panic!("the build failed: {e}\n{}", e.log().join("\n")));
        logs.push(built.log.join("\n"));
    }
    assert!(cache.is_file(), "the cache disk is kept");
    assert!(
        logs[0].contains("with the app's layer cache"),
        "{}",
        logs[0]
    );
    assert!(!logs[0].contains("Using cache"), "{}", logs[0]);
    assert!(
        logs[1].contains("Using cache"),
        "the second build reuses the first's layers:\n{}",
        logs[1]
    );
}
