//! Registry garbage collection, online: the registry keeps serving every pull. One round
//! lists the platform registry's app repositories (`<org>/<app>` and
//! `<org>/<app>/source`), and deletes, through the registry's own API, every image the
//! platform no longer refers to ([`zeitwork_store::registry::references`]: the releases of
//! each env's last `keep` deployments and of whatever still runs, the sources and images
//! of each env's last `keep` builds and of builds in flight) once it has gone unreferenced
//! for `grace` (an image pushed a moment ago, not deployed yet, is left alone). A deleted
//! preview env's images go that way too. The space their layers took is given back by the
//! registry's own blob sweep (`docker-registry garbage-collect`), which reads what is left.
//! Each round also measures what every org's images take (each blob once), which its
//! registry quota is held against.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use zeitwork_core::ImageRef;
use zeitwork_registry::{Access, Action};
use zeitwork_store::{Store, registry};

use crate::registry::PlatformRegistry;

/// The manifest types the platform's images come as.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";
/// Repositories or tags asked for per page.
const PAGE: usize = 100;

/// What is kept and for how long.
#[derive(Debug, Clone, Copy)]
pub struct GcPolicy {
    /// Each env's last deployments (and builds) whose images are kept.
    pub keep_per_env: u32,
    /// How long an image must have gone unreferenced before it is deleted.
    pub grace: Duration,
    /// How often a round runs.
    pub every: Duration,
}

