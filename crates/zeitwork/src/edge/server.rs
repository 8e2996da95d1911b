//! `zeitwork server edge`: one edge of a cluster, on HTTP and HTTPS, ordering
//! certificates with ACME (Let's Encrypt by default) unless told not to.

use std::future::Future;

use anyhow::Context;
use clap::Args;
use clap::builder::BoolishValueParser;
use zeitwork_certs::LETS_ENCRYPT;
use zeitwork_store::Store;

use super::{AcmeArgs, Setup};
use crate::settings::Key;

#[derive(Args, Debug, Clone)]
pub struct EdgeArgs {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Without NATS the routing table and certificates follow Postgres by polling only.
    #[arg(long, env = "NATS_URL")]
    nats_url: Option<String>,
    /// Where plain HTTP is served (ACME HTTP-01 answers, redirects to HTTPS for hosts
    /// with a certificate, everything else proxied).
    #[arg(long, env = "ZEITWORK_EDGE_LISTEN", default_value = "0.0.0.0:8081")]
    listen: String,
    /// Where HTTPS is served, with the certificates stored in Postgres (chosen by SNI).
    #[arg(
        long,
        env = "ZEITWORK_EDGE_HTTPS_LISTEN",
        default_value = "0.0.0.0:8443"
    )]
    https_listen: String,
    /// Where the ports of `tcp` routes are opened, each route's allocated one
    /// [default: the address of --listen].
    #[arg(long, env = "ZEITWORK_EDGE_TCP_LISTEN", value_name = "IP")]
    tcp_listen: Option<std::net::IpAddr>,
    /// The region this edge serves: its healthy instances are preferred, another
    /// region's used only when it has none [default: every region alike].
    #[arg(long, env = "ZEITWORK_REGION", value_parser = parse_region)]
    region: Option<String>,
    /// The HTTPS port clients use, for HTTP→HTTPS redirects (443 behind a load balancer or
    /// port forward) [default: the port of --https-listen].
    #[arg(long, env = "ZEITWORK_EDGE_HTTPS_PUBLIC_PORT")]
    https_public_port: Option<u16>,
    /// Worker threads, each serving its share of connections on its own runtime
    /// [default: one per CPU].
    #[arg(
        long,
        env = "ZEITWORK_EDGE_WORKERS",
        default_value_t = 0,
        hide_default_value = true
    )]
    workers: usize,
    /// A load balancer in front (`zeitwork server lb --proxy-protocol`) whose PROXY v2
    /// headers are believed: an address or CIDR, repeatable (comma-separated in the
    /// variable). Connections from these must start with the header.
    #[arg(
        long = "trusted-proxy",
        value_name = "CIDR",
        env = "ZEITWORK_EDGE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<zeitwork_edge::Cidr>,
    #[arg(
        long,
        env = "ZEITWORK_BASE_DOMAIN",
        default_value = "zeitwork.localhost"
    )]
    base_domain: String,
    #[command(flatten)]
    acme: AcmeArgs,
    /// Serve the stored certificates only; order none (another edge may).
    #[arg(long, env = "ZEITWORK_NO_ACME", value_parser = BoolishValueParser::new())]
    no_acme: bool,
    /// Serve Prometheus metrics (`zeitwork_edge_requests_total`, …) at `http://ADDR/metrics`.
    #[arg(long, env = "ZEITWORK_EDGE_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<String>,
}

pub async fn run(
    args: EdgeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let certificate_key =
        Key::Certificates.required("the edge opens the certificate keys sealed with it")?;
    if let Some(addr) = &args.metrics_addr {
        crate::metrics::serve(addr).await?;
    }
    let store = Store::connect(&args.database_url)
        .await
        .context("connecting to Postgres")?;
    let bus = match &args.nats_url {
        Some(url) => Some(zeitwork_bus::NatsBus::connect(url).await?),
        None => None,
    };
    let acme = (!args.no_acme).then(|| {
        let directory = args.acme.acme_directory.clone();
        let directory = directory.unwrap_or_else(|| LETS_ENCRYPT.to_owned());
        args.acme.config(directory, &args.base_domain)
    });
    let edge = super::start(Setup {
        store,
        bus,
        certificate_key,
        base_domain: args.base_domain,
        http_listen: args.listen,
        https_listen: args.https_listen,
        https_public_port: args.https_public_port,
        acme,
        workers: args.workers,
        trusted_proxies: args.trusted_proxies,
        tcp_listen: args.tcp_listen,
        region: args.region,
    })
    .await?;
    edge.serve(shutdown).await
}

/// A region's name, by the platform's one name rule.
pub(crate) fn parse_region(s: &str) -> Result<String, String> {
    zeitwork_core::Name::parse(s)
        .map(|n| n.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use zeitwork_certs::ChallengeKind;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: EdgeArgs,
    }

    #[test]
    fn flags_parse_with_defaults() {
        let cli = Cli::try_parse_from(["edge", "--database-url", "postgres://x"]).unwrap();
        assert_eq!(cli.args.listen, "0.0.0.0:8081");
        assert_eq!(cli.args.https_listen, "0.0.0.0:8443");
        assert_eq!(cli.args.acme.acme_challenge, ChallengeKind::Http01);
        assert!(!cli.args.no_acme && cli.args.https_public_port.is_none());
        let cli = Cli::try_parse_from([
            "edge",
            "--database-url",
            "postgres://x",
            "--acme-challenge",
            "tls-alpn-01",
            "--https-public-port",
            "443",
            "--no-acme",
        ])
        .unwrap();
        assert_eq!(cli.args.acme.acme_challenge, ChallengeKind::TlsAlpn01);
        assert_eq!(cli.args.https_public_port, Some(443));
        assert!(cli.args.no_acme);
        let bad = ["edge", "--database-url", "x", "--acme-challenge", "dns-01"];
        assert!(Cli::try_parse_from(bad).is_err());
    }
}
