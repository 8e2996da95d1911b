use anyhow::Context;
use clap::Subcommand;
use tokio::net::TcpListener;
use zeitwork_store::Store;

use crate::settings::{Key, OperatorArgs};

#[derive(Subcommand)]
pub enum Role {
    /// The control plane API (stateless; run several behind a load balancer).
    Operator {
        #[command(flatten)]
        args: OperatorArgs,
        #[command(flatten)]
        registry: crate::registry::RegistryArgs,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Event log → NATS notifications. Run several: one leads, the others stand by.
    Listener {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        #[arg(long, env = "NATS_URL")]
        nats_url: String,
    },
    /// Node agent: runs this machine's instances as microVMs (needs root).
    Agent {
        #[command(flatten)]
        args: Box<crate::agent::AgentArgs>,
    },
    /// Edge proxy: serves every app's hostnames on HTTP and HTTPS, routing to healthy
    /// instances; orders certificates with ACME (needs ZEITWORK_CERT_KEY).
    Edge {
        #[command(flatten)]
        args: Box<crate::edge::EdgeArgs>,
    },
    /// The platform registry (docker-registry) of a cluster: trusts the operator's
    /// tokens, stores in a directory or an S3 bucket.
    Registry {
        #[command(flatten)]
        args: crate::registry::ServeArgs,
    },
    /// GeoDNS: authoritative for the base domain, answering each client with its nearest
    /// healthy region's public addresses.
    Dns {
        #[command(flatten)]
        args: Box<crate::dns::DnsArgs>,
    },
    /// L4 load balancer in front of several edges (relays TCP; terminates nothing).
    Lb {
        #[command(flatten)]
        args: crate::lb::LbArgs,
    },
}

pub async fn run(role: Role) -> anyhow::Result<()> {
    crate::init_logging();
    match role {
        Role::Operator {
            args,
            registry,
            database_url,
        } => {
            let store = Store::connect(&database_url)
                .await
                .context("connecting to Postgres")?;
            let secrets = Key::Secrets.load(None)?;
            let config = zeitwork_operator::Config {
                registry: registry.platform()?,
                ..args.config()
            };
            let app = zeitwork_operator::app(store.clone(), secrets, config).await?;
            let listener = TcpListener::bind(&args.listen)
                .await
                .with_context(|| format!("listening on {}", args.listen))?;
            tracing::info!(address = %args.listen, "operator API listening");
            // The monitor runs as long as the API; dropping it mid-round rolls its
            // transaction back, and another operator (or the next start) redoes it.
            let monitor = zeitwork_operator::monitor::run(
                store.clone(),
                args.config(),
                std::future::pending(),
            );
            // Every operator stands by to autoscale; one leads.
            let autoscaler =
                zeitwork_operator::autoscale::run(store, args.config(), std::future::pending());
            tokio::select! {
                served = zeitwork_operator::serve(listener, app, shutdown_signal()) => served?,
                () = monitor => {}
                () = autoscaler => {}
            }
            Ok(())
        }
        Role::Listener {
            database_url,
            nats_url,
        } => {
            let store = Store::connect(&database_url)
                .await
                .context("connecting to Postgres")?;
            let bus = zeitwork_bus::NatsBus::connect(&nats_url).await?;
            tracing::info!("listener standing by for leadership");
            zeitwork_listener::run(store, bus, shutdown_signal()).await;
            Ok(())
        }
        Role::Agent { args } => {
            crate::agent::run(&args, false, shutdown_signal()).await?;
            // Instances stay running for the next agent to adopt: leave without running
            // the destructors that would stop their VMs.
            tracing::info!("agent stopped; its instances keep running");
            std::process::exit(0)
        }
        Role::Edge { args } => crate::edge::server::run(*args, shutdown_signal()).await,
        Role::Registry { args } => crate::registry::serve(args).await,
        Role::Lb { args } => crate::lb::run(args, shutdown_signal()).await,
        Role::Dns { args } => crate::dns::run(*args, shutdown_signal()).await,
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
