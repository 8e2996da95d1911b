//! From rows to hostnames. Pure, so every naming and precedence rule is tested without
//! a database.
//!
//! Hostnames, in the order they are claimed (a later claim on a taken name is refused
//! with a warning, so a tenant's route can never take over a platform-assigned name):
//! 1. `<app>-<slug>-<org>.<base>`: one deployment, whatever its age;
//! 2. the env's own name, `<app>-<org>.<base>` for `prod` and `<app>-<env>-<org>.<base>`
//!    otherwise: the newest deployment that has a healthy instance;
//! 3. routes with a host: the named process and port of the env's newest deployment
//!    with a healthy instance of that process; `tls-passthrough` routes go to a map of
//!    their own (reached by SNI only), but their names are claimed like the rest, so a
//!    name is either terminated by the edge or passed through, never both;
//! 4. verified custom domains: the same target as the env's own name.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::sync::Arc;

use uuid::Uuid;
use zeitwork_core::RoutePolicy;

use super::load::{DeploymentRow, EnvRow, Rows};
use super::{RoutingTable, Target};

/// The process an env's name serves when no deployment says otherwise.
const DEFAULT_PROCESS: &str = "web";
/// The env whose name is the app's bare hostname.
const PRIMARY_ENV: &str = "prod";
/// The route mode whose TLS the app terminates.
const PASSTHROUGH: &str = "tls-passthrough";

pub(super) fn build(base_domain: &str, rows: Rows) -> RoutingTable {
    let base = normalize(base_domain);
    let envs: HashMap<Uuid, &EnvRow> = rows.envs.iter().map(|e| (e.id, e)).collect();
    let healthy = Healthy::of(&rows);
    let mut history: HashMap<Uuid, Vec<&DeploymentRow>> = HashMap::new();
    for d in &rows.deployments {
        history.entry(d.env_id).or_default().push(d);
    }
    for deployments in history.values_mut() {
        deployments.sort_by_key(|d| std::cmp::Reverse((d.created_at, d.id)));
    }
    let history = |env: Uuid| history.get(&env).into_iter().flatten().copied();

    let default_policy = Arc::new(RoutePolicy::default());
    let new = |name: &str, env: Uuid, process: &str, port: Option<u16>, backends| {
        Target::new(name, env, process, port, backends, default_policy.clone())
    };
    let mut hosts = Hosts::default();
    for d in &rows.deployments {
        let Some(env) = envs.get(&d.env_id) else {
            continue;
        };
        let (process, port) = d.serves();
        let name = format!("{}-{}-{}.{base}", env.app, d.slug, env.org);
        let target = new(
            &name,
            d.env_id,
            process,
            port,
            healthy.reported(d.id, process),
        );
        hosts.claim(name, Arc::new(target));
    }
    let mut serving = HashMap::new();
    for env in &rows.envs {
        let name = match env.name.as_str() {
            PRIMARY_ENV => format!("{}-{}.{base}", env.app, env.org),
            other => format!("{}-{other}-{}.{base}", env.app, env.org),
        };
        let newest_healthy = history(env.id).find_map(|d| {
            let (process, port) = d.serves();
            let backends = healthy.reported(d.id, process);
            (!backends.is_empty()).then(|| new(&name, env.id, process, port, backends))
        });
        let target = Arc::new(
            newest_healthy.unwrap_or_else(|| new(&name, env.id, DEFAULT_PROCESS, None, vec![])),
        );
        hosts.claim(name, target.clone());
        serving.insert(env.id, target);
    }
    for r in &rows.routes {
        let Ok(port) = u16::try_from(r.port) else {
            continue; // the API allows 1 to 65535 only
        };
        let backends = history(r.env_id)
            .map(|d| healthy.on_port(d.id, &r.process, port))
            .find(|b| !b.is_empty())
            .unwrap_or_default();
        let policy = Arc::new(r.policy.0.clone());
        let mut target = Target::new(&r.host, r.env_id, &r.process, Some(port), backends, policy);
        target.route = Some(r.id);
        if r.mode == PASSTHROUGH {
            target.proxy_protocol = r.proxy_protocol;
            hosts.claim_in(r.host.clone(), Arc::new(target), true);
        } else {
            hosts.claim(r.host.clone(), Arc::new(target));
        }
    }
    for d in &rows.domains {
        if let Some(target) = serving.get(&d.env_id) {
            hosts.claim(d.hostname.clone(), target.clone());
        }
    }
    RoutingTable {
        seq: rows.seq,
        hosts: hosts.http,
        passthrough: hosts.passthrough,
    }
}

