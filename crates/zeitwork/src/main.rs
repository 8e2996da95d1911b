//! `zeitwork`: one binary for the CLI, every server role and the single-machine
//! platform (`zeitwork up`). Each role lives in its own crate; this file only wires.

mod admin;
mod agent;
mod certs;
mod dns;
mod edge;
mod example;
mod guest_bins;
mod image;
mod install;
mod lb;
mod local;
mod metrics;
mod registry;
mod server;
mod settings;
mod up;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "zeitwork", version, about = "Deploy OCI images as microVMs", long_about = zeitwork_cli::LONG_ABOUT)]
struct Cli {
    #[command(flatten)]
    global: zeitwork_cli::Global,
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Run the whole platform on this machine (private Postgres and NATS unless
    /// DATABASE_URL / NATS_URL are set).
    Up(up::UpArgs),
    /// Run one server role of a cluster.
    #[command(subcommand)]
    Server(server::Role),
    /// Set this machine up to run one server role under systemd (docs/cluster.md).
    Install(install::InstallArgs),
    /// Operator maintenance.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// The edges' TLS certificates, in Postgres (needs DATABASE_URL).
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Prepare this machine as a node.
    #[command(subcommand)]
    Node(vm::NodeCommand),
    /// Build and push images without a container daemon.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Operator debugging: run one microVM directly on this node.
    #[command(subcommand)]
    Vm(vm::VmCommand),
    #[command(flatten)]
    Client(zeitwork_cli::Command),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async move {
        let result = match cli.command {
            Top::Client(command) => return zeitwork_cli::run(cli.global, command).await,
            Top::Up(args) => up::run(args).await,
            Top::Server(role) => server::run(role).await,
            Top::Install(args) => install::run(args).await,
            Top::Admin(command) => admin::run(command).await,
            Top::Certs(command) => certs::run(command).await,
            Top::Node(command) => vm::node(command).await,
            Top::Image(command) => image::run(command).await,
            Top::Vm(command) => match vm::vm(command).await {
                Ok(code) => return code,
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Server roles log to stderr; `RUST_LOG` overrides the default level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn,async_nats=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
