//! Sealing of secrets at rest. Whatever must be kept in Postgres but never readable from
//! it (env secrets, TLS private keys, the ACME account key) is sealed with
//! XChaCha20-Poly1305 before it reaches the event log, bound (as associated data) to what
//! it belongs to, so a ciphertext cannot be replayed under another name. The key lives
//! only in the memory of the processes that need it (operator, edges), never in Postgres.
//!
//! A crate of its own so the edge can open what the operator seals without depending on
//! the operator.

#![forbid(unsafe_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the secret key must be 32 bytes written as 64 hex characters")]
    Malformed,
}

/// The platform's sealing key. Cheap to clone; its `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// From 64 hex characters (`ZEITWORK_SECRET_KEY` or the key file of `zeitwork up`).
    pub fn from_hex(hex_key: &str) -> Result<SecretBox, KeyError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| KeyError::Malformed)?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| KeyError::Malformed)?;
        Ok(SecretBox { cipher })
    }

    /// A fresh random key in the hex form `from_hex` reads.
    pub fn generate_hex() -> String {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        hex::encode(key)
    }

    /// base64(nonce ‖ ciphertext); a random 24-byte nonce per call, which XChaCha's
    /// nonce size makes safe without a counter.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("encryption cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        STANDARD.encode(out)
    }

    /// Reverses `seal`; `None` when the key, the associated data or the bytes differ.
    pub fn open(&self, aad: &str, sealed: &str) -> Option<Vec<u8>> {
        let raw = STANDARD.decode(sealed).ok()?;
        if raw.len() < 24 {
            return None;
        }
        let (nonce, body) = raw.split_at(24);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: aad.as_bytes(),
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_associated_data() {
        let b = SecretBox::from_hex(&SecretBox::generate_hex()).unwrap();
        let sealed = b.seal("env/DB_URL/1", b"postgres://secret");
        assert!(!sealed.contains("secret"));
        assert_eq!(
            b.open("env/DB_URL/1", &sealed).unwrap(),
            b"postgres://secret"
        );
        assert!(b.open("env/DB_URL/2", &sealed).is_none());
        let other = SecretBox::from_hex(&SecretBox::generate_hex()).unwrap();
        assert!(other.open("env/DB_URL/1", &sealed).is_none());
    }

    #[test]
    fn rejects_short_keys() {
        assert!(SecretBox::from_hex("abcd").is_err());
        assert!(SecretBox::from_hex("zz").is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let b = SecretBox::from_hex(&SecretBox::generate_hex()).unwrap();
        assert_eq!(format!("{b:?}"), "SecretBox(..)");
    }
}
