//! OCI images in, read-only ext4 root filesystems out — and the way back for tests and tooling.
//!
//! Every instance of an app boots from its image's files. [`ImageStore::rootfs`] pulls an image
//! from any OCI registry, verifies every byte against its digest, applies the layers (with
//! whiteouts) into a staging tree, and turns that into an ext4 image with `mkfs.ext4 -d`. The
//! result is cached per image digest: the agent asks again for every instance it starts, and a
//! cached image costs a `stat`. [`ImageStore::gc`] reclaims what no deployment uses any more.
//!
//! [`push_directory`] goes the other way (no Docker daemon exists on our machines): it packs a
//! directory into a one-layer image and pushes it, returning the digest to deploy.
//!
//! Registries on loopback are spoken to over plain HTTP, like Docker does; others need TLS
//! unless listed in [`INSECURE_REGISTRIES_ENV`].

mod archive;
mod cache;
mod config;
mod confined;
mod context;
mod credentials;
mod digest;
mod error;
mod ext4;
mod layers;
mod pull;
mod push;
mod reference;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use futures::StreamExt as _;

pub use archive::{MAX_ARCHIVE_BYTES, push_oci_archive};
pub use config::ImageConfig;
pub use context::{Staged, stage_context};
pub use credentials::AuthFiles;
pub use error::ImageError;
pub use push::{LayerBlob, PushOptions, pack_directory, push_directory, push_image};
pub use reference::{Auth, INSECURE_REGISTRIES_ENV};

use cache::{Cache, Meta};
use digest::Digest;
use layers::{Compression, SUPPORTED_LAYERS, Staging};
use pull::Session;
use reference::Transport;

/// A root filesystem image ready to attach to a microVM (read-only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rootfs {
    /// The ext4 image.
    pub path: PathBuf,
    /// The digest the image reference resolved to (`sha256:…`): the index digest for a
    /// multi-platform image. Deploy `name@<digest>` to get exactly this image again.
    pub digest: String,
    /// The linux/amd64 image manifest's digest (equal to `digest` unless that is an index).
    pub manifest_digest: String,
    /// How the image wants to be run.
    pub config: ImageConfig,
}

/// Pulls images and keeps their root filesystems in a cache directory.
///
/// Cheap to share behind an `Arc`; safe to use from several processes on one cache directory.
#[derive(Debug)]
pub struct ImageStore {
    cache: Cache,
    transport: Transport,
    /// Images already looked up by this process, so a repeated request costs one `stat`.
    known: Mutex<HashMap<String, Rootfs>>,
}

impl ImageStore {
    /// A store caching under `cache_dir` (created if missing). Plain-HTTP registries besides
    /// loopback ones are read from [`INSECURE_REGISTRIES_ENV`].
    pub fn new(cache_dir: impl Into<PathBuf>) -> Result<ImageStore, ImageError> {
        Ok(ImageStore {
            cache: Cache::open(cache_dir.into())?,
            transport: Transport::from_env(),
            known: Mutex::default(),
        })
    }

    /// Replaces the list of registries (`host[:port]`) reached over plain HTTP besides loopback.
    pub fn with_insecure_registries(mut self, registries: Vec<String>) -> ImageStore {
        self.transport = Transport::new(registries);
        self
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        self.cache.root()
    }

    /// The root filesystem of `reference` (`[registry/]name[:tag][@sha256:…]`), pulled and built
    /// unless already cached. A reference with a digest that is cached needs no network at all.
    ///
    /// Building needs root (file owners) and `mkfs.ext4`; a failed pull leaves no file behind.
    pub async fn rootfs(&self, reference: &str, auth: &Auth) -> Result<Rootfs, ImageError> {
        let parsed = reference::parse(reference)?;
        if let Some(digest) = parsed.digest() {
            let digest = Digest::parse(digest, "the image reference")?;
            if let Some(rootfs) = self.cached_digest(&digest).await? {
                return Ok(rootfs);
            }
        }
        // Fail before downloading anything if we could not build the image anyway.
        if !rustix::process::geteuid().is_root() {
            return Err(ImageError::NotRoot);
        }
        if !ext4::available() {
            return Err(ImageError::MkfsMissing);
        }
        let session = Session {
            client: self.transport.client(&parsed),
            reference: parsed,
            auth: auth.to_oci(),
        };
        let resolved = session.resolve().await?;
        if let Some(rootfs) = self.cached_digest(&resolved.digest).await? {
            return Ok(rootfs);
        }

        // One build per digest at a time, across processes; the loser finds it done.
        let cache = self.cache.clone();
        let digest = resolved.digest.clone();
        let _locks = tokio::task::spawn_blocking(move || cache.lock_build(&digest))
            .await
            .expect("locking does not panic")?;
        if let Some(rootfs) = self.cached_digest(&resolved.digest).await? {
            return Ok(rootfs);
        }
        let rootfs = self.build(&session, resolved).await?;
        self.remember(&rootfs);
        Ok(rootfs)
    }

