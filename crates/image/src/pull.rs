//! Talking to the registry for a pull: resolving a reference to the linux/amd64 image manifest,
//! and downloading blobs while checking size and digest.

use futures::StreamExt;
use oci_client::Reference;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageIndex, OciImageManifest,
};
use oci_client::secrets::RegistryAuth;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use crate::ImageError;
use crate::cache::Cache;
use crate::digest::Digest;
use crate::error::chain;
use crate::reference::{Subject, registry_error};

const ACCEPTED: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];
const SUPPORTED_MANIFESTS: &str = "OCI image manifest or index, Docker image manifest v2 schema 2 \
     or manifest list";

/// A reference resolved to an image manifest.
pub(crate) struct Resolved {
    /// What the reference names: the index (or manifest) digest.
    pub digest: Digest,
    /// The linux/amd64 image manifest's digest.
    pub manifest_digest: Digest,
    pub manifest: OciImageManifest,
}

/// A registry session for one image.
pub(crate) struct Session {
    pub client: oci_client::Client,
    pub reference: Reference,
    pub auth: RegistryAuth,
}

impl Session {
    /// Fetches the manifest the reference names, checks its digest (the reference's, when it
    /// has one), and follows an index to its linux/amd64 entry.
    pub(crate) async fn resolve(&self) -> Result<Resolved, ImageError> {
        let (bytes, digest) = self
            .manifest(&self.reference, self.reference.digest())
            .await?;
        match parse_manifest(&bytes, &self.reference)? {
            Manifest::Image(manifest) => Ok(Resolved {
                manifest_digest: digest.clone(),
                digest,
                manifest: *manifest,
            }),
            Manifest::Index(index) => {
                let entry = pick_linux_amd64(&index, &self.reference)?;
                let entry_digest = Digest::parse(&entry.digest, "an image index entry")?;
                let entry_reference = self.reference.clone_with_digest(entry_digest.to_string());
                let (bytes, manifest_digest) = self
                    .manifest(&entry_reference, Some(&entry_digest.to_string()))
                    .await?;
                match parse_manifest(&bytes, &entry_reference)? {
                    Manifest::Image(manifest) => Ok(Resolved {
                        digest,
                        manifest_digest,
                        manifest: *manifest,
                    }),
                    Manifest::Index(_) => Err(ImageError::Invalid {
                        what: format!("the linux/amd64 entry of {}", self.reference),
                        reason: "it is another index; nested indexes are not supported".into(),
                    }),
                }
            }
        }
    }

