//! What a command runs against: the resolved API URL, token, org, app and env, and the
//! API paths built from them. Resolution happens once, here, so every command agrees.

use std::path::{Path, PathBuf};

use crate::Global;
use crate::client::Client;
use crate::config::{self, Config, Settings};
use crate::error::{CliError, Result};

/// The manifest looked for in the current directory.
pub const MANIFEST: &str = zeitwork_core::manifest::FILE;

/// How deep into the org → app → env hierarchy an API path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/api/v1/...` (nodes, events, orgs).
    Platform,
    /// `/api/v1/orgs/{org}/...`
    Org,
    /// `/api/v1/orgs/{org}/apps/{app}/...`
    App,
    /// `/api/v1/orgs/{org}/apps/{app}/envs/{env}/...`
    Env,
}

/// Resolved settings for one command invocation.
#[derive(Debug)]
pub struct Ctx {
    pub global: Global,
    pub config_path: PathBuf,
    pub config: Config,
    pub settings: Settings,
}

impl Ctx {
    /// Reads the config file and applies precedence (flag > env > config).
    pub fn load(global: Global) -> Result<Ctx> {
        let config_path = config::path(&global)?;
        let config = config::load(&config_path)?;
        let settings = config::resolve(&global, &config);
        Ok(Ctx {
            global,
            config_path,
            config,
            settings,
        })
    }

    pub fn json(&self) -> bool {
        self.global.json
    }

    /// A client with the resolved token; without one the user is told to log in.
    pub fn client(&self) -> Result<Client> {
        let token = self
            .settings
            .token
            .as_deref()
            .ok_or(CliError::NotLoggedIn)?;
        Client::new(&self.settings.api, token)
    }

    pub fn org(&self) -> Result<&str> {
        self.settings.org.as_deref().ok_or_else(|| {
            CliError::Usage(
                "no org selected: pass --org NAME, set ZEITWORK_ORG, or log in with an org token"
                    .into(),
            )
        })
    }

    /// `--app`/`ZEITWORK_APP`, else the `app` of ./zeitwork.toml.
    pub fn app(&self) -> Result<String> {
        self.app_or(None)
    }

    /// Like [`Ctx::app`] with another fallback before ./zeitwork.toml (`deploy --manifest`).
    pub fn app_or(&self, fallback: Option<&str>) -> Result<String> {
        let from_flag = self.global.app.as_deref().filter(|a| !a.trim().is_empty());
        from_flag
            .or(fallback)
            .map(str::to_owned)
            .or_else(|| config::manifest_app(Path::new(MANIFEST)))
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "no app selected: pass --app NAME, set ZEITWORK_APP, or run in a directory with a {MANIFEST}"
                ))
            })
    }

    /// The API path for `rest` under `scope`, using the resolved org/app/env.
    /// Every API call needs a token, so a missing one is reported before a missing org.
    pub fn path(&self, scope: Scope, rest: &[&str]) -> Result<Vec<String>> {
        self.path_for_app(scope, None, rest)
    }

    /// Like [`Ctx::path`] with an app fallback (see [`Ctx::app_or`]).
    pub fn path_for_app(
        &self,
        scope: Scope,
        app: Option<&str>,
        rest: &[&str],
    ) -> Result<Vec<String>> {
        if self.settings.token.is_none() {
            return Err(CliError::NotLoggedIn);
        }
        let mut path = Vec::new();
        if scope != Scope::Platform {
            path.extend(["orgs".to_owned(), self.org()?.to_owned()]);
        }
        if matches!(scope, Scope::App | Scope::Env) {
            path.extend(["apps".to_owned(), self.app_or(app)?]);
        }
        if scope == Scope::Env {
            path.extend(["envs".to_owned(), self.global.env.clone()]);
        }
        path.extend(rest.iter().map(|s| (*s).to_owned()));
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(global: Global) -> Ctx {
        let settings = config::resolve(&global, &Config::default());
        Ctx {
            global,
            config_path: "unused".into(),
            config: Config::default(),
            settings,
        }
    }

    #[test]
    fn paths_follow_scope() {
        let c = ctx(Global {
            token: Some("t".into()),
            org: Some("acme".into()),
            app: Some("web shop".into()),
            env: "staging".into(),
            ..Global::default()
        });
        assert_eq!(c.path(Scope::Platform, &["nodes"]).unwrap(), ["nodes"]);
        assert_eq!(
            c.path(Scope::Env, &["routes", "r1"]).unwrap(),
            [
                "orgs", "acme", "apps", "web shop", "envs", "staging", "routes", "r1"
            ]
        );
    }

    #[test]
    fn missing_context_is_reported_in_order() {
        let e = ctx(Global::default()).path(Scope::Org, &[]).unwrap_err();
        assert!(matches!(e, CliError::NotLoggedIn), "token first: {e}");
        let e = ctx(Global {
            token: Some("t".into()),
            ..Global::default()
        })
        .path(Scope::Org, &["apps"])
        .unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
        assert!(e.to_string().starts_with("no org selected"), "{e}");
    }
}
