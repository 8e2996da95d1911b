//! A Dockerfile built inside a microVM (real QEMU, real buildah in the builder guest made
//! from Debian's packages): the context goes in through the VM's scratch disk, the image
//! comes out as an OCI archive and is pushed byte for byte to a registry, where it pulls
//! back with the Dockerfile's command, port, build argument and files. A failing step fails
//! the build with its output in the log. `RUN` steps reach the internet, never the node or
//! another VM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use zeitwork_agent::InstanceSpec;
use zeitwork_agent::build::{BuildError, BuildLimits, BuildSpec};
use zeitwork_image::{Auth, ImageStore, PushOptions, pin, push_oci_archive};
use zeitwork_net::{InstanceAddrs, Link, NodePrefix};

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
        network: None,
        cache_disk: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dockerfile_is_built_in_a_microvm_and_pushed_as_built() {
    assert!(
        rustix::process::geteuid().is_root(),
        "cannot run: microVMs need root"
    );
    let node = zeitwork_e2e::builder().await;

    let context = zeitwork_e2e::hello_context(DOCKERFILE);
    let run = tempfile::tempdir().unwrap();
    let built = node
        .runtime
        .build(&node.rootfs, &spec("ok", context.path(), 4000), run.path())
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
    match node
        .runtime
        .build(
            &node.rootfs,
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
    let node = zeitwork_e2e::builder().await;
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
        let built = node
            .runtime
            .build(&node.rootfs, &spec, run.path())
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

/// A name and port on the internet that answers: Debian's mirror, which the builder guest
/// comes from anyway.
const INTERNET: &str = "deb.debian.org:80";

/// A builder's `RUN` steps reach the internet (the name resolved through the host's
/// resolver, then a TCP connection), but neither the node nor another VM, whose
/// connections time out (dropped by the firewall, while the same listeners answer the
/// host); its link is gone after the build. Without network, nothing resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_builders_run_steps_reach_the_internet_but_not_the_node_or_other_vms() {
    assert!(
        rustix::process::geteuid().is_root(),
        "cannot run: microVMs need root"
    );
    let node = zeitwork_e2e::builder().await;
    // Another tenant's instance, serving: the host reaches it.
    let registry = zeitwork_services::Registry::throwaway().await.unwrap();
    let image = zeitwork_e2e::push_example(&registry).await;
    let web = node
        .runtime
        .start(&InstanceSpec {
            id: format!("zw-build-neighbour-{}", std::process::id()),
            image,
            command: None,
            env: BTreeMap::new(),
            secrets: BTreeMap::new(),
            port: Some(8080),
            port_from_image: false,
            vcpus: 1,
            memory_mb: 128,
            cpu_weight: 100,
            net_index: 20,
        })
        .await
        .unwrap();
    let instance = SocketAddr::from((web.guest_ipv4(), 8080));
    let serving = zeitwork_e2e::poll_until(Duration::from_secs(90), || async {
        tokio::net::TcpStream::connect(instance)
            .await
            .ok()
            .map(drop)
    })
    .await;
    assert!(serving.is_some(), "the neighbour never served the host");
    // A port of the host's, on every address, the builder's gateway included.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let prefix = NodePrefix::parse(zeitwork_e2e::BUILDER_PREFIX).unwrap();
    let (index, addrs) = InstanceAddrs::for_builder(prefix, 0).unwrap();
    let port = listener.local_addr().unwrap().port();
    let host = SocketAddr::from((addrs.host4, port));
    // The host reaches the listener (at loopback: the firewall refuses the host's own
    // connections to pool addresses, its links' ends included).
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    );

    let context = zeitwork_e2e::hello_context(&format!(
        "FROM scratch\nCOPY hello /hello\nRUN [\"/hello\", \"probe\", \"{INTERNET}\"]\n\
         RUN [\"/hello\", \"probe\", \"{host}\", \"{instance}\"]\n"
    ));
    let run = tempfile::tempdir().unwrap();
    let networked = BuildSpec {
        network: Some(0),
        ..spec("net", context.path(), 4020)
    };
    let log = match node
        .runtime
        .build(&node.rootfs, &networked, run.path())
        .await
    {
        Err(BuildError::Failed { log, .. }) => log.join("\n"),
        other => panic!("the second step's probes must fail the build: {other:?}"),
    };
    for line in [
        format!("hello: probe {INTERNET}: connected"),
        format!("hello: probe {host}: connection timed out"),
        format!("hello: probe {instance}: connection timed out"),
    ] {
        assert!(log.contains(&line), "{line:?} in:\n{log}");
    }
    let links = Link::list().await.unwrap();
    assert!(
        !links.contains(&zeitwork_net::link_name(index)),
        "the builder's link is removed: {links:?}"
    );

    let run = tempfile::tempdir().unwrap();
    let log = match node
        .runtime
        .build(
            &node.rootfs,
            &spec("offline", context.path(), 4021),
            run.path(),
        )
        .await
    {
        Err(BuildError::Failed { log, .. }) => log.join("\n"),
        other => panic!("a build without network reaches nothing: {other:?}"),
    };
    assert!(
        log.contains(&format!("hello: probe {INTERNET}: cannot resolve")),
        "{log}"
    );
    web.stop(Duration::from_secs(5)).await.unwrap();
}