    /// One manifest's bytes and their digest, which must equal `expected` when given.
    async fn manifest(
        &self,
        reference: &Reference,
        expected: Option<&str>,
    ) -> Result<(Vec<u8>, Digest), ImageError> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(reference, &self.auth, ACCEPTED)
            .await
            .map_err(|e| registry_error(e, reference, Subject::Manifest))?;
        // Our own hash is what counts, whatever the registry's headers say.
        let actual = Digest::of(&bytes);
        if let Some(expected) = expected
            && expected != actual.to_string()
        {
            return Err(ImageError::DigestMismatch {
                what: format!("the manifest of {reference}"),
                expected: expected.to_owned(),
                actual: actual.to_string(),
            });
        }
        Ok((bytes, actual))
    }

    /// Downloads blob `descriptor` into a temporary file of `cache`, checking its size as it
    /// arrives (a registry cannot make us store more than announced) and its digest at the end.
    /// Returns the file, still temporary: the caller moves it into place once every blob of the
    /// image has arrived intact, so a failed pull leaves nothing behind.
    pub(crate) async fn download(
        &self,
        cache: &Cache,
        descriptor: &OciDescriptor,
        what: &str,
    ) -> Result<tempfile::NamedTempFile, ImageError> {
        let expected = Digest::parse(&descriptor.digest, what)?;
        let expected_size = u64::try_from(descriptor.size).map_err(|_| ImageError::Invalid {
            what: what.to_owned(),
            reason: format!("negative size {}", descriptor.size),
        })?;
        let size_mismatch = |actual, truncated| ImageError::SizeMismatch {
            what: what.to_owned(),
            expected: expected_size,
            actual,
            truncated,
        };
        let temp = cache.temp_file()?;
        let mut file = tokio::fs::File::from_std(
            temp.reopen()
                .map_err(ImageError::io("opening a temporary file"))?,
        );
        let mut stream = self
            .client
            .pull_blob_stream(&self.reference, descriptor)
            .await
            .map_err(|e| registry_error(e, &self.reference, Subject::Blob(what)))?;
        if let Some(length) = stream.content_length
            && length != expected_size
        {
            return Err(size_mismatch(length, false));
        }
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // oci-client checks the digest too and fails the stream's end; report it as
                // ours, with both digests.
                Err(_) if received == expected_size => break,
                Err(e) => {
                    return Err(ImageError::Registry {
                        registry: self.reference.resolve_registry().to_owned(),
                        what: what.to_owned(),
                        detail: chain(&e),
                    });
                }
            };
            received += chunk.len() as u64;
            if received > expected_size {
                return Err(size_mismatch(received, true));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(ImageError::io(format!("writing {what} to the image cache")))?;
        }
        if received != expected_size {
            return Err(size_mismatch(received, false));
        }
        let actual = Digest::from_hasher(hasher);
        if actual != expected {
            return Err(ImageError::DigestMismatch {
                what: what.to_owned(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        // On disk before it is renamed to a name that says "verified".
        file.sync_all()
            .await
            .map_err(ImageError::io(format!("writing {what} to the image cache")))?;
        Ok(temp)
    }
}

enum Manifest {
    Image(Box<OciImageManifest>),
    Index(OciImageIndex),
}

/// Parses a manifest by its media type (or, when it has none, by its shape).
fn parse_manifest(bytes: &[u8], reference: &Reference) -> Result<Manifest, ImageError> {
    let what = format!("the manifest of {reference}");
    let invalid = |reason: String| ImageError::Invalid {
        what: what.clone(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let schema = value.get("schemaVersion").and_then(|v| v.as_u64());
    let media_type = value.get("mediaType").and_then(|v| v.as_str());
    let is_index = match media_type {
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE | IMAGE_MANIFEST_LIST_MEDIA_TYPE) => true,
        Some(OCI_IMAGE_MEDIA_TYPE | IMAGE_MANIFEST_MEDIA_TYPE) => false,
        None if schema == Some(2) => value.get("manifests").is_some(),
        other => {
            return Err(ImageError::UnsupportedMediaType {
                what,
                media_type: other
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("schema version {}", schema.unwrap_or(0))),
                supported: SUPPORTED_MANIFESTS,
            });
        }
    };
    if is_index {
        serde_json::from_value(value)
            .map(Manifest::Index)
            .map_err(|e| invalid(e.to_string()))
    } else {
        serde_json::from_value(value)
            .map(|manifest| Manifest::Image(Box::new(manifest)))
            .map_err(|e| invalid(e.to_string()))
    }
}

/// The index entry for linux/amd64 (the first one, as Docker picks).
fn pick_linux_amd64<'a>(
    index: &'a OciImageIndex,
    reference: &Reference,
) -> Result<&'a oci_client::manifest::ImageIndexEntry, ImageError> {
    index
        .manifests
        .iter()
        .find(|entry| {
            entry
                .platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .ok_or_else(|| {
            let available: Vec<String> = index
                .manifests
                .iter()
                .map(|entry| match &entry.platform {
                    Some(p) => match &p.variant {
                        Some(variant) => format!("{}/{}/{variant}", p.os, p.architecture),
                        None => format!("{}/{}", p.os, p.architecture),
                    },
                    None => "an entry without platform".to_owned(),
                })
                .collect();
            ImageError::NoPlatform {
                reference: reference.whole(),
                available: if available.is_empty() {
                    "nothing".into()
                } else {
                    available.join(", ")
                },
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Reference {
        "127.0.0.1:5000/app:v1".parse().unwrap()
    }

    fn index(platforms: &[(&str, &str)]) -> Vec<u8> {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch))| {
                serde_json::json!({
                    "mediaType": OCI_IMAGE_MEDIA_TYPE,
                    "digest": format!("sha256:{}", format!("{i:x}").repeat(64)),
                    "size": 100,
                    "platform": {"os": os, "architecture": arch}
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE, "manifests": manifests
        }))
        .unwrap()
    }

    #[test]
    fn picks_linux_amd64_from_an_index() {
        let bytes = index(&[("linux", "arm64"), ("linux", "amd64"), ("windows", "amd64")]);
        let Manifest::Index(index) = parse_manifest(&bytes, &reference()).unwrap() else {
            panic!("an index");
        };
        let entry = pick_linux_amd64(&index, &reference()).unwrap();
        assert_eq!(entry.digest, format!("sha256:{}", "1".repeat(64)));
    }

    #[test]
    fn an_index_without_linux_amd64_lists_what_it_has() {
        let bytes = index(&[("linux", "arm64"), ("windows", "amd64")]);
        let Manifest::Index(index) = parse_manifest(&bytes, &reference()).unwrap() else {
            panic!("an index");
        };
        let err = pick_linux_amd64(&index, &reference()).unwrap_err();
        assert!(matches!(err, ImageError::NoPlatform { .. }), "{err}");
        assert!(
            err.to_string().contains("linux/arm64, windows/amd64"),
            "{err}"
        );
    }

    #[test]
    fn manifests_without_media_type_are_told_apart_by_shape() {
        let image = br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:x","size":1},"layers":[]}"#;
        assert!(matches!(
            parse_manifest(image, &reference()).unwrap(),
            Manifest::Image(_)
        ));
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            parse_manifest(index, &reference()).unwrap(),
            Manifest::Index(_)
        ));
    }

    #[test]
    fn schema1_and_unknown_types_are_unsupported() {
        for bytes in [
            &br#"{"schemaVersion":1,"fsLayers":[]}"#[..],
            br#"{"schemaVersion":2,"mediaType":"application/vnd.example+json"}"#,
        ] {
            let err = parse_manifest(bytes, &reference()).err().expect("rejected");
            assert!(
                matches!(err, ImageError::UnsupportedMediaType { .. }),
                "{err}"
            );
        }
    }
}
