//! The naming and precedence rules of [`super::build`], without a database.

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
        activated_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).unwrap(),
        process: Some("web".into()),
        port,
        sleeps: false,
    }
}

fn instance(n: u128, deployment: u128, process: &str, address: &str) -> InstanceRow {
    InstanceRow {
        id: id(n),
        deployment_id: id(deployment),
        process: process.into(),
        address: address.into(),
        region: Some("eu".into()),
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
    let table = build(BASE, rows(), None);
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
    let table = build(BASE, rows(), None);
    assert_eq!(
        backends(&table, "shop-acme.zeitwork.test"),
        ["10.0.0.2:8080"]
    );
    let mut rows = super::tests::rows();
    rows.instances
        .push(instance(23, 11, "web", "10.0.0.9:8080"));
    let table = build(BASE, rows, None);
    assert_eq!(
        backends(&table, "shop-acme.zeitwork.test"),
        ["10.0.0.9:8080"]
    );
}

/// An env scaled to zero is served by its active deployment even with no instance (a
/// request wakes it), never by an older deployment that still runs.
#[test]
fn a_sleeping_env_is_served_by_its_active_deployment_which_requests_wake() {
    let mut rows = super::tests::rows();
    rows.deployments[1].sleeps = true;
    let table = build(BASE, rows, None);
    let target = table.lookup("shop-acme.zeitwork.test").unwrap();
    assert!(target.backends().is_empty());
    assert_eq!(target.wakes(), Some(id(11)));
    let own = table.lookup("shop-new-acme.zeitwork.test").unwrap();
    assert_eq!(own.wakes(), Some(id(11)));
    let old = table.lookup("shop-old-acme.zeitwork.test").unwrap();
    assert_eq!(old.wakes(), None);
    // Awake: its instances serve, and it can still be woken once they stop.
    let mut rows = super::tests::rows();
    rows.deployments[1].sleeps = true;
    rows.instances
        .push(instance(23, 11, "web", "10.0.0.9:8080"));
    let table = build(BASE, rows, None);
    assert_eq!(
        backends(&table, "shop-acme.zeitwork.test"),
        ["10.0.0.9:8080"]
    );
    assert_eq!(
        table.lookup("shop-acme.zeitwork.test").unwrap().wakes(),
        Some(id(11))
    );
}

/// A rollback to a standby deployment activates it again: the env's name serves it,
/// although a deployment created after it is healthy too.
#[test]
fn the_env_name_follows_a_rollback_to_an_older_deployment() {
    let mut rows = super::tests::rows();
    rows.instances
        .push(instance(23, 11, "web", "10.0.0.9:8080"));
    rows.deployments[0].activated_at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 3, 0).unwrap();
    let table = build(BASE, rows, None);
    assert_eq!(
        backends(&table, "shop-acme.zeitwork.test"),
        ["10.0.0.2:8080"]
    );
    assert_eq!(
        backends(&table, "shop-new-acme.zeitwork.test"),
        ["10.0.0.9:8080"],
        "the deployment rolled back from keeps its own URL"
    );
}

#[test]
fn an_env_without_a_healthy_deployment_is_known_but_has_no_backends() {
    let table = build(BASE, rows(), None);
    let staging = table.lookup("shop-staging-acme.zeitwork.test").unwrap();
    assert_eq!(staging.env_id(), id(2));
    assert!(staging.backends().is_empty());
    let portless = table.lookup("shop-stg-acme.zeitwork.test").unwrap();
    assert_eq!(portless.port(), None);
}

#[test]
fn routes_reach_their_process_on_their_port_and_domains_follow_the_env() {
    let mut rows = super::tests::rows();
    rows.routes
        .push(route(30, 1, Some("Admin.Example.COM"), "http", 9443));
    rows.domains.push(verified(29, 1, "admin.example.com"));
    rows.domains.push(verified(31, 1, "www.example.com."));
    let table = build(BASE, rows, None);
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
    let mut rows = super::tests::rows();
    rows.envs.push(other_tenant());
    let mut taker = route(32, 3, Some("shop-acme.zeitwork.test"), "http", 80);
    taker.process = "web".into();
    rows.routes.push(taker);
    // Even were the name a verified domain of the taker's env.
    rows.domains
        .push(verified(33, 3, "shop-acme.zeitwork.test"));
    let table = build(BASE, rows, None);
    assert_eq!(
        table.lookup("shop-acme.zeitwork.test").unwrap().env_id(),
        id(1)
    );
}

#[test]
fn a_route_to_a_name_its_env_has_not_verified_is_ignored() {
    let mut rows = super::tests::rows();
    rows.envs.push(other_tenant());
    // Env 1 proved it owns www.victim.test; env 3 routes it (made before the API
    // refused such routes) and routes a name nobody verified.
    rows.domains.push(verified(34, 1, "www.victim.test"));
    rows.routes
        .push(route(35, 3, Some("www.victim.test"), "http", 80));
    rows.routes
        .push(route(36, 3, Some("nobody.test"), "http", 80));
    let table = build(BASE, rows, None);
    assert_eq!(table.lookup("www.victim.test").unwrap().env_id(), id(1));
    assert!(table.lookup("nobody.test").is_none());
}

/// Env 3: app `evil` of org `other`.
fn other_tenant() -> EnvRow {
    EnvRow {
        id: id(3),
        name: "prod".into(),
        app: "evil".into(),
        org: "other".into(),
    }
}

