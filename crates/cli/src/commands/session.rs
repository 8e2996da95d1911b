//! `login` and `logout`: the only commands that write the config file.

use std::io::{BufRead, IsTerminal, Read, Write};

use zeitwork_api_types::Whoami;

use crate::client::Client;
use crate::config::{self, Config};
use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::output;

/// Verifies the token with `GET /api/v1/whoami` before saving anything, so a typo never
/// replaces a working login. Saves the API URL, the token and the token's org.
pub async fn login(ctx: &Ctx) -> Result<()> {
    let api = ctx.settings.api.clone();
    // Only a token given now counts: the saved one is what a re-login replaces.
    let token = match ctx
        .global
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(token) => token.to_owned(),
        None => read_token()?,
    };
    let who: Whoami = Client::new(&api, &token)?
        .get(&["whoami".to_owned()])
        .await?;
    let token_org = who.org.clone();
    let config = Config {
        api: Some(api.clone()),
        token: Some(token),
        org: token_org.clone().or_else(|| ctx.settings.org.clone()),
        ..ctx.config.clone()
    };
    config::save(&ctx.config_path, &config)?;
    if ctx.json() {
        return output::emit_json(&who);
    }
    let role = who.role.as_str();
    let line = match token_org {
        Some(org) => format!("Logged in to {api} as {role} of org {org}\n"),
        None => format!("Logged in to {api} as {role} with a platform token (no org)\n"),
    };
    output::emit(&line)
}

/// Removes the token but keeps the API URL and org, so logging in again is short.
pub fn logout(ctx: &Ctx) -> Result<()> {
    let mut config = ctx.config.clone();
    let had_token = config.token.take().is_some();
    if had_token {
        config::save(&ctx.config_path, &config)?;
    }
    if std::env::var_os("ZEITWORK_TOKEN").is_some() {
        eprintln!("note: ZEITWORK_TOKEN is set in the environment and still applies");
    }
    let path = ctx.config_path.display();
    output::emit(&if had_token {
        format!("Logged out: removed the token from {path}\n")
    } else {
        format!("Not logged in: {path} holds no token\n")
    })
}

/// The token from piped stdin (`echo $T | zeitwork login`), else from a prompt that
/// does not echo it.
fn read_token() -> Result<String> {
    let stdin = std::io::stdin();
    let token = if stdin.is_terminal() {
        eprint!("API token: ");
        let _ = std::io::stderr().flush();
        let _quiet = EchoOff::new(&stdin);
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(CliError::io("reading the token"))?;
        eprintln!();
        line
    } else {
        let mut all = String::new();
        stdin
            .lock()
            .read_to_string(&mut all)
            .map_err(CliError::io("reading the token from stdin"))?;
        all
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(CliError::Usage(
            "no token given: pass --token or pipe it on stdin".into(),
        ));
    }
    Ok(token.to_owned())
}

/// Turns terminal echo off while alive; restores the previous settings on drop.
struct EchoOff<'a> {
    stdin: &'a std::io::Stdin,
    saved: Option<rustix::termios::Termios>,
}

impl<'a> EchoOff<'a> {
    fn new(stdin: &'a std::io::Stdin) -> EchoOff<'a> {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let saved = tcgetattr(stdin).ok();
        if let Some(saved) = &saved {
            let mut quiet = saved.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            let _ = tcsetattr(stdin, OptionalActions::Now, &quiet);
        }
        EchoOff { stdin, saved }
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                self.stdin,
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    //! A STAND-IN server: a tiny axum router that answers `whoami` and one 404, to check
    //! client-side behaviour (config written by `login`, error → exit code). It is not the
    //! operator; the real server is tested end-to-end elsewhere.

    use std::os::unix::fs::PermissionsExt;

    use axum::Json;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use serde_json::{Value, json};

    use super::*;
    use crate::commands::{Command, apps::AppsAction};
    use crate::{Global, error};

    async fn stand_in_server() -> String {
        async fn whoami(headers: HeaderMap) -> (StatusCode, Json<Value>) {
            match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                Some("Bearer zw_good") => (
                    StatusCode::OK,
                    Json(json!({
                        "token_id": "0195f0a2-7c1e-7d3a-9b2c-4e5f6a7b8c9d", "caller": "org",
                        "org": "acme", "role": "admin", "node_id": null
                    })),
                ),
                _ => (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"error": {"code": "unauthenticated", "message": "unknown token"}})),
                ),
            }
        }
        async fn missing_app() -> (StatusCode, Json<Value>) {
            let body = json!({"error": {"code": "not_found", "message": "app nope not found"}});
            (StatusCode::NOT_FOUND, Json(body))
        }
        let router = axum::Router::new()
            .route("/api/v1/whoami", get(whoami))
            .route("/api/v1/orgs/acme/apps/nope", get(missing_app));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    fn global(config: &std::path::Path) -> Global {
        // Built directly (not parsed) so a developer's ZEITWORK_* variables cannot leak in.
        Global {
            config: Some(config.to_owned()),
            ..Global::default()
        }
    }

    #[tokio::test]
    async fn login_saves_config_and_404_exits_3() {
        let api = stand_in_server().await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zeitwork/config.toml");

        let bad = Global {
            api: Some(api.clone()),
            token: Some("zw_bad".into()),
            ..global(&path)
        };
        let e = crate::execute(bad, Command::Login).await.unwrap_err();
        assert_eq!(e.exit_code(), error::EXIT_AUTH, "{e}");
        assert!(!path.exists(), "a rejected token is not saved");

        let good = Global {
            api: Some(api.clone()),
            token: Some("zw_good".into()),
            ..global(&path)
        };
        crate::execute(good, Command::Login).await.unwrap();
        let saved = config::load(&path).unwrap();
        assert_eq!(saved.api.as_deref(), Some(api.as_str()));
        assert_eq!(saved.token.as_deref(), Some("zw_good"));
        assert_eq!(saved.org.as_deref(), Some("acme"));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // Everything else now comes from the saved config.
        let show = Command::Apps {
            action: Some(AppsAction::Show {
                name: Some("nope".into()),
            }),
        };
        let e = crate::execute(global(&path), show).await.unwrap_err();
        assert_eq!(
            (e.to_string().as_str(), e.exit_code()),
            ("app nope not found", 3)
        );

        crate::execute(global(&path), Command::Logout)
            .await
            .unwrap();
        assert_eq!(config::load(&path).unwrap().token, None);
        let e = crate::execute(global(&path), Command::Status)
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), error::EXIT_AUTH, "{e}");
    }
}
