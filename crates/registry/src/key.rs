//! The key the operator signs registry tokens with (ECDSA P-256, ES256) and the
//! certificate holding its public half, which the registry trusts (`rootcertbundle`).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use sha2::{Digest as _, Sha256};

/// Why the token key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} holds no ECDSA P-256 private key (PKCS#8 PEM, \"BEGIN PRIVATE KEY\")")]
    Malformed(String),
    #[error("generating a key or certificate: {0}")]
    Generate(String),
}

/// DER of a P-256 SubjectPublicKeyInfo up to the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const PEM_LABEL: &str = "PRIVATE KEY";

/// The signing key. Its `Debug` never shows the private half.
pub struct TokenKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("kid", &self.kid())
            .finish()
    }
}

impl TokenKey {
    /// A new random key.
    pub fn generate() -> Result<TokenKey, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        TokenKey::from_pkcs8(pkcs8.as_ref().to_vec(), "a new key")
    }

    fn from_pkcs8(pkcs8: Vec<u8>, what: &str) -> Result<TokenKey, KeyError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|_| KeyError::Malformed(what.to_owned()))?;
        Ok(TokenKey { pair, pkcs8, rng })
    }

    /// The key in `path` (PKCS#8 PEM), made there (owner-only) when the file is missing.
    pub fn load_or_create(path: &Path) -> Result<TokenKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(pem) => TokenKey::from_pem(&pem, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = TokenKey::generate()?;
                write_private(path, key.to_pem().as_bytes()).map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Reads a PKCS#8 PEM key; `what` names its source in errors.
    pub fn from_pem(pem: &str, what: &str) -> Result<TokenKey, KeyError> {
        let body: String = pem
            .lines()
            .skip_while(|l| l.trim() != format!("-----BEGIN {PEM_LABEL}-----"))
            .skip(1)
            .take_while(|l| l.trim() != format!("-----END {PEM_LABEL}-----"))
            .map(str::trim)
            .collect();
        let der = STANDARD
            .decode(body)
            .map_err(|_| KeyError::Malformed(what.to_owned()))?;
        TokenKey::from_pkcs8(der, what)
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pem(&self) -> String {
        pem(PEM_LABEL, &self.pkcs8)
    }

    /// The key's id as the registry computes it from the certificate (libtrust's): the
    /// first 240 bits of the SHA-256 of the public key's DER, base32, in 12 groups of 4.
    pub fn kid(&self) -> String {
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(self.pair.public_key().as_ref());
        let digest = Sha256::digest(&spki);
        let text = base32(&digest[..30]);
        text.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// A self-signed certificate of the public key: what the registry's
    /// `auth.token.rootcertbundle` names.
    pub fn certificate_pem(&self) -> Result<String, KeyError> {
        let generate = |e: rcgen::Error| KeyError::Generate(e.to_string());
        let pair = rcgen::KeyPair::from_pem(&self.to_pem()).map_err(generate)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(generate)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "zeitwork registry tokens");
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        Ok(params.self_signed(&pair).map_err(generate)?.pem())
    }

    /// The ES256 signature (r ‖ s, 64 bytes) of `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&self.rng, message)
            .expect("signing with a valid key and the system RNG does not fail")
            .as_ref()
            .to_vec()
    }

    /// The uncompressed public point, for verifying in tests.
    #[cfg(test)]
    pub(crate) fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
}

/// RFC 4648 base32, unpadded.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes a new owner-only file (never readable by others, not even briefly).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_is_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn a_key_is_kept_owner_only_and_reads_back_with_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry-token.key");
        let made = TokenKey::load_or_create(&path).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let read = TokenKey::load_or_create(&path).unwrap();
        assert_eq!(read.kid(), made.kid());
        let kid = made.kid();
        assert_eq!(kid.len(), 12 * 4 + 11, "{kid}");
        assert!(kid.split(':').all(|g| g.len() == 4), "{kid}");
        assert!(!format!("{made:?}").contains(&made.to_pem()[30..60]));
        let cert = made.certificate_pem().unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        std::fs::write(dir.path().join("bad"), "not a key").unwrap();
        assert!(matches!(
            TokenKey::load_or_create(&dir.path().join("bad")),
            Err(KeyError::Malformed(_))
        ));
    }
}
