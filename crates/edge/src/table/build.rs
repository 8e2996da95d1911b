//! From rows to hostnames. Pure, so every naming and precedence rule is tested without
//! a database.
//!
//! Hostnames, in the order they are claimed (a later claim on a taken name is refused
//! with a warning, so a tenant's route can never take over a platform-assigned name):
//! 1. `<app>-<slug>-<org>.<base>`: one deployment, whatever its age;
//! 2. the env's own name, `<app>-<org>.<base>` for `prod` and `<app>-<env>-<org>.<base>`
//!    otherwise: the most recently activated deployment (created, or rolled back to)
//!    that has a healthy instance;
//! 3. routes with a host: the named process and port of the env's newest deployment
//!    with a healthy instance of that process; `tls-passthrough` routes go to a map of
//!    their own (reached by SNI only), but their names are claimed like the rest, so a
//!    name is either terminated by the edge or passed through, never both. A route's
//!    host must be a verified domain of its own env (the API refuses others; routes
//!    made before that rule are ignored here), so no tenant can route a name another
//!    one proved it owns;
//! 4. verified custom domains no route of their env names: the same target as the
//!    env's own name.
//!
//! `tcp` routes have no name: they are found by the port the operator allocated them.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use uuid::Uuid;
use zeitwork_core::{RoutePolicy, platform_host};

use super::load::{DeploymentRow, EnvRow, Rows};
use super::{RoutingTable, Target};

/// The process an env's name serves when no deployment says otherwise.
const DEFAULT_PROCESS: &str = "web";
/// The route mode whose TLS the app terminates.
const PASSTHROUGH: &str = "tls-passthrough";
/// The route mode reached by an allocated port.
const TCP: &str = "tcp";

