//! The node's end of the WireGuard overlay (`docs/architecture.md`, "Overlay"): one
//! interface, [`OVERLAY_LINK`], holding the node's own overlay address, with every other
//! node as a peer allowed exactly its instance /64 and routed there. Kernel WireGuard when
//! the host has it; `wireguard-go` (userspace, over `/dev/net/tun`) otherwise. Either way
//! `wg` (wireguard-tools) configures it, and the interface outlives an agent restart, like
//! the instances' links.
//!
//! The private key is made here, in a file of mode 0600 that never leaves the node; the
//! control plane only ever sees the public key.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::NetError;
use crate::command::run_in;

/// The overlay's interface. Not `zw…`: that is the guests' links' prefix, which the
/// firewall treats as untrusted.
pub const OVERLAY_LINK: &str = "wg-zeitwork";
/// WireGuard's MTU over a 1500-byte path carrying IPv6 (80 bytes of headers).
const MTU: &str = "1420";
/// Keeps NAT mappings and the handshake fresh, so reachability is always current.
const KEEPALIVE_SECONDS: &str = "25";

/// One node to peer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Base64 public key.
    pub public_key: String,
    /// Where it listens (`ip:port`, `[ip6]:port`); `None` leaves it to dial us.
    pub endpoint: Option<String>,
    /// What it may send from and is routed to: its instance /64.
    pub allowed_ips: Vec<String>,
    /// Send it keepalives, which also starts the first handshake at once. One side of
    /// each pair only ([`keeps_alive`]): two sides starting handshakes at the same moment
    /// cross, each drops the other's answer, and both wait out WireGuard's 5 s retry.
    pub keepalive: bool,
}

/// Whether the node with public key `mine` keeps the path to `theirs` alive: the one
/// with the smaller key, so exactly one side of each pair does.
pub fn keeps_alive(mine: &str, theirs: &str) -> bool {
    mine < theirs
}

/// How recently a peer completed a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHandshake {
    pub public_key: String,
    /// Seconds ago; `None`: never.
    pub age_seconds: Option<u64>,
}

/// The node's overlay interface.
#[derive(Debug, Clone)]
pub struct Overlay {
    link: String,
    key_file: PathBuf,
    port: u16,
    address: Ipv6Addr,
    /// Run every command inside this network namespace (tests play several nodes).
    netns: Option<String>,
}

impl Overlay {
    /// The overlay of a node whose private key is (or will be) `key_file`, listening on
    /// UDP `port`, with overlay address `address`.
    pub fn new(key_file: PathBuf, port: u16, address: Ipv6Addr) -> Overlay {
        Overlay {
            link: OVERLAY_LINK.to_owned(),
            key_file,
            port,
            address,
            netns: None,
        }
    }

    /// The same overlay on an interface named `link` (1 to 15 characters): several nodes
    /// played on one machine need one each, since `wg` finds a userspace interface by
    /// its name alone (its socket in `/var/run/wireguard`, shared by every namespace).
    pub fn named(mut self, link: &str) -> Overlay {
        self.link = link.to_owned();
        self
    }

    /// The same overlay, its commands run in network namespace `netns`.
    pub fn in_netns(mut self, netns: &str) -> Overlay {
        self.netns = Some(netns.to_owned());
        self
    }

    async fn run(&self, program: &'static str, args: &[&str]) -> Result<String, NetError> {
        run_in(self.netns.as_deref(), program, args, None).await
    }

