//! `zeitwork server dns`: the GeoDNS server of a cluster (zeitwork-dns), authoritative for
//! the base domain. Regions and their public addresses come from Postgres
//! (`zeitwork regions set`); see docs/cluster.md, "DNS".

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use zeitwork_dns::{Check, Config, Dns, Zone};
use zeitwork_store::Store;

use crate::edge::server::parse_region;

/// Failed probes in a row that withdraw an address, and passed ones that bring it back.
const FALL: u32 = 2;
const RISE: u32 = 2;

#[derive(clap::Args, Debug, Clone)]
pub struct DnsArgs {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Without NATS the region table follows Postgres by polling only.
    #[arg(long, env = "NATS_URL")]
    nats_url: Option<String>,
    /// Where DNS is served, UDP and TCP; repeatable (comma-separated in the variable).
    #[arg(
        long = "listen",
        value_name = "ADDR",
        env = "ZEITWORK_DNS_LISTEN",
        value_delimiter = ',',
        default_value = "0.0.0.0:53"
    )]
    listen: Vec<SocketAddr>,
    /// The zone served: every app hostname is under it.
    #[arg(
        long,
        env = "ZEITWORK_BASE_DOMAIN",
        default_value = "zeitwork.localhost"
    )]
    base_domain: String,
    /// The zone's name servers (NS records and the SOA), fully qualified; one inside the
    /// zone as NAME=IP, answered with that address; repeatable.
    #[arg(
        long = "nameserver",
        value_name = "NAME[=IP]",
        env = "ZEITWORK_DNS_NAMESERVERS",
        value_delimiter = ','
    )]
    nameservers: Vec<String>,
    /// Seconds answers may be cached: short, so a withdrawn region leaves caches soon.
    #[arg(
        long,
        env = "ZEITWORK_DNS_TTL",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=300)
    )]
    ttl: u32,
    /// The region of clients no region's client networks hold [default: every healthy
    /// region].
    #[arg(long, env = "ZEITWORK_DNS_DEFAULT_REGION", value_parser = parse_region)]
    default_region: Option<String>,
    /// Region names nearest first: where the clients of a region with no healthy
    /// address go (unlisted regions follow by name).
    #[arg(
        long,
        value_name = "REGIONS",
        env = "ZEITWORK_DNS_FALLBACK_ORDER",
        value_delimiter = ',',
        value_parser = parse_region
    )]
    fallback_order: Vec<String>,
    /// A MaxMind-format database (GeoLite2/GeoIP2 Country or City, or one of your own)
    /// placing clients no region's client networks hold, before --default-region.
    #[arg(long, env = "ZEITWORK_DNS_GEOIP_DATABASE", value_name = "FILE")]
    geoip_database: Option<PathBuf>,
    /// A country or continent code of the database's records and its region (`DE=eu-1`,
    /// `EU=eu-1`; a country's code wins over its continent's); repeatable. A record may
    /// instead name its region itself, in a `zeitwork_region` string.
    #[arg(
        long = "geoip-region",
        value_name = "CODE=REGION",
        env = "ZEITWORK_DNS_GEOIP_REGIONS",
        value_delimiter = ',',
        value_parser = parse_code_region
    )]
    geoip_regions: Vec<(String, String)>,
    /// The hostname health checks ask for (SNI and Host): one every edge holds a
    /// certificate for [default: health.<base domain>, under the base domain's wildcard].
    #[arg(long, env = "ZEITWORK_DNS_CHECK_HOST")]
    check_host: Option<String>,
    /// The HTTPS port probed on each region address.
    #[arg(long, env = "ZEITWORK_DNS_CHECK_PORT", default_value_t = 443)]
    check_port: u16,
    /// PEM roots trusted besides the web's, for edges with certificates of a private CA.
    #[arg(long, env = "ZEITWORK_DNS_CHECK_CA_BUNDLE", value_name = "FILE")]
    check_ca_bundle: Option<PathBuf>,
    /// Milliseconds between health check rounds.
    #[arg(
        long,
        env = "ZEITWORK_DNS_CHECK_INTERVAL_MS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(100..=60_000)
    )]
    check_interval_ms: u64,
    /// The longest one probe may take, in milliseconds.
    #[arg(
        long,
        env = "ZEITWORK_DNS_CHECK_TIMEOUT_MS",
        default_value_t = 2000,
        value_parser = clap::value_parser!(u64).range(100..=30_000)
    )]
    check_timeout_ms: u64,
    /// Serve Prometheus metrics (`zeitwork_dns_answers_total`, `zeitwork_dns_address_up`)
    /// at `http://ADDR/metrics`.
    #[arg(long, env = "ZEITWORK_DNS_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<String>,
}

