//! The ACME client's HTTPS: hyper with rustls on ring, trusting the public web PKI plus
//! an optional bundle, so a private ACME server (Pebble in tests, a company CA) works
//! without touching the system's trust store. (instant-acme's own client would pull in
//! the platform verifier and knows one extra root at most.)

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::ClientConfig;
use rustls::crypto::ring::default_provider;

use crate::CertsError;

/// The longest one request to the CA may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub(super) struct AcmeHttp {
    client: Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
}

impl AcmeHttp {
    pub(super) fn new(ca_bundle: Option<&Path>) -> Result<AcmeHttp, CertsError> {
        let roots = crate::roots(ca_bundle).map_err(|reason| CertsError::CaBundle {
            path: ca_bundle.unwrap_or(Path::new("")).to_owned(),
            reason,
        })?;
        let tls = ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        Ok(AcmeHttp {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let response = self.client.request(req);
        Box::pin(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, response).await {
                Ok(Ok(rsp)) => Ok(BytesResponse::from(rsp)),
                Ok(Err(e)) => Err(instant_acme::Error::Other(Box::new(e))),
                Err(_) => Err(instant_acme::Error::Str(
                    "the ACME server did not answer within 30 s",
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_bundle_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "no certificates here").unwrap();
        let err = AcmeHttp::new(Some(&path)).err().unwrap().to_string();
        assert!(
            err.contains("ca.pem") && err.contains("ZEITWORK_ACME_CA_BUNDLE"),
            "{err}"
        );
        let missing = AcmeHttp::new(Some(&dir.path().join("missing.pem")));
        assert!(matches!(missing, Err(CertsError::CaBundle { .. })));
    }
}
