//! Registry garbage collection against the real registry (Debian's docker-registry,
//! trusting the operator's token key): images nothing refers to any more (deployments
//! older than each env's last N, a deleted preview env's, sources nothing builds) are
//! deleted once unreferenced for the grace period; what runs, the last N, images pushed a
//! moment ago and repositories that are not an app's are kept; the registry serves on.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::json;
use zeitwork_image::{Auth, ImageConfig, PushOptions, pin, push_directory};
use zeitwork_operator::registry::PlatformRegistry;
use zeitwork_operator::registry_gc::{GcPolicy, collect};
use zeitwork_registry::{Access, Action, RegistryConfig, Storage, TokenKey, TokenRequest, issue};
use zeitwork_services::{Registry, free_port};

use crate::support::{Platform, config};

const MANIFEST: &str = "version = 1\napp = \"web\"\n[processes.web]\nport = 8080\ninstances = 0\n";

fn token(key: &TokenKey, repository: &str) -> Auth {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let granted = vec![Access::repository(
        repository,
        vec![Action::Pull, Action::Push],
    )];
    let request = TokenRequest {
        subject: "test".into(),
        granted,
        now,
        ttl: 300,
        id: format!("{repository}-{now}"),
    };
    Auth::Bearer(issue(key, &request).token)
}

/// Pushes a one-file image to `repository:tag`; its pinned reference.
async fn push(registry: &PlatformRegistry, repository: &str, tag: &str) -> String {
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("f"), format!("{repository}:{tag}")).unwrap();
    let reference = format!("{}/{repository}:{tag}", registry.address);
    let options = PushOptions {
        auth: token(&registry.key, repository),
        ..Default::default()
    };
    let digest = push_directory(tree.path(), &reference, &ImageConfig::default(), &options)
        .await
        .unwrap();
    format!("{reference}@{digest}")
}

async fn exists(registry: &PlatformRegistry, reference: &str) -> bool {
    let repository = registry.repository_of(reference).unwrap();
    pin(reference, &token(&registry.key, &repository))
        .await
        .is_ok()
}

