//! One error type for everything init does before the app runs: what init was doing
//! (the context) and why it failed. Its `Display` is the reason that follows
//! [`zeitwork_core::guest::FAILURE_LINE`] on the console, e.g.
//! `mounting /dev/vda on /mnt/lower: EINVAL: Invalid argument`.

use std::io;

use zeitwork_core::guest::ConfigError;

/// A failed step: `"{context}: {cause}"`.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {cause}")]
pub struct Error {
    pub context: String,
    pub cause: Cause,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// A system call failed (displayed as `EINVAL: Invalid argument`).
    #[error("{0}")]
    Sys(#[from] nix::Error),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Something in the config or the image that init cannot use.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(context: impl Into<String>, cause: impl Into<Cause>) -> Error {
        Error {
            context: context.into(),
            cause: cause.into(),
        }
    }

    /// An error with a plain-text cause.
    pub fn invalid(context: impl Into<String>, why: impl Into<String>) -> Error {
        Error::new(context, Cause::Invalid(why.into()))
    }
}

/// Adds what init was doing to a failed result.
pub trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T>;
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<Cause>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::new(what, e))
    }

    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::new(what(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_reads_like_the_console_contract() {
        let e: Result<()> = Err(nix::Error::EINVAL).context("mounting /dev/vda on /mnt/lower");
        let line = e.unwrap_err().to_string();
        assert!(
            line.starts_with("mounting /dev/vda on /mnt/lower: EINVAL"),
            "{line}"
        );
    }
}
