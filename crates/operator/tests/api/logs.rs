//! Instance logs: nodes ship lines with their own credential, readers page or follow
//! them per app, env or instance, and nobody reaches another node's or org's lines.

use std::time::Duration;

use futures::{Stream, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Answer, Platform, assert_error, image};

const MANIFEST: &str = r#"
version = 1
app = "web"
[processes.web]
port = 8080
instances = 2
memory_mb = 256
"#;

const LOGS: &str = "/api/v1/orgs/acme/apps/web/logs";

/// Org `acme` with app `web` deployed as two instances, one on each of two enrolled
/// nodes.
struct Fleet {
    p: Platform,
    /// The org's admin token.
    admin: String,
    /// `(node name, node credential)`.
    nodes: Vec<(String, String)>,
    /// The instance on each node, in the order of `nodes`.
    instances: Vec<String>,
}

async fn fleet() -> Fleet {
    let p = Platform::start().await;
    let admin = p.org("acme").await;
    let mut nodes = Vec::new();
    let mut ids = Vec::new();
    for name in ["n1", "n2"] {
        let join = p
            .post("/api/v1/nodes/join-tokens", &p.root, json!({}))
            .await;
        assert_eq!(join.status, StatusCode::CREATED, "{:?}", join.body);
        let enrollment = json!({"name": name, "region": "local", "millicpus": 2000,
                                "memory_mb": 512, "addresses": ["10.0.0.1"]});
        let enrolled = p
            .post(
                "/api/v1/nodes/enroll",
                join.body["token"].as_str().unwrap(),
                enrollment,
            )
            .await;
        assert_eq!(enrolled.status, StatusCode::CREATED, "{:?}", enrolled.body);
        let credential = enrolled.body["credential"].as_str().unwrap().to_owned();
        nodes.push((name.to_owned(), credential));
        ids.push(enrolled.body["node_id"].clone());
    }
    p.post("/api/v1/orgs/acme/apps", &admin, json!({"name": "web"}))
        .await;
    let deployed = p
        .post(
            "/api/v1/orgs/acme/apps/web/envs/prod/deployments",
            &admin,
            json!({"image": image(1), "manifest": MANIFEST}),
        )
        .await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{:?}", deployed.body);
    let placed = deployed.body["instances"].as_array().unwrap();
    let instances = ids
        .iter()
        .map(|node| {
            let on_node = placed.iter().find(|i| i["node_id"] == *node).unwrap();
            on_node["id"].as_str().unwrap().to_owned()
        })
        .collect();
    Fleet {
        p,
        admin,
        nodes,
        instances,
    }
}

impl Fleet {
    /// Node `node` ships `lines` of `instance`, with `token`.
    async fn ship_as(&self, token: &str, node: usize, instance: &str, lines: &[&str]) -> Answer {
        let lines: Vec<Value> = lines
            .iter()
            .map(|l| json!({"instance_id": instance, "at": chrono::Utc::now(), "line": l}))
            .collect();
        let path = format!("/api/v1/nodes/{}/logs", self.nodes[node].0);
        self.p.post(&path, token, json!({ "lines": lines })).await
    }

    /// Node `node` ships lines of its own instance, with its own credential.
    async fn ship(&self, node: usize, lines: &[&str]) {
        let a = self
            .ship_as(&self.nodes[node].1, node, &self.instances[node], lines)
            .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    }
}

