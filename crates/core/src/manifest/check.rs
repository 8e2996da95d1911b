//! Rules serde cannot express: ranges, cross-references between routes and
//! processes, reserved names.

use super::autoscale::MAX_INSTANCES;
use super::{Health, Manifest, ManifestError, Process, RouteMode, Seconds, VERSION};

const MIN_MEMORY_MB: u64 = 64;
const MAX_MEMORY_MB: u64 = 256 * 1024;
const MAX_CPUS: f64 = 64.0;

impl Manifest {
    pub(super) fn check(&self) -> Result<(), ManifestError> {
        if self.version != VERSION {
            return Err(ManifestError::at(
                "version",
                format!(
                    "unsupported manifest version {} (this build understands {VERSION})",
                    self.version
                ),
            ));
        }
        if self.processes.is_empty() {
            return Err(ManifestError::at(
                "processes",
                "declare at least one process, e.g. [processes.web]",
            ));
        }
        for (name, process) in &self.processes {
            // The served process may take its port from the image's EXPOSE instead.
            let served = self.served_process() == Some(name.as_str());
            check_process(&format!("processes.{name}"), process, served)?;
            // Only a request can wake a process scaled to zero.
            let requested = served
                || self
                    .routes
                    .iter()
                    .any(|r| r.process == *name && r.mode == RouteMode::Http);
            let sleeps = process.autoscale.as_ref().is_some_and(|a| a.min == 0);
            if sleeps && !requested {
                return Err(ManifestError::at(
                    format!("processes.{name}.autoscale.min"),
                    "0 needs requests to wake the process: only the process the app's \
                     hostnames serve, or one an http route names, may scale to zero",
                ));
            }
            // The edge holds HTTP requests while a process wakes, not raw connections.
            if sleeps
                && let Some(i) = self
                    .routes
                    .iter()
                    .position(|r| r.process == *name && r.mode != RouteMode::Http)
            {
                return Err(ManifestError::at(
                    format!("processes.{name}.autoscale.min"),
                    format!(
                        "0 cannot serve routes[{i}] ({}): the edge holds only HTTP requests \
                         while a process wakes; keep min at 1 or more",
                        self.routes[i].mode.as_str()
                    ),
                ));
            }
        }
        for key in self.env.keys() {
            check_env_name(key).map_err(|m| ManifestError::at(format!("env.{key}"), m))?;
            if self.env[key].contains('\0') {
                return Err(ManifestError::at(
                    format!("env.{key}"),
                    "values must not contain NUL characters",
                ));
            }
        }
        let mut hosts = std::collections::HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let path = format!("routes[{i}]");
            if let Some(host) = &route.host
                && !hosts.insert(host.as_str().to_ascii_lowercase())
            {
                return Err(ManifestError::at(
                    format!("{path}.host"),
                    format!("{} is routed twice; keep one route per host", host.as_str()),
                ));
            }
            let Some(process) = self.processes.get(&route.process) else {
                return Err(ManifestError::at(
                    format!("{path}.process"),
                    format!(
                        "no process named {:?} in [processes]",
                        route.process.as_str()
                    ),
                ));
            };
            if route.port.or(process.port).is_none() {
                return Err(ManifestError::at(
                    format!("{path}.port"),
                    "set a port here or on the process",
                ));
            }
            match (route.mode, &route.host) {
                (RouteMode::Tcp, Some(_)) => {
                    return Err(ManifestError::at(
                        format!("{path}.host"),
                        "tcp routes are reached by an allocated port, not a hostname; remove host",
                    ));
                }
                (RouteMode::Http | RouteMode::TlsPassthrough, None) => {
                    return Err(ManifestError::at(
                        format!("{path}.host"),
                        format!("{} routes need a host", route.mode.as_str()),
                    ));
                }
                _ => {}
            }
            if route.port == Some(0) {
                return Err(ManifestError::at(
                    format!("{path}.port"),
                    "must be between 1 and 65535",
                ));
            }
            route
                .policy
                .check()
                .map_err(|(field, m)| ManifestError::at(format!("{path}.policy.{field}"), m))?;
        }
        if let Some(build) = &self.build {
            build.check()?;
        }
        Ok(())
    }
}

