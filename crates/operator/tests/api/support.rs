//! A running operator on a random port over a throwaway Postgres.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use zeitwork_operator::{Config, SecretBox};
use zeitwork_services::Postgres;
use zeitwork_store::Store;

pub struct Platform {
    pub store: Store,
    pub base: String,
    /// The platform (bootstrap) token.
    pub root: String,
    client: reqwest::Client,
    _pg: Postgres,
}

pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Platform {
    pub async fn start() -> Platform {
        let pg = Postgres::throwaway().await.expect("throwaway postgres");
        let store = Store::connect(&pg.url()).await.unwrap();
        let root = zeitwork_operator::auth::bootstrap_platform_token(&store)
            .await
            .unwrap()
            .unwrap();
        let secrets = SecretBox::from_hex(&SecretBox::generate_hex()).unwrap();
        let app = zeitwork_operator::app(store.clone(), secrets, Config::default())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(zeitwork_operator::serve(
            listener,
            app,
            std::future::pending(),
        ));
        Platform {
            store,
            base,
            root,
            client: reqwest::Client::new(),
            _pg: pg,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, body }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(token), Some(&body))
            .await
    }

    /// Creates an org with an admin token and returns the token.
    pub async fn org(&self, name: &str) -> String {
        let a = self
            .post("/api/v1/orgs", &self.root, json!({ "name": name }))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        self.token(name, "admin").await
    }

    pub async fn token(&self, org: &str, role: &str) -> String {
        let path = format!("/api/v1/orgs/{org}/tokens");
        let a = self
            .post(
                &path,
                &self.root,
                json!({ "name": format!("{role}-token"), "role": role }),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        a.body["secret"].as_str().unwrap().to_owned()
    }

    /// The committed head of the event log.
    pub async fn head(&self) -> i64 {
        let mut db = self.store.pool().acquire().await.unwrap();
        zeitwork_store::log::head(&mut db).await.unwrap()
    }
}

/// A digest-pinned image reference for deploys.
pub fn image(n: u8) -> String {
    format!(
        "127.0.0.1:5000/hello@sha256:{}",
        format!("{n:02x}").repeat(32)
    )
}

/// Asserts an error answer's status, code and (optionally) field.
pub fn assert_error(a: &Answer, status: StatusCode, field: Option<&str>) {
    assert_eq!(a.status, status, "{:?}", a.body);
    let error = &a.body["error"];
    assert!(
        error["code"].is_string() && error["message"].is_string(),
        "error shape: {:?}",
        a.body
    );
    if let Some(f) = field {
        assert_eq!(error["field"], f, "{:?}", a.body);
    }
}
