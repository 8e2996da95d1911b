//! Request framing through both lanes: an instance that records, byte for byte, every
//! request it reads off its kept connections, and a corpus of framing shapes sent to a
//! host the express lane serves and to one the hyper path serves (a route hashing on a
//! header, which the lane hands over). Each client request must reach the instance as
//! exactly one request, framed alike on both paths, or be refused on both; nothing a
//! client sends may stay behind on a kept connection to become part of the next
//! client's request.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{BASE, World};

const NEVER: Duration = Duration::from_secs(3600);
/// Served by the express lane (the env's hostname).
fn express_host() -> String {
    format!("shop-acme.{BASE}")
}
/// Served by the hyper path: its route hashes on a header, which the lane leaves to it.
const HYPER_HOST: &str = "hyper.example.com";

/// An instance reading requests with a strict parser off kept connections, recording
/// each (framing only) and answering each with `answer`.
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    pub async fn start(answer: &'static str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(record(stream, log.clone(), answer));
            }
        });
        Recorder { addr, seen }
    }

    /// What was recorded since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

async fn record(mut stream: TcpStream, log: Arc<Mutex<Vec<String>>>, answer: &'static str) {
    let mut buf = Vec::new();
    loop {
        let (summary, used, close) = loop {
            match summarize(&buf) {
                Parsed::Request(summary, used, close) => break (summary, used, close),
                Parsed::Garbage => {
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    log.lock().unwrap().push(format!("GARBAGE {text:?}"));
                    return;
                }
                Parsed::Partial => {}
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    if !buf.is_empty() {
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        log.lock().unwrap().push(format!("LEFT OVER {text:?}"));
                    }
                    return;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        buf.drain(..used);
        log.lock().unwrap().push(summary);
        if stream.write_all(answer.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

enum Parsed {
    /// The request's framing, the bytes it took, and whether it asked to close.
    Request(String, usize, bool),
    Partial,
    Garbage,
}

/// One request from the start of `buf`, read as a strict HTTP/1.1 server reads it.
fn summarize(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Garbage,
    };
    let values = |name: &str| -> Vec<String> {
        let named = req
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name));
        named
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
            .collect()
    };
    let (lengths, codings, hosts) = (
        values("content-length"),
        values("transfer-encoding"),
        values("host"),
    );
    let close = values("connection").iter().any(|v| v.contains("close"));
    let host = match hosts.as_slice() {
        [h] if h == HYPER_HOST || *h == express_host() => "ok".to_owned(),
        other => format!("{other:?}"),
    };
    let rest = &buf[head..];
    let (body, used) = if codings.last().is_some_and(|c| c.ends_with("chunked")) {
        match dechunk(rest) {
            Some(Some(decoded)) => decoded,
            Some(None) => return Parsed::Partial,
            None => return Parsed::Garbage,
        }
    } else if let Some(length) = lengths.first() {
        let Ok(n) = length.parse::<usize>() else {
            return Parsed::Garbage;
        };
        if rest.len() < n {
            return Parsed::Partial;
        }
        (rest[..n].to_vec(), n)
    } else {
        (Vec::new(), 0)
    };
    let summary = format!(
        "{} {} host={host} content-length={lengths:?} transfer-encoding={codings:?} body={:?}",
        req.method.unwrap(),
        req.path.unwrap(),
        String::from_utf8_lossy(&body)
    );
    Parsed::Request(summary, head + used, close)
}

/// A chunked body from the start of `bytes`: `None` when malformed, `Some(None)`
/// when incomplete, else the data and the bytes it took (trailers included).
fn dechunk(bytes: &[u8]) -> Option<Option<(Vec<u8>, usize)>> {
    let (mut at, mut data) = (0, Vec::new());
    let line = |from: usize| {
        let end = bytes[from..].windows(2).position(|w| w == b"\r\n")?;
        Some((&bytes[from..from + end], from + end + 2))
    };
    loop {
        let Some((size_line, next)) = line(at) else {
            return Some(None);
        };
        let size = size_line.split(|b| *b == b';').next()?;
        let size = usize::from_str_radix(std::str::from_utf8(size).ok()?.trim(), 16).ok()?;
        at = next;
        if size == 0 {
            loop {
                let Some((trailer, next)) = line(at) else {
                    return Some(None);
                };
                at = next;
                if trailer.is_empty() {
                    return Some(Some((data, at)));
                }
            }
        }
        if bytes.len() < at + size + 2 {
            return Some(None);
        }
        data.extend_from_slice(&bytes[at..at + size]);
        if &bytes[at + size..at + size + 2] != b"\r\n" {
            return None;
        }
        at += size + 2;
    }
}

/// The final statuses of the answers in `bytes` (informational ones skipped) and the
/// bodies they carried.
fn answers(mut bytes: &[u8]) -> Vec<(u16, String)> {
    let mut found = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = res.parse(bytes) else {
            panic!("not an answer: {:?}", String::from_utf8_lossy(bytes));
        };
        let code = res.code.unwrap();
        let named = |name: &str| {
            let mut values = res
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name));
            values
                .next()
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let rest = &bytes[head..];
        let (body, used) = if (100..200).contains(&code) {
            (Vec::new(), 0)
        } else if named("transfer-encoding").is_some() {
            dechunk(rest).flatten().expect("a whole chunked answer")
        } else {
            let length = named("content-length").expect("answers carry a length");
            let n: usize = length.parse().unwrap();
            (rest[..n].to_vec(), n)
        };
        if code >= 200 {
            found.push((code, String::from_utf8_lossy(&body).into_owned()));
        }
        bytes = &rest[used..];
    }
    found
}