fn check_process(path: &str, p: &Process, served: bool) -> Result<(), ManifestError> {
    if p.port == Some(0) {
        return Err(ManifestError::at(
            format!("{path}.port"),
            "must be between 1 and 65535",
        ));
    }
    if p.command
        .as_ref()
        .is_some_and(|c| c.first().is_none_or(String::is_empty))
    {
        return Err(ManifestError::at(
            format!("{path}.command"),
            "must name a program to run",
        ));
    }
    if let Some(i) = p
        .command
        .iter()
        .flatten()
        .position(|arg| arg.contains('\0'))
    {
        return Err(ManifestError::at(
            format!("{path}.command[{i}]"),
            "must not contain NUL characters",
        ));
    }
    if p.instances > MAX_INSTANCES {
        return Err(ManifestError::at(
            format!("{path}.instances"),
            format!("at most {MAX_INSTANCES} instances per region"),
        ));
    }
    // Steps of 0.001 up to float rounding: 1.001 * 1000 is 1000.9999999999999.
    let millicpus = p.cpus * 1000.0;
    if !(p.cpus > 0.0 && p.cpus <= MAX_CPUS) || (millicpus - millicpus.round()).abs() > 1e-6 {
        return Err(ManifestError::at(
            format!("{path}.cpus"),
            format!("must be more than 0 and at most {MAX_CPUS}, in steps of 0.001"),
        ));
    }
    if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&p.memory_mb) {
        return Err(ManifestError::at(
            format!("{path}.memory_mb"),
            format!("must be between {MIN_MEMORY_MB} and {MAX_MEMORY_MB}"),
        ));
    }
    if let Some(autoscale) = &p.autoscale {
        autoscale.check(&format!("{path}.autoscale"))?;
    }
    if let Some(health) = &p.health {
        check_health(
            &format!("{path}.health"),
            health,
            p.port.is_some() || served,
        )?;
    }
    Ok(())
}

fn check_health(path: &str, h: &Health, has_port: bool) -> Result<(), ManifestError> {
    match (&h.path, h.tcp) {
        (Some(_), true) => {
            return Err(ManifestError::at(
                path,
                "choose either path (HTTP) or tcp = true, not both",
            ));
        }
        (None, false) => {
            return Err(ManifestError::at(
                path,
                "set path = \"/health\" (HTTP) or tcp = true",
            ));
        }
        (Some(p), false) if !p.starts_with('/') || !p.bytes().all(|b| b.is_ascii_graphic()) => {
            return Err(ManifestError::at(
                format!("{path}.path"),
                "must start with '/' and hold no spaces or control characters",
            ));
        }
        _ => {}
    }
    if !has_port {
        return Err(ManifestError::at(
            path,
            "health checks need the process port to be set (only the process the URLs serve may take it from the image)",
        ));
    }
    if h.interval.as_millis() < 1000 || h.interval > Seconds::HOUR {
        return Err(ManifestError::at(
            format!("{path}.interval"),
            "must be at least 1s and at most 1h",
        ));
    }
    if h.timeout.as_millis() == 0 || h.timeout >= h.interval {
        return Err(ManifestError::at(
            format!("{path}.timeout"),
            "must be more than 0 and shorter than the interval",
        ));
    }
    for (field, value) in [
        ("healthy_threshold", h.healthy_threshold),
        ("unhealthy_threshold", h.unhealthy_threshold),
    ] {
        if !(1..=100).contains(&value) {
            return Err(ManifestError::at(
                format!("{path}.{field}"),
                "must be between 1 and 100",
            ));
        }
    }
    Ok(())
}

