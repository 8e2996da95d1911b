//! Exec grants and the operator's splice, with the test playing the node's agent (it
//! dials back with the node credential as the agent does): a grant is single-use and
//! expires, only deployers get one, only for a running instance of their own env, and
//! the client's and the node's connections are joined byte for byte. The whole path
//! through a real agent and microVM: `crates/e2e/tests/day_two.rs`.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeitwork_core::EventData;
use zeitwork_core::exec::{Frame, Kind, UPGRADE_PROTOCOL};

use crate::support::{Agent, Platform, assert_error, eventually, image};

const ENV: &str = "/api/v1/orgs/acme/apps/web/envs/prod";

/// An org with one app deployed on node `n1`, its instance healthy: the admin token,
/// the node and the instance's id.
async fn setup(p: &Platform) -> (String, Agent, String) {
    let admin = p.org("acme").await;
    p.post("/api/v1/orgs/acme/apps", &admin, json!({ "name": "web" }))
        .await;
    let node = p.enroll("n1", 8192).await;
    p.keep_alive(&node);
    let manifest = "version = 1\napp = \"web\"\n[processes.web]\nport = 8080\ninstances = 1\n\
                    memory_mb = 128\ncpus = 0.5\n";
    let d = p
        .post(
            &format!("{ENV}/deployments"),
            &admin,
            json!({"image": image(1), "manifest": manifest}),
        )
        .await;
    assert_eq!(d.status, StatusCode::CREATED, "{:?}", d.body);
    let id = d.body["instances"][0]["id"].as_str().unwrap().to_owned();
    report(p, &node, &id, "healthy").await;
    (admin, node, id)
}

async fn report(p: &Platform, node: &Agent, instance: &str, state: &str) {
    let path = node.path(&format!("instances/{instance}/state"));
    let body = json!({"state": state, "address": node.address(8080)});
    let a = p.post(&path, &node.credential, body).await;
    assert!(a.status.is_success(), "{:?}", a.body);
}

/// Opens an upgraded connection at `path` with `token`: the status, and the connection
/// when it switched.
async fn upgrade(
    p: &Platform,
    path: &str,
    token: &str,
) -> (StatusCode, Option<reqwest::Upgraded>, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", p.base))
        .bearer_auth(token)
        .header("connection", "upgrade")
        .header("upgrade", UPGRADE_PROTOCOL)
        .send()
        .await
        .unwrap();
    let status = response.status();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        (status, Some(response.upgrade().await.unwrap()), Value::Null)
    } else {
        let body = response.json().await.unwrap_or(Value::Null);
        (status, None, body)
    }
}

async fn grant(p: &Platform, token: &str, body: Value) -> (String, String) {
    let a = p.post(&format!("{ENV}/exec"), token, body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let s = |k: &str| a.body[k].as_str().unwrap().to_owned();
    (s("grant_id"), s("token"))
}

async fn read_frame(conn: &mut reqwest::Upgraded) -> Frame {
    let mut reader = zeitwork_core::exec::Reader::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Some(frame) = reader.next_frame().unwrap() {
            return frame;
        }
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed");
        reader.push(&buf[..n]);
    }
}

#[tokio::test]
async fn a_redeemed_grant_is_spliced_to_its_node_once_and_never_again() {
    let p = Platform::start().await;
    let (admin, node, instance) = setup(&p).await;
    let (id, token) = grant(
        &p,
        &admin,
        json!({"command": ["sh", "-c", "echo hi"], "tty": true, "term": "xterm-256color"}),
    )
    .await;
    // Not redeemed yet: the node is told nothing.
    let desired = p.get(&node.path("desired"), &node.credential).await.body;
    assert_eq!(desired["execs"], json!([]), "{desired}");

    let (status, client, _) = upgrade(&p, &format!("/api/v1/exec/{id}"), &token).await;
    assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS);
    let mut client = client.unwrap();
    let desired = eventually("the node is told", || async {
        let d = p.get(&node.path("desired"), &node.credential).await.body;
        (d["execs"].as_array().is_some_and(|e| !e.is_empty())).then_some(d)
    })
    .await;
    assert_eq!(desired["execs"][0]["grant_id"], id.as_str());
    assert_eq!(desired["execs"][0]["instance_id"], instance.as_str());
    assert_eq!(
        desired["execs"][0]["open"],
        json!({"argv": ["sh", "-c", "echo hi"], "tty": {"term": "xterm-256color"}})
    );

    // Replayed: refused, whoever tries.
    let (status, _, body) = upgrade(&p, &format!("/api/v1/exec/{id}"), &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );

    // Another node may not dial back for it; this node can, once.
    let other = p.enroll("n2", 8192).await;
    let path = format!("execs/{id}");
    let (status, _, _) = upgrade(&p, &node.path(&path), &other.credential).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = upgrade(&p, &other.path(&path), &other.credential).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, agent, _) = upgrade(&p, &node.path(&path), &node.credential).await;
    assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS);
    let mut agent = agent.unwrap();
    let (status, _, _) = upgrade(&p, &node.path(&path), &node.credential).await;
    assert_eq!(status, StatusCode::GONE);

    // Spliced both ways, byte for byte.
    let out = Frame::new(Kind::Stdout, 0, b"hi\n".to_vec());
    agent.write_all(&out.encode()).await.unwrap();
    assert_eq!(read_frame(&mut client).await, out);
    let input = Frame::resize(0, 40, 120);
    client.write_all(&input.encode()).await.unwrap();
    assert_eq!(read_frame(&mut agent).await, input);
    agent.write_all(&Frame::exit(0, 3).encode()).await.unwrap();
    assert_eq!(read_frame(&mut client).await.as_exit(), Ok(3));

    // Who ran what where is in the log.
    let (actor, payload): (String, Value) =
        sqlx::query_as("SELECT actor, payload FROM events WHERE kind = 'exec_granted'")
            .fetch_one(p.store.pool())
            .await
            .unwrap();
    assert!(actor.starts_with("token:"), "{actor}");
    assert_eq!(payload["instance_id"], instance.as_str());
    assert_eq!(payload["command"], json!(["sh", "-c", "echo hi"]));
    assert!(
        !payload.to_string().contains(&token),
        "the secret is never stored"
    );
    assert_eq!(p.count("exec_started").await, 1);
    p.assert_rebuild_is_exact().await;
}

