//! Apps connected to a git repository (see `zeitwork_core::repository`) and GitHub's
//! webhook deliveries to them. A delivery is checked against its hook's secret
//! (`X-Hub-Signature-256`, HMAC-SHA256, compared in constant time) before anything in it
//! is read, handled once per `X-GitHub-Delivery`, and for a push to a branch builds the
//! commit: the production branch into the primary env, any other into a preview env of
//! its own, which goes when its branch is deleted.

use rand::RngCore;
use serde::Deserialize;
use uuid::Uuid;
use zeitwork_api_types::{DeliveryOutcome, Repository};
use zeitwork_core::platform_host::{PRIMARY_ENV, env_label};
use zeitwork_core::repository::{
    GitSource, check_branch, check_object_id, check_url, preview_env, same_repository,
    signature_matches,
};
use zeitwork_core::{EventData, Manifest};
use zeitwork_store::model::{Env, RepositoryRecord};
use zeitwork_store::{Tx, log, read};

use crate::auth::{Auth, Caller};
use crate::builds::BuildSource;
use crate::crypto::{repository_token_aad, webhook_secret_aad};
use crate::error::{ApiError, ApiResult};
use crate::hostnames;
use crate::scope::EnvScope;
use crate::state::AppState;

/// The production branch when none is named.
pub const DEFAULT_BRANCH: &str = "main";
/// The longest fetch token accepted.
pub const MAX_TOKEN: usize = 1000;
/// The longest `X-GitHub-Delivery` accepted (GitHub sends a UUID).
pub const MAX_DELIVERY: usize = 100;

/// Where a hook's deliveries go (relative to the operator's URL).
pub fn webhook_path(hook: Uuid) -> String {
    format!("/api/v1/webhooks/github?hook={hook}")
}

/// A new connection: what `zeitwork apps connect` sends.
pub struct Connect<'a> {
    pub url: &'a str,
    pub branch: Option<&'a str>,
    pub token: Option<&'a str>,
}

/// One webhook delivery as it arrived: the hook it names, its headers, and its body,
/// unread.
pub struct Delivery<'a> {
    pub hook: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub event: Option<&'a str>,
    pub id: Option<&'a str>,
    pub json: bool,
    pub body: &'a [u8],
}

/// What came of a delivery: handled (`accepted`: something happens) or ignored, with why.
#[derive(Debug)]
pub struct Outcome {
    pub accepted: bool,
    pub message: String,
    pub build: Option<Uuid>,
    /// Handled before (GitHub redelivered it): nothing happened this time.
    pub duplicate: bool,
}

impl Outcome {
    fn ignored(message: impl Into<String>) -> Outcome {
        Outcome {
            accepted: false,
            message: message.into(),
            build: None,
            duplicate: false,
        }
    }

    fn done(message: impl Into<String>) -> Outcome {
        Outcome {
            accepted: true,
            message: message.into(),
            build: None,
            duplicate: false,
        }
    }

    pub fn answer(&self, delivery: &str) -> DeliveryOutcome {
        DeliveryOutcome {
            delivery: delivery.to_owned(),
            accepted: self.accepted,
            message: self.message.clone(),
            build_id: self.build,
            duplicate: self.duplicate,
        }
    }
}

/// The fields of GitHub's `push` payload acted on (GitHub sends many more).
#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    reference: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    repository: PushRepository,
    head_commit: Option<HeadCommit>,
}

#[derive(Deserialize)]
struct PushRepository {
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    fork: bool,
    clone_url: Option<String>,
    git_url: Option<String>,
    ssh_url: Option<String>,
    html_url: Option<String>,
}

#[derive(Deserialize)]
struct HeadCommit {
    id: String,
    tree_id: String,
}

impl AppState {
    /// Connects the app to a repository (replacing an earlier connection); answers the
    /// connection and its new webhook secret, which is shown this once.
    pub(crate) async fn connect_repository(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        org: Uuid,
        app: Uuid,
        c: Connect<'_>,
    ) -> ApiResult<(Repository, String)> {
        check_url(c.url).map_err(|e| ApiError::invalid("url", format!("url {e}")))?;
        let branch = c.branch.unwrap_or(DEFAULT_BRANCH);
        check_branch(branch).map_err(|e| ApiError::invalid("branch", format!("branch {e}")))?;
        if let Some(token) = c.token
            && (token.is_empty()
                || token.len() > MAX_TOKEN
                || token.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(ApiError::invalid(
                "token",
                format!("token must be 1 to {MAX_TOKEN} characters without whitespace"),
            ));
        }
        let hook_id = Uuid::now_v7();
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let secret = hex::encode(secret);
        let data = EventData::RepositoryConnected {
            app_id: app,
            hook_id,
            url: c.url.to_owned(),
            branch: branch.to_owned(),
            sealed_secret: self
                .secrets
                .seal(&webhook_secret_aad(app, hook_id), secret.as_bytes()),
            sealed_token: c
                .token
                .map(|t| self.secrets.seal(&repository_token_aad(app), t.as_bytes())),
        };
        log::append(tx, Some(org), &auth.actor(), data).await?;
        let repository = read::repository(&mut **tx, app)
            .await?
            .expect("just connected");
        Ok((repository.public(), secret))
    }

