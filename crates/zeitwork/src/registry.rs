//! The platform registry (see `zeitwork_registry`): `zeitwork up` runs one privately
//! with filesystem storage under its data directory; the operator of a cluster is the
//! token service of one run elsewhere (`--registry-address`, `--registry-token-key`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use rand::RngCore as _;
use zeitwork_operator::registry::PlatformRegistry;
use zeitwork_registry::{RegistryConfig, Storage, TokenKey};

#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Where clients and nodes reach the platform registry, `host:port` (the registry part
    /// of its image references); with --registry-token-key, this operator is its token
    /// service (`/api/v1/registry/token`).
    #[arg(
        long,
        env = "ZEITWORK_REGISTRY_ADDRESS",
        requires = "registry_token_key"
    )]
    pub registry_address: Option<String>,
    /// The key registry tokens are signed with (PKCS#8 PEM; made, owner-only, when
    /// missing). Its certificate, which the registry must trust (`rootcertbundle`), is
    /// written next to it as `<key>.crt`.
    #[arg(
        long,
        env = "ZEITWORK_REGISTRY_TOKEN_KEY",
        requires = "registry_address"
    )]
    pub registry_token_key: Option<PathBuf>,
}

impl RegistryArgs {
    /// The registry this operator is the token service of, if any.
    pub fn platform(&self) -> anyhow::Result<Option<Arc<PlatformRegistry>>> {
        let (Some(address), Some(key)) = (&self.registry_address, &self.registry_token_key) else {
            return Ok(None);
        };
        let (platform, _) = load(address, key)?;
        Ok(Some(platform))
    }
}

/// The key at `key_path` (made when missing), its certificate written next to it.
fn load(address: &str, key_path: &Path) -> anyhow::Result<(Arc<PlatformRegistry>, PathBuf)> {
    let key = TokenKey::load_or_create(key_path)?;
    let mut certificate = key_path.as_os_str().to_owned();
    certificate.push(".crt");
    let certificate = PathBuf::from(certificate);
    std::fs::write(&certificate, key.certificate_pem()?)
        .with_context(|| format!("writing {}", certificate.display()))?;
    let platform = Arc::new(PlatformRegistry {
        address: address.to_owned(),
        key,
    });
    Ok((platform, certificate))
}

/// `zeitwork up`'s registry: listening on `listen`, storing under `<data>/registry`,
/// trusting the tokens of the API at `api`.
pub struct Private {
    pub config: RegistryConfig,
    pub dir: PathBuf,
    pub platform: Arc<PlatformRegistry>,
}

/// What `zeitwork up` needs to run its registry (the caller starts it).
pub fn private(data: &Path, listen: SocketAddr, api: &str) -> anyhow::Result<Private> {
    let dir = data.join("registry");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (platform, certificate) = load(&listen.to_string(), &dir.join("token.key"))?;
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let config = RegistryConfig {
        listen,
        realm: format!("{api}/api/v1/registry/token"),
        certificate,
        storage: Storage::Filesystem(dir.join("storage")),
        http_secret: hex::encode(secret),
    };
    Ok(Private {
        config,
        dir,
        platform,
    })
}