impl DeploymentRow {
    /// The process and port this deployment's hostnames lead to.
    fn serves(&self) -> (&str, Option<u16>) {
        let process = self.process.as_deref().unwrap_or(DEFAULT_PROCESS);
        (process, self.port.and_then(|p| u16::try_from(p).ok()))
    }
}

/// Where healthy instances answer, by deployment and process.
struct Healthy<'a>(HashMap<(Uuid, &'a str), Vec<SocketAddr>>);

impl<'a> Healthy<'a> {
    fn of(rows: &'a Rows) -> Healthy<'a> {
        let mut addresses: HashMap<_, Vec<SocketAddr>> = HashMap::new();
        for i in &rows.instances {
            match i.address.parse::<SocketAddr>() {
                Ok(a) => addresses
                    .entry((i.deployment_id, i.process.as_str()))
                    .or_default()
                    .push(a),
                Err(_) => tracing::warn!(
                    instance = %i.id, address = %i.address,
                    "ignoring a healthy instance whose reported address is not ip:port"
                ),
            }
        }
        Healthy(addresses)
    }

    /// The addresses the node agents reported (the process's own port).
    fn reported(&self, deployment: Uuid, process: &str) -> Vec<SocketAddr> {
        self.0
            .get(&(deployment, process))
            .cloned()
            .unwrap_or_default()
    }

    /// The same instances on another port, which a route may name.
    fn on_port(&self, deployment: Uuid, process: &str, port: u16) -> Vec<SocketAddr> {
        let addresses = self.reported(deployment, process);
        addresses
            .into_iter()
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect()
    }
}

#[derive(Default)]
struct Hosts {
    http: HashMap<String, Arc<Target>>,
    passthrough: HashMap<String, Arc<Target>>,
}

impl Hosts {
    fn claim(&mut self, host: String, target: Arc<Target>) {
        self.claim_in(host, target, false);
    }

    /// First come, first served, across both maps; see the module docs for the order.
    fn claim_in(&mut self, host: String, target: Arc<Target>, passthrough: bool) {
        let host = normalize(&host);
        let (mine, other) = match passthrough {
            true => (&mut self.passthrough, &self.http),
            false => (&mut self.http, &self.passthrough),
        };
        let holder = other.get(&host).map(|t| t.env_id);
        match (mine.entry(host), holder) {
            (Entry::Vacant(slot), None) => {
                slot.insert(target);
            }
            (Entry::Occupied(taken), _) => tracing::warn!(
                host = %taken.key(), env = %target.env_id, holder = %taken.get().env_id,
                "hostname claimed twice; the first claim keeps it"
            ),
            (Entry::Vacant(slot), Some(holder)) => tracing::warn!(
                host = %slot.key(), env = %target.env_id, %holder,
                "hostname claimed twice; the first claim keeps it"
            ),
        }
    }
}

/// Hostnames compare case-insensitively and without a trailing dot.
fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::super::load::{DomainRow, InstanceRow, RouteRow};
    use super::*;

    const BASE: &str = "Zeitwork.Test.";

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn env(n: u128, name: &str) -> EnvRow {
        EnvRow {
            id: id(n),
            name: name.into(),
            app: "shop".into(),
            org: "acme".into(),
        }
    }

