//! Traffic for whole-platform tests: a steady request loop through the edge that
//! records every answer (so a test can say no request failed, and which instance
//! answered when), and counting the microVMs this host runs.

use std::time::{Duration, Instant};

use zeitwork_vmm::Cgroup;

/// One request's outcome: the body of a 200, or how it failed.
#[derive(Debug, Clone)]
pub struct Answer {
    /// When the request was sent.
    pub sent: Instant,
    pub result: Result<String, String>,
}

/// Requests through the edge, one after another, until stopped.
pub struct Load {
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Vec<Answer>>,
}

impl Load {
    /// `GET /` with `Host: host` from `edge`, every 20 ms.
    pub fn start(edge: String, host: String) -> Load {
        Load::every(edge, host, Duration::from_millis(20))
    }

    /// [`Load::start`] with another pause between requests.
    pub fn every(edge: String, host: String, pause: Duration) -> Load {
        Load::of(edge, host, "/", pause, ANSWER_WITHIN)
    }

    /// `GET path` with `Host: host` from `edge`, with `pause` between answer and request;
    /// a request not answered `within` failed.
    pub fn of(edge: String, host: String, path: &str, pause: Duration, within: Duration) -> Load {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let path = path.to_owned();
        let done = tokio::spawn(async move {
            let mut answers = Vec::new();
            while stopped.try_recv().is_err() {
                let sent = Instant::now();
                let result = get_path_via(&edge, &host, &path, within).await;
                answers.push(Answer { sent, result });
                tokio::time::sleep(pause).await;
            }
            answers
        });
        Load { stop, done }
    }

    /// `clients` loops each keeping one `GET /slow?ms=<ms>` in flight (the example app's
    /// slow answer): a burst of `clients` requests in flight.
    pub fn slow_burst(edge: &str, host: &str, clients: usize, ms: u64) -> Vec<Load> {
        let path = format!("/slow?ms={ms}");
        let within = Duration::from_millis(ms) + Duration::from_secs(20);
        (0..clients)
            .map(|_| Load::of(edge.into(), host.into(), &path, Duration::ZERO, within))
            .collect()
    }

    /// Every answer, in order.
    pub async fn answers(self) -> Vec<Answer> {
        let _ = self.stop.send(());
        self.done.await.unwrap()
    }

    /// How many requests were answered with 200, and how the others failed.
    pub async fn stop(self) -> (usize, Vec<String>) {
        let answers = self.answers().await;
        let served = answers.iter().filter(|a| a.result.is_ok()).count();
        let failed = answers.into_iter().filter_map(|a| a.result.err()).collect();
        (served, failed)
    }
}

/// `GET url` (plain `http://HOST:PORT/`), the body on a 200.
pub async fn get(url: &str) -> Result<String, String> {
    let host = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| format!("not an http URL: {url}"))?;
    get_via(host, host).await
}

/// How long `GET path` on `addr` with `Host: host` takes to its answer's first byte
/// (a 200 within 60 s), or why it failed.
pub async fn first_byte(addr: &str, host: &str, path: &str) -> Result<Duration, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut first = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(60), stream.read_exact(&mut first))
        .await
        .map_err(|_| format!("{addr}: no answer within 60 s"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    let took = started.elapsed();
    if &first != b"HTTP/1.1 200" {
        return Err(format!("{addr}: {}", String::from_utf8_lossy(&first)));
    }
    Ok(took)
}

/// `GET /` from `addr` with `Host: host`, the body on a 200.
pub async fn get_via(addr: &str, host: &str) -> Result<String, String> {
    get_path_via(addr, host, "/", ANSWER_WITHIN).await
}

/// How long a `GET /` may take before it counts as failed.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// `GET path` from `addr` with `Host: host`, the body on a 200 `within`.
pub async fn get_path_via(
    addr: &str,
    host: &str,
    path: &str,
    within: Duration,
) -> Result<String, String> {
    let answer = exchange(addr, host, path, within).await?;
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(format!("{addr} ({host}): {answer}")),
    }
}

/// `GET path` on `addr` with `Host: host` (HTTP/1.1, one request, the connection
/// closed after): the whole answer, or why there is none within `within`.
pub async fn exchange(
    addr: &str,
    host: &str,
    path: &str,
    within: Duration,
) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    tokio::time::timeout(within, exchange)
        .await
        .map_err(|_| format!("{addr} ({host}): no answer within {within:?}"))?
        .map_err(|e| format!("{addr} ({host}): {e}"))
}

/// The instance named in the example's answer, "Hello from Zeitwork! (instance ID)".
pub fn answering(body: &str) -> Option<String> {
    let start = body.find("(instance ")? + "(instance ".len();
    let end = body[start..].find(')')? + start;
    Some(body[start..end].to_owned())
}

/// How many of our microVMs run on this host (VM cgroups with a process).
pub fn count_vms() -> usize {
    Cgroup::ours()
        .into_iter()
        .filter(|(_, cg)| !cg.pids().is_empty())
        .count()
}
