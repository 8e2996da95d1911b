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
mod tokens;

pub(crate) use routing::apply_declared;

use axum::http::StatusCode;
use uuid::Uuid;
use zeitwork_core::EventData;
use zeitwork_store::log;

use crate::api::{Api, Field, Kind, opt, req};
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
        .public("/metrics", "Prometheus metrics", meta::metrics)
        .public("/api/v1/openapi.json", "This document", meta::openapi)
        .get(
            "/api/v1/whoami",
            "The calling token's org and role",
            meta::whoami,
        )
        .get(
            "/api/v1/registry",
            "Where the platform registry is",
            registry::info,
        )
        .public(
            "/api/v1/registry/token",
            "The platform registry's token service (Docker token auth; an API token or node credential as the basic-auth password)",
            registry::token,
        )
        .get("/api/v1/orgs", "List orgs visible to the token", orgs::list)
        .post(
            "/api/v1/orgs",
            "Create an org (platform token)",
            NAME,
            orgs::create,
        )
        .get(p!(org ""), "Show an org", orgs::show)
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
        .put(
            p!(org "/quotas"),
            "Set the org's own quotas; absent or null ones are the platform's (platform token)",
            QUOTA_FIELDS,
            orgs::set_quotas,
        )
        .get(p!(org "/tokens"), "List the org's tokens", tokens::list)
        .post(
            p!(org "/tokens"),
            "Create a token; its secret is shown once",
            TOKEN_FIELDS,
            tokens::create,
        )
        .delete(p!(org "/tokens/{id}"), "Revoke a token", tokens::revoke)
        .get(p!(org "/users"), "List the org's users", tokens::list_users)
        .post(
            p!(org "/users"),
            "Add a user",
            USER_FIELDS,
            tokens::add_user,
        )
        .delete(p!(org "/users/{id}"), "Remove a user", tokens::remove_user)
        .get(p!(org "/apps"), "List apps", apps::list)
        .post(
            p!(org "/apps"),
            "Create an app (with env prod)",
            NAME,
            apps::create,
        )
        .get(p!(app ""), "Show an app", apps::show)
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
        .get(
            p!(app "/releases/{number}"),
            "Show a release",
            deploys::release,
        )
        .get(
            p!(app "/logs"),
            "Instance logs, oldest first; follow=1 streams them (Server-Sent Events)",
            logs::list,
        )
        .get(
            p!(app "/repository"),
            "The app's connected git repository",
            repositories::show,
        )
        .put(
            p!(app "/repository"),
            "Connect the app to a git repository (answers the webhook's path and a new secret, shown once)",
            REPOSITORY_FIELDS,
            repositories::connect,
        )
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
        .get(p!(app "/envs"), "List envs", apps::list_envs)
        .post(p!(app "/envs"), "Create an env", NAME, apps::create_env)
        .get(p!(env ""), "Show an env", apps::show_env)
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
        .get(p!(env "/builds"), "List builds, newest first", builds::list)
        .post(
            p!(env "/builds"),
            "Build a source pushed to the platform registry and roll its image out",
            BUILD_FIELDS,
            builds::create,
        )
        .get(p!(env "/builds/{id}"), "Show a build", builds::show)
        .get(
            p!(env "/builds/{id}/logs"),
            "A build's output; follow=1 streams it until the build ends (Server-Sent Events, then an `end` event)",
            logs::build,
        )
        .post(
            p!(env "/builds/{id}/cancel"),
            "Cancel a build that has not ended; its node stops it",
            &[],
            builds::cancel,
        )
        .get(
            p!(env "/deployments"),
            "List deployments, newest first",
            deploys::deployments,
        )
        .post(
            p!(env "/deployments"),
            "Deploy an image",
            DEPLOY_FIELDS,
            deploys::deploy,
        )
        .post(
            p!(env "/rollback"),
            "Roll back to an earlier release",
            ROLLBACK_FIELDS,
            deploys::rollback,
        )
        .post(
            p!(env "/restart"),
            "Restart the active deployment's instances (surging, health-gated), with the env's current secrets",
            RESTART_FIELDS,
            deploys::restart,
        )
        .post(
            p!(env "/scale"),
            "Change a process's instance count",
            SCALE_FIELDS,
            scale::scale,
        )
        .post(
            p!(env "/exec"),
            "A single-use grant (60 s) to run a command in a running instance (deployer)",
            EXEC_FIELDS,
            exec::grant,
        )
        .public(
            "/api/v1/exec/{grant}",
            "Run a granted exec: the grant's token as bearer, `Upgrade: zeitwork-exec` (101), then exec frames",
            exec::attach,
        )
        .get(
            "/api/v1/nodes/{name}/execs/{grant}",
            "The node's end of a redeemed exec: `Upgrade: zeitwork-exec` (node credential)",
            exec::attach_node,
        )
        .get(p!(env "/instances"), "List instances", deploys::instances)
        .get(p!(env "/routes"), "List routes", routing::routes)
        .post(
            p!(env "/routes"),
            "Create a route",
            ROUTE_FIELDS,
            routing::create_route,
        )
        .delete(
            p!(env "/routes/{id}"),
            "Delete a route",
            routing::delete_route,
        )
        .get(p!(env "/domains"), "List custom domains", routing::domains)
        .post(
            p!(env "/domains"),
            "Add a custom domain",
            DOMAIN_FIELDS,
            routing::add_domain,
        )
        .delete(
            p!(env "/domains/{hostname}"),
            "Remove a custom domain",
            routing::remove_domain,
        )
        .post(
            p!(env "/domains/{hostname}/verify"),
            "Verify a custom domain by its DNS TXT record _zeitwork-challenge.<hostname>",
            &[],
            routing::verify_domain,
        )
        .get(
            p!(env "/secrets"),
            "List secret names and versions (never values)",
            secrets::list,
        )
        .put(
            p!(env "/secrets/{name}"),
            "Set a secret",
            SECRET_FIELDS,
            secrets::set,
        )
        .delete(
            p!(env "/secrets/{name}"),
            "Unset a secret (?restart=false: without restarting the env)",
            secrets::unset,
        )
        .get("/api/v1/nodes", "List nodes", nodes::list)
        .post(
            "/api/v1/nodes",
            "Register a node (platform token)",
            NODE_FIELDS,
            nodes::register,
        )
        .get("/api/v1/nodes/{name}", "Show a node", nodes::show)
        .post(
            "/api/v1/nodes/{name}/drain",
            "Replace a node's instances elsewhere, then stop them (platform token)",
            &[],
            nodes::drain,
        )
        .post(
            "/api/v1/nodes/{name}/undrain",
            "Let a draining node take new instances again (platform token)",
            &[],
            nodes::undrain,
        )
        .post(
            "/api/v1/nodes/join-tokens",
            "Create a one-time token a node enrolls with (platform token)",
            JOIN_TOKEN_FIELDS,
            enroll::create_join_token,
        )
        .post(
            "/api/v1/nodes/enroll",
            "Enroll a node, the join token as bearer; its credential is shown once",
            ENROLL_FIELDS,
            enroll::enroll,
        )
        .post(
            "/api/v1/nodes/{name}/heartbeat",
            "The node agent is alive (node credential)",
            HEARTBEAT_FIELDS,
            agent::heartbeat,
        )
        .get(
            "/api/v1/nodes/{name}/desired",
            "Everything the node should run (node credential or platform token)",
            agent::desired,
        )
        .post(
            "/api/v1/nodes/{name}/instances/{id}/state",
            "Report what an instance does (node credential)",
            REPORT_FIELDS,
            agent::report,
        )
        .post(
            "/api/v1/nodes/{name}/builds/{id}/state",
            "Report where a build is (node credential)",
            BUILD_REPORT_FIELDS,
            builds::report,
        )
        .post(
            "/api/v1/nodes/{name}/logs",
            "Ship a batch of the node's instance log lines (node credential)",
            LOG_BATCH,
            logs::ingest,
        )
        .get("/api/v1/regions", "List regions", nodes::regions)
        .post(
            "/api/v1/regions",
            "Create a region (platform token)",
            NAME,
            nodes::create_region,
        )
        .get("/api/v1/events", "Page through the event log", events::list)
        .get(
            "/api/v1/events/stream",
            "Follow the event log (Server-Sent Events)",
            events::stream,
        )
}

