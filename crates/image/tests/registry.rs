//! Pull and push against a real registry (Debian's `docker-registry` on loopback), building real
//! ext4 images with `mkfs.ext4` and reading them back with `debugfs`. Needs root (file owners).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest as _;

use zeitwork_image::{
    Auth, ImageConfig, ImageError, ImageStore, LayerBlob, PushOptions, push_directory, push_image,
};
use zeitwork_services::Registry;

fn debugfs(image: &Path, request: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", request])
        .arg(image)
        .output()
        .expect("debugfs (e2fsprogs) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ls -p` of a directory in the image: `(name, mode, uid, gid)` without `.`, `..`,
/// `lost+found`.
fn list(image: &Path, dir: &str) -> Vec<(String, String, String, String)> {
    debugfs(image, &format!("ls -p {dir}"))
        .lines()
        .filter_map(|line| {
            // /INODE/MODE/UID/GID/NAME/SIZE/
            let fields: Vec<&str> = line.split('/').collect();
            (fields.len() >= 6).then(|| {
                (
                    fields[5].to_owned(),
                    fields[2].to_owned(),
                    fields[3].to_owned(),
                    fields[4].to_owned(),
                )
            })
        })
        .filter(|(name, ..)| !matches!(name.as_str(), "." | ".." | "lost+found"))
        .collect()
}

fn names(image: &Path, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = list(image, dir).into_iter().map(|e| e.0).collect();
    names.sort();
    names
}

fn stat_field<'a>(stat: &'a str, field: &str) -> &'a str {
    let start = stat
        .find(field)
        .unwrap_or_else(|| panic!("{field} in {stat}"))
        + field.len();
    stat[start..].split_whitespace().next().unwrap()
}

/// Files, directories and blobs left in the cache (lock files are bookkeeping).
/// A failed pull must leave nothing behind in the cache.
fn assert_cache_empty(cache: &Path) {
    let left = cache_files(cache);
    assert!(left.is_empty(), "{left:?}");
}

/// Changes the stored bytes of the first layer of `manifest` behind the registry's back.
fn rewrite_first_layer(registry: &Registry, manifest: &str, change: impl FnOnce(&mut Vec<u8>)) {
    let layer = registry_blob(registry, &layer_digests(registry, manifest)[0]);
    let mut bytes = std::fs::read(&layer).unwrap();
    change(&mut bytes);
    std::fs::write(&layer, &bytes).unwrap();
}

fn cache_files(cache: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in ["blobs", "rootfs", "tmp"] {
        for entry in std::fs::read_dir(cache.join(dir)).unwrap() {
            found.push(entry.unwrap().path());
        }
    }
    found
}