#[tokio::test]
async fn grants_are_refused_when_wrong_expired_or_not_ours() {
    let p = Platform::start().await;
    let (admin, node, instance) = setup(&p).await;

    // A wrong secret, an unknown grant, no upgrade.
    let (id, token) = grant(&p, &admin, json!({"command": ["true"]})).await;
    let (status, _, _) = upgrade(&p, &format!("/api/v1/exec/{id}"), "zw_wrong").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let unknown = uuid::Uuid::new_v4();
    let (status, _, _) = upgrade(&p, &format!("/api/v1/exec/{unknown}"), &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let plain = p.get(&format!("/api/v1/exec/{id}"), &token).await;
    assert_error(&plain, StatusCode::UPGRADE_REQUIRED, None);

    // Expired (written as the operator writes it, a minute in the past).
    let expired = uuid::Uuid::new_v4();
    let secret = "zw_expiredexpiredexpiredexpiredexpiredexpi";
    let mut tx = p.store.begin().await.unwrap();
    zeitwork_store::log::append(
        &mut tx,
        None,
        "test",
        EventData::ExecGranted {
            grant_id: expired,
            instance_id: instance.parse().unwrap(),
            node_id: node.id.parse().unwrap(),
            command: vec!["true".into()],
            tty: false,
            term: None,
            hash: zeitwork_operator::auth::hash(secret),
            expires_at: chrono::Utc::now() - chrono::Duration::seconds(1),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (status, _, body) = upgrade(&p, &format!("/api/v1/exec/{expired}"), secret).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );

    // Bad input names its field.
    let exec = format!("{ENV}/exec");
    let bad = [
        (json!({"command": []}), "command"),
        (json!({"command": [""]}), "command"),
        (json!({"command": ["sh"], "term": "xterm"}), "term"),
        (
            json!({"command": ["sh"], "tty": true, "term": "x term"}),
            "term",
        ),
        (json!({"command": ["sh"], "process": "worker"}), "process"),
    ];
    for (body, field) in bad {
        let a = p.post(&exec, &admin, body.clone()).await;
        assert!(a.status.is_client_error(), "{body}: {:?}", a.body);
        assert_eq!(a.body["error"]["field"], field, "{body}: {:?}", a.body);
    }
    let a = p
        .post(&exec, &admin, json!({"command": ["sh"], "user": "root"}))
        .await;
    assert!(a.status.is_client_error(), "{:?}", a.body);

    // Readers may not exec.
    let reader = p.token("acme", "reader").await;
    let a = p.post(&exec, &reader, json!({"command": ["true"]})).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{:?}", a.body);

    // Another org's instance is not found from here; neither is a stopped one.
    let globex = p.org("globex").await;
    p.post(
        "/api/v1/orgs/globex/apps",
        &globex,
        json!({ "name": "web" }),
    )
    .await;
    let theirs = "/api/v1/orgs/globex/apps/web/envs/prod/exec";
    let a = p
        .post(
            theirs,
            &globex,
            json!({"command": ["true"], "instance": instance}),
        )
        .await;
    assert_error(&a, StatusCode::NOT_FOUND, Some("instance"));
    let a = p
        .post(
            &exec,
            &globex,
            json!({"command": ["true"], "instance": instance}),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{:?}", a.body);
    report(&p, &node, &instance, "stopped").await;
    let a = p
        .post(
            &exec,
            &admin,
            json!({"command": ["true"], "instance": instance}),
        )
        .await;
    assert_error(&a, StatusCode::NOT_FOUND, Some("instance"));
    let a = p.post(&exec, &admin, json!({"command": ["true"]})).await;
    assert_error(&a, StatusCode::NOT_FOUND, Some("process"));
}
