//! `zeitwork certs`: the operator's certificates, straight in Postgres (like `zeitwork
//! admin`), so they work before any edge or API runs. Every edge picks an import up
//! within seconds (at once with NATS).

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use zeitwork_store::Store;

use crate::settings::Key;

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Store a certificate (typically `*.<base domain>`) for every edge to serve; it
    /// replaces an earlier import for the same hostnames.
    Import {
        /// The chain in PEM, leaf first.
        #[arg(long, value_name = "CHAIN.PEM")]
        cert: PathBuf,
        /// The leaf's private key in PEM.
        #[arg(long, value_name = "KEY.PEM")]
        key: PathBuf,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Every certificate the edges serve: hostnames, expiry and source.
    List {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
}

pub async fn run(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Import {
            cert,
            key,
            database_url,
        } => {
            let (chain, key) = (read(&cert)?, read(&key)?);
            let secrets =
                Key::Certificates.required("certificate keys are stored sealed with it")?;
            let store = connect(&database_url).await?;
            let imported = zeitwork_certs::import(&store, &secrets, &chain, &key).await?;
            println!("imported certificate {}", imported.certificate_id);
            println!("  hostnames: {}", imported.hostnames.join(", "));
            println!("  expires:   {}", imported.not_after.to_rfc3339());
            for old in &imported.replaced {
                println!("  replaced:  {old}");
            }
            Ok(())
        }
        CertsCommand::List { database_url } => {
            let store = connect(&database_url).await?;
            let rows: Vec<(uuid::Uuid, Vec<String>, DateTime<Utc>, String)> = sqlx::query_as(
                "SELECT id, hostnames, not_after, source FROM certificates \
                 ORDER BY hostnames, not_after",
            )
            .fetch_all(store.pool())
            .await
            .context("reading the certificates table")?;
            if rows.is_empty() {
                println!("no certificates (import one with `zeitwork certs import`)");
            }
            for (id, hostnames, not_after, source) in rows {
                let expired = if not_after <= Utc::now() {
                    " (expired)"
                } else {
                    ""
                };
                println!(
                    "{id}  {source:<8}  {}{expired}  {}",
                    not_after.format("%Y-%m-%d %H:%M UTC"),
                    hostnames.join(",")
                );
            }
            Ok(())
        }
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

async fn connect(database_url: &str) -> anyhow::Result<Store> {
    Store::connect(database_url)
        .await
        .context("connecting to Postgres")
}