    /// The cached root filesystem for `digest` (`sha256:…`), without any network access.
    pub async fn cached(&self, digest: &str) -> Result<Option<Rootfs>, ImageError> {
        let digest = Digest::parse(digest, "the digest asked for")?;
        self.cached_digest(&digest).await
    }

    /// Removes every cached image whose digest (or manifest digest) is not in `keep`, and every
    /// blob that no kept image uses; returns the bytes freed. Waits for builds in progress.
    pub async fn gc(&self, keep: &[&str]) -> Result<u64, ImageError> {
        let keep: HashSet<String> = keep.iter().map(|digest| (*digest).to_owned()).collect();
        let cache = self.cache.clone();
        let (freed, removed) = tokio::task::spawn_blocking(move || cache.gc(&keep))
            .await
            .expect("garbage collection does not panic")?;
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.retain(|digest, _| !removed.contains(digest));
        tracing::info!(freed, images = removed.len(), "image cache collected");
        Ok(freed)
    }

    async fn cached_digest(&self, digest: &Digest) -> Result<Option<Rootfs>, ImageError> {
        let key = digest.to_string();
        let known = self
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(rootfs) = known {
            // Another process may have collected it since.
            if tokio::fs::metadata(&rootfs.path).await.is_ok() {
                return Ok(Some(rootfs));
            }
            self.forget(&key);
        }
        let cache = self.cache.clone();
        let lookup_digest = digest.clone();
        let meta = tokio::task::spawn_blocking(move || cache.lookup(&lookup_digest))
            .await
            .expect("lookup does not panic")?;
        Ok(meta.map(|meta| {
            let rootfs = Rootfs {
                path: self.cache.rootfs(digest),
                digest: meta.digest,
                manifest_digest: meta.manifest_digest,
                config: meta.config,
            };
            self.remember(&rootfs);
            rootfs
        }))
    }

    fn remember(&self, rootfs: &Rootfs) {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(rootfs.digest.clone(), rootfs.clone());
    }

    fn forget(&self, digest: &str) {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(digest);
    }

