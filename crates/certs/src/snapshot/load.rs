//! Reading the snapshot from Postgres, inside one read-only REPEATABLE READ transaction so
//! it is one consistent point of the log. Certificates never change once stored, so only
//! those the previous snapshot lacks are fetched, decrypted and parsed: a refresh costs
//! one narrow keyset scan plus the new rows, however many certificates there are.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zeitwork_crypto::SecretBox;
use zeitwork_store::{Store, log};

use super::{AlpnCert, Held, Snapshot};
use crate::{CertsError, alpn, pem, record};

/// Rows per query.
const PAGE: i64 = 1000;

#[derive(sqlx::FromRow)]
struct Full {
    id: Uuid,
    hostnames: Vec<String>,
    not_after: DateTime<Utc>,
    chain_pem: String,
    sealed_key: String,
}

#[derive(sqlx::FromRow)]
struct Challenge {
    token: String,
    hostname: String,
    kind: String,
    key_authorization: String,
}

/// The current certificates and challenges, reusing what `previous` already parsed.
pub(crate) async fn load(
    store: &Store,
    secrets: &SecretBox,
    previous: &Snapshot,
) -> Result<Snapshot, CertsError> {
    let mut tx = store.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let seq = log::head(&mut tx).await?;
    let mut ids = Vec::new();
    let mut after = Uuid::nil();
    loop {
        let page: Vec<(Uuid,)> =
            sqlx::query_as("SELECT id FROM certificates WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
                .bind(PAGE)
                .fetch_all(&mut *tx)
                .await?;
        let full = page.len() as i64 == PAGE;
        if let Some((last,)) = page.last() {
            after = *last;
        }
        ids.extend(page.into_iter().map(|(id,)| id));
        if !full {
            break;
        }
    }
    let new: Vec<Uuid> = ids
        .iter()
        .filter(|id| previous.held(id).is_none() && !previous.is_unusable(id))
        .copied()
        .collect();
    let mut rows: Vec<Full> = Vec::with_capacity(new.len());
    for chunk in new.chunks(PAGE as usize) {
        rows.extend(
            sqlx::query_as(
                "SELECT id, hostnames, not_after, chain_pem, sealed_key FROM certificates
                 WHERE id = ANY($1)",
            )
            .bind(chunk)
            .fetch_all(&mut *tx)
            .await?,
        );
    }
    let challenges: Vec<Challenge> = sqlx::query_as(
        "SELECT token, hostname, kind, key_authorization FROM acme_challenges
         WHERE expires_at > now()",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.rollback().await?;

    let mut certs: Vec<Arc<Held>> = ids
        .iter()
        .filter_map(|id| previous.held(id).cloned())
        .collect();
    let mut unusable: HashSet<Uuid> = ids
        .iter()
        .filter(|id| previous.is_unusable(id))
        .copied()
        .collect();
    let old_alpn: HashMap<String, AlpnCert> = challenges
        .iter()
        .filter_map(|c| {
            let cur = previous.alpn(&c.hostname)?;
            (cur.key_authorization == c.key_authorization)
                .then(|| (c.hostname.clone(), cur.clone()))
        })
        .collect();
    // Decryption, key parsing and key generation are CPU work: off the async threads.
    let secrets = secrets.clone();
    let (opened, http01, alpn) = tokio::task::spawn_blocking(move || {
        let opened: Vec<Result<Held, Unusable>> =
            rows.into_iter().map(|row| open(&secrets, row)).collect();
        let (http01, alpn) = challenge_maps(challenges, old_alpn);
        (opened, http01, alpn)
    })
    .await
    .expect("opening certificates does not panic");
    for result in opened {
        match result {
            Ok(held) => certs.push(Arc::new(held)),
            Err(Unusable {
                id,
                hostnames,
                error,
            }) => {
                tracing::error!(
                    certificate = %id, ?hostnames, %error,
                    "cannot use a stored certificate; its hostnames get no TLS from this edge"
                );
                unusable.insert(id);
            }
        }
    }
    Ok(Snapshot::new(seq, certs, unusable, http01, alpn))
}

/// A stored certificate this edge cannot serve, and why (never its key).
struct Unusable {
    id: Uuid,
    hostnames: Vec<String>,
    error: CertsError,
}

fn open(secrets: &SecretBox, row: Full) -> Result<Held, Unusable> {
    let fail = |error| Unusable {
        id: row.id,
        hostnames: row.hostnames.clone(),
        error,
    };
    let key_pem = secrets
        .open(&record::key_aad(row.id), &row.sealed_key)
        .ok_or_else(|| {
            fail(CertsError::Pem {
                what: "the sealed private key",
                reason: "it does not open with this secret key: every edge must use the \
                         platform's ZEITWORK_CERT_KEY"
                    .into(),
            })
        })?;
    let chain = pem::chain(&row.chain_pem).map_err(fail)?;
    let key = pem::key(&key_pem).map_err(fail)?;
    let key = pem::certified_key(chain, key).map_err(fail)?;
    Ok(Held {
        id: row.id,
        hostnames: row.hostnames,
        not_after: row.not_after,
        key,
    })
}

/// HTTP-01 tokens, and TLS-ALPN-01 certificates (made anew only for new challenges).
fn challenge_maps(
    challenges: Vec<Challenge>,
    mut old_alpn: HashMap<String, AlpnCert>,
) -> (HashMap<String, String>, HashMap<String, AlpnCert>) {
    let mut http01 = HashMap::new();
    let mut alpn = HashMap::new();
    for c in challenges {
        match c.kind.as_str() {
            "http-01" => {
                http01.insert(c.token, c.key_authorization);
            }
            "tls-alpn-01" => {
                if let Some(cur) = old_alpn.remove(&c.hostname) {
                    alpn.insert(c.hostname, cur);
                    continue;
                }
                match alpn::challenge_cert(&c.hostname, &c.key_authorization) {
                    Ok(key) => {
                        let key_authorization = c.key_authorization;
                        alpn.insert(
                            c.hostname,
                            AlpnCert {
                                key_authorization,
                                key,
                            },
                        );
                    }
                    Err(e) => tracing::error!(hostname = %c.hostname, error = %e,
                        "cannot make the TLS-ALPN-01 challenge certificate"),
                }
            }
            other => tracing::warn!(kind = other, "unknown ACME challenge kind ignored"),
        }
    }
    (http01, alpn)
}
