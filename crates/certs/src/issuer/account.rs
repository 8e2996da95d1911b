//! The ACME account, one per directory for the whole platform: created by whichever
//! issuer first needs it, stored sealed in Postgres, and restored by every later one.
//! Called only under the issuers' cluster lock, so two edges never create two accounts.

use instant_acme::{Account, AccountCredentials, NewAccount};
use uuid::Uuid;
use zeitwork_crypto::SecretBox;
use zeitwork_store::Store;

use super::http::AcmeHttp;
use crate::{CertsError, record};

pub(super) async fn load_or_create(
    store: &Store,
    secrets: &SecretBox,
    http: &AcmeHttp,
    directory_url: &str,
    contact_email: Option<&str>,
) -> Result<Account, CertsError> {
    let unreachable = |e: instant_acme::Error| CertsError::Directory {
        url: directory_url.to_owned(),
        reason: e.to_string(),
    };
    let stored: Option<(Uuid, String)> =
        sqlx::query_as("SELECT id, sealed_credentials FROM acme_accounts WHERE directory_url = $1")
            .bind(directory_url)
            .fetch_optional(store.pool())
            .await?;
    if let Some((id, sealed)) = stored {
        let json = secrets
            .open(&record::account_aad(id, directory_url), &sealed)
            .ok_or_else(|| CertsError::AccountSealed(directory_url.to_owned()))?;
        let credentials: AccountCredentials = serde_json::from_slice(&json)
            .map_err(|_| CertsError::AccountSealed(directory_url.to_owned()))?;
        return Account::builder_with_http(Box::new(http.clone()))
            .from_credentials(credentials)
            .await
            .map_err(unreachable);
    }
    let contact = contact_email.map(|email| format!("mailto:{email}"));
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = Account::builder_with_http(Box::new(http.clone()))
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            directory_url.to_owned(),
            None,
        )
        .await
        .map_err(|e| match e {
            instant_acme::Error::Api(problem) => CertsError::Order(format!(
                "the ACME server refused to create an account: {problem} (check --acme-email)"
            )),
            other => unreachable(other),
        })?;
    let json = serde_json::to_vec(&credentials).expect("credentials serialize");
    let id = record::store_account(store, secrets, directory_url, &json).await?;
    tracing::info!(account = %id, directory = directory_url, id = account.id(), "ACME account created");
    Ok(account)
}
