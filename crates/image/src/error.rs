//! The one error type of this crate.
//!
//! Its messages reach operators (a deployment that cannot start) and developers (a push that
//! failed), so each says what happened to which image and what to do about it.

use std::path::PathBuf;

/// Why an image could not be pulled, turned into a root filesystem, or pushed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image reference does not parse.
    #[error(
        "invalid image reference {reference:?}: {reason}; expected [REGISTRY/]NAME[:TAG][@sha256:HEX], \
         e.g. registry.example.com/team/app:v1 or 127.0.0.1:5000/app@sha256:<64 hex digits>"
    )]
    BadReference {
        /// What was given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection to the registry could be made.
    #[error("registry {registry} is unreachable: {detail}{hint}")]
    Unreachable {
        /// `host[:port]`.
        registry: String,
        /// The underlying network error.
        detail: String,
        /// A suggestion (e.g. plain HTTP registries), possibly empty.
        hint: String,
    },
    /// The registry does not have this name, tag or digest.
    #[error(
        "manifest unknown: {reference} does not exist in its registry; check the repository name, \
         the tag or the digest (a digest must be the one the registry reported on push)"
    )]
    ManifestUnknown {
        /// The reference asked for.
        reference: String,
    },
    /// The registry refused our credentials, or wants some.
    #[error(
        "registry {registry} denied access to {reference}: {detail}; give credentials that may \
         {operation} this repository"
    )]
    Unauthorized {
        /// `host[:port]`.
        registry: String,
        /// The reference asked for.
        reference: String,
        /// `pull` or `push`.
        operation: &'static str,
        /// What the registry said.
        detail: String,
    },
    /// Content does not hash to the digest that names it.
    #[error(
        "digest mismatch for {what}: expected {expected}, got {actual}; the registry served other \
         content than was asked for (corrupt registry storage, or something in between altered it), \
         so nothing of it was kept"
    )]
    DigestMismatch {
        /// The manifest, config or layer concerned.
        what: String,
        /// The digest that names the content.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// Content is not the size its descriptor announces.
    #[error(
        "size mismatch for {what}: its descriptor says {expected} bytes but the registry sent \
         {actual}{}; nothing of it was kept",
        if *.truncated { " before it was cut off" } else { "" }
    )]
    SizeMismatch {
        /// The config or layer concerned.
        what: String,
        /// The size in the manifest.
        expected: u64,
        /// The bytes received (at least this many when `truncated`).
        actual: u64,
        /// The download was stopped because it ran past the announced size.
        truncated: bool,
    },
    /// A manifest, config or layer of a kind we cannot use.
    #[error("unsupported media type {media_type:?} for {what}; supported: {supported}")]
    UnsupportedMediaType {
        /// What carried it.
        what: String,
        /// The media type found.
        media_type: String,
        /// What would have worked.
        supported: &'static str,
    },
    /// A digest algorithm other than sha256.
    #[error("unsupported digest {digest:?} in {what}: only sha256 digests are supported")]
    UnsupportedDigest {
        /// Where it was found.
        what: String,
        /// The digest.
        digest: String,
    },
    /// The image exists, but not for the platform microVMs run.
    #[error(
        "{reference} has no linux/amd64 image (it has: {available}); build and push the image for \
         linux/amd64"
    )]
    NoPlatform {
        /// The reference asked for.
        reference: String,
        /// The platforms it does have, comma-separated.
        available: String,
    },
    /// A manifest or config that is not what the OCI image specification describes.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being read.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A layer that cannot be applied safely (bad tar, path escaping the root, ...).
    #[error("layer {digest} cannot be applied: {reason}")]
    BadLayer {
        /// The layer's digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
    /// `mkfs.ext4` is missing.
    #[error("mkfs.ext4 not found: install Debian's e2fsprogs package (scripts/setup.sh does it)")]
    MkfsMissing,
    /// `mkfs.ext4` ran and failed.
    #[error("mkfs.ext4 failed ({status}) building {}: {stderr}", image.display())]
    Mkfs {
        /// The image being built.
        image: PathBuf,
        /// How it exited.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Building a root filesystem needs root.
    #[error(
        "building a root filesystem needs root: its files must get the owners the image gives \
         them (uid/gid), which only root can set; run the agent as root"
    )]
    NotRoot,
    /// The registry answered with an error we have no better name for.
    #[error("registry {registry} failed while handling {what}: {detail}")]
    Registry {
        /// `host[:port]`.
        registry: String,
        /// What was being fetched or pushed.
        what: String,
        /// The registry's answer.
        detail: String,
    },
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }
}

/// An error and all its causes on one line: reqwest's own message omits the cause
/// ("connection refused") that makes it actionable.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_to_do() {
        let err = ImageError::DigestMismatch {
            what: "layer 1".into(),
            expected: "sha256:aa".into(),
            actual: "sha256:bb".into(),
        };
        let text = err.to_string();
        assert!(text.contains("expected sha256:aa, got sha256:bb"), "{text}");

        let err = ImageError::SizeMismatch {
            what: "layer".into(),
            expected: 10,
            actual: 11,
            truncated: true,
        };
        assert!(err.to_string().contains("cut off"), "{err}");
        assert!(
            ImageError::NotRoot
                .to_string()
                .contains("run the agent as root")
        );
    }

    #[test]
    fn chain_includes_causes_once() {
        let inner = std::io::Error::other("connection refused");
        let outer = ImageError::io("connecting")(inner);
        assert_eq!(chain(&outer), "connecting: connection refused");
    }
}