impl DnsArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let fqdn = |name: &str, what: &str| {
            hickory_proto_name(name).with_context(|| format!("{what} {name:?} is not a DNS name"))
        };
        let origin = fqdn(&self.base_domain, "--base-domain")?;
        // NAME or NAME=IP: a name server inside the zone is answered with its own
        // addresses (resolvers trust that answer over the parent's glue), so it needs them.
        let mut nameservers = Vec::new();
        let mut fixed = Vec::new();
        for entry in &self.nameservers {
            let (name, address) = match entry.split_once('=') {
                Some((name, ip)) => (name, Some(ip)),
                None => (entry.as_str(), None),
            };
            let name = fqdn(name, "--nameserver")?;
            match address {
                Some(ip) => {
                    let ip: std::net::IpAddr = ip.parse().with_context(|| {
                        format!("--nameserver {entry:?}: {ip:?} is not an IP address")
                    })?;
                    fixed.push((name.clone(), ip));
                }
                None if origin.zone_of(&name) && !fixed.iter().any(|(n, _)| *n == name) => {
                    anyhow::bail!(
                        "--nameserver {entry}: a name server inside the zone needs its address, \
                         as NAME=IP (repeat for each address)"
                    )
                }
                None => {}
            }
            if !nameservers.contains(&name) {
                nameservers.push(name);
            }
        }
        let host = self
            .check_host
            .clone()
            .unwrap_or_else(|| format!("health.{}", self.base_domain.trim_end_matches('.')));
        let host = ServerName::try_from(host.clone())
            .with_context(|| format!("--check-host {host:?} is not a hostname"))?;
        let roots = zeitwork_certs::roots(self.check_ca_bundle.as_deref())
            .map_err(|reason| anyhow::anyhow!("cannot read --check-ca-bundle: {reason}"))?;
        let tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .context("TLS versions")?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let geo = match &self.geoip_database {
            Some(path) => {
                let regions = self.geoip_regions.iter().cloned().collect();
                let geo = zeitwork_dns::Geo::open(path, regions).map_err(|reason| {
                    anyhow::anyhow!("cannot read --geoip-database {}: {reason}", path.display())
                })?;
                Some(geo)
            }
            None if !self.geoip_regions.is_empty() => {
                anyhow::bail!("--geoip-region needs --geoip-database")
            }
            None => None,
        };
        Ok(Config {
            zone: Zone {
                origin,
                nameservers,
                fixed,
                ttl: self.ttl,
            },
            check: Check {
                port: self.check_port,
                host,
                tls: Arc::new(tls),
                every: Duration::from_millis(self.check_interval_ms),
                timeout: Duration::from_millis(self.check_timeout_ms),
                fall: FALL,
                rise: RISE,
            },
            default_region: self.default_region.clone(),
            fallback_order: self.fallback_order.clone(),
            geo,
            listen: self.listen.clone(),
            resync_every: Duration::from_secs(5),
        })
    }
}

/// `CODE=REGION`: a two-letter country (ISO 3166) or continent code, upper case, and a
/// region name.
fn parse_code_region(s: &str) -> Result<(String, String), String> {
    let (code, region) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not CODE=REGION (e.g. DE=eu-1)"))?;
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("{code:?} is not a two-letter code like DE or EU"));
    }
    Ok((code.to_owned(), parse_region(region)?))
}

/// `name` as an absolute DNS name (a trailing dot added).
fn hickory_proto_name(name: &str) -> anyhow::Result<zeitwork_dns::handler::Name> {
    let mut parsed = zeitwork_dns::handler::Name::from_ascii(name)?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

pub async fn run(
    args: DnsArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = args.config()?;
    let store = Store::connect(&args.database_url)
        .await
        .context("connecting to Postgres")?;
    let bus = match &args.nats_url {
        Some(url) => Some(zeitwork_bus::NatsBus::connect(url).await?),
        None => None,
    };
    if let Some(addr) = &args.metrics_addr {
        crate::metrics::serve(addr).await?;
    }
    let dns = Dns::start(store, bus, config).await?;
    for addr in dns.local_addrs() {
        tracing::info!(%addr, zone = %args.base_domain, "DNS served (UDP and TCP)");
    }
    dns.serve(shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: DnsArgs,
    }

    #[test]
    fn bounds_and_names_are_checked() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["dns", "--database-url", "postgres://x"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv)
        };
        assert!(parse(&["--ttl", "0"]).is_err());
        assert!(parse(&["--ttl", "301"]).is_err());
        assert!(parse(&["--default-region", "Not A Region"]).is_err());
        assert!(parse(&["--geoip-region", "de=eu-1"]).is_err());
        assert!(parse(&["--geoip-region", "DE"]).is_err());
        let orphan = parse(&["--geoip-region", "DE=eu-1"]).unwrap();
        assert!(
            orphan.args.config().is_err(),
            "a code map without a database"
        );
        let missing = parse(&["--geoip-database", "/nonexistent.mmdb"]).unwrap();
        assert!(missing.args.config().is_err());
        let ok = parse(&[
            "--base-domain",
            "apps.example.com",
            "--nameserver",
            "ns1.example.com",
            "--nameserver",
            "ns2.apps.example.com=192.0.2.53",
        ])
        .unwrap();
        let config = ok.args.config().unwrap();
        assert_eq!(config.zone.origin.to_string(), "apps.example.com.");
        assert_eq!(config.check.host.to_str(), "health.apps.example.com");
        assert_eq!(config.zone.nameservers.len(), 2);
        assert_eq!(config.zone.fixed.len(), 1, "the one inside the zone");
        let bad = parse(&["--check-host", "not a host"]).unwrap();
        assert!(bad.args.config().is_err());
        let in_zone = parse(&[
            "--base-domain",
            "apps.example.com",
            "--nameserver",
            "ns.apps.example.com",
        ])
        .unwrap();
        let err = match in_zone.args.config() {
            Ok(_) => panic!("an in-zone name server without an address is refused"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("NAME=IP"), "{err}");
    }
}
