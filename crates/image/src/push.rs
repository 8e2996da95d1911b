//! Pushing images without a Docker daemon: a directory becomes a one-layer image.
//!
//! Used by tests and by the project's example-image tooling. The layer is deterministic (sorted
//! entries, fixed times, owners 0:0 unless asked to keep them), so pushing the same directory
//! twice gives the same digest.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use oci_client::manifest::{IMAGE_CONFIG_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use serde::Serialize;

use crate::digest::Digest;
use crate::reference::{self, Auth, Subject, Transport, registry_error};
use crate::{ImageConfig, ImageError};

/// The modification time written for every entry (1970-01-01): a build's times must not
/// change the image digest.
const FIXED_MTIME: u64 = 0;

/// How to push.
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// Credentials for the registry.
    pub auth: Auth,
    /// Keep the uid/gid the files have on disk; otherwise every entry is owned by 0:0, so that
    /// a tree checked out by any user becomes a root-owned image.
    pub keep_owners: bool,
    /// Registries (`host[:port]`) to reach over plain HTTP besides loopback ones and those in
    /// [`crate::INSECURE_REGISTRIES_ENV`].
    pub insecure_registries: Vec<String>,
}

/// One layer, ready to push: its (possibly compressed) bytes, media type, and the digest of its
/// uncompressed tar (the config's `diff_id`).
#[derive(Clone, Debug)]
pub struct LayerBlob {
    /// The blob as stored in the registry.
    pub data: Vec<u8>,
    /// Its media type (`application/vnd.oci.image.layer.v1.tar+gzip`, ...).
    pub media_type: String,
    /// `sha256:…` of the uncompressed tar.
    pub diff_id: String,
}

impl LayerBlob {
    /// An uncompressed tar layer.
    pub fn tar(tar: Vec<u8>) -> LayerBlob {
        LayerBlob {
            diff_id: Digest::of(&tar).to_string(),
            data: tar,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        }
    }

    /// A gzip-compressed tar layer (deterministic: gzip header without time or name).
    pub fn gzip(tar: &[u8]) -> LayerBlob {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder
            .write_all(tar)
            .and_then(|()| encoder.finish())
            .map(|data| LayerBlob {
                data,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                diff_id: Digest::of(tar).to_string(),
            })
            .expect("compressing into memory cannot fail")
    }

    /// A zstd-compressed tar layer.
    pub fn zstd(tar: &[u8]) -> LayerBlob {
        LayerBlob {
            data: zstd::encode_all(tar, 3).expect("compressing into memory cannot fail"),
            media_type: "application/vnd.oci.image.layer.v1.tar+zstd".into(),
            diff_id: Digest::of(tar).to_string(),
        }
    }
}

/// Packs `dir` into a deterministic tar: entries sorted by name, times fixed, owners 0:0 unless
/// `keep_owners`, hard links kept as links; sockets and device nodes are left out.
pub fn pack_directory(dir: &Path, keep_owners: bool) -> Result<Vec<u8>, ImageError> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut seen_inodes = HashMap::new();
    pack(
        dir,
        Path::new(""),
        keep_owners,
        &mut builder,
        &mut seen_inodes,
    )?;
    builder
        .into_inner()
        .map_err(ImageError::io("finishing the layer"))
}

fn pack(
    root: &Path,
    relative: &Path,
    keep_owners: bool,
    builder: &mut tar::Builder<Vec<u8>>,
    seen_inodes: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> Result<(), ImageError> {
    let dir = root.join(relative);
    let context = |path: &Path| format!("packing {}", path.display());
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .and_then(|entries| entries.map(|e| e.map(|e| e.file_name())).collect())
        .map_err(ImageError::io(context(&dir)))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let entry_name = relative.join(&name);
        let meta = path
            .symlink_metadata()
            .map_err(ImageError::io(context(&path)))?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.permissions().mode() & 0o7777);
        header.set_mtime(FIXED_MTIME);
        let (uid, gid) = if keep_owners {
            (meta.uid().into(), meta.gid().into())
        } else {
            (0, 0)
        };
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_size(0);
        let file_type = meta.file_type();
        let appended = if file_type.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            builder.append_data(&mut header, &entry_name, std::io::empty())
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(&path).map_err(ImageError::io(context(&path)))?;
            header.set_entry_type(tar::EntryType::Symlink);
            builder.append_link(&mut header, &entry_name, &target)
        } else if file_type.is_file() {
            let key = (meta.dev(), meta.ino());
            match seen_inodes.get(&key) {
                Some(first) if meta.nlink() > 1 => {
                    header.set_entry_type(tar::EntryType::Link);
                    builder.append_link(&mut header, &entry_name, first)
                }
                _ => {
                    seen_inodes.insert(key, entry_name.clone());
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(meta.len());
                    let file =
                        std::fs::File::open(&path).map_err(ImageError::io(context(&path)))?;
                    builder.append_data(&mut header, &entry_name, file)
                }
            }
        } else {
            tracing::warn!(path = %path.display(), "not packing a socket, fifo or device node");
            continue;
        };
        appended.map_err(ImageError::io(context(&path)))?;
        if file_type.is_dir() {
            pack(root, &entry_name, keep_owners, builder, seen_inodes)?;
        }
    }
    Ok(())
}