impl Default for GcPolicy {
    fn default() -> GcPolicy {
        GcPolicy {
            keep_per_env: 20,
            grace: Duration::from_secs(3600),
            every: Duration::from_secs(3600),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// Images looked at.
    pub seen: usize,
    /// `repository@digest` of each image deleted.
    pub deleted: Vec<String>,
}

/// Why a round stopped; the next one tries again.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("the registry answered {status} to {what}")]
    Registry { what: String, status: StatusCode },
    #[error("reaching the registry for {what}: {source}")]
    Unreachable {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the registry's blob sweep failed: {0}")]
    Sweep(String),
    #[error(transparent)]
    Store(#[from] zeitwork_store::StoreError),
}

/// Runs a round every `policy.every` for as long as the operator runs; a failed round
/// is logged and the next one catches up.
pub async fn run(store: Store, registry: std::sync::Arc<PlatformRegistry>, policy: GcPolicy) {
    let mut every = tokio::time::interval(policy.every);
    every.tick().await;
    loop {
        every.tick().await;
        match collect(&store, &registry, &policy).await {
            Ok(c) if !c.deleted.is_empty() => {
                tracing::info!(
                    deleted = c.deleted.len(),
                    seen = c.seen,
                    "registry garbage collected"
                );
                metrics::counter!("zeitwork_registry_images_deleted_total")
                    .increment(c.deleted.len() as u64);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "registry garbage collection failed; retrying later")
            }
        }
    }
}

/// A blob sweep: the registry's own `garbage-collect` (`collect_blobs`) deletes the
/// blobs no manifest refers to any more, online (pulls go on). It must not race an
/// upload, whose blobs have no manifest yet: so pushes are refused from the start (the
/// token service grants pulls only while a sweep is open), and the sweep waits `wait`
/// (the lifetime of a registry token) so every push token granted before has expired.
/// Its output, as `collect_blobs` gives it.
pub async fn sweep<F, E>(store: &Store, wait: Duration, collect_blobs: F) -> Result<String, GcError>
where
    F: Future<Output = Result<String, E>>,
    E: std::fmt::Display,
{
    let id = registry::begin_sweep(store.pool()).await?;
    tokio::time::sleep(wait).await;
    let result = collect_blobs.await;
    registry::end_sweep(store.pool(), id).await?;
    result.map_err(|e| GcError::Sweep(e.to_string()))
}

/// One round (skipped, with nothing collected, while another operator runs one).
pub async fn collect(
    store: &Store,
    platform: &PlatformRegistry,
    policy: &GcPolicy,
) -> Result<Collected, GcError> {
    let mut tx = store.begin().await?;
    if !registry::try_lock_gc(&mut tx).await? {
        return Ok(Collected::default());
    }
    let keep: HashSet<(String, String)> =
        registry::references(&mut *tx, i64::from(policy.keep_per_env))
            .await?
            .into_iter()
            .filter_map(|image| {
                let digest = ImageRef::parse(&image).ok()?.digest;
                Some((platform.repository_of(&image)?, digest))
            })
            .collect();
    let client = Client::new(platform);
    let mut done = Collected::default();
    let grace = chrono::Duration::from_std(policy.grace).unwrap_or(chrono::Duration::MAX);
    for repository in client.catalog().await? {
        if !is_app_repository(&repository) {
            continue;
        }
        for tag in client.tags(&repository).await? {
            let Some(digest) = client.digest(&repository, &tag).await? else {
                continue;
            };
            done.seen += 1;
            let first_seen = registry::first_seen(&mut tx, &repository, &digest).await?;
            if keep.contains(&(repository.clone(), digest.clone()))
                || chrono::Utc::now() - first_seen < grace
            {
                continue;
            }
            // Deleting by digest takes every tag of the image with it.
            client.delete(&repository, &digest).await?;
            registry::forget(&mut tx, &repository, &digest).await?;
            done.deleted.push(format!("{repository}@{digest}"));
        }
    }
    measure(&mut tx, &client).await?;
    tx.commit()
        .await
        .map_err(zeitwork_store::StoreError::from)?;
    Ok(done)
}

/// Measures what each org's images take in the registry (every repository under its
/// name, each blob once) and records it: what its registry quota is held against.
async fn measure(tx: &mut zeitwork_store::Tx, client: &Client<'_>) -> Result<(), GcError> {
    let mut blobs: HashMap<String, HashMap<String, u64>> = HashMap::new();
    for repository in client.catalog().await? {
        let org = repository.split('/').next().unwrap_or_default().to_owned();
        let of_org = blobs.entry(org).or_default();
        for tag in client.tags(&repository).await? {
            let mut pending = vec![tag];
            while let Some(reference) = pending.pop() {
                let Some(manifest) = client.manifest(&repository, &reference).await? else {
                    continue;
                };
                // An index: its images' manifests.
                for child in manifest["manifests"].as_array().into_iter().flatten() {
                    if let Some(digest) = child["digest"].as_str() {
                        pending.push(digest.to_owned());
                    }
                }
                let layers = manifest["layers"].as_array().into_iter().flatten();
                for blob in std::iter::once(&manifest["config"]).chain(layers) {
                    if let (Some(digest), Some(size)) =
                        (blob["digest"].as_str(), blob["size"].as_u64())
                    {
                        of_org.insert(digest.to_owned(), size);
                    }
                }
            }
        }
    }
    let orgs = zeitwork_store::read::orgs(&mut **tx, None).await?;
    for org in &orgs {
        let bytes = blobs.get(&org.name).map_or(0, |b| b.values().sum());
        registry::set_usage(tx, org.id, bytes).await?;
    }
    let ids: Vec<uuid::Uuid> = orgs.iter().map(|o| o.id).collect();
    registry::forget_usage_except(tx, &ids).await?;
    Ok(())
}

/// The platform's app repositories: `<org>/<app>` and `<org>/<app>/source`; anything
/// else an org keeps in the registry is not the collector's.
fn is_app_repository(repository: &str) -> bool {
    let parts: Vec<&str> = repository.split('/').collect();
    matches!(parts.as_slice(), [_, _] | [_, _, "source"])
}

/// The registry's HTTP API, with tokens the operator signs itself for each call.
struct Client<'a> {
    platform: &'a PlatformRegistry,
    http: reqwest::Client,
    base: String,
}

impl<'a> Client<'a> {
    fn new(platform: &'a PlatformRegistry) -> Client<'a> {
        let scheme = match zeitwork_image::plain_http(&platform.address) {
            true => "http",
            false => "https",
        };
        Client {
            platform,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a plain HTTP client"),
            base: format!("{scheme}://{}", platform.address),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        access: Access,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, GcError> {
        let token = self
            .platform
            .issue("registry-gc".into(), vec![access])
            .token;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        request.send().await.map_err(|source| GcError::Unreachable {
            what: format!("{method} {path}"),
            source,
        })
    }

    async fn json(&self, path: &str, access: Access) -> Result<Value, GcError> {
        let answer = self.send(Method::GET, path, access, None).await?;
        if !answer.status().is_success() {
            return Err(GcError::Registry {
                what: format!("GET {path}"),
                status: answer.status(),
            });
        }
        answer.json().await.map_err(|source| GcError::Unreachable {
            what: format!("GET {path}"),
            source,
        })
    }

    /// Every repository, page by page.
    async fn catalog(&self) -> Result<Vec<String>, GcError> {
        self.pages("/v2/_catalog", "repositories", Access::catalog())
            .await
    }

    /// Every tag of `repository`.
    async fn tags(&self, repository: &str) -> Result<Vec<String>, GcError> {
        let access = Access::repository(repository, vec![Action::Pull]);
        self.pages(&format!("/v2/{repository}/tags/list"), "tags", access)
            .await
    }

    async fn pages(&self, path: &str, key: &str, access: Access) -> Result<Vec<String>, GcError> {
        let mut all: Vec<String> = Vec::new();
        loop {
            let mut page = format!("{path}?n={PAGE}");
            if let Some(last) = all.last() {
                page.push_str(&format!("&last={last}"));
            }
            let answer = self.json(&page, access.clone()).await?;
            let items: Vec<String> = answer[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            let more = items.len() == PAGE;
            all.extend(items);
            if !more {
                return Ok(all);
            }
        }
    }

    /// The digest `tag` of `repository` names (None when it went meanwhile).
    async fn digest(&self, repository: &str, tag: &str) -> Result<Option<String>, GcError> {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let access = Access::repository(repository, vec![Action::Pull]);
        let answer = self
            .send(Method::HEAD, &path, access, Some(MANIFEST_TYPES))
            .await?;
        match answer.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(answer
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)),
            status => Err(GcError::Registry {
                what: format!("HEAD {path}"),
                status,
            }),
        }
    }

    /// The manifest `reference` (a tag or digest) of `repository` (None when it went).
    async fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Value>, GcError> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let access = Access::repository(repository, vec![Action::Pull]);
        let answer = self
            .send(Method::GET, &path, access, Some(MANIFEST_TYPES))
            .await?;
        match answer.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let bytes = answer
                    .bytes()
                    .await
                    .map_err(|source| GcError::Unreachable {
                        what: format!("GET {path}"),
                        source,
                    })?;
                Ok(serde_json::from_slice(&bytes).ok())
            }
            status => Err(GcError::Registry {
                what: format!("GET {path}"),
                status,
            }),
        }
    }

    async fn delete(&self, repository: &str, digest: &str) -> Result<(), GcError> {
        let path = format!("/v2/{repository}/manifests/{digest}");
        let access = Access::repository(repository, vec![Action::Delete]);
        let answer = self.send(Method::DELETE, &path, access, None).await?;
        match answer.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            status => Err(GcError::Registry {
                what: format!("DELETE {path}"),
                status,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_app_repositories_are_collected() {
        assert!(is_app_repository("acme/web"));
        assert!(is_app_repository("acme/web/source"));
        assert!(!is_app_repository("acme"));
        assert!(!is_app_repository("acme/team/tool"));
        assert!(!is_app_repository("acme/web/cache"));
    }
}
