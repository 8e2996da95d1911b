//! Firecracker's HTTP API over its Unix socket: the request bodies we send and a tiny
//! HTTP/1.1 client (one connection per request; Firecracker answers every request with
//! a `Content-Length`, errors with a JSON `{"fault_message": …}` body).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::VmmError;

/// How long one API request may take (Firecracker answers configuration requests in
/// microseconds; `InstanceStart` loads the kernel and takes milliseconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response we accept (Firecracker's are a few hundred bytes).
const MAX_RESPONSE: usize = 64 << 10;

/// `sun_path` holds 108 bytes including the terminating NUL.
const SUN_PATH_MAX: usize = 107;

/// The block devices in the order the guest expects them: Firecracker assigns
/// `/dev/vda`, `/dev/vdb`, `/dev/vdc` in attach order. `(drive_id, path in the jail,
/// read-only)`.
pub(crate) const DRIVES: [(&str, &str, bool); 3] = [
    ("root", crate::jail::ROOT_DISK, true),
    ("scratch", crate::jail::SCRATCH_DISK, false),
    ("config", crate::jail::CONFIG_DISK, true),
];

/// One configuration request: `PUT <path>` with a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Put {
    pub path: String,
    pub body: Value,
}

pub(crate) fn boot_source(kernel: &str, initrd: &str, boot_args: &str) -> Put {
    Put {
        path: "/boot-source".into(),
        body: json!({
            "kernel_image_path": kernel,
            "initrd_path": initrd,
            "boot_args": boot_args,
        }),
    }
}

pub(crate) fn drive(id: &str, path_on_host: &str, read_only: bool) -> Put {
    Put {
        path: format!("/drives/{id}"),
        body: json!({
            "drive_id": id,
            "path_on_host": path_on_host,
            "is_root_device": false,
            "is_read_only": read_only,
        }),
    }
}

pub(crate) fn machine_config(vcpus: u32, memory_mb: u64) -> Put {
    Put {
        path: "/machine-config".into(),
        body: json!({ "vcpu_count": vcpus, "mem_size_mib": memory_mb }),
    }
}

pub(crate) fn network_interface(iface: &str, tap: &str, mac: &str) -> Put {
    Put {
        path: format!("/network-interfaces/{iface}"),
        body: json!({ "iface_id": iface, "host_dev_name": tap, "guest_mac": mac }),
    }
}

/// `InstanceStart`, or `SendCtrlAltDel` (the graceful stop: init turns it into a SIGTERM
/// for the app).
pub(crate) fn action(action_type: &str) -> Put {
    Put {
        path: "/actions".into(),
        body: json!({ "action_type": action_type }),
    }
}

/// The bytes of one request.
pub(crate) fn encode(put: &Put) -> Vec<u8> {
    let body = put.body.to_string();
    let mut out = format!(
        "PUT {} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        put.path,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// A parsed response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub body: String,
}

/// Parses a complete response from `buf`, or `Ok(None)` when more bytes are needed.
pub(crate) fn decode(buf: &[u8]) -> Result<Option<Response>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut length = 0usize;
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value
                .trim()
                .parse()
                .map_err(|_| format!("bad content-length {value:?}"))?;
        }
    }
    let body = &buf[end + 4..];
    if body.len() < length {
        return Ok(None);
    }
    Ok(Some(Response {
        status,
        body: String::from_utf8_lossy(&body[..length]).into_owned(),
    }))
}

/// Firecracker's API socket, as seen from the host.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct Api {
    socket: PathBuf,
}

