//! The one error type of the client. Every failure ends as one `error: …` line on stderr
//! and a stable exit code, because scripts branch on the code and people read the line.

use std::path::PathBuf;

use zeitwork_core::ManifestError;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: anything else that failed (API refused or broke, I/O, invalid manifest).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: bad arguments or missing context (as clap uses for its own errors).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the API answered 404.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code: the API answered 409 (e.g. a name is taken).
pub const EXIT_CONFLICT: u8 = 4;
/// Exit code: not logged in, or the API answered 401/403.
pub const EXIT_AUTH: u8 = 5;

/// Why a client command failed. The `Display` text is the whole user-facing message.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Arguments that clap accepted but that make no sense together, or missing org/app.
    #[error("{0}")]
    Usage(String),

    #[error("not logged in: run `zeitwork login` or set ZEITWORK_TOKEN")]
    NotLoggedIn,

    #[error("cannot reach the Zeitwork API at {url}: {reason} (is `zeitwork up` running?)")]
    Unreachable { url: String, reason: String },

    #[error("the Zeitwork API at {url} did not answer within {seconds}s")]
    Timeout { url: String, seconds: u64 },

    /// An error answer of the API, `{"error": {"code", "message", "field"?}}`.
    #[error("{message}{}", field.as_ref().map(|f| format!(" (field: {f})")).unwrap_or_default())]
    Api {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
    },

    /// The API answered successfully but not in the documented shape.
    #[error("unexpected answer from the API: {0}")]
    Protocol(String),

    #[error("{}", manifest_message(path, source))]
    Manifest {
        path: PathBuf,
        source: ManifestError,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    #[error("config file {path}: {message}")]
    Config { path: PathBuf, message: String },

    /// `zeitwork exec`'s command exited with this code (non-zero), which becomes ours.
    #[error("the command exited with code {0}")]
    Exited(u8),

    /// Whoever read our stdout went away (`zeitwork events -f | head`); nothing to report.
    #[error("standard output was closed")]
    OutputClosed,
}

fn manifest_message(path: &std::path::Path, e: &ManifestError) -> String {
    if e.path.is_empty() {
        format!("{}: {}", path.display(), e.message)
    } else {
        format!("{}: {}: {}", path.display(), e.path, e.message)
    }
}

impl CliError {
    /// The process exit code for this error; see the crate docs for the table.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::NotLoggedIn => EXIT_AUTH,
            CliError::Api { status, .. } => match status {
                404 => EXIT_NOT_FOUND,
                409 => EXIT_CONFLICT,
                401 | 403 => EXIT_AUTH,
                _ => EXIT_FAILURE,
            },
            CliError::Exited(code) => *code,
            _ => EXIT_FAILURE,
        }
    }

    /// Wraps an I/O error with what we were doing, e.g. `reading zeitwork.toml`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }

    /// Builds the error for a non-2xx answer from its status and body. Bodies that are not
    /// the documented error shape (a proxy's HTML page, say) still give a readable line.
    pub(crate) fn from_answer(status: u16, body: &[u8]) -> CliError {
        #[derive(serde::Deserialize)]
        struct Envelope {
            error: Body,
        }
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            code: String,
            message: String,
            #[serde(default)]
            field: Option<String>,
        }
        let (code, message, field) = match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope { error }) => (error.code, error.message, error.field),
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let first = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("");
                let mut message = format!("the API answered HTTP {status}");
                if !first.is_empty() {
                    let snippet: String = first.chars().take(200).collect();
                    message = format!("{message}: {snippet}");
                }
                (String::new(), message, None)
            }
        };
        let message = if status == 401 {
            format!("{message}: run `zeitwork login` or check ZEITWORK_TOKEN")
        } else {
            message
        };
        CliError::Api {
            status,
            code,
            message,
            field,
        }
    }
}

/// Result alias used across the crate.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> CliError {
        CliError::from_answer(status, body.as_bytes())
    }

    #[test]
    fn error_bodies_map_to_message_and_exit_code() {
        let e = answer(
            404,
            r#"{"error":{"code":"not_found","message":"app nope not found"}}"#,
        );
        assert_eq!(e.to_string(), "app nope not found");
        assert_eq!(e.exit_code(), EXIT_NOT_FOUND);

        let e = answer(
            409,
            r#"{"error":{"code":"conflict","message":"name is taken","field":"name"}}"#,
        );
        assert_eq!(e.to_string(), "name is taken (field: name)");
        assert_eq!(e.exit_code(), EXIT_CONFLICT);

        let e = answer(
            403,
            r#"{"error":{"code":"forbidden","message":"needs admin"}}"#,
        );
        assert_eq!(
            (e.to_string().as_str(), e.exit_code()),
            ("needs admin", EXIT_AUTH)
        );

        let e = answer(
            401,
            r#"{"error":{"code":"unauthenticated","message":"unknown token"}}"#,
        );
        assert!(
            e.to_string()
                .starts_with("unknown token: run `zeitwork login`"),
            "{e}"
        );
        assert_eq!(e.exit_code(), EXIT_AUTH);

        let e = answer(
            422,
            r#"{"error":{"code":"invalid","message":"bad port","field":"port"}}"#,
        );
        assert_eq!(
            (e.to_string().as_str(), e.exit_code()),
            ("bad port (field: port)", 1)
        );
    }

    #[test]
    fn foreign_error_bodies_still_read_well() {
        let e = answer(502, "<html>\n  <h1>Bad Gateway</h1>\n</html>");
        assert_eq!(e.to_string(), "the API answered HTTP 502: <html>");
        assert_eq!(e.exit_code(), EXIT_FAILURE);
        assert_eq!(answer(500, "").to_string(), "the API answered HTTP 500");
    }

    #[test]
    fn local_errors_have_their_codes() {
        assert_eq!(CliError::NotLoggedIn.exit_code(), EXIT_AUTH);
        assert_eq!(CliError::Usage("x".into()).exit_code(), EXIT_USAGE);
        let e = CliError::Manifest {
            path: "zeitwork.toml".into(),
            source: ManifestError {
                path: "processes.web.port".into(),
                message: "bad".into(),
            },
        };
        assert_eq!(e.to_string(), "zeitwork.toml: processes.web.port: bad");
        assert_eq!(e.exit_code(), EXIT_FAILURE);
    }
}
