//! One ACME order for one hostname: publish the challenge to every edge, let the CA
//! validate it, finalize with a fresh key, and store the certificate (key sealed).

use std::time::Duration;

use chrono::Utc;
use instant_acme::{
    Account, AuthorizationStatus, Identifier, NewOrder, Order, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use zeitwork_core::CertificateSource;

use super::plan::Need;
use super::{ChallengeKind, Issued, Issuer};
use crate::record::{self, NewCertificate, OpenChallenge};
use crate::{CertsError, pem};

/// How long a challenge row lives if its issuer dies before removing it.
const CHALLENGE_TTL: chrono::Duration = chrono::Duration::hours(1);

impl Issuer {
    pub(super) async fn order(&self, account: &Account, need: &Need) -> Result<Issued, CertsError> {
        let host = &need.hostname;
        let identifiers = [Identifier::Dns(host.clone())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| CertsError::Order(format!("the CA refused an order for {host}: {e}")))?;
        let mut tokens = Vec::new();
        let result = self
            .validate_and_finalize(&mut order, host, &mut tokens)
            .await;
        if !tokens.is_empty() {
            if let Err(e) = record::close_challenges(&self.store, &tokens).await {
                tracing::warn!(error = %e, hostname = %host, "cannot delete finished challenges; they expire within the hour");
            }
            record::announce(&self.store, self.bus.as_ref(), host).await;
        }
        let (challenge, chain_pem, key_pem) = result?;
        let chain = pem::chain(&chain_pem)?;
        let info = pem::leaf_info(&chain[0])?;
        pem::certified_key(chain, pem::key(key_pem.as_bytes())?)?;
        let not_after = info.not_after;
        let certificate_id = record::store_certificate(
            &self.store,
            &self.secrets,
            NewCertificate {
                chain_pem: &chain_pem,
                key_pem: key_pem.as_bytes(),
                info,
                source: CertificateSource::Acme,
                replaces: need.replaces.clone(),
            },
        )
        .await?;
        Ok(Issued {
            hostname: host.clone(),
            certificate_id,
            not_after,
            challenge,
            replaced: need.replaces.clone(),
        })
    }

    /// The challenge used (`None` when the CA still had a valid authorization), the
    /// chain PEM and the new private key PEM.
    async fn validate_and_finalize(
        &self,
        order: &mut Order,
        host: &str,
        tokens: &mut Vec<String>,
    ) -> Result<(Option<ChallengeKind>, String, String), CertsError> {
        let used = self.authorize(order, host, tokens).await?;
        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(self.config.order_timeout);
        let status = order.poll_ready(&retries).await;
        if !matches!(status, Ok(OrderStatus::Ready)) {
            let kind = used.unwrap_or(self.config.challenge);
            let detail = match status {
                Err(instant_acme::Error::Timeout(_)) => "no answer from the CA in time".to_owned(),
                Err(e) => e.to_string(),
                Ok(_) => why_invalid(order).await,
            };
            return Err(CertsError::Order(format!(
                "the CA could not validate {host} with {}: {detail}; {}",
                kind.as_str(),
                kind.hint(host)
            )));
        }
        let generate = |e: rcgen::Error| CertsError::Generate(e.to_string());
        let key = KeyPair::generate().map_err(generate)?;
        let mut params = CertificateParams::new(vec![host.to_owned()]).map_err(generate)?;
        params.distinguished_name = DistinguishedName::new();
        let csr = params.serialize_request(&key).map_err(generate)?;
        let refused = |e: instant_acme::Error| {
            CertsError::Order(format!(
                "the CA did not issue the certificate for {host}: {e}"
            ))
        };
        order.finalize_csr(csr.der()).await.map_err(refused)?;
        let chain_pem = order.poll_certificate(&retries).await.map_err(refused)?;
        Ok((used, chain_pem, key.serialize_pem()))
    }

    /// Publishes a challenge per pending authorization and tells the CA to check it.
    async fn authorize(
        &self,
        order: &mut Order,
        host: &str,
        tokens: &mut Vec<String>,
    ) -> Result<Option<ChallengeKind>, CertsError> {
        let mut used = None;
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|e| {
                CertsError::Order(format!(
                    "cannot read the CA's authorization for {host}: {e}"
                ))
            })?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(CertsError::Order(format!(
                        "the CA's authorization for {host} is {other:?}; it is retried later"
                    )));
                }
            }
            let offered = |k: ChallengeKind| {
                authorization
                    .challenges
                    .iter()
                    .any(|c| c.r#type == k.acme())
            };
            let preferred = self.config.challenge;
            let kind = [preferred, preferred.other()]
                .into_iter()
                .find(|k| offered(*k))
                .ok_or_else(|| {
                    CertsError::Order(format!(
                        "the CA offers neither http-01 nor tls-alpn-01 for {host}"
                    ))
                })?;
            let mut challenge = authorization.challenge(kind.acme()).expect("offered");
            let key_authorization = challenge.key_authorization();
            record::open_challenge(
                &self.store,
                &OpenChallenge {
                    token: &challenge.token,
                    hostname: host,
                    kind: kind.as_str(),
                    key_authorization: key_authorization.as_str(),
                    expires_at: Utc::now() + CHALLENGE_TTL,
                },
            )
            .await?;
            tokens.push(challenge.token.clone());
            record::announce(&self.store, self.bus.as_ref(), host).await;
            tokio::time::sleep(self.propagation()).await;
            challenge.set_ready().await.map_err(|e| {
                CertsError::Order(format!(
                    "the CA refused to check {host} with {}: {e}",
                    kind.as_str()
                ))
            })?;
            used = Some(kind);
        }
        Ok(used)
    }
}

/// What the CA said about the failed challenge, as far as it says.
async fn why_invalid(order: &mut Order) -> String {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        if let Some(problem) = state.challenges.iter().find_map(|c| c.error.as_ref()) {
            return problem.to_string();
        }
    }
    "the order became invalid without a reason".into()
}
