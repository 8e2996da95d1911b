//! Every route of the API, declared once (see [`crate::api`]).

mod agent;
mod apps;
mod builds;
mod deploys;
mod enroll;
mod events;
mod exec;
pub mod logs;
mod meta;
mod nodes;
mod orgs;
mod registry;
mod repositories;
mod routing;
mod scale;
mod secrets;
mod session;
mod tokens;

pub(crate) use routing::apply_declared;

use axum::http::StatusCode;
use uuid::Uuid;
use zeitwork_core::EventData;
use zeitwork_store::log;

use zeitwork_api_types::*;
use zeitwork_core::QuotaOverrides;
use zeitwork_core::build::BuildReport;
use zeitwork_core::node::{
    Enrolled, Enrollment, Heartbeat, HeartbeatAck, InstanceReport, JoinToken, LogBatch, NodeDesired,
};

use crate::api::Api;
use crate::auth::Auth;
use crate::error::ApiResult;
use crate::state::AppState;

/// Paths are built from these prefixes at compile time.
macro_rules! p {
    (org $rest:literal) => {
        concat!("/api/v1/orgs/{org}", $rest)
    };
    (app $rest:literal) => {
        concat!("/api/v1/orgs/{org}/apps/{app}", $rest)
    };
    (env $rest:literal) => {
        concat!("/api/v1/orgs/{org}/apps/{app}/envs/{env}", $rest)
    };
}

