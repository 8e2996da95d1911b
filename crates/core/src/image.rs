//! OCI image references. A release is an immutable tuple of image digest and manifest
//! hash, so a deploy needs the digest: a tag alone could change under our feet.

use std::fmt;

/// Why an image reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("image reference is empty")]
    Empty,
    #[error("image reference {0:?} has no digest: pin it as NAME@sha256:<64 hex digits>")]
    NotPinned(String),
    #[error("image digest {0:?} is not sha256:<64 lowercase hex digits>")]
    BadDigest(String),
    #[error("image reference {0:?} contains whitespace or an empty repository")]
    BadRepository(String),
}

/// A digest-pinned image reference such as `127.0.0.1:5000/hello:1@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry and repository, with the tag if one was given (kept for display).
    pub name: String,
    /// `sha256:<hex>`.
    pub digest: String,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, ImageRefError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ImageRefError::Empty);
        }
        let Some((name, digest)) = s.rsplit_once('@') else {
            return Err(ImageRefError::NotPinned(s.to_owned()));
        };
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(ImageRefError::BadRepository(s.to_owned()));
        }
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| ImageRefError::BadDigest(digest.to_owned()))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ImageRefError::BadDigest(digest.to_owned()));
        }
        Ok(ImageRef {
            name: name.to_owned(),
            digest: digest.to_owned(),
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_pinned_reference() {
        let r = ImageRef::parse(&format!("127.0.0.1:5000/hello:1@{D}")).unwrap();
        assert_eq!(r.name, "127.0.0.1:5000/hello:1");
        assert_eq!(r.digest, D);
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/hello:1@{D}"));
    }

    #[test]
    fn refuses_tags_and_bad_digests() {
        assert!(matches!(
            ImageRef::parse("hello:latest"),
            Err(ImageRefError::NotPinned(_))
        ));
        assert!(matches!(
            ImageRef::parse("hello@sha256:abc"),
            Err(ImageRefError::BadDigest(_))
        ));
        assert!(matches!(
            ImageRef::parse("hello@md5:abc"),
            Err(ImageRefError::BadDigest(_))
        ));
        assert!(matches!(
            ImageRef::parse(&format!("@{D}")),
            Err(ImageRefError::BadRepository(_))
        ));
        assert_eq!(ImageRef::parse("  "), Err(ImageRefError::Empty));
    }
}