    fn deployment(n: u128, env: u128, slug: &str, minute: u32, port: Option<i32>) -> DeploymentRow {
        DeploymentRow {
            id: id(n),
            env_id: id(env),
            slug: slug.into(),
            created_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).unwrap(),
            process: Some("web".into()),
            port,
        }
    }

    fn instance(n: u128, deployment: u128, process: &str, address: &str) -> InstanceRow {
        InstanceRow {
            id: id(n),
            deployment_id: id(deployment),
            process: process.into(),
            address: address.into(),
        }
    }

    fn rows() -> Rows {
        Rows {
            seq: 42,
            envs: vec![env(1, "prod"), env(2, "staging")],
            deployments: vec![
                deployment(10, 1, "old", 1, Some(8080)),
                deployment(11, 1, "new", 2, Some(8080)),
                deployment(12, 2, "stg", 1, None),
            ],
            instances: vec![
                instance(20, 10, "web", "10.0.0.2:8080"),
                instance(21, 10, "admin", "10.0.0.3:9000"),
                instance(22, 10, "web", "not an address"),
            ],
            routes: vec![],
            domains: vec![],
        }
    }

    fn backends(table: &RoutingTable, host: &str) -> Vec<String> {
        let target = table
            .lookup(host)
            .unwrap_or_else(|| panic!("{host} is not routed"));
        target.backends().iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn deployments_and_envs_get_their_names_under_the_base_domain() {
        let table = build(BASE, rows());
        assert_eq!(table.seq(), 42);
        assert_eq!(
            backends(&table, "shop-old-acme.zeitwork.test"),
            ["10.0.0.2:8080"]
        );
        assert!(backends(&table, "shop-new-acme.zeitwork.test").is_empty());
        assert!(table.lookup("shop-staging-acme.zeitwork.test").is_some());
        assert!(table.lookup("shop-prod-acme.zeitwork.test").is_none());
        assert_eq!(table.len(), 5);
    }

    #[test]
    fn the_env_name_serves_the_newest_deployment_with_a_healthy_instance() {
        let table = build(BASE, rows());
        assert_eq!(
            backends(&table, "shop-acme.zeitwork.test"),
            ["10.0.0.2:8080"]
        );
        let mut rows = rows();
        rows.instances
            .push(instance(23, 11, "web", "10.0.0.9:8080"));
        let table = build(BASE, rows);
        assert_eq!(
            backends(&table, "shop-acme.zeitwork.test"),
            ["10.0.0.9:8080"]
        );
    }

    #[test]
    fn an_env_without_a_healthy_deployment_is_known_but_has_no_backends() {
        let table = build(BASE, rows());
        let staging = table.lookup("shop-staging-acme.zeitwork.test").unwrap();
        assert_eq!(staging.env_id(), id(2));
        assert!(staging.backends().is_empty());
        let portless = table.lookup("shop-stg-acme.zeitwork.test").unwrap();
        assert_eq!(portless.port(), None);
    }

    #[test]
    fn routes_reach_their_process_on_their_port_and_domains_follow_the_env() {
        let mut rows = rows();
        rows.routes.push(RouteRow {
            id: id(30),
            env_id: id(1),
            host: "Admin.Example.COM".into(),
            process: "admin".into(),
            mode: "http".into(),
            port: 9443,
            proxy_protocol: false,
            policy: Default::default(),
        });
        rows.domains.push(DomainRow {
            id: id(31),
            env_id: id(1),
            hostname: "www.example.com.".into(),
        });
        let table = build(BASE, rows);
        let admin = table.lookup("admin.example.com").unwrap();
        assert_eq!((admin.process(), admin.port()), ("admin", Some(9443)));
        assert_eq!(backends(&table, "admin.example.com"), ["10.0.0.3:9443"]);
        let www = table.lookup("www.example.com").unwrap();
        assert!(Arc::ptr_eq(
            www,
            table.lookup("shop-acme.zeitwork.test").unwrap()
        ));
    }

    #[test]
    fn a_route_cannot_take_a_platform_assigned_name() {
        let mut rows = rows();
        rows.envs.push(EnvRow {
            id: id(3),
            name: "prod".into(),
            app: "evil".into(),
            org: "other".into(),
        });
        rows.routes.push(RouteRow {
            id: id(32),
            env_id: id(3),
            host: "shop-acme.zeitwork.test".into(),
            process: "web".into(),
            mode: "http".into(),
            port: 80,
            proxy_protocol: false,
            policy: Default::default(),
        });
        let table = build(BASE, rows);
        assert_eq!(
            table.lookup("shop-acme.zeitwork.test").unwrap().env_id(),
            id(1)
        );
    }

    fn passthrough(n: u128, host: &str, proxy_protocol: bool) -> RouteRow {
        RouteRow {
            id: id(n),
            env_id: id(1),
            host: host.into(),
            process: "admin".into(),
            mode: PASSTHROUGH.into(),
            port: 9443,
            proxy_protocol,
            policy: Default::default(),
        }
    }

    #[test]
    fn passthrough_routes_are_found_by_sni_only_and_take_no_taken_name() {
        let mut rows = rows();
        rows.routes.push(passthrough(40, "DB.example.com.", true));
        rows.routes.push(passthrough(41, "shop-acme.zeitwork.test", false));
        rows.domains.push(DomainRow {
            id: id(42),
            env_id: id(1),
            hostname: "db.example.com".into(),
        });
        let table = build(BASE, rows);
        assert!(table.lookup("db.example.com").is_none(), "not over HTTP");
        let db = table.lookup_passthrough("db.example.com").unwrap();
        assert!(db.proxy_protocol());
        assert_eq!(db.backends(), ["10.0.0.3:9443".parse().unwrap()]);
        assert!(table.lookup_passthrough("shop-acme.zeitwork.test").is_none());
        assert!(table.lookup("shop-acme.zeitwork.test").is_some());
        assert_eq!(table.len(), 6);
        assert!(table.route_set().contains(&id(40)));
    }
}
