//! Content digests (`sha256:<64 hex>`) and readers that compute them on the way through.
//!
//! Everything an image is made of is named by the hash of its bytes; checking that hash on every
//! byte we receive is what makes a registry (or anything between us and it) unable to slip us
//! other content.

use std::fmt;
use std::io::Read;

use sha2::{Digest as _, Sha256};

use crate::ImageError;

/// A validated sha256 content digest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`; `what` names where it came from for the error.
    pub(crate) fn parse(digest: &str, what: &str) -> Result<Digest, ImageError> {
        let unsupported = || ImageError::UnsupportedDigest {
            what: what.to_owned(),
            digest: digest.to_owned(),
        };
        let hex = digest.strip_prefix("sha256:").ok_or_else(unsupported)?;
        let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Err(ImageError::Invalid {
                what: what.to_owned(),
                reason: format!("{digest:?} is not sha256:<64 lowercase hex digits>"),
            });
        }
        Ok(Digest {
            hex: hex.to_owned(),
        })
    }

    /// The digest of `bytes`.
    pub(crate) fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The digest of everything fed to `hasher`.
    pub(crate) fn from_hasher(hasher: Sha256) -> Digest {
        Digest {
            hex: hex::encode(hasher.finalize()),
        }
    }

    /// `sha256-<hex>`: a file name without a colon, which some tools (QEMU's `-drive file=`)
    /// would read as a protocol prefix.
    pub(crate) fn file_name(&self) -> String {
        format!("sha256-{}", self.hex)
    }

    /// The inverse of [`Digest::file_name`], for names found on disk (with any extension cut).
    pub(crate) fn from_file_name(name: &str) -> Option<Digest> {
        let hex = name.strip_prefix("sha256-")?;
        Digest::parse(&format!("sha256:{hex}"), "a cache file name").ok()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// A reader that hashes and counts what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads what is left (a tar reader stops at the end-of-archive blocks, but the digest
    /// covers the whole stream) and returns the digest and byte count of everything.
    pub(crate) fn finish(mut self) -> std::io::Result<(Digest, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        self.count += read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_sha256() {
        let digest = Digest::parse(EMPTY, "test").unwrap();
        assert_eq!(digest.to_string(), EMPTY);
        assert_eq!(Digest::of(b""), digest);
        assert_eq!(
            Digest::from_file_name(&digest.file_name()),
            Some(digest.clone())
        );
        assert!(!digest.file_name().contains(':'));
    }

    #[test]
    fn rejects_other_algorithms_and_bad_hex() {
        let err = Digest::parse(&format!("sha512:{}", "a".repeat(128)), "x").unwrap_err();
        assert!(matches!(err, ImageError::UnsupportedDigest { .. }), "{err}");
        for bad in [
            "sha256:abc",
            &EMPTY.to_uppercase().replace("SHA", "sha"),
            "sha256:../../etc",
        ] {
            let err = Digest::parse(bad, "x").unwrap_err();
            assert!(matches!(err, ImageError::Invalid { .. }), "{bad}: {err}");
        }
        assert_eq!(Digest::from_file_name("sha256-xyz"), None);
        assert_eq!(Digest::from_file_name("other"), None);
    }

    #[test]
    fn hashing_reader_covers_what_is_left_unread() {
        let mut reader = HashingReader::new(&b"hello world"[..]);
        let mut first = [0; 5];
        reader.read_exact(&mut first).unwrap();
        let (digest, count) = reader.finish().unwrap();
        assert_eq!(digest, Digest::of(b"hello world"));
        assert_eq!(count, 11);
    }
}
