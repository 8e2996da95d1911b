//! The ACME issuer: orders certificates for the hostnames that need one and renews them
//! before they expire. Every edge may run one; a Postgres advisory lock, held for one
//! round, lets only one act at a time, so orders and the account are never doubled. A
//! hostname whose order fails waits (doubling) without holding up the others, and the
//! log says what to fix.

mod account;
mod backoff;
mod config;
mod http;
mod order;
mod outcome;
mod plan;

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;
use instant_acme::Account;
use sqlx::Connection;
use zeitwork_bus::{Follow, NatsBus, PREFIX, Wake};
use zeitwork_crypto::SecretBox;
use zeitwork_store::Store;

pub use config::{AcmeConfig, ChallengeKind, LETS_ENCRYPT};
pub use outcome::{Issued, Round};

use crate::{CertsError, Config as CertsConfig, record};
use backoff::Backoff;
use http::AcmeHttp;

/// The advisory lock only the acting issuer holds ("zwacme!!").
const LOCK_KEY: i64 = 0x7a77_6163_6d65_2121;
/// After a notification, the issuer waits this long for the rest of a burst (a deploy
/// writes several events) before its round.
const SETTLE: Duration = Duration::from_secs(2);
/// Rounds triggered by notifications start at least this far apart: routes change often
/// (every instance health report), certificates rarely need to.
const MIN_GAP: Duration = Duration::from_secs(10);

pub struct Issuer {
    store: Store,
    bus: Option<NatsBus>,
    secrets: SecretBox,
    config: AcmeConfig,
    http: AcmeHttp,
    account: Option<Account>,
    backoff: Backoff,
}

impl Issuer {
    /// Fails only on configuration (an unreadable CA bundle); the CA is first asked in a
    /// round.
    pub fn new(
        store: Store,
        bus: Option<NatsBus>,
        secret_box: SecretBox,
        config: AcmeConfig,
    ) -> Result<Issuer, CertsError> {
        Ok(Issuer {
            http: AcmeHttp::new(config.ca_bundle.as_deref())?,
            backoff: Backoff::new(config.first_retry),
            store,
            bus,
            secrets: secret_box,
            config,
            account: None,
        })
    }

    /// [`Issuer::new`], then [`Issuer::serve`].
    pub async fn run(
        store: Store,
        bus: Option<NatsBus>,
        secret_box: SecretBox,
        config: AcmeConfig,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), CertsError> {
        Issuer::new(store, bus, secret_box, config)?
            .serve(shutdown)
            .await;
        Ok(())
    }

    /// Runs rounds until `shutdown`: every `check_every` (±25 %), and soon after domain
    /// or deployment changes (`zw.v1.routes`), though at most one per [`MIN_GAP`].
    /// Failures are logged, never returned: the issuer keeps trying.
    pub async fn serve(mut self, shutdown: impl Future<Output = ()>) {
        let subject = format!("{PREFIX}.routes");
        let every = self.config.check_every;
        let mut follow =
            Follow::subscribe(self.bus.as_ref(), &subject, every, "the ACME issuer").await;
        tracing::info!(directory = %self.config.directory_url, "ACME issuer started");
        tokio::pin!(shutdown);
        loop {
            let started = tokio::time::Instant::now();
            tokio::select! {
                () = &mut shutdown => return,
                result = self.round() => self.report(result),
            }
            let wake = async {
                if let Wake::Note(_) = follow.next().await {
                    tokio::time::sleep(SETTLE).await;
                    tokio::time::sleep_until(started + MIN_GAP).await;
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = wake => {}
            }
        }
    }

    /// One pass, if no other issuer is acting: orders what is missing or due for renewal
    /// (at most `max_orders_per_round`), and drops platform certificates nobody needs.
    pub async fn round(&mut self) -> Result<Round, CertsError> {
        // A connection of its own: the lock lives as long as this session, so an issuer
        // that dies mid-round releases it with its connection.
        let mut lock = self.store.pool().acquire().await?.detach();
        let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut lock)
            .await?;
        if !locked {
            return Ok(Round::default());
        }
        let result = self.act().await;
        // Unlock before closing: the server releases a closed session's locks only once
        // its backend has exited, so the next round could still find the lock held.
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut lock)
            .await;
        let _ = lock.close().await;
        result
    }

    async fn act(&mut self) -> Result<Round, CertsError> {
        let mut round = Round {
            led: true,
            ..Round::default()
        };
        record::close_challenges(&self.store, &[]).await?;
        let wanted = plan::wanted(&self.store, &self.config.base_domain).await?;
        let stored = plan::stored(&self.store).await?;
        let renew_before =
            chrono::Duration::from_std(self.config.renew_before).unwrap_or(chrono::Duration::MAX);
        let plan = plan::plan(&wanted, &stored, Utc::now(), renew_before);
        for cert in stored.iter().filter(|c| plan.expiring.contains(&c.id)) {
            tracing::warn!(
                certificate = %cert.id, hostnames = ?cert.hostnames, not_after = %cert.not_after,
                "an operator certificate expires soon: import a renewed one (zeitwork certs import)"
            );
        }
        for (id, reason) in plan.remove {
            record::remove_certificate(&self.store, id, reason).await?;
            tracing::info!(certificate = %id, reason, "certificate removed");
            round.removed.push(id);
        }
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = plan
            .issue
            .into_iter()
            .partition(|n| self.backoff.ready(&n.hostname, now));
        round.deferred = waiting.into_iter().map(|n| n.hostname).collect();
        if due.is_empty() {
            return Ok(round);
        }
        let account = self.account().await?;
        for need in due.into_iter().take(self.config.max_orders_per_round) {
            let host = need.hostname.clone();
            tracing::info!(hostname = %host, renewal = !need.replaces.is_empty(), "ordering a certificate");
            match self.order(&account, &need).await {
                Ok(issued) => {
                    self.backoff.succeeded(&host);
                    tracing::info!(
                        hostname = %host, certificate = %issued.certificate_id,
                        not_after = %issued.not_after,
                        challenge = issued.challenge.map(ChallengeKind::as_str),
                        "certificate issued"
                    );
                    round.issued.push(issued);
                }
                Err(e) => {
                    let retry_in = self.backoff.failed(&host, Instant::now());
                    tracing::warn!(hostname = %host, error = %e, ?retry_in, "no certificate this time");
                    round.failed.push((host, e.to_string()));
                }
            }
        }
        Ok(round)
    }

    async fn account(&mut self) -> Result<Account, CertsError> {
        if let Some(account) = &self.account {
            return Ok(account.clone());
        }
        let account = account::load_or_create(
            &self.store,
            &self.secrets,
            &self.http,
            &self.config.directory_url,
            self.config.contact_email.as_deref(),
        )
        .await?;
        self.account = Some(account.clone());
        Ok(account)
    }

    /// How long a challenge is given to reach every edge: with NATS the configured
    /// time, without it also a full resync period of the edges.
    fn propagation(&self) -> Duration {
        match self.bus {
            Some(_) => self.config.propagation,
            None => {
                let resync = CertsConfig::new("").resync_every;
                self.config
                    .propagation
                    .max(resync.mul_f64(1.25) + Duration::from_secs(1))
            }
        }
    }
}
