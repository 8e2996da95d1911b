//! Real ACME against Pebble: HTTP-01 and TLS-ALPN-01 validated by the CA over the
//! network (loopback), certificates stored sealed in Postgres, served by the resolver to
//! a client that trusts only Pebble's root, renewed, and never issued for an unverified
//! domain. One Pebble, one test, in phases.

mod pebble {
    pub mod edge;
    pub mod server;
    pub mod support;
}

use std::path::Path;
use std::time::{Duration, Instant};

use zeitwork_certs::{ChallengeKind, Issuer, Round};

use pebble::server::PEBBLE;
use pebble::support::{World, wait_until};

fn issued(round: &Round) -> Vec<(&str, Option<ChallengeKind>)> {
    round
        .issued
        .iter()
        .map(|i| (i.hostname.as_str(), i.challenge))
        .collect()
}

#[tokio::test]
async fn pebble_issues_validates_and_renews_for_verified_domains_only() {
    if !Path::new(PEBBLE).exists() {
        panic!("cannot run: {PEBBLE} is missing (scripts/setup.sh installs Debian's pebble)");
    }
    let started = Instant::now();
    let w = World::start().await;
    http01_for_verified_domains_only(&w).await;
    tls_alpn01_with_the_shared_account(&w).await;
    served_to_a_client_trusting_pebble(&w).await;
    renewal_replaces_the_old_certificates(&w).await;
    no_private_key_in_the_log(&w).await;
    the_running_issuer_acts_on_its_own(&w).await;
    eprintln!("pebble test took {:?}", started.elapsed());
}

/// The unverified domain is not even ordered, and the broken one fails (saying what to
/// check) without holding up the other, then waits before it is tried again.
async fn http01_for_verified_domains_only(w: &World) {
    for host in [
        "http.example.test",
        "tls.example.test",
        "unverified.example.test",
        "broken.example.test",
    ] {
        w.add_domain(host).await;
    }
    w.set_verified("http.example.test", true).await;
    w.set_verified("broken.example.test", true).await;
    let mut issuer = w.issuer(ChallengeKind::Http01, None);
    let round = issuer.round().await.unwrap();
    let log = w.pebble.log();
    assert_eq!(
        issued(&round),
        [("http.example.test", Some(ChallengeKind::Http01))],
        "{log}"
    );
    assert!(
        w.hits.http01() > 0,
        "Pebble fetched the token from our HTTP server"
    );
    let [(host, error)] = &round.failed[..] else {
        panic!("{:?}", round.failed)
    };
    assert_eq!(host, "broken.example.test");
    assert!(
        error.contains("could not validate broken.example.test with http-01")
            && error.contains("port 80"),
        "{error}"
    );
    let round = issuer.round().await.unwrap();
    assert_eq!(
        round.deferred,
        ["broken.example.test"],
        "it waits before trying again"
    );
    assert!(
        round.issued.is_empty() && round.failed.is_empty(),
        "{round:?}"
    );
    w.set_verified("broken.example.test", false).await;
    let round = issuer.round().await.unwrap();
    assert!(
        round.led && round.issued.is_empty() && round.deferred.is_empty(),
        "{round:?}"
    );
}

/// A second issuer (another edge) restores the account the first one stored.
async fn tls_alpn01_with_the_shared_account(w: &World) {
    w.set_verified("tls.example.test", true).await;
    let round = w
        .issuer(ChallengeKind::TlsAlpn01, None)
        .round()
        .await
        .unwrap();
    assert!(
        round.failed.is_empty(),
        "{:?}\n{}",
        round.failed,
        w.pebble.log()
    );
    assert_eq!(
        issued(&round),
        [("tls.example.test", Some(ChallengeKind::TlsAlpn01))]
    );
    assert!(
        w.hits.tls_alpn() > 0,
        "Pebble made acme-tls/1 handshakes to our resolver"
    );
    assert_eq!(
        w.count("SELECT count(*) FROM acme_accounts").await,
        1,
        "one account for all"
    );
    assert_eq!(
        w.count("SELECT count(*) FROM acme_challenges").await,
        0,
        "challenges withdrawn"
    );
}