/// The `line` texts of a JSON answer.
fn texts(a: &Answer) -> Vec<String> {
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    a.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn lines_are_read_oldest_first_by_app_env_and_instance() {
    let f = fleet().await;
    let reader = f.p.token("acme", "reader").await;
    f.ship(0, &["a1", "a2", "a3"]).await;
    f.ship(1, &["b1", "b2"]).await;
    f.ship(0, &["a4"]).await;

    let all = f.p.get(LOGS, &reader).await;
    assert_eq!(texts(&all), ["a1", "a2", "a3", "b1", "b2", "a4"]);
    let first = all.body["lines"][0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["at", "id", "instance_id", "line", "process"]);
    assert_eq!(first["instance_id"], f.instances[0].as_str());
    assert_eq!(first["process"], "web");

    let tail = f.p.get(&format!("{LOGS}?tail=2"), &reader).await;
    assert_eq!(texts(&tail), ["b2", "a4"]);
    assert!(texts(&f.p.get(&format!("{LOGS}?tail=0"), &reader).await).is_empty());
    let one = format!("{LOGS}?instance={}", f.instances[1]);
    assert_eq!(texts(&f.p.get(&one, &reader).await), ["b1", "b2"]);
    assert_eq!(
        texts(&f.p.get(&format!("{LOGS}?env=prod&tail=3"), &reader).await),
        ["b1", "b2", "a4"]
    );
    let staging =
        f.p.post(
            "/api/v1/orgs/acme/apps/web/envs",
            &f.admin,
            json!({"name": "staging"}),
        )
        .await;
    assert_eq!(staging.status, StatusCode::CREATED);
    assert!(texts(&f.p.get(&format!("{LOGS}?env=staging"), &reader).await).is_empty());
    let elsewhere = format!("{LOGS}?env=staging&instance={}", f.instances[0]);
    assert_error(
        &f.p.get(&elsewhere, &reader).await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_error(
        &f.p.get(&format!("{LOGS}?env=nope"), &reader).await,
        StatusCode::NOT_FOUND,
        None,
    );
    let unknown = format!("{LOGS}?instance={}", uuid::Uuid::now_v7());
    let a = f.p.get(&unknown, &reader).await;
    assert_error(&a, StatusCode::NOT_FOUND, None);
    assert_eq!(a.body["error"]["message"], "instance not found");
}

/// One Server-Sent Event.
#[derive(Debug)]
struct Event {
    id: Option<i64>,
    event: Option<String>,
    data: Option<Value>,
}

/// Reads the next event off a stream (keep-alive comments are skipped); fails after 10 s.
async fn next_event(
    body: &mut (impl Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut String,
) -> Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut event = Event {
                    id: None,
                    event: None,
                    data: None,
                };
                for line in block.lines() {
                    match line.split_once(": ") {
                        Some(("id", v)) => event.id = Some(v.parse().unwrap()),
                        Some(("event", v)) => event.event = Some(v.to_owned()),
                        Some(("data", v)) => event.data = Some(serde_json::from_str(v).unwrap()),
                        _ => {}
                    }
                }
                if event.id.is_some() || event.data.is_some() {
                    return event;
                }
                continue;
            }
            let chunk = body.next().await.expect("the stream stays open").unwrap();
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .expect("an event within 10 s")
}

async fn open(
    f: &Fleet,
    query: &str,
    token: &str,
    last_id: Option<i64>,
) -> impl Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin + use<> {
    let mut request = reqwest::Client::new()
        .get(format!("{}{LOGS}?{query}", f.p.base))
        .bearer_auth(token);
    if let Some(id) = last_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    response.bytes_stream()
}

#[tokio::test]
async fn following_sends_the_tail_then_each_line_as_it_commits() {
    let f = fleet().await;
    let reader = f.p.token("acme", "reader").await;
    f.ship(0, &["old", "t1", "t2"]).await;

    let mut body = open(&f, "follow=1&tail=2", &reader, None).await;
    let mut buf = String::new();
    let t1 = next_event(&mut body, &mut buf).await;
    let t2 = next_event(&mut body, &mut buf).await;
    assert_eq!(t1.event.as_deref(), Some("log"));
    assert_eq!(t1.data.as_ref().unwrap()["line"], "t1");
    assert_eq!(t2.data.as_ref().unwrap()["line"], "t2");
    assert_eq!(t1.id, t1.data.as_ref().unwrap()["id"].as_i64());
    let mark = next_event(&mut body, &mut buf).await;
    assert!(mark.data.is_none(), "{mark:?}");
    assert_eq!(mark.id, t2.id, "the start cursor, for a reconnect");

    // Appended after the stream started: on its way within moments (woken by the
    // commit, not by the 5 s safety poll), other instances too.
    let shipped = std::time::Instant::now();
    f.ship(0, &["new"]).await;
    f.ship(1, &["other"]).await;
    let new = next_event(&mut body, &mut buf).await;
    assert!(
        shipped.elapsed() < Duration::from_secs(3),
        "{:?}",
        shipped.elapsed()
    );
    assert_eq!(new.data.as_ref().unwrap()["line"], "new");
    assert!(new.id > t2.id);
    let other = next_event(&mut body, &mut buf).await;
    assert_eq!(other.data.as_ref().unwrap()["line"], "other");
    drop(body);

    // A reconnect resumes after the last line seen, without a new tail (the id-only
    // event still marks where it started).
    let mut body = open(&f, "follow=1&tail=2", &reader, t2.id).await;
    let mut buf = String::new();
    let mut resumed = Vec::new();
    for _ in 0..3 {
        let e = next_event(&mut body, &mut buf).await;
        resumed.push(e.data.map(|d| d["line"].as_str().unwrap().to_owned()));
    }
    assert_eq!(
        resumed,
        [None, Some("new".to_owned()), Some("other".to_owned())]
    );

    // Narrowed to one instance, a follower sees only its lines.
    let mut body = open(
        &f,
        &format!("follow=1&tail=0&instance={}", f.instances[1]),
        &reader,
        None,
    )
    .await;
    let mut buf = String::new();
    assert!(
        next_event(&mut body, &mut buf).await.data.is_none(),
        "no tail"
    );
    f.ship(0, &["not-this"]).await;
    f.ship(1, &["this"]).await;
    let only = next_event(&mut body, &mut buf).await;
    assert_eq!(only.data.unwrap()["line"], "this");
}

#[tokio::test]
async fn a_node_ships_only_its_own_instances_lines() {
    let f = fleet().await;
    let (n1, _) = &f.nodes[0];
    let n1_credential = &f.nodes[0].1;
    // n1 ships a line of the instance on n2, and of its own, in one batch.
    let lines = json!({"lines": [
        {"instance_id": f.instances[0], "at": chrono::Utc::now(), "line": "mine"},
        {"instance_id": f.instances[1], "at": chrono::Utc::now(), "line": "forged"},
    ]});
    let forged =
        f.p.post(&format!("/api/v1/nodes/{n1}/logs"), n1_credential, lines)
            .await;
    assert_error(&forged, StatusCode::FORBIDDEN, None);
    let message = forged.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&f.instances[1]), "{message}");
    // n1's credential on n2's path, and tokens that are not node credentials.
    for (token, node) in [
        (n1_credential.as_str(), 1),
        (f.admin.as_str(), 0),
        (f.p.root.as_str(), 0),
    ] {
        let a = f.ship_as(token, node, &f.instances[node], &["x"]).await;
        assert_error(&a, StatusCode::FORBIDDEN, None);
    }
    assert!(
        texts(&f.p.get(LOGS, &f.admin).await).is_empty(),
        "no refused line was stored"
    );

    let many: Vec<String> = (0..5001).map(|i| i.to_string()).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let a = f.ship_as(n1_credential, 0, &f.instances[0], &many).await;
    assert_error(&a, StatusCode::PAYLOAD_TOO_LARGE, Some("lines"));
    let a =
        f.p.post(
            &format!("/api/v1/nodes/{n1}/logs"),
            n1_credential,
            json!({"lines": [], "colour": 1}),
        )
        .await;
    assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, None);
    f.ship(0, &many[..5000]).await;
    assert_eq!(
        texts(&f.p.get(&format!("{LOGS}?tail=10000"), &f.admin).await).len(),
        5000
    );
}

