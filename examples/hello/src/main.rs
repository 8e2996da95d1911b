//! The example app Zeitwork deploys out of the box: a dependency-free HTTP server, built
//! as a static binary and packed into an OCI image by Zeitwork's own tooling.
//!
//! `hello [serve]` serves `GET /` and `GET /healthz` on `$PORT` (default 8080), and
//! `GET /public`: the secrets whose names start with `PUBLIC_`, as `NAME=value` lines, to
//! show a secret change reaching the app (no other secret is ever shown), and
//! `GET /slow?ms=N`: `GET /`'s answer after N milliseconds (at most 10 000), a request
//! that stays in flight, to load the app for the autoscaler; `GET /busy?set=1` (or `0`)
//! creates (or removes) `/run/zeitwork/busy`, the platform's "busy" signal that keeps
//! an app scaled to zero from being stopped while it works in the background.
//! The runtime's tests also use it to act as a misbehaving app:
//! `hello exit CODE`, `hello alloc MIB` (touch that much memory), and
//! `hello probe HOST:PORT…` (a line for each; exit 0 if a TCP connection opens to every
//! one within 2 s, else 1).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => serve(),
        ["exit", code] => ExitCode::from(code.parse::<u8>().unwrap_or(1)),
        ["alloc", mib] => alloc(mib.parse().unwrap_or(0)),
        ["probe", targets @ ..] if !targets.is_empty() => {
            // Every target is probed, whatever the others did.
            let failed = targets.iter().filter(|t| !probe(t)).count();
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!("usage: hello [serve | exit CODE | alloc MIB | probe HOST:PORT…]");
            ExitCode::from(2)
        }
    }
}

fn serve() -> ExitCode {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(8080);
    let listener =
        match TcpListener::bind(("::", port)).or_else(|_| TcpListener::bind(("0.0.0.0", port))) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("hello: cannot listen on port {port}: {e}");
                return ExitCode::FAILURE;
            }
        };
    println!("hello: listening on port {port}");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || answer(stream));
    }
    ExitCode::SUCCESS
}

fn answer(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    if route == "/slow" {
        std::thread::sleep(Duration::from_millis(slow_ms(query)));
    }
    let (status, body) = match route {
        "/" | "/slow" => (
            "200 OK",
            format!("Hello from Zeitwork! (instance {})\n", host.trim()),
        ),
        "/healthz" => ("200 OK", "ok\n".to_owned()),
        "/busy" => busy(query),
        "/public" => ("200 OK", public_secrets()),
        _ => ("404 Not Found", "not found\n".to_owned()),
    };
    // An access log (health checks aside), so `zeitwork logs -f` has something to show.
    if path != "/healthz" {
        println!(
            "hello: {} {path} {status}",
            request_line.split_whitespace().next().unwrap_or("-")
        );
    }
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// `/busy?set=1` says the app is busy (the file init watches), `set=0` that it is not.
fn busy(query: &str) -> (&'static str, String) {
    const BUSY: &str = "/run/zeitwork/busy";
    let done = match query {
        "set=1" => std::fs::write(BUSY, b""),
        "set=0" => std::fs::remove_file(BUSY),
        _ => return ("400 Bad Request", "use ?set=1 or ?set=0\n".to_owned()),
    };
    match done {
        Ok(()) => ("200 OK", format!("busy: {}\n", query == "set=1")),
        Err(e) => ("500 Internal Server Error", format!("{BUSY}: {e}\n")),
    }
}

/// The `ms` of a `/slow` query, at most 10 s (0 when absent or malformed).
fn slow_ms(query: &str) -> u64 {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|ms| ms.parse::<u64>().ok())
        .unwrap_or(0)
        .min(10_000)
}

fn alloc(mib: usize) -> ExitCode {
    let mut chunks = Vec::new();
    for i in 0..mib {
        chunks.push(vec![1u8; 1 << 20]);
        if i % 64 == 0 {
            println!("hello: allocated {i} MiB");
        }
    }
    println!("hello: allocated {mib} MiB and survived");
    ExitCode::SUCCESS
}

/// Whether a TCP connection to `target` opens within 2 s; says which on stdout.
fn probe(target: &str) -> bool {
    let Some(addr) = target.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        println!("hello: probe {target}: cannot resolve");
        return false;
    };
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(_) => {
            println!("hello: probe {target}: connected");
            true
        }
        Err(e) => {
            println!("hello: probe {target}: {e}");
            false
        }
    }
}

/// Where the runtime puts the app's secrets: a JSON object of strings (`zeitwork-init`).
const SECRETS: &str = "/run/secrets/zeitwork.json";

/// `NAME=value` lines for the secrets named `PUBLIC_…` (read at each request, so a
/// value is the one this instance started with); escapes are shown as written.
fn public_secrets() -> String {
    let text = std::fs::read_to_string(SECRETS).unwrap_or_default();
    let mut out = String::new();
    let mut strings = json_strings(&text).into_iter();
    while let (Some(name), Some(value)) = (strings.next(), strings.next()) {
        if name.starts_with("PUBLIC_") {
            out.push_str(&format!("{name}={value}\n"));
        }
    }
    out
}

/// The string literals of a flat JSON object of strings, in order (key, value, …).
fn json_strings(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('"') {
        let body = &rest[start + 1..];
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match (c, escaped) {
                ('\\', false) => escaped = true,
                ('"', false) => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else { break };
        out.push(&body[..end]);
        rest = &body[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_come_in_order_with_escapes_kept() {
        let text = r#"{"API_KEY":"s3\"cret","PUBLIC_GREETING":"hi"}"#;
        assert_eq!(
            json_strings(text),
            ["API_KEY", r#"s3\"cret"#, "PUBLIC_GREETING", "hi"]
        );
    }
}