/// The edge heard of both through NATS and serves the issued chains, which Pebble's
/// root vouches for.
async fn served_to_a_client_trusting_pebble(w: &World) {
    wait_until("both certificates are served", async || {
        w.certs.covers("http.example.test") && w.certs.covers("tls.example.test")
    })
    .await;
    assert!(!w.certs.covers("unverified.example.test"));
    assert!(!w.certs.covers("broken.example.test"));
    for host in ["http.example.test", "tls.example.test"] {
        let (leaf, line) = w.fetch(host).await;
        assert_eq!(leaf, w.stored_leaf(host).await.1, "{host}");
        assert_eq!(line, "hello over TLS\n");
    }
    let sql = "SELECT count(*) FROM certificates WHERE 'unverified.example.test' = ANY(hostnames)";
    assert_eq!(w.count(sql).await, 0);
}

/// With a renewal window longer than any validity both are due again, and each new
/// certificate replaces its predecessor, in Postgres and on the edge.
async fn renewal_replaces_the_old_certificates(w: &World) {
    let (old_id, old_leaf) = w.stored_leaf("http.example.test").await;
    let century = Duration::from_secs(100 * 365 * 86400);
    let round = w
        .issuer(ChallengeKind::Http01, Some(century))
        .round()
        .await
        .unwrap();
    assert!(
        round.failed.is_empty(),
        "{:?}\n{}",
        round.failed,
        w.pebble.log()
    );
    assert_eq!(round.issued.len(), 2, "{round:?}");
    let renewed = round
        .issued
        .iter()
        .find(|i| i.hostname == "http.example.test")
        .unwrap();
    assert_eq!(renewed.replaced, [old_id]);
    let (new_id, new_leaf) = w.stored_leaf("http.example.test").await;
    assert_eq!(new_id, renewed.certificate_id);
    assert_ne!(new_leaf, old_leaf);
    assert_eq!(
        w.count("SELECT count(*) FROM certificates").await,
        2,
        "no pile-up"
    );
    wait_until("the renewed certificate is served", async || {
        w.fetch("http.example.test").await.0 == new_leaf
    })
    .await;
}

/// The log holds chains and sealed keys, never a private key in the clear.
async fn no_private_key_in_the_log(w: &World) {
    let (dump,): (String,) =
        sqlx::query_as("SELECT string_agg(payload::text, '' ORDER BY seq) FROM events")
            .fetch_one(w.store.pool())
            .await
            .unwrap();
    assert!(dump.contains("BEGIN CERTIFICATE"), "the chains are there");
    assert!(
        !dump.contains("PRIVATE KEY"),
        "no PEM private key in the log"
    );
    let keys: Vec<(uuid::Uuid, String)> = sqlx::query_as("SELECT id, sealed_key FROM certificates")
        .fetch_all(w.store.pool())
        .await
        .unwrap();
    for (id, sealed) in keys {
        let key = w
            .secrets
            .open(&format!("certificate/{id}"), &sealed)
            .expect("opens with the key");
        let key = String::from_utf8(key).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        for line in key
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
        {
            assert!(
                !dump.contains(line),
                "a line of a private key is in the log"
            );
        }
    }
}

/// `Issuer::run` needs no prodding: a newly verified domain gets its certificate, and
/// it stops when told to.
async fn the_running_issuer_acts_on_its_own(w: &World) {
    w.add_domain("late.example.test").await;
    w.set_verified("late.example.test", true).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = w.acme(ChallengeKind::Http01, None);
    let running = tokio::spawn(Issuer::run(
        w.store.clone(),
        Some(w.bus.clone()),
        w.secrets.clone(),
        config,
        async {
            let _ = stopped.await;
        },
    ));
    wait_until("the running issuer got late.example.test", async || {
        w.certs.covers("late.example.test")
    })
    .await;
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}