impl Api {
    pub fn new(socket: PathBuf) -> Api {
        Api { socket }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Connects, working around `sun_path`'s 108 bytes: a socket deep in a jail is
    /// reached through `/proc/self/fd/<its directory>/<name>`.
    pub async fn connect(&self) -> std::io::Result<UnixStream> {
        if self.socket.as_os_str().len() <= SUN_PATH_MAX {
            return UnixStream::connect(&self.socket).await;
        }
        use std::os::fd::AsRawFd;
        let dir = self.socket.parent().unwrap_or(Path::new("/"));
        let name = self.socket.file_name().unwrap_or_default();
        let dir = std::fs::File::open(dir)?;
        let short = Path::new("/proc/self/fd")
            .join(dir.as_raw_fd().to_string())
            .join(name);
        let stream = UnixStream::connect(&short).await;
        drop(dir);
        stream
    }

    /// Sends `put`; anything but a 2xx answer is an error quoting Firecracker's
    /// `fault_message`.
    pub async fn put(&self, put: &Put) -> Result<(), VmmError> {
        let request = format!("PUT {}", put.path);
        let failed = |reason: String| VmmError::Api {
            request: request.clone(),
            reason,
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(&encode(put)))
            .await
            .map_err(|_| failed(format!("no answer within {REQUEST_TIMEOUT:?}")))?
            .map_err(|e| failed(format!("{}: {e}", self.socket.display())))?;
        if (200..300).contains(&response.status) {
            return Ok(());
        }
        let fault = serde_json::from_str::<Value>(&response.body)
            .ok()
            .and_then(|v| v.get("fault_message")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| response.body.trim().to_owned());
        Err(failed(format!("{}: {fault}", response.status)))
    }

    async fn exchange(&self, request: &[u8]) -> std::io::Result<Response> {
        let mut stream = self.connect().await?;
        stream.write_all(request).await?;
        let mut buf = Vec::with_capacity(512);
        loop {
            match decode(&buf).map_err(std::io::Error::other)? {
                Some(response) => return Ok(response),
                None if buf.len() > MAX_RESPONSE => {
                    return Err(std::io::Error::other("response too large"));
                }
                None => {}
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before a complete response",
                ));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::UnixListener;

    use super::*;

    /// One request as the stand-in server read it.
    #[derive(Debug, Clone)]
    pub struct Recorded {
        pub method: String,
        pub path: String,
        pub headers: Vec<(String, String)>,
        pub body: Value,
    }

    /// A STAND-IN for Firecracker's API server (its framing and answers as documented in
    /// its swagger file; the real binary is exercised by `firecracker::tests::real_*`):
    /// reads HTTP/1.1 requests with a `Content-Length`, records them, and answers 204, or
    /// 400 with a `fault_message` for paths listed in `fail`. Keeps connections alive as
    /// Firecracker does.
    pub fn stand_in(socket: &Path, fail: &'static [&'static str]) -> Arc<Mutex<Vec<Recorded>>> {
        let listener = UnixListener::bind(socket).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut read = BufReader::new(read);
                    loop {
                        let mut line = String::new();
                        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let mut parts = line.trim_end().splitn(3, ' ');
                        let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
                        assert_eq!(parts.next(), Some("HTTP/1.1"), "{line:?}");
                        let (method, path) = (method.to_owned(), path.to_owned());
                        let mut headers = Vec::new();
                        loop {
                            let mut h = String::new();
                            read.read_line(&mut h).await.unwrap();
                            assert!(h.ends_with("\r\n"), "CRLF line endings: {h:?}");
                            if h == "\r\n" {
                                break;
                            }
                            let (k, v) = h.trim_end().split_once(':').unwrap();
                            headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
                        }
                        let length: usize = headers
                            .iter()
                            .find(|(k, _)| k == "content-length")
                            .map(|(_, v)| v.parse().unwrap())
                            .unwrap_or(0);
                        let mut body = vec![0; length];
                        read.read_exact(&mut body).await.unwrap();
                        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let failing = fail.contains(&path.as_str());
                        record.lock().unwrap().push(Recorded {
                            method,
                            path,
                            headers,
                            body,
                        });
                        let answer = if failing {
                            let body =
                                r#"{"fault_message":"The requested operation is not supported."}"#;
                            format!(
                                "HTTP/1.1 400 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\
                                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        } else {
                            "HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n"
                                .to_owned()
                        };
                        if write.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        seen
    }

    #[test]
    fn requests_are_framed_as_http_1_1_with_a_json_body() {
        let bytes = encode(&drive("root", "/root.ext4", true));
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("PUT /drives/root HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nContent-Type: application/json"));
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            v,
            json!({"drive_id": "root", "path_on_host": "/root.ext4",
                   "is_root_device": false, "is_read_only": true})
        );
    }

    #[test]
    fn responses_are_parsed_incrementally() {
        let ok = b"HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n";
        assert_eq!(
            decode(ok).unwrap(),
            Some(Response {
                status: 204,
                body: String::new()
            })
        );
        let err = b"HTTP/1.1 400 \r\ncontent-length: 20\r\n\r\n{\"fault_message\":\"x\"}";
        assert_eq!(decode(&err[..30]).unwrap(), None, "head incomplete");
        assert_eq!(decode(&err[..45]).unwrap(), None, "body incomplete");
        assert_eq!(decode(err).unwrap().unwrap().status, 400);
        assert_eq!(
            decode(err).unwrap().unwrap().body,
            "{\"fault_message\":\"x\""
        );
        assert!(decode(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn faults_become_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let seen = stand_in(&socket, &["/vsock"]);
        let api = Api::new(socket);
        api.put(&action("InstanceStart")).await.unwrap();
        let err = api
            .put(&Put {
                path: "/vsock".into(),
                body: json!({}),
            })
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "Firecracker API PUT /vsock: 400: The requested operation is not supported."
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].body, json!({"action_type": "InstanceStart"}));
        assert_eq!(seen[0].method, "PUT");
    }

    #[tokio::test]
    async fn long_socket_paths_are_reached_through_proc() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let socket = deep.join("firecracker.socket");
        assert!(socket.as_os_str().len() > SUN_PATH_MAX);
        // Bind through the same trick (the listener faces the same limit).
        let dirfd = std::fs::File::open(&deep).unwrap();
        use std::os::fd::AsRawFd;
        let short = format!("/proc/self/fd/{}/firecracker.socket", dirfd.as_raw_fd());
        let seen = stand_in(Path::new(&short), &[]);
        Api::new(socket).put(&machine_config(1, 128)).await.unwrap();
        assert_eq!(seen.lock().unwrap()[0].path, "/machine-config");
    }
}
