//! Routes (which hostname or port reaches which process) and custom domains.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeitwork_core::manifest::RouteMode;
use zeitwork_core::ownership::TxtRecord;
use zeitwork_core::{CertificateSource, RoutePolicy};

use crate::list::page;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Route {
    pub id: Uuid,
    pub env_id: Uuid,
    pub host: Option<String>,
    pub process: String,
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub mode: RouteMode,
    pub port: i32,
    pub proxy_protocol: bool,
    #[cfg_attr(feature = "sqlx", sqlx(json))]
    pub policy: RoutePolicy,
    /// Where a `tcp` route is reached on every edge; `null` for hostname routes.
    pub listen_port: Option<i32>,
    /// From the deployed release's manifest rather than the API.
    pub declared: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoute {
    /// The hostname served; required for `http` and `tls-passthrough`, refused for `tcp`
    /// (which gets a port on every edge instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 253), regex(pattern = crate::HOSTNAME_PATTERN))]
    pub host: Option<String>,
    #[schemars(length(min = 1, max = 27), regex(pattern = crate::NAME_PATTERN))]
    pub process: String,
    #[serde(default = "http")]
    pub mode: RouteMode,
    /// The port the process listens on.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Send the PROXY protocol header to the app (`tcp` and `tls-passthrough`).
    #[serde(default)]
    pub proxy_protocol: bool,
    #[serde(default)]
    pub policy: RoutePolicy,
}

fn http() -> RouteMode {
    RouteMode::Http
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Domain {
    pub id: Uuid,
    pub env_id: Uuid,
    pub hostname: String,
    /// Proves ownership as TXT `zeitwork-verification=<token>` at
    /// `_zeitwork-challenge.<hostname>`.
    pub verification_token: String,
    /// When the operator found that record; edges serve only verified domains.
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Where a custom domain's claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// Its TXT record was found: the env serves the hostname.
    Verified,
    /// Waiting for its TXT record.
    Pending,
    /// Never verified within 7 days; remove it and add it again.
    Expired,
}

/// A certificate the edges hold for a hostname.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct CertificateInfo {
    #[serde(skip)]
    pub hostname: String,
    /// `acme` (ordered and renewed by the platform) or `operator` (imported).
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub source: CertificateSource,
    pub not_after: DateTime<Utc>,
}

/// A domain as the API answers it: its row, plus the DNS records its owner must publish
/// and its certificate, if the edges have one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DomainView {
    #[serde(flatten)]
    pub domain: Domain,
    pub state: ClaimState,
    /// Proves ownership.
    pub txt_record: TxtRecord,
    /// What the hostname should be a CNAME of (or resolve like): the env's own hostname,
    /// which the platform's edges serve.
    pub cname_target: String,
    /// The newest certificate for exactly this hostname; `null` until one is issued
    /// (ordered once the domain is verified).
    pub certificate: Option<CertificateInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    #[schemars(length(min = 3, max = 253), regex(pattern = crate::HOSTNAME_PATTERN))]
    pub hostname: String,
}

page!(
    /// `GET …/envs/{env}/routes`.
    RouteList, routes, Route
);
page!(
    /// `GET …/envs/{env}/domains`.
    DomainList, domains, DomainView
);
