//! Pushing an OCI archive (`oci-archive:` of buildah and skopeo: a tar of an OCI image
//! layout) as it is: every blob and the manifest byte for byte, so the registry serves the
//! digest the builder made.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use crate::digest::Digest;
use crate::reference::{self, Subject, Transport, registry_error};
use crate::{ImageError, PushOptions};

/// The largest archive pushed (read whole into memory).
pub const MAX_ARCHIVE_BYTES: u64 = 4 << 30;

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// Pushes the one image of the OCI archive at `archive` to `reference`; returns the
/// manifest's digest.
pub async fn push_oci_archive(
    archive: &Path,
    reference: &str,
    options: &PushOptions,
) -> Result<String, ImageError> {
    let invalid = |reason: String| ImageError::Invalid {
        what: format!("the OCI archive {}", archive.display()),
        reason,
    };
    let size = std::fs::metadata(archive)
        .map_err(ImageError::io(format!("reading {}", archive.display())))?
        .len();
    if size > MAX_ARCHIVE_BYTES {
        return Err(invalid(format!(
            "it is {size} bytes; at most {MAX_ARCHIVE_BYTES} are pushed"
        )));
    }
    let files = {
        let archive = archive.to_owned();
        tokio::task::spawn_blocking(move || read_archive(&archive))
            .await
            .map_err(|e| invalid(e.to_string()))??
    };
    let blob = |digest: &str| -> Result<&Vec<u8>, ImageError> {
        let d = Digest::parse(digest, "an OCI archive descriptor")?;
        let bytes = files
            .get(&format!(
                "blobs/sha256/{}",
                d.to_string().trim_start_matches("sha256:")
            ))
            .ok_or_else(|| invalid(format!("it has no blob {digest}")))?;
        if Digest::of(bytes) != d {
            return Err(ImageError::DigestMismatch {
                what: format!("blob {digest} of {}", archive.display()),
                expected: digest.to_owned(),
                actual: Digest::of(bytes).to_string(),
            });
        }
        Ok(bytes)
    };
    let index: Index = serde_json::from_slice(
        files
            .get("index.json")
            .ok_or_else(|| invalid("it has no index.json".into()))?,
    )
    .map_err(|e| invalid(format!("index.json: {e}")))?;
    let [entry] = index.manifests.as_slice() else {
        return Err(invalid(format!(
            "it holds {} images; one is pushed",
            index.manifests.len()
        )));
    };
    let manifest_bytes = blob(&entry.digest)?.clone();
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| invalid(format!("its manifest: {e}")))?;

    let parsed = reference::parse(reference)?;
    let client = Transport::from_env_and(&options.insecure_registries).client(&parsed);
    let auth: RegistryAuth = options.auth.to_oci();
    client
        .store_auth_if_needed(parsed.resolve_registry(), &auth)
        .await;
    for (i, layer) in manifest.layers.iter().enumerate() {
        let what = format!("layer {} ({})", i + 1, layer.digest);
        client
            .push_blob(&parsed, blob(&layer.digest)?, &layer.digest)
            .await
            .map_err(|e| registry_error(e, &parsed, Subject::Push(&what)))?;
    }
    client
        .push_blob(
            &parsed,
            blob(&manifest.config.digest)?,
            &manifest.config.digest,
        )
        .await
        .map_err(|e| registry_error(e, &parsed, Subject::Push("the image config")))?;
    client
        .push_manifest_raw(
            &parsed,
            manifest_bytes,
            entry
                .media_type
                .parse()
                .map_err(|_| invalid(format!("media type {:?}", entry.media_type)))?,
        )
        .await
        .map_err(|e| registry_error(e, &parsed, Subject::Push("the manifest")))?;
    tracing::info!(reference, digest = %entry.digest, "pushed an OCI archive");
    Ok(entry.digest.clone())
}

/// Every regular file of the archive by its path (without a leading `./`).
fn read_archive(path: &Path) -> Result<HashMap<String, Vec<u8>>, ImageError> {
    let file =
        std::fs::File::open(path).map_err(ImageError::io(format!("opening {}", path.display())))?;
    let mut tar = tar::Archive::new(file);
    let mut files = HashMap::new();
    let entries = tar
        .entries()
        .map_err(ImageError::io(format!("reading {}", path.display())))?;
    for entry in entries {
        let mut entry = entry.map_err(ImageError::io(format!("reading {}", path.display())))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(ImageError::io(format!("reading {}", path.display())))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(ImageError::io(format!(
                "reading {name} of {}",
                path.display()
            )))?;
        files.insert(name, bytes);
    }
    Ok(files)
}