fn verified(n: u128, env: u128, hostname: &str) -> DomainRow {
    DomainRow {
        id: id(n),
        env_id: id(env),
        hostname: hostname.into(),
    }
}

/// A route of env `env` to process `admin`.
fn route(n: u128, env: u128, host: Option<&str>, mode: &str, port: i32) -> RouteRow {
    RouteRow {
        id: id(n),
        env_id: id(env),
        host: host.map(Into::into),
        process: "admin".into(),
        mode: mode.into(),
        port,
        proxy_protocol: false,
        policy: Default::default(),
        listen_port: None,
    }
}

fn passthrough(n: u128, host: &str, proxy_protocol: bool) -> RouteRow {
    RouteRow {
        proxy_protocol,
        ..route(n, 1, Some(host), PASSTHROUGH, 9443)
    }
}

fn tcp(n: u128, listen_port: i32, proxy_protocol: bool) -> RouteRow {
    RouteRow {
        proxy_protocol,
        listen_port: Some(listen_port),
        ..route(n, 1, None, TCP, 5432)
    }
}

#[test]
fn tcp_routes_are_found_by_their_port_and_never_by_name() {
    let mut rows = super::tests::rows();
    rows.routes.push(tcp(50, 20000, true));
    rows.routes.push(tcp(51, 20001, false));
    let mut no_port = tcp(52, 0, false);
    no_port.listen_port = None;
    rows.routes.push(no_port);
    let table = build(BASE, rows, None);
    let db = table.lookup_tcp(20000).unwrap();
    assert!(db.proxy_protocol());
    assert_eq!(db.backends(), ["10.0.0.3:5432".parse().unwrap()]);
    assert!(!table.lookup_tcp(20001).unwrap().proxy_protocol());
    let mut ports: Vec<u16> = table.tcp_ports().collect();
    ports.sort();
    assert_eq!(ports, [20000, 20001]);
    assert!(table.lookup("tcp:20000").is_none());
    assert!(table.route_set().contains(&id(51)));
}

#[test]
fn http_routes_never_send_a_proxy_header() {
    let mut rows = super::tests::rows();
    let mut r = route(53, 1, Some("api.example.com"), "http", 9000);
    r.proxy_protocol = true;
    rows.routes.push(r);
    rows.domains.push(verified(54, 1, "api.example.com"));
    assert!(
        !build(BASE, rows, None)
            .lookup("api.example.com")
            .unwrap()
            .proxy_protocol()
    );
}

#[test]
fn passthrough_routes_are_found_by_sni_only_and_take_no_taken_name() {
    let mut rows = super::tests::rows();
    rows.routes.push(passthrough(40, "DB.example.com.", true));
    rows.routes
        .push(passthrough(41, "shop-acme.zeitwork.test", false));
    rows.domains.push(verified(42, 1, "db.example.com"));
    let table = build(BASE, rows, None);
    assert!(table.lookup("db.example.com").is_none(), "not over HTTP");
    let db = table.lookup_passthrough("db.example.com").unwrap();
    assert!(db.proxy_protocol());
    assert_eq!(db.backends(), ["10.0.0.3:9443".parse().unwrap()]);
    assert!(
        table
            .lookup_passthrough("shop-acme.zeitwork.test")
            .is_none()
    );
    assert!(table.lookup("shop-acme.zeitwork.test").is_some());
    assert_eq!(table.len(), 6);
    assert!(table.route_set().contains(&id(40)));
}

#[test]
fn an_edge_prefers_its_own_regions_instances_and_crosses_only_when_it_has_none() {
    let in_region = |n, deployment, address: &str, region: &str| InstanceRow {
        region: Some(region.into()),
        ..instance(n, deployment, "web", address)
    };
    let mut rows = super::tests::rows();
    rows.instances = vec![
        // The old deployment runs in both regions, the new one in `us` only.
        in_region(20, 10, "[fd7a:7a77:0:1::3]:8080", "eu"),
        in_region(21, 10, "[fd7a:7a77:0:2::3]:8080", "us"),
        in_region(22, 11, "[fd7a:7a77:0:2::5]:8080", "us"),
    ];
    let eu = build(BASE, rows, Some("eu"));
    let old = eu.lookup("shop-old-acme.zeitwork.test").unwrap();
    assert_eq!(old.backends(), ["[fd7a:7a77:0:1::3]:8080".parse().unwrap()]);
    assert!(!old.cross_region(), "its own region has one");
    let new = eu.lookup("shop-new-acme.zeitwork.test").unwrap();
    assert_eq!(new.backends(), ["[fd7a:7a77:0:2::5]:8080".parse().unwrap()]);
    assert!(
        new.cross_region(),
        "none in eu: the other region serves, and it counts"
    );
    // The env's name follows its newest deployment with a healthy instance, anywhere.
    let env = eu.lookup("shop-acme.zeitwork.test").unwrap();
    assert!(env.cross_region());

    // Without a region, every region alike and nothing crosses.
    let mut rows = super::tests::rows();
    rows.instances = vec![
        in_region(20, 10, "[fd7a:7a77:0:1::3]:8080", "eu"),
        in_region(21, 10, "[fd7a:7a77:0:2::3]:8080", "us"),
    ];
    let any = build(BASE, rows, None);
    let old = any.lookup("shop-old-acme.zeitwork.test").unwrap();
    assert_eq!(old.backends().len(), 2);
    assert!(!old.cross_region());
}
