//! The client subcommands: [`Command`] (what clap parses) and the helpers every resource
//! shares (list, show, create, remove), so each command file only says what differs:
//! the path, the body and which columns to show.

pub mod access;
pub mod apps;
pub mod build;
pub mod deploy;
pub mod events;
pub mod exec;
pub mod local;
pub mod logs;
pub mod network;
pub mod nodes;
pub mod quotas;
pub mod regions;
pub mod registry;
pub mod secrets;
pub mod session;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::Page;
use crate::context::Ctx;
use crate::error::Result;
use crate::output::{self, Column};
use crate::{EXIT_CODES_HELP, Global};

// Documented with `cfg_attr(doc, …)` rather than `///`: clap turns a Subcommand enum's
// doc comment into the about text of whatever command flattens it, i.e. the binary's.
#[cfg_attr(
    doc,
    doc = "The client subcommands, flattened by the binary into its own subcommand enum.",
    doc = "Commands with a `[list]` action list when the action is left out (`zeitwork apps`);",
    doc = "each one's `--help` ends with the exit code table, which scripts depend on."
)]
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Verify a token (--token, ZEITWORK_TOKEN, stdin or a prompt) and save it with the API URL
    #[command(after_long_help = EXIT_CODES_HELP)]
    Login,
    /// Remove the saved token from the config file
    #[command(after_long_help = EXIT_CODES_HELP)]
    Logout,
    /// List, create or delete orgs (creating and deleting need a platform token)
    #[command(after_long_help = EXIT_CODES_HELP)]
    Orgs {
        #[command(subcommand)]
        action: Option<apps::OrgsAction>,
    },
    /// List, create, delete or show apps
    #[command(after_long_help = EXIT_CODES_HELP)]
    Apps {
        #[command(subcommand)]
        action: Option<apps::AppsAction>,
    },
    /// List, create or delete environments of the app
    #[command(after_long_help = EXIT_CODES_HELP)]
    Envs {
        #[command(subcommand)]
        action: Option<apps::EnvsAction>,
    },
    /// Deploy an image (pinned by digest) with ./zeitwork.toml to the env
    #[command(after_long_help = EXIT_CODES_HELP)]
    Deploy(deploy::DeployArgs),
    /// Show the env's URL, release and instances
    #[command(after_long_help = EXIT_CODES_HELP)]
    Status,
    /// List or show the app's releases
    #[command(after_long_help = EXIT_CODES_HELP)]
    Releases {
        #[command(subcommand)]
        action: Option<deploy::ReleasesAction>,
    },
    /// Roll the env back to an earlier release (default: the one before the active one)
    #[command(after_long_help = EXIT_CODES_HELP)]
    Rollback(deploy::RollbackArgs),
    /// Restart the env's instances with its current secrets: each is replaced by a new
    /// one, and stops once that one is healthy
    #[command(after_long_help = EXIT_CODES_HELP)]
    Restart(deploy::RestartArgs),
    /// Run a command in a running instance, e.g. `zeitwork exec -- ls /`, or `-it -- sh`
    /// for a shell; exits with the command's exit code
    #[command(after_long_help = EXIT_CODES_HELP)]
    Exec(exec::ExecArgs),
    /// Set the number of instances of process types, e.g. `zeitwork scale web=3`
    #[command(after_long_help = EXIT_CODES_HELP)]
    Scale(deploy::ScaleArgs),
    /// Set, list or unset the env's secrets (values are never shown)
    #[command(after_long_help = EXIT_CODES_HELP)]
    Secrets {
        #[command(subcommand)]
        action: Option<secrets::SecretsAction>,
    },
    /// List, add or remove the env's routes
    #[command(after_long_help = EXIT_CODES_HELP)]
    Routes {
        #[command(subcommand)]
        action: Option<network::RoutesAction>,
    },
    /// List, add, verify or remove the env's custom domains
    #[command(after_long_help = EXIT_CODES_HELP)]
    Domains {
        #[command(subcommand)]
        action: Option<network::DomainsAction>,
    },
    /// List, show or drain nodes, or create a join token for a new one
    #[command(after_long_help = EXIT_CODES_HELP)]
    Nodes {
        #[command(subcommand)]
        action: Option<nodes::NodesAction>,
    },
    /// List regions, or set the public addresses and client networks DNS answers with
    #[command(after_long_help = EXIT_CODES_HELP)]
    Regions {
        #[command(subcommand)]
        action: Option<regions::RegionsAction>,
    },
    /// List the event log, or follow it live with -f
    #[command(after_long_help = EXIT_CODES_HELP)]
    Events(events::EventsArgs),
    /// List the env's builds from source, or show one
    #[command(after_long_help = EXIT_CODES_HELP)]
    Builds {
        #[command(subcommand)]
        action: Option<build::BuildsAction>,
    },
    /// Show the platform registry, or log docker, podman, buildah and skopeo in to it
    #[command(after_long_help = EXIT_CODES_HELP)]
    Registry {
        #[command(subcommand)]
        action: Option<registry::RegistryAction>,
    },
    /// Show the org's quotas and usage, or set its own (platform token)
    #[command(after_long_help = EXIT_CODES_HELP)]
    Quotas {
        #[command(subcommand)]
        action: Option<quotas::QuotasAction>,
    },
    /// List, create or revoke the org's API tokens
    #[command(after_long_help = EXIT_CODES_HELP)]
    Tokens {
        #[command(subcommand)]
        action: Option<access::TokensAction>,
    },
    /// List, add or remove the org's users
    #[command(after_long_help = EXIT_CODES_HELP)]
    Users {
        #[command(subcommand)]
        action: Option<access::UsersAction>,
    },
    /// Work with zeitwork.toml locally
    #[command(after_long_help = EXIT_CODES_HELP)]
    Manifest {
        #[command(subcommand)]
        action: local::ManifestAction,
    },
    /// Show what the app's instances printed (in the env), or follow it live with -f
    #[command(after_long_help = EXIT_CODES_HELP)]
    Logs(logs::LogsArgs),
}