pub(super) fn build(base_domain: &str, rows: Rows, region: Option<&str>) -> RoutingTable {
    let base = platform_host::base(base_domain);
    let envs: HashMap<Uuid, &EnvRow> = rows.envs.iter().map(|e| (e.id, e)).collect();
    let healthy = Healthy::of(&rows, region);
    let mut history: HashMap<Uuid, Vec<&DeploymentRow>> = HashMap::new();
    for d in &rows.deployments {
        history.entry(d.env_id).or_default().push(d);
    }
    for deployments in history.values_mut() {
        deployments.sort_by_key(|d| std::cmp::Reverse((d.activated_at, d.id)));
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
        let name = platform_host::host(
            &platform_host::deployment_label(&env.app, &d.slug, &env.org),
            &base,
        );
        let mut target = new(
            &name,
            d.env_id,
            process,
            port,
            healthy.reported(d.id, process),
        );
        target.wakes = d.sleeps.then_some(d.id);
        target.cross_region = healthy.crosses(d.id, process);
        hosts.claim(name, Arc::new(target));
    }
    let mut serving = HashMap::new();
    let mut tcp = HashMap::new();
    for env in &rows.envs {
        let name = platform_host::host(
            &platform_host::env_label(&env.app, &env.name, &env.org),
            &base,
        );
        // An env scaled to zero is served by its active deployment, asleep or not: a
        // request wakes it, and never goes to an older deployment meanwhile.
        let newest_healthy = history(env.id).enumerate().find_map(|(n, d)| {
            let (process, port) = d.serves();
            let backends = healthy.reported(d.id, process);
            let sleeps = n == 0 && d.sleeps;
            (sleeps || !backends.is_empty()).then(|| {
                let mut target = new(&name, env.id, process, port, backends);
                target.wakes = sleeps.then_some(d.id);
                target.cross_region = healthy.crosses(d.id, process);
                target
            })
        });
        let target = Arc::new(
            newest_healthy.unwrap_or_else(|| new(&name, env.id, DEFAULT_PROCESS, None, vec![])),
        );
        hosts.claim(name, target.clone());
        serving.insert(env.id, target);
    }
    let verified: HashSet<(Uuid, String)> = rows
        .domains
        .iter()
        .map(|d| (d.env_id, normalize(&d.hostname)))
        .collect();
    let mut routed = HashSet::new();
    for r in &rows.routes {
        let Ok(port) = u16::try_from(r.port) else {
            continue; // the API allows 1 to 65535 only
        };
        if let Some(host) = r.host.as_deref().filter(|_| r.mode != TCP) {
            let owned = (r.env_id, normalize(host));
            if !verified.contains(&owned) {
                tracing::warn!(route = %r.id, %host, "a route names a host that is not a verified domain of its env; ignored");
                continue;
            }
            routed.insert(owned);
        }
        // As for the env's name: a sleeping newest deployment is woken, not skipped.
        let newest = history(r.env_id).next();
        let wakes = newest
            .filter(|d| d.sleeps && r.mode == "http" && d.serves().0 == r.process)
            .map(|d| d.id);
        let serving = wakes.or_else(|| {
            history(r.env_id)
                .map(|d| d.id)
                .find(|&d| !healthy.on_port(d, &r.process, port).is_empty())
        });
        let backends = serving
            .map(|d| healthy.on_port(d, &r.process, port))
            .unwrap_or_default();
        let policy = Arc::new(r.policy.0.clone());
        let listen_port = r.listen_port.and_then(|p| u16::try_from(p).ok());
        let (name, listen_port) = match (&r.host, listen_port) {
            (Some(host), _) if r.mode != TCP => (host.clone(), None),
            (_, Some(listen)) if r.mode == TCP => (format!("tcp:{listen}"), Some(listen)),
            _ => continue, // the query reads no other shape
        };
        let mut target = Target::new(&name, r.env_id, &r.process, Some(port), backends, policy);
        target.route = Some(r.id);
        target.wakes = wakes;
        target.cross_region = serving.is_some_and(|d| healthy.crosses(d, &r.process));
        target.proxy_protocol = r.proxy_protocol && r.mode != "http";
        let target = Arc::new(target);
        match listen_port {
            // Ports are unique in Postgres; one route per port.
            Some(listen) => {
                tcp.insert(listen, target);
            }
            None => hosts.claim_in(name, target, r.mode == PASSTHROUGH),
        }
    }
    for d in &rows.domains {
        let claimed_by_route = routed.contains(&(d.env_id, normalize(&d.hostname)));
        if let (Some(target), false) = (serving.get(&d.env_id), claimed_by_route) {
            hosts.claim(d.hostname.clone(), target.clone());
        }
    }
    RoutingTable {
        seq: rows.seq,
        hosts: hosts.http,
        passthrough: hosts.passthrough,
        tcp,
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
/// The healthy instances of each deployment's process: the edge's own region's when it
/// has any, else every region's (and then the process is marked as crossing regions).
struct Healthy<'a> {
    addresses: HashMap<(Uuid, &'a str), Vec<SocketAddr>>,
    crossing: HashSet<(Uuid, &'a str)>,
}

impl<'a> Healthy<'a> {
    fn of(rows: &'a Rows, region: Option<&str>) -> Healthy<'a> {
        let mut all: HashMap<_, Vec<(SocketAddr, bool)>> = HashMap::new();
        for i in &rows.instances {
            match i.address.parse::<SocketAddr>() {
                Ok(a) => {
                    let local = region.is_none_or(|r| i.region.as_deref() == Some(r));
                    all.entry((i.deployment_id, i.process.as_str()))
                        .or_default()
                        .push((a, local));
                }
                Err(_) => tracing::warn!(
                    instance = %i.id, address = %i.address,
                    "ignoring a healthy instance whose reported address is not ip:port"
                ),
            }
        }
        let mut crossing = HashSet::new();
        let addresses = all
            .into_iter()
            .map(|(key, found)| {
                let local: Vec<SocketAddr> =
                    found.iter().filter(|(_, l)| *l).map(|(a, _)| *a).collect();
                if local.is_empty() {
                    crossing.insert(key);
                    (key, found.into_iter().map(|(a, _)| a).collect())
                } else {
                    (key, local)
                }
            })
            .collect();
        Healthy {
            addresses,
            crossing,
        }
    }

    /// Whether the process's instances are another region's.
    fn crosses(&self, deployment: Uuid, process: &str) -> bool {
        self.crossing.contains(&(deployment, process))
    }

    /// The addresses the node agents reported (the process's own port).
    fn reported(&self, deployment: Uuid, process: &str) -> Vec<SocketAddr> {
        self.addresses
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
mod tests;