pub fn api() -> Api {
    Api::default()
        .public("/health", "Liveness of the operator", meta::health)
        .ok::<Health>()
        .public("/metrics", "Prometheus metrics", meta::metrics)
        .prometheus()
        .public("/api/v1/openapi.json", "This document", meta::openapi)
        .ok::<serde_json::Map<String, serde_json::Value>>()
        .get(
            "/api/v1/whoami",
            "The calling credential: its org and role",
            meta::whoami,
        )
        .ok::<Whoami>()
        .public_post(
            "/api/v1/session",
            "Sign in to the dashboard with an API token: a session cookie (HttpOnly, SameSite=Strict) and its CSRF token",
            session::create,
        )
        .body::<NewSession>()
        .created::<Session>()
        .get(
            "/api/v1/session",
            "The signed-in dashboard session",
            session::show,
        )
        .ok::<Session>()
        .delete(
            "/api/v1/session",
            "Sign out: the session ends",
            session::delete,
        )
        .get(
            "/api/v1/registry",
            "Where the platform registry is",
            registry::info,
        )
        .ok::<RegistryInfo>()
        .public(
            "/api/v1/registry/token",
            "The platform registry's token service (Docker token auth; an API token or node credential as the basic-auth password)",
            registry::token,
        )
        .ok::<RegistryToken>()
        .get("/api/v1/orgs", "List orgs visible to the token", orgs::list)
        .query::<PageQuery>()
        .ok::<OrgList>()
        .post(
            "/api/v1/orgs",
            "Create an org (platform token)",
            orgs::create,
        )
        .body::<NewName>()
        .created::<Org>()
        .get(p!(org ""), "Show an org", orgs::show)
        .ok::<Org>()
        .delete(
            p!(org ""),
            "Delete an org and everything in it (platform token)",
            orgs::delete,
        )
        .get(
            p!(org "/quotas"),
            "The org's quotas in force, its own, the platform's, and its usage",
            orgs::quotas,
        )
        .ok::<OrgQuotas>()
        .put(
            p!(org "/quotas"),
            "Set the org's own quotas; absent or null ones are the platform's (platform token)",
            orgs::set_quotas,
        )
        .body::<QuotaOverrides>()
        .ok::<OrgQuotas>()
        .get(p!(org "/tokens"), "List the org's tokens", tokens::list)
        .query::<PageQuery>()
        .ok::<TokenList>()
        .post(
            p!(org "/tokens"),
            "Create a token; its secret is shown once",
            tokens::create,
        )
        .body::<NewToken>()
        .created::<CreatedToken>()
        .delete(p!(org "/tokens/{id}"), "Revoke a token", tokens::revoke)
        .get(p!(org "/users"), "List the org's users", tokens::list_users)
        .query::<PageQuery>()
        .ok::<UserList>()
        .post(p!(org "/users"), "Add a user", tokens::add_user)
        .body::<NewUser>()
        .created::<User>()
        .delete(p!(org "/users/{id}"), "Remove a user", tokens::remove_user)
        .get(
            p!(org "/apps"),
            "List apps, by name, with their primary env's state",
            apps::list,
        )
        .query::<PageQuery>()
        .ok::<AppList>()
        .post(p!(org "/apps"), "Create an app (with env prod)", apps::create)
        .body::<NewName>()
        .created::<App>()
        .get(p!(app ""), "Show an app", apps::show)
        .ok::<App>()
        .delete(
            p!(app ""),
            "Delete an app and everything in it",
            apps::delete,
        )
        .get(
            p!(app "/releases"),
            "List releases, newest first",
            deploys::releases,
        )
        .query::<PageQuery>()
        .ok::<ReleaseList>()
        .get(
            p!(app "/releases/{number}"),
            "Show a release",
            deploys::release,
        )
        .ok::<Release>()
        .get(
            p!(app "/logs"),
            "Instance logs, oldest first; follow=1 streams them (Server-Sent Events)",
            logs::list,
        )
        .query::<LogQuery>()
        .ok::<LogTail>()
        .event_stream::<LogLine>()
        .get(
            p!(app "/repository"),
            "The app's connected git repository",
            repositories::show,
        )
        .ok::<RepositoryInfo>()
        .put(
            p!(app "/repository"),
            "Connect the app to a git repository (answers the webhook's path and a new secret, shown once)",
            repositories::connect,
        )
        .body::<ConnectRepository>()
        .ok::<RepositoryInfo>()
        .delete(
            p!(app "/repository"),
            "Disconnect the app from its repository",
            repositories::disconnect,
        )
        .public_post(
            "/api/v1/webhooks/github",
            "GitHub webhook deliveries (?hook=ID; signed with X-Hub-Signature-256)",
            repositories::github,
        )
        .ok::<DeliveryOutcome>()
        .accepted::<DeliveryOutcome>()
        .get(p!(app "/envs"), "List envs", apps::list_envs)
        .query::<PageQuery>()
        .ok::<EnvList>()
        .post(p!(app "/envs"), "Create an env", apps::create_env)
        .body::<NewName>()
        .created::<Env>()
        .get(p!(env ""), "Show an env", apps::show_env)
        .ok::<Env>()
        .delete(
            p!(env ""),
            "Delete an env and everything in it",
            apps::delete_env,
        )
        .get(
            p!(env "/status"),
            "Active deployment, URL and instances",
            deploys::status,
        )
        .ok::<EnvStatus>()
        .get(p!(env "/builds"), "List builds, newest first", builds::list)
        .query::<PageQuery>()
        .ok::<BuildList>()
        .post(
            p!(env "/builds"),
            "Build a source pushed to the platform registry and roll its image out",
            builds::create,
        )
        .body::<NewBuild>()
        .created::<Build>()
        .get(p!(env "/builds/{id}"), "Show a build", builds::show)
        .ok::<Build>()
        .get(
            p!(env "/builds/{id}/logs"),
            "A build's output; follow=1 streams it until the build ends (Server-Sent Events, then an `end` event)",
            logs::build,
        )
        .query::<LogQuery>()
        .ok::<LogTail>()
        .event_stream::<LogLine>()
        .post(
            p!(env "/builds/{id}/cancel"),
            "Cancel a build that has not ended; its node stops it",
            builds::cancel,
        )
        .ok::<Build>()
        .get(
            p!(env "/deployments"),
            "List deployments, newest first",
            deploys::deployments,
        )
        .query::<PageQuery>()
        .ok::<DeploymentList>()
        .post(p!(env "/deployments"), "Deploy an image", deploys::deploy)
        .body::<NewDeployment>()
        .created::<Rollout>()
        .post(
            p!(env "/rollback"),
            "Roll back to an earlier release",
            deploys::rollback,
        )
        .body::<Rollback>()
        .created::<Rollout>()
        .post(
            p!(env "/restart"),
            "Restart the active deployment's instances (surging, health-gated), with the env's current secrets",
            deploys::restart,
        )
        .body::<Restart>()
        .created::<Restarted>()
        .post(
            p!(env "/scale"),
            "Change a process's instance count",
            scale::scale,
        )
        .body::<Scale>()
        .ok::<Scaled>()
        .post(
            p!(env "/exec"),
            "A single-use grant (60 s) to run a command in a running instance (deployer)",
            exec::grant,
        )
        .body::<ExecRequest>()
        .created::<ExecGrant>()
        .public(
            "/api/v1/exec/{grant}",
            "Run a granted exec: the grant's token as bearer, `Upgrade: zeitwork-exec` (101), then exec frames",
            exec::attach,
        )
        .upgrade()
        .get(
            "/api/v1/nodes/{name}/execs/{grant}",
            "The node's end of a redeemed exec: `Upgrade: zeitwork-exec` (node credential)",
            exec::attach_node,
        )
        .upgrade()
        .get(
            p!(env "/instances"),
            "List instances, newest first",
            deploys::instances,
        )
        .query::<PageQuery>()
        .ok::<InstanceList>()
        .get(p!(env "/routes"), "List routes", routing::routes)
        .query::<PageQuery>()
        .ok::<RouteList>()
        .post(p!(env "/routes"), "Create a route", routing::create_route)
        .body::<NewRoute>()
        .created::<Route>()
        .delete(
            p!(env "/routes/{id}"),
            "Delete a route",
            routing::delete_route,
        )
        .get(p!(env "/domains"), "List custom domains", routing::domains)
        .query::<PageQuery>()
        .ok::<DomainList>()
        .post(
            p!(env "/domains"),
            "Add a custom domain",
            routing::add_domain,
        )
        .body::<NewDomain>()
        .created::<DomainView>()
        .delete(
            p!(env "/domains/{hostname}"),
            "Remove a custom domain",
            routing::remove_domain,
        )
        .post(
            p!(env "/domains/{hostname}/verify"),
            "Verify a custom domain by its DNS TXT record _zeitwork-challenge.<hostname>",
            routing::verify_domain,
        )
        .ok::<DomainView>()
        .get(
            p!(env "/secrets"),
            "List secret names and versions (never values)",
            secrets::list,
        )
        .query::<PageQuery>()
        .ok::<SecretList>()
        .put(p!(env "/secrets/{name}"), "Set a secret", secrets::set)
        .body::<SetSecret>()
        .ok::<SecretSet>()
        .delete(
            p!(env "/secrets/{name}"),
            "Unset a secret (?restart=false: without restarting the env)",
            secrets::unset,
        )
        .query::<UnsetQuery>()
        .get("/api/v1/nodes", "List nodes (platform token)", nodes::list)
        .query::<PageQuery>()
        .ok::<NodeList>()
        .post(
            "/api/v1/nodes",
            "Register a node (platform token)",
            nodes::register,
        )
        .body::<NewNode>()
        .created::<Node>()
        .get("/api/v1/nodes/{name}", "Show a node", nodes::show)
        .ok::<Node>()
        .post(
            "/api/v1/nodes/{name}/drain",
            "Replace a node's instances elsewhere, then stop them (platform token)",
            nodes::drain,
        )
        .ok::<NodeChanged>()
        .post(
            "/api/v1/nodes/{name}/undrain",
            "Let a draining node take new instances again (platform token)",
            nodes::undrain,
        )
        .ok::<NodeChanged>()
        .post(
            "/api/v1/nodes/join-tokens",
            "Create a one-time token a node enrolls with (platform token)",
            enroll::create_join_token,
        )
        .body::<NewJoinToken>()
        .created::<JoinToken>()
        .public_post(
            "/api/v1/nodes/enroll",
            "Enroll a node, the join token as bearer; its credential is shown once",
            enroll::enroll,
        )
        .body::<Enrollment>()
        .created::<Enrolled>()
        .post(
            "/api/v1/nodes/{name}/heartbeat",
            "The node agent is alive (node credential)",
            agent::heartbeat,
        )
        .body::<Heartbeat>()
        .ok::<HeartbeatAck>()
        .get(
            "/api/v1/nodes/{name}/desired",
            "Everything the node should run (node credential or platform token)",
            agent::desired,
        )
        .ok::<NodeDesired>()
        .post(
            "/api/v1/nodes/{name}/instances/{id}/state",
            "Report what an instance does (node credential)",
            agent::report,
        )
        .body::<InstanceReport>()
        .ok::<Recorded>()
        .post(
            "/api/v1/nodes/{name}/builds/{id}/state",
            "Report where a build is (node credential)",
            builds::report,
        )
        .body::<BuildReport>()
        .ok::<BuildReported>()
        .post(
            "/api/v1/nodes/{name}/logs",
            "Ship a batch of the node's instance log lines (node credential)",
            logs::ingest,
        )
        .body::<LogBatch>()
        .no_content()
        .get("/api/v1/regions", "List regions", nodes::regions)
        .query::<PageQuery>()
        .ok::<RegionList>()
        .post(
            "/api/v1/regions",
            "Create a region (platform token)",
            nodes::create_region,
        )
        .body::<NewName>()
        .created::<Region>()
        .put(
            "/api/v1/regions/{name}",
            "Set a region's public addresses and client networks whole (platform token)",
            nodes::set_region_addresses,
        )
        .body::<RegionAddresses>()
        .ok::<Region>()
        .get("/api/v1/events", "Page through the event log", events::list)
        .query::<EventQuery>()
        .ok::<EventPage>()
        .get(
            "/api/v1/events/stream",
            "Follow the event log (Server-Sent Events; resumes after Last-Event-ID or ?after=)",
            events::stream,
        )
        .query::<EventQuery>()
        .event_stream::<PublicEvent>()
}

impl AppState {
    /// Appends one event in its own transaction, for changes that answer 204.
    pub(crate) async fn record(
        &self,
        auth: &Auth,
        org: Option<Uuid>,
        data: EventData,
    ) -> ApiResult<StatusCode> {
        let mut tx = self.store.begin().await?;
        log::append(&mut tx, org, &auth.actor(), data).await?;
        tx.commit().await?;
        Ok(StatusCode::NO_CONTENT)
    }
}