/// A tree with what an image must carry faithfully.
fn sample_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("bin")).unwrap();
    std::fs::create_dir_all(p.join("srv/deep/er")).unwrap();
    std::fs::create_dir_all(p.join("home/app")).unwrap();
    std::fs::write(p.join("bin/app"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(p.join("bin/app"), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(p.join("bin/su"), b"setuid").unwrap();
    std::fs::set_permissions(p.join("bin/su"), PermissionsExt::from_mode(0o4755)).unwrap();
    std::fs::write(p.join("secret"), b"s3cr3t").unwrap();
    std::fs::set_permissions(p.join("secret"), PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::hard_link(p.join("bin/app"), p.join("bin/app-again")).unwrap();
    std::os::unix::fs::symlink("/bin/app", p.join("entry")).unwrap();
    std::fs::write(p.join("srv/deep/er/data.txt"), b"nested").unwrap();
    std::fs::write(p.join("home/app/notes"), b"mine").unwrap();
    std::os::unix::fs::chown(p.join("home/app"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::chown(p.join("home/app/notes"), Some(1000), Some(1000)).unwrap();
    for dir in ["", "bin", "srv", "srv/deep", "srv/deep/er", "home"] {
        std::fs::set_permissions(p.join(dir), PermissionsExt::from_mode(0o755)).unwrap();
    }
    dir
}

fn sample_config() -> ImageConfig {
    ImageConfig {
        entrypoint: vec!["/bin/app".into()],
        cmd: vec!["--port".into(), "8080".into()],
        env: vec!["PATH=/bin".into(), "MODE=test".into()],
        working_dir: Some("/srv".into()),
        user: Some("1000:1000".into()),
        exposed_ports: vec!["8080/tcp".into()],
        ..ImageConfig::default()
    }
}

fn keep_owners() -> PushOptions {
    PushOptions {
        keep_owners: true,
        ..PushOptions::default()
    }
}

#[tokio::test]
async fn a_pushed_directory_pulls_back_as_a_faithful_ext4_image() {
    let registry = Registry::throwaway().await.unwrap();
    let tree = sample_tree();
    let reference = format!("{}/team/app:v1", registry.addr());
    let digest = push_directory(tree.path(), &reference, &sample_config(), &keep_owners())
        .await
        .unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let again = push_directory(tree.path(), &reference, &sample_config(), &keep_owners())
        .await
        .unwrap();
    assert_eq!(again, digest, "pushing is deterministic");

    let cache = tempfile::tempdir().unwrap();
    let store = ImageStore::new(cache.path()).unwrap();
    let pinned = format!("{}/team/app@{digest}", registry.addr());
    let rootfs = store.rootfs(&pinned, &Auth::Anonymous).await.unwrap();
    assert_eq!(rootfs.digest, digest);
    assert_eq!(rootfs.manifest_digest, digest);
    assert_eq!(rootfs.config, sample_config());
    assert!(rootfs.path.starts_with(cache.path()));
    let image = &rootfs.path;

    assert_eq!(
        names(image, "/"),
        ["bin", "entry", "home", "secret", "srv"],
        "{:?}",
        list(image, "/")
    );
    let root = debugfs(image, "stat /");
    assert_eq!(stat_field(&root, "Mode:"), "0755");
    assert_eq!(stat_field(&root, "User:"), "0");

    let app = debugfs(image, "stat /bin/app");
    assert_eq!(stat_field(&app, "Mode:"), "0755");
    assert_eq!(stat_field(&app, "User:"), "0");
    assert_eq!(stat_field(&app, "Links:"), "2", "hard link kept: {app}");
    let again = debugfs(image, "stat /bin/app-again");
    assert_eq!(stat_field(&again, "Inode:"), stat_field(&app, "Inode:"));
    assert_eq!(
        stat_field(&debugfs(image, "stat /bin/su"), "Mode:"),
        "04755"
    );
    assert_eq!(stat_field(&debugfs(image, "stat /secret"), "Mode:"), "0600");
    let link = debugfs(image, "stat /entry");
    assert!(link.contains("Type: symlink"), "{link}");
    assert!(link.contains("Fast link dest: \"/bin/app\""), "{link}");
    let home = debugfs(image, "stat /home/app");
    assert_eq!(stat_field(&home, "User:"), "1000");
    assert_eq!(stat_field(&home, "Group:"), "1000");
    assert_eq!(
        stat_field(&debugfs(image, "stat /home/app/notes"), "User:"),
        "1000"
    );
    assert_eq!(debugfs(image, "cat /srv/deep/er/data.txt"), "nested");
    assert_eq!(debugfs(image, "cat /secret"), "s3cr3t");

    // Cached: no registry needed any more, in this process or a new one.
    registry.stop().await.unwrap();
    let cached = store.rootfs(&pinned, &Auth::Anonymous).await.unwrap();
    assert_eq!(cached, rootfs);
    let fresh = ImageStore::new(cache.path()).unwrap();
    assert_eq!(
        fresh.rootfs(&pinned, &Auth::Anonymous).await.unwrap(),
        rootfs
    );
    assert_eq!(fresh.cached(&digest).await.unwrap(), Some(rootfs));
    // A tag must be resolved, which needs the registry.
    let err = fresh
        .rootfs(&reference, &Auth::Anonymous)
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err}");
}

/// A layer made entry by entry.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn entry(mut self, kind: tar::EntryType, path: &str, data: &[u8]) -> Layer {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        header.set_size(data.len() as u64);
        header.set_mtime(1_700_000_000);
        self.0.append_data(&mut header, path, data).unwrap();
        self
    }

    fn dir(self, path: &str) -> Layer {
        self.entry(tar::EntryType::Directory, path, b"")
    }

    fn file(self, path: &str, data: &[u8]) -> Layer {
        self.entry(tar::EntryType::Regular, path, data)
    }

    fn tar(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

#[tokio::test]
async fn layers_stack_with_whiteouts_opaque_dirs_and_zstd() {
    let registry = Registry::throwaway().await.unwrap();
    let lower = Layer::new()
        .dir("etc")
        .file("etc/keep.conf", b"keep")
        .file("etc/drop.conf", b"drop")
        .dir("var")
        .dir("var/cache")
        .file("var/cache/old", b"old")
        .dir("var/cache/sub")
        .file("var/cache/sub/older", b"older")
        .file("replaced", b"v1")
        .tar();
    let upper = Layer::new()
        .file("etc/.wh.drop.conf", b"")
        .dir("var/cache")
        .file("var/cache/.wh..wh..opq", b"")
        .file("var/cache/new", b"new")
        .file("replaced", b"v2")
        .tar();
    let reference = format!("{}/layers:latest", registry.addr());
    let digest = push_image(
        &reference,
        &[LayerBlob::gzip(&lower), LayerBlob::zstd(&upper)],
        &ImageConfig::default(),
        &PushOptions::default(),
    )
    .await
    .unwrap();

    let cache = tempfile::tempdir().unwrap();
    let store = ImageStore::new(cache.path()).unwrap();
    let rootfs = store.rootfs(&reference, &Auth::Anonymous).await.unwrap();
    assert_eq!(
        rootfs.digest, digest,
        "the tag resolved to the pushed digest"
    );
    let image = &rootfs.path;
    assert_eq!(names(image, "/"), ["etc", "replaced", "var"]);
    assert_eq!(names(image, "/etc"), ["keep.conf"]);
    assert_eq!(names(image, "/var/cache"), ["new"]);
    assert_eq!(debugfs(image, "cat /replaced"), "v2");
    let mtime = debugfs(image, "stat /etc/keep.conf");
    assert!(mtime.contains("mtime: 0x6553f100"), "times kept: {mtime}");

    // An uncompressed layer works too.
    let plain = format!("{}/plain:1", registry.addr());
    push_image(
        &plain,
        &[LayerBlob::tar(Layer::new().file("only", b"x").tar())],
        &ImageConfig::default(),
        &PushOptions::default(),
    )
    .await
    .unwrap();
    let rootfs = store.rootfs(&plain, &Auth::Anonymous).await.unwrap();
    assert_eq!(names(&rootfs.path, "/"), ["only"]);
}

/// Pushes an OCI index for `platforms`, each entry pointing at `manifest`.
async fn push_index(
    registry: &Registry,
    repository: &str,
    manifest: &str,
    platforms: &[(&str, &str)],
) -> String {
    let reference: oci_client::Reference = format!("{}/{repository}:multi", registry.addr())
        .parse()
        .unwrap();
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let manifest_reference = reference.clone_with_digest(manifest.to_owned());
    let (bytes, _) = client
        .pull_manifest_raw(
            &manifest_reference,
            &oci_client::secrets::RegistryAuth::Anonymous,
            &["application/vnd.oci.image.manifest.v1+json"],
        )
        .await
        .unwrap();
    let entries: Vec<serde_json::Value> = platforms
        .iter()
        .map(|(os, arch)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest,
                "size": bytes.len(),
                "platform": {"os": os, "architecture": arch}
            })
        })
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .unwrap();
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&index)));
    client
        .push_manifest_raw(
            &reference,
            index,
            "application/vnd.oci.image.index.v1+json".parse().unwrap(),
        )
        .await
        .unwrap();
    digest
}

