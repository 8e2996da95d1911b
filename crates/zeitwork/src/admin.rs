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
    }
}
