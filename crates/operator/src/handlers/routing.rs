//! Routes (hostname/port → process) and custom domains of an env.

mod declared;
mod verify;

pub(crate) use declared::apply_declared;

pub use verify::verify_domain;

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::Deserialize;
use uuid::Uuid;
use zeitwork_api_types::{Domain, DomainList, NewDomain, NewRoute, PageQuery, Route, RouteList};
use zeitwork_core::manifest::RouteMode;
use zeitwork_core::{EventData, Hostname, Name, PortRange, RoutePolicy};
use zeitwork_store::{Tx, log, read};

use crate::auth::Auth;
use crate::body::{Create, Params};
use crate::error::{ApiError, ApiResult, field};
use crate::paging::{Order, Page};
use crate::quota;
use crate::scope::{Deployer, EnvScope, InEnv, Reader};
use crate::state::AppState;

/// The last segment of an item path: a route id or a domain's hostname.
#[derive(Deserialize)]
pub struct ItemPath {
    #[serde(alias = "hostname")]
    id: String,
}

pub async fn routes(
    State(s): State<AppState>,
    InEnv { scope, .. }: InEnv<Reader>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<RouteList>> {
    let all = read::routes(s.store.pool(), scope.env.id).await?;
    let (routes, next) = Page::of(&q)?.cut(all, Order::Ascending, |r| r.id.to_string());
    Ok(Json(RouteList { routes, next }))
}

pub async fn create_route(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    req: Create<NewRoute>,
) -> ApiResult<Response> {
    let b = &req.body;
    let process = field("process", Name::parse(&b.process))?;
    let host = b
        .host
        .as_deref()
        .map(|h| field("host", Hostname::parse(h)))
        .transpose()?;
    match (b.mode, &host) {
        (RouteMode::Tcp, Some(_)) => {
            return Err(ApiError::invalid(
                "host",
                "tcp routes get an allocated port; remove host",
            ));
        }
        (RouteMode::Http | RouteMode::TlsPassthrough, None) => {
            return Err(ApiError::invalid(
                "host",
                format!("{} routes need a host", b.mode.as_str()),
            ));
        }
        _ => {}
    }
    b.policy
        .check()
        .map_err(|(f, m)| ApiError::invalid(format!("policy.{f}"), m))?;
    if b.port == 0 {
        return Err(ApiError::invalid(
            "port",
            "port must be between 1 and 65535",
        ));
    }
    let spec = RouteSpec {
        host,
        process,
        mode: b.mode,
        port: b.port,
        proxy_protocol: b.proxy_protocol,
        policy: b.policy.clone(),
        declared: false,
    };
    let mut tx = s.store.begin().await?;
    let route = record(&mut tx, &s, &auth, &scope, &spec, "").await?;
    req.finish(tx, StatusCode::CREATED, route).await
}

/// A route to record, its parts validated.
pub(crate) struct RouteSpec {
    pub host: Option<Hostname>,
    pub process: Name,
    pub mode: RouteMode,
    pub port: u16,
    pub proxy_protocol: bool,
    pub policy: RoutePolicy,
    /// From a manifest's `[[routes]]`.
    pub declared: bool,
}

/// Records a route in the env of `scope`: its host must be a verified domain of the env,
/// a `tcp` route gets a port. Errors name their field after `at` (`""` for the API's own
/// body, `manifest.routes[N].` for a manifest's route).
pub(crate) async fn record(
    tx: &mut Tx,
    s: &AppState,
    auth: &Auth,
    scope: &EnvScope,
    spec: &RouteSpec,
    at: &str,
) -> ApiResult<Route> {
    if let Some(host) = &spec.host {
        own_domain(tx, scope.env.id, host, at).await?;
    }
    let usage = read::org_usage(&mut **tx, scope.org.id, None, None).await?;
    quota::of(&mut **tx, s.config.quotas, &scope.org)
        .await?
        .allow_route(&usage, spec.mode == RouteMode::Tcp)?;
    let listen_port = match spec.mode {
        RouteMode::Tcp => Some(allocate_port(tx, s.config.tcp_ports, at).await?),
        _ => None,
    };
    let route_id = Uuid::now_v7();
    let data = EventData::RouteCreated {
        route_id,
        env_id: scope.env.id,
        host: spec.host.as_ref().map(ToString::to_string),
        process: spec.process.to_string(),
        mode: spec.mode.as_str().into(),
        port: spec.port,
        proxy_protocol: spec.proxy_protocol,
        policy: spec.policy.clone(),
        listen_port,
        declared: spec.declared,
    };
    let created = log::append(tx, Some(scope.org.id), &auth.actor(), data).await?;
    Ok(Route {
        id: route_id,
        env_id: scope.env.id,
        host: spec.host.as_ref().map(ToString::to_string),
        process: spec.process.to_string(),
        mode: spec.mode,
        port: i32::from(spec.port),
        proxy_protocol: spec.proxy_protocol,
        policy: spec.policy.clone(),
        listen_port: listen_port.map(i32::from),
        declared: spec.declared,
        created_at: created.at,
    })
}

/// A route's host must be a domain this env has proven it owns: otherwise a tenant
/// could route a name another one verified (routes take precedence over domains).
async fn own_domain(
    tx: &mut sqlx::PgConnection,
    env: Uuid,
    host: &Hostname,
    at: &str,
) -> ApiResult<()> {
    let domains = read::domains(&mut *tx, env).await?;
    let host = host.as_str();
    let found = domains
        .iter()
        .find(|d| d.hostname.eq_ignore_ascii_case(host));
    match found {
        Some(domain) if domain.verified_at.is_some() => Ok(()),
        Some(_) => Err(ApiError::conflict(
            &format!("{at}host"),
            format!(
                "{host} is not verified yet: publish its TXT record, then run `zeitwork domains verify {host}`"
            ),
        )),
        None => Err(ApiError::conflict(
            &format!("{at}host"),
            format!(
                "{host} is not a domain of this env: add it with `zeitwork domains add {host}` and verify it first"
            ),
        )),
    }
}

/// The lowest port of the range no route holds. The append lock is taken first, so
/// two routes created at once never get the same port.
async fn allocate_port(tx: &mut sqlx::PgConnection, range: PortRange, at: &str) -> ApiResult<u16> {
    log::lock(&mut *tx).await?;
    let taken: HashSet<u16> = read::listen_ports(&mut *tx).await?.into_iter().collect();
    range.first_free(|p| taken.contains(&p)).ok_or_else(|| {
        ApiError::conflict(
            &format!("{at}mode"),
            format!("every port for tcp routes ({range}) is taken; remove a tcp route or ask the operator to widen --tcp-ports"),
        )
    })
}

pub async fn delete_route(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    Path(p): Path<ItemPath>,
) -> ApiResult<StatusCode> {
    let route = read::routes(s.store.pool(), scope.env.id)
        .await?
        .into_iter()
        .find(|r| r.id.to_string() == p.id)
        .ok_or_else(|| ApiError::not_found("route"))?;
    s.record(
        &auth,
        Some(scope.org.id),
        EventData::RouteDeleted { route_id: route.id },
    )
    .await
}

pub async fn domains(
    State(s): State<AppState>,
    InEnv { scope, .. }: InEnv<Reader>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<DomainList>> {
    let mut db = s.store.pool().acquire().await?;
    let all = read::domains(&mut *db, scope.env.id).await?;
    let (domains, next) = Page::of(&q)?.cut(all, Order::Ascending, |d| d.hostname.clone());
    let domains = verify::views(&mut db, &s, &scope, domains).await?;
    Ok(Json(DomainList { domains, next }))
}

pub async fn add_domain(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    req: Create<NewDomain>,
) -> ApiResult<Response> {
    let hostname = field("hostname", Hostname::parse(&req.body.hostname))?;
    if hostname
        .as_str()
        .ends_with(&format!(".{}", s.config.base_domain))
    {
        return Err(ApiError::invalid(
            "hostname",
            "hostnames under the platform's base domain are assigned, not added",
        ));
    }
    let token: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let domain_id = Uuid::now_v7();
    let mut tx = s.store.begin().await?;
    log::lock(&mut tx).await?;
    let usage = read::org_usage(&mut *tx, scope.org.id, None, None).await?;
    quota::of(&mut *tx, s.config.quotas, &scope.org)
        .await?
        .allow_domain(&usage)?;
    verify::not_verified_elsewhere(&mut tx, hostname.as_str(), scope.env.id).await?;
    let data = EventData::DomainAdded {
        domain_id,
        env_id: scope.env.id,
        hostname: hostname.to_string(),
        verification_token: token.clone(),
    };
    let created = log::append(&mut tx, Some(scope.org.id), &auth.actor(), data).await?;
    let domain = Domain {
        id: domain_id,
        env_id: scope.env.id,
        hostname: hostname.to_string(),
        verification_token: token,
        verified_at: None,
        created_at: created.at,
    };
    let answer = verify::view(&mut tx, &s, &scope, domain).await?;
    req.finish(tx, StatusCode::CREATED, answer).await
}

pub async fn remove_domain(
    State(s): State<AppState>,
    InEnv { auth, scope, .. }: InEnv<Deployer>,
    Path(p): Path<ItemPath>,
) -> ApiResult<StatusCode> {
    let domain = read::domains(s.store.pool(), scope.env.id)
        .await?
        .into_iter()
        .find(|d| d.hostname == p.id)
        .ok_or_else(|| ApiError::not_found("domain"))?;
    // A route on the domain would silently stop being served: say so instead.
    let routes = read::routes(s.store.pool(), scope.env.id).await?;
    let routed = routes.iter().find(|r| {
        r.host
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(&domain.hostname))
    });
    if let Some(route) = routed {
        let how = match route.declared {
            true => "deploy a release whose zeitwork.toml no longer declares it".to_owned(),
            false => format!("`zeitwork routes remove {}`", route.id),
        };
        return Err(ApiError::conflict(
            "hostname",
            format!(
                "route {} serves {}; remove it first ({how})",
                route.id, domain.hostname
            ),
        ));
    }
    s.record(
        &auth,
        Some(scope.org.id),
        EventData::DomainRemoved {
            domain_id: domain.id,
        },
    )
    .await
}
