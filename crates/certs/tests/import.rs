//! Operator-supplied certificates: checked on import, shared through Postgres, the base
//! domain's wildcard spares ACME orders for platform hostnames, and edges keep serving
//! while Postgres is down.

use std::time::Duration;

use rcgen::{CertificateParams, KeyPair, date_time_ymd};
use uuid::Uuid;
use zeitwork_certs::{AcmeConfig, Certificates, CertsError, Config, Issuer, import};
use zeitwork_core::EventData;
use zeitwork_crypto::SecretBox;
use zeitwork_services::Postgres;
use zeitwork_store::{Store, log, rebuild};

fn cert(names: &[&str], expired: bool) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

async fn emit(store: &Store, org: Uuid, data: EventData) {
    let mut tx = store.begin().await.unwrap();
    log::append(&mut tx, Some(org), "test", data).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn an_imported_wildcard_serves_the_platform_and_spares_acme() {
    let pg = Postgres::throwaway().await.expect("throwaway postgres");
    let store = Store::connect(&pg.url()).await.unwrap();
    let secrets = SecretBox::from_hex(&SecretBox::generate_hex()).unwrap();

    let (wild_chain, wild_key) = cert(&["*.zeitwork.test"], false);
    let (_, other_key) = cert(&["*.zeitwork.test"], false);
    let err = import(&store, &secrets, &wild_chain, &other_key)
        .await
        .unwrap_err();
    assert!(matches!(err, CertsError::KeyMismatch), "{err}");
    let (old_chain, old_key) = cert(&["old.example.com"], true);
    let err = import(&store, &secrets, &old_chain, &old_key)
        .await
        .unwrap_err();
    assert!(matches!(err, CertsError::Expired(_)), "{err}");
    let err = import(&store, &secrets, "not pem", &wild_key)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate chain"), "{err}");

    let first = import(&store, &secrets, &wild_chain, &wild_key)
        .await
        .unwrap();
    assert_eq!(first.hostnames, ["*.zeitwork.test"]);
    assert!(first.replaced.is_empty());
    let (again_chain, again_key) = cert(&["*.zeitwork.test"], false);
    let second = import(&store, &secrets, &again_chain, &again_key)
        .await
        .unwrap();
    assert_eq!(
        second.replaced,
        [first.certificate_id],
        "a re-import replaces"
    );

    // The platform's own names are covered: a round orders nothing, and so never even
    // contacts the (unreachable) CA.
    let (org, app, env) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    emit(
        &store,
        org,
        EventData::OrgCreated {
            org_id: org,
            name: "acme".into(),
        },
    )
    .await;
    emit(
        &store,
        org,
        EventData::AppCreated {
            app_id: app,
            org_id: org,
            name: "web".into(),
        },
    )
    .await;
    emit(
        &store,
        org,
        EventData::EnvCreated {
            env_id: env,
            app_id: app,
            name: "prod".into(),
            preview_of: None,
        },
    )
    .await;
    let acme = AcmeConfig {
        directory_url: "https://127.0.0.1:9/dir".into(),
        ..AcmeConfig::new("zeitwork.test")
    };
    let mut issuer = Issuer::new(store.clone(), None, secrets.clone(), acme).unwrap();
    let round = issuer.round().await.unwrap();
    assert!(
        round.led && round.issued.is_empty() && round.failed.is_empty(),
        "{round:?}"
    );

    let config = Config {
        resync_every: Duration::from_millis(100),
        ..Config::new("zeitwork.test")
    };
    let certs = Certificates::start_with(store.clone(), None, secrets.clone(), config)
        .await
        .unwrap();
    assert_eq!(certs.len(), 1);
    assert!(certs.covers("web-acme.zeitwork.test"));
    assert!(certs.covers("WEB-ACME.zeitwork.test."));
    assert!(!certs.covers("a.b.zeitwork.test"));
    assert!(!certs.covers("zeitwork.test"));
    assert!(certs.http01("no-such-token").is_none());

    // Rebuilding the projections yields the same certificate tables.
    let mut db = store.pool().acquire().await.unwrap();
    let live = rebuild::snapshot(&mut db).await.unwrap();
    rebuild::rebuild(&store).await.unwrap();
    assert_eq!(rebuild::snapshot(&mut db).await.unwrap(), live);
    drop(db);

    // An edge with the wrong secret key serves nothing rather than failing to start.
    let wrong = SecretBox::from_hex(&SecretBox::generate_hex()).unwrap();
    let blind = Certificates::start_with(store.clone(), None, wrong, Config::new("zeitwork.test"))
        .await
        .unwrap();
    assert!(blind.is_empty());

    // Postgres goes away: the edge keeps what it has.
    drop(store);
    drop(issuer);
    pg.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(certs.covers("web-acme.zeitwork.test"));
}
