use anyhow::Context;
use clap::Subcommand;
use zeitwork_store::Store;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Empty every projection table and replay the event log into it.
    RebuildProjections {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Make the platform's first admin token (a cluster's first step; `zeitwork up` makes
    /// its own). Printed once; refused when the platform has a token already.
    BootstrapToken {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
}

pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::RebuildProjections { database_url } => {
            let store = Store::connect(&database_url)
                .await
                .context("connecting to Postgres")?;
            let started = std::time::Instant::now();
            let applied = zeitwork_store::rebuild::rebuild(&store).await?;
            println!(
                "rebuilt projections from {applied} events in {:.2?}",
                started.elapsed()
            );
            Ok(())
        }
        AdminCommand::BootstrapToken { database_url } => {
            let store = Store::connect(&database_url)
                .await
                .context("connecting to Postgres")?;
            match zeitwork_operator::auth::bootstrap_platform_token(&store).await? {
                Some(token) => {
                    println!("{token}");
                    eprintln!(
                        "the platform's first admin token: shown this once, keep it secret                          (`zeitwork login --token …`, then `zeitwork tokens create` for others)"
                    );
                    Ok(())
                }
                None => anyhow::bail!(
                    "the platform has tokens already; an admin makes more with `zeitwork tokens create`"
                ),
            }
        }
    }
}
