//! `zeitwork server lb` in front of the edge of a real `zeitwork up`: connections reach
//! the edge through it, an edge that goes away is taken out, and its counters are on
//! /metrics.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeitwork_e2e::{Up, poll_until, zeitwork_bin};
use zeitwork_services::free_port;

/// One request on a new connection through `addr`; the answer's head and body.
async fn get(addr: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = "GET / HTTP/1.1\r\nHost: nothing-here.zeitwork.localhost\r\nAccept: application/json\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

#[tokio::test]
async fn the_load_balancer_relays_to_the_edge_and_reports_on_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path().join("data")).await;
    let (listen, metrics) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    // A second "edge" that nothing serves: checks take it out, clients never see it.
    let dead = format!("127.0.0.1:{}", free_port());
    let mut lb = tokio::process::Command::new(zeitwork_bin())
        .args([
            "server",
            "lb",
            "--listen",
            &listen,
            "--metrics-addr",
            &metrics,
        ])
        .args(["--backend", &up.edge_addr(), "--backend", &dead])
        .args(["--health-interval-ms", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready = poll_until(Duration::from_secs(10), || async {
        get(&listen).await.ok().filter(|a| a.contains("not_found"))
    })
    .await;
    let answer = ready.expect("the edge answers through the load balancer");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        answer.to_lowercase().contains("x-request-id"),
        "the edge's own answer: {answer}"
    );
    for i in 0..20 {
        let answer = get(&listen).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 404"), "request {i}: {answer}");
    }

    let url = format!("http://{metrics}/metrics");
    let text = poll_until(Duration::from_secs(5), || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        let total: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("zeitwork_lb_connections_total "))?
            .trim()
            .parse()
            .ok()?;
        // The first request, the 20 after it, and maybe some before the edge was up.
        (total >= 21).then_some(text)
    })
    .await;
    let text = text.unwrap_or_else(|| panic!("no counters at {url}"));
    let edge = format!(
        "zeitwork_lb_backend_healthy{{backend=\"{}\"}} 1",
        up.edge_addr()
    );
    let gone = format!("zeitwork_lb_backend_healthy{{backend=\"{dead}\"}} 0");
    assert!(text.contains(&edge) && text.contains(&gone), "{text}");
    lb.start_kill().unwrap();
    let _ = lb.wait().await;
}