    /// Handles one GitHub delivery: `Err` for one that is not GitHub's (401), malformed
    /// (400) or that cannot be handled now (GitHub may redeliver it); `Ok` with what came
    /// of it otherwise.
    pub(crate) async fn github_delivery(&self, d: Delivery<'_>) -> ApiResult<(String, Outcome)> {
        let unsigned = || {
            ApiError::unauthenticated("the delivery's signature does not match its hook's secret")
        };
        let hook: Uuid = d.hook.and_then(|h| h.parse().ok()).ok_or_else(unsigned)?;
        let connection = read::repository_by_hook(self.store.pool(), hook)
            .await?
            .ok_or_else(unsigned)?;
        let secret = self
            .secrets
            .open(
                &webhook_secret_aad(connection.app_id, hook),
                &connection.sealed_secret,
            )
            .ok_or_else(unsigned)?;
        if !signature_matches(&secret, d.signature, d.body) {
            return Err(unsigned());
        }
        let event = d.event.ok_or_else(|| {
            ApiError::invalid("X-GitHub-Event", "the X-GitHub-Event header is missing")
        })?;
        let id =
            d.id.filter(|id| !id.is_empty() && id.len() <= MAX_DELIVERY)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "X-GitHub-Delivery",
                        format!("the X-GitHub-Delivery header must be 1 to {MAX_DELIVERY} bytes"),
                    )
                })?;
        if !d.json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "set the webhook's content type to application/json",
            ));
        }
        let mut tx = self.store.begin().await?;
        log::lock(&mut tx).await?;
        if let Some(outcome) = read::delivery(&mut *tx, id).await? {
            let mut before = Outcome::done(outcome);
            before.duplicate = true;
            return Ok((id.to_owned(), before));
        }
        let (org, app) = read::app_path(&mut tx, connection.app_id)
            .await?
            .ok_or_else(|| ApiError::not_found("app"))?;
        let org_id = org.id;
        let auth = Auth {
            token_id: hook,
            caller: Caller::Webhook { org: org.id, hook },
            role: zeitwork_core::Role::Deployer,
        };
        let outcome = match event {
            "ping" => Outcome::done("pong"),
            "push" => {
                let push: Push = serde_json::from_slice(d.body).map_err(|e| {
                    ApiError::new(
                        axum::http::StatusCode::BAD_REQUEST,
                        "malformed",
                        format!("the push payload is not GitHub's: {e}"),
                    )
                })?;
                let scope = (org, app);
                self.push(&mut tx, &auth, &connection, scope, push).await?
            }
            other => Outcome::ignored(format!("{other} events are not acted on")),
        };
        let data = EventData::WebhookDelivered {
            app_id: connection.app_id,
            delivery: id.to_owned(),
            event: event.chars().take(100).collect(),
            outcome: outcome.message.clone(),
        };
        log::append(&mut tx, Some(org_id), &auth.actor(), data).await?;
        tx.commit()
            .await
            .map_err(zeitwork_store::StoreError::from)?;
        Ok((id.to_owned(), outcome))
    }

    /// A push: builds the commit into the env its branch deploys to, or, for a deleted
    /// branch, deletes its preview env.
    async fn push(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        connection: &RepositoryRecord,
        (org, app): (zeitwork_store::model::Org, zeitwork_store::model::App),
        push: Push,
    ) -> ApiResult<Outcome> {
        let Some(branch) = push.reference.strip_prefix("refs/heads/") else {
            return Ok(Outcome::ignored(format!(
                "{} is not a branch; only branches are built",
                push.reference
            )));
        };
        let r = &push.repository;
        let ours = [&r.clone_url, &r.git_url, &r.ssh_url, &r.html_url]
            .into_iter()
            .flatten()
            .any(|u| same_repository(u, &connection.url));
        if !ours {
            return Ok(Outcome::ignored(match r.fork {
                true => format!("{} is a fork; its pushes are not built", r.full_name),
                false => format!(
                    "{} is not the connected repository {}",
                    r.full_name, connection.url
                ),
            }));
        }
        if check_branch(branch).is_err() {
            return Ok(Outcome::ignored(format!("{branch:?} is not a branch name")));
        }
        let production = branch == connection.branch;
        if push.deleted {
            if production {
                return Ok(Outcome::ignored(format!(
                    "the production branch {branch} was deleted; {PRIMARY_ENV} keeps serving"
                )));
            }
            let Some(env) = read::preview_env(&mut **tx, app.id, branch).await? else {
                return Ok(Outcome::ignored(format!("branch {branch} has no preview")));
            };
            let data = EventData::EnvDeleted { env_id: env.id };
            log::append(tx, Some(org.id), &auth.actor(), data).await?;
            return Ok(Outcome::done(format!(
                "branch {branch} was deleted: its preview env {} is deleted",
                env.name
            )));
        }
        let Some(head) = push.head_commit else {
            return Ok(Outcome::ignored("the push has no head commit"));
        };
        if head.id != push.after
            || check_object_id(&head.id).is_err()
            || check_object_id(&head.tree_id).is_err()
        {
            return Err(ApiError::invalid(
                "head_commit",
                "head_commit.id must be the pushed commit (after) and both it and tree_id 40 hex digits",
            ));
        }
        let env = match production {
            true => read::env(&mut **tx, app.id, PRIMARY_ENV).await?,
            false => match self.preview(tx, auth, &org, &app, branch).await? {
                Ok(env) => Some(env),
                Err(why) => return Ok(Outcome::ignored(why)),
            },
        };
        let Some(env) = env else {
            return Ok(Outcome::ignored(format!(
                "the app has no {PRIMARY_ENV} env to deploy to"
            )));
        };
        let scope = EnvScope { org, app, env };
        let manifest = self.last_manifest(tx, &scope).await?;
        let git = GitSource {
            url: connection.url.clone(),
            branch: branch.to_owned(),
            commit: head.id,
            tree: head.tree_id,
        };
        let build = self
            .queue_build(tx, auth, &scope, BuildSource::Git(git), &manifest)
            .await?;
        Ok(Outcome {
            accepted: true,
            message: format!("build {} of {branch} for env {}", build.id, scope.env.name),
            build: Some(build.id),
            duplicate: false,
        })
    }

    /// The branch's preview env, made on its first push; `Err` says why there is none.
    async fn preview(
        &self,
        tx: &mut Tx,
        auth: &Auth,
        org: &zeitwork_store::model::Org,
        app: &zeitwork_store::model::App,
        branch: &str,
    ) -> ApiResult<Result<Env, String>> {
        if let Some(env) = read::preview_env(&mut **tx, app.id, branch).await? {
            return Ok(Ok(env));
        }
        let Ok(name) = preview_env(branch) else {
            return Ok(Err(format!("branch {branch:?} makes no env name")));
        };
        if read::env(&mut **tx, app.id, name.as_str()).await?.is_some() {
            return Ok(Err(format!(
                "env {name} exists and is not the preview of branch {branch}"
            )));
        }
        let label = env_label(&app.name, name.as_str(), &org.name);
        if let Err(e) = hostnames::ensure_free(tx, &label, &self.config.base_domain, "branch").await
        {
            return Ok(Err(e.message));
        }
        let data = EventData::EnvCreated {
            env_id: Uuid::now_v7(),
            app_id: app.id,
            name: name.to_string(),
            preview_of: Some(branch.to_owned()),
        };
        log::append(tx, Some(org.id), &auth.actor(), data).await?;
        Ok(Ok(read::preview_env(&mut **tx, app.id, branch)
            .await?
            .expect("just created")))
    }

    /// What a build of a push rolls out with when the source has no `zeitwork.toml`: the
    /// env's current manifest, else the primary env's, else the default one.
    async fn last_manifest(&self, tx: &mut Tx, scope: &EnvScope) -> ApiResult<Manifest> {
        let mut envs = vec![scope.env.id];
        if let Some(primary) = read::env(&mut **tx, scope.app.id, PRIMARY_ENV).await? {
            envs.push(primary.id);
        }
        for env in envs {
            let Some(active) = read::active_deployment(&mut **tx, env).await? else {
                continue;
            };
            if let Some(release) = read::release_by_id(&mut **tx, active.release_id).await?
                && let Ok(manifest) = Manifest::from_json(&release.manifest)
            {
                return Ok(manifest);
            }
        }
        scope.manifest(None)
    }
}
