//! Secrets are sealed with [`SecretBox`] (crate `zeitwork-crypto`, shared with the edge)
//! before they reach the event log, bound (as associated data) to their env, name and
//! version so a ciphertext cannot be replayed under another name. The key never leaves
//! the operator's memory.

pub use zeitwork_crypto::{KeyError, SecretBox};

/// Associated data binding a secret's ciphertext to its env, name and version.
pub fn secret_aad(env_id: uuid::Uuid, name: &str, version: i32) -> String {
    format!("{env_id}/{name}/{version}")
}

/// Associated data binding a repository connection's webhook secret to its app and hook.
pub fn webhook_secret_aad(app_id: uuid::Uuid, hook_id: uuid::Uuid) -> String {
    format!("repository/{app_id}/{hook_id}/webhook-secret")
}

/// Associated data binding a repository's fetch token to its app.
pub fn repository_token_aad(app_id: uuid::Uuid) -> String {
    format!("repository/{app_id}/token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_opens_only_under_its_own_env_name_and_version() {
        let b = SecretBox::from_hex(&SecretBox::generate_hex()).unwrap();
        let env = uuid::Uuid::from_u128(7);
        let sealed = b.seal(&secret_aad(env, "DB_URL", 1), b"postgres://secret");
        assert!(b.open(&secret_aad(env, "DB_URL", 1), &sealed).is_some());
        assert!(b.open(&secret_aad(env, "DB_URL", 2), &sealed).is_none());
        assert!(b.open(&secret_aad(env, "OTHER", 1), &sealed).is_none());
    }
}
