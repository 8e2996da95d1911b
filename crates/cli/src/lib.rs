//! The client side of the `zeitwork` command: every subcommand that talks to the operator
//! API (plus `manifest check`, which does not). The binary crate owns the
//! top-level parser and embeds this one, so the three public items are shaped for that:
//!
//! ```no_run
//! use clap::Parser;
//!
//! /// Zeitwork: a self-hostable PaaS
//! #[derive(Parser)]
//! #[command(name = "zeitwork", long_about = zeitwork_cli::LONG_ABOUT)]
//! struct Cli {
//!     #[command(flatten)]
//!     global: zeitwork_cli::Global,
//!     #[command(subcommand)]
//!     command: Top,
//! }
//!
//! #[derive(clap::Subcommand)]
//! enum Top {
//!     /// Run every role on this machine
//!     Up,
//!     #[command(flatten)]
//!     Client(zeitwork_cli::Command),
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let cli = Cli::parse();
//!     match cli.command {
//!         Top::Up => std::process::ExitCode::SUCCESS,
//!         Top::Client(command) => zeitwork_cli::run(cli.global, command).await,
//!     }
//! }
//! ```
//!
//! Exit codes are stable so scripts can branch on them:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | failure: the API refused or failed, cannot be reached, invalid manifest, I/O |
//! | 2 | usage: bad arguments (clap's own errors too), no org or app selected |
//! | 3 | not found (HTTP 404) |
//! | 4 | conflict, e.g. a name already taken (HTTP 409) |
//! | 5 | authentication: not logged in, or HTTP 401/403 |
//!
//! Errors print one line, `error: <message>` (plus ` (field: x)` when the API names the
//! field at fault), on stderr; results go to stdout, as JSON with `--json`.

mod client;
pub mod commands;
pub mod config;
mod context;
pub mod error;
mod output;
mod sse;

use std::path::PathBuf;
use std::process::ExitCode;

pub use error::CliError;

/// The exit code table as a literal, so it can be both a constant and part of [`LONG_ABOUT`].
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0  success
  1  failure: the API refused or failed, cannot be reached, invalid manifest, I/O
  2  usage: bad arguments, no org or app selected
  3  not found (HTTP 404)
  4  conflict, e.g. a name already taken (HTTP 409)
  5  authentication: not logged in, or HTTP 401/403
  `zeitwork exec` exits with the command's exit code once the command ran"
    };
}

/// The exit code table; every client subcommand's `--help` ends with it.
pub const EXIT_CODES_HELP: &str = exit_codes!();

/// Long help of the binary's top-level command (its `long_about`): how the client finds
/// the API, token, org and app, then the exit codes, which scripts depend on.
pub const LONG_ABOUT: &str = concat!(
    "Deploy OCI images as microVMs.

Client commands talk to the Zeitwork API. Log in once with `zeitwork login --api URL` (the \
token is saved in ~/.config/zeitwork/config.toml, mode 0600), or set ZEITWORK_API and \
ZEITWORK_TOKEN. Choose what to act on with --org, --app and --env (or ZEITWORK_ORG, \
ZEITWORK_APP, ZEITWORK_ENV); the app defaults to the one named in ./zeitwork.toml and the \
env to prod. Add --json to print the API's JSON instead of tables.

",
    exit_codes!()
);

/// Options every client command understands; `global = true` so they may come before or
/// after the subcommand. Each falls back to its environment variable, then to the config
/// file (see [`config`]): flag > environment > config file.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Base URL of the Zeitwork API [default: from the config file, else http://127.0.0.1:8080]
    #[arg(long, global = true, env = "ZEITWORK_API", value_name = "URL")]
    pub api: Option<String>,

    /// API token [default: from the config file, written by `zeitwork login`]
    #[arg(
        long,
        global = true,
        env = "ZEITWORK_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Org to act in [default: from the config file]
    #[arg(long, global = true, env = "ZEITWORK_ORG", value_name = "ORG")]
    pub org: Option<String>,

    /// App to act on [default: the `app` of ./zeitwork.toml]
    #[arg(long, global = true, env = "ZEITWORK_APP", value_name = "APP")]
    pub app: Option<String>,

    /// Environment of the app
    #[arg(
        long,
        global = true,
        env = "ZEITWORK_ENV",
        value_name = "ENV",
        default_value = "prod"
    )]
    pub env: String,

    /// Print the API's JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,

    /// Config file [default: $XDG_CONFIG_HOME/zeitwork/config.toml or ~/.config/zeitwork/config.toml]
    #[arg(long, global = true, env = "ZEITWORK_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl Default for Global {
    /// What parsing yields with no flags and an empty environment.
    fn default() -> Global {
        Global {
            api: None,
            token: None,
            org: None,
            app: None,
            env: "prod".to_owned(),
            json: false,
            config: None,
        }
    }
}

pub use commands::Command;

/// Runs one client command and turns the outcome into the process exit code, printing
/// `error: …` on failure. This is what the binary calls.
pub async fn run(global: Global, command: Command) -> ExitCode {
    match execute(global, command).await {
        Ok(()) => ExitCode::SUCCESS,
        // The reader stopped reading (`zeitwork events | head`): its choice, not a failure.
        Err(CliError::OutputClosed) => ExitCode::SUCCESS,
        // `zeitwork exec`: the command's own code, its own output already said why.
        Err(CliError::Exited(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Like [`run`], but hands back the error: for callers that want to report it themselves.
pub async fn execute(global: Global, command: Command) -> Result<(), CliError> {
    commands::execute(global, command).await
}