/// Packs `dir` into one gzip layer and pushes it as a linux/amd64 image with `config` to
/// `reference` (`registry/name:tag`). Returns the manifest digest, so callers can deploy
/// `registry/name@sha256:…`.
pub async fn push_directory(
    dir: &Path,
    reference: &str,
    config: &ImageConfig,
    options: &PushOptions,
) -> Result<String, ImageError> {
    let dir = dir.to_path_buf();
    let keep_owners = options.keep_owners;
    let tar = tokio::task::spawn_blocking(move || pack_directory(&dir, keep_owners))
        .await
        .expect("packing does not panic")?;
    let layer = tokio::task::spawn_blocking(move || LayerBlob::gzip(&tar))
        .await
        .expect("compressing does not panic");
    push_image(reference, &[layer], config, options).await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u8,
    media_type: &'a str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: usize,
}

/// Pushes a linux/amd64 image made of `layers` (bottom first) and `config`; returns the
/// manifest digest. The building block of [`push_directory`], public for images with several or
/// hand-made layers.
pub async fn push_image(
    reference: &str,
    layers: &[LayerBlob],
    config: &ImageConfig,
    options: &PushOptions,
) -> Result<String, ImageError> {
    let parsed = reference::parse(reference)?;
    let transport = Transport::from_env_and(&options.insecure_registries);
    let client = transport.client(&parsed);
    let auth: RegistryAuth = options.auth.to_oci();
    client
        .store_auth_if_needed(parsed.resolve_registry(), &auth)
        .await;

    let diff_ids = layers
        .iter()
        .map(|layer| Digest::parse(&layer.diff_id, "a layer's diff_id"))
        .collect::<Result<Vec<_>, _>>()?;
    let config_bytes = crate::config::render(config, &diff_ids);
    let config_digest = Digest::of(&config_bytes);

    let mut layer_descriptors = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let digest = Digest::of(&layer.data);
        let what = format!("layer {} ({digest})", i + 1);
        client
            .push_blob(&parsed, &layer.data, &digest.to_string())
            .await
            .map_err(|e| registry_error(e, &parsed, Subject::Push(&what)))?;
        layer_descriptors.push(Descriptor {
            media_type: layer.media_type.clone(),
            digest: digest.to_string(),
            size: layer.data.len(),
        });
    }
    client
        .push_blob(&parsed, &config_bytes, &config_digest.to_string())
        .await
        .map_err(|e| registry_error(e, &parsed, Subject::Push("the image config")))?;

    let manifest = serde_json::to_vec(&ManifestOut {
        schema_version: 2,
        media_type: OCI_IMAGE_MEDIA_TYPE,
        config: Descriptor {
            media_type: IMAGE_CONFIG_MEDIA_TYPE.into(),
            digest: config_digest.to_string(),
            size: config_bytes.len(),
        },
        layers: layer_descriptors,
    })
    .expect("a manifest always serializes");
    let manifest_digest = Digest::of(&manifest);
    client
        .push_manifest_raw(
            &parsed,
            manifest,
            OCI_IMAGE_MEDIA_TYPE.parse().expect("a valid header value"),
        )
        .await
        .map_err(|e| registry_error(e, &parsed, Subject::Push("the manifest")))?;
    tracing::info!(reference, digest = %manifest_digest, "pushed image");
    Ok(manifest_digest.to_string())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn sample_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("b/nested")).unwrap();
        std::fs::write(p.join("b/nested/file"), b"data").unwrap();
        std::fs::write(p.join("a"), b"hello").unwrap();
        std::fs::hard_link(p.join("a"), p.join("c-hard")).unwrap();
        std::os::unix::fs::symlink("a", p.join("d-link")).unwrap();
        dir
    }

    fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, u64, String)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let link = entry
                    .link_name()
                    .unwrap()
                    .map(|l| l.display().to_string())
                    .unwrap_or_default();
                let mut content = String::new();
                entry.read_to_string(&mut content).unwrap();
                (
                    entry.path().unwrap().display().to_string(),
                    entry.header().entry_type(),
                    entry.header().uid().unwrap(),
                    if link.is_empty() { content } else { link },
                )
            })
            .collect()
    }

    #[test]
    fn packing_is_sorted_and_keeps_links() {
        let dir = sample_tree();
        let tar = pack_directory(dir.path(), false).unwrap();
        use tar::EntryType::*;
        assert_eq!(
            entries(&tar),
            [
                ("a".into(), Regular, 0, "hello".into()),
                ("b".into(), Directory, 0, String::new()),
                ("b/nested".into(), Directory, 0, String::new()),
                ("b/nested/file".into(), Regular, 0, "data".into()),
                ("c-hard".into(), Link, 0, "a".into()),
                ("d-link".into(), Symlink, 0, "a".into()),
            ]
        );
    }

    #[test]
    fn packing_is_deterministic() {
        let first = sample_tree();
        let second = sample_tree();
        let a = pack_directory(first.path(), false).unwrap();
        let b = pack_directory(second.path(), false).unwrap();
        assert_eq!(a, b, "same tree, other inodes and times, same bytes");
        assert_eq!(LayerBlob::gzip(&a).data, LayerBlob::gzip(&b).data);
    }

    #[test]
    fn owners_are_kept_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        std::os::unix::fs::chown(dir.path().join("f"), Some(1234), Some(1234)).unwrap();
        assert_eq!(entries(&pack_directory(dir.path(), false).unwrap())[0].2, 0);
        assert_eq!(
            entries(&pack_directory(dir.path(), true).unwrap())[0].2,
            1234
        );
    }

    #[test]
    fn layer_blobs_record_the_uncompressed_digest() {
        let tar = pack_directory(sample_tree().path(), false).unwrap();
        let expected = Digest::of(&tar).to_string();
        for layer in [
            LayerBlob::tar(tar.clone()),
            LayerBlob::gzip(&tar),
            LayerBlob::zstd(&tar),
        ] {
            assert_eq!(layer.diff_id, expected, "{}", layer.media_type);
        }
    }
}