    /// Makes the private key when there is none yet (mode 0600) and answers the public
    /// key (base64), from `wg pubkey`.
    pub async fn public_key(&self) -> Result<String, NetError> {
        let private = match std::fs::read_to_string(&self.key_file) {
            Ok(key) => key,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = run_in(None, "wg", &["genkey"], None).await?;
                write_private(&self.key_file, &key).map_err(|e| NetError::Command {
                    command: format!("writing {}", self.key_file.display()),
                    stderr: e.to_string(),
                })?;
                key
            }
            Err(e) => {
                return Err(NetError::Command {
                    command: format!("reading {}", self.key_file.display()),
                    stderr: e.to_string(),
                });
            }
        };
        Ok(run_in(None, "wg", &["pubkey"], Some(&private))
            .await?
            .trim()
            .to_owned())
    }

    /// Brings the interface up (made if missing: kernel WireGuard, else `wireguard-go`)
    /// with the node's key, port and overlay address.
    pub async fn up(&self) -> Result<(), NetError> {
        if !self.exists().await? {
            let kernel = self
                .run(
                    "ip",
                    &["link", "add", "dev", &self.link, "type", "wireguard"],
                )
                .await;
            if kernel.is_err() {
                // No kernel module: the userspace implementation, which detaches and
                // keeps running beside the agent (as the kernel interface would).
                self.run("wireguard-go", &[&self.link]).await?;
            }
        }
        let key = self.key_file.display().to_string();
        let port = self.port.to_string();
        self.run(
            "wg",
            &["set", &self.link, "private-key", &key, "listen-port", &port],
        )
        .await?;
        let address = format!("{}/128", self.address);
        self.run(
            "ip",
            &["-6", "addr", "replace", &address, "dev", &self.link],
        )
        .await?;
        self.run("ip", &["link", "set", "dev", &self.link, "mtu", MTU, "up"])
            .await?;
        Ok(())
    }

    async fn exists(&self) -> Result<bool, NetError> {
        Ok(self
            .run("ip", &["-o", "link", "show", "dev", &self.link])
            .await
            .is_ok())
    }

    /// Makes the peers exactly `peers`: adds and updates those given (and routes their
    /// /64s here), removes every other.
    pub async fn set_peers(&self, peers: &[Peer]) -> Result<(), NetError> {
        let current: BTreeSet<String> = self
            .run("wg", &["show", &self.link, "peers"])
            .await?
            .lines()
            .map(str::to_owned)
            .collect();
        let wanted: BTreeSet<&str> = peers.iter().map(|p| p.public_key.as_str()).collect();
        for stale in current.iter().filter(|k| !wanted.contains(k.as_str())) {
            self.run("wg", &["set", &self.link, "peer", stale, "remove"])
                .await?;
        }
        for peer in peers {
            let allowed = peer.allowed_ips.join(",");
            let keepalive = if peer.keepalive {
                KEEPALIVE_SECONDS
            } else {
                "off"
            };
            let mut args = vec![
                "set",
                &self.link,
                "peer",
                &peer.public_key,
                "allowed-ips",
                &allowed,
                "persistent-keepalive",
                keepalive,
            ];
            if let Some(endpoint) = &peer.endpoint {
                args.extend(["endpoint", endpoint]);
            }
            self.run("wg", &args).await?;
            for net in &peer.allowed_ips {
                self.run("ip", &["-6", "route", "replace", net, "dev", &self.link])
                    .await?;
            }
        }
        // A removed peer's routes went with nothing to carry them; drop what is left.
        let routes = self
            .run("ip", &["-6", "-o", "route", "show", "dev", &self.link])
            .await?;
        let allowed: BTreeSet<&str> = peers
            .iter()
            .flat_map(|p| p.allowed_ips.iter().map(String::as_str))
            .collect();
        for net in routes.lines().filter_map(|l| l.split_whitespace().next()) {
            if net.ends_with("/64") && !net.starts_with("fe80:") && !allowed.contains(net) {
                self.run("ip", &["-6", "route", "del", net, "dev", &self.link])
                    .await?;
            }
        }
        Ok(())
    }

    /// Each peer's last handshake, from `wg show … latest-handshakes`.
    pub async fn handshakes(&self) -> Result<Vec<PeerHandshake>, NetError> {
        let out = self
            .run("wg", &["show", &self.link, "latest-handshakes"])
            .await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(parse_handshakes(&out, now))
    }

    /// Removes the interface (and with it a userspace implementation's process).
    pub async fn down(&self) -> Result<(), NetError> {
        if self.exists().await? {
            self.run("ip", &["link", "del", "dev", &self.link]).await?;
        }
        Ok(())
    }
}

/// `<key>\t<unix seconds>` lines (0: never) as ages at `now`.
fn parse_handshakes(out: &str, now: u64) -> Vec<PeerHandshake> {
    out.lines()
        .filter_map(|line| {
            let (key, at) = line.split_once('\t')?;
            let at: u64 = at.trim().parse().ok()?;
            Some(PeerHandshake {
                public_key: key.to_owned(),
                age_seconds: (at != 0).then(|| now.saturating_sub(at)),
            })
        })
        .collect()
}

/// Writes `text` to a new file only its owner may read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlay_is_not_taken_for_a_guest_link() {
        assert!(!OVERLAY_LINK.starts_with(crate::LINK_PREFIX));
        assert!(OVERLAY_LINK.len() <= 15, "an interface name");
    }

    #[test]
    fn handshake_ages_are_read_from_wg_show() {
        let out = "AAAA=\t1700000000\nBBBB=\t0\nbroken line\n";
        assert_eq!(
            parse_handshakes(out, 1_700_000_042),
            vec![
                PeerHandshake {
                    public_key: "AAAA=".into(),
                    age_seconds: Some(42),
                },
                PeerHandshake {
                    public_key: "BBBB=".into(),
                    age_seconds: None,
                },
            ]
        );
    }
}
