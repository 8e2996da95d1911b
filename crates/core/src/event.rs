//! Payloads of the append-only `events` log. Every state change is one of these;
//! the projection tables are a pure function of the sequence of events, so they
//! can be rebuilt at any time (`zeitwork admin rebuild-projections`).
//!
//! Payloads are versioned by the `version` column of the log; this enum is version 1.
//! Events are never rewritten: a new shape gets a new variant or a new version.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::certificate::CertificateSource;
use crate::manifest::Seconds;
use crate::node::{NodeState, ObservedState};

/// One committed event, as read back from the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log; equal to commit order, without gaps.
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// The org the event belongs to; `None` for platform events (nodes, regions, platform tokens).
    pub org_id: Option<Uuid>,
    /// Who caused it: a token id or `system`.
    pub actor: String,
    pub data: EventData,
}

/// Where one new instance goes, decided by the scheduler before the event is written,
/// so replaying the log never re-runs placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InstancePlan {
    pub instance_id: Uuid,
    pub process: String,
    pub node_id: Option<Uuid>,
    pub region: Option<String>,
    /// Why it has no node yet, when it has none.
    pub reason: Option<String>,
}

/// A new instance that takes over from one on a dead or draining node. It runs the
/// same deployment and process; `replaces` says whose place it takes, so the old one
/// can be stopped once the new one is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Replacement {
    pub replaces: Uuid,
    pub instance: InstancePlan,
}