/// Runs a command. Local commands never read the config, so a broken config
/// file cannot stop `zeitwork manifest check`.
pub async fn execute(global: Global, command: Command) -> Result<()> {
    let ctx = || Ctx::load(global.clone());
    match command {
        Command::Login => session::login(&ctx()?).await,
        Command::Logout => session::logout(&ctx()?),
        Command::Orgs { action } => apps::orgs(&ctx()?, action.unwrap_or_default()).await,
        Command::Apps { action } => apps::apps(&ctx()?, action.unwrap_or_default()).await,
        Command::Envs { action } => apps::envs(&ctx()?, action.unwrap_or_default()).await,
        Command::Deploy(args) => deploy::deploy(&ctx()?, args).await,
        Command::Status => deploy::status(&ctx()?).await,
        Command::Releases { action } => deploy::releases(&ctx()?, action.unwrap_or_default()).await,
        Command::Rollback(args) => deploy::rollback(&ctx()?, args).await,
        Command::Restart(args) => deploy::restart(&ctx()?, args).await,
        Command::Exec(args) => exec::exec(&ctx()?, args).await,
        Command::Scale(args) => deploy::scale(&ctx()?, args).await,
        Command::Secrets { action } => secrets::secrets(&ctx()?, action.unwrap_or_default()).await,
        Command::Routes { action } => network::routes(&ctx()?, action.unwrap_or_default()).await,
        Command::Domains { action } => network::domains(&ctx()?, action.unwrap_or_default()).await,
        Command::Nodes { action } => nodes::nodes(&ctx()?, action.unwrap_or_default()).await,
        Command::Regions { action } => regions::regions(&ctx()?, action.unwrap_or_default()).await,
        Command::Events(args) => events::events(&ctx()?, args).await,
        Command::Builds { action } => build::builds(&ctx()?, action.unwrap_or_default()).await,
        Command::Registry { action } => {
            registry::registry(&ctx()?, action.unwrap_or_default()).await
        }
        Command::Quotas { action } => quotas::quotas(&ctx()?, action.unwrap_or_default()).await,
        Command::Tokens { action } => access::tokens(&ctx()?, action.unwrap_or_default()).await,
        Command::Users { action } => access::users(&ctx()?, action.unwrap_or_default()).await,
        Command::Manifest { action } => local::manifest(&global, action),
        Command::Logs(args) => logs::logs(&ctx()?, args).await,
    }
}