#[tokio::test]
async fn an_index_resolves_to_its_linux_amd64_image() {
    let registry = Registry::throwaway().await.unwrap();
    let tree = sample_tree();
    let manifest = push_directory(
        tree.path(),
        &format!("{}/multi:amd64", registry.addr()),
        &sample_config(),
        &PushOptions::default(),
    )
    .await
    .unwrap();
    let index = push_index(
        &registry,
        "multi",
        &manifest,
        &[("linux", "arm64"), ("linux", "amd64")],
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let store = ImageStore::new(cache.path()).unwrap();
    let pinned = format!("{}/multi@{index}", registry.addr());
    let rootfs = store.rootfs(&pinned, &Auth::Anonymous).await.unwrap();
    assert_eq!(rootfs.digest, index);
    assert_eq!(rootfs.manifest_digest, manifest);
    assert_eq!(rootfs.config, sample_config());
    // Owners were not kept on push: everything is root's.
    let home = debugfs(&rootfs.path, "stat /home/app");
    assert_eq!(stat_field(&home, "User:"), "0");

    let arm = push_directory(
        tree.path(),
        &format!("{}/arm:only", registry.addr()),
        &sample_config(),
        &PushOptions::default(),
    )
    .await
    .unwrap();
    let arm_only = push_index(&registry, "arm", &arm, &[("linux", "arm64")]).await;
    let err = store
        .rootfs(
            &format!("{}/arm@{arm_only}", registry.addr()),
            &Auth::Anonymous,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NoPlatform { .. }), "{err}");
    assert!(err.to_string().contains("linux/arm64"), "{err}");
}

