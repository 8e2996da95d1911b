//! `zeitwork server lb`: the L4 load balancer in front of several edges
//! (zeitwork-l4). It needs neither Postgres nor NATS: its backends are given here.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use zeitwork_l4::{Algorithm, Lb, LbConfig, LbStats};

#[derive(clap::Args)]
pub struct LbArgs {
    /// Where clients connect.
    #[arg(long, env = "ZEITWORK_LB_LISTEN", default_value = "0.0.0.0:8082")]
    listen: SocketAddr,
    /// An edge to relay connections to, HOST:PORT; repeat for each edge (the variable
    /// takes a comma-separated list). Names are resolved once, at start.
    #[arg(
        long = "backend",
        value_name = "ADDR",
        env = "ZEITWORK_LB_BACKENDS",
        value_delimiter = ','
    )]
    backends: Vec<String>,
    /// How a backend is picked for each new connection.
    #[arg(long, env = "ZEITWORK_LB_ALGORITHM", value_enum, default_value_t = AlgorithmArg::RoundRobin)]
    algorithm: AlgorithmArg,
    /// Send each backend a PROXY v2 header carrying the client's address; the edges must
    /// be set to expect it.
    #[arg(long, env = "ZEITWORK_LB_PROXY_PROTOCOL")]
    proxy_protocol: bool,
    /// How often each backend is checked with a TCP connect.
    #[arg(
        long,
        env = "ZEITWORK_LB_HEALTH_INTERVAL_MS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    health_interval_ms: u64,
    /// Serve Prometheus metrics (connections, failures, backend health) at
    /// http://ADDR/metrics.
    #[arg(long, env = "ZEITWORK_LB_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AlgorithmArg {
    RoundRobin,
    LeastConnections,
    IpHash,
}

impl From<AlgorithmArg> for Algorithm {
    fn from(arg: AlgorithmArg) -> Algorithm {
        match arg {
            AlgorithmArg::RoundRobin => Algorithm::RoundRobin,
            AlgorithmArg::LeastConnections => Algorithm::LeastConnections,
            AlgorithmArg::IpHash => Algorithm::IpHash,
        }
    }
}

pub async fn run(
    args: LbArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut config = LbConfig::new(args.listen, resolve(&args.backends).await?);
    config.algorithm = args.algorithm.into();
    config.proxy_protocol = args.proxy_protocol;
    config.health.interval = Duration::from_millis(args.health_interval_ms);
    let lb = Lb::new(config)?;
    if let Some(addr) = &args.metrics_addr {
        crate::metrics::serve(addr).await?;
    }
    let sample = async {
        loop {
            record(&lb.stats());
            tokio::time::sleep(METRICS_EVERY).await;
        }
    };
    tokio::select! {
        served = lb.run(shutdown) => served?,
        () = sample => {}
    }
    Ok(())
}

/// How often the balancer's counters are copied into the metrics.
const METRICS_EVERY: Duration = Duration::from_secs(1);

fn record(stats: &LbStats) {
    metrics::counter!("zeitwork_lb_connections_total").absolute(stats.accepted);
    metrics::gauge!("zeitwork_lb_connections_active").set(stats.active as f64);
    metrics::counter!("zeitwork_lb_connections_failed_total").absolute(stats.failed);
    for backend in &stats.backends {
        let addr = backend.addr.to_string();
        metrics::gauge!("zeitwork_lb_backend_healthy", "backend" => addr.clone())
            .set(if backend.healthy { 1.0 } else { 0.0 });
        metrics::counter!("zeitwork_lb_backend_connections_total", "backend" => addr.clone())
            .absolute(backend.connections);
        metrics::counter!(
            "zeitwork_lb_backend_connect_failures_total",
            "backend" => addr.clone()
        )
        .absolute(backend.connect_failures);
        metrics::counter!(
            "zeitwork_lb_backend_check_failures_total",
            "backend" => addr.clone()
        )
        .absolute(backend.check_failures);
    }
}

/// Every address each backend names, each once.
async fn resolve(backends: &[String]) -> anyhow::Result<Vec<SocketAddr>> {
    let mut addrs = Vec::new();
    for backend in backends.iter().map(|b| b.trim()).filter(|b| !b.is_empty()) {
        let found = tokio::net::lookup_host(backend)
            .await
            .with_context(|| format!("backend {backend:?} is not a reachable HOST:PORT"))?;
        for addr in found {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
    }
    if addrs.is_empty() {
        anyhow::bail!(
            "zeitwork server lb needs at least one backend: pass --backend HOST:PORT for each \
             edge, or set ZEITWORK_LB_BACKENDS=host1:8081,host2:8081"
        );
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LbArgs,
    }

    #[test]
    fn flags_parse_with_defaults() {
        let cli = Cli::try_parse_from(["lb", "--backend", "127.0.0.1:1", "--backend", "[::1]:2"])
            .unwrap();
        assert_eq!(cli.args.backends, ["127.0.0.1:1", "[::1]:2"]);
        assert_eq!(cli.args.listen.port(), 8082);
        assert!(!cli.args.proxy_protocol);
        let cli =
            Cli::try_parse_from(["lb", "--algorithm", "ip-hash", "--proxy-protocol"]).unwrap();
        assert!(matches!(cli.args.algorithm, AlgorithmArg::IpHash));
        assert!(cli.args.proxy_protocol);
        assert!(Cli::try_parse_from(["lb", "--algorithm", "random"]).is_err());
        assert!(Cli::try_parse_from(["lb", "--health-interval-ms", "0"]).is_err());
    }

    #[tokio::test]
    async fn backends_are_resolved_and_none_is_an_error() {
        let list = [
            "127.0.0.1:1".to_owned(),
            " localhost:2".to_owned(),
            "127.0.0.1:1".to_owned(),
        ];
        let addrs = resolve(&list).await.unwrap();
        assert_eq!(addrs[0], "127.0.0.1:1".parse().unwrap());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && addrs.len() >= 2);
        let err = resolve(&[String::new()]).await.unwrap_err();
        assert!(err.to_string().contains("--backend"), "{err}");
        assert!(resolve(&["no-port".to_owned()]).await.is_err());
    }
}