/// Lists every row of the `P` pages at `path` as a table (or, with `--json`, one page
/// holding them all).
pub(crate) async fn list<P: Page>(
    ctx: &Ctx,
    path: Vec<String>,
    columns: &[Column<P::Row>],
) -> Result<()> {
    let page: P = ctx.client()?.list(&path).await?;
    if ctx.json() {
        return output::emit_json(&page);
    }
    let (rows, _) = page.into_parts();
    if rows.is_empty() {
        output::emit(&format!("no {}\n", P::ROWS))
    } else {
        output::emit(&output::items_table(columns, &rows))
    }
}

/// GETs one `T` and prints it as `key: value` lines (or the JSON).
pub(crate) async fn show<T: DeserializeOwned + Serialize>(
    ctx: &Ctx,
    path: Vec<String>,
    columns: &[Column<T>],
) -> Result<T> {
    let answer: T = ctx.client()?.get(&path).await?;
    if ctx.json() {
        output::emit_json(&answer)?;
    } else {
        output::emit(&output::object(columns, &answer))?;
    }
    Ok(answer)
}

/// POSTs a create (with an idempotency key) and prints `done` (or the JSON). Returns the
/// answer for commands that have more to say, like the TXT record of a new domain.
pub(crate) async fn create<B: Serialize, T: DeserializeOwned + Serialize>(
    ctx: &Ctx,
    path: Vec<String>,
    body: &B,
    done: &str,
) -> Result<T> {
    let answer: T = ctx.client()?.post(&path, body).await?;
    if ctx.json() {
        output::emit_json(&answer)?;
    } else {
        output::emit(&format!("{done}\n"))?;
    }
    Ok(answer)
}

