//! Private PostgreSQL and NATS servers run as child processes.
//!
//! `zeitwork up` (single-machine mode) needs a database and a message bus when the operator gives
//! no `DATABASE_URL` / `NATS_URL`: [`Postgres::start`] and [`Nats::start`] run them under its data
//! directory, keep their state across restarts and refuse to start twice on the same directory.
//! Test suites need real, isolated servers on random ports: [`Postgres::throwaway`],
//! [`Nats::throwaway`], [`Registry::throwaway`] (an OCI registry) and [`ChallTestSrv`] (DNS
//! with settable TXT records) give them, and remove everything when dropped.
//!
//! The servers are Debian's `postgresql`, `nats-server` and `docker-registry` packages
//! (`scripts/setup.sh` installs them); nothing is downloaded at run time.

mod challtestsrv;
mod github;
mod nats;
mod postgres;
mod process;
mod registry;
mod s3;
pub mod workspace;

use std::path::PathBuf;

pub use challtestsrv::{ChallTestSrv, listening};
pub use github::{GitHubStandIn, Hook, Pushed};
pub use nats::Nats;
pub use postgres::Postgres;
pub use process::{free_port, stop_orphan};
pub use registry::Registry;
pub use s3::S3StandIn;

/// Why a private server could not be started, used or stopped.
///
/// Every message says what to do about it: these errors reach the operator of `zeitwork up`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A program the server needs is not installed.
    #[error("{binary} not found: {hint}")]
    NotInstalled {
        /// The program looked for.
        binary: &'static str,
        /// How to install it.
        hint: &'static str,
    },
    /// Another process already runs this server on the same directory.
    #[error(
        "{service} is already running in {} (pid {pid}): stop the other `zeitwork up` that uses this \
         directory (or that process), or choose another data directory",
        dir.display()
    )]
    AlreadyRunning {
        /// `PostgreSQL`, `NATS` or `docker-registry`.
        service: &'static str,
        /// The directory given to `start`.
        dir: PathBuf,
        /// The process found running.
        pid: u32,
    },
    /// The TCP port asked for is taken.
    #[error(
        "port {port} on 127.0.0.1 is already in use, so {service} cannot listen on it: stop what \
         uses it or choose another port"
    )]
    PortInUse {
        /// `PostgreSQL`, `NATS` or `docker-registry`.
        service: &'static str,
        /// The port asked for.
        port: u16,
    },
    /// The server was launched but did not come up.
    #[error("{service} did not start: {reason}; last lines of {}:\n{log_tail}", log.display())]
    StartFailed {
        /// `PostgreSQL`, `NATS` or `docker-registry`.
        service: &'static str,
        /// What went wrong, as far as we can tell from outside.
        reason: String,
        /// The server's log file.
        log: PathBuf,
        /// The end of that log, where the server explains itself.
        log_tail: String,
    },
    /// A helper program (initdb, pg_ctl, psql, useradd, ...) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// How it exited.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A database name that would need quoting was given to [`Postgres::create_database`].
    #[error("invalid database name {0:?}: use 1 to 63 ASCII letters, digits and underscores")]
    InvalidName(String),
}

impl ServiceError {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServiceError {
        let context = context.into();
        move |source| ServiceError::Io { context, source }
    }
}
