//! Real TCP on 127.0.0.0/8: backends that say who they are and echo, clients that can
//! come from any loopback address, and a load balancer started in the background.

#![allow(dead_code)] // each test binary uses its own part

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zeitwork_l4::{HealthConfig, Lb, LbConfig, LbError};

pub const PATIENCE: Duration = Duration::from_secs(15);

/// A backend that greets each connection with `<name>\n`, then echoes until EOF.
pub struct Backend {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        Backend::at(name, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// On a port below the kernel's ephemeral range (32768 and up), so that once it is
    /// killed no client socket of a parallel test takes the port and it can come back.
    pub async fn revivable(name: &str) -> Backend {
        for _ in 0..100 {
            let port = rand::random::<u16>() % 12_000 + 20_000;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            if let Ok(listener) = TcpListener::bind(addr).await {
                return Backend::on(name, listener);
            }
        }
        panic!("no free port between 20000 and 32000");
    }

    /// Back on `addr` (retried briefly while the old socket's port is released).
    pub async fn revive(name: &str, addr: SocketAddr) -> Backend {
        for _ in 0..50 {
            if let Ok(listener) = TcpListener::bind(addr).await {
                return Backend::on(name, listener);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{addr} stayed in use");
    }

    pub async fn at(name: &str, addr: SocketAddr) -> Backend {
        Backend::on(name, TcpListener::bind(addr).await.unwrap())
    }

    fn on(name: &str, listener: TcpListener) -> Backend {
        let addr = listener.local_addr().unwrap();
        let greeting = format!("{name}\n");
        let task = tokio::spawn(serve(listener, move |mut stream| {
            let greeting = greeting.clone();
            async move {
                stream.write_all(greeting.as_bytes()).await?;
                let (mut read, mut write) = stream.split();
                tokio::io::copy(&mut read, &mut write).await?;
                write.shutdown().await
            }
        }));
        Backend { addr, task }
    }

    /// Stops accepting: new connections are refused from now on.
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `handle` for every connection accepted on `listener`.
pub async fn serve<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let conn = handle(stream);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

/// An address nothing listens on.
pub async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A connection to `to` from the loopback address `from` (127.0.0.1 when `None`).
pub async fn connect(to: SocketAddr, from: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(
        from.unwrap_or(Ipv4Addr::LOCALHOST.into()),
        0,
    ))?;
    socket.connect(to).await
}

/// The first line the other side sends, without the newline.
pub async fn line<R: AsyncRead + Unpin>(stream: &mut R) -> String {
    let mut line = String::new();
    let mut reader = BufReader::new(stream);
    tokio::time::timeout(PATIENCE, reader.read_line(&mut line))
        .await
        .expect("a line in time")
        .expect("reading a line");
    assert!(reader.buffer().is_empty(), "nothing after the line yet");
    line.trim_end().to_owned()
}

/// Which backend answers a new connection from `from`.
pub async fn who(lb: SocketAddr, from: Option<IpAddr>) -> String {
    let mut stream = connect(lb, from).await.expect("the balancer accepts");
    let name = line(&mut stream).await;
    assert!(
        !name.is_empty(),
        "the connection was closed without a backend"
    );
    name
}

/// Reads until EOF.
pub async fn rest(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut all))
        .await
        .expect("EOF in time")
        .expect("reading to EOF");
    all
}

/// Quick checks, so tests see health changes within a second.
pub fn quick_health() -> HealthConfig {
    HealthConfig {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
        rise: 2,
        fall: 2,
    }
}

/// A running load balancer.
pub struct Running {
    pub lb: Lb,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub served: JoinHandle<Result<(), LbError>>,
}

impl Running {
    pub async fn start(backends: &[SocketAddr], tune: impl FnOnce(&mut LbConfig)) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = LbConfig::new(addr, backends.to_vec());
        config.health = quick_health();
        tune(&mut config);
        let lb = Lb::new(config).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(lb.serve(listener, async {
            let _ = stopped.await;
        }));
        Running {
            lb,
            addr,
            stop: Some(stop),
            served,
        }
    }

    /// Begins graceful shutdown.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits until `ready` holds of the balancer's stats.
    pub async fn until(&self, what: &str, ready: impl Fn(&zeitwork_l4::LbStats) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !ready(&self.lb.stats()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: {:#?}",
                self.lb.stats()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