/// Sends `raw` on a new connection and reads until the edge closes it.
async fn send(edge: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(edge).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut bytes = Vec::new();
    let read = stream.read_to_end(&mut bytes);
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the edge closes the connection")
        .unwrap();
    bytes
}

/// A world whose app has one instance, at `instance`, behind both hosts.
async fn both_lanes(instance: SocketAddr) -> (World, crate::support::Running) {
    let world = World::new().await;
    let app = world.app(&["prod"]).await;
    let ids = world.deploy(&app, "prod", "one", 1).await;
    world.healthy(&app, ids[0], instance).await;
    let policy = json!({"balance": "consistent-hash", "hash_on": "header:x-user"});
    world.route(&app, HYPER_HOST, instance.port(), policy).await;
    let edge = crate::support::Running::start(&world, None, NEVER).await;
    (world, edge)
}

/// A framing shape: the raw requests (`{h}` is the host), and how many requests the
/// instance must see (0: the edge refuses).
const CORPUS: &[(&str, &str, usize)] = &[
    (
        "plain",
        "GET /a HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n",
        1,
    ),
    (
        "Connection names Content-Length, with a request in the body",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nConnection: content-length\r\nContent-Length: 35\r\n\r\n\
         GET /smuggled HTTP/1.1\r\nX-Capture: \
         GET /after HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n",
        2,
    ),
    (
        "Connection names close and Content-Length",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nConnection: close, Content-Length\r\nContent-Length: 5\r\n\r\nhello",
        1,
    ),
    (
        "Connection names Host",
        "GET /a HTTP/1.1\r\nHost: {h}\r\nConnection: host, close\r\n\r\n",
        1,
    ),
    (
        "Connection names Transfer-Encoding",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n",
        2,
    ),
    (
        "the same Content-Length twice",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        1,
    ),
    (
        "a Content-Length list",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\nhello",
        0,
    ),
    (
        "a Content-Length with leading zeros",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nContent-Length: 005\r\nConnection: close\r\n\r\nhello",
        1,
    ),
    (
        "a zero Content-Length",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        1,
    ),
    (
        "conflicting Content-Lengths",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        0,
    ),
    (
        "a negative Content-Length",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nContent-Length: -1\r\n\r\n",
        0,
    ),
    (
        "Content-Length and Transfer-Encoding",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {h}\r\n\r\n",
        0,
    ),
    (
        "an obs-folded header",
        "GET /a HTTP/1.1\r\nHost: {h}\r\nX-Folded: a\r\n b\r\nConnection: close\r\n\r\n",
        0,
    ),
    (
        "white space before a colon",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        0,
    ),
    (
        "bare line feeds",
        "GET /a HTTP/1.1\nHost: {h}\nConnection: close\n\n",
        1,
    ),
    (
        "Transfer-Encoding gzip, chunked",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n",
        1,
    ),
    (
        "Transfer-Encoding chunked, gzip",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        0,
    ),
    (
        "Transfer-Encoding identity",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: identity\r\n\r\nhello",
        0,
    ),
    (
        "chunk extensions and trailers",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         5;ext=\"1\"\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
        1,
    ),
    (
        "pipelined requests",
        "GET /1 HTTP/1.1\r\nHost: {h}\r\n\r\nPOST /2 HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\n\r\nhello\
         GET /3 HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n",
        3,
    ),
    (
        "Expect: 100-continue",
        "POST /a HTTP/1.1\r\nHost: {h}\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        1,
    ),
    (
        "an upgrade the app declines",
        "GET /ws HTTP/1.1\r\nHost: {h}\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        1,
    ),
    (
        "an absolute request target",
        "GET http://{h}/a HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n",
        1,
    ),
    ("HTTP/1.0", "GET /a HTTP/1.0\r\nHost: {h}\r\n\r\n", 1),
    (
        "two Host headers",
        "GET /a HTTP/1.1\r\nHost: {h}\r\nHost: {h}\r\nConnection: close\r\n\r\n",
        0,
    ),
];

