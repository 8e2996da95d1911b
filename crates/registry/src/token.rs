//! Signed registry tokens: a JWT (ES256) the registry verifies with the certificate it
//! trusts, naming what it grants.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::{Access, ISSUER, SERVICE, TokenKey};

/// What to sign.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Who asked (a token id, a node's name): the JWT's `sub`, in the registry's logs.
    pub subject: String,
    /// What the token grants; may be empty (the registry then refuses every request).
    pub granted: Vec<Access>,
    /// Seconds since the epoch, now.
    pub now: u64,
    /// How long the token is good for, in seconds.
    pub ttl: u64,
    /// A unique id for the token (`jti`).
    pub id: String,
}

/// A signed token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub token: String,
    pub expires_in: u64,
}

/// Signs `request` with `key`.
pub fn issue(key: &TokenKey, request: &TokenRequest) -> Issued {
    let header = json!({ "alg": "ES256", "typ": "JWT", "kid": key.kid() });
    let claims = json!({
        "iss": ISSUER,
        "sub": request.subject,
        "aud": SERVICE,
        "iat": request.now,
        // A little slack for clocks a second or two apart.
        "nbf": request.now.saturating_sub(10),
        "exp": request.now + request.ttl,
        "jti": request.id,
        "access": request.granted,
    });
    let encode = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let signing_input = format!("{}.{}", encode(&header), encode(&claims));
    let signature = URL_SAFE_NO_PAD.encode(key.sign(signing_input.as_bytes()));
    Issued {
        token: format!("{signing_input}.{signature}"),
        expires_in: request.ttl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    #[test]
    fn a_token_verifies_with_the_key_and_says_what_it_grants() {
        let key = TokenKey::generate().unwrap();
        let issued = issue(
            &key,
            &TokenRequest {
                subject: "token:42".into(),
                granted: vec![Access::repository("acme/web", vec![Action::Pull])],
                now: 1_000_000,
                ttl: 300,
                id: "j1".into(),
            },
        );
        let parts: Vec<&str> = issued.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let public = key.public_key();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &public)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("the signature verifies");
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["kid"], key.kid());
        assert_eq!(header["alg"], "ES256");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], SERVICE);
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["exp"], 1_000_300);
        assert_eq!(claims["access"][0]["name"], "acme/web");
        assert_eq!(claims["access"][0]["actions"], json!(["pull"]));
        assert_eq!(issued.expires_in, 300);
    }
}
