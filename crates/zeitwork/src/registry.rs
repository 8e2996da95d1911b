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

/// How often the registry's blobs are swept (`docker-registry garbage-collect`).
#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// Seconds between sweeps of the platform registry's unreferenced blobs (pushes are
    /// refused for about five minutes during one; pulls go on).
    #[arg(long, env = "ZEITWORK_REGISTRY_SWEEP_EVERY", default_value = "86400",
        value_parser = crate::settings::week)]
    pub registry_sweep_every: std::time::Duration,
}

/// Sweeps `registry`'s blobs every `every` (see `zeitwork_operator::registry_gc::sweep`),
/// after waiting out every registry token granted before, for as long as it runs.
pub async fn sweep_forever(
    store: zeitwork_store::Store,
    registry: Arc<zeitwork_services::Registry>,
    every: std::time::Duration,
) {
    let wait = std::time::Duration::from_secs(zeitwork_operator::registry::TOKEN_TTL_SECONDS + 5);
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match zeitwork_operator::registry_gc::sweep(&store, wait, registry.garbage_collect()).await
        {
            Ok(_) => tracing::info!("swept the platform registry's unreferenced blobs"),
            Err(e) => tracing::warn!(error = %e, "sweeping the platform registry failed"),
        }
    }
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

/// `zeitwork server registry`: the platform registry of a cluster, trusting one
/// operator's tokens, storing in a directory or an S3 bucket that replicas share.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (plain HTTP: put TLS in front of a public one).
    #[arg(
        long,
        env = "ZEITWORK_REGISTRY_LISTEN",
        default_value = "127.0.0.1:5000"
    )]
    pub listen: SocketAddr,
    /// The operator API whose token service (`/api/v1/registry/token`) it trusts.
    #[arg(long, env = "ZEITWORK_API", default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// The certificate of the operator's token key (written as `<key>.crt` by `zeitwork
    /// server operator --registry-token-key KEY`).
    #[arg(long, env = "ZEITWORK_REGISTRY_CERTIFICATE")]
    pub certificate: PathBuf,
    /// Where its configuration, log and pid file go.
    #[arg(
        long,
        env = "ZEITWORK_REGISTRY_DIR",
        default_value = "/var/lib/zeitwork/registry"
    )]
    pub dir: PathBuf,
    /// Keep images in this directory [default: <dir>/storage] (one replica only).
    #[arg(long, conflicts_with = "s3_bucket")]
    pub storage_dir: Option<PathBuf>,
    /// Keep images in this S3 bucket (replicas share it); credentials from
    /// ZEITWORK_S3_ACCESS_KEY and ZEITWORK_S3_SECRET_KEY.
    #[arg(long, env = "ZEITWORK_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    #[arg(long, env = "ZEITWORK_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// The endpoint of an S3-compatible service (MinIO, Ceph, …) [default: AWS].
    #[arg(long, env = "ZEITWORK_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(
        env = "ZEITWORK_S3_ACCESS_KEY",
        hide_env_values = true,
        hide = true,
        long
    )]
    pub s3_access_key: Option<String>,
    #[arg(
        env = "ZEITWORK_S3_SECRET_KEY",
        hide_env_values = true,
        hide = true,
        long
    )]
    pub s3_secret_key: Option<String>,
    /// Shared by replicas behind one load balancer (upload state) [default: random, for
    /// one replica].
    #[arg(long, env = "ZEITWORK_REGISTRY_HTTP_SECRET", hide_env_values = true)]
    pub http_secret: Option<String>,
    /// The platform's Postgres, where sweeps of unreferenced blobs are coordinated with
    /// the operators' token service [default: no sweeps]. One replica sweeps.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub sweep: SweepArgs,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<RegistryConfig> {
        let storage = match &self.s3_bucket {
            Some(bucket) => {
                let (Some(access_key), Some(secret_key)) =
                    (&self.s3_access_key, &self.s3_secret_key)
                else {
                    anyhow::bail!(
                        "--s3-bucket needs ZEITWORK_S3_ACCESS_KEY and ZEITWORK_S3_SECRET_KEY in the environment"
                    );
                };
                Storage::S3 {
                    bucket: bucket.clone(),
                    region: self.s3_region.clone(),
                    endpoint: self.s3_endpoint.clone(),
                    access_key: access_key.clone(),
                    secret_key: secret_key.clone(),
                }
            }
            None => Storage::Filesystem(
                self.storage_dir
                    .clone()
                    .unwrap_or_else(|| self.dir.join("storage")),
            ),
        };
        anyhow::ensure!(
            self.certificate.is_file(),
            "{} is not a file: give the certificate of the operator's --registry-token-key",
            self.certificate.display()
        );
        let http_secret = self.http_secret.clone().unwrap_or_else(|| {
            let mut secret = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut secret);
            hex::encode(secret)
        });
        Ok(RegistryConfig {
            listen: self.listen,
            realm: format!("{}/api/v1/registry/token", self.api.trim_end_matches('/')),
            certificate: self.certificate.clone(),
            storage,
            http_secret,
        })
    }
}

/// Runs the registry until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let registry = Arc::new(zeitwork_services::Registry::serve(&config, &args.dir).await?);
    tracing::info!(address = %args.listen, storage = ?config.storage, "platform registry serving");
    let sweeper = match &args.database_url {
        Some(url) => {
            let store = zeitwork_store::Store::connect(url)
                .await
                .context("connecting to Postgres")?;
            Some(tokio::spawn(sweep_forever(
                store,
                registry.clone(),
                args.sweep.registry_sweep_every,
            )))
        }
        None => {
            tracing::info!("no DATABASE_URL: unreferenced blobs are not swept from this registry");
            None
        }
    };
    crate::server::shutdown_signal().await;
    if let Some(sweeper) = sweeper {
        sweeper.abort();
        let _ = sweeper.await;
    }
    match Arc::try_unwrap(registry) {
        Ok(registry) => registry.stop().await?,
        Err(_) => anyhow::bail!("the registry is still in use"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServeArgs,
    }

    #[test]
    fn a_cluster_registry_stores_in_s3_with_keys_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("token.crt");
        std::fs::write(&cert, "x").unwrap();
        let cert = cert.display().to_string();
        let parse = |extra: &[&str]| {
            let base = ["z", "--certificate", &cert, "--api", "http://op:8080/"];
            Cli::try_parse_from(base.iter().chain(extra)).unwrap().args
        };
        let fs = parse(&[]).config().unwrap();
        assert_eq!(fs.realm, "http://op:8080/api/v1/registry/token");
        assert_eq!(
            fs.storage,
            Storage::Filesystem("/var/lib/zeitwork/registry/storage".into())
        );
        let mut s3 = parse(&["--s3-bucket", "images", "--s3-endpoint", "http://s3:9000"]);
        let err = s3.config().unwrap_err().to_string();
        assert!(err.contains("ZEITWORK_S3_ACCESS_KEY"), "{err}");
        s3.s3_access_key = Some("ak".into());
        s3.s3_secret_key = Some("sk".into());
        assert!(
            matches!(s3.config().unwrap().storage, Storage::S3 { ref bucket, .. } if bucket == "images")
        );
        let missing = Cli::try_parse_from(["z", "--certificate", "/nonexistent"]).unwrap();
        assert!(missing.args.config().is_err());
    }
}