    /// Downloads what is missing, applies the layers and runs mkfs; all in `tmp/` until done.
    async fn build(
        &self,
        session: &Session,
        resolved: pull::Resolved,
    ) -> Result<Rootfs, ImageError> {
        let reference = session.reference.whole();
        let manifest = &resolved.manifest;
        let config_type = manifest.config.media_type.as_str();
        if !matches!(
            config_type,
            "application/vnd.oci.image.config.v1+json"
                | "application/vnd.docker.container.image.v1+json"
        ) {
            return Err(ImageError::UnsupportedMediaType {
                what: format!("the config of {reference}"),
                media_type: config_type.to_owned(),
                supported: "application/vnd.oci.image.config.v1+json, \
                     application/vnd.docker.container.image.v1+json",
            });
        }
        let mut layers = Vec::new();
        for (i, layer) in manifest.layers.iter().enumerate() {
            let what = format!("layer {} of {reference}", i + 1);
            let compression = Compression::of_media_type(&layer.media_type).ok_or_else(|| {
                ImageError::UnsupportedMediaType {
                    what: what.clone(),
                    media_type: layer.media_type.clone(),
                    supported: SUPPORTED_LAYERS,
                }
            })?;
            layers.push((Digest::parse(&layer.digest, &what)?, compression, what));
        }

        // Fetch every blob not cached yet; keep them temporary until all arrived intact.
        let config_what = format!("the config of {reference}");
        let config_digest = Digest::parse(&manifest.config.digest, &config_what)?;
        let mut wanted = vec![(&manifest.config, config_what.clone(), config_digest.clone())];
        for (descriptor, (digest, _, what)) in manifest.layers.iter().zip(&layers) {
            wanted.push((descriptor, what.clone(), digest.clone()));
        }
        let mut downloads = Vec::new();
        let mut seen = HashSet::new();
        for (descriptor, what, digest) in wanted {
            if self.cache.blob(&digest).exists() || !seen.insert(digest.clone()) {
                continue;
            }
            downloads.push(async move {
                let file = session.download(&self.cache, descriptor, &what).await?;
                Ok::<_, ImageError>((digest, file))
            });
        }
        let downloaded: Vec<_> = futures::stream::iter(downloads)
            .buffer_unordered(3)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;

        let config_path = self.cache.blob(&config_digest);
        let config_bytes = match downloaded.iter().find(|(d, _)| *d == config_digest) {
            Some((_, file)) => std::fs::read(file.path()),
            None => std::fs::read(&config_path),
        }
        .map_err(ImageError::io(format!("reading {config_what}")))?;
        let parsed = config::parse(&config_bytes, &config_what)?;
        if parsed.platform != "linux/amd64" {
            return Err(ImageError::NoPlatform {
                reference,
                available: parsed.platform,
            });
        }
        if parsed.diff_ids.len() != layers.len() {
            return Err(ImageError::Invalid {
                what: config_what,
                reason: format!(
                    "it lists {} layer diff_ids but the manifest has {} layers",
                    parsed.diff_ids.len(),
                    layers.len()
                ),
            });
        }

        let cache = self.cache.clone();
        let digest = resolved.digest.clone();
        let meta = Meta {
            digest: resolved.digest.to_string(),
            manifest_digest: resolved.manifest_digest.to_string(),
            blobs: std::iter::once(config_digest.to_string())
                .chain(layers.iter().map(|(d, _, _)| d.to_string()))
                .collect(),
            config: parsed.config,
        };
        let diff_ids = parsed.diff_ids;
        let config = meta.config.clone();
        let path = tokio::task::spawn_blocking(move || {
            // The blobs are verified: file them, then build from the cache.
            for (digest, file) in downloaded {
                let target = cache.blob(&digest);
                file.persist(&target).map_err(|e| {
                    ImageError::io(format!("storing {}", target.display()))(e.error)
                })?;
            }
            let staging = cache.temp_dir()?;
            let root = staging.path().join("root");
            std::fs::create_dir(&root).map_err(ImageError::io("creating the staging root"))?;
            std::os::unix::fs::chown(&root, Some(0), Some(0))
                .map_err(ImageError::io("preparing the staging root"))?;
            std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(ImageError::io("preparing the staging root"))?;
            let mut applied = Staging::default();
            for ((layer, compression, _), diff_id) in layers.iter().zip(&diff_ids) {
                applied.apply(&root, &cache.blob(layer), *compression, layer, diff_id)?;
            }
            applied
                .finish()
                .map_err(ImageError::io("setting directory times"))?;
            let image = cache.temp_file()?;
            ext4::build(&root, image.path())?;
            drop(staging);
            cache.commit(&digest, image, &meta)
        })
        .await
        .expect("building does not panic")?;
        tracing::info!(reference, digest = %resolved.digest, path = %path.display(), "built root filesystem");
        Ok(Rootfs {
            path,
            digest: resolved.digest.to_string(),
            manifest_digest: resolved.manifest_digest.to_string(),
            config,
        })
    }
}

/// Whether `registry` (`host[:port]`) is reached over plain HTTP: loopback, and those
/// listed in [`INSECURE_REGISTRIES_ENV`]; everything else over TLS.
pub fn plain_http(registry: &str) -> bool {
    Transport::from_env().plain_http(registry)
}

/// `reference` pinned to what its registry serves for it now: `name[:tag]@sha256:…`
/// (the tag kept for the reader), the digest of its manifest, or of its index for a
/// multi-platform image, which must hold a linux/amd64 image. A reference with a
/// digest is checked against the registry the same way. Nothing is downloaded but
/// manifests; plain-HTTP registries are those of [`INSECURE_REGISTRIES_ENV`] and loopback.
pub async fn pin(reference: &str, auth: &Auth) -> Result<String, ImageError> {
    let parsed = reference::parse(reference)?;
    let session = Session {
        client: Transport::from_env().client(&parsed),
        reference: parsed,
        auth: auth.to_oci(),
    };
    let resolved = session.resolve().await?;
    let name = reference
        .split_once('@')
        .map_or(reference, |(name, _)| name);
    Ok(format!("{name}@{}", resolved.digest))
}

/// Makes the ext4 image `image` from the directory tree `tree` with `mkfs.ext4 -d`
/// (owners, modes, links kept), sized to fit it: how root filesystems are made, the
/// builder's included.
pub fn ext4_from_tree(tree: &Path, image: &Path) -> Result<(), ImageError> {
    ext4::build(tree, image)
}
