//! The platform registry's token service (Docker token auth, see `zeitwork_registry`):
//! who may pull, push or delete which repositories. An org's repositories are
//! `<org>/...`: its tokens pull them (reader), push (deployer) and delete (admin), and
//! reach nothing else. A node pulls the repositories of the instances placed on it and
//! the sources of the builds it runs, and pushes to those builds' apps' repositories;
//! nothing else. A platform token reaches every repository.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::PgConnection;
use zeitwork_core::{ImageRef, Role};
use zeitwork_registry::{Access, Action, Issued, Scope, TokenKey, TokenRequest};

use zeitwork_store::read;

use crate::auth::{Auth, Caller};
use crate::error::ApiResult;

/// How long a registry token is good for: long enough for one push or pull of a large
/// image, short enough that a leaked one is soon worthless.
pub const TOKEN_TTL_SECONDS: u64 = 300;

/// The registry the platform runs, as the operator knows it.
#[derive(Debug)]
pub struct PlatformRegistry {
    /// `host:port` as clients and nodes reach it: the registry part of image references.
    pub address: String,
    /// Signs the tokens the registry trusts.
    pub key: TokenKey,
}

impl PlatformRegistry {
    /// What `auth` is granted of `scopes`, each scope's actions cut to what the caller may
    /// do (possibly nothing: the registry then refuses).
    /// An org over its registry quota (see `crate::quota`) is refused pushes with 403.
    pub(crate) async fn grant(
        &self,
        db: &mut PgConnection,
        auth: &Auth,
        scopes: &[Scope],
        quotas: zeitwork_core::Quotas,
    ) -> ApiResult<Vec<Access>> {
        let may = |scope: &Scope, allowed: &[Action]| {
            let actions: Vec<Action> = scope
                .actions
                .iter()
                .copied()
                .filter(|a| allowed.contains(a))
                .collect();
            (!actions.is_empty()).then(|| Access::repository(&scope.repository, actions))
        };
        let granted = match auth.caller {
            Caller::Platform => scopes
                .iter()
                .filter_map(|s| may(s, &[Action::Pull, Action::Push, Action::Delete]))
                .collect(),
            Caller::Org(org) => {
                let Some(org) = read::org_by_id(&mut *db, org).await? else {
                    return Ok(Vec::new());
                };
                let pushes = scopes
                    .iter()
                    .any(|s| s.namespace() == org.name && s.actions.contains(&Action::Push));
                if pushes && actions_of(auth.role).contains(&Action::Push) {
                    let usage = read::org_usage(&mut *db, org.id, None, None).await?;
                    crate::quota::of(&mut *db, quotas, &org)
                        .await?
                        .allow_registry_writes(&usage)?;
                }
                let name = org.name;
                let allowed = actions_of(auth.role);
                scopes
                    .iter()
                    .filter(|s| s.namespace() == name)
                    .filter_map(|s| may(s, allowed))
                    .collect()
            }
            Caller::Webhook { .. } => Vec::new(),
            Caller::Node(node) => {
                let images = read::node_images(&mut *db, node).await?;
                let mut pull: Vec<String> = images
                    .iter()
                    .filter_map(|image| self.repository_of(image))
                    .collect();
                // Its open builds: their sources and their orgs' images (base images) to
                // pull, their apps' repositories to push.
                let mut push = Vec::new();
                let mut orgs = Vec::new();
                for build in read::node_builds(&mut *db, node).await? {
                    pull.extend(self.repository_of(&build.source));
                    push.push(format!("{}/{}", build.org, build.app));
                    orgs.push(build.org);
                }
                scopes
                    .iter()
                    .filter_map(|s| {
                        if push.contains(&s.repository) {
                            may(s, &[Action::Pull, Action::Push])
                        } else if pull.contains(&s.repository)
                            || orgs.iter().any(|o| o == s.namespace())
                        {
                            may(s, &[Action::Pull])
                        } else {
                            None
                        }
                    })
                    .collect()
            }
        };
        // While the registry's blobs are swept nothing is written to it (see
        // `crate::registry_gc::sweep`): pulls only.
        if zeitwork_store::registry::sweeping(&mut *db).await? {
            return Ok(granted
                .into_iter()
                .filter_map(|mut access| {
                    access.actions.retain(|a| *a == Action::Pull);
                    (!access.actions.is_empty()).then_some(access)
                })
                .collect());
        }
        Ok(granted)
    }

    /// The repository (`acme/web`) of an image reference in this registry, else None.
    pub fn repository_of(&self, image: &str) -> Option<String> {
        let name = ImageRef::parse(image).map_or_else(|_| image.to_owned(), |r| r.name);
        let path = name.strip_prefix(&self.address)?.strip_prefix('/')?;
        // A tag is after the last ':' of the last path component.
        let (dir, last) = path.rsplit_once('/').unwrap_or(("", path));
        let last = last.split_once(':').map_or(last, |(repo, _)| repo);
        Some(if dir.is_empty() {
            last.to_owned()
        } else {
            format!("{dir}/{last}")
        })
    }

    /// A signed token for `subject` granting `granted`.
    pub(crate) fn issue(&self, subject: String, granted: Vec<Access>) -> Issued {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        zeitwork_registry::issue(
            &self.key,
            &TokenRequest {
                subject,
                granted,
                now,
                ttl: TOKEN_TTL_SECONDS,
                id: uuid::Uuid::now_v7().to_string(),
            },
        )
    }
}

/// What an org token of `role` may do to its org's repositories.
fn actions_of(role: Role) -> &'static [Action] {
    match role {
        Role::Admin => &[Action::Pull, Action::Push, Action::Delete],
        Role::Deployer => &[Action::Pull, Action::Push],
        Role::Reader => &[Action::Pull],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_read_from_references_in_this_registry_only() {
        let r = PlatformRegistry {
            address: "127.0.0.1:5000".into(),
            key: TokenKey::generate().unwrap(),
        };
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            r.repository_of(&format!("127.0.0.1:5000/acme/web:v1@{d}")),
            Some("acme/web".into())
        );
        assert_eq!(
            r.repository_of(&format!("127.0.0.1:5000/acme/web@{d}")),
            Some("acme/web".into())
        );
        assert_eq!(
            r.repository_of("127.0.0.1:5000/acme/web/cache:x"),
            Some("acme/web/cache".into())
        );
        assert_eq!(
            r.repository_of(&format!("127.0.0.1:50000/acme/web@{d}")),
            None
        );
        assert_eq!(r.repository_of(&format!("docker.io/acme/web@{d}")), None);
        assert_eq!(actions_of(Role::Reader), [Action::Pull]);
    }
}