/// Resources and entry point of one process type in a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProcessSpec {
    pub name: String,
    pub instances: u32,
    pub millicpus: u32,
    pub memory_mb: u64,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventData {
    OrgCreated {
        org_id: Uuid,
        name: String,
    },
    OrgDeleted {
        org_id: Uuid,
    },
    /// The org's own quotas from now on (each unset one is the platform's); replaces what
    /// an earlier one set.
    OrgQuotasSet {
        org_id: Uuid,
        quotas: crate::QuotaOverrides,
    },
    UserAdded {
        user_id: Uuid,
        org_id: Uuid,
        email: String,
        role: String,
    },
    UserRemoved {
        user_id: Uuid,
    },
    /// Only the SHA-256 of the token is ever stored.
    TokenCreated {
        token_id: Uuid,
        org_id: Option<Uuid>,
        name: String,
        role: String,
        hash: String,
    },
    TokenRevoked {
        token_id: Uuid,
    },
    AppCreated {
        app_id: Uuid,
        org_id: Uuid,
        name: String,
    },
    AppDeleted {
        app_id: Uuid,
    },
    EnvCreated {
        env_id: Uuid,
        app_id: Uuid,
        name: String,
        /// The branch whose pushes it previews (made by a push to that branch of the
        /// app's connected repository, deleted with the branch).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preview_of: Option<String>,
    },
    EnvDeleted {
        env_id: Uuid,
    },
    RouteCreated {
        route_id: Uuid,
        env_id: Uuid,
        host: Option<String>,
        process: String,
        mode: String,
        port: u16,
        proxy_protocol: bool,
        /// Absent in events recorded before policies existed.
        #[serde(default)]
        policy: crate::RoutePolicy,
        /// The port a `tcp` route is reached on at every edge, allocated by the operator.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        listen_port: Option<u16>,
        /// Declared in the deployed release's manifest (`[[routes]]`): the next deploy or
        /// rollback keeps, replaces or removes it; routes made through the API it leaves.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        declared: bool,
    },
    RouteDeleted {
        route_id: Uuid,
    },
    DomainAdded {
        domain_id: Uuid,
        env_id: Uuid,
        hostname: String,
        verification_token: String,
    },
    DomainRemoved {
        domain_id: Uuid,
    },
    /// The operator found the domain's ownership TXT record (see [`crate::ownership`]);
    /// from the event's time on, edges serve the domain and certificates are ordered for
    /// it. Verifying an already verified domain records nothing, and a replayed duplicate
    /// keeps the first time.
    DomainVerified {
        domain_id: Uuid,
    },
    /// `ciphertext` is base64 of nonce ‖ XChaCha20-Poly1305 output; the log never holds plaintext.
    SecretSet {
        env_id: Uuid,
        name: String,
        version: i32,
        ciphertext: String,
    },
    SecretUnset {
        env_id: Uuid,
        name: String,
    },
    RegionCreated {
        region_id: Uuid,
        name: String,
    },
    /// Where a region is reached from outside (the public addresses of its load balancers
    /// or edges, IP literals) and which client networks it serves (CIDRs): what
    /// `zeitwork server dns` answers with. Replaces the region's previous setting whole.
    RegionAddressesSet {
        region_id: Uuid,
        addresses: Vec<String>,
        client_networks: Vec<String>,
    },
    NodeRegistered {
        node_id: Uuid,
        name: String,
        region: String,
        zone: Option<String>,
        millicpus: u32,
        memory_mb: u64,
        addresses: Vec<String>,
        /// The node's instance /64 ([`crate::ipam`]); absent in events of older builds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance_prefix: Option<String>,
    },
    ReleaseCreated {
        release_id: Uuid,
        app_id: Uuid,
        number: i32,
        image: String,
        digest: String,
        manifest: serde_json::Value,
        manifest_hash: String,
    },
    /// A release rolled out to an env; the previous deployment's instances stop.
    DeploymentCreated {
        deployment_id: Uuid,
        env_id: Uuid,
        release_id: Uuid,
        slug: String,
        rollback_of: Option<Uuid>,
        processes: Vec<ProcessSpec>,
        instances: Vec<InstancePlan>,
        /// The env's earlier instances keep running until this deployment's are healthy
        /// (the monitor then stops them: `InstancesStopped`). Absent from deployments made
        /// before rollouts surged, which stopped the earlier instances at once.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        surge: bool,
        /// How long the deployment this one replaces stays on standby (its instances
        /// running, unrouted, for an instant rollback) once this one is ready. Absent
        /// (and in events written before standbys): it is superseded, its instances stop.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        standby: Option<Seconds>,
    },
    /// A rollback to the env's standby deployment: it serves again, at once (its
    /// instances never stopped), and the deployment it replaces takes its place on
    /// standby for `standby` (absent: superseded).
    DeploymentReactivated {
        deployment_id: Uuid,
        env_id: Uuid,
        /// The active deployment it replaces.
        rollback_of: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        standby: Option<Seconds>,
    },
    /// A standby deployment is superseded: its window ended, or its room was needed. Its
    /// instances stop once the env's active deployment is ready.
    StandbyEnded {
        deployment_id: Uuid,
        env_id: Uuid,
        reason: String,
    },
    /// A process of a deployment runs `instances` per region from now on: by `scale`,
    /// or by the autoscaler, which says why.
    ProcessScaled {
        deployment_id: Uuid,
        process: String,
        instances: u32,
        started: Vec<InstancePlan>,
        stopped: Vec<Uuid>,
        /// The autoscaler's reason ("27 requests in flight over 1 instance, target 10").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A one-time secret for enrolling a node; only its SHA-256 is stored.
    NodeJoinTokenCreated {
        token_id: Uuid,
        hash: String,
        expires_at: DateTime<Utc>,
        /// The one node name this token may enroll again, replacing that node's
        /// credential: the platform admin's consent. Tokens without it enroll new names
        /// only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<String>,
    },
    /// A node agent traded a join token (now used up) for a credential, of which only
    /// the SHA-256 is stored. Enrolling a known name again keeps its id and replaces
    /// its capacity, addresses and credential.
    NodeEnrolled {
        node_id: Uuid,
        name: String,
        region: String,
        zone: Option<String>,
        millicpus: u32,
        memory_mb: u64,
        addresses: Vec<String>,
        /// The node's instance /64 ([`crate::ipam`]); absent in events of older builds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance_prefix: Option<String>,
        join_token_id: Uuid,
        credential_hash: String,
        /// Its WireGuard public key and port; absent for a node off the overlay.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        overlay: Option<crate::overlay::OverlayKey>,
    },
    NodeStateChanged {
        node_id: Uuid,
        state: NodeState,
    },
    /// Instances that were waiting for room got a node.
    InstancesPlaced {
        deployment_id: Uuid,
        instances: Vec<InstancePlan>,
    },
    /// New instances of a deployment take over from instances on a dead or draining node,
    /// or from running ones on a restart; each old one stops once its replacement is
    /// healthy (or at once, on a dead node).
    InstancesReplaced {
        deployment_id: Uuid,
        replacements: Vec<Replacement>,
        /// A restart: the replacements run with the env's current secrets. Otherwise (and
        /// in events written before restarts) each runs with its predecessor's.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        restart: bool,
    },
    /// Instances told to stop by the platform (their node died, or their replacement is healthy).
    InstancesStopped {
        deployment_id: Uuid,
        instance_ids: Vec<Uuid>,
        reason: String,
    },
    /// What a node agent reported about an instance; written only when it changed.
    InstanceObserved {
        instance_id: Uuid,
        state: ObservedState,
        reason: Option<String>,
        address: Option<String>,
        restarts: u32,
    },
    /// A TLS certificate every edge serves for `hostnames` (lowercase; `*.example.com`
    /// for a wildcard). The private key is PEM sealed with the platform key, bound to
    /// `certificate_id` (associated data `certificate/<id>`): the log never holds it in
    /// the clear. The certificates in `replaces` (a renewal, a re-import) are dropped.
    CertificateStored {
        certificate_id: Uuid,
        hostnames: Vec<String>,
        not_after: DateTime<Utc>,
        chain_pem: String,
        sealed_key: String,
        source: CertificateSource,
        replaces: Vec<Uuid>,
    },
    /// A certificate no edge serves any more (its hostnames are no longer served, or it
    /// expired without a renewal).
    CertificateRemoved {
        certificate_id: Uuid,
        reason: String,
    },
    /// A build of `source` (an image of the platform registry holding the context) for
    /// the env, placed on `node_id`, as `build` says; when it succeeds, its image rolls
    /// out with `manifest`.
    BuildQueued {
        build_id: Uuid,
        env_id: Uuid,
        source: String,
        manifest: serde_json::Value,
        node_id: Uuid,
        /// The commit to fetch, for a build of a push (then `source` is the tree's
        /// identity, [`crate::repository::GitSource::identity`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        git: Option<crate::repository::GitSource>,
    },
    /// Where the build is now; `image` with `succeeded`, `reason` and the last lines
    /// (`log`) with `failed`.
    BuildStateChanged {
        build_id: Uuid,
        state: crate::build::BuildState,
        reason: Option<String>,
        image: Option<String>,
        log: Vec<String>,
        /// The manifest the source carried (its `zeitwork.toml`), with `succeeded`: the
        /// image rolls out with it instead of the one queued.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        manifest: Option<serde_json::Value>,
    },
    /// The app builds pushes to `url` (see [`crate::repository`]): GitHub's webhook
    /// deliveries to hook `hook_id` are signed with the secret sealed in
    /// `sealed_secret`; `sealed_token`, when set, is what private repositories are
    /// fetched with. Replaces an earlier connection of the app.
    RepositoryConnected {
        app_id: Uuid,
        hook_id: Uuid,
        url: String,
        branch: String,
        sealed_secret: String,
        sealed_token: Option<String>,
    },
    RepositoryDisconnected {
        app_id: Uuid,
    },
    /// A webhook delivery handled (each delivery id once): what it was and what came of it.
    WebhookDelivered {
        app_id: Uuid,
        delivery: String,
        event: String,
        outcome: String,
    },
    /// A deployer may run `command` in a running instance: a single-use grant, redeemed
    /// (`ExecStarted`) by the client before `expires_at`. Only the SHA-256 of its secret is
    /// stored. The event's actor is who asked.
    ExecGranted {
        grant_id: Uuid,
        instance_id: Uuid,
        node_id: Uuid,
        command: Vec<String>,
        /// With a terminal (PTY), and its `TERM`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        tty: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        term: Option<String>,
        hash: String,
        expires_at: DateTime<Utc>,
    },
    /// A client redeemed an exec grant (it cannot be used again); the instance's node
    /// attaches the exec.
    ExecStarted {
        grant_id: Uuid,
        instance_id: Uuid,
        node_id: Uuid,
    },
    /// The ACME account of one directory, shared by every edge so rate limits and
    /// authorizations are the platform's, not each edge's. `sealed_credentials` is
    /// instant-acme's credentials JSON sealed with the platform key, bound to the
    /// account id and directory (associated data `acme-account/<id>/<directory_url>`).
    /// A later account for the same directory replaces the earlier one.
    AcmeAccountStored {
        account_id: Uuid,
        directory_url: String,
        sealed_credentials: String,
    },
}

/// Fields that hold a digest of a credential or sealed key material: kept in the log
/// for the platform's own use, never shown to a reader of the log.
const WITHHELD: [&str; 7] = [
    "hash",
    "credential_hash",
    "ciphertext",
    "sealed_key",
    "sealed_credentials",
    "sealed_secret",
    "sealed_token",
];

impl Event {
    /// The event as shown to readers of the log (`GET /api/v1/events`): credential
    /// digests and sealed material withheld (each replaced by `"withheld"`), so a token
    /// that may read the log learns nothing to attack offline.
    pub fn public(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("events serialize");
        if let Some(data) = v.get_mut("data").and_then(serde_json::Value::as_object_mut) {
            for field in WITHHELD {
                if let Some(value) = data.get_mut(field) {
                    *value = serde_json::Value::from("withheld");
                }
            }
        }
        v
    }
}

impl EventData {
    /// The entity the event is about (what a notification names).
    pub fn entity_id(&self) -> Uuid {
        match self {
            EventData::OrgCreated { org_id, .. }
            | EventData::OrgDeleted { org_id }
            | EventData::OrgQuotasSet { org_id, .. } => *org_id,
            EventData::UserAdded { user_id, .. } | EventData::UserRemoved { user_id } => *user_id,
            EventData::TokenCreated { token_id, .. } | EventData::TokenRevoked { token_id } => {
                *token_id
            }
            EventData::AppCreated { app_id, .. }
            | EventData::AppDeleted { app_id }
            | EventData::RepositoryConnected { app_id, .. }
            | EventData::RepositoryDisconnected { app_id }
            | EventData::WebhookDelivered { app_id, .. } => *app_id,
            EventData::EnvCreated { env_id, .. }
            | EventData::EnvDeleted { env_id }
            | EventData::SecretSet { env_id, .. }
            | EventData::SecretUnset { env_id, .. } => *env_id,
            EventData::RouteCreated { route_id, .. } | EventData::RouteDeleted { route_id } => {
                *route_id
            }
            EventData::DomainAdded { domain_id, .. }
            | EventData::DomainRemoved { domain_id }
            | EventData::DomainVerified { domain_id } => *domain_id,
            EventData::RegionCreated { region_id, .. }
            | EventData::RegionAddressesSet { region_id, .. } => *region_id,
            EventData::NodeRegistered { node_id, .. }
            | EventData::NodeEnrolled { node_id, .. }
            | EventData::NodeStateChanged { node_id, .. } => *node_id,
            EventData::NodeJoinTokenCreated { token_id, .. } => *token_id,
            EventData::ReleaseCreated { release_id, .. } => *release_id,
            EventData::DeploymentCreated { deployment_id, .. }
            | EventData::DeploymentReactivated { deployment_id, .. }
            | EventData::StandbyEnded { deployment_id, .. }
            | EventData::ProcessScaled { deployment_id, .. }
            | EventData::InstancesPlaced { deployment_id, .. }
            | EventData::InstancesReplaced { deployment_id, .. }
            | EventData::InstancesStopped { deployment_id, .. } => *deployment_id,
            EventData::InstanceObserved { instance_id, .. } => *instance_id,
            EventData::CertificateStored { certificate_id, .. }
            | EventData::CertificateRemoved { certificate_id, .. } => *certificate_id,
            EventData::AcmeAccountStored { account_id, .. } => *account_id,
            EventData::BuildQueued { build_id, .. }
            | EventData::BuildStateChanged { build_id, .. } => *build_id,
            EventData::ExecGranted { grant_id, .. } | EventData::ExecStarted { grant_id, .. } => {
                *grant_id
            }
        }
    }

    /// The stable kind name stored in the log's `kind` column and used in NATS subjects.
    pub fn kind(&self) -> &'static str {
        match self {
            EventData::OrgCreated { .. } => "org_created",
            EventData::OrgDeleted { .. } => "org_deleted",
            EventData::OrgQuotasSet { .. } => "org_quotas_set",
            EventData::UserAdded { .. } => "user_added",
            EventData::UserRemoved { .. } => "user_removed",
            EventData::TokenCreated { .. } => "token_created",
            EventData::TokenRevoked { .. } => "token_revoked",
            EventData::AppCreated { .. } => "app_created",
            EventData::AppDeleted { .. } => "app_deleted",
            EventData::EnvCreated { .. } => "env_created",
            EventData::EnvDeleted { .. } => "env_deleted",
            EventData::RouteCreated { .. } => "route_created",
            EventData::RouteDeleted { .. } => "route_deleted",
            EventData::DomainAdded { .. } => "domain_added",
            EventData::DomainRemoved { .. } => "domain_removed",
            EventData::DomainVerified { .. } => "domain_verified",
            EventData::SecretSet { .. } => "secret_set",
            EventData::SecretUnset { .. } => "secret_unset",
            EventData::RegionCreated { .. } => "region_created",
            EventData::RegionAddressesSet { .. } => "region_addresses_set",
            EventData::NodeRegistered { .. } => "node_registered",
            EventData::ReleaseCreated { .. } => "release_created",
            EventData::DeploymentCreated { .. } => "deployment_created",
            EventData::DeploymentReactivated { .. } => "deployment_reactivated",
            EventData::StandbyEnded { .. } => "standby_ended",
            EventData::ProcessScaled { .. } => "process_scaled",
            EventData::NodeJoinTokenCreated { .. } => "node_join_token_created",
            EventData::NodeEnrolled { .. } => "node_enrolled",
            EventData::NodeStateChanged { .. } => "node_state_changed",
            EventData::InstancesPlaced { .. } => "instances_placed",
            EventData::InstancesReplaced { .. } => "instances_replaced",
            EventData::InstancesStopped { .. } => "instances_stopped",
            EventData::InstanceObserved { .. } => "instance_observed",
            EventData::CertificateStored { .. } => "certificate_stored",
            EventData::CertificateRemoved { .. } => "certificate_removed",
            EventData::AcmeAccountStored { .. } => "acme_account_stored",
            EventData::BuildQueued { .. } => "build_queued",
            EventData::BuildStateChanged { .. } => "build_state_changed",
            EventData::RepositoryConnected { .. } => "repository_connected",
            EventData::RepositoryDisconnected { .. } => "repository_disconnected",
            EventData::WebhookDelivered { .. } => "webhook_delivered",
            EventData::ExecGranted { .. } => "exec_granted",
            EventData::ExecStarted { .. } => "exec_started",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_matches_serde_tag() {
        let samples = [
            EventData::OrgCreated {
                org_id: Uuid::nil(),
                name: "a".into(),
            },
            EventData::SecretUnset {
                env_id: Uuid::nil(),
                name: "X".into(),
            },
            EventData::DomainVerified {
                domain_id: Uuid::nil(),
            },
            EventData::ProcessScaled {
                deployment_id: Uuid::nil(),
                process: "web".into(),
                instances: 1,
                started: vec![],
                stopped: vec![],
                reason: Some("load".into()),
            },
            EventData::NodeStateChanged {
                node_id: Uuid::nil(),
                state: NodeState::Draining,
            },
            EventData::InstanceObserved {
                instance_id: Uuid::nil(),
                state: ObservedState::Healthy,
                reason: None,
                address: Some("10.0.0.2:8080".into()),
                restarts: 2,
            },
            EventData::CertificateStored {
                certificate_id: Uuid::nil(),
                hostnames: vec!["*.example.com".into()],
                not_after: DateTime::UNIX_EPOCH,
                chain_pem: "-----BEGIN CERTIFICATE-----".into(),
                sealed_key: "c2VhbGVk".into(),
                source: CertificateSource::Operator,
                replaces: vec![Uuid::max()],
            },
            EventData::CertificateRemoved {
                certificate_id: Uuid::nil(),
                reason: "expired".into(),
            },
            EventData::AcmeAccountStored {
                account_id: Uuid::nil(),
                directory_url: "https://acme.test/dir".into(),
                sealed_credentials: "c2VhbGVk".into(),
            },
        ];
        for e in samples {
            let v = serde_json::to_value(&e).unwrap();
            assert_eq!(v["type"], e.kind());
            assert_eq!(serde_json::from_value::<EventData>(v).unwrap(), e);
        }
    }
}