#[tokio::test]
async fn a_digest_the_registry_does_not_have_is_manifest_unknown() {
    let registry = Registry::throwaway().await.unwrap();
    let tree = sample_tree();
    push_directory(
        tree.path(),
        &format!("{}/app:v1", registry.addr()),
        &ImageConfig::default(),
        &PushOptions::default(),
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let store = ImageStore::new(cache.path()).unwrap();
    let wrong = format!("{}/app@sha256:{}", registry.addr(), "0".repeat(64));
    let err = store.rootfs(&wrong, &Auth::Anonymous).await.unwrap_err();
    assert!(matches!(err, ImageError::ManifestUnknown { .. }), "{err}");
    assert!(err.to_string().contains(&"0".repeat(64)), "{err}");
    let missing_repo = format!("{}/nothing:v1", registry.addr());
    let err = store
        .rootfs(&missing_repo, &Auth::Anonymous)
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::ManifestUnknown { .. }), "{err}");
    assert_cache_empty(cache.path());
}

/// The file where the registry keeps blob `digest`.
fn registry_blob(registry: &Registry, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    registry
        .storage_dir()
        .unwrap()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// The layer digests of a pushed image, from the registry's copy of its manifest.
fn layer_digests(registry: &Registry, manifest: &str) -> Vec<String> {
    let bytes = std::fs::read(registry_blob(registry, manifest)).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn corrupt_content_is_refused_and_leaves_nothing_behind() {
    let registry = Registry::throwaway().await.unwrap();
    let tree = sample_tree();
    let cache = tempfile::tempdir().unwrap();
    let store = ImageStore::new(cache.path()).unwrap();

    // Same size, other bytes.
    let flipped = push_directory(
        tree.path(),
        &format!("{}/flipped:v1", registry.addr()),
        &ImageConfig::default(),
        &PushOptions::default(),
    )
    .await
    .unwrap();
    rewrite_first_layer(&registry, &flipped, |bytes| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
    });
    let err = store
        .rootfs(
            &format!("{}/flipped@{flipped}", registry.addr()),
            &Auth::Anonymous,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("layer 1"), "{err}");
    assert_cache_empty(cache.path());

    // Longer than the manifest says.
    std::fs::write(tree.path().join("extra"), b"make the digest differ").unwrap();
    let longer = push_directory(
        tree.path(),
        &format!("{}/longer:v1", registry.addr()),
        &ImageConfig::default(),
        &PushOptions::default(),
    )
    .await
    .unwrap();
    rewrite_first_layer(&registry, &longer, |bytes| {
        bytes.extend_from_slice(&[0; 4096])
    });
    let err = store
        .rootfs(
            &format!("{}/longer@{longer}", registry.addr()),
            &Auth::Anonymous,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::SizeMismatch { .. } | ImageError::DigestMismatch { .. }
        ),
        "{err}"
    );
    assert_cache_empty(cache.path());

    // A manifest that is not the one its digest names.
    let manifest = registry_blob(&registry, &flipped);
    let text = std::fs::read_to_string(&manifest).unwrap();
    let at = text.find("\"digest\":\"sha256:").unwrap() + "\"digest\":\"sha256:".len();
    let swapped = if &text[at..=at] == "0" { "1" } else { "0" };
    let tampered = format!("{}{swapped}{}", &text[..at], &text[at + 1..]);
    std::fs::write(&manifest, tampered).unwrap();
    let err = store
        .rootfs(
            &format!("{}/flipped@{flipped}", registry.addr()),
            &Auth::Anonymous,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("the manifest of"), "{err}");
    assert_cache_empty(cache.path());
}