/// Environment variable names: POSIX shell names; the `ZEITWORK_` prefix is ours.
pub fn check_env_name(key: &str) -> Result<(), String> {
    if key.len() > 255 {
        return Err("variable names are at most 255 characters".into());
    }
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("variable names must match [A-Za-z_][A-Za-z0-9_]*".into());
    }
    if key.starts_with("ZEITWORK_") {
        return Err("the ZEITWORK_ prefix is reserved for the platform".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::manifest::Manifest;

    const GOOD: &str = r#"
version = 1
app = "hello"

[processes.web]
command = ["/hello", "--port", "8080"]
port = 8080
instances = 2
cpus = 0.5
memory_mb = 128
[processes.web.health]
path = "/healthz"
interval = "5s"
timeout = "1s"
healthy_threshold = 1
unhealthy_threshold = 3

[processes.worker]
memory_mb = 256

[env]
LOG_LEVEL = "info"

[[routes]]
host = "hello.example.com"
process = "web"

[routes.policy]
balance = "least-connections"
rate_limit = { per_client = 50 }

[[routes]]
process = "web"
mode = "tcp"
port = 8080
proxy_protocol = true
"#;

    fn err(text: &str) -> String {
        Manifest::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn good_manifest_parses_with_defaults() {
        let m = Manifest::from_toml(GOOD).unwrap();
        assert_eq!(m.app.as_str(), "hello");
        assert_eq!(m.processes.len(), 2);
        let worker = &m.processes[&crate::Name::parse("worker").unwrap()];
        assert_eq!(worker.instances, 1);
        assert_eq!(m.routes[0].mode, super::RouteMode::Http);
        assert!(m.routes[1].proxy_protocol);
        let policy = &m.routes[0].policy;
        assert_eq!(
            policy.balance,
            crate::route_policy::Balance::LeastConnections
        );
        assert_eq!(policy.rate_limit.as_ref().unwrap().per_client, Some(50));
        assert_eq!(m.routes[1].policy, crate::RoutePolicy::default());
    }

    #[test]
    fn the_served_process_and_its_warnings() {
        let m = |procs: &str| Manifest::from_toml(&format!("version = 1\napp = \"a\"\n{procs}"));
        let both = m("[processes.api]\nport = 9000\n[processes.web]\n").unwrap();
        assert_eq!(
            both.served_process(),
            Some("api"),
            "a port wins over the name"
        );
        assert!(both.reachability_warnings().is_empty());
        let web = m("[processes.web]\n[processes.worker]\n").unwrap();
        assert_eq!(web.served_process(), Some("web"));
        assert!(web.reachability_warnings()[0].contains("EXPOSE"));
        let workers = m("[processes.worker]\n").unwrap();
        assert_eq!(workers.served_process(), None);
        assert!(workers.reachability_warnings()[0].starts_with("no process serves"));
        // The served process may be health-checked on its image's port; others may not.
        let check = "\n[processes.web.health]\npath = \"/up\"\n";
        m(&format!("[processes.web]{check}")).unwrap();
        let e = m(&format!(
            "[processes.api]\nport = 1\n[processes.web]{check}"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("need the process port"), "{e}");
    }

    #[test]
    fn a_bad_route_policy_names_its_field() {
        let e = err(&GOOD.replace("per_client = 50", "per_client = 0"));
        assert!(e.starts_with("routes[0].policy.rate_limit:"), "{e}");
        let e = err(&GOOD.replace("balance = \"least-connections\"", "sticky = true"));
        assert!(
            e.starts_with("routes[0].policy.sticky: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_name_their_path() {
        let e = err(&GOOD.replace("interval = \"5s\"", "intervall = \"5s\""));
        assert!(
            e.starts_with("processes.web.health.intervall: unknown field `intervall`"),
            "{e}"
        );
        let e = err(&GOOD.replace("version = 1", "version = 1\nextra = true"));
        assert!(e.contains("unknown field `extra`"), "{e}");
        let e = err(&GOOD.replace("proxy_protocol = true", "proxy = true"));
        assert!(
            e.starts_with("routes[1].proxy: unknown field `proxy`"),
            "{e}"
        );
    }

    #[test]
    fn semantic_errors_name_their_path() {
        assert!(err(&GOOD.replace("version = 1", "version = 2")).starts_with("version:"));
        assert!(err(&GOOD.replace("cpus = 0.5", "cpus = 0")).starts_with("processes.web.cpus:"));
        assert!(
            err(&GOOD.replace("memory_mb = 128", "memory_mb = 1"))
                .starts_with("processes.web.memory_mb:")
        );
        assert!(
            err(&GOOD.replace("timeout = \"1s\"", "timeout = \"9s\""))
                .starts_with("processes.web.health.timeout:")
        );
        assert!(
            err(&GOOD.replace("path = \"/healthz\"", "path = \"/h\"\ntcp = true"))
                .starts_with("processes.web.health:")
        );
        assert!(
            err(&GOOD.replace("process = \"web\"\n\n", "process = \"api\"\n\n"))
                .starts_with("routes[0].process:")
        );
        assert!(err(&GOOD.replace("LOG_LEVEL", "ZEITWORK_X")).starts_with("env.ZEITWORK_X:"));
        assert!(err(&GOOD.replace("app = \"hello\"", "app = \"Hello\"")).starts_with("app:"));
        let e = err(&GOOD.replace("[processes.web]", "[processes.Web]"));
        assert!(e.starts_with("processes") && e.contains("lowercase"), "{e}");
        assert!(
            err(&GOOD.replace("mode = \"tcp\"", "mode = \"udp\"")).starts_with("routes[1].mode:")
        );
    }

    /// The `[processes.web.autoscale]` of a manifest that must parse.
    fn web_autoscale(text: &str) -> crate::manifest::Autoscale {
        let m = Manifest::from_toml(text).unwrap();
        let web = &m.processes[&crate::Name::parse("web").unwrap()];
        web.autoscale.clone().unwrap()
    }

    #[test]
    fn autoscale_bounds_and_targets_are_checked() {
        let with = |block: &str| {
            GOOD.replace(
                "[processes.worker]",
                &format!("{block}\n[processes.worker]"),
            )
        };
        let a = web_autoscale(&with(
            "[processes.web.autoscale]\nmax = 5\ntarget_concurrency = 10",
        ));
        assert_eq!(
            (a.min, a.max, a.target_concurrency, a.target_cpu),
            (1, 5, Some(10), None)
        );
        assert_eq!(a.scale_down_window.as_millis(), 300_000);
        assert_eq!((a.clamp(0), a.clamp(3), a.clamp(9)), (1, 3, 5));
        for (block, path) in [
            ("max = 5", "processes.web.autoscale.target_concurrency:"),
            (
                "min = 4\nmax = 3\ntarget_cpu = 50",
                "processes.web.autoscale.max:",
            ),
            (
                "max = 1001\ntarget_cpu = 50",
                "processes.web.autoscale.max:",
            ),
            ("max = 0\ntarget_cpu = 50", "processes.web.autoscale.max:"),
            (
                "max = 3\ntarget_cpu = 50\nidle_timeout = \"1m\"",
                "processes.web.autoscale.idle_timeout:",
            ),
            (
                "min = 0\nmax = 3\ntarget_cpu = 50\nidle_timeout = \"1s\"",
                "processes.web.autoscale.idle_timeout:",
            ),
            (
                "max = 3\ntarget_cpu = 101",
                "processes.web.autoscale.target_cpu:",
            ),
            (
                "max = 3\ntarget_concurrency = 0",
                "processes.web.autoscale.target_concurrency:",
            ),
            (
                "max = 3\ntarget_cpu = 5\nscale_down_window = \"2h\"",
                "processes.web.autoscale.scale_down_window:",
            ),
            (
                "max = 3\ntarget_cpu = 5\nwindow = \"2m\"",
                "processes.web.autoscale.window: unknown field",
            ),
        ] {
            let e = err(&with(&format!("[processes.web.autoscale]\n{block}")));
            assert!(e.starts_with(path), "{block}: {e}");
        }
        // Scaling to zero: the served process may; a worker no request reaches may not.
        let zero = "[processes.web.autoscale]\nmin = 0\nmax = 2\ntarget_concurrency = 5";
        let tcp_route = &GOOD[GOOD.rfind("[[routes]]").unwrap()..];
        let a = web_autoscale(&with(zero).replace(tcp_route, ""));
        assert!(a.scales_to_zero());
        assert_eq!(a.idle_timeout().as_millis(), 300_000);
        let worker = GOOD.replace(
            "memory_mb = 256\n",
            "memory_mb = 256\n[processes.worker.autoscale]\nmin = 0\nmax = 2\ntarget_cpu = 5\n",
        );
        let e = err(&worker);
        assert!(e.starts_with("processes.worker.autoscale.min:"), "{e}");
        // GOOD's web has a tcp route: the edge cannot hold its connections.
        let tcp = GOOD.replace(
            "unhealthy_threshold = 3\n",
            "unhealthy_threshold = 3\n[processes.web.autoscale]\nmin = 0\nmax = 2\ntarget_cpu = 5\n",
        );
        let e = err(&tcp);
        assert!(
            e.starts_with("processes.web.autoscale.min:") && e.contains("routes[1] (tcp)"),
            "{e}"
        );
    }

    #[test]
    fn hash_ignores_spelling_of_durations() {
        let a = Manifest::from_toml(GOOD).unwrap();
        let b = Manifest::from_toml(&GOOD.replace("\"5s\"", "5")).unwrap();
        assert_eq!(a.hash(), b.hash());
        let c = Manifest::from_toml(&GOOD.replace("instances = 2", "instances = 3")).unwrap();
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn json_form_is_as_strict() {
        let m = Manifest::from_toml(GOOD).unwrap();
        let mut v = serde_json::to_value(&m).unwrap();
        assert_eq!(Manifest::from_json(&v).unwrap(), m);
        v["processes"]["web"]["bogus"] = serde_json::json!(1);
        let e = Manifest::from_json(&v).unwrap_err();
        assert_eq!(e.path, "processes.web.bogus");
    }
}
