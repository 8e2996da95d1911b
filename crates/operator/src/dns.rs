//! TXT lookups for custom-domain ownership checks (see `zeitwork_core::ownership`).
//!
//! A resolver is built for every check rather than kept: checks are rare (a user runs
//! `zeitwork domains verify`), and a long-lived resolver would cache the "no such record"
//! answer of a first, too early check and refuse the retry the error message asks for.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

/// Why DNS could not say whether a record exists (an absent record is no error).
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(
        "cannot read this machine's DNS configuration (/etc/resolv.conf): {0}; start the \
         operator with --dns-server IP:PORT (ZEITWORK_DNS_SERVER) to name a resolver"
    )]
    SystemConfig(String),

    #[error("cannot build a DNS resolver for {server}: {reason}")]
    Resolver { server: String, reason: String },

    #[error("the DNS lookup of TXT {name} failed ({reason}); retry shortly")]
    Lookup { name: String, reason: String },
}

/// How long one query may take, and how many tries: the API request waits for them.
const TIMEOUT: Duration = Duration::from_secs(3);
const ATTEMPTS: usize = 2;

/// The TXT values at `name` (absolute, with its trailing dot), each the concatenation of
/// one record's character-strings; empty when the name does not exist or holds no TXT.
/// `server` is the resolver to ask; `None` means the system's.
pub async fn txt_values(server: Option<SocketAddr>, name: &str) -> Result<Vec<String>, DnsError> {
    let resolver = resolver(server)?;
    let lookup = match resolver.txt_lookup(name).await {
        Ok(lookup) => lookup,
        Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
        Err(e) => {
            return Err(DnsError::Lookup {
                name: name.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    Ok(lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver, DnsError> {
    let mut builder = match server {
        None => {
            TokioResolver::builder_tokio().map_err(|e| DnsError::SystemConfig(e.to_string()))?
        }
        Some(addr) => {
            let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                .into_iter()
                .map(|mut c| {
                    c.port = addr.port();
                    c
                })
                .collect();
            let server = NameServerConfig::new(addr.ip(), true, connections);
            let config = ResolverConfig::from_name_servers(vec![server]);
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        }
    };
    let options: &mut ResolverOpts = builder.options_mut();
    options.timeout = TIMEOUT;
    options.attempts = ATTEMPTS;
    builder.build().map_err(|e| DnsError::Resolver {
        server: server.map_or_else(|| "the system resolver".into(), |a| a.to_string()),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without `--dns-server` the system's resolver is used; building it reads
    /// /etc/resolv.conf but asks nothing, so this needs no network.
    #[tokio::test]
    async fn the_system_resolver_is_built_from_resolv_conf() {
        if !std::path::Path::new("/etc/resolv.conf").exists() {
            panic!("cannot run: this machine has no /etc/resolv.conf");
        }
        resolver(None).unwrap();
        resolver(Some("127.0.0.1:53".parse().unwrap())).unwrap();
    }
}