#[tokio::test]
async fn every_framing_shape_reaches_the_instance_as_one_request_alike_on_both_lanes() {
    let recorder = Recorder::start("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let (_world, edge) = both_lanes(recorder.addr).await;
    let mut failures = Vec::new();
    for (name, raw, expected) in CORPUS {
        let mut outcomes = Vec::new();
        for host in [express_host(), HYPER_HOST.to_owned()] {
            let raw = raw.replace("{h}", &host);
            let got = answers(&send(edge.addr, raw.as_bytes()).await);
            // The next client's request, over the same kept connections.
            let next = format!("GET /next HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            let after = answers(&send(edge.addr, next.as_bytes()).await);
            let mut seen = recorder.take();
            let last = seen.pop();
            let clean_next = "GET /next host=ok content-length=[] transfer-encoding=[] body=\"\"";
            if after != [(200, "ok".to_owned())] || last.as_deref() != Some(clean_next) {
                failures.push(format!(
                    "{name} via {host}: the next request became {last:?} ({after:?})"
                ));
            }
            let statuses: Vec<u16> = got.iter().map(|(s, _)| *s).collect();
            let refused = statuses == [400];
            if seen.len() != *expected || (*expected == 0 && !refused) {
                failures.push(format!(
                    "{name} via {host}: {} requests reached the instance, not {expected} \
                     (client got {statuses:?}): {seen:#?}",
                    seen.len()
                ));
            }
            outcomes.push((statuses, seen));
        }
        if outcomes[0] != outcomes[1] {
            failures.push(format!(
                "{name}: the lanes differ\n  express: {:?}\n  hyper:   {:?}",
                outcomes[0], outcomes[1]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn an_answer_keeps_its_framing_whatever_its_connection_header_names() {
    let answer = "HTTP/1.1 200 OK\r\nConnection: content-length, transfer-encoding\r\n\
                  Content-Length: 5\r\n\r\nhello";
    let recorder = Recorder::start(answer).await;
    let (_world, edge) = both_lanes(recorder.addr).await;
    for host in [express_host(), HYPER_HOST.to_owned()] {
        // Two on one connection: a lost length would make the second part of the first.
        let raw = format!(
            "GET /1 HTTP/1.1\r\nHost: {host}\r\n\r\nGET /2 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        );
        let bytes = send(edge.addr, raw.as_bytes()).await;
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        assert_eq!(
            text.matches("content-length: 5\r\n").count(),
            2,
            "via {host}: {text}"
        );
        let got = answers(&bytes);
        let hello = (200, "hello".to_owned());
        assert_eq!(got, [hello.clone(), hello], "via {host}");
    }
}

#[tokio::test]
async fn an_answer_with_length_and_chunks_reaches_the_client_by_its_chunks_alone() {
    let answer = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5\r\nhello\r\n0\r\n\r\n";
    let recorder = Recorder::start(answer).await;
    let (_world, edge) = both_lanes(recorder.addr).await;
    for host in [express_host(), HYPER_HOST.to_owned()] {
        let raw = format!(
            "GET /1 HTTP/1.1\r\nHost: {host}\r\n\r\nGET /2 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        );
        let bytes = send(edge.addr, raw.as_bytes()).await;
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        assert!(!text.contains("content-length"), "via {host}: {text}");
        let hello = (200, "hello".to_owned());
        assert_eq!(answers(&bytes), [hello.clone(), hello], "via {host}");
    }
}

#[tokio::test]
async fn clients_claims_of_their_address_never_reach_the_instance() {
    let backend = crate::support::Backend::start("a").await;
    let (_world, edge) = both_lanes(backend.addr).await;
    let claims = "X-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n";
    for host in [express_host(), HYPER_HOST.to_owned()] {
        let reply = edge.get_with(&host, claims).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        for claim in ["x-real-ip", "true-client-ip", "forwarded"] {
            assert_eq!(reply.seen(claim), None, "{claim} via {host}: {reply:?}");
        }
        assert_eq!(reply.seen("x-forwarded-for"), Some("127.0.0.1"));
    }
}