#[tokio::test]
async fn other_orgs_get_404_and_bad_queries_name_the_parameter() {
    let f = fleet().await;
    f.ship(0, &["secret"]).await;
    let other = f.p.org("bravo").await;
    for query in ["", "?follow=1", "?tail=5&instance=x"] {
        let a = f.p.get(&format!("{LOGS}{query}"), &other).await;
        assert_error(&a, StatusCode::NOT_FOUND, None);
        assert_eq!(a.body["error"]["message"], "org not found", "{query}");
    }
    let node = &f.nodes[0].1;
    assert_error(&f.p.get(LOGS, node).await, StatusCode::NOT_FOUND, None);
    assert_error(
        &f.p.send(Method::GET, LOGS, None, None).await,
        StatusCode::UNAUTHORIZED,
        None,
    );
    for (query, field) in [
        ("tial=5", "tial"),
        ("tail=10001", "tail"),
        ("tail=ten", "tail"),
        ("instance=xyz", "instance"),
        ("follow=yes", "follow"),
        ("env=Prod", "env"),
        ("tail=1&tail=2", "tail"),
    ] {
        let a = f.p.get(&format!("{LOGS}?{query}"), &f.admin).await;
        assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
    }
}

#[tokio::test]
async fn a_builds_output_is_its_nodes_to_ship_and_streams_until_the_build_ends() {
    async fn ship(p: &Platform, node: &crate::support::Agent, lines: Vec<Value>) -> Answer {
        p.post(
            &node.path("logs"),
            &node.credential,
            json!({ "lines": lines }),
        )
        .await
    }
    const REGISTRY: &str = "127.0.0.1:5000";
    let p = Platform::start_with(crate::support::with_registry(REGISTRY)).await;
    let acme = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &acme, json!({"name": "web"}))
        .await;
    let n1 = p.enroll("n1", 4096).await;
    p.keep_alive(&n1);
    let n2 = p.enroll("n2", 1).await;
    let builds = "/api/v1/orgs/acme/apps/web/envs/prod/builds";
    let source = format!("{REGISTRY}/acme/web/source@sha256:{}", "ab".repeat(32));
    let queued = p.post(builds, &acme, json!({"source": source})).await;
    assert_eq!(queued.status, StatusCode::CREATED, "{:?}", queued.body);
    let id = queued.body["id"].as_str().unwrap().to_owned();
    let line = |text: &str| json!({"build_id": id, "at": "2026-12-07T10:00:00Z", "line": text});

    let a = ship(&p, &n2, vec![line("forged")]).await;
    assert_error(&a, StatusCode::FORBIDDEN, None);
    let neither = json!({"at": "2026-12-07T10:00:00Z", "line": "x"});
    assert_error(
        &ship(&p, &n1, vec![neither]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("lines[0]"),
    );
    let a = ship(
        &p,
        &n1,
        vec![line("STEP 1/2: FROM scratch"), line("STEP 2/2: COPY")],
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);

    let reader = p.token("acme", "reader").await;
    let logs = format!("{builds}/{id}/logs");
    let tail = p.get(&format!("{logs}?tail=10"), &reader).await;
    let lines: Vec<&str> = tail.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["STEP 1/2: FROM scratch", "STEP 2/2: COPY"]);
    assert_eq!(tail.body["lines"][0]["process"], "build");
    let app_logs = p.get("/api/v1/orgs/acme/apps/web/logs", &reader).await;
    assert!(
        app_logs.body["lines"].as_array().unwrap().is_empty(),
        "an app's logs are its instances': {:?}",
        app_logs.body
    );
    assert_error(
        &p.get(&format!("{logs}?instance={id}"), &reader).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("instance"),
    );
    assert_error(
        &p.get(&format!("{builds}/{}/logs", uuid::Uuid::now_v7()), &reader)
            .await,
        StatusCode::NOT_FOUND,
        None,
    );

    // Followed: the tail, then each new line, then the end (and the stream closes).
    let response = reqwest::Client::new()
        .get(format!("{}{logs}?follow=1&tail=1", p.base))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut buf = String::new();
    let first = next_event(&mut body, &mut buf).await;
    assert_eq!(first.data.unwrap()["line"], "STEP 2/2: COPY");
    let _mark = next_event(&mut body, &mut buf).await;
    ship(&p, &n1, vec![line("error: no such file")]).await;
    let more = next_event(&mut body, &mut buf).await;
    assert_eq!(more.data.unwrap()["line"], "error: no such file");
    let state = format!("{}/{id}/state", n1.path("builds").trim_end_matches('/'));
    let failed = p
        .post(
            &state,
            &n1.credential,
            json!({"state": "failed", "reason": "the build exited with code 1"}),
        )
        .await;
    assert_eq!(failed.status, StatusCode::OK, "{:?}", failed.body);
    let end = next_event(&mut body, &mut buf).await;
    assert_eq!(end.event.as_deref(), Some("end"));
    let end = end.data.unwrap();
    assert_eq!(
        (&end["state"], &end["reason"]),
        (&json!("failed"), &json!("the build exited with code 1"))
    );
    let closed = tokio::time::timeout(Duration::from_secs(10), body.next()).await;
    assert!(
        matches!(closed, Ok(None)),
        "the stream ends with the build: {closed:?}"
    );
}
