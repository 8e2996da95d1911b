//! Settings shared by the server roles, from flags or the environment.

use std::path::Path;

use anyhow::Context;
use clap::Args;
use zeitwork_operator::{Config, SecretBox};

#[derive(Args, Debug, Clone)]
pub struct OperatorArgs {
    /// Address the API listens on.
    #[arg(long, env = "ZEITWORK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Per-deployment URLs are <app>-<slug>-<org>.<base-domain>.
    #[arg(
        long,
        env = "ZEITWORK_BASE_DOMAIN",
        default_value = "zeitwork.localhost"
    )]
    pub base_domain: String,
    /// How far CPU may be oversubscribed when placing instances (memory never is).
    #[arg(long, env = "ZEITWORK_CPU_OVERSUBSCRIPTION", default_value_t = 4.0)]
    pub cpu_oversubscription: f64,
}

impl OperatorArgs {
    pub fn config(&self) -> Config {
        Config {
            base_domain: self.base_domain.clone(),
            cpu_oversubscription: self.cpu_oversubscription,
        }
    }
}

/// The key that seals secrets: `ZEITWORK_SECRET_KEY` (64 hex characters), else a key
/// file, created with mode 0600 on first use when `create` allows it.
pub fn secret_box(key_file: Option<&Path>) -> anyhow::Result<SecretBox> {
    if let Ok(hex) = std::env::var("ZEITWORK_SECRET_KEY") {
        return SecretBox::from_hex(&hex).context("ZEITWORK_SECRET_KEY");
    }
    let Some(path) = key_file else {
        anyhow::bail!(
            "set ZEITWORK_SECRET_KEY to 64 hex characters (e.g. `openssl rand -hex 32`); it seals secrets at rest"
        );
    };
    if !path.exists() {
        write_private(path, &SecretBox::generate_hex())?;
    }
    let hex =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SecretBox::from_hex(&hex).with_context(|| format!("secret key in {}", path.display()))
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
