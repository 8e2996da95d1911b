//! `secrets`: values go in, never come out. Nothing here prints a value, and the parsed
//! argument redacts itself in `Debug` so a log line cannot leak one either.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use zeitwork_api_types::{Secret, SecretList, SecretSet, SetSecret};

use super::list;
use crate::context::{Ctx, Scope};
use crate::error::{CliError, Result};
use crate::output::{self, Cell, Column, col};

#[derive(Debug, Default, clap::Subcommand)]
pub enum SecretsAction {
    /// List secret names and versions (values are never shown)
    #[default]
    List,
    /// Set secrets: NAME=VALUE..., or one NAME with --stdin
    Set {
        #[arg(required = true, value_name = "NAME=VALUE")]
        secrets: Vec<SecretArg>,
        /// Read the value of the one NAME from stdin (one trailing newline is dropped)
        #[arg(long)]
        stdin: bool,
        /// Do not restart the env's instances (batch changes, then `zeitwork restart`)
        #[arg(long)]
        no_restart: bool,
    },
    /// Remove a secret
    Unset {
        name: String,
        /// Do not restart the env's instances (batch changes, then `zeitwork restart`)
        #[arg(long)]
        no_restart: bool,
    },
}

/// `NAME=VALUE`, or a bare `NAME` for `--stdin`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretArg {
    pub name: String,
    pub value: Option<String>,
}

impl fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value {
            Some(_) => write!(f, "{}=<redacted>", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

impl FromStr for SecretArg {
    type Err = String;

    fn from_str(s: &str) -> Result<SecretArg, String> {
        let (name, value) = match s.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (s, None),
        };
        if name.is_empty() {
            return Err("the secret name before '=' is empty".into());
        }
        Ok(SecretArg {
            name: name.to_owned(),
            value,
        })
    }
}

const SECRETS: &[Column<Secret>] = &[
    col("NAME", |s| s.name.cell()),
    col("VERSION", |s| s.version.cell()),
    col("UPDATED", |s| s.updated_at.cell()),
];

pub async fn secrets(ctx: &Ctx, action: SecretsAction) -> Result<()> {
    match action {
        SecretsAction::List => {
            list::<SecretList>(ctx, ctx.path(Scope::Env, &["secrets"])?, SECRETS).await
        }
        SecretsAction::Set {
            secrets,
            stdin,
            no_restart,
        } => set(ctx, pairs(secrets, stdin)?, !no_restart).await,
        SecretsAction::Unset { name, no_restart } => {
            let path = ctx.path(Scope::Env, &["secrets", &name])?;
            let query = [("restart", (!no_restart).to_string())];
            ctx.client()?.delete_with(&path, &query).await?;
            if ctx.json() {
                return Ok(());
            }
            let then = match no_restart {
                true => "",
                false => "; the env's instances restart with the change",
            };
            output::emit(&format!("Unset secret {name}{then}\n"))
        }
    }
}

/// Checks the NAME=VALUE / `NAME --stdin` combinations and fills in the stdin value.
fn pairs(secrets: Vec<SecretArg>, stdin: bool) -> Result<Vec<(String, String)>> {
    if stdin {
        let [SecretArg { name, value: None }] = <[SecretArg; 1]>::try_from(secrets)
            .map_err(|_| usage("with --stdin, give exactly one NAME"))?
        else {
            return Err(usage("with --stdin, give NAME without =VALUE"));
        };
        let mut value = String::new();
        std::io::stdin()
            .read_to_string(&mut value)
            .map_err(CliError::io("reading the secret from stdin"))?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        return Ok(vec![(name, value)]);
    }
    secrets
        .into_iter()
        .map(|s| match s.value {
            Some(value) => Ok((s.name, value)),
            None => Err(usage(&format!(
                "secret {} has no value: use NAME=VALUE or NAME --stdin",
                s.name
            ))),
        })
        .collect()
}

fn usage(message: &str) -> CliError {
    CliError::Usage(message.to_owned())
}

/// One `PUT …/secrets/{name}` each, the last one restarting the env (unless not
/// `restart`), so several changes cost one rolling restart; prints names and versions,
/// never values.
async fn set(ctx: &Ctx, pairs: Vec<(String, String)>, restart: bool) -> Result<()> {
    let client = ctx.client()?;
    let last = pairs.len().saturating_sub(1);
    for (n, (name, value)) in pairs.into_iter().enumerate() {
        let body = SetSecret {
            value,
            restart: restart && n == last,
        };
        let answer: SecretSet = client
            .put(&ctx.path(Scope::Env, &["secrets", &name])?, &body)
            .await?;
        if ctx.json() {
            output::emit(&(output::json_line(&answer)? + "\n"))?;
        } else {
            output::emit(&format!(
                "Set secret {name} (version {})\n",
                answer.secret.version
            ))?;
            if n == last && restart {
                output::emit(&format!(
                    "Restarting {} instance(s) with it (each old one stops once its replacement is healthy)\n",
                    answer.restarted
                ))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<SecretArg> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn pairs_need_values_unless_one_name_comes_from_stdin() {
        let ok = pairs(args(&["A=1", "B="]), false).unwrap();
        assert_eq!(ok, [("A".into(), "1".into()), ("B".into(), String::new())]);
        let e = pairs(args(&["A=1", "B"]), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret B has no value: use NAME=VALUE or NAME --stdin"
        );
        // These fail before stdin is read.
        for bad in [&["A", "B"][..], &["A=1"][..]] {
            let e = pairs(args(bad), true).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::EXIT_USAGE, "{bad:?}");
        }
        assert!("=x".parse::<SecretArg>().is_err());
    }
}