const NAME: &[Field] = &[req("name", Kind::String)];
const LOG_BATCH: &[Field] = &[req("lines", Kind::ObjectArray)];
const EXEC_FIELDS: &[Field] = &[
    req("command", Kind::StringArray),
    opt("instance", Kind::String),
    opt("process", Kind::String),
    opt("tty", Kind::Boolean),
    opt("term", Kind::String),
];
const ROLLBACK_FIELDS: &[Field] = &[opt("release", Kind::Integer)];
const RESTART_FIELDS: &[Field] = &[opt("process", Kind::String)];
const DOMAIN_FIELDS: &[Field] = &[req("hostname", Kind::String)];
const QUOTA_FIELDS: &[Field] = &[
    opt("instances", Kind::Integer),
    opt("memory_mb", Kind::Integer),
    opt("routes", Kind::Integer),
    opt("tcp_routes", Kind::Integer),
    opt("domains", Kind::Integer),
];
const BUILD_FIELDS: &[Field] = &[req("source", Kind::String), opt("manifest", Kind::String)];
const BUILD_REPORT_FIELDS: &[Field] = &[
    req("state", Kind::String),
    opt("reason", Kind::String),
    opt("image", Kind::String),
    opt("log", Kind::StringArray),
    opt("manifest", Kind::String),
];
const REPOSITORY_FIELDS: &[Field] = &[
    req("url", Kind::String),
    opt("branch", Kind::String),
    opt("token", Kind::String),
];
const SECRET_FIELDS: &[Field] = &[req("value", Kind::String), opt("restart", Kind::Boolean)];
const TOKEN_FIELDS: &[Field] = &[req("name", Kind::String), req("role", Kind::String)];
const USER_FIELDS: &[Field] = &[req("email", Kind::String), req("role", Kind::String)];
const DEPLOY_FIELDS: &[Field] = &[req("image", Kind::String), opt("manifest", Kind::String)];
const SCALE_FIELDS: &[Field] = &[
    req("process", Kind::String),
    req("instances", Kind::Integer),
];
const ROUTE_FIELDS: &[Field] = &[
    opt("host", Kind::String),
    req("process", Kind::String),
    opt("mode", Kind::String),
    req("port", Kind::Integer),
    opt("proxy_protocol", Kind::Boolean),
];
const NODE_FIELDS: &[Field] = &[
    req("name", Kind::String),
    req("region", Kind::String),
    opt("zone", Kind::String),
    req("cpus", Kind::Number),
    req("memory_mb", Kind::Integer),
    opt("addresses", Kind::StringArray),
];

const JOIN_TOKEN_FIELDS: &[Field] = &[
    opt("ttl_seconds", Kind::Integer),
    opt("replaces", Kind::String),
];
const ENROLL_FIELDS: &[Field] = &[
    req("name", Kind::String),
    req("region", Kind::String),
    opt("zone", Kind::String),
    req("millicpus", Kind::Integer),
    req("memory_mb", Kind::Integer),
    opt("addresses", Kind::StringArray),
];
const HEARTBEAT_FIELDS: &[Field] = &[req("running", Kind::Integer)];
const REPORT_FIELDS: &[Field] = &[
    req("state", Kind::String),
    opt("reason", Kind::String),
    opt("address", Kind::String),
    opt("restarts", Kind::Integer),
];

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
