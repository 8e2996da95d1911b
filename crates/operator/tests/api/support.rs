//! A running operator on a random port over a throwaway Postgres.

use std::time::Duration;

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

/// The operator settings of tests: the monitor looks every 100 ms.
/// [`config`] with a platform registry at `address`, whose token service the operator is.
pub fn with_registry(address: &str) -> Config {
    Config {
        registry: Some(std::sync::Arc::new(
            zeitwork_operator::registry::PlatformRegistry {
                address: address.into(),
                key: zeitwork_registry::TokenKey::generate().unwrap(),
            },
        )),
        ..config()
    }
}

pub fn config() -> Config {
    Config {
        monitor_interval: Duration::from_millis(100),
        ..Config::default()
    }
}

impl Platform {
    pub async fn start() -> Platform {
        Platform::start_with(config()).await
    }

    /// An operator (API and node monitor) with these settings.
    pub async fn start_with(config: Config) -> Platform {
        let pg = Postgres::throwaway().await.expect("throwaway postgres");
        let store = Store::connect(&pg.url()).await.unwrap();
        let root = zeitwork_operator::auth::bootstrap_platform_token(&store)
            .await
            .unwrap()
            .unwrap();
        let secrets = SecretBox::from_hex(&SecretBox::generate_hex()).unwrap();
        let app = zeitwork_operator::app(store.clone(), secrets, config.clone())
            .await
            .unwrap();
        tokio::spawn(zeitwork_operator::monitor::run(
            store.clone(),
            config.clone(),
            std::future::pending(),
        ));
        tokio::spawn(zeitwork_operator::autoscale::run(
            store.clone(),
            config,
            std::future::pending(),
        ));
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

    /// A request with one extra header and no bearer token.
    pub async fn send_with_header(
        &self,
        method: Method,
        path: &str,
        header: (&str, &str),
    ) -> Answer {
        let resp = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header(header.0, header.1)
            .send()
            .await
            .unwrap();
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

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(token), Some(&body)).await
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

/// An enrolled node, as its agent knows it.
pub struct Agent {
    pub id: String,
    pub name: String,
    pub credential: String,
    /// The instance /64 the operator allocated it.
    pub instance_prefix: String,
}

impl Agent {
    /// An instance address inside this node's prefix.
    pub fn address(&self, port: u16) -> String {
        let prefix = self.instance_prefix.trim_end_matches("/64");
        format!("[{prefix}5]:{port}")
    }

    /// `/api/v1/nodes/<name>/<rest>`
    pub fn path(&self, rest: &str) -> String {
        format!("/api/v1/nodes/{}/{rest}", self.name)
    }
}

impl Platform {
    /// A one-time join token, made with the platform token.
    pub async fn join_token(&self) -> String {
        let a = self
            .post("/api/v1/nodes/join-tokens", &self.root, json!({}))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        a.body["token"].as_str().unwrap().to_owned()
    }

    /// Enrolls a node with 2 CPUs and `memory_mb` in region `local`.
    pub async fn enroll(&self, name: &str, memory_mb: u64) -> Agent {
        let token = self.join_token().await;
        let body = json!({"name": name, "region": "local", "millicpus": 2000,
                          "memory_mb": memory_mb, "addresses": ["10.0.0.1"]});
        let a = self.post("/api/v1/nodes/enroll", &token, body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        Agent {
            id: a.body["node_id"].as_str().unwrap().to_owned(),
            name: name.to_owned(),
            credential: a.body["credential"].as_str().unwrap().to_owned(),
            instance_prefix: a.body["instance_prefix"].as_str().unwrap().to_owned(),
        }
    }

    /// Heartbeats for the node every 250 ms, for as long as the test runs.
    pub fn keep_alive(&self, agent: &Agent) {
        let url = format!("{}{}", self.base, agent.path("heartbeat"));
        let (client, credential) = (self.client.clone(), agent.credential.clone());
        tokio::spawn(async move {
            loop {
                let beat = client.post(&url).bearer_auth(&credential);
                let _ = beat.json(&json!({"running": 0})).send().await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }

    /// How many events of this kind the log holds.
    pub async fn count(&self, kind: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM events WHERE kind = $1")
            .bind(kind)
            .fetch_one(self.store.pool())
            .await
            .unwrap();
        n
    }

    /// Rebuilds the projections from the log and asserts they come out equal.
    pub async fn assert_rebuild_is_exact(&self) {
        let mut db = self.store.pool().acquire().await.unwrap();
        let live = zeitwork_store::rebuild::snapshot(&mut db).await.unwrap();
        zeitwork_store::rebuild::rebuild(&self.store).await.unwrap();
        let rebuilt = zeitwork_store::rebuild::snapshot(&mut db).await.unwrap();
        assert_eq!(rebuilt, live, "the projections differ after a rebuild");
    }
}

/// Polls `check` until it yields something, for at most 10 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