#[tokio::test]
async fn unreferenced_images_are_collected_after_their_grace_and_the_rest_kept() {
    let key = TokenKey::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let certificate = dir.path().join("token.crt");
    std::fs::write(&certificate, key.certificate_pem().unwrap()).unwrap();
    let port = free_port();
    let platform = Arc::new(PlatformRegistry {
        address: format!("127.0.0.1:{port}"),
        key,
    });
    let served = RegistryConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        realm: "http://127.0.0.1:1/api/v1/registry/token".into(),
        certificate,
        storage: Storage::Filesystem(dir.path().join("storage")),
        http_secret: "test".into(),
    };
    let registry = Registry::serve(&served, &dir.path().join("run"))
        .await
        .unwrap();
    let p = Platform::start_with(zeitwork_operator::Config {
        registry: Some(platform.clone()),
        ..config()
    })
    .await;
    let acme = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &acme, json!({"name": "web"}))
        .await;
    let env = "/api/v1/orgs/acme/apps/web/envs";
    p.post(env, &acme, json!({"name": "feature"})).await;
    let deploy = |env: &'static str, image: String| {
        let p = &p;
        let acme = &acme;
        async move {
            let a = p
                .post(
                    &format!("/api/v1/orgs/acme/apps/web/envs/{env}/deployments"),
                    acme,
                    json!({"image": image, "manifest": MANIFEST}),
                )
                .await;
            assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        }
    };
    let mut prod = Vec::new();
    for n in 1..=4 {
        let image = push(&platform, "acme/web", &format!("v{n}")).await;
        deploy("prod", image.clone()).await;
        prod.push(image);
    }
    let preview = push(&platform, "acme/web", "feature").await;
    deploy("feature", preview.clone()).await;
    let a = p
        .send(
            reqwest::Method::DELETE,
            &format!("{env}/feature"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let source = push(&platform, "acme/web/source", "latest").await;
    let gone_app = push(&platform, "acme/gone", "v1").await;
    let not_an_app = push(&platform, "acme/team/tool", "v1").await;

    let policy = GcPolicy {
        keep_per_env: 2,
        grace: Duration::from_secs(3600),
        every: Duration::from_secs(3600),
    };
    // Everything is new: nothing goes yet.
    let first = collect(&p.store, &platform, &policy).await.unwrap();
    assert!(first.deleted.is_empty(), "{first:?}");
    assert_eq!(first.seen, 7, "the app repositories' images: {first:?}");
    // An hour later for all but one just pushed.
    sqlx::query("UPDATE registry_seen SET first_seen = first_seen - interval '2 hours'")
        .execute(p.store.pool())
        .await
        .unwrap();
    let fresh = push(&platform, "acme/web", "fresh").await;
    let second = collect(&p.store, &platform, &policy).await.unwrap();
    let mut deleted = second.deleted.clone();
    deleted.sort();
    let id = |image: &str| {
        let r = zeitwork_core::ImageRef::parse(image).unwrap();
        format!("{}@{}", platform.repository_of(image).unwrap(), r.digest)
    };
    let mut expected = vec![
        id(&prod[0]),
        id(&prod[1]),
        id(&preview),
        id(&source),
        id(&gone_app),
    ];
    expected.sort();
    assert_eq!(deleted, expected);
    for image in [&prod[0], &prod[1], &preview, &source, &gone_app] {
        assert!(!exists(&platform, image).await, "{image} is gone");
    }
    for image in [&prod[2], &prod[3], &fresh, &not_an_app] {
        assert!(exists(&platform, image).await, "{image} is kept and served");
    }
    // Nothing more to collect; the projections rebuild alike (the collector's memory is
    // bookkeeping, not a projection).
    let third = collect(&p.store, &platform, &policy).await.unwrap();
    assert!(third.deleted.is_empty(), "{third:?}");
    p.assert_rebuild_is_exact().await;

    // The blob sweep gives their space back while the registry serves pulls; pushes are
    // refused while it runs.
    let blobs = || {
        walk(&dir.path().join("storage/docker/registry/v2/blobs"))
            .into_iter()
            .filter(|p| p.ends_with("data"))
            .count()
    };
    let before = blobs();
    let sweep = zeitwork_operator::registry_gc::sweep(
        &p.store,
        Duration::from_secs(2),
        registry.garbage_collect(),
    );
    let during = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let granted = granted(&p, &acme).await;
        assert!(exists(&platform, &prod[3]).await, "pulls go on");
        granted
    };
    let (swept, during) = tokio::join!(sweep, during);
    swept.unwrap();
    assert_eq!(
        during,
        json!([{"type": "repository", "name": "acme/web", "actions": ["pull"]}])
    );
    let after = blobs();
    assert!(
        after < before,
        "{before} blobs before the sweep, {after} after"
    );
    for image in [&prod[2], &prod[3], &fresh, &not_an_app] {
        assert!(exists(&platform, image).await, "{image} survives the sweep");
    }
    assert_eq!(
        granted(&p, &acme).await,
        json!([{"type": "repository", "name": "acme/web", "actions": ["pull", "push"]}]),
        "pushes are back"
    );

    // Each round measures each org's images (each blob once); an org at its registry
    // quota can neither push nor queue a build.
    let (bytes,): (i64,) = sqlx::query_as(
        "SELECT u.bytes FROM registry_usage u JOIN orgs o ON o.id = u.org_id WHERE o.name = 'acme'",
    )
    .fetch_one(p.store.pool())
    .await
    .unwrap();
    assert!(bytes > 0, "acme's images take {bytes} bytes");
    let set = p
        .put(
            "/api/v1/orgs/acme/quotas",
            &p.root,
            json!({"registry_mb": 0}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    let quotas = p.get("/api/v1/orgs/acme/quotas", &acme).await.body;
    assert_eq!(quotas["quotas"]["registry_mb"], 0, "{quotas}");
    assert!(quotas["usage"]["registry_mb"].is_u64(), "{quotas}");
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("zeitwork:{acme}"));
    let refused = p
        .send_with_header(
            reqwest::Method::GET,
            "/api/v1/registry/token?service=zeitwork-registry&scope=repository:acme/web:pull,push",
            ("authorization", &format!("Basic {basic}")),
        )
        .await;
    crate::support::assert_error(&refused, StatusCode::FORBIDDEN, Some("registry_mb"));
    let build = p
        .post(
            "/api/v1/orgs/acme/apps/web/envs/prod/builds",
            &acme,
            json!({"source": source}),
        )
        .await;
    crate::support::assert_error(&build, StatusCode::FORBIDDEN, Some("registry_mb"));
    assert!(exists(&platform, &prod[3]).await, "pulls are never refused");
}

/// What the token service grants `secret` on `acme/web` for pull and push.
async fn granted(p: &Platform, secret: &str) -> serde_json::Value {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("zeitwork:{secret}"));
    let a = p
        .send_with_header(
            reqwest::Method::GET,
            "/api/v1/registry/token?service=zeitwork-registry&scope=repository:acme/web:pull,push",
            ("authorization", &format!("Basic {basic}")),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let jwt = a.body["token"].as_str().unwrap();
    let claims = jwt.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    claims["access"].clone()
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
