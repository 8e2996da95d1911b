//! The platform registry as a cluster runs it: images in an S3 bucket (here a STAND-IN,
//! `moto_server`, since no real S3 is reachable), every request with a token the
//! operator signed. A push with a push token lands in the bucket; a pull with a pull
//! token pins and unpacks it; without a token, or with another repository's, nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use zeitwork_image::{Auth, ImageConfig, ImageError, PushOptions, pin, push_directory};
use zeitwork_registry::{Access, Action, RegistryConfig, Storage, TokenKey, TokenRequest, issue};
use zeitwork_services::{Registry, S3StandIn, free_port};

fn token(key: &TokenKey, repository: &str, actions: Vec<Action>) -> Auth {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let issued = issue(
        key,
        &TokenRequest {
            subject: "test".into(),
            granted: vec![Access::repository(repository, actions)],
            now,
            ttl: 300,
            id: format!("{repository}-{now}"),
        },
    );
    Auth::Bearer(issued.token)
}

#[tokio::test]
async fn images_pushed_with_a_token_land_in_s3_stand_in_and_pull_back() {
    let s3 = S3StandIn::start()
        .await
        .expect("moto_server runs (scripts/test.sh installs moto)");
    s3.create_bucket("zeitwork-images").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = TokenKey::generate().unwrap();
    let certificate = dir.path().join("token.crt");
    std::fs::write(&certificate, key.certificate_pem().unwrap()).unwrap();
    let port = free_port();
    let config = RegistryConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        realm: "http://127.0.0.1:1/api/v1/registry/token".into(),
        certificate,
        storage: Storage::S3 {
            bucket: "zeitwork-images".into(),
            region: "us-east-1".into(),
            endpoint: Some(s3.endpoint()),
            access_key: "test".into(),
            secret_key: "test".into(),
        },
        http_secret: "test".into(),
    };
    let registry = Registry::serve(&config, &dir.path().join("run"))
        .await
        .unwrap();
    assert!(
        registry.storage_dir().is_none(),
        "a bucket, not a directory"
    );

    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("hello.txt"), "hello from s3\n").unwrap();
    let reference = format!("{}/acme/web:v1", registry.addr());
    let image_config = ImageConfig {
        entrypoint: vec!["/hello".into()],
        ..Default::default()
    };
    let push = |auth: Auth| {
        let (tree, reference, image_config) = (
            tree.path().to_owned(),
            reference.clone(),
            image_config.clone(),
        );
        async move {
            let options = PushOptions {
                auth,
                ..Default::default()
            };
            push_directory(&tree, &reference, &image_config, &options).await
        }
    };
    // A pull token pushes nothing; another repository's push token neither.
    assert!(
        push(token(&key, "acme/web", vec![Action::Pull]))
            .await
            .is_err()
    );
    assert!(
        push(token(&key, "other/web", vec![Action::Pull, Action::Push]))
            .await
            .is_err()
    );
    let digest = push(token(&key, "acme/web", vec![Action::Pull, Action::Push]))
        .await
        .expect("a push token pushes");
    let keys = s3.keys("zeitwork-images").await.unwrap();
    assert!(
        keys.iter()
            .any(|k| k.contains("docker/registry/v2/blobs/sha256/")),
        "the blobs are in the bucket: {keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.contains("repositories/acme/web/")),
        "{keys:?}"
    );

    let pinned = pin(&reference, &token(&key, "acme/web", vec![Action::Pull]))
        .await
        .expect("a pull token pulls");
    assert_eq!(pinned, format!("{reference}@{digest}"));
    let denied = pin(&reference, &Auth::Anonymous).await.unwrap_err();
    assert!(
        matches!(denied, ImageError::Unauthorized { .. }),
        "{denied}"
    );
}