/// DELETEs and prints `done` (nothing with `--json`: the API answers 204 without a body).
pub(crate) async fn remove(ctx: &Ctx, path: Vec<String>, done: &str) -> Result<()> {
    ctx.client()?.delete(&path).await?;
    if ctx.json() {
        Ok(())
    } else {
        output::emit(&format!("{done}\n"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::commands::deploy::ScaleTarget;
    use crate::commands::secrets::{SecretArg, SecretsAction};
    use crate::error::EXIT_USAGE;

    /// Mirrors how the binary embeds us: `Global` flattened, `Command` flattened.
    #[derive(Debug, Parser)]
    #[command(name = "zeitwork")]
    struct Cli {
        #[command(flatten)]
        global: Global,
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Top {
        /// Stands in for the binary's own subcommands.
        Up,
        #[command(flatten)]
        Client(Command),
    }

    fn parse(args: &str) -> Result<(Global, Command), clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("zeitwork").chain(args.split_whitespace()))?;
        match cli.command {
            Top::Client(command) => Ok((cli.global, command)),
            Top::Up => panic!("not a client command"),
        }
    }

    #[test]
    fn the_embedding_shape_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn scale_counts_parse_and_bad_ones_are_usage_errors() {
        let (_, command) = parse("scale web=3 worker=0").unwrap();
        let Command::Scale(args) = command else {
            panic!("{command:?}")
        };
        assert_eq!(
            args.counts,
            [
                ScaleTarget {
                    process: "web".into(),
                    instances: 3
                },
                ScaleTarget {
                    process: "worker".into(),
                    instances: 0
                },
            ]
        );
        for bad in [
            "scale web=x",
            "scale web",
            "scale =2",
            "scale web=-1",
            "scale",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), i32::from(EXIT_USAGE), "{bad}");
        }
    }

    #[test]
    fn domains_verify_takes_a_hostname() {
        let (_, command) = parse("domains verify shop.example.test").unwrap();
        let Command::Domains {
            action: Some(network::DomainsAction::Verify { hostname }),
        } = command
        else {
            panic!("{command:?}")
        };
        assert_eq!(hostname, "shop.example.test");
        let e = parse("domains verify").unwrap_err();
        assert_eq!(e.exit_code(), i32::from(EXIT_USAGE));
    }

    #[test]
    fn secrets_set_takes_pairs_or_one_name_with_stdin() {
        let (_, command) = parse("secrets set A=1 B=x=y").unwrap();
        let Command::Secrets {
            action:
                Some(SecretsAction::Set {
                    secrets,
                    stdin: false,
                    no_restart: false,
                }),
        } = command
        else {
            panic!("{command:?}")
        };
        assert_eq!(
            secrets,
            [
                SecretArg {
                    name: "A".into(),
                    value: Some("1".into())
                },
                SecretArg {
                    name: "B".into(),
                    value: Some("x=y".into())
                },
            ]
        );
        assert_eq!(
            format!("{:?}", secrets[0]),
            "A=<redacted>",
            "Debug never shows a value"
        );
        assert!(parse("secrets set TOKEN --stdin").is_ok());
        assert!(parse("secrets set").is_err());
    }

    #[test]
    fn global_options_go_anywhere_and_lists_are_the_default() {
        let (global, command) = parse("--org acme apps --json --env staging").unwrap();
        assert!(matches!(command, Command::Apps { action: None }));
        assert_eq!((global.org.as_deref(), global.json), (Some("acme"), true));
        assert_eq!(global.env, "staging");
        let (_, command) =
            parse("routes add --process web --port 8080 --mode tcp --proxy-protocol").unwrap();
        assert!(matches!(command, Command::Routes { action: Some(_) }));
        assert!(parse("routes add --process web --port 8080 --mode udp").is_err());
        assert!(parse("tokens create ci --role root").is_err());
        assert!(parse("events -f --after 10 --limit 5").is_ok());
        let (global, command) =
            parse("logs -f --instance 6a7b8c9d --tail 5 --env staging").unwrap();
        let Command::Logs(args) = command else {
            panic!("{command:?}")
        };
        assert_eq!(
            (
                args.follow,
                args.instance.as_deref(),
                args.tail,
                global.env.as_str()
            ),
            (true, Some("6a7b8c9d"), 5, "staging")
        );
        let (_, command) = parse("logs").unwrap();
        assert!(matches!(command, Command::Logs(a) if a.tail == 100 && !a.follow));
        assert!(parse("logs --tail 10001").is_err());
        assert!(parse("releases show 3").is_ok());
        let (_, command) = parse("nodes join-token --ttl 600").unwrap();
        assert!(matches!(
            command,
            Command::Nodes {
                action: Some(nodes::NodesAction::JoinToken {
                    ttl: Some(600),
                    replace: None
                })
            }
        ));
        assert!(parse("nodes drain n1").is_ok());
        assert!(parse("nodes join-token --ttl soon").is_err());
    }

    #[test]
    fn help_documents_exit_codes() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        for sub in cmd.get_subcommands_mut().filter(|c| c.get_name() != "up") {
            let help = sub.render_long_help().to_string();
            assert!(
                help.contains("5  authentication"),
                "{}: {help}",
                sub.get_name()
            );
        }
        assert!(crate::LONG_ABOUT.ends_with(EXIT_CODES_HELP));
        let mut help = |path: &[&str]| {
            let mut cmd = &mut cmd;
            for name in path {
                cmd = cmd.find_subcommand_mut(name).unwrap();
            }
            cmd.render_help().to_string()
        };
        assert!(
            help(&["tokens", "create"]).contains("[possible values: reader, deployer, admin]"),
            "--role lists the roles"
        );
        assert!(
            help(&["routes", "add"]).contains("[possible values: http, tls-passthrough, tcp]"),
            "--mode lists the modes"
        );
    }

    #[tokio::test]
    async fn local_commands_need_no_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zeitwork.toml");
        std::fs::write(
            &path,
            "version = 1\napp = \"hello\"\n[processes.web]\nport = 8080\n",
        )
        .unwrap();
        // A config path that cannot be read: local commands must not touch it.
        let global = Global {
            config: Some(dir.path().into()),
            ..Global::default()
        };
        let check = Command::Manifest {
            action: local::ManifestAction::Check {
                path: Some(path.clone()),
            },
        };
        execute(global.clone(), check).await.unwrap();

        std::fs::write(
            &path,
            "version = 1\napp = \"hello\"\n[processes.web]\nprot = 8080\n",
        )
        .unwrap();
        let check = Command::Manifest {
            action: local::ManifestAction::Check {
                path: Some(path.clone()),
            },
        };
        let e = execute(global, check).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: processes.web", path.display())),
            "{e}"
        );
        assert_eq!(e.exit_code(), 1);
    }
}