#[tokio::test]
async fn bad_references_and_unreachable_registries_are_reported() {
    let cache = tempfile::tempdir().unwrap();
    let store = ImageStore::new(cache.path()).unwrap();
    for bad in ["Not A Reference", "app@sha256:short", "app:bad:tag"] {
        let err = store.rootfs(bad, &Auth::Anonymous).await.unwrap_err();
        assert!(
            matches!(err, ImageError::BadReference { .. }),
            "{bad}: {err}"
        );
    }
    let closed = zeitwork_services::free_port();
    let err = store
        .rootfs(&format!("127.0.0.1:{closed}/app:v1"), &Auth::Anonymous)
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&closed.to_string()), "{err}");
    assert_cache_empty(cache.path());
}

#[tokio::test]
async fn concurrent_requests_build_once_and_gc_frees_unused_images() {
    let registry = Registry::throwaway().await.unwrap();
    let tree = sample_tree();
    let first = push_directory(
        tree.path(),
        &format!("{}/one:v1", registry.addr()),
        &ImageConfig::default(),
        &PushOptions::default(),
    )
    .await
    .unwrap();
    std::fs::write(tree.path().join("second"), b"2").unwrap();
    let second = push_directory(
        tree.path(),
        &format!("{}/two:v1", registry.addr()),
        &ImageConfig::default(),
        &PushOptions::default(),
    )
    .await
    .unwrap();

    let cache = tempfile::tempdir().unwrap();
    let store = ImageStore::new(cache.path()).unwrap();
    let other_store = ImageStore::new(cache.path()).unwrap();
    let one = format!("{}/one@{first}", registry.addr());
    let two = format!("{}/two@{second}", registry.addr());
    let (a, b, c) = tokio::join!(
        store.rootfs(&one, &Auth::Anonymous),
        other_store.rootfs(&one, &Auth::Anonymous),
        store.rootfs(&two, &Auth::Anonymous),
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(a, b);
    assert_ne!(a.path, c.path);
    assert_eq!(debugfs(&a.path, "cat /bin/app"), "#!/bin/sh\necho hi\n");

    let freed = store.gc(&[&first]).await.unwrap();
    assert!(freed > 0);
    assert!(a.path.exists());
    assert!(!c.path.exists());
    assert_eq!(store.cached(&second).await.unwrap(), None);
    assert!(store.cached(&first).await.unwrap().is_some());

    // Collected images are pulled again on demand.
    let again = store.rootfs(&two, &Auth::Anonymous).await.unwrap();
    assert!(again.path.exists());

    store.gc(&[]).await.unwrap();
    assert_cache_empty(cache.path());
    assert_eq!(other_store.cached(&first).await.unwrap(), None);
}
